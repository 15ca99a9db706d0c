using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// Batches 2 and more of <see cref="FusedInt8Dot"/>: tiles of 2, 4 or 8 batch rows whose activations are copied once
/// per call into a unit-interleaved tile (unit u of row k at (u * n + k) * unit bytes), so one pointer with constant
/// displacements reaches every row of the tile, and the per-row loops are small never-inlined methods with no calls:
/// the JIT keeps the tile's accumulators, the decoded unit and that pointer in registers (no spills).
/// </summary>
internal static unsafe partial class FusedInt8Dot
{
    /// <summary>Batch rows per tile of a batched call: 2, 4 or 8.</summary>
    public static int TileRows(int batch) => batch == 2 ? 2 : batch <= 4 ? 4 : 8;

    /// <summary>Bytes of the tile layout <see cref="BuildTiles"/> writes for a call of <paramref name="batch"/> rows (batch &gt;= 2).</summary>
    public static long TileBytes(int batch, int padded)
    {
        int n = TileRows(batch);
        return (long)(batch + n - 1) / n * n * padded;
    }

    /// <summary>
    /// Regroups the call's interleaved activation rows into tiles of <see cref="TileRows"/> rows, once per call before
    /// the threads start: within a tile, the n rows' pieces of each unit (or 512-code wide step) are adjacent, so one
    /// pointer with fixed offsets reaches every row; rows past the batch repeat its last row (results not stored).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BuildTiles(sbyte* q, int batch, int padded, int unitCodes, sbyte* tiles)
    {
        int n = TileRows(batch), count = (batch + n - 1) / n, units = padded / unitCodes;
        long tileBytes = (long)n * padded;
        for (int t = 0; t < count; t++)
            for (int k = 0; k < n; k++)
            {
                sbyte* src = q + (nint)Math.Min(t * n + k, batch - 1) * padded;
                sbyte* dst = tiles + t * tileBytes + (nint)k * unitCodes;
                for (int u = 0; u < units; u++)
                    Buffer.MemoryCopy(src + (nint)u * unitCodes, dst + (nint)u * n * unitCodes, unitCodes, unitCodes);
            }
    }

    /// <summary>Codes per step of the wide 4-bit kernel (<see cref="UsesWide4"/>): the activation rows are zero-padded to a multiple of it.</summary>
    public const int Wide4Codes = 512;

    /// <summary>
    /// True when batches of 3 and more with 4-bit codes in groups of 64 take the wide step: 512 codes (4 loads, 8 groups) are
    /// regrouped in registers so that each byte position of the 4 regrouped registers holds codes of one group; 8
    /// vpmaddubsw products then sum in 16 bits (8 x 2 x 15 x 127 &lt; 2^15) before one widening, one conversion and one
    /// FMA per batch row (instead of one each per 128 codes).
    /// </summary>
    /// <remarks>Rows are zero-padded to whole steps of 8 groups, so rows whose padding would add more than 1/8 of
    /// their groups (e.g. 128 or 768 inputs) keep the per-unit loop.</remarks>
    public static bool UsesWide4(int bits, int groupSize, int groupsPerRow, int batch) =>
        bits == 4 && groupSize == 64 && batch >= 3 && (8 - groupsPerRow % 8) % 8 * 8 <= groupsPerRow;

    /// <summary>
    /// Reorders a zero-padded row of natural-order int8 activations (a multiple of 512) for the wide 4-bit step: in each
    /// 512-code block, register i (0..3), nibble part p (0 low, 1 high), byte 8 q + b holds code 64 q + 16 i + 2 b + p.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void InterleaveWide4(sbyte* q, int padded)
    {
        sbyte* tmp = stackalloc sbyte[Wide4Codes];
        for (int s = 0; s < padded; s += Wide4Codes)
        {
            Buffer.MemoryCopy(q + s, tmp, Wide4Codes, Wide4Codes);
            sbyte* d = q + s;
            for (int i = 0; i < 4; i++)
                for (int p = 0; p < 2; p++)
                    for (int g = 0; g < 8; g++)
                        for (int b = 0; b < 8; b++)
                            d[128 * i + 64 * p + 8 * g + b] = tmp[64 * g + 16 * i + 2 * b + p];
        }
    }

    /// <summary>Computes output rows [start, end) for every batch row with tiles of <typeparamref name="TBatch"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Batched<TDecode, TBatch>(in Args a, int start, int end)
        where TDecode : struct, IDecode where TBatch : struct, IBatch
    {
        if (typeof(TDecode) == typeof(Nibbles) && UsesWide4(a.Bits, a.GroupSize, a.GroupsPerRow, a.Batch)) { Wide4<TBatch>(a, start, end); return; }
        int gpr = a.GroupsPerRow, stride = a.GroupStride;
        int n = TBatch.Count;
        float* block = RowBlockScratch(stride, out int terms, out int perRowFloats);

        int unitCodes = 64 * TDecode.Parts, log2U = System.Numerics.BitOperations.Log2((uint)unitCodes);
        int units = a.Padded >> log2U;
        int unitBytes = TDecode.UnitBytes, loadBytes = TDecode.LoadBytes, rowBytes = a.RowBytes;
        // Units whose load stays inside the row read it in place; the rest read a zero-padded copy of the row's end.
        int fullUnits = rowBytes < loadBytes ? 0 : Math.Min(units, (rowBytes - loadBytes) / unitBytes + 1);
        int tailBytes = rowBytes - fullUnits * unitBytes;

        int tiles = (a.Batch + n - 1) / n;
        long tileBytes = (long)n * a.Padded;
        sbyte* tileBase = a.Tiles;

        bool perRow = gpr == 1;
        int log2G = perRow ? 31 : System.Numerics.BitOperations.Log2((uint)a.GroupSize);
        bool permute = !perRow && a.GroupSize < unitCodes;
        int* index = stackalloc int[32];
        index = (int*)(((nint)index + 63) & ~(nint)63);
        for (int k = 0; k < 16; k++) index[k] = permute ? (k * (unitCodes / 16)) >> log2G : 0;
        // Units per integer accumulation: a whole group when it spans several units (a per-row group: 4096 units,
        // far below int32 overflow), else one unit scaled lane-wise.
        int span = permute ? 1 : perRow ? 4096 : Math.Max(1, a.GroupSize >> log2U);
        int symmetricZero = 1 << (a.Bits - 1);

        // Chunks of the row keep the tile's activations L1-resident (at most 16 KiB); a group never straddles two
        // chunks (chunks are a power-of-two number of units, groups at most 256 codes).
        int chunkUnits = Math.Max(1, (16384 / n) >> log2U);
        span = Math.Min(span, chunkUnits);

        // Row blocks only pay when several tiles reread the block's rows (from L2); one tile streams row by row.
        int rowBlock = tiles > 1 ? RowBlock : 1;
        for (int r0 = start; r0 < end; r0 += rowBlock)
        {
            int r1 = Math.Min(end, r0 + rowBlock);
            for (int r = r0; r < r1; r++)
            {
                float* rb = block + (r - r0) * perRowFloats;
                FusedInt8Dot256.ScaleTerms(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr, symmetricZero, a.CodeOffset, rb, rb + terms, gpr);
                if (tailBytes > 0) Buffer.MemoryCopy(a.Packed + (nint)r * rowBytes + fullUnits * unitBytes, rb + 2 * terms, 256, tailBytes);
            }

            // The block's packed rows (at most 16 rows) stay in L2 while every tile reads them.
            for (int t = 0; t < tiles; t++)
            {
                sbyte* xt = tileBase + t * tileBytes;
                for (int r = r0; r < r1; r++) new Span<float>(block + (r - r0) * perRowFloats + 2 * terms + 64, 8 * 16).Clear();

                for (int c0 = 0; c0 < units; c0 += chunkUnits)
                {
                    int c1 = Math.Min(units, c0 + chunkUnits);
                    for (int r = r0; r < r1; r++)
                    {
                        byte* row = a.Packed + (nint)r * rowBytes;
                        float* sf = block + (r - r0) * perRowFloats;
                        byte* tail = (byte*)(sf + 2 * terms);
                        float* acc = sf + 2 * terms + 64;
                        // Units in place, then units of the row's padded end (same loop, another weight base).
                        int m = Math.Min(c1, Math.Max(c0, fullUnits));
                        if (m > c0) TileRange<TDecode, TBatch>(row, c0, m, xt, sf, acc, index, log2U, log2G, span, permute);
                        if (c1 > m) TileRange<TDecode, TBatch>(tail - (nint)fullUnits * unitBytes, m, c1, xt, sf, acc, index, log2U, log2G, span, permute);
                    }
                }

                StoreTile(a, block, perRowFloats, terms, r0, r1, t, n);
            }
        }
    }

    /// <summary>
    /// The thread's zeroed scratch for a block of <see cref="RowBlock"/> rows. Per row: scales and scale x zero terms
    /// (GroupStride + 16 each: permutes read up to 15 past the last group), a zero-padded copy of the row's end (64
    /// floats = 256 bytes) and 8 accumulators of 16 floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float* RowBlockScratch(int stride, out int terms, out int perRowFloats)
    {
        terms = stride + 16;
        perRowFloats = 2 * terms + 64 + 8 * 16;
        int need = RowBlock * perRowFloats + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<float>(Math.Max(need, 1024), pinned: true);
        float* block = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        new Span<float>(block, need - 16).Clear();
        return block;
    }

    /// <summary>Writes tile <paramref name="t"/>'s outputs for rows [r0, r1) from the block's accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StoreTile(in Args a, float* block, int perRowFloats, int terms, int r0, int r1, int t, int n)
    {
        int stride = a.GroupStride, count = Math.Min(n, a.Batch - t * n);
        float* gs = a.GroupSums + (nint)t * n * stride;
        for (int r = r0; r < r1; r++)
        {
            float* szf = block + (r - r0) * perRowFloats + terms;
            float* acc = szf + terms + 64;
            float* y = a.Y + (nint)t * n * a.Out + r;
            for (int k = 0; k < count; k++)
            {
                // Zero points: subtract sum_g s_g (z_g - offset) Q_g, lane-wise, before the one horizontal sum.
                var sum = Vector512.Load(acc + 16 * k);
                float* gk = gs + k * stride;
                for (int g = 0; g < stride; g += 16) sum -= Vector512.Load(szf + g) * Vector512.Load(gk + g);
                y[(nint)k * a.Out] = a.RowScale[t * n + k] * Vector512.Sum(sum);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void TileRange<TDecode, TBatch>(byte* w, int u0, int u1, sbyte* xt, float* sf, float* acc, int* index,
        int log2U, int log2G, int span, bool permute) where TDecode : struct, IDecode where TBatch : struct, IBatch
    {
        if (span == 1) TileUnits<TDecode, TBatch>(w, u0, u1, xt, sf, acc, index, log2U, log2G, permute);
        else TileGroups<TDecode, TBatch>(w, u0, u1, xt, sf, acc, log2U, log2G, span);
    }

    /// <summary>Units [u0, u1) of one weight row (unit u at w + u * UnitBytes), each scaled lane-wise by its groups.</summary>
    // Not inlined: no call inside, so the JIT keeps every vector in a register (SysV has no callee-saved vectors).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void TileUnits<TDecode, TBatch>(byte* w, int u0, int u1, sbyte* xt, float* sf, float* acc, int* index,
        int log2U, int log2G, bool permute) where TDecode : struct, IDecode where TBatch : struct, IBatch
    {
        var ones = Vector512.Create((short)1);
        var ix = Vector512.Load(index);
        TDecode.Constants(out var c0, out var c1, out var c2, out var c3);
        var a0 = Vector512.Load(acc);
        var a1 = Vector512.Load(acc + 16);
        var a2 = TBatch.Count > 2 ? Vector512.Load(acc + 32) : default;
        var a3 = TBatch.Count > 2 ? Vector512.Load(acc + 48) : default;
        var a4 = TBatch.Count > 4 ? Vector512.Load(acc + 64) : default;
        var a5 = TBatch.Count > 4 ? Vector512.Load(acc + 80) : default;
        var a6 = TBatch.Count > 4 ? Vector512.Load(acc + 96) : default;
        var a7 = TBatch.Count > 4 ? Vector512.Load(acc + 112) : default;
        int uc = 64 * TDecode.Parts, step = TBatch.Count * uc;
        sbyte* x = xt + (nint)u0 * step;
        byte* p = w + (nint)u0 * TDecode.UnitBytes;
        for (int u = u0; u < u1; u++, x += step, p += TDecode.UnitBytes)
        {
            PrefetchStep(p, TDecode.UnitBytes);
            TDecode.Decode(p, c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
            int g = (u << log2U) >> log2G;
            var scale = permute ? Avx512F.PermuteVar16x32(Vector512.Load(sf + g), ix) : Vector512.Create(sf[g]);
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x, ones)), scale, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + uc, ones)), scale, a1);
            if (TBatch.Count > 2)
            {
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + 2 * uc, ones)), scale, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + 3 * uc, ones)), scale, a3);
            }
            if (TBatch.Count > 4)
            {
                a4 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + 4 * uc, ones)), scale, a4);
                a5 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + 5 * uc, ones)), scale, a5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + 6 * uc, ones)), scale, a6);
                a7 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(TileLanes<TDecode>(w0, w1, w2, w3, x + 7 * uc, ones)), scale, a7);
            }
        }
        a0.Store(acc);
        a1.Store(acc + 16);
        if (TBatch.Count > 2) { a2.Store(acc + 32); a3.Store(acc + 48); }
        if (TBatch.Count > 4) { a4.Store(acc + 64); a5.Store(acc + 80); a6.Store(acc + 96); a7.Store(acc + 112); }
    }

    /// <summary>Units [u0, u1) of one weight row with groups of <paramref name="span"/> units: integer lanes accumulate over a group, scaled once.</summary>
    // Not inlined: no call inside, so the JIT keeps every vector in a register (SysV has no callee-saved vectors).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void TileGroups<TDecode, TBatch>(byte* w, int u0, int u1, sbyte* xt, float* sf, float* acc,
        int log2U, int log2G, int span) where TDecode : struct, IDecode where TBatch : struct, IBatch
    {
        var ones = Vector512.Create((short)1);
        TDecode.Constants(out var c0, out var c1, out var c2, out var c3);
        var a0 = Vector512.Load(acc);
        var a1 = Vector512.Load(acc + 16);
        var a2 = TBatch.Count > 2 ? Vector512.Load(acc + 32) : default;
        var a3 = TBatch.Count > 2 ? Vector512.Load(acc + 48) : default;
        var a4 = TBatch.Count > 4 ? Vector512.Load(acc + 64) : default;
        var a5 = TBatch.Count > 4 ? Vector512.Load(acc + 80) : default;
        var a6 = TBatch.Count > 4 ? Vector512.Load(acc + 96) : default;
        var a7 = TBatch.Count > 4 ? Vector512.Load(acc + 112) : default;
        int uc = 64 * TDecode.Parts, step = TBatch.Count * uc;
        sbyte* x = xt + (nint)u0 * step;
        byte* p = w + (nint)u0 * TDecode.UnitBytes;
        for (int g0 = u0; g0 < u1;)
        {
            // Ranges may start inside a group (where the row's padded end takes over): stop at the group's end.
            int g1 = Math.Min(u1, (g0 & ~(span - 1)) + span);
            var i0 = Vector512<int>.Zero; var i1 = i0; var i2 = i0; var i3 = i0; var i4 = i0; var i5 = i0; var i6 = i0; var i7 = i0;
            for (int u = g0; u < g1; u++, x += step, p += TDecode.UnitBytes)
            {
                PrefetchStep(p, TDecode.UnitBytes);
                TDecode.Decode(p, c0, c1, c2, c3, out var w0, out var w1, out var w2, out var w3);
                i0 += TileLanes<TDecode>(w0, w1, w2, w3, x, ones);
                i1 += TileLanes<TDecode>(w0, w1, w2, w3, x + uc, ones);
                if (TBatch.Count > 2)
                {
                    i2 += TileLanes<TDecode>(w0, w1, w2, w3, x + 2 * uc, ones);
                    i3 += TileLanes<TDecode>(w0, w1, w2, w3, x + 3 * uc, ones);
                }
                if (TBatch.Count > 4)
                {
                    i4 += TileLanes<TDecode>(w0, w1, w2, w3, x + 4 * uc, ones);
                    i5 += TileLanes<TDecode>(w0, w1, w2, w3, x + 5 * uc, ones);
                    i6 += TileLanes<TDecode>(w0, w1, w2, w3, x + 6 * uc, ones);
                    i7 += TileLanes<TDecode>(w0, w1, w2, w3, x + 7 * uc, ones);
                }
            }
            var scale = Vector512.Create(sf[(g0 << log2U) >> log2G]);
            g0 = g1;
            a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i0), scale, a0);
            a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i1), scale, a1);
            if (TBatch.Count > 2)
            {
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i2), scale, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i3), scale, a3);
            }
            if (TBatch.Count > 4)
            {
                a4 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i4), scale, a4);
                a5 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i5), scale, a5);
                a6 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i6), scale, a6);
                a7 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i7), scale, a7);
            }
        }
        a0.Store(acc);
        a1.Store(acc + 16);
        if (TBatch.Count > 2) { a2.Store(acc + 32); a3.Store(acc + 48); }
        if (TBatch.Count > 4) { a4.Store(acc + 64); a5.Store(acc + 80); a6.Store(acc + 96); a7.Store(acc + 112); }
    }

    /// <summary><see cref="Lanes{TDecode}"/> with every unsigned-code product reading its activations straight from memory (one instruction each).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> TileLanes<TDecode>(Vector512<byte> w0, Vector512<byte> w1, Vector512<byte> w2, Vector512<byte> w3,
        sbyte* x, Vector512<short> ones) where TDecode : struct, IDecode
    {
        if (TDecode.Signed) return Lanes<TDecode>(w0, w1, w2, w3, x, ones);
        var s = Avx512BW.MultiplyAddAdjacent(w0, Vector512.Load(x));
        if (TDecode.Parts > 1) s += Avx512BW.MultiplyAddAdjacent(w1, Vector512.Load(x + 64));
        if (TDecode.Parts > 2)
        {
            s += Avx512BW.MultiplyAddAdjacent(w2, Vector512.Load(x + 128));
            s += Avx512BW.MultiplyAddAdjacent(w3, Vector512.Load(x + 192));
        }
        return Avx512BW.MultiplyAddAdjacent(s, ones);
    }

    /// <summary>The batched 4-bit, 64-code-group kernel with 512-code steps (see <see cref="UsesWide4"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Wide4<TBatch>(in Args a, int start, int end) where TBatch : struct, IBatch
    {
        int gpr = a.GroupsPerRow, stride = a.GroupStride;
        int n = TBatch.Count;
        float* block = RowBlockScratch(stride, out int terms, out int perRowFloats);

        const int stepCodes = Wide4Codes, stepBytes = Wide4Codes / 2;
        int steps = a.Padded / stepCodes, rowBytes = a.RowBytes;
        // Steps whose 256 bytes stay inside the row read it in place; the last reads a zero-padded copy of the row's end.
        int fullSteps = Math.Min(steps, rowBytes / stepBytes);
        int tailBytes = rowBytes - fullSteps * stepBytes;

        int tiles = (a.Batch + n - 1) / n;
        long tileBytes = (long)n * a.Padded;
        sbyte* tileBase = a.Tiles;

        int symmetricZero = 1 << (a.Bits - 1);
        // Chunks keep the tile's activations L1-resident (at most 16 KiB); row blocks pay only with several tiles.
        int chunkSteps = Math.Max(1, 16384 / n / stepCodes);
        int rowBlock = tiles > 1 ? RowBlock : 1;
        for (int r0 = start; r0 < end; r0 += rowBlock)
        {
            int r1 = Math.Min(end, r0 + rowBlock);
            for (int r = r0; r < r1; r++)
            {
                float* rb = block + (r - r0) * perRowFloats;
                FusedInt8Dot256.ScaleTerms(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr, symmetricZero, a.CodeOffset, rb, rb + terms, gpr);
                if (tailBytes > 0) Buffer.MemoryCopy(a.Packed + (nint)r * rowBytes + fullSteps * stepBytes, rb + 2 * terms, 256, tailBytes);
            }

            for (int t = 0; t < tiles; t++)
            {
                sbyte* xt = tileBase + t * tileBytes;
                for (int r = r0; r < r1; r++) new Span<float>(block + (r - r0) * perRowFloats + 2 * terms + 64, 8 * 16).Clear();

                for (int c0 = 0; c0 < steps; c0 += chunkSteps)
                {
                    int c1 = Math.Min(steps, c0 + chunkSteps);
                    for (int r = r0; r < r1; r++)
                    {
                        byte* row = a.Packed + (nint)r * rowBytes;
                        float* sf = block + (r - r0) * perRowFloats;
                        byte* tail = (byte*)(sf + 2 * terms);
                        float* acc = sf + 2 * terms + 64;
                        int m = Math.Min(c1, Math.Max(c0, fullSteps));
                        if (m > c0) TileWide4<TBatch>(row, c0, m, xt, sf, acc);
                        if (c1 > m) TileWide4<TBatch>(tail - (nint)fullSteps * stepBytes, m, c1, xt, sf, acc);
                    }
                }

                StoreTile(a, block, perRowFloats, terms, r0, r1, t, n);
            }
        }
    }

    /// <summary>Steps [s0, s1) of one 4-bit row (step s at w + 256 s): 8 groups of 64 codes per step.</summary>
    // Not inlined: no call inside, so the JIT keeps every vector in a register (SysV has no callee-saved vectors).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void TileWide4<TBatch>(byte* w, int s0, int s1, sbyte* xt, float* sf, float* acc) where TBatch : struct, IBatch
    {
        var ones = Vector512.Create((short)1);
        var mask = Vector512.Create((byte)0x0F);
        // Int32 lane k holds codes of group k / 2 of the step.
        var half = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        // Regrouped register i, qword q = qword 4 (q & 1) + i of load q / 2: each qword is 16 codes of group q.
        var p0 = Vector512.Create(0L, 4, 8, 12, 0, 4, 8, 12);
        var p1 = Vector512.Create(1L, 5, 9, 13, 1, 5, 9, 13);
        var p2 = Vector512.Create(2L, 6, 10, 14, 2, 6, 10, 14);
        var p3 = Vector512.Create(3L, 7, 11, 15, 3, 7, 11, 15);
        var a0 = Vector512.Load(acc);
        var a1 = Vector512.Load(acc + 16);
        var a2 = TBatch.Count > 2 ? Vector512.Load(acc + 32) : default;
        var a3 = TBatch.Count > 2 ? Vector512.Load(acc + 48) : default;
        var a4 = TBatch.Count > 4 ? Vector512.Load(acc + 64) : default;
        var a5 = TBatch.Count > 4 ? Vector512.Load(acc + 80) : default;
        var a6 = TBatch.Count > 4 ? Vector512.Load(acc + 96) : default;
        var a7 = TBatch.Count > 4 ? Vector512.Load(acc + 112) : default;
        const int step = Wide4Codes;
        int tileStep = TBatch.Count * step;
        sbyte* x = xt + (nint)s0 * tileStep;
        byte* p = w + (nint)s0 * (Wide4Codes / 2);
        for (int s = s0; s < s1; s++, x += tileStep, p += Wide4Codes / 2)
        {
            PrefetchStep(p, 256);
            var l0 = Vector512.Load((long*)p);
            var l1 = Vector512.Load((long*)(p + 64));
            var l2 = Vector512.Load((long*)(p + 128));
            var l3 = Vector512.Load((long*)(p + 192));
            var r0 = Avx512F.Shuffle4x128(Avx512F.PermuteVar8x64x2(l0, p0, l1), Avx512F.PermuteVar8x64x2(l2, p0, l3), 0xE4).AsByte();
            var r1 = Avx512F.Shuffle4x128(Avx512F.PermuteVar8x64x2(l0, p1, l1), Avx512F.PermuteVar8x64x2(l2, p1, l3), 0xE4).AsByte();
            var r2 = Avx512F.Shuffle4x128(Avx512F.PermuteVar8x64x2(l0, p2, l1), Avx512F.PermuteVar8x64x2(l2, p2, l3), 0xE4).AsByte();
            var r3 = Avx512F.Shuffle4x128(Avx512F.PermuteVar8x64x2(l0, p3, l1), Avx512F.PermuteVar8x64x2(l2, p3, l3), 0xE4).AsByte();
            var lo0 = r0 & mask; var hi0 = (r0.AsUInt16() >> 4).AsByte() & mask;
            var lo1 = r1 & mask; var hi1 = (r1.AsUInt16() >> 4).AsByte() & mask;
            var lo2 = r2 & mask; var hi2 = (r2.AsUInt16() >> 4).AsByte() & mask;
            var lo3 = r3 & mask; var hi3 = (r3.AsUInt16() >> 4).AsByte() & mask;
            var scale = Avx512F.PermuteVar16x32(Vector512.Load(sf + 8 * s), half);
            a0 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x, ones), scale, a0);
            a1 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + step, ones), scale, a1);
            if (TBatch.Count > 2)
            {
                a2 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + 2 * step, ones), scale, a2);
                a3 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + 3 * step, ones), scale, a3);
            }
            if (TBatch.Count > 4)
            {
                a4 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + 4 * step, ones), scale, a4);
                a5 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + 5 * step, ones), scale, a5);
                a6 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + 6 * step, ones), scale, a6);
                a7 = Vector512.FusedMultiplyAdd(Wide4Lanes(lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3, x + 7 * step, ones), scale, a7);
            }
        }
        a0.Store(acc);
        a1.Store(acc + 16);
        if (TBatch.Count > 2) { a2.Store(acc + 32); a3.Store(acc + 48); }
        if (TBatch.Count > 4) { a4.Store(acc + 64); a5.Store(acc + 80); a6.Store(acc + 96); a7.Store(acc + 112); }
    }

    /// <summary>16 float lanes of one batch row's 512-code step: 8 products summed in 16 bits, widened once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Wide4Lanes(Vector512<byte> lo0, Vector512<byte> hi0, Vector512<byte> lo1, Vector512<byte> hi1,
        Vector512<byte> lo2, Vector512<byte> hi2, Vector512<byte> lo3, Vector512<byte> hi3, sbyte* x, Vector512<short> ones)
    {
        var s0 = Avx512BW.MultiplyAddAdjacent(lo0, Vector512.Load(x)) + Avx512BW.MultiplyAddAdjacent(hi0, Vector512.Load(x + 64));
        var s1 = Avx512BW.MultiplyAddAdjacent(lo1, Vector512.Load(x + 128)) + Avx512BW.MultiplyAddAdjacent(hi1, Vector512.Load(x + 192));
        var s2 = Avx512BW.MultiplyAddAdjacent(lo2, Vector512.Load(x + 256)) + Avx512BW.MultiplyAddAdjacent(hi2, Vector512.Load(x + 320));
        var s3 = Avx512BW.MultiplyAddAdjacent(lo3, Vector512.Load(x + 384)) + Avx512BW.MultiplyAddAdjacent(hi3, Vector512.Load(x + 448));
        return Vector512.ConvertToSingle(Avx512BW.MultiplyAddAdjacent((s0 + s1) + (s2 + s3), ones));
    }
}
