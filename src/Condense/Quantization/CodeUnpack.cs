using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// Unpacks one packed row (docs/format.md: little-endian bit stream, low bits first) into one byte per code,
/// in natural order, zero-padded up to a multiple of 64 codes.
/// </summary>
/// <remarks>
/// 4 bits: each byte is widened to 16 bits and its high nibble moved up to the next byte ((w | w &lt;&lt; 4) &amp; 0x0F0F).
/// 2 and 3 bits with AVX-512 VBMI: a byte permute puts the bytes of every 8 codes into one qword and a
/// multishift picks each code's 8-bit window at its bit offset; otherwise a bit deposit (BMI2) or shifts.
/// </remarks>
internal static unsafe class CodeUnpack
{
    /// <summary>Codes rounded up to a whole number of 64-byte chunks.</summary>
    public static int PaddedLength(int inFeatures) => (inFeatures + 63) & ~63;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Row(byte* row, int rowBytes, int bits, int count, byte* codes, int vectorBits)
    {
        int done = bits switch
        {
            8 => Copy8(row, count, codes),
            4 => vectorBits >= 512 ? Unpack4V512(row, rowBytes, codes) : vectorBits >= 128 ? Unpack4V128(row, rowBytes, codes) : 0,
            3 => vectorBits >= 512 && Avx512Vbmi.IsSupported ? UnpackVbmi(row, rowBytes, 3, codes) : 0,
            _ => vectorBits >= 512 && Avx512Vbmi.IsSupported ? UnpackVbmi(row, rowBytes, 2, codes) : 0,
        };
        // done is a multiple of 8 codes: the rest goes through the bit-deposit / scalar path.
        done = Math.Min(done, count);
        UnpackScalar(row, rowBytes, bits, done, count, codes, vectorBits > 0);
        new Span<byte>(codes + count, PaddedLength(count) - count).Clear();
    }

    private static int Copy8(byte* row, int count, byte* codes)
    {
        Buffer.MemoryCopy(row, codes, count, count);
        return count;
    }

    private static int Unpack4V512(byte* row, int rowBytes, byte* codes)
    {
        var mask = Vector512.Create((ushort)0x0F0F);
        int j = 0;
        for (; j + 32 <= rowBytes; j += 32)
        {
            // Byte j holds codes 2j (low nibble) and 2j+1 (high nibble): one 16-bit lane per byte puts them in order.
            Vector512<ushort> w = Vector512.WidenLower(Vector256.Load(row + j).ToVector512Unsafe());
            ((w | (w << 4)) & mask).AsByte().Store(codes + 2 * j);
        }
        return 2 * j;
    }

    private static int Unpack4V128(byte* row, int rowBytes, byte* codes)
    {
        var mask = Vector128.Create((ushort)0x0F0F);
        int j = 0;
        for (; j + 16 <= rowBytes; j += 16)
        {
            var v = Vector128.Load(row + j);
            Vector128<ushort> lo = Vector128.WidenLower(v), hi = Vector128.WidenUpper(v);
            ((lo | (lo << 4)) & mask).AsByte().Store(codes + 2 * j);
            ((hi | (hi << 4)) & mask).AsByte().Store(codes + 2 * j + 16);
        }
        return 2 * j;
    }

    private static readonly Vector512<byte> s_perm3 = BytePermute(3), s_perm2 = BytePermute(2);
    private static readonly Vector512<byte> s_shift3 = ShiftControl(3), s_shift2 = ShiftControl(2);

    // Qword q gathers the b bytes that hold codes 8q..8q+7.
    private static Vector512<byte> BytePermute(int bits)
    {
        var p = new byte[64];
        for (int q = 0; q < 8; q++)
            for (int k = 0; k < 8; k++) p[8 * q + k] = (byte)(k < bits ? bits * q + k : 0);
        return Vector512.Create(p);
    }

    // Byte k of every qword takes the 8 bits starting at bit k*b: code k in its low b bits.
    private static Vector512<byte> ShiftControl(int bits)
    {
        var c = new byte[64];
        for (int q = 0; q < 8; q++)
            for (int k = 0; k < 8; k++) c[8 * q + k] = (byte)(k * bits);
        return Vector512.Create(c);
    }

    private static int UnpackVbmi(byte* row, int rowBytes, int bits, byte* codes)
    {
        Vector512<byte> perm = bits == 3 ? s_perm3 : s_perm2, shift = bits == 3 ? s_shift3 : s_shift2;
        var mask = Vector512.Create((byte)((1 << bits) - 1));
        int inBytes = 8 * bits; // 64 codes
        int j = 0, c = 0;
        // A 32-byte load covers the 24 (or 16) bytes of 64 codes; stop while it stays inside the row.
        for (; j + 32 <= rowBytes; j += inBytes, c += 64)
        {
            var v = Vector256.Load(row + j).ToVector512Unsafe();
            var gathered = Avx512Vbmi.PermuteVar64x8(v, perm);
            (Avx512Vbmi.MultiShift(shift, gathered.AsUInt64()) & mask).Store(codes + c);
        }
        return c;
    }

    private static void UnpackScalar(byte* row, int rowBytes, int bits, int start, int count, byte* codes, bool allowBmi2)
    {
        if (bits == 8)
        {
            for (int i = start; i < count; i++) codes[i] = row[i];
            return;
        }
        ulong deposit = bits == 4 ? 0x0F0F0F0F0F0F0F0FUL : bits == 3 ? 0x0707070707070707UL : 0x0303030303030303UL;
        uint mask = (1u << bits) - 1;
        // start is a multiple of 8 codes, i.e. of 'bits' bytes.
        for (int i = start; i < count; i += 8)
        {
            int p = i / 8 * bits;
            int n = Math.Min(bits, rowBytes - p);
            ulong chunk = 0;
            for (int k = 0; k < n; k++) chunk |= (ulong)row[p + k] << (8 * k);
            int take = Math.Min(8, count - i);
            if (allowBmi2 && Bmi2.X64.IsSupported && take == 8)
            {
                // Bit deposit spreads 8 codes of b bits to the low bits of 8 bytes.
                *(ulong*)(codes + i) = Bmi2.X64.ParallelBitDeposit(chunk, deposit);
            }
            else
            {
                for (int k = 0; k < take; k++) codes[i + k] = (byte)((chunk >> (k * bits)) & mask);
            }
        }
    }
}
