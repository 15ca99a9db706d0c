using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// Unpacks one packed row (docs/format.md: little-endian bit stream, low bits first) into one byte per code,
/// in natural order, zero-padded up to a multiple of 64 codes.
/// </summary>
/// <remarks>
/// Only the 128-bit and scalar int8 paths unpack rows (the 256- and 512-bit kernels decode in registers).
/// 4 bits: each byte is widened to 16 bits and its high nibble moved up to the next byte ((w | w &lt;&lt; 4) &amp; 0x0F0F).
/// 2 and 3 bits: a bit deposit (BMI2) or shifts.
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
            4 => vectorBits >= 128 ? Unpack4V128(row, rowBytes, codes) : 0,
            _ => 0,
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
