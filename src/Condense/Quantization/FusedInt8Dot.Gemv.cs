using Condense.Kernels.Jit;
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Gemv<TDecode>(in Args a, int start, int end) where TDecode : struct, IDecode
    {
        if (a.VnniKernel != 0)
        {
            // 8 and 4 bits with AVX512-VNNI: the emitted vpdpbusd loop (codes unshifted).
            VnniGemv.Run(a, start, end);
            return;
        }
        int gpr = a.GroupsPerRow, stride = a.GroupStride;
        // Row scales (GroupStride + 16: a permute reads up to 15 floats past the last group) then a zero-padded copy
        // of the row's end (64 floats = 256 bytes). Row by row, not ScaleRows' 16-row blocks (the generated loop's):
        // blocks ran cold S1/S2 rows of this loop 10-25% slower in session 9's A/B runs, also with the next block's
        // scales prefetched a row at a time (the cause was not isolated: a 9 KB block of scales beside the weight
        // stream in L1 is the suspect), while the per-row set-up they save is small next to a 2-4 KB row.
        int need = stride + 16 + 64 + 16;
        var scratch = t_gemvScratch;
        if (scratch is null || scratch.Length < need)
            t_gemvScratch = scratch = GC.AllocateArray<float>(Math.Max(need, 1024), pinned: true);
        float* sf = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        byte* tail = (byte*)(sf + stride + 16);
        new Span<float>(sf, stride + 16 + 64).Clear();

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
        // Units per integer accumulation: a group, or 4096 units of a per-row group (far below int32 overflow); 4 bits
        // convert a per-row group every RowSteps units, as the generated loop does, so both give the same bits.
        int span = permute ? 1 : perRow ? (a.Bits == 4 ? Math.Min(VnniGemv.RowSteps, units) : 4096) : a.GroupSize >> log2U;
        int symmetricZero = 1 << (a.Bits - 1);
        bool vnni = UsesVnni(a.Bits, a.Batch, a.GroupSize, gpr);
        float rowScale = a.RowScale[0];

        for (int r = start; r < end; r++)
        {
            byte* row = a.Packed + (nint)r * rowBytes;
            float correction = ScaleRow(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr,
                symmetricZero - a.CodeOffset, a.CodeOffset, sf, a.GroupSums, gpr);
            int full = r + 1 < a.Out ? spillUnits : fullUnits;
            int tailBytes = rowBytes - full * unitBytes;
            if (full < units && tailBytes > 0) Buffer.MemoryCopy(row + full * unitBytes, tail, 256, tailBytes);
            float dot = vnni
                ? DotVnni8(row, tail, full, units, a.Q, sf, perRow ? 8192 : a.GroupSize >> 5, perRow)
                : permute
                ? DotPermuted<TDecode>(row, tail, full, units, a.Q, sf, indices, log2U, log2G)
                : DotSpans<TDecode>(row, tail, full, units, a.Q, sf, span, perRow, log2U);
            a.Y[r] = rowScale * (dot - correction);
        }
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

    /// <summary>
    /// Groups smaller than a unit: each unit's 16 lanes take their groups' scales through one permute of the aligned
    /// 16-scale block holding them (no load split across cache lines), with the index for the unit's place in it.
    /// </summary>
    // Not inlined: no call inside, so the JIT keeps every vector in a register (SysV has no callee-saved vectors).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float DotPermuted<TDecode>(byte* row, byte* tail, int fullUnits, int units, sbyte* x, float* sf,
        int* indices, int log2U, int log2G) where TDecode : struct, IDecode
    {
        var ones = Vector512.Create((short)1);
        TDecode.Constants(out var c0, out var c1, out var c2, out var c3);
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        int ub = TDecode.UnitBytes, shift = log2U - log2G;
        // Index table: PermuteCycle(shift) rows of 16, row j for units u with u mod cycle == j.
        int cycleMask = PermuteCycle(shift) - 1;
        // Units u .. u + 3 (u a multiple of 4) take their scales from blocks base, base + o2, base + o3 with
        // base = (u 2^shift) rounded down to 16 and o_i = (i 2^shift) rounded down to 16; walking pointers for the rest.
        nint o1 = ((nint)1 << shift) & ~(nint)15, o2 = ((nint)2 << shift) & ~(nint)15, o3 = ((nint)3 << shift) & ~(nint)15;
        nint xStep = (nint)1 << log2U;
        byte* w = row, wEnd = row + (nint)(fullUnits & ~3) * ub;
        sbyte* xs = x;
        int u = 0;
        for (; w < wEnd; w += 4 * ub, xs += 4 * xStep, u += 4)
        {
            PrefetchStep(w, 4 * ub);
            int* ix = indices + ((u & cycleMask) << 4);
            float* block = sf + (((nint)u << shift) & ~(nint)15);
            TDecode.Decode(w, c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
            var l0 = Lanes<TDecode>(w0, w1, w2, w3, xs, ones);
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l0), Avx512F.PermuteVar16x32(Vector512.Load(block), Vector512.Load(ix)), a0);
            TDecode.Decode(w + ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
            var l1 = Lanes<TDecode>(w0, w1, w2, w3, xs + xStep, ones);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l1), Avx512F.PermuteVar16x32(Vector512.Load(block + o1), Vector512.Load(ix + 16)), a1);
            TDecode.Decode(w + 2 * ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
            var l2 = Lanes<TDecode>(w0, w1, w2, w3, xs + 2 * xStep, ones);
            a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l2), Avx512F.PermuteVar16x32(Vector512.Load(block + o2), Vector512.Load(ix + 32)), a2);
            TDecode.Decode(w + 3 * ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
            var l3 = Lanes<TDecode>(w0, w1, w2, w3, xs + 3 * xStep, ones);
            a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l3), Avx512F.PermuteVar16x32(Vector512.Load(block + o3), Vector512.Load(ix + 48)), a3);
        }
        // The rest: unit u into accumulator u mod 4 as in the 4-unit steps (the generated loop's order, VnniGemv).
        for (; u < units; u++)
        {
            float* block = sf + (((nint)u << shift) & ~(nint)15);
            TDecode.Decode(UnitAt(row, tail, fullUnits, u, ub), c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
            var l0 = Lanes<TDecode>(w0, w1, w2, w3, x + ((nint)u << log2U), ones);
            AddInto(u, ref a0, ref a1, ref a2, ref a3, Vector512.ConvertToSingle(l0),
                Avx512F.PermuteVar16x32(Vector512.Load(block), Vector512.Load(indices + ((u & cycleMask) << 4))));
        }
        return Vector512.Sum((a0 + a1) + (a2 + a3));
    }

    /// <summary>a[u mod 4] = lanes * scales + a[u mod 4] (one FMA).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddInto(int u, ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3,
        Vector512<float> lanes, Vector512<float> scales)
    {
        switch (u & 3)
        {
            case 0: a0 = Vector512.FusedMultiplyAdd(lanes, scales, a0); break;
            case 1: a1 = Vector512.FusedMultiplyAdd(lanes, scales, a1); break;
            case 2: a2 = Vector512.FusedMultiplyAdd(lanes, scales, a2); break;
            default: a3 = Vector512.FusedMultiplyAdd(lanes, scales, a3); break;
        }
    }

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

    /// <summary>Groups of one or more whole units: integer lanes accumulate over the group, scaled once by a broadcast.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float DotSpans<TDecode>(byte* row, byte* tail, int fullUnits, int units, sbyte* x, float* sf,
        int span, bool perRow, int log2U) where TDecode : struct, IDecode
    {
        var ones = Vector512.Create((short)1);
        TDecode.Constants(out var c0, out var c1, out var c2, out var c3);
        var a0 = Vector512<float>.Zero;
        var a1 = Vector512<float>.Zero;
        var a2 = Vector512<float>.Zero;
        var a3 = Vector512<float>.Zero;
        int ub = TDecode.UnitBytes;
        int g = 0, u0 = 0;
        if (span == 1)
        {
            // One unit per group: four groups per step on four accumulators; walking pointers keep the scalar work
            // per step to a few adds.
            byte* w = row, wEnd = row + (nint)(fullUnits & ~3) * ub;
            sbyte* xs = x;
            float* sc = sf;
            nint xStep = (nint)1 << log2U;
            for (; w < wEnd; w += 4 * ub, xs += 4 * xStep, sc += 4)
            {
                PrefetchStep(w, 4 * ub);
                TDecode.Decode(w, c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
                var l0 = Lanes<TDecode>(w0, w1, w2, w3, xs, ones);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l0), Vector512.Create(sc[0]), a0);
                TDecode.Decode(w + ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
                var l1 = Lanes<TDecode>(w0, w1, w2, w3, xs + xStep, ones);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l1), Vector512.Create(sc[1]), a1);
                TDecode.Decode(w + 2 * ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
                var l2 = Lanes<TDecode>(w0, w1, w2, w3, xs + 2 * xStep, ones);
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l2), Vector512.Create(sc[2]), a2);
                TDecode.Decode(w + 3 * ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
                var l3 = Lanes<TDecode>(w0, w1, w2, w3, xs + 3 * xStep, ones);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(l3), Vector512.Create(sc[3]), a3);
            }
            // The rest (and the units read from the tail copy): unit u into accumulator u mod 4 as in the 4-unit
            // steps, the generated loop's order (VnniGemv), so both give the same bits for the same integer sums.
            for (int u = fullUnits & ~3; u < units; u++)
            {
                TDecode.Decode(UnitAt(row, tail, fullUnits, u, ub), c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
                var l0 = Lanes<TDecode>(w0, w1, w2, w3, x + ((nint)u << log2U), ones);
                AddInto(u, ref a0, ref a1, ref a2, ref a3, Vector512.ConvertToSingle(l0), Vector512.Create(sf[u]));
            }
            return Vector512.Sum((a0 + a1) + (a2 + a3));
        }
        for (; u0 < units; u0 += span, g++)
        {
            int u1 = Math.Min(units, u0 + span);
            var i0 = Vector512<int>.Zero;
            var i1 = Vector512<int>.Zero;
            int u = u0;
            for (; u + 2 <= u1 && u + 2 <= fullUnits; u += 2)
            {
                PrefetchStep(row + (nint)u * ub, 2 * ub);
                TDecode.Decode(row + (nint)u * ub, c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
                i0 += Lanes<TDecode>(w0, w1, w2, w3, x + ((nint)u << log2U), ones);
                TDecode.Decode(row + (nint)(u + 1) * ub, c0, c1, c2, c3, out w0, out w1, out w2, out w3);
                i1 += Lanes<TDecode>(w0, w1, w2, w3, x + ((nint)(u + 1) << log2U), ones);
            }
            for (; u < u1; u++)
            {
                TDecode.Decode(UnitAt(row, tail, fullUnits, u, ub), c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
                i0 += Lanes<TDecode>(w0, w1, w2, w3, x + ((nint)u << log2U), ones);
            }
            var product = Vector512.ConvertToSingle(i0 + i1) * Vector512.Create(sf[perRow ? 0 : g]);
            if ((g & 1) == 0) a0 += product; else a1 += product;
        }
        return Vector512.Sum((a0 + a1) + (a2 + a3));
    }

    /// <summary>Most rows <see cref="ScaleRows"/> prepares at once (one vector of corrections).</summary>
    internal const int ScaleBlock = 16;

    /// <summary>Floats of 64-byte aligned work space <see cref="ScaleRows"/> needs for rows of <paramref name="groupsPerRow"/> groups.</summary>
    internal static int ScaleRowsWork(int groupsPerRow) => 2 * ScaleBlock * ((groupsPerRow + 15) & ~15) + ScaleBlock * 16 + 32;

    /// <summary>
    /// <see cref="ScaleRow"/> for <paramref name="count"/> (1..16) consecutive rows at once, with the same bits: row k's
    /// scales go to <paramref name="sf"/> + k <paramref name="stride"/> (groups [0, groupsPerRow) only; the caller
    /// keeps anything past them) and its correction to <paramref name="corrections"/>[k] (16 floats are written).
    /// </summary>
    /// <remarks>
    /// Why: per row, ScaleRow's loop set-up, its horizontal sum and, for rows of fewer than 16 groups (MiniLM's 384
    /// inputs: 3-12 groups), one scalar float16 conversion per group were a large part of a short row's time. Here
    /// the 16 rows' lane sums are reduced together by one transpose-add (<see cref="TransposeSum(float*, int)"/>, the tree of
    /// Vector512.Sum) and, when a row ends in a partial chunk of 16, the block's scales are converted as one contiguous
    /// vector stream over all its rows (each row's last chunk then masked to its groups, ScaleRow's zero-padded chunk). Work: <see cref="ScaleRowsWork"/> floats at <paramref name="work"/> (64-byte aligned).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ScaleRows(Half* scales, byte* zeros, int symmetricTerm, int offset, float* sf, int stride, float* groupSums,
        int groupsPerRow, int count, float* work, float* corrections)
    {
        int gpr = groupsPerRow;
        if (!Avx512F.IsSupported)
        {
            for (int k = 0; k < count; k++)
                corrections[k] = ScaleRow(scales + (nint)k * gpr, zeros == null ? null : zeros + (nint)k * gpr, symmetricTerm, offset,
                    sf + (nint)k * stride, groupSums, gpr);
            return;
        }
        var off = Vector512.Create(offset);
        if (gpr == 1 && count == ScaleBlock)
        {
            // One group per row (DynamicQuantizeMatMul's layout), a whole block: the 16 rows' scales are one vector.
            // The same operations as the partial-chunk path below (0 + t x Q, then the symmetric term), per lane.
            var s = HalvesToSingle((short*)scales);
            var t = zeros == null ? s : s * Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(zeros)) - off);
            for (int k = 0; k < ScaleBlock; k++) sf[(nint)k * stride] = s.GetElement(k);
            var sum = Vector512<float>.Zero + t * Vector512.Create(groupSums[0]);
            (zeros == null ? Vector512.Create((float)symmetricTerm) * sum : sum).Store(corrections);
            return;
        }
        var acc = (Vector512<float>*)work;
        int chunks = gpr >> 4, rest = gpr & 15;
        if (rest == 0)
        {
            // Whole 16-group chunks: each row converted straight into its place, lane sums as ScaleRow makes them.
            for (int k = 0; k < count; k++)
            {
                short* h = (short*)scales + (nint)k * gpr;
                byte* z = zeros == null ? null : zeros + (nint)k * gpr;
                float* row = sf + (nint)k * stride;
                var a = Vector512<float>.Zero;
                for (int g = 0; g < gpr; g += 16)
                {
                    var s = HalvesToSingle(h + g);
                    s.Store(row + g);
                    var t = z == null ? s : s * Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(z + g)) - off);
                    a = Vector512.FusedMultiplyAdd(t, Vector512.Load(groupSums + g), a);
                }
                acc[k] = a;
            }
            for (int k = count; k < ScaleBlock; k++) acc[k] = Vector512<float>.Zero;
            var sums = TransposeSum(acc);
            (zeros == null ? sums * Vector512.Create((float)symmetricTerm) : sums).Store(corrections);
            return;
        }

        // A partial last chunk: the block's scales (and zero-point products) as one contiguous stream of count x gpr,
        // then per row its whole chunks and the last one with the lanes past the row's groups zero (ScaleRow's chain).
        int n = count * gpr;
        float* conv = work + ScaleBlock * 16;
        float* terms = zeros == null ? conv : conv + ScaleBlock * ((gpr + 15) & ~15);
        HalvesToSingle(scales, conv, n);
        if (zeros != null)
        {
            int i = 0;
            for (; i + 16 <= n; i += 16)
                (Vector512.Load(conv + i) * Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(zeros + i)) - off)).Store(terms + i);
            for (; i < n; i++) terms[i] = conv[i] * (zeros[i] - offset);
        }
        // The last chunk's lanes [rest, 16) read the next row's terms (or the buffer's unused end) and the padding of the
        // group sums: both are masked to +0, as ScaleRow's zero-padded chunk gives.
        var inRow = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(rest)).AsSingle();
        var lastSums = Vector512.ConditionalSelect(inRow, Vector512.Load(groupSums + 16 * chunks), Vector512<float>.Zero);
        for (int k = 0; k < count; k++)
        {
            Buffer.MemoryCopy(conv + (nint)k * gpr, sf + (nint)k * stride, 4L * gpr, 4L * gpr);
            float* t = terms + (nint)k * gpr;
            var a = Vector512<float>.Zero;
            for (int c = 0; c < chunks; c++)
                a = Vector512.FusedMultiplyAdd(Vector512.Load(t + 16 * c), Vector512.Load(groupSums + 16 * c), a);
            acc[k] = Vector512.FusedMultiplyAdd(Vector512.ConditionalSelect(inRow, Vector512.Load(t + 16 * chunks), Vector512<float>.Zero), lastSums, a);
        }
        for (int k = count; k < ScaleBlock; k++) acc[k] = Vector512<float>.Zero;
        var rowSums = TransposeSum(acc);
        (zeros == null ? rowSums * Vector512.Create((float)symmetricTerm) : rowSums).Store(corrections);
    }

    /// <summary>
    /// The 16 horizontal sums of v[0..15] as one vector, each by Vector512.Sum's tree (pairs of adjacent lanes, then
    /// pairs of those, ...: ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) + ...), so the bits equal a row-by-row
    /// Vector512.Sum; 15 adds and 30 shuffles instead of 16 separate reductions.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> TransposeSum(Vector512<float>* v) => TransposeSum((float*)v, 16);

    /// <summary>
    /// <see cref="TransposeSum(Vector512{float}*)"/> of the 16 vectors at <paramref name="v"/>, <paramref name="stride"/>
    /// floats apart (the generated 4-bit kernels leave each row's lane sums 32 floats apart).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> TransposeSum(float* v, int stride)
    {
        Vector512<float> V(int i) => Vector512.Load(v + (nint)i * stride);
        // Level 1: rows 2i, 2i + 1 -> per 128-bit block j: (r2i p2j, r2i p2j+1, r2i+1 p2j, r2i+1 p2j+1), p = adjacent pair sums.
        var w0 = Pairs(V(0), V(1)); var w1 = Pairs(V(2), V(3)); var w2 = Pairs(V(4), V(5)); var w3 = Pairs(V(6), V(7));
        var w4 = Pairs(V(8), V(9)); var w5 = Pairs(V(10), V(11)); var w6 = Pairs(V(12), V(13)); var w7 = Pairs(V(14), V(15));
        // Level 2: block j of x_i holds the four rows 4i..4i + 3's sums of lanes 4j..4j + 3.
        return FinishTransposeSum(Pairs(w0, w1), Pairs(w2, w3), Pairs(w4, w5), Pairs(w6, w7));
    }

    /// <summary>Levels 3-4 of <see cref="TransposeSum(float*, int)"/> from its four level-2 vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FinishTransposeSum(Vector512<float> x0, Vector512<float> x1, Vector512<float> x2, Vector512<float> x3)
    {
        // Level 3: adjacent 128-bit blocks (lanes 0-7 and 8-15) of rows 8i..8i + 7.
        var y0 = Avx512F.Shuffle4x128(x0, x1, 0x88) + Avx512F.Shuffle4x128(x0, x1, 0xDD);
        var y1 = Avx512F.Shuffle4x128(x2, x3, 0x88) + Avx512F.Shuffle4x128(x2, x3, 0xDD);
        // Level 4: the two halves; lane r is row r's sum.
        return Avx512F.Shuffle4x128(y0, y1, 0x88) + Avx512F.Shuffle4x128(y0, y1, 0xDD);
    }

    /// <summary>One level of the transpose-sum: <c>vshufps(a, b, 0x88) + vshufps(a, b, 0xDD)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Pairs(Vector512<float> a, Vector512<float> b) => Avx512F.Shuffle(a, b, 0x88) + Avx512F.Shuffle(a, b, 0xDD);

    /// <summary>
    /// 16 float16 values at <paramref name="h"/> as float32 (AVX-512), exactly: the half sign-extended to 32 bits and
    /// shifted left by 13 puts the magnitude in bits 13..27 (read as a float, times 2^112, exact for normal and
    /// subnormal halves) and copies of the sign in bits 28..31, of which one mask keeps bit 31. 3 operations instead of
    /// the portable path's 6, the same bits; the batch-1 and small-batch kernels convert every row's scales with it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> HalvesToSingle(short* h) =>
        ((Avx512F.ConvertToVector512Int32(Vector256.Load(h)) << 13) & Vector512.Create(unchecked((int)0x8FFFE000))).AsSingle()
        * Vector512.Create(5.192297e33f);

    /// <summary>
    /// <paramref name="count"/> float16 values at <paramref name="h"/> as float32 at <paramref name="destination"/>
    /// (AVX-512), exactly: whole vectors by <see cref="HalvesToSingle(short*)"/>, the last partial one from a zero-padded
    /// copy. Why not a scalar loop for the rest: <c>(float)Half</c> is a software conversion, and rows of fewer than 16
    /// groups (In 384 or 768) made it most of a small-batch call (session 17: 3072x768 int4 g64 at batch 2, one
    /// thread, 243 us, against 22 us on the GEMM).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void HalvesToSingle(Half* h, float* destination, int count)
    {
        int g = 0;
        for (; g + 16 <= count; g += 16) HalvesToSingle((short*)h + g).Store(destination + g);
        if (g == count) return;
        var padded = Vector256<short>.Zero;
        short* p = (short*)&padded;
        for (int i = 0; g + i < count; i++) p[i] = ((short*)h)[g + i];
        var v = HalvesToSingle(p);
        float* f = (float*)&v;
        for (int i = 0; g + i < count; i++) destination[g + i] = f[i];
    }

    /// <summary>
    /// Converts one row's scales to float32 into <paramref name="sf"/> and returns its zero-point correction
    /// sum_g s_g (z_g - offset) Q_g, Q the group sums of the (single) activation row.
    /// </summary>
    /// <remarks>
    /// The sum's order: lane l of one vector chain takes the groups l, l + 16, ... by fma, then Vector512.Sum. A last
    /// chunk of fewer than 16 groups is the same vector step with its missing lanes zero (scale, zero point and group
    /// sum), so every group takes the same path and a generated kernel can make the same bits with one masked load per
    /// chunk (since session 17; before, the tail groups were added one by one after the sum).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float ScaleRow(Half* scales, byte* zeros, int symmetricTerm, int offset, float* sf, float* groupSums, int count)
    {
        // float16 to float32 without AVX-512: (h & 0x7FFF) << 13 read as float, times 2^112, is exact for normal and
        // subnormal halves; the sign bit moves to bit 31 (symmetric scales may be negative). AVX-512: HalvesToSingle.
        var magic = Vector512.Create(5.192297e33f);
        var mask = Vector512.Create(0x7FFFu);
        var sign = Vector512.Create(0x8000u);
        var off = Vector512.Create(offset);
        var acc = Vector512<float>.Zero;
        bool avx512 = Avx512F.IsSupported;
        // The last partial chunk's halves, zero points and group sums, zero-padded to a whole chunk.
        short* th = stackalloc short[16];
        byte* tz = stackalloc byte[16];
        float* tq = stackalloc float[16];
        for (int g = 0; g < count; g += 16)
        {
            int n = Math.Min(16, count - g);
            short* h = (short*)scales + g;
            byte* z = zeros == null ? null : zeros + g;
            float* q = groupSums + g;
            if (n < 16)
            {
                new Span<short>(th, 16).Clear();
                new Span<byte>(tz, 16).Clear();
                new Span<float>(tq, 16).Clear();
                new ReadOnlySpan<short>(h, n).CopyTo(new Span<short>(th, n));
                if (z != null) new ReadOnlySpan<byte>(z, n).CopyTo(new Span<byte>(tz, n));
                new ReadOnlySpan<float>(q, n).CopyTo(new Span<float>(tq, n));
                h = th;
                z = z == null ? null : tz;
                q = tq;
            }
            Vector512<float> s;
            if (avx512) s = HalvesToSingle(h);
            else
            {
                var hv = Vector512.WidenLower(Vector256.Load((ushort*)h).ToVector512Unsafe());
                s = (((hv & mask) << 13) | ((hv & sign) << 16)).AsSingle() * magic;
            }
            if (n == 16) s.Store(sf + g);
            else
                for (int i = 0; i < n; i++) sf[g + i] = s.GetElement(i);
            if (z == null) acc = Vector512.FusedMultiplyAdd(s, Vector512.Load(q), acc);
            else
            {
                var zb = avx512
                    ? Avx512F.ConvertToVector512Int32(Vector128.Load(z))
                    : Vector512.WidenLower(Vector512.WidenLower(Vector128.Load(z).ToVector256Unsafe().ToVector512Unsafe())).AsInt32();
                var t = s * Vector512.ConvertToSingle(zb - off);
                // Missing lanes' terms are +0 whatever the offset (0 x -offset would be -0), as ScaleRows masks them.
                if (n < 16) t = Vector512.ConditionalSelect(Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(n)).AsSingle(), t, Vector512<float>.Zero);
                acc = Vector512.FusedMultiplyAdd(t, Vector512.Load(q), acc);
            }
        }
        float sum = Vector512.Sum(acc);
        return zeros == null ? symmetricTerm * sum : sum;
    }
}
