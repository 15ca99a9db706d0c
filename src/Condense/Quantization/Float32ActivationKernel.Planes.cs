using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;

namespace Condense.Quantization;

/// <summary>
/// The batch-1 path for 4- and 8-bit codes with AVX-512 ("bit planes"): no per-code shuffle, variable shift or table lookup.
/// </summary>
/// <remarks>
/// <para>A 64-byte load of a row holds 16 dwords; dword j holds the codes 8 j .. 8 j + 7 (little-endian, low nibble
/// first). Plane m of the chunk is <c>dword &amp; (0xF &lt;&lt; 4 m)</c>: each lane keeps only its m-th code, still at
/// bit 4 m, and vcvtudq2ps (unsigned: plane 7 uses bit 31) turns it into q 2^(4 m) exactly (4 significant bits). The
/// inputs are copied once per call into plane order (chunk c, plane m, lane j = x[128 c + 8 j + m] 2^-(4 m): exact, a
/// power of two; inputs that are all below 2^-90 are declined, where x 2^-28 could turn subnormal), so plane m's
/// products are q x, exact in float32. Per 16 codes and row: one vpandd, one vcvtudq2ps, one FMA, all non-destructive
/// (no register copies); per chunk and row: one 64-byte load, one prefetcht1 (into L2) of the same columns one row
/// tile ahead, one vpermps and one FMA for the group scales. 8-bit codes work the same way with 4 byte planes per dword
/// (<c>dword &amp; (0xFF &lt;&lt; 8 m)</c>, q 2^(8 m); inputs scaled by 2^-(8 m); 64 codes per chunk, lane j's 4 codes
/// in one group). (A vpternlogd "magic number" decode, (v &amp; mask) | bits(2^(23 - p))
/// minus 2^(23 - p), needs no scaled inputs but measured 11-13% slower: the destructive vpternlogd costs a register copy
/// per plane.)</para>
/// <para>The zero point is folded into the inputs: y = sum_g s_g (q . x)_g + sum_g (-z_g s_g) X_g, with X_g the group
/// sums of x. Summation order (fixed, so results do not depend on the thread count): per chunk, each row's plane
/// products are summed lane-wise (plane 0 first, by FMA), multiplied by the lanes' group scales (one vpermps of the
/// row's scales: every lane's 8 codes lie in one group, since every supported group size is a multiple of 8) and
/// added into the row's total vector (FMA), chunk by chunk; the total's 16 lanes are summed (Vector512.Sum); then the
/// zero-point term is added: sum_g (-z_g s_g) X_g, 16 groups per lane lane-wise in group order, their lane sum, then
/// the remaining groups in order; X_g itself is a 16-lane sum over the group in index order, then the lane sum, then
/// the group's leftover inputs. Rounding: the products q x are exact; the sums round as a float32 dot product of the
/// terms s q x and s z X_g, so the error is relative to sum |s| (q + z) |x| rather than sum |s (q - z) x|: within
/// float32 rounding of the float64 reference (the peers check allows 1e-4 of max |y|; measured 2.4e-7, as before).</para>
/// <para>Non-finite inputs are declined too (the decode-to-weights kernel runs): folding z would turn an infinity times
/// a zero weight into NaN.</para>
/// </remarks>
internal static unsafe partial class Float32ActivationKernel
{
    [ThreadStatic] private static bool t_noBitPlanes;

    /// <summary>
    /// Whether batch-1 products of 4- and 8-bit codes called from this thread take the bit-plane kernel (tests and
    /// benchmarks turn it off to compare paths; per thread, so one test's switch never reaches another's product).
    /// </summary>
    internal static bool BitPlanes { get => !t_noBitPlanes; set => t_noBitPlanes = !value; }

    /// <summary>Row tiles ahead of the one being read that the loop prefetches (the same columns of the same row in that tile).</summary>
    internal static int PlanePrefetchTiles { get; set; } = 1;

    [ThreadStatic] private static float[]? t_planeInputs;

    // 8-bit codes: 4 byte planes (vpandd + vcvtudq2ps + FMA per 16 codes, the scale once per 64 codes) instead of
    // vpmovzxbd + cvt + fma(q, s, -z s) + FMA per 16: S2 int8-g32 1 thread, thread CPU time, cold 6.64 -> 4.54 ns per
    // 64 weight bytes (with prefetcht1), hot 3.8 -> 2.9 (--quick f32act; docs/kernels.md).
    private static bool BitPlanesApply(in PackedWeightView w, int batch, int width) =>
        BitPlanes && batch == 1 && width == 512 && (w.Bits == 4 || w.Bits == 8) && Avx512F.IsSupported;

    // The loop prefetches with prefetcht1 (into L2, one 4-row tile ahead). Against prefetcht0 on S2 cold, 1 thread,
    // thread CPU time, load 27-33: int4-g64 7.12 -> 5.97 ns per 64 weight bytes, int8-g32 5.43 -> 4.54; nta as t0; 2 or 4
    // tiles ahead no better than 1; one or two rows per pass (1-2 sequential streams per thread instead of 4) slower at
    // every distance tried (--quick f32act).

    /// <summary>The batch-1 bit-plane product; false when the inputs are not all finite normal-range values (the caller's path then runs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool RunBitPlanes(in PackedWeightView w, float* x, float* y, int degree)
    {
        int perLane = 32 / w.Bits;                // codes per dword
        int chunkCodes = 16 * perLane;            // codes per 64-byte load
        int chunks = (w.In + chunkCodes - 1) / chunkCodes;
        int gpr = w.GroupsPerRow;
        int need = chunks * chunkCodes + gpr + 32;
        var buffer = t_planeInputs;
        if (buffer is null || buffer.Length < need)
            t_planeInputs = buffer = GC.AllocateArray<float>(Math.Max(need, 4096), pinned: true);
        float* xp = (float*)(((nint)Unsafe.AsPointer(ref buffer[0]) + 63) & ~(nint)63);
        if (xp + need - 16 > (float*)Unsafe.AsPointer(ref buffer[0]) + buffer.Length) xp = (float*)Unsafe.AsPointer(ref buffer[0]);
        float* groupSums = xp + chunks * chunkCodes;
        if (!CopyPlanes(x, w.In, xp, chunks, perLane, w.Bits)) return false;
        GroupSums(x, w.In, w.GroupSize, gpr, groupSums);
        var body = new PlaneBody
        {
            Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupsPerRow = gpr, RowBytes = w.RowBytes,
            Out = w.Out, Chunks = chunks, Xp = xp, GroupSums = groupSums, Y = y,
            // Lane j of chunk c is in group (c chunkCodes + j perLane) / GroupSize: groups are powers of two, or one per row.
            GroupShift = gpr == 1 ? 31 : System.Numerics.BitOperations.Log2((uint)w.GroupSize),
        };
        WorkerPool.Shared.For((w.Out + TileRows - 1) / TileRows, ref body, degree);
        return true;
    }

    /// <summary>x into plane order (chunk c, plane m, lane j = x[c chunkCodes + perLane j + m] 2^-(scaleBits m)), zero-padded; false when x is not all finite or all tiny.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool CopyPlanes(float* x, int n, float* xp, int chunks, int perLane, int scaleBits)
    {
        // x * 0 is +-0 for finite x and NaN otherwise: one NaN lane marks a non-finite input.
        var poison = Vector512<float>.Zero;
        int i = 0;
        for (; i + 16 <= n; i += 16) poison += Vector512.Load(x + i) * Vector512<float>.Zero;
        float tail = 0f;
        for (; i < n; i++) tail += x[i] * 0f;
        // Non-finite inputs are declined: folding the zero point would turn an infinity times a zero weight into
        // NaN, where the caller's path reproduces the reference's pattern of NaN and infinity.
        if (!float.IsFinite(Vector512.Sum(poison) + tail)) return false;
        {
            // Scaled copies (x 2^-(bits m), down to 2^-28) of inputs that are all below 2^-90 could turn subnormal and
            // lose bits: declined. One input below 2^-98 beside larger ones loses at most 2^-149 2^28 absolute per unit
            // of code, far below the rounding of a sum holding an input of 2^-90 or more.
            var largest = Vector512<float>.Zero;
            for (i = 0; i + 16 <= n; i += 16) largest = Vector512.Max(largest, Vector512.Abs(Vector512.Load(x + i)));
            float top = 0f;
            for (int k = 0; k < 16; k++) top = Math.Max(top, largest.GetElement(k));
            for (; i < n; i++) top = Math.Max(top, Math.Abs(x[i]));
            if (top < PlaneInputFloor) return false;
        }
        int chunkCodes = 16 * perLane;
        int whole = n / chunkCodes;
        // Lanes 0-7 of plane m are x[perLane j + m], j < 8; lanes 8-15 the same 8 perLane further on.
        var stride = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7) * perLane;
        for (int c = 0; c < whole; c++)
        {
            float* src = x + (nint)c * chunkCodes;
            float* dst = xp + (nint)c * chunkCodes;
            for (int m = 0; m < perLane; m++)
            {
                var f = Vector256.Create(MathF.ScaleB(1f, -scaleBits * m));
                (Avx2.GatherVector256(src + m, stride, 4) * f).Store(dst + m * 16);
                (Avx2.GatherVector256(src + 8 * perLane + m, stride, 4) * f).Store(dst + m * 16 + 8);
            }
        }
        for (int c = whole; c < chunks; c++)
        {
            float* src = x + (nint)c * chunkCodes;
            float* dst = xp + (nint)c * chunkCodes;
            int left = n - c * chunkCodes;
            for (int m = 0; m < perLane; m++)
                for (int j = 0; j < 16; j++)
                {
                    int k = perLane * j + m;
                    dst[m * 16 + j] = k < left ? src[k] * MathF.ScaleB(1f, -scaleBits * m) : 0f;
                }
        }
        return true;
    }

    /// <summary>X_g: the sum of x over each group (16-lane partial sums in index order, then their lane sum, then the rest in order); 16 zeros after the last.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupSums(float* x, int n, int groupSize, int gpr, float* sums)
    {
        for (int g = 0; g < gpr; g++)
        {
            int i = g * groupSize, end = Math.Min(n, i + groupSize);
            float s = 0f;
            if (i + 16 <= end)
            {
                var acc = Vector512.Load(x + i);
                for (i += 16; i + 16 <= end; i += 16) acc += Vector512.Load(x + i);
                s = Vector512.Sum(acc);
            }
            for (; i < end; i++) s += x[i];
            sums[g] = s;
        }
        for (int g = gpr; g < gpr + 16; g++) sums[g] = 0f;
    }

    private struct PlaneBody : IRangeBody
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int Bits, GroupsPerRow, RowBytes, Out, Chunks, GroupShift;
        public float* Xp, GroupSums, Y;

        public readonly void Invoke(int start, int end)
        {
            if (Bits == 8) PlaneRows<Planes8>(this, start, end);
            else PlaneRows<Planes4>(this, start, end);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PlaneRows<TP>(in PlaneBody p, int startTile, int endTile) where TP : struct, IPlanes
    {
        int gpr = p.GroupsPerRow;
        // Scales of the 4 rows, then their -z s; 16 floats of slack after each row's scales for the 16-float loads.
        int stride = gpr + 16;
        var scales = t_scales;
        if (scales is null || scales.Length < 2 * TileRows * stride + 16)
            t_scales = scales = GC.AllocateArray<float>(Math.Max(2 * TileRows * stride + 16, 1024), pinned: true);
        float* sf = (float*)Unsafe.AsPointer(ref scales[0]);
        float* nz = sf + TileRows * stride;
        for (int k = 0; k < TileRows; k++) new Span<float>(sf + k * stride + gpr, 16).Clear();

        long extent = (long)p.Chunks * 64;
        long total = (long)p.Out * p.RowBytes;
        var stage = t_stage;
        if (stage is null || stage.Length < TileRows * (extent + 64))
            t_stage = stage = GC.AllocateArray<byte>((int)Math.Max(TileRows * (extent + 64), 4096), pinned: true);
        byte* staged = (byte*)Unsafe.AsPointer(ref stage[0]);
        int symmetricZero = 1 << (p.Bits - 1);
        float* result = stackalloc float[TileRows];
        var rowPointers = stackalloc byte*[TileRows];
        // Rows of fewer than 16 groups (In 512 or 768 at g128): a whole tile's scales convert as one stream (its rows'
        // float16 scales are adjacent) instead of RowScales per row, whose call and short tail were more than the row's
        // products (session 17: 2048x512 int4 g128, 1 thread, hot, RowScales 19% of the samples against PlaneTile's 11%).
        // Converted ShortBlockRows rows at a time (s, then -z s, each [rows][gpr] with no gap), so the stream's partial
        // last vector comes once per block, not once per tile.
        bool shortRows = gpr < 16;
        const int ShortBlockRows = 16 * TileRows;
        float* blockScales = stackalloc float[shortRows ? 2 * (ShortBlockRows * 16 + 16) : 1];
        float* blockTerms = blockScales + ShortBlockRows * 16 + 16;
        int blockFirst = int.MinValue;
        var inRow = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(gpr)).AsSingle();
        nint ahead = (nint)TileRows * p.RowBytes * PlanePrefetchTiles;
        for (int tile = startTile; tile < endTile; tile++)
        {
            int r0 = tile * TileRows;
            int rows = Math.Min(TileRows, p.Out - r0);
            for (int k = 0; k < TileRows; k++)
            {
                int r = r0 + Math.Min(k, rows - 1); // a short last tile repeats its last row (computed, not stored)
                byte* row = p.Packed + (nint)r * p.RowBytes;
                if ((long)r * p.RowBytes + extent > total)
                {
                    // The row's last load would pass the array's end: decode from a zero-padded copy.
                    byte* copy = staged + (nint)k * (extent + 64);
                    Buffer.MemoryCopy(row, copy, p.RowBytes, p.RowBytes);
                    new Span<byte>(copy + p.RowBytes, (int)(extent + 64 - p.RowBytes)).Clear();
                    row = copy;
                }
                rowPointers[k] = row;
                if (!shortRows || rows < TileRows)
                    RowScales(p.Scales + (nint)r * gpr, p.Zeros == null ? null : p.Zeros + (nint)r * gpr, symmetricZero, sf + k * stride, nz + k * stride, gpr);
            }
            if (shortRows && rows == TileRows)
            {
                if (r0 >= blockFirst + ShortBlockRows)
                {
                    blockFirst = r0;
                    ShortRowScales(p.Scales + (nint)r0 * gpr, p.Zeros == null ? null : p.Zeros + (nint)r0 * gpr, symmetricZero,
                        blockScales, blockTerms, Math.Min(ShortBlockRows, p.Out - r0) * gpr);
                }
                int at = (r0 - blockFirst) * gpr;
                for (int k = 0; k < TileRows; k++)
                {
                    // Lanes past the row's groups stay the zero slack the 16-float loads read.
                    Vector512.ConditionalSelect(inRow, Vector512.Load(blockScales + at + k * gpr), Vector512<float>.Zero).Store(sf + k * stride);
                    Vector512.Load(blockTerms + at + k * gpr).Store(nz + k * stride);
                }
            }
            PlaneTile<TP>(rowPointers, sf, stride, p.Chunks, p.GroupShift, p.Xp, result, ahead);
            for (int k = 0; k < rows; k++)
                p.Y[r0 + k] = result[k] + ZeroTerm(nz + k * stride, p.GroupSums, gpr);
        }
    }

    /// <summary>
    /// RowScales' values for <paramref name="count"/> consecutive groups (whole rows of fewer than 16 groups): s exactly
    /// from float16, -(z s) one float multiply each, both as 16-lane vectors; 16 floats past the count are written.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ShortRowScales(Half* scales, byte* zeros, int symmetricZero, float* s, float* nz, int count)
    {
        FusedInt8Dot.HalvesToSingle(scales, s, count);
        var zs = Vector512.Create((float)symmetricZero);
        for (int g = 0; g < count; g += 16)
        {
            Vector512<float> z;
            if (zeros == null) z = zs;
            else if (g + 16 <= count) z = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(zeros + g)));
            else
            {
                // The last partial vector's zero points from a padded copy (a load of 16 could pass the array's end).
                var padded = Vector128<byte>.Zero;
                for (int i = 0; g + i < count; i++) ((byte*)&padded)[i] = zeros[g + i];
                z = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(padded));
            }
            (-(z * Vector512.Load(s + g))).Store(nz + g);
        }
    }

    /// <summary>sum_g nz_g X_g: 16 groups per vector lane-wise, the lane sum, then the remaining groups in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ZeroTerm(float* nz, float* sums, int gpr)
    {
        int g = 0;
        float t = 0f;
        if (gpr >= 16)
        {
            var acc = Vector512.Load(nz) * Vector512.Load(sums);
            for (g = 16; g + 16 <= gpr; g += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.Load(nz + g), Vector512.Load(sums + g), acc);
            t = Vector512.Sum(acc);
        }
        for (; g < gpr; g++) t = MathF.FusedMultiplyAdd(nz[g], sums[g], t);
        return t;
    }

    /// <summary>How one bit width's chunk splits into planes.</summary>
    private interface IPlanes
    {
        /// <summary>Codes per dword (planes per chunk): 8 for 4-bit codes, 4 for 8-bit ones.</summary>
        static abstract int PerLane { get; }
    }

    private struct Planes4 : IPlanes { public static int PerLane => 8; }

    // 8 bits: dword j of a 64-byte load holds codes 4 j .. 4 j + 3; plane m keeps byte m in place (q 2^(8 m), exact).
    private struct Planes8 : IPlanes { public static int PerLane => 4; }

    /// <summary>Smallest largest-|x| the scaled copy accepts: 2^-90 (x 2^-28 stays normal with margin).</summary>
    private const float PlaneInputFloor = 8.077936e-28f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> CPlane(Vector512<uint> v, Vector512<uint> mask) => Avx512F.ConvertToVector512Single(v & mask);

    /// <summary>One plane of four rows: a_k += (v_k &amp; mask) x (vpandd, vcvtudq2ps, FMA each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Plane(Vector512<uint> v0, Vector512<uint> v1, Vector512<uint> v2, Vector512<uint> v3, Vector512<uint> mask, float* xc,
        ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        var xv = Vector512.Load(xc);
        a0 = Vector512.FusedMultiplyAdd(CPlane(v0, mask), xv, a0); a1 = Vector512.FusedMultiplyAdd(CPlane(v1, mask), xv, a1);
        a2 = Vector512.FusedMultiplyAdd(CPlane(v2, mask), xv, a2); a3 = Vector512.FusedMultiplyAdd(CPlane(v3, mask), xv, a3);
    }

    /// <summary>Four rows' dot products with the plane-ordered inputs, group scales applied per chunk; result[k] = row k's sum_g s_g (q . x)_g.</summary>
    /// <remarks>
    /// The plane masks live in registers for the whole loop (locals made before it): written inside the loop as
    /// constants, the JIT reloaded each with a vbroadcastss per plane and chunk; hoisted, the loop ran 1.08x faster from
    /// L2 (int4-g64, 1 thread, thread CPU time, 5.92 -> 5.45 ns per 64 weight bytes, load 28; --quick f32act --hot).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PlaneTile<TP>(byte** rows, float* sf, int stride, int chunks, int groupShift, float* xp, float* result, nint ahead)
        where TP : struct, IPlanes
    {
        byte* p0 = rows[0], p1 = rows[1], p2 = rows[2], p3 = rows[3];
        float* s0 = sf, s1 = sf + stride, s2 = s1 + stride, s3 = s2 + stride;
        int perLane = TP.PerLane, chunkCodes = 16 * perLane, planeBits = 32 / perLane;
        // Lane j's group, relative to the chunk's first: (perLane j) >> groupShift (0 for groups of a chunk or more).
        var laneGroup = Vector512.ShiftRightLogical(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * perLane, Math.Min(groupShift, 31));
        var m0 = Vector512.Create((1u << planeBits) - 1);
        var m1 = m0 << planeBits; var m2 = m1 << planeBits; var m3 = m2 << planeBits;
        var m4 = m3 << planeBits; var m5 = m4 << planeBits; var m6 = m5 << planeBits; var m7 = m6 << planeBits; // 4-bit planes only
        var t0 = Vector512<float>.Zero; var t1 = t0; var t2 = t0; var t3 = t0;
        for (nint c = 0; c < chunks; c++)
        {
            nint o = c * 64;
            Sse.Prefetch1(p0 + o + ahead); Sse.Prefetch1(p1 + o + ahead); Sse.Prefetch1(p2 + o + ahead); Sse.Prefetch1(p3 + o + ahead);
            var v0 = Vector512.Load((uint*)(p0 + o)); var v1 = Vector512.Load((uint*)(p1 + o));
            var v2 = Vector512.Load((uint*)(p2 + o)); var v3 = Vector512.Load((uint*)(p3 + o));
            float* xc = xp + c * chunkCodes;
            var xv = Vector512.Load(xc);
            var a0 = CPlane(v0, m0) * xv; var a1 = CPlane(v1, m0) * xv; var a2 = CPlane(v2, m0) * xv; var a3 = CPlane(v3, m0) * xv;
            Plane(v0, v1, v2, v3, m1, xc + 16, ref a0, ref a1, ref a2, ref a3);
            Plane(v0, v1, v2, v3, m2, xc + 32, ref a0, ref a1, ref a2, ref a3);
            Plane(v0, v1, v2, v3, m3, xc + 48, ref a0, ref a1, ref a2, ref a3);
            if (TP.PerLane > 4)
            {
                Plane(v0, v1, v2, v3, m4, xc + 64, ref a0, ref a1, ref a2, ref a3);
                Plane(v0, v1, v2, v3, m5, xc + 80, ref a0, ref a1, ref a2, ref a3);
                Plane(v0, v1, v2, v3, m6, xc + 96, ref a0, ref a1, ref a2, ref a3);
                Plane(v0, v1, v2, v3, m7, xc + 112, ref a0, ref a1, ref a2, ref a3);
            }
            nint g = (nint)(((long)c * chunkCodes) >> groupShift);
            t0 = Vector512.FusedMultiplyAdd(a0, Avx512F.PermuteVar16x32(Vector512.Load(s0 + g), laneGroup), t0);
            t1 = Vector512.FusedMultiplyAdd(a1, Avx512F.PermuteVar16x32(Vector512.Load(s1 + g), laneGroup), t1);
            t2 = Vector512.FusedMultiplyAdd(a2, Avx512F.PermuteVar16x32(Vector512.Load(s2 + g), laneGroup), t2);
            t3 = Vector512.FusedMultiplyAdd(a3, Avx512F.PermuteVar16x32(Vector512.Load(s3 + g), laneGroup), t3);
        }
        result[0] = Vector512.Sum(t0); result[1] = Vector512.Sum(t1); result[2] = Vector512.Sum(t2); result[3] = Vector512.Sum(t3);
    }
}
