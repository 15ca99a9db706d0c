using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// Batch 1 of <see cref="FusedInt8Dot"/>: one weight row at a time in a small register-only loop (no batch tile to
/// keep alive), several float accumulators so the FMA latency does not bound a unit's throughput, walking pointers
/// and a software prefetch ahead of the loads, and the zero-point correction of the row reduced while its scales
/// are converted.
/// </summary>
internal static unsafe partial class FusedInt8Dot
{
    [ThreadStatic] private static float[]? t_gemvScratch;

    /// <summary>
    /// Software prefetch distance of the batch-1 and batched loops: about 6 KB ahead of the loads (it crosses the 4 KB
    /// pages the hardware streamer stops at); cold S2 calls ran 8-23% faster with it at batch 1 (4-8 KB all helped), and
    /// the compute-heavier batches 4-16 about 1.3-1.6x faster (int4-g64: batch 8 from 3.9x to 2.2-2.5x its batch-1 time).
    /// </summary>
    private const int PrefetchAhead = 6144;

    /// <summary>Prefetches the lines <paramref name="bytes"/> (64 to 256) ahead of a loop step reading from p.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchStep(byte* p, int bytes)
    {
        Sse.Prefetch0(p + PrefetchAhead);
        if (bytes > 64) Sse.Prefetch0(p + PrefetchAhead + 64);
        if (bytes > 128) Sse.Prefetch0(p + PrefetchAhead + 128);
        if (bytes > 192) Sse.Prefetch0(p + PrefetchAhead + 192);
    }

    /// <summary>
    /// Weight rows per pass of the batch-1 loop: the activation loads, the loop and address arithmetic, the prefetches'
    /// issue and the final horizontal sums are shared by 4 rows, and the 4 rows' integer and float chains are independent
    /// work for the out-of-order core. Row blocks handed to threads are multiples of it (<see cref="RowBlock"/>).
    /// </summary>
    internal const int GemvRows = 4;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Gemv<TDecode>(in Args a, int start, int end) where TDecode : struct, IDecode
    {
        int gpr = a.GroupsPerRow, stride = a.GroupStride;
        // Per row of a block: its scales (GroupStride + 16: a permute reads up to 15 floats past the last group), then
        // a zero-padded copy of the row's end (64 floats = 256 bytes).
        int rowFloats = stride + 16 + 64;
        int need = GemvRows * rowFloats + 16;
        var scratch = t_gemvScratch;
        if (scratch is null || scratch.Length < need)
            t_gemvScratch = scratch = GC.AllocateArray<float>(Math.Max(need, 1024), pinned: true);
        float* sf = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        new Span<float>(sf, GemvRows * rowFloats).Clear();

        int unitCodes = 64 * TDecode.Parts, log2U = System.Numerics.BitOperations.Log2((uint)unitCodes);
        int units = a.Padded >> log2U;
        int unitBytes = TDecode.UnitBytes, loadBytes = TDecode.LoadBytes, rowBytes = a.RowBytes;
        // Units whose load stays inside the row read it in place; the rest read the zero-padded copy of the row's end.
        int fullUnits = rowBytes < loadBytes ? 0 : Math.Min(units, (rowBytes - loadBytes) / unitBytes + 1);
        // A row followed by another may also read into it: the extra bytes are codes past In (zero activations) or
        // bits the decode masks off, so no copy of the row's end is needed (3-bit rows of 4096 codes: 31 of 32 units).
        int spillUnits = 2 * rowBytes < loadBytes ? 0 : Math.Max(fullUnits, Math.Min(units, (2 * rowBytes - loadBytes) / unitBytes + 1));

        bool perRow = gpr == 1;
        int log2G = perRow ? 31 : System.Numerics.BitOperations.Log2((uint)a.GroupSize);
        bool permute = !perRow && a.GroupSize < unitCodes;
        int* indices = stackalloc int[8 * 16 + 16];
        indices = (int*)(((nint)indices + 63) & ~(nint)63);
        if (permute) PermuteIndices(log2U - log2G, indices);
        // Units per integer accumulation: a group, or 4096 units of a per-row group (far below int32 overflow).
        int span = permute ? 1 : perRow ? 4096 : a.GroupSize >> log2U;
        int symmetricZero = 1 << (a.Bits - 1);
        bool vnni = UsesVnni(a.Bits, a.Batch, a.GroupSize, gpr);
        float rowScale = a.RowScale[0];

        if (vnni)
        {
            byte* tail = (byte*)(sf + stride + 16);
            for (int r = start; r < end; r++)
            {
                byte* row = a.Packed + (nint)r * rowBytes;
                float correction = ScaleRow(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr,
                    symmetricZero - a.CodeOffset, a.CodeOffset, sf, a.GroupSums, gpr);
                int full = r + 1 < a.Out ? spillUnits : fullUnits;
                int tailBytes = rowBytes - full * unitBytes;
                if (full < units && tailBytes > 0) Buffer.MemoryCopy(row + full * unitBytes, tail, 256, tailBytes);
                float dot = DotVnni8(row, tail, full, units, a.Q, sf, perRow ? 8192 : a.GroupSize >> 5, perRow);
                a.Y[r] = rowScale * (dot - correction);
            }
            return;
        }

        // One pass's rows: packed rows, the zero-padded copies of their ends, float32 scales.
        byte** rows = stackalloc byte*[GemvRows];
        byte** tails = stackalloc byte*[GemvRows];
        float** scales = stackalloc float*[GemvRows];
        float* corrections = stackalloc float[GemvRows];
        float* dots = stackalloc float[GemvRows];
        for (int r0 = start; r0 < end; r0 += GemvRows)
        {
            // A block past the last row repeats it (its results are not stored): every row runs the same code, so a
            // row's bits do not depend on the block or thread it falls in.
            int full = units;
            for (int k = 0; k < GemvRows; k++)
            {
                int r = Math.Min(r0 + k, end - 1);
                full = Math.Min(full, r + 1 < a.Out ? spillUnits : fullUnits);
                float* rowScales = sf + (nint)k * rowFloats;
                scales[k] = rowScales;
                rows[k] = a.Packed + (nint)r * rowBytes;
                tails[k] = (byte*)(rowScales + stride + 16);
                corrections[k] = ScaleRow(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr,
                    symmetricZero - a.CodeOffset, a.CodeOffset, rowScales, a.GroupSums, gpr);
            }
            int tailBytes = rowBytes - full * unitBytes;
            if (full < units && tailBytes > 0)
                for (int k = 0; k < GemvRows; k++) Buffer.MemoryCopy(rows[k] + full * unitBytes, tails[k], 256, tailBytes);
            if (permute) Dot4Permuted<TDecode>(rows, tails, scales, full, units, a.Q, indices, log2U, log2G, rowBytes, dots);
            else Dot4Spans<TDecode>(rows, tails, scales, full, units, a.Q, span, perRow, log2U, rowBytes, dots);
            for (int k = 0; k < GemvRows && r0 + k < end; k++) a.Y[r0 + k] = rowScale * (dots[k] - corrections[k]);
        }
    }

    /// <summary>
    /// Prefetch distance of the batch-1 pass: the same place in the next block of <see cref="GemvRows"/> rows, so
    /// every line of the 4 row streams is requested one pass ahead; into L2 only when that is more than 16 KB (rows
    /// of more than 4 KB), which would crowd the 32 KB L1.
    /// </summary>
    private static nint GemvPrefetch(int rowBytes) => (nint)GemvRows * rowBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRows(byte* p0, byte* p1, byte* p2, byte* p3, nint ahead, bool toL1)
    {
        if (toL1)
        {
            Sse.Prefetch0(p0 + ahead);
            Sse.Prefetch0(p1 + ahead);
            Sse.Prefetch0(p2 + ahead);
            Sse.Prefetch0(p3 + ahead);
        }
        else
        {
            Sse.Prefetch1(p0 + ahead);
            Sse.Prefetch1(p1 + ahead);
            Sse.Prefetch1(p2 + ahead);
            Sse.Prefetch1(p3 + ahead);
        }
    }

    /// <summary>One unit's activations, loaded once for the 4 rows (8 bits: also negated, for the sign trick).</summary>
    private struct UnitInputs
    {
        public Vector512<sbyte> X0, NegX0, X1, X2, X3;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static UnitInputs Load<TDecode>(sbyte* x) where TDecode : struct, IDecode
        {
            UnitInputs v = default;
            v.X0 = Vector512.Load(x);
            if (TDecode.Signed) v.NegX0 = -v.X0;
            if (TDecode.Parts > 1) v.X1 = Vector512.Load(x + 64);
            if (TDecode.Parts > 2)
            {
                v.X2 = Vector512.Load(x + 128);
                v.X3 = Vector512.Load(x + 192);
            }
            return v;
        }
    }

    /// <summary>The 16 int32 lane sums of one row's unit at p times the unit's activations.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> RowLanes<TDecode>(byte* p, in UnitInputs x, Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2,
        Vector512<byte> c3, Vector512<short> ones) where TDecode : struct, IDecode
    {
        TDecode.Decode(p, c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
        var v0 = x.X0;
        // 8 bits: w0 = |u - 128|, w1 = u - 128 (its sign moves onto the input).
        if (TDecode.Signed) v0 = Vector512.ConditionalSelect(Vector512.LessThan(w1.AsSByte(), Vector512<sbyte>.Zero), x.NegX0, x.X0);
        var s = Avx512BW.MultiplyAddAdjacent(w0, v0);
        if (TDecode.Parts > 1) s += Avx512BW.MultiplyAddAdjacent(w1, x.X1);
        if (TDecode.Parts > 2)
        {
            s += Avx512BW.MultiplyAddAdjacent(w2, x.X2);
            s += Avx512BW.MultiplyAddAdjacent(w3, x.X3);
        }
        return Avx512BW.MultiplyAddAdjacent(s, ones);
    }

    /// <summary>The 4 rows' float sums: halves added, then three horizontal adds leave row k in lane k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Reduce4(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, float* result)
    {
        var h0 = a0.GetLower() + a0.GetUpper();
        var h1 = a1.GetLower() + a1.GetUpper();
        var h2 = a2.GetLower() + a2.GetUpper();
        var h3 = a3.GetLower() + a3.GetUpper();
        var v = Avx.HorizontalAdd(Avx.HorizontalAdd(h0, h1), Avx.HorizontalAdd(h2, h3));
        (v.GetLower() + v.GetUpper()).Store(result);
    }

    /// <summary>
    /// Groups of one or more whole units, 4 rows per pass: each row's integer lanes accumulate over the group and are
    /// scaled once by a broadcast (one unit per group: straight into the float accumulator).
    /// </summary>
    // Not inlined: no call inside, so the JIT keeps every vector in a register (SysV has no callee-saved vectors).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Spans<TDecode>(byte** rows, byte** tails, float** scales, int fullUnits, int units, sbyte* x,
        int span, bool perRow, int log2U, int rowBytes, float* result) where TDecode : struct, IDecode
    {
        var ones = Vector512.Create((short)1);
        TDecode.Constants(out var c0, out var c1, out var c2, out var c3);
        byte* p0 = rows[0], p1 = rows[1], p2 = rows[2], p3 = rows[3];
        float* s0 = scales[0], s1 = scales[1], s2 = scales[2], s3 = scales[3];
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        nint ub = TDecode.UnitBytes, xStep = (nint)1 << log2U, ahead = GemvPrefetch(rowBytes);
        bool toL1 = ahead <= 16384;
        int u = 0, g = 0;
        if (span == 1)
        {
            // One unit per group: no integer accumulation; walking pointers keep the scalar work per step to a few adds.
            nint off = 0;
            sbyte* xs = x;
            for (; u < fullUnits; u++, off += ub, xs += xStep)
            {
                PrefetchRows(p0 + off, p1 + off, p2 + off, p3 + off, ahead, toL1);
                var xv = UnitInputs.Load<TDecode>(xs);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p0 + off, xv, c0, c1, c2, c3, ones)), Vector512.Create(s0[u]), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p1 + off, xv, c0, c1, c2, c3, ones)), Vector512.Create(s1[u]), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p2 + off, xv, c0, c1, c2, c3, ones)), Vector512.Create(s2[u]), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p3 + off, xv, c0, c1, c2, c3, ones)), Vector512.Create(s3[u]), a3);
            }
            g = u;
        }
        else
        {
            for (; u + span <= fullUnits; g++)
            {
                var i0 = Vector512<int>.Zero;
                var i1 = Vector512<int>.Zero;
                var i2 = Vector512<int>.Zero;
                var i3 = Vector512<int>.Zero;
                nint off = u * ub;
                sbyte* xs = x + ((nint)u << log2U);
                for (int e = u + span; u < e; u++, off += ub, xs += xStep)
                {
                    PrefetchRows(p0 + off, p1 + off, p2 + off, p3 + off, ahead, toL1);
                    var xv = UnitInputs.Load<TDecode>(xs);
                    i0 += RowLanes<TDecode>(p0 + off, xv, c0, c1, c2, c3, ones);
                    i1 += RowLanes<TDecode>(p1 + off, xv, c0, c1, c2, c3, ones);
                    i2 += RowLanes<TDecode>(p2 + off, xv, c0, c1, c2, c3, ones);
                    i3 += RowLanes<TDecode>(p3 + off, xv, c0, c1, c2, c3, ones);
                }
                nint gi = perRow ? 0 : g;
                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i0), Vector512.Create(s0[gi]), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i1), Vector512.Create(s1[gi]), a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i2), Vector512.Create(s2[gi]), a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i3), Vector512.Create(s3[gi]), a3);
            }
        }
        // The rest: units read from the rows or from the zero-padded copies of their ends.
        for (; u < units; g++)
        {
            var i0 = Vector512<int>.Zero;
            var i1 = Vector512<int>.Zero;
            var i2 = Vector512<int>.Zero;
            var i3 = Vector512<int>.Zero;
            for (int e = Math.Min(units, u + span); u < e; u++)
            {
                var xv = UnitInputs.Load<TDecode>(x + ((nint)u << log2U));
                i0 += RowLanes<TDecode>(UnitAt(p0, tails[0], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones);
                i1 += RowLanes<TDecode>(UnitAt(p1, tails[1], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones);
                i2 += RowLanes<TDecode>(UnitAt(p2, tails[2], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones);
                i3 += RowLanes<TDecode>(UnitAt(p3, tails[3], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones);
            }
            nint gi = perRow ? 0 : g;
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i0), Vector512.Create(s0[gi]), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i1), Vector512.Create(s1[gi]), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i2), Vector512.Create(s2[gi]), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i3), Vector512.Create(s3[gi]), a3);
        }
        Reduce4(a0, a1, a2, a3, result);
    }

    /// <summary>
    /// Groups smaller than a unit, 4 rows per pass: each unit's 16 lanes take their groups' scales through one permute
    /// of the aligned 16-scale block holding them (no load split across cache lines), the index shared by the rows.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void Dot4Permuted<TDecode>(byte** rows, byte** tails, float** scales, int fullUnits, int units, sbyte* x,
        int* indices, int log2U, int log2G, int rowBytes, float* result) where TDecode : struct, IDecode
    {
        var ones = Vector512.Create((short)1);
        TDecode.Constants(out var c0, out var c1, out var c2, out var c3);
        byte* p0 = rows[0], p1 = rows[1], p2 = rows[2], p3 = rows[3];
        float* s0 = scales[0], s1 = scales[1], s2 = scales[2], s3 = scales[3];
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        nint ub = TDecode.UnitBytes, xStep = (nint)1 << log2U, ahead = GemvPrefetch(rowBytes);
        bool toL1 = ahead <= 16384;
        int shift = log2U - log2G, cycleMask = PermuteCycle(shift) - 1;
        int u = 0;
        nint off = 0;
        sbyte* xs = x;
        for (; u < fullUnits; u++, off += ub, xs += xStep)
        {
            PrefetchRows(p0 + off, p1 + off, p2 + off, p3 + off, ahead, toL1);
            var xv = UnitInputs.Load<TDecode>(xs);
            var ix = Vector512.Load(indices + ((u & cycleMask) << 4));
            nint blockAt = ((nint)u << shift) & ~(nint)15;
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p0 + off, xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s0 + blockAt), ix), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p1 + off, xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s1 + blockAt), ix), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p2 + off, xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s2 + blockAt), ix), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(p3 + off, xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s3 + blockAt), ix), a3);
        }
        for (; u < units; u++)
        {
            var xv = UnitInputs.Load<TDecode>(x + ((nint)u << log2U));
            var ix = Vector512.Load(indices + ((u & cycleMask) << 4));
            nint blockAt = ((nint)u << shift) & ~(nint)15;
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(UnitAt(p0, tails[0], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s0 + blockAt), ix), a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(UnitAt(p1, tails[1], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s1 + blockAt), ix), a1);
            a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(UnitAt(p2, tails[2], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s2 + blockAt), ix), a2);
            a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(RowLanes<TDecode>(UnitAt(p3, tails[3], fullUnits, u, (int)ub), xv, c0, c1, c2, c3, ones)), Avx512F.PermuteVar16x32(Vector512.Load(s3 + blockAt), ix), a3);
        }
        Reduce4(a0, a1, a2, a3, result);
    }

    /// <summary>
    /// True when 8-bit codes take 256-bit vpdpbusd: unsigned codes times signed inputs summed in int32 without
    /// saturation, so no |u - 128| sign trick and no widening step (groups of 32 codes or more, batch 1).
    /// </summary>
    public static bool UsesVnni(int bits, int batch, int groupSize, int groupsPerRow) =>
        bits == 8 && batch == 1 && AvxVnni.IsSupported && (groupsPerRow == 1 || groupSize >= 32);

    /// <summary>What the kernel subtracts from 8-bit codes (128 for the |u - 128| sign trick, else 0).</summary>
    public static int CodeOffset(int bits, int batch, int groupSize, int groupsPerRow) =>
        bits == 8 && !UsesVnni(bits, batch, groupSize, groupsPerRow) ? 128 : 0;

    /// <summary>8 bits with vpdpbusd: each 32-code step's 8 int32 lanes accumulate over the group, scaled once.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float DotVnni8(byte* row, byte* tail, int fullUnits, int units, sbyte* x, float* sf, int stepsPerGroup, bool perRow)
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        var a2 = Vector256<float>.Zero;
        var a3 = Vector256<float>.Zero;
        int steps = 2 * units, fullSteps = 2 * fullUnits;
        int s = 0, g = 0;
        if (stepsPerGroup == 1)
        {
            // One step per group: 4 groups (2 units) per iteration on 4 accumulators; walking pointers keep the
            // scalar work per iteration to a few adds.
            byte* w = row, wEnd = row + (nint)(fullSteps & ~3) * 32;
            sbyte* xs = x;
            float* sc = sf;
            for (; w < wEnd; w += 128, xs += 128, sc += 4)
            {
                PrefetchStep(w, 128);
                var i0 = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Load(w), Vector256.Load(xs));
                var i1 = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Load(w + 32), Vector256.Load(xs + 32));
                var i2 = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Load(w + 64), Vector256.Load(xs + 64));
                var i3 = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Load(w + 96), Vector256.Load(xs + 96));
                a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), Vector256.Create(sc[0]), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), Vector256.Create(sc[1]), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i2), Vector256.Create(sc[2]), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i3), Vector256.Create(sc[3]), a3);
            }
            s = fullSteps & ~3;
            g = s;
        }
        for (; s < steps; s += stepsPerGroup, g++)
        {
            int s1 = Math.Min(steps, s + stepsPerGroup);
            var i0 = Vector256<int>.Zero;
            var i1 = Vector256<int>.Zero;
            int k = s;
            for (; k + 2 <= s1 && k + 2 <= fullSteps; k += 2)
            {
                PrefetchStep(row + (nint)k * 32, 64);
                i0 = AvxVnni.MultiplyWideningAndAdd(i0, Vector256.Load(row + (nint)k * 32), Vector256.Load(x + (nint)k * 32));
                i1 = AvxVnni.MultiplyWideningAndAdd(i1, Vector256.Load(row + (nint)k * 32 + 32), Vector256.Load(x + (nint)k * 32 + 32));
            }
            for (; k < s1; k++)
            {
                byte* w = k < fullSteps ? row + (nint)k * 32 : tail + (nint)(k - fullSteps) * 32;
                i0 = AvxVnni.MultiplyWideningAndAdd(i0, Vector256.Load(w), Vector256.Load(x + (nint)k * 32));
            }
            var product = Vector256.ConvertToSingle(i0 + i1) * Vector256.Create(sf[perRow ? 0 : g]);
            if ((g & 1) == 0) a0 += product; else a1 += product;
        }
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static byte* UnitAt(byte* row, byte* tail, int fullUnits, int u, int unitBytes) =>
        u < fullUnits ? row + (nint)u * unitBytes : tail + (nint)(u - fullUnits) * unitBytes;

    /// <summary>Units per aligned block of 16 scales (2^shift groups per unit), at least 4 so a 4-unit step has 4 index rows.</summary>
    private static int PermuteCycle(int shift) => Math.Max(4, 16 >> shift);

    /// <summary>Row j: lane k of unit u (u mod cycle = j) takes scale (j 2^shift) mod 16 + k 2^shift / 16 of its block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PermuteIndices(int shift, int* indices)
    {
        int cycle = PermuteCycle(shift), groupsPerUnit = 1 << shift;
        for (int j = 0; j < cycle; j++)
            for (int k = 0; k < 16; k++) indices[16 * j + k] = ((j * groupsPerUnit) & 15) + ((k * groupsPerUnit) >> 4);
    }

    /// <summary>
    /// Converts one row's scales to float32 into <paramref name="sf"/> and returns its zero-point correction
    /// sum_g s_g (z_g - offset) Q_g, Q the group sums of the (single) activation row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScaleRow(Half* scales, byte* zeros, int symmetricTerm, int offset, float* sf, float* groupSums, int count)
    {
        int g = 0;
        // float16 to float32: (h & 0x7FFF) << 13 read as float, times 2^112, is exact for normal and subnormal halves;
        // the sign bit moves to bit 31 (symmetric scales may be negative).
        var magic = Vector512.Create(5.192297e33f);
        var mask = Vector512.Create(0x7FFFu);
        var sign = Vector512.Create(0x8000u);
        var off = Vector512.Create(offset);
        var acc = Vector512<float>.Zero;
        for (; g + 16 <= count; g += 16)
        {
            var h = Vector512.WidenLower(Vector256.Load((ushort*)scales + g).ToVector512Unsafe());
            var s = (((h & mask) << 13) | ((h & sign) << 16)).AsSingle() * magic;
            s.Store(sf + g);
            var q = Vector512.Load(groupSums + g);
            if (zeros == null) acc = Vector512.FusedMultiplyAdd(s, q, acc);
            else
            {
                var zb = Vector512.WidenLower(Vector512.WidenLower(Vector128.Load(zeros + g).ToVector256Unsafe().ToVector512Unsafe()));
                acc = Vector512.FusedMultiplyAdd(s * Vector512.ConvertToSingle(zb.AsInt32() - off), q, acc);
            }
        }
        float sum = Vector512.Sum(acc);
        for (; g < count; g++)
        {
            float s = (float)scales[g];
            sf[g] = s;
            sum += zeros == null ? s * groupSums[g] : s * (zeros[g] - offset) * groupSums[g];
        }
        return zeros == null ? symmetricTerm * sum : sum;
    }
}
