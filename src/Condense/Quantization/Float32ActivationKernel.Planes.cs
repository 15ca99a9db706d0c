using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;

namespace Condense.Quantization;

/// <summary>
/// The batch-1 path for 4- and 8-bit codes with AVX-512 ("bit planes"): no per-code shuffle, shift or table lookup.
/// </summary>
/// <remarks>
/// <para>A 64-byte load of a row holds 16 dwords; dword j holds the codes L j .. L j + L - 1 (L = 32 / bits codes per
/// dword, little-endian, low bits first). Plane m of the chunk is each lane's m-th code, decoded in place: for a code
/// at bits p..p + bits - 1 with p + bits &lt;= 23, one vpternlogd forms (dword &amp; mask) | bits(2^(23 - p)), the float
/// 2^(23 - p) + q, and one vsubps of 2^(23 - p) leaves q exactly; codes above bit 19 (4-bit) or 15 (8-bit) are shifted
/// down once per chunk first. The inputs are copied once per call into plane order (chunk c, plane m, lane j =
/// x[c 16 L + L j + m]), so plane m's products are q x. Per 16 codes and row: vpternlogd, vsubps, one FMA; per chunk
/// and row one 64-byte load, a prefetch of the same columns one row tile ahead, one vpermps and one FMA for the scales.</para>
/// <para>The zero point is folded into the inputs: y = sum_g s_g (q . x)_g + sum_g (-z_g s_g) X_g, with X_g the group
/// sums of x. Summation order (fixed, so results do not depend on the thread count): per chunk, each row's plane
/// products are summed lane-wise (plane 0 first, by FMA), multiplied by the lanes' group scales (one vpermps of the
/// row's scales: every lane's codes lie in one group, since every supported group size is a multiple of L) and added
/// into the row's total vector (FMA), chunk by chunk; the total's 16 lanes are summed (Vector512.Sum); then the
/// zero-point term is added: sum_g (-z_g s_g) X_g, 16 groups per lane lane-wise in group order, their lane sum, then
/// the remaining groups in order; X_g itself is a 16-lane sum over the group in index order, then the lane sum, then
/// the group's leftover inputs. Rounding: the products q x are exact; the sums round as a float32 dot product of the
/// terms s q x and s z X_g, so the error is relative to sum |s| (q + z) |x| rather than sum |s (q - z) x|: within
/// float32 rounding of the float64 reference (the peers check allows 1e-4 of max |y|; measured 2.4e-7).</para>
/// <para>Non-finite inputs are declined (the decode-to-weights kernel runs): folding z would turn an infinity times a zero
/// weight into NaN.</para>
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

    private static bool BitPlanesApply(in PackedWeightView w, int batch, int width) =>
        BitPlanes && batch == 1 && width == 512 && (w.Bits == 4 || w.Bits == 8) && Avx512F.IsSupported;

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
        if (!CopyPlanes(x, w.In, xp, chunks, perLane)) return false;
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

    /// <summary>x into plane order (chunk c, plane m, lane j = x[c chunkCodes + perLane j + m]), zero-padded; false when x is not all finite.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool CopyPlanes(float* x, int n, float* xp, int chunks, int perLane)
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
                Avx2.GatherVector256(src + m, stride, 4).Store(dst + m * 16);
                Avx2.GatherVector256(src + 8 * perLane + m, stride, 4).Store(dst + m * 16 + 8);
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
                    dst[m * 16 + j] = k < left ? src[k] : 0f;
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
            if (Bits == 4) PlaneRows<Planes4>(this, start, end);
            else PlaneRows<Planes8>(this, start, end);
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
                RowScales(p.Scales + (nint)r * gpr, p.Zeros == null ? null : p.Zeros + (nint)r * gpr, symmetricZero, sf + k * stride, nz + k * stride, gpr);
            }
            PlaneTile<TP>(rowPointers, sf, stride, p.Chunks, p.GroupShift, p.Xp, result, ahead);
            for (int k = 0; k < rows; k++)
                p.Y[r0 + k] = result[k] + ZeroTerm(nz + k * stride, p.GroupSums, gpr);
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
        /// <summary>Codes per dword (planes per chunk).</summary>
        static abstract int PerLane { get; }
        /// <summary>The chunk's plane products q x summed per lane (plane 0 first).</summary>
        static abstract void Dot(Vector512<uint> v0, Vector512<uint> v1, Vector512<uint> v2, Vector512<uint> v3, float* xc,
            out Vector512<float> a0, out Vector512<float> a1, out Vector512<float> a2, out Vector512<float> a3);
    }

    /// <summary>
    /// The codes at bits 4k..4k+3 (or 8k..8k+7) of each lane, 4k + width &lt;= 23, as exact floats: (v &amp; mask) | bits
    /// of 2^(23 - 4k) is the float 2^(23 - 4k) + q (q fills the low mantissa bits), and subtracting 2^(23 - 4k) is exact.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Plane(Vector512<uint> v, Vector512<uint> mask, Vector512<float> magic) =>
        Avx512F.TernaryLogic(v, mask, magic.AsUInt32(), 0xEA).AsSingle() - magic; // 0xEA: (a & b) | c

    /// <summary>One plane of four rows: the codes at one position times one input vector, added to each row's sum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Plane4(Vector512<uint> v0, Vector512<uint> v1, Vector512<uint> v2, Vector512<uint> v3, uint mask, float magic, float* xc,
        ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        var m = Vector512.Create(mask);
        var f = Vector512.Create(magic);
        var xv = Vector512.Load(xc);
        a0 = Vector512.FusedMultiplyAdd(Plane(v0, m, f), xv, a0); a1 = Vector512.FusedMultiplyAdd(Plane(v1, m, f), xv, a1);
        a2 = Vector512.FusedMultiplyAdd(Plane(v2, m, f), xv, a2); a3 = Vector512.FusedMultiplyAdd(Plane(v3, m, f), xv, a3);
    }

    // 2^23, 2^19, 2^15, 2^11, 2^7: the magic numbers of bit positions 0, 4, 8, 12, 16.
    private const float Magic0 = 8388608f, Magic4 = 524288f, Magic8 = 32768f, Magic12 = 2048f, Magic16 = 128f;

    private struct Planes4 : IPlanes
    {
        public static int PerLane => 8;

        // Codes 0-4 of a dword sit at bits 0-19; codes 5-7 (bits 20-31, past the mantissa) are first shifted down 12.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dot(Vector512<uint> v0, Vector512<uint> v1, Vector512<uint> v2, Vector512<uint> v3, float* xc,
            out Vector512<float> a0, out Vector512<float> a1, out Vector512<float> a2, out Vector512<float> a3)
        {
            var m = Vector512.Create(0xFu);
            var f = Vector512.Create(Magic0);
            var xv = Vector512.Load(xc);
            a0 = Plane(v0, m, f) * xv; a1 = Plane(v1, m, f) * xv; a2 = Plane(v2, m, f) * xv; a3 = Plane(v3, m, f) * xv;
            Plane4(v0, v1, v2, v3, 0xF0u, Magic4, xc + 16, ref a0, ref a1, ref a2, ref a3);
            Plane4(v0, v1, v2, v3, 0xF00u, Magic8, xc + 32, ref a0, ref a1, ref a2, ref a3);
            Plane4(v0, v1, v2, v3, 0xF000u, Magic12, xc + 48, ref a0, ref a1, ref a2, ref a3);
            Plane4(v0, v1, v2, v3, 0xF0000u, Magic16, xc + 64, ref a0, ref a1, ref a2, ref a3);
            v0 = Vector512.ShiftRightLogical(v0, 12); v1 = Vector512.ShiftRightLogical(v1, 12);
            v2 = Vector512.ShiftRightLogical(v2, 12); v3 = Vector512.ShiftRightLogical(v3, 12);
            Plane4(v0, v1, v2, v3, 0xF00u, Magic8, xc + 80, ref a0, ref a1, ref a2, ref a3);
            Plane4(v0, v1, v2, v3, 0xF000u, Magic12, xc + 96, ref a0, ref a1, ref a2, ref a3);
            Plane4(v0, v1, v2, v3, 0xF0000u, Magic16, xc + 112, ref a0, ref a1, ref a2, ref a3);
        }
    }

    private struct Planes8 : IPlanes
    {
        public static int PerLane => 4;

        // Bytes 0-1 at bits 0-15; bytes 2-3 shifted down 16 first.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Dot(Vector512<uint> v0, Vector512<uint> v1, Vector512<uint> v2, Vector512<uint> v3, float* xc,
            out Vector512<float> a0, out Vector512<float> a1, out Vector512<float> a2, out Vector512<float> a3)
        {
            var m = Vector512.Create(0xFFu);
            var f = Vector512.Create(Magic0);
            var xv = Vector512.Load(xc);
            a0 = Plane(v0, m, f) * xv; a1 = Plane(v1, m, f) * xv; a2 = Plane(v2, m, f) * xv; a3 = Plane(v3, m, f) * xv;
            Plane4(v0, v1, v2, v3, 0xFF00u, Magic8, xc + 16, ref a0, ref a1, ref a2, ref a3);
            v0 = Vector512.ShiftRightLogical(v0, 16); v1 = Vector512.ShiftRightLogical(v1, 16);
            v2 = Vector512.ShiftRightLogical(v2, 16); v3 = Vector512.ShiftRightLogical(v3, 16);
            Plane4(v0, v1, v2, v3, 0xFFu, Magic0, xc + 32, ref a0, ref a1, ref a2, ref a3);
            Plane4(v0, v1, v2, v3, 0xFF00u, Magic8, xc + 48, ref a0, ref a1, ref a2, ref a3);
        }
    }

    /// <summary>Four rows' dot products with the plane-ordered inputs, group scales applied per chunk; result[k] = row k's sum_g s_g (q . x)_g.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PlaneTile<TP>(byte** rows, float* sf, int stride, int chunks, int groupShift, float* xp, float* result, nint ahead)
        where TP : struct, IPlanes
    {
        byte* p0 = rows[0], p1 = rows[1], p2 = rows[2], p3 = rows[3];
        float* s0 = sf, s1 = sf + stride, s2 = s1 + stride, s3 = s2 + stride;
        int perLane = TP.PerLane, chunkCodes = 16 * perLane;
        // Lane j's group, relative to the chunk's first: (perLane j) >> groupShift (0 for groups of a chunk or more).
        var laneGroup = Vector512.ShiftRightLogical(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * perLane, Math.Min(groupShift, 31));
        var t0 = Vector512<float>.Zero; var t1 = t0; var t2 = t0; var t3 = t0;
        for (nint c = 0; c < chunks; c++)
        {
            nint o = c * 64;
            Sse.Prefetch0(p0 + o + ahead); Sse.Prefetch0(p1 + o + ahead); Sse.Prefetch0(p2 + o + ahead); Sse.Prefetch0(p3 + o + ahead);
            TP.Dot(Vector512.Load((uint*)(p0 + o)), Vector512.Load((uint*)(p1 + o)), Vector512.Load((uint*)(p2 + o)), Vector512.Load((uint*)(p3 + o)),
                xp + c * chunkCodes, out var a0, out var a1, out var a2, out var a3);
            nint g = (nint)(((long)c * chunkCodes) >> groupShift);
            t0 = Vector512.FusedMultiplyAdd(a0, Avx512F.PermuteVar16x32(Vector512.Load(s0 + g), laneGroup), t0);
            t1 = Vector512.FusedMultiplyAdd(a1, Avx512F.PermuteVar16x32(Vector512.Load(s1 + g), laneGroup), t1);
            t2 = Vector512.FusedMultiplyAdd(a2, Avx512F.PermuteVar16x32(Vector512.Load(s2 + g), laneGroup), t2);
            t3 = Vector512.FusedMultiplyAdd(a3, Avx512F.PermuteVar16x32(Vector512.Load(s3 + g), laneGroup), t3);
        }
        result[0] = Vector512.Sum(t0); result[1] = Vector512.Sum(t1); result[2] = Vector512.Sum(t2); result[3] = Vector512.Sum(t3);
    }
}
