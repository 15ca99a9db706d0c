using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// The 256-bit int8-activation kernel: decodes the packed codes in registers straight from the stored row (no
/// unpacked copy) and multiplies each decoded unit with up to 8 activation rows, with AVX-VNNI vpdpbusd where the
/// machine has it and AVX2 vpmaddubsw + vpmaddwd otherwise.
/// </summary>
/// <remarks>
/// <para>A unit is one 32-byte load of packed codes (12 bytes at 3 bits): 32 codes at 8 and 3 bits, 64 at 4 bits,
/// 128 at 2 bits. At 4 and 2 bits one AND (and a shift) per field gives P = 2 or 4 registers of 32 codes each,
/// register p holding codes P*j + p of the unit. At 3 bits a byte shuffle puts two 16-bit windows in every dword,
/// a per-dword shift (vpsrlvd) aligns them and a byte pack joins two such registers, which leaves the codes in a
/// fixed permuted order. The activations are laid out once per call in each width's order (<see cref="Interleave"/>),
/// so the stored format is read as it is.</para>
/// <para>Every int32 lane k covers 4 bytes of each register, i.e. codes that lie in one group of 16 (G &gt;= 16),
/// so each lane is scaled by its group's scale (a broadcast, or a permute when G &lt; unit).</para>
/// <para>vpdpbusd multiplies unsigned codes by signed activations and sums 4 products into int32 without 16-bit
/// saturation, so 8-bit codes enter as they are. The AVX2 route sums vpmaddubsw pairs in 16 bits: its 8-bit codes
/// enter as |u - 128| with the sign moved onto the activation and 128 folded into the zero point
/// (<see cref="CodeOffset"/>); the other widths stay below 2^15 (P * 2 * 15 * 127 at most).</para>
/// </remarks>
internal static unsafe class FusedInt8Dot256
{
    /// <summary>True when the machine runs this kernel (AVX2).</summary>
    public static bool IsSupported => Avx2.IsSupported && Vector256.IsHardwareAccelerated;

    /// <summary>Tests clear it to run the AVX2 multiply route on a machine with AVX-VNNI.</summary>
    internal static bool AllowVnni { get; set; } = true;

    /// <summary>True when the products use vpdpbusd.</summary>
    public static bool UsesVnni => AvxVnni.IsSupported && AllowVnni;

    /// <summary>Registers (fields) per unit.</summary>
    public static int Parts(int bits) => bits switch { 4 => 2, 2 => 4, _ => 1 };

    /// <summary>Codes per unit: the activation rows are zero-padded to a multiple of it.</summary>
    public static int UnitCodes(int bits) => 32 * Parts(bits);

    /// <summary>
    /// True when groups are exactly one unit (4 bits g64, 8 bits g32, 2 bits g128): the kernel then reads two units
    /// at a time as [A bytes 0-15, B bytes 0-15] and [A bytes 16-31, B bytes 16-31], so lanes 0-3 hold group A and
    /// lanes 4-7 group B and one float conversion and FMA per row serve two groups.
    /// </summary>
    public static bool PairedUnits(int bits, int groupSize, int groupsPerRow) => AllowPairs && bits != 3 && groupsPerRow > 1 && groupSize == UnitCodes(bits);

    /// <summary>Tests and measurements clear it to read one unit at a time everywhere.</summary>
    internal static bool AllowPairs { get; set; } = true;

    /// <summary>Activation rows are zero-padded to a multiple of this many codes.</summary>
    public static int PadCodes(int bits, int groupSize, int groupsPerRow) => UnitCodes(bits) * (PairedUnits(bits, groupSize, groupsPerRow) ? 2 : 1);

    /// <summary>What the kernel subtracts from 8-bit codes (128 on the AVX2 route, see remarks), else 0.</summary>
    public static int CodeOffset(int bits) => bits == 8 && !UsesVnni ? 128 : 0;

    /// <summary>Reorders a zero-padded row of int8 activations (length a multiple of the unit) into the kernel's code order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Interleave(sbyte* q, int padded, int bits, bool pairs)
    {
        int parts = Parts(bits), unit = UnitCodes(bits);
        sbyte* tmp = stackalloc sbyte[256];
        if (pairs)
        {
            // Units A, B: half h of part p holds A's part-p bytes 16h..16h+15, then B's (see PairedUnits).
            Interleave(q, padded, bits, false);
            for (int u = 0; u < padded; u += 2 * unit)
            {
                Buffer.MemoryCopy(q + u, tmp, 256, 2 * unit);
                for (int h = 0; h < 2; h++)
                    for (int p = 0; p < parts; p++)
                    {
                        sbyte* d = q + u + (h * parts + p) * 32;
                        Buffer.MemoryCopy(tmp + p * 32 + 16 * h, d, 16, 16);
                        Buffer.MemoryCopy(tmp + unit + p * 32 + 16 * h, d + 16, 16, 16);
                    }
            }
            return;
        }
        if (bits == 8) return;
        for (int u = 0; u < padded; u += unit)
        {
            if (bits == 4)
            {
                // Even codes to the first 32 bytes, odd codes to the next 32.
                var a = Avx2.Shuffle(Vector256.Load((byte*)q + u), s_evenOdd).AsUInt64();
                var b = Avx2.Shuffle(Vector256.Load((byte*)q + u + 32), s_evenOdd).AsUInt64();
                a = Avx2.Permute4x64(a, 0b11_01_10_00);
                b = Avx2.Permute4x64(b, 0b11_01_10_00);
                Avx2.Permute2x128(a, b, 0x20).Store((ulong*)(q + u));
                Avx2.Permute2x128(a, b, 0x31).Store((ulong*)(q + u + 32));
                continue;
            }
            Buffer.MemoryCopy(q + u, tmp, 128, unit);
            if (bits == 3)
            {
                for (int p = 0; p < 32; p++) q[u + p] = tmp[s_order3[p]];
                continue;
            }
            for (int p = 0; p < parts; p++)
                for (int j = 0; j < 32; j++) q[u + 32 * p + j] = tmp[parts * j + p];
        }
    }

    // Per 128-bit lane: the 8 even bytes, then the 8 odd bytes.
    private static readonly Vector256<byte> s_evenOdd = Vector256.Create(
        (byte)0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);

    /// <summary>The code (within its unit of 32) that byte p of the decoded 3-bit register holds.</summary>
    internal static readonly byte[] s_order3 = Order3();

    // Register A holds codes 0..15, B codes 16..31, as 16-bit elements: dword d = codes d and d + 8 (+16 for B).
    // vpackuswb interleaves them per 128-bit lane: A elements 0..7, B 0..7, A 8..15, B 8..15.
    private static byte[] Order3()
    {
        var order = new byte[32];
        for (int p = 0; p < 32; p++)
        {
            int half = p >> 4, within = p & 15, e = half * 8 + (within & 7);
            order[p] = (byte)((e >> 1) + 8 * (e & 1) + 16 * (within >> 3));
        }
        return order;
    }

    // Dword d of register A: bytes b, b + 1 (code d at bit 3d) and b + 3, b + 4 (code d + 8), b = 3d / 8; B adds 6 bytes.
    private static readonly Vector256<byte> s_shuffle3A = Shuffle3(0), s_shuffle3B = Shuffle3(6);
    private static readonly Vector256<uint> s_shift3 = Vector256.Create(0u, 3, 6, 1, 4, 7, 2, 5);

    private static Vector256<byte> Shuffle3(int offset)
    {
        var c = new byte[32];
        for (int d = 0; d < 8; d++)
        {
            int b = 3 * d / 8 + offset;
            c[4 * d] = (byte)b; c[4 * d + 1] = (byte)(b + 1); c[4 * d + 2] = (byte)(b + 3); c[4 * d + 3] = (byte)(b + 4);
        }
        return Vector256.Create(c);
    }

    /// <summary>The inputs of one call, shared by the threads.</summary>
    public struct Args
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros; // null when symmetric
        public int Bits, GroupSize, GroupsPerRow, RowBytes, Out, In, Batch;
        public sbyte* Q;          // Batch rows of Padded interleaved int8 activations
        public int Padded;        // multiple of UnitCodes(Bits)
        public float* RowScale;   // per batch row
        public float* GroupSums;  // Batch rows of GroupStride floats, zero beyond GroupsPerRow
        public int GroupStride;   // multiple of 8
        public float* Y;
    }

    /// <summary>Computes output rows [start, end) for every batch row.</summary>
    public static void Rows(in Args a, int start, int end)
    {
        if (UsesVnni) RowsFor<Vnni>(a, start, end);
        else RowsFor<MaddUbs>(a, start, end);
    }

    private static void RowsFor<TMul>(in Args a, int start, int end) where TMul : struct, IMultiply
    {
        switch (a.Bits)
        {
            case 4: RowsFor<Nibbles, TMul>(a, start, end); break;
            case 2: RowsFor<Crumbs, TMul>(a, start, end); break;
            case 3: RowsFor<Triples, TMul>(a, start, end); break;
            default: RowsFor<Bytes, TMul>(a, start, end); break;
        }
    }

    private static void RowsFor<TDecode, TMul>(in Args a, int start, int end) where TDecode : struct, IDecode where TMul : struct, IMultiply
    {
        if (a.Batch == 1) Rows<TDecode, TMul, Batch1>(a, start, end);
        else if (a.Batch == 2) Rows<TDecode, TMul, Batch2>(a, start, end);
        else if (a.Batch <= 4) Rows<TDecode, TMul, Batch4>(a, start, end);
        else Rows<TDecode, TMul, Batch8>(a, start, end);
    }

    [ThreadStatic] private static float[]? t_scratch;

    private const int RowBlock = 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TDecode, TMul, TBatch>(in Args a, int start, int end)
        where TDecode : struct, IDecode where TMul : struct, IMultiply where TBatch : struct, IBatch
    {
        int gpr = a.GroupsPerRow, stride = a.GroupStride;
        // Per row of a block: scales and scale x zero terms (GroupStride + 8 each: permutes read up to 7 past the
        // last group), a zero-padded copy of the row's end (64 floats = 256 bytes) and 8 accumulators of 8 floats.
        int terms = stride + 8, perRowFloats = 2 * terms + 64 + 8 * 8;
        perRowFloats = (perRowFloats + 15) & ~15;
        int need = RowBlock * perRowFloats + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<float>(Math.Max(need, 1024), pinned: true);
        float* block = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        new Span<float>(block, need - 16).Clear();

        int unitCodes = 32 * TDecode.Parts, log2U = System.Numerics.BitOperations.Log2((uint)unitCodes);
        int units = a.Padded >> log2U;
        int unitBytes = TDecode.UnitBytes, loadBytes = TDecode.LoadBytes, rowBytes = a.RowBytes;
        // Units whose load stays inside the row read it in place; the rest read a zero-padded copy of the row's end.
        int fullUnits = rowBytes < loadBytes ? 0 : Math.Min(units, (rowBytes - loadBytes) / unitBytes + 1);
        int tailBytes = rowBytes - fullUnits * unitBytes;

        bool perRow = gpr == 1;
        int log2G = perRow ? 31 : System.Numerics.BitOperations.Log2((uint)a.GroupSize);
        bool permute = !perRow && a.GroupSize < unitCodes;
        bool pairs = PairedUnits(a.Bits, a.GroupSize, gpr);
        var index = Vector256<int>.Zero;
        if (permute)
        {
            int* ix = stackalloc int[8];
            for (int k = 0; k < 8; k++) ix[k] = TDecode.FirstCodeOfLane(k) >> log2G;
            index = Vector256.Load(ix);
        }
        // Units per integer accumulation: a whole group when it spans several units (a per-row group: 4096 units,
        // far below int32 overflow), else one unit scaled lane-wise.
        int span = permute ? 1 : perRow ? 4096 : Math.Max(1, a.GroupSize >> log2U);
        var ones = Vector256.Create((short)1);
        int n = TBatch.Count;

        // Chunks of the row keep the batch tile's activations L1-resident (at most 16 KiB); a group never straddles
        // two chunks (chunks are a power-of-two number of units, groups at most 256 codes).
        int chunkUnits = Math.Max(1, (16384 / TBatch.Count) >> log2U);
        span = Math.Min(span, chunkUnits);
        int last = a.Batch - 1;

        // Row blocks only pay when several batch tiles reread the block's rows (from L2); one tile streams row by row.
        int rowBlock = a.Batch > n ? RowBlock : 1;
        for (int r0 = start; r0 < end; r0 += rowBlock)
        {
            int r1 = Math.Min(end, r0 + rowBlock);
            for (int r = r0; r < r1; r++)
            {
                float* rb = block + (r - r0) * perRowFloats;
                ScaleTerms(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr, 1 << (a.Bits - 1), CodeOffset(a.Bits), rb, rb + terms, gpr);
                if (tailBytes > 0) Buffer.MemoryCopy(a.Packed + (nint)r * rowBytes + fullUnits * unitBytes, rb + 2 * terms, 256, tailBytes);
            }

            for (int b0 = 0; b0 < a.Batch; b0 += n)
            {
                // Rows past the batch alias its last row; their results are not stored.
                sbyte* x0 = a.Q + (nint)b0 * a.Padded;
                sbyte* x1 = a.Q + (nint)Math.Min(b0 + 1, last) * a.Padded;
                sbyte* x2 = a.Q + (nint)Math.Min(b0 + 2, last) * a.Padded;
                sbyte* x3 = a.Q + (nint)Math.Min(b0 + 3, last) * a.Padded;
                sbyte* x4 = a.Q + (nint)Math.Min(b0 + 4, last) * a.Padded;
                sbyte* x5 = a.Q + (nint)Math.Min(b0 + 5, last) * a.Padded;
                sbyte* x6 = a.Q + (nint)Math.Min(b0 + 6, last) * a.Padded;
                sbyte* x7 = a.Q + (nint)Math.Min(b0 + 7, last) * a.Padded;
                for (int r = r0; r < r1; r++) new Span<float>(block + (r - r0) * perRowFloats + 2 * terms + 64, 8 * 8).Clear();

                for (int c0 = 0; c0 < units; c0 += chunkUnits)
                {
                    int c1 = Math.Min(units, c0 + chunkUnits);
                    for (int r = r0; r < r1; r++)
                    {
                        byte* row = a.Packed + (nint)r * rowBytes;
                        float* sf = block + (r - r0) * perRowFloats;
                        byte* tail = (byte*)(sf + 2 * terms);
                        float* acc = sf + 2 * terms + 64;

                        if (pairs)
                            PairRows<TDecode, TMul, TBatch>(row, tail, c0, c1, fullUnits, unitBytes, log2U, sf, acc, x0, x1, x2, x3, x4, x5, x6, x7, ones);
                        else if (span == 1)
                            UnitRows<TDecode, TMul, TBatch>(row, tail, c0, c1, fullUnits, unitBytes, log2U, log2G, sf, permute, index, acc, x0, x1, x2, x3, x4, x5, x6, x7, ones);
                        else
                            GroupRows<TDecode, TMul, TBatch>(row, tail, c0, c1, span, fullUnits, unitBytes, log2U, log2G, sf, acc, x0, x1, x2, x3, x4, x5, x6, x7, ones);
                    }
                }

                int count = Math.Min(n, a.Batch - b0);
                float* gs = a.GroupSums + (nint)b0 * stride;
                for (int r = r0; r < r1; r++)
                {
                    float* szf = block + (r - r0) * perRowFloats + terms;
                    float* acc = szf + terms + 64;
                    float* y = a.Y + (nint)b0 * a.Out + r;
                    for (int k = 0; k < count; k++)
                    {
                        // Zero points: subtract sum_g s_g (z_g - offset) Q_g, lane-wise, before the one horizontal sum.
                        var sum = Vector256.Load(acc + 8 * k);
                        float* gk = gs + k * stride;
                        for (int g = 0; g < stride; g += 8) sum -= Vector256.Load(szf + g) * Vector256.Load(gk + g);
                        y[(nint)k * a.Out] = a.RowScale[b0 + k] * Vector256.Sum(sum);
                    }
                }
            }
        }
    }

    // The three loops below are separate methods (not inlined) so that each gets the JIT's full register
    // allocation and inlining budget; they run once per row and chunk of at least 16 units.

    /// <summary>Units [c0, c1) of one weight row, one unit at a time, each lane scaled by its group's scale.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void UnitRows<TDecode, TMul, TBatch>(byte* row, byte* tail, int c0, int c1, int fullUnits, int unitBytes, int log2U, int log2G,
        float* sf, bool permute, Vector256<int> index, float* acc, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, sbyte* x4, sbyte* x5, sbyte* x6, sbyte* x7,
        Vector256<short> ones)
        where TDecode : struct, IDecode where TMul : struct, IMultiply where TBatch : struct, IBatch
    {
        var a0 = Vector256.Load(acc);
        var a1 = TBatch.Count > 1 ? Vector256.Load(acc + 8) : default;
        var a2 = TBatch.Count > 2 ? Vector256.Load(acc + 16) : default;
        var a3 = TBatch.Count > 2 ? Vector256.Load(acc + 24) : default;
        var a4 = TBatch.Count > 4 ? Vector256.Load(acc + 32) : default;
        var a5 = TBatch.Count > 4 ? Vector256.Load(acc + 40) : default;
        var a6 = TBatch.Count > 4 ? Vector256.Load(acc + 48) : default;
        var a7 = TBatch.Count > 4 ? Vector256.Load(acc + 56) : default;
        if (TBatch.Count == 1)
        {
            // One row: even and odd units feed two FMA chains, halving the latency each unit waits for.
            var odd = Vector256<float>.Zero;
            int u = c0;
            for (; u + 1 < c1; u += 2)
            {
                a0 = Unit1<TDecode, TMul>(row, tail, u, fullUnits, unitBytes, log2U, log2G, sf, permute, index, x0, ones, a0);
                odd = Unit1<TDecode, TMul>(row, tail, u + 1, fullUnits, unitBytes, log2U, log2G, sf, permute, index, x0, ones, odd);
            }
            if (u < c1) a0 = Unit1<TDecode, TMul>(row, tail, u, fullUnits, unitBytes, log2U, log2G, sf, permute, index, x0, ones, a0);
            a0 += odd;
        }
        else for (int u = c0; u < c1; u++)
        {
            byte* w = u < fullUnits ? row + u * unitBytes : tail + (u - fullUnits) * unitBytes;
            Ahead(w);
            TDecode.Decode<TMul>(w, out var w0, out var w1, out var w2, out var w3);
            int first = u << log2U;
            var scale = permute
                ? Avx2.PermuteVar8x32(Vector256.Load(sf + (first >> log2G)), index)
                : Vector256.Create(sf[first >> log2G]);
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x0 + first, ones)), scale, a0);
            if (TBatch.Count > 1) a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x1 + first, ones)), scale, a1);
            if (TBatch.Count > 2)
            {
                a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x2 + first, ones)), scale, a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x3 + first, ones)), scale, a3);
            }
            if (TBatch.Count > 4)
            {
                a4 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x4 + first, ones)), scale, a4);
                a5 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x5 + first, ones)), scale, a5);
                a6 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x6 + first, ones)), scale, a6);
                a7 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes<TDecode, TMul>(w0, w1, w2, w3, x7 + first, ones)), scale, a7);
            }
        }
        a0.Store(acc);
        if (TBatch.Count > 1) a1.Store(acc + 8);
        if (TBatch.Count > 2) { a2.Store(acc + 16); a3.Store(acc + 24); }
        if (TBatch.Count > 4) { a4.Store(acc + 32); a5.Store(acc + 40); a6.Store(acc + 48); a7.Store(acc + 56); }
    }

    /// <summary>Units [c0, c1) of one weight row in groups of <paramref name="span"/> units: integer sums per group, one FMA per group.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void GroupRows<TDecode, TMul, TBatch>(byte* row, byte* tail, int c0, int c1, int span, int fullUnits, int unitBytes, int log2U, int log2G,
        float* sf, float* acc, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, sbyte* x4, sbyte* x5, sbyte* x6, sbyte* x7, Vector256<short> ones)
        where TDecode : struct, IDecode where TMul : struct, IMultiply where TBatch : struct, IBatch
    {
        // Groups of several units: integer lanes accumulate over the group, then one float FMA per
        // group; up to 4 rows keep the float sums in registers, a tile of 8 keeps them in L1 (16 AVX2
        // registers hold the 8 integer sums and the decoded codes, not 8 more).
        var f0 = Vector256.Load(acc);
        var f1 = TBatch.Count is > 1 and <= 4 ? Vector256.Load(acc + 8) : default;
        var f2 = TBatch.Count is > 2 and <= 4 ? Vector256.Load(acc + 16) : default;
        var f3 = TBatch.Count is > 2 and <= 4 ? Vector256.Load(acc + 24) : default;
        int start = c0;
        if (TBatch.Count == 1)
        {
            // One row: two groups per step, each with its own integer and float chain (one chain waits on latency).
            var odd = Vector256<float>.Zero;
            for (; start + 2 * span <= c1; start += 2 * span)
            {
                var ia = Vector256<int>.Zero; var ib = ia;
                for (int k = 0; k < span; k++)
                {
                    ia += UnitLanes<TDecode, TMul>(row, tail, start + k, fullUnits, unitBytes, log2U, x0, ones);
                    ib += UnitLanes<TDecode, TMul>(row, tail, start + span + k, fullUnits, unitBytes, log2U, x0, ones);
                }
                f0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(ia), Vector256.Create(sf[(start << log2U) >> log2G]), f0);
                odd = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(ib), Vector256.Create(sf[((start + span) << log2U) >> log2G]), odd);
            }
            f0 += odd;
        }
        for (int u0 = start; u0 < c1; u0 += span)
        {
            int u1 = Math.Min(c1, u0 + span);
            var i0 = Vector256<int>.Zero; var i1 = i0; var i2 = i0; var i3 = i0; var i4 = i0; var i5 = i0; var i6 = i0; var i7 = i0;
            if (TBatch.Count == 1)
            {
                // One row: even and odd units feed two integer chains.
                int u = u0;
                for (; u + 1 < u1; u += 2)
                {
                    i0 += UnitLanes<TDecode, TMul>(row, tail, u, fullUnits, unitBytes, log2U, x0, ones);
                    i1 += UnitLanes<TDecode, TMul>(row, tail, u + 1, fullUnits, unitBytes, log2U, x0, ones);
                }
                if (u < u1) i0 += UnitLanes<TDecode, TMul>(row, tail, u, fullUnits, unitBytes, log2U, x0, ones);
                i0 += i1;
            }
            else for (int u = u0; u < u1; u++)
            {
                byte* w = u < fullUnits ? row + u * unitBytes : tail + (u - fullUnits) * unitBytes;
                Ahead(w);
                TDecode.Decode<TMul>(w, out var w0, out var w1, out var w2, out var w3);
                int first = u << log2U;
                i0 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x0 + first, ones);
                if (TBatch.Count > 1) i1 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x1 + first, ones);
                if (TBatch.Count > 2)
                {
                    i2 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x2 + first, ones);
                    i3 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x3 + first, ones);
                }
                if (TBatch.Count > 4)
                {
                    i4 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x4 + first, ones);
                    i5 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x5 + first, ones);
                    i6 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x6 + first, ones);
                    i7 += Lanes<TDecode, TMul>(w0, w1, w2, w3, x7 + first, ones);
                }
            }
            var scale = Vector256.Create(sf[(u0 << log2U) >> log2G]);
            if (TBatch.Count <= 4)
            {
                f0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i0), scale, f0);
                if (TBatch.Count > 1) f1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i1), scale, f1);
                if (TBatch.Count > 2)
                {
                    f2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i2), scale, f2);
                    f3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(i3), scale, f3);
                }
            }
            else
            {
                Fold(acc, i0, scale); Fold(acc + 8, i1, scale); Fold(acc + 16, i2, scale); Fold(acc + 24, i3, scale);
                Fold(acc + 32, i4, scale); Fold(acc + 40, i5, scale); Fold(acc + 48, i6, scale); Fold(acc + 56, i7, scale);
            }
        }
        if (TBatch.Count <= 4)
        {
            f0.Store(acc);
            if (TBatch.Count > 1) f1.Store(acc + 8);
            if (TBatch.Count > 2) { f2.Store(acc + 16); f3.Store(acc + 24); }
        }
    }

    private static readonly Vector256<int> s_pairIndex = Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1);

    /// <summary>Units [c0, c1) of one weight row in pairs (see <see cref="PairedUnits"/>): group u in lanes 0-3, u + 1 in lanes 4-7.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void PairRows<TDecode, TMul, TBatch>(byte* row, byte* tail, int c0, int c1, int fullUnits, int unitBytes, int log2U,
        float* sf, float* acc, sbyte* x0, sbyte* x1, sbyte* x2, sbyte* x3, sbyte* x4, sbyte* x5, sbyte* x6, sbyte* x7, Vector256<short> ones)
        where TDecode : struct, IDecode where TMul : struct, IMultiply where TBatch : struct, IBatch
    {
        var a0 = Vector256.Load(acc);
        var a1 = TBatch.Count > 1 ? Vector256.Load(acc + 8) : default;
        var a2 = TBatch.Count > 2 ? Vector256.Load(acc + 16) : default;
        var a3 = TBatch.Count > 2 ? Vector256.Load(acc + 24) : default;
        var a4 = TBatch.Count > 4 ? Vector256.Load(acc + 32) : default;
        var a5 = TBatch.Count > 4 ? Vector256.Load(acc + 40) : default;
        var a6 = TBatch.Count > 4 ? Vector256.Load(acc + 48) : default;
        var a7 = TBatch.Count > 4 ? Vector256.Load(acc + 56) : default;
        int half = 32 * TDecode.Parts;
        for (int u = c0; u < c1; u += 2)
        {
            byte* pa = u < fullUnits ? row + u * unitBytes : tail + (u - fullUnits) * unitBytes;
            Ahead(pa);
            byte* pb = u + 1 < fullUnits ? row + (u + 1) * unitBytes : tail + (u + 1 - fullUnits) * unitBytes;
            TDecode.DecodeRaw<TMul>(Vector256.Create(Vector128.Load(pa), Vector128.Load(pb)), out var w0, out var w1, out var w2, out var w3);
            TDecode.DecodeRaw<TMul>(Vector256.Create(Vector128.Load(pa + 16), Vector128.Load(pb + 16)), out var v0, out var v1, out var v2, out var v3);
            var scale = Avx2.PermuteVar8x32(Vector256.Load(sf + u), s_pairIndex);
            int first = u << log2U;
            a0 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x0 + first, half, ones)), scale, a0);
            if (TBatch.Count > 1) a1 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x1 + first, half, ones)), scale, a1);
            if (TBatch.Count > 2)
            {
                a2 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x2 + first, half, ones)), scale, a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x3 + first, half, ones)), scale, a3);
            }
            if (TBatch.Count > 4)
            {
                a4 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x4 + first, half, ones)), scale, a4);
                a5 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x5 + first, half, ones)), scale, a5);
                a6 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x6 + first, half, ones)), scale, a6);
                a7 = Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(Lanes2<TDecode, TMul>(w0, w1, w2, w3, v0, v1, v2, v3, x7 + first, half, ones)), scale, a7);
            }
        }
        a0.Store(acc);
        if (TBatch.Count > 1) a1.Store(acc + 8);
        if (TBatch.Count > 2) { a2.Store(acc + 16); a3.Store(acc + 24); }
        if (TBatch.Count > 4) { a4.Store(acc + 32); a5.Store(acc + 40); a6.Store(acc + 48); a7.Store(acc + 56); }
    }

    /// <summary>Lane sums of both halves of a unit pair: half 0's registers w at x, half 1's v at x + half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Lanes2<TDecode, TMul>(Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3,
        Vector256<byte> v0, Vector256<byte> v1, Vector256<byte> v2, Vector256<byte> v3, sbyte* x, int half, Vector256<short> ones)
        where TDecode : struct, IDecode where TMul : struct, IMultiply
    {
        if (TMul.IsVnni)
        {
            var t = Lanes<TDecode, TMul>(w0, w1, w2, w3, x, ones);
            t = AvxVnni.MultiplyWideningAndAdd(t, v0, Vector256.Load(x + half));
            if (TDecode.Parts > 1) t = AvxVnni.MultiplyWideningAndAdd(t, v1, Vector256.Load(x + half + 32));
            if (TDecode.Parts > 2)
            {
                t = AvxVnni.MultiplyWideningAndAdd(t, v2, Vector256.Load(x + half + 64));
                t = AvxVnni.MultiplyWideningAndAdd(t, v3, Vector256.Load(x + half + 96));
            }
            return t;
        }
        return Lanes<TDecode, TMul>(w0, w1, w2, w3, x, ones) + Lanes<TDecode, TMul>(v0, v1, v2, v3, x + half, ones);
    }

    /// <summary>
    /// Software prefetch about 6 KB ahead of a unit being read (past the 4 KB pages the hardware streamer stops at), as
    /// the AVX-512 loops do: one hint per unit, so every 64-byte line is requested at least once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Ahead(byte* w) => Sse.Prefetch0(w + 6144);

    /// <summary>Unit u's lane sums with activation row x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> UnitLanes<TDecode, TMul>(byte* row, byte* tail, int u, int fullUnits, int unitBytes, int log2U, sbyte* x, Vector256<short> ones)
        where TDecode : struct, IDecode where TMul : struct, IMultiply
    {
        byte* w = u < fullUnits ? row + u * unitBytes : tail + (u - fullUnits) * unitBytes;
        Ahead(w);
        TDecode.Decode<TMul>(w, out var w0, out var w1, out var w2, out var w3);
        return Lanes<TDecode, TMul>(w0, w1, w2, w3, x + (u << log2U), ones);
    }

    /// <summary>acc + unit u's lane sums with activation row x, scaled lane-wise by their groups' scales.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Unit1<TDecode, TMul>(byte* row, byte* tail, int u, int fullUnits, int unitBytes, int log2U, int log2G,
        float* sf, bool permute, Vector256<int> index, sbyte* x, Vector256<short> ones, Vector256<float> acc)
        where TDecode : struct, IDecode where TMul : struct, IMultiply
    {
        int first = u << log2U;
        var scale = permute ? Avx2.PermuteVar8x32(Vector256.Load(sf + (first >> log2G)), index) : Vector256.Create(sf[first >> log2G]);
        var lanes = UnitLanes<TDecode, TMul>(row, tail, u, fullUnits, unitBytes, log2U, x, ones);
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(lanes), scale, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fold(float* acc, Vector256<int> lanes, Vector256<float> scale) =>
        Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(lanes), scale, Vector256.Load(acc)).Store(acc);

    /// <summary>The 8 int32 lane sums of the unit's codes times activations x.</summary>
    /// <remarks>VNNI chains start from zero per unit: accumulating in place would make every unit wait for the
    /// previous unit's vpdpbusd latency; the caller's one vpaddd per unit keeps the loop-carried chain short.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Lanes<TDecode, TMul>(Vector256<byte> w0, Vector256<byte> w1, Vector256<byte> w2, Vector256<byte> w3,
        sbyte* x, Vector256<short> ones) where TDecode : struct, IDecode where TMul : struct, IMultiply
    {
        if (TMul.IsVnni)
        {
            var t = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, w0, Vector256.Load(x));
            if (TDecode.Parts > 1) t = AvxVnni.MultiplyWideningAndAdd(t, w1, Vector256.Load(x + 32));
            if (TDecode.Parts > 2)
            {
                t = AvxVnni.MultiplyWideningAndAdd(t, w2, Vector256.Load(x + 64));
                t = AvxVnni.MultiplyWideningAndAdd(t, w3, Vector256.Load(x + 96));
            }
            return t;
        }
        var v0 = Vector256.Load(x);
        // 8 bits: w0 = |u - 128|, w1 = u - 128, whose sign moves onto the input (vpsignb zeroes where u = 128: w0 is 0 there too).
        if (TDecode.Signed) v0 = Avx2.Sign(v0, w1.AsSByte());
        var s = Avx2.MultiplyAddAdjacent(w0, v0);
        if (TDecode.Parts > 1) s += Avx2.MultiplyAddAdjacent(w1, Vector256.Load(x + 32));
        if (TDecode.Parts > 2)
        {
            s += Avx2.MultiplyAddAdjacent(w2, Vector256.Load(x + 64));
            s += Avx2.MultiplyAddAdjacent(w3, Vector256.Load(x + 96));
        }
        return Avx2.MultiplyAddAdjacent(s, ones);
    }

    /// <summary>
    /// sf[g] = s_g as float32; szf[g] = s_g * (z_g - offset), z_g = 2^(b-1) when symmetric. Per-row set-up of both the
    /// 256- and the 512-bit kernels (8 groups per step is plenty next to the row's codes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ScaleTerms(Half* scales, byte* zeros, int symmetricZero, int offset, float* sf, float* szf, int count)
    {
        int g = 0;
        // float16 to float32: (h & 0x7FFF) << 13 read as float, times 2^112, is exact for normal and subnormal halves;
        // the sign bit moves to bit 31 (symmetric scales may be negative).
        var magic = Vector256.Create(5.192297e33f);
        var mask = Vector256.Create(0x7FFFu);
        var sign = Vector256.Create(0x8000u);
        var zsym = Vector256.Create((float)(symmetricZero - offset));
        var off = Vector256.Create(offset);
        for (; g + 8 <= count; g += 8)
        {
            var h = Vector256.WidenLower(Vector128.Load((ushort*)scales + g).ToVector256Unsafe());
            var s = (((h & mask) << 13) | ((h & sign) << 16)).AsSingle() * magic;
            s.Store(sf + g);
            Vector256<float> z;
            if (zeros == null) z = zsym;
            else
            {
                var zb = Vector256.WidenLower(Vector256.WidenLower(Vector128.CreateScalar(*(ulong*)(zeros + g)).AsByte().ToVector256Unsafe()));
                z = Vector256.ConvertToSingle(zb.AsInt32() - off);
            }
            (s * z).Store(szf + g);
        }
        for (; g < count; g++)
        {
            float s = (float)scales[g];
            sf[g] = s;
            szf[g] = s * ((zeros == null ? symmetricZero : zeros[g]) - offset);
        }
    }

    private interface IMultiply
    {
        static abstract bool IsVnni { get; }
    }

    private struct Vnni : IMultiply { public static bool IsVnni => true; }
    private struct MaddUbs : IMultiply { public static bool IsVnni => false; }

    private interface IBatch
    {
        static abstract int Count { get; }
    }

    private struct Batch1 : IBatch { public static int Count => 1; }
    private struct Batch2 : IBatch { public static int Count => 2; }
    private struct Batch4 : IBatch { public static int Count => 4; }
    private struct Batch8 : IBatch { public static int Count => 8; }

    private interface IDecode
    {
        static abstract int Parts { get; }
        static abstract int UnitBytes { get; }
        static abstract int LoadBytes { get; }
        static abstract bool Signed { get; }
        /// <summary>The lowest code (within the unit) that int32 lane k sums.</summary>
        static abstract int FirstCodeOfLane(int k);
        static abstract void Decode<TMul>(byte* p, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply;
        /// <summary>Decodes 32 packed bytes already in a register (byte-local widths only).</summary>
        static abstract void DecodeRaw<TMul>(Vector256<byte> v, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply;
    }

    /// <summary>8 bits: 32 codes as they are (VNNI), or |u - 128| in w0 with u - 128 in w1 (AVX2).</summary>
    private struct Bytes : IDecode
    {
        public static int Parts => 1;
        public static int UnitBytes => 32;
        public static int LoadBytes => 32;
        public static bool Signed => true;
        public static int FirstCodeOfLane(int k) => 4 * k;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode<TMul>(byte* p, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            DecodeRaw<TMul>(Vector256.Load(p), out w0, out w1, out w2, out w3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void DecodeRaw<TMul>(Vector256<byte> v, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            w2 = w3 = default;
            if (TMul.IsVnni)
            {
                w0 = v;
                w1 = default;
                return;
            }
            var s = (v ^ Vector256.Create((byte)0x80)).AsSByte();
            w0 = Vector256.Abs(s).AsByte();
            w1 = s.AsByte();
        }
    }

    /// <summary>4 bits: byte j holds codes 2j (low nibble) and 2j + 1 (high nibble).</summary>
    private struct Nibbles : IDecode
    {
        public static int Parts => 2;
        public static int UnitBytes => 32;
        public static int LoadBytes => 32;
        public static bool Signed => false;
        public static int FirstCodeOfLane(int k) => 8 * k;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode<TMul>(byte* p, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            DecodeRaw<TMul>(Vector256.Load(p), out w0, out w1, out w2, out w3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void DecodeRaw<TMul>(Vector256<byte> v, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            var mask = Vector256.Create((byte)0x0F);
            w0 = v & mask;
            w1 = (v.AsUInt16() >> 4).AsByte() & mask;
            w2 = w3 = default;
        }
    }

    /// <summary>2 bits: byte j holds codes 4j .. 4j + 3, lowest bits first.</summary>
    private struct Crumbs : IDecode
    {
        public static int Parts => 4;
        public static int UnitBytes => 32;
        public static int LoadBytes => 32;
        public static bool Signed => false;
        public static int FirstCodeOfLane(int k) => 16 * k;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode<TMul>(byte* p, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            DecodeRaw<TMul>(Vector256.Load(p), out w0, out w1, out w2, out w3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void DecodeRaw<TMul>(Vector256<byte> v, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            var mask = Vector256.Create((byte)3);
            var v16 = v.AsUInt16();
            w0 = v & mask;
            w1 = (v16 >> 2).AsByte() & mask;
            w2 = (v16 >> 4).AsByte() & mask;
            w3 = (v16 >> 6).AsByte() & mask;
        }
    }

    /// <summary>3 bits: 12 bytes hold 32 codes, decoded into the order of <see cref="s_order3"/>.</summary>
    private struct Triples : IDecode
    {
        public static int Parts => 1;
        public static int UnitBytes => 12;
        public static int LoadBytes => 16;
        public static bool Signed => false;
        public static int FirstCodeOfLane(int k) => s_order3[4 * k];

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode<TMul>(byte* p, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply
        {
            var v = Avx2.BroadcastVector128ToVector256(p);
            var mask = Vector256.Create(0x00070007u);
            var lo = Avx2.ShiftRightLogicalVariable(Avx2.Shuffle(v, s_shuffle3A).AsUInt32(), s_shift3) & mask;
            var hi = Avx2.ShiftRightLogicalVariable(Avx2.Shuffle(v, s_shuffle3B).AsUInt32(), s_shift3) & mask;
            w0 = Avx2.PackUnsignedSaturate(lo.AsInt16(), hi.AsInt16());
            w1 = w2 = w3 = default;
        }

        // 3-bit codes straddle bytes, so 3-bit units are never paired (PairedUnits).
        public static void DecodeRaw<TMul>(Vector256<byte> v, out Vector256<byte> w0, out Vector256<byte> w1, out Vector256<byte> w2, out Vector256<byte> w3)
            where TMul : struct, IMultiply => throw new NotSupportedException();
    }
}
