using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// The AVX-512 int8-activation kernel: decodes the packed codes in registers straight from the stored row (no
/// unpacked copy) and multiplies each decoded unit with up to 8 activation rows.
/// </summary>
/// <remarks>
/// <para>A unit is one 64-byte load of packed codes (48 bytes used at 3 bits): 64 codes at 8 bits, 128 at 4 and 3
/// bits, 256 at 2 bits. One AND, or one GFNI affine transform (a shift and an AND without GFNI), per field gives
/// P = 2 or 4 registers of 64 codes each, register p holding codes P*j + p of the unit (at 3 bits after a byte
/// permute and a multishift put two codes in each byte);
/// the activations are laid out once per call in the same order (<see cref="Interleave"/>), so the stored format is
/// read as it is.</para>
/// <para>vpmaddubsw sums of the P registers stay below 2^15 (P * 2 * 15 * 127 at most), one vpmaddwd widens them to
/// 16 int32 lanes, lane k covering codes [k*L, (k+1)*L) of the unit with L = unit / 16 &lt;= 16 &lt;= G, so each
/// lane lies in one group and is scaled by its group's scale (a broadcast, or a permute when G &lt; unit).</para>
/// </remarks>
internal static unsafe partial class FusedInt8Dot
{
    /// <summary>True when this machine runs the fused kernel for <paramref name="bits"/> at 512 bits.</summary>
    public static bool IsSupported(int bits) => Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && (bits != 3 || Avx512Vbmi.IsSupported);

    /// <summary>Registers (fields) per unit.</summary>
    public static int Parts(int bits) => bits switch { 4 or 3 => 2, 2 => 4, _ => 1 };

    /// <summary>Codes per unit: the activation rows are zero-padded to a multiple of it.</summary>
    public static int UnitCodes(int bits) => 64 * Parts(bits);

    /// <summary>Reorders a zero-padded row of int8 activations in place: within each unit, part p holds codes parts*j + p.</summary>
    public static void Interleave(sbyte* q, int padded, int parts)
    {
        if (parts == 1) return;
        int unit = 64 * parts;
        sbyte* tmp = stackalloc sbyte[256];
        for (int u = 0; u < padded; u += unit)
        {
            Buffer.MemoryCopy(q + u, tmp, 256, unit);
            if (parts == 2 && Avx512Vbmi.IsSupported)
            {
                var a = Vector512.Load(tmp).AsByte();
                var b = Vector512.Load(tmp + 64).AsByte();
                Avx512Vbmi.PermuteVar64x8x2(a, s_even, b).Store((byte*)q + u);
                Avx512Vbmi.PermuteVar64x8x2(a, s_even + Vector512<byte>.One, b).Store((byte*)q + u + 64);
                continue;
            }
            for (int p = 0; p < parts; p++)
                for (int j = 0; j < 64; j++) q[u + 64 * p + j] = tmp[parts * j + p];
        }
    }

    private static readonly Vector512<byte> s_even = Even();

    private static Vector512<byte> Even()
    {
        var e = new byte[64];
        for (int j = 0; j < 64; j++) e[j] = (byte)(2 * j);
        return Vector512.Create(e);
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
        public int GroupStride;   // multiple of 16
        public int CodeOffset;    // 128 for 8 bits (codes enter as |u - 128|), else 0
        public float* Y;
    }

    /// <summary>Computes output rows [start, end) for every batch row.</summary>
    public static void Rows(in Args a, int start, int end)
    {
        switch (a.Bits)
        {
            case 4: RowsFor<Nibbles>(a, start, end); break;
            case 2: RowsFor<Crumbs>(a, start, end); break;
            case 3: RowsFor<Triples>(a, start, end); break;
            default: RowsFor<Bytes>(a, start, end); break;
        }
    }

    private static void RowsFor<TDecode>(in Args a, int start, int end) where TDecode : struct, IDecode
    {
        if (a.Batch == 1) Gemv<TDecode>(a, start, end);
        else if (a.Batch == 2) Batched<TDecode, Batch2>(a, start, end);
        else if (a.Batch <= 4) Batched<TDecode, Batch4>(a, start, end);
        else Batched<TDecode, Batch8>(a, start, end);
    }

    [ThreadStatic] private static float[]? t_scratch;

    private const int RowBlock = 16;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TDecode, TBatch>(in Args a, int start, int end)
        where TDecode : struct, IDecode where TBatch : struct, IBatch
    {
        int gpr = a.GroupsPerRow, stride = a.GroupStride;
        // Per row of a block: scales and scale x zero terms (GroupStride + 16 each: permutes read up to 15 past the
        // last group), a zero-padded copy of the row's end (64 floats = 256 bytes) and 8 accumulators of 16 floats.
        int terms = stride + 16, perRowFloats = 2 * terms + 64 + 8 * 16;
        int need = RowBlock * perRowFloats + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<float>(Math.Max(need, 1024), pinned: true);
        float* block = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        new Span<float>(block, need - 16).Clear();

        int unitCodes = 64 * TDecode.Parts, log2U = System.Numerics.BitOperations.Log2((uint)unitCodes);
        int units = a.Padded >> log2U;
        int unitBytes = TDecode.UnitBytes, loadBytes = TDecode.LoadBytes, rowBytes = a.RowBytes;
        // Units whose load stays inside the row read it in place; the rest read a zero-padded copy of the row's end.
        int fullUnits = rowBytes < loadBytes ? 0 : Math.Min(units, (rowBytes - loadBytes) / unitBytes + 1);
        int tailBytes = rowBytes - fullUnits * unitBytes;

        bool perRow = gpr == 1;
        int log2G = perRow ? 31 : System.Numerics.BitOperations.Log2((uint)a.GroupSize);
        bool permute = !perRow && a.GroupSize < unitCodes;
        var index = Vector512<int>.Zero;
        if (permute)
        {
            int lane = unitCodes / 16;
            int* ix = stackalloc int[16];
            for (int k = 0; k < 16; k++) ix[k] = (k * lane) >> log2G;
            index = Vector512.Load(ix);
        }
        // Units per integer accumulation: a whole group when it spans several units (a per-row group: 4096 units,
        // far below int32 overflow), else one unit scaled lane-wise.
        int span = permute ? 1 : perRow ? 4096 : Math.Max(1, a.GroupSize >> log2U);
        var ones = Vector512.Create((short)1);
        TDecode.Constants(out var k0, out var k1, out var k2, out var k3);
        int symmetricZero = 1 << (a.Bits - 1);
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
                ScaleTerms(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr, symmetricZero, a.CodeOffset, rb, rb + terms, gpr);
                if (tailBytes > 0) Buffer.MemoryCopy(a.Packed + (nint)r * rowBytes + fullUnits * unitBytes, rb + 2 * terms, 256, tailBytes);
            }

            // The block's packed rows (at most 16 rows) stay in L2 while every batch tile reads them.
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
                        var a0 = Vector512.Load(acc);
                        var a1 = TBatch.Count > 1 ? Vector512.Load(acc + 16) : default;
                        var a2 = TBatch.Count > 2 ? Vector512.Load(acc + 32) : default;
                        var a3 = TBatch.Count > 2 ? Vector512.Load(acc + 48) : default;
                        var a4 = TBatch.Count > 4 ? Vector512.Load(acc + 64) : default;
                        var a5 = TBatch.Count > 4 ? Vector512.Load(acc + 80) : default;
                        var a6 = TBatch.Count > 4 ? Vector512.Load(acc + 96) : default;
                        var a7 = TBatch.Count > 4 ? Vector512.Load(acc + 112) : default;

                        if (span == 1)
                        {
                            for (int u = c0; u < c1; u++)
                            {
                                byte* w = u < fullUnits ? row + u * unitBytes : tail + (u - fullUnits) * unitBytes;
                                TDecode.Decode(w, k0, k1, k2, k3, out var w0, out var w1, out var w2, out var w3);
                                int first = u << log2U;
                                var scale = permute
                                    ? Avx512F.PermuteVar16x32(Vector512.Load(sf + (first >> log2G)), index)
                                    : Vector512.Create(sf[first >> log2G]);
                                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x0 + first, ones)), scale, a0);
                                if (TBatch.Count > 1) a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x1 + first, ones)), scale, a1);
                                if (TBatch.Count > 2)
                                {
                                    a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x2 + first, ones)), scale, a2);
                                    a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x3 + first, ones)), scale, a3);
                                }
                                if (TBatch.Count > 4)
                                {
                                    a4 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x4 + first, ones)), scale, a4);
                                    a5 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x5 + first, ones)), scale, a5);
                                    a6 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x6 + first, ones)), scale, a6);
                                    a7 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes<TDecode>(w0, w1, w2, w3, x7 + first, ones)), scale, a7);
                                }
                            }
                        }
                        else
                        {
                            // Groups of several units: integer lanes accumulate over the group, scaled once.
                            for (int u0 = c0; u0 < c1; u0 += span)
                            {
                                int u1 = Math.Min(c1, u0 + span);
                                var i0 = Vector512<int>.Zero; var i1 = i0; var i2 = i0; var i3 = i0; var i4 = i0; var i5 = i0; var i6 = i0; var i7 = i0;
                                for (int u = u0; u < u1; u++)
                                {
                                    byte* w = u < fullUnits ? row + u * unitBytes : tail + (u - fullUnits) * unitBytes;
                                    TDecode.Decode(w, k0, k1, k2, k3, out var w0, out var w1, out var w2, out var w3);
                                    int first = u << log2U;
                                    i0 += Lanes<TDecode>(w0, w1, w2, w3, x0 + first, ones);
                                    if (TBatch.Count > 1) i1 += Lanes<TDecode>(w0, w1, w2, w3, x1 + first, ones);
                                    if (TBatch.Count > 2)
                                    {
                                        i2 += Lanes<TDecode>(w0, w1, w2, w3, x2 + first, ones);
                                        i3 += Lanes<TDecode>(w0, w1, w2, w3, x3 + first, ones);
                                    }
                                    if (TBatch.Count > 4)
                                    {
                                        i4 += Lanes<TDecode>(w0, w1, w2, w3, x4 + first, ones);
                                        i5 += Lanes<TDecode>(w0, w1, w2, w3, x5 + first, ones);
                                        i6 += Lanes<TDecode>(w0, w1, w2, w3, x6 + first, ones);
                                        i7 += Lanes<TDecode>(w0, w1, w2, w3, x7 + first, ones);
                                    }
                                }
                                var scale = Vector512.Create(sf[(u0 << log2U) >> log2G]);
                                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i0), scale, a0);
                                if (TBatch.Count > 1) a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i1), scale, a1);
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
                        }

                        a0.Store(acc);
                        if (TBatch.Count > 1) a1.Store(acc + 16);
                        if (TBatch.Count > 2) { a2.Store(acc + 32); a3.Store(acc + 48); }
                        if (TBatch.Count > 4) { a4.Store(acc + 64); a5.Store(acc + 80); a6.Store(acc + 96); a7.Store(acc + 112); }
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
                        var sum = Vector512.Load(acc + 16 * k);
                        float* gk = gs + k * stride;
                        for (int g = 0; g < stride; g += 16) sum -= Vector512.Load(szf + g) * Vector512.Load(gk + g);
                        y[(nint)k * a.Out] = a.RowScale[b0 + k] * Vector512.Sum(sum);
                    }
                }
            }
        }
    }

    /// <summary>The 16 int32 lane sums of the unit's codes times activations x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Lanes<TDecode>(Vector512<byte> w0, Vector512<byte> w1, Vector512<byte> w2, Vector512<byte> w3,
        sbyte* x, Vector512<short> ones) where TDecode : struct, IDecode
    {
        var v0 = Vector512.Load(x);
        // 8 bits: w0 = |u - 128|, w1 = u - 128 (its sign moves onto the input).
        if (TDecode.Signed) v0 = Vector512.ConditionalSelect(Vector512.LessThan(w1.AsSByte(), Vector512<sbyte>.Zero), -v0, v0);
        var s = Avx512BW.MultiplyAddAdjacent(w0, v0);
        if (TDecode.Parts > 1) s += Avx512BW.MultiplyAddAdjacent(w1, Vector512.Load(x + 64));
        if (TDecode.Parts > 2)
        {
            s += Avx512BW.MultiplyAddAdjacent(w2, Vector512.Load(x + 128));
            s += Avx512BW.MultiplyAddAdjacent(w3, Vector512.Load(x + 192));
        }
        return Avx512BW.MultiplyAddAdjacent(s, ones);
    }

    /// <summary>sf[g] = s_g as float32; szf[g] = s_g * (z_g - offset), z_g = 2^(b-1) when symmetric.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleTerms(Half* scales, byte* zeros, int symmetricZero, int offset, float* sf, float* szf, int count)
    {
        int g = 0;
        // float16 to float32: (h & 0x7FFF) << 13 read as float, times 2^112, is exact for normal and subnormal halves.
        var magic = Vector512.Create(5.192297e33f);
        var mask = Vector512.Create(0x7FFFu);
        var zsym = Vector512.Create((float)(symmetricZero - offset));
        var off = Vector512.Create(offset);
        for (; g + 16 <= count; g += 16)
        {
            var h = Vector512.WidenLower(Vector256.Load((ushort*)scales + g).ToVector512Unsafe());
            var s = ((h & mask) << 13).AsSingle() * magic;
            s.Store(sf + g);
            Vector512<float> z;
            if (zeros == null) z = zsym;
            else
            {
                var zb = Vector512.WidenLower(Vector512.WidenLower(Vector128.Load(zeros + g).ToVector256Unsafe().ToVector512Unsafe()));
                z = Vector512.ConvertToSingle(zb.AsInt32() - off);
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

    private interface IBatch
    {
        static abstract int Count { get; }
    }

    private struct Batch2 : IBatch { public static int Count => 2; }
    private struct Batch4 : IBatch { public static int Count => 4; }
    private struct Batch8 : IBatch { public static int Count => 8; }

    private interface IDecode
    {
        static abstract int Parts { get; }
        static abstract int UnitBytes { get; }
        static abstract int LoadBytes { get; }
        static abstract bool Signed { get; }

        /// <summary>The decode's constant vectors, made once per loop so the JIT keeps them in registers.</summary>
        static abstract void Constants(out Vector512<byte> c0, out Vector512<byte> c1, out Vector512<byte> c2, out Vector512<byte> c3);

        static abstract void Decode(byte* p, Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2, Vector512<byte> c3, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3);
    }

    /// <summary>8 bits: 64 codes, entered as |u - 128| with the sign in w1.</summary>
    private struct Bytes : IDecode
    {
        public static int Parts => 1;
        public static int UnitBytes => 64;
        public static int LoadBytes => 64;
        public static bool Signed => true;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Constants(out Vector512<byte> c0, out Vector512<byte> c1, out Vector512<byte> c2, out Vector512<byte> c3)
        {
            c0 = Vector512.Create((byte)0x80);
            c1 = c2 = c3 = default;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode(byte* p, Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2, Vector512<byte> c3, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3)
        {
            var s = (Vector512.Load(p) ^ c0).AsSByte();
            w0 = Vector512.Abs(s).AsByte();
            w1 = s.AsByte();
            w2 = w3 = default;
        }
    }

    /// <summary>4 bits: byte j holds codes 2j (low nibble) and 2j + 1 (high nibble).</summary>
    private struct Nibbles : IDecode
    {
        public static int Parts => 2;
        public static int UnitBytes => 64;
        public static int LoadBytes => 64;
        public static bool Signed => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Constants(out Vector512<byte> c0, out Vector512<byte> c1, out Vector512<byte> c2, out Vector512<byte> c3)
        {
            c0 = Vector512.Create((byte)0x0F);
            // GF(2) bit matrix taking bits 4-7 of each byte to bits 0-3 (row 7 - i picks the input of output bit i).
            c1 = Vector512.Create(0x1020408000000000UL).AsByte();
            c2 = c3 = default;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode(byte* p, Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2, Vector512<byte> c3, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3)
        {
            var v = Vector512.Load(p);
            w0 = v & c0;
            // One affine transform is the shift and the mask in one instruction.
            w1 = Gfni.V512.IsSupported ? Gfni.V512.GaloisFieldAffineTransform(v, c1, 0) : (v.AsUInt16() >> 4).AsByte() & c0;
            w2 = w3 = default;
        }
    }

    /// <summary>2 bits: byte j holds codes 4j .. 4j + 3, lowest bits first.</summary>
    private struct Crumbs : IDecode
    {
        public static int Parts => 4;
        public static int UnitBytes => 64;
        public static int LoadBytes => 64;
        public static bool Signed => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Constants(out Vector512<byte> c0, out Vector512<byte> c1, out Vector512<byte> c2, out Vector512<byte> c3)
        {
            c0 = Vector512.Create((byte)3);
            // GF(2) bit matrices taking bits 2-3, 4-5 and 6-7 of each byte to bits 0-1.
            c1 = Vector512.Create(0x0408000000000000UL).AsByte();
            c2 = Vector512.Create(0x1020000000000000UL).AsByte();
            c3 = Vector512.Create(0x4080000000000000UL).AsByte();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode(byte* p, Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2, Vector512<byte> c3, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3)
        {
            var v = Vector512.Load(p);
            w0 = v & c0;
            if (Gfni.V512.IsSupported)
            {
                // One affine transform per field is its shift and mask in one instruction.
                w1 = Gfni.V512.GaloisFieldAffineTransform(v, c1, 0);
                w2 = Gfni.V512.GaloisFieldAffineTransform(v, c2, 0);
                w3 = Gfni.V512.GaloisFieldAffineTransform(v, c3, 0);
            }
            else
            {
                var v16 = v.AsUInt16();
                w1 = (v16 >> 2).AsByte() & c0;
                w2 = (v16 >> 4).AsByte() & c0;
                w3 = (v16 >> 6).AsByte() & c0;
            }
        }
    }

    /// <summary>
    /// 3 bits: 48 bytes hold 128 codes; one byte permute gathers each 16 codes' 6 bytes into a qword, one multishift
    /// puts codes 16q + 2k and 16q + 2k + 1 into bits 0-2 and 3-5 of byte 8q + k, and a mask and a shift split them
    /// (the nibble order: register p holds codes 2j + p).
    /// </summary>
    private struct Triples : IDecode
    {
        public static int Parts => 2;
        public static int UnitBytes => 48;
        public static int LoadBytes => 64;
        public static bool Signed => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Constants(out Vector512<byte> c0, out Vector512<byte> c1, out Vector512<byte> c2, out Vector512<byte> c3)
        {
            // Literal constants (not static fields), so a method compiled before the class is initialised embeds them.
            // Qword q gathers bytes 6q .. 6q + 7; its low 48 bits hold codes 16q .. 16q + 15.
            c0 = Vector512.Create(0x0706050403020100UL, 0x0D0C0B0A09080706UL, 0x131211100F0E0D0CUL, 0x1918171615141312UL,
                0x1F1E1D1C1B1A1918UL, 0x2524232221201F1EUL, 0x2B2A292827262524UL, 0x31302F2E2D2C2B2AUL).AsByte();
            // Byte k of every qword takes the 8 bits starting at bit 6k: codes 2k and 2k + 1 in its low 6 bits.
            c1 = Vector512.Create(0x2A241E18120C0600UL).AsByte();
            c2 = Vector512.Create((byte)7);
            // GF(2) bit matrix taking bits 3-5 of each byte to bits 0-2 (row 7 - i picks the input of output bit i).
            c3 = Vector512.Create(0x0810200000000000UL).AsByte();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Decode(byte* p, Vector512<byte> c0, Vector512<byte> c1, Vector512<byte> c2, Vector512<byte> c3, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3)
        {
            var pairs = Avx512Vbmi.MultiShift(c1, Avx512Vbmi.PermuteVar64x8(Vector512.Load(p), c0).AsUInt64());
            w0 = pairs & c2;
            // One affine transform is the shift and the mask in one instruction.
            w1 = Gfni.V512.IsSupported ? Gfni.V512.GaloisFieldAffineTransform(pairs, c3, 0) : (pairs.AsUInt16() >> 3).AsByte() & c2;
            w2 = w3 = default;
        }
    }
}
