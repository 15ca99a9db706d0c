using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Quantization;

/// <summary>
/// Quantizes input rows to int8 once per call: scale = max|x| / 127, q = round_half_even(x * (127 / max|x|)),
/// so q is in [-127, 127]; plus the sum of q over every weight group (for the zero-point fold).
/// </summary>
/// <remarks>Multiply and round are exact per element, so every SIMD width produces the same bytes as the scalar loop.</remarks>
internal static unsafe class Int8Activations
{
    /// <summary>
    /// Quantizes row <paramref name="x"/> (length n) into <paramref name="q"/> (zero-padded to a multiple of 64) and
    /// writes the per-group sums. Returns the row scale, or NaN when the row holds a NaN or infinity.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float QuantizeRow(float* x, int n, int groupSize, sbyte* q, float* groupSums, int vectorBits)
    {
        if (vectorBits >= 512 && Avx512F.IsSupported && n % 16 == 0 && groupSize % 16 == 0 && n > 0)
            return QuantizeRow512(x, n, groupSize, q, groupSums);
        float absMax = 0f;
        int i = 0;
        if (vectorBits >= 256 && Vector256.IsHardwareAccelerated)
        {
            var m = Vector256<float>.Zero;
            var check = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
            {
                var v = Vector256.Load(x + i);
                m = Vector256.Max(m, Vector256.Abs(v));
                check += v - v; // NaN for NaN or infinity, 0 otherwise
            }
            for (int k = 0; k < 8; k++) { absMax = Math.Max(absMax, m[k]); if (check[k] != 0f) return float.NaN; }
        }
        for (; i < n; i++)
        {
            float v = x[i];
            if (!float.IsFinite(v)) return float.NaN;
            absMax = Math.Max(absMax, Math.Abs(v));
        }

        int padded = CodeUnpack.PaddedLength(n);
        int groups = n / groupSize;
        if (absMax == 0f)
        {
            new Span<sbyte>(q, padded).Clear();
            new Span<float>(groupSums, groups).Clear();
            return 0f;
        }

        float inv = 127f / absMax;
        i = 0;
        if (vectorBits >= 256 && Vector256.IsHardwareAccelerated)
        {
            var vInv = Vector256.Create(inv);
            for (; i + 16 <= n; i += 16)
            {
                Vector256<int> a = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i) * vInv));
                Vector256<int> b = Vector256.ConvertToInt32(Vector256.Round(Vector256.Load(x + i + 8) * vInv));
                Vector256<short> s = Vector256.Narrow(a, b);
                Vector128<sbyte> bytes = Vector128.Narrow(s.GetLower(), s.GetUpper());
                bytes.Store(q + i);
            }
        }
        for (; i < n; i++) q[i] = (sbyte)(int)MathF.Round(x[i] * inv);
        new Span<sbyte>(q + n, padded - n).Clear();

        for (int g = 0; g < groups; g++)
        {
            sbyte* p = q + g * groupSize;
            int sum = 0, k = 0;
            if (vectorBits >= 128 && Vector128.IsHardwareAccelerated)
            {
                var acc = Vector128<short>.Zero;
                // 16-bit lanes gain at most 2 x 127 per step: 128 steps (2048 values) stay below 32767.
                for (; k + 16 <= groupSize && k < 2048; k += 16)
                {
                    var v = Vector128.Load(p + k);
                    acc += Vector128.WidenLower(v) + Vector128.WidenUpper(v);
                }
                sum = Vector128.Sum(Vector128.WidenLower(acc) + Vector128.WidenUpper(acc));
            }
            for (; k < groupSize; k++) sum += p[k];
            groupSums[g] = sum;
        }
        return absMax / 127f;
    }

    /// <summary>
    /// <see cref="QuantizeRow"/> for rows and groups of whole 16-float vectors with AVX-512: two independent max and
    /// check chains, and the group sums taken from the int32 codes before they are narrowed (one pass instead of two).
    /// The same bytes, sums and scale: max and the integer sums are exact, and x * (127 / max) is rounded half to even
    /// as the 256-bit loop and MathF.Round do. Session 12: -2% per MiniLM sentence (docs/kernels.md); the 256-bit loops
    /// remain for other widths and for rows or groups that are not whole vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float QuantizeRow512(float* x, int n, int groupSize, sbyte* q, float* groupSums)
    {
        var m0 = Vector512<float>.Zero;
        var m1 = Vector512<float>.Zero;
        var c0 = Vector512<float>.Zero;
        var c1 = Vector512<float>.Zero;
        int i = 0;
        for (; i + 32 <= n; i += 32)
        {
            var a = Vector512.Load(x + i);
            var b = Vector512.Load(x + i + 16);
            m0 = Vector512.Max(m0, Vector512.Abs(a));
            m1 = Vector512.Max(m1, Vector512.Abs(b));
            c0 += a - a; // NaN for NaN or infinity, 0 otherwise
            c1 += b - b;
        }
        for (; i < n; i += 16)
        {
            var a = Vector512.Load(x + i);
            m0 = Vector512.Max(m0, Vector512.Abs(a));
            c0 += a - a;
        }
        var check = c0 + c1;
        var m = Vector512.Max(m0, m1);
        float absMax = 0f;
        for (int k = 0; k < 16; k++) { absMax = Math.Max(absMax, m[k]); if (check[k] != 0f) return float.NaN; }

        int padded = CodeUnpack.PaddedLength(n);
        int groups = n / groupSize;
        if (absMax == 0f)
        {
            new Span<sbyte>(q, padded).Clear();
            new Span<float>(groupSums, groups).Clear();
            return 0f;
        }

        var inv = Vector512.Create(127f / absMax);
        var sum = Vector512<int>.Zero;
        for (int g = 0, start = 0; start < n; g++, start += groupSize)
        {
            int end = Math.Min(n, start + groupSize);
            for (i = start; i < end; i += 16)
            {
                var codes = Vector512.ConvertToInt32(Vector512.Round(Vector512.Load(x + i) * inv));
                Avx512F.ConvertToVector128SByte(codes).Store(q + i);
                sum += codes;
            }
            if (g < groups) groupSums[g] = Vector512.Sum(sum);
            sum = Vector512<int>.Zero;
        }
        new Span<sbyte>(q + n, padded - n).Clear();
        return absMax / 127f;
    }
}
