using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Quantization;

namespace Condense.Sparsity;

/// <summary>Dequantizes single rows of a 4- or 8-bit <see cref="GroupQuantizedWeight"/> (the N:M kernels' quantized values).</summary>
internal static unsafe class QuantizedRows
{
    // Prefetch distance on the packed rows (2 int8 or 4 int4 compressed 2:4 rows of a 4096-input layer).
    private const int PrefetchBytes = 4096;

    /// <summary>destination[i] = scale(g) * (q[i] - zero(g)) for the InFeatures values of <paramref name="row"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeRow(GroupQuantizedWeight weight, int row, float* destination)
    {
        int k = weight.InFeatures;
        int bits = weight.Scheme.Bits;
        int groupSize = weight.Scheme.GroupSize == 0 ? k : weight.Scheme.GroupSize;
        int groups = k / groupSize;
        int rowBytes = (k * bits + 7) / 8;
        int symmetricZero = 1 << (bits - 1);
        var scales = weight.Scales;
        var zeros = weight.ZeroPoints;
        fixed (byte* packed = weight.Packed)
        {
            byte* p = packed + (nint)row * rowBytes;
            // Callers walk rows in order: fetch the row 4 KiB ahead (one line per 64 bytes) so its DRAM reads overlap this one.
            if (Sse.IsSupported)
                for (int offset = 0; offset < rowBytes; offset += 64)
                    Sse.Prefetch0(p + PrefetchBytes + offset);
            for (int g = 0; g < groups; g++)
            {
                float scale = (float)scales[row * groups + g];
                int zero = zeros is null ? symmetricZero : zeros[row * groups + g];
                int start = g * groupSize, end = start + groupSize;
                int i = start;
                if (bits == 8)
                {
                    if (Vector256.IsHardwareAccelerated)
                    {
                        var s = Vector256.Create(scale);
                        var z = Vector256.Create(zero);
                        for (; i + 8 <= end; i += 8)
                        {
                            var words = Vector128.WidenLower(Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(p + i)).AsByte());
                            var q = Vector256.Create(Vector128.WidenLower(words), Vector128.WidenUpper(words)).AsInt32();
                            Vector256.Store(Vector256.ConvertToSingle(q - z) * s, destination + i);
                        }
                    }
                    for (; i < end; i++) destination[i] = (p[i] - zero) * scale;
                }
                else
                {
                    if (Avx2.IsSupported)
                    {
                        var s = Vector256.Create(scale);
                        var z = Vector256.Create(zero);
                        var shifts = Vector256.Create(0u, 4, 8, 12, 16, 20, 24, 28);
                        var nibble = Vector256.Create(15u);
                        for (; i + 8 <= end; i += 8)
                        {
                            var q = (Avx2.ShiftRightLogicalVariable(Vector256.Create(Unsafe.ReadUnaligned<uint>(p + (i >> 1))), shifts) & nibble).AsInt32();
                            Vector256.Store(Vector256.ConvertToSingle(q - z) * s, destination + i);
                        }
                    }
                    for (; i + 2 <= end; i += 2)
                    {
                        int b = p[i >> 1];
                        destination[i] = ((b & 15) - zero) * scale;
                        destination[i + 1] = ((b >> 4) - zero) * scale;
                    }
                    if (i < end) destination[i] = (((p[i >> 1] >> ((i & 1) * 4)) & 15) - zero) * scale;
                }
            }
        }
    }
}
