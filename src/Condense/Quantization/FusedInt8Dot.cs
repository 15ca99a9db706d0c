using Condense.Kernels.Jit;
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
        public sbyte* Tiles;      // batch >= 2: Q regrouped by BuildTiles, once per call; else null
        public nint VnniKernel;   // batch 1, 8 and 4 bits: VnniGemv's emitted kernel (CodeOffset 0), else 0
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

    /// <summary>Weight rows per block of the batched loops; batched calls hand the threads whole blocks.</summary>
    internal const int RowBlock = 16;

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
