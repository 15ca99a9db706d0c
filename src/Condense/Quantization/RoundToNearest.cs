using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Condense.Quantization;

/// <summary>
/// Round-to-nearest group quantization of one row: picks each group's float16 scale (and zero point),
/// then the levels, with the error bound |w - s (q - z)| &lt;= s / 2 against the stored scale s.
/// </summary>
/// <remarks>
/// The kernels are compiled fully optimized up front: a model is quantized once, in a few long calls,
/// which tiered compilation would otherwise run mostly in unoptimized or on-stack-replaced code.
/// </remarks>
internal static class RoundToNearest
{
    /// <summary>
    /// Quantizes one row: writes its packed bytes, its groups' scales and (asymmetric) zero points.
    /// <paramref name="levels"/> is scratch of the row's length.
    /// </summary>
    /// <returns>
    /// How many of the row's groups hold a non-zero weight yet dequantize to all zeros: every |w| is at most half a
    /// step of the group's scale, which happens when the scale is pinned at the smallest float16 (~6e-8) and the
    /// weights are smaller than ~3e-8. Such a group's error is 100%; the compression report flags it.
    /// </returns>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int QuantizeRow<TBits>(
        ReadOnlySpan<float> row, int rowIndex, int groupSize, bool symmetric,
        Span<byte> packedRow, Span<Half> scales, Span<byte> zeroPoints, Span<int> levels)
        where TBits : struct, IBitWidth
    {
        int b = TBits.Bits;
        int maxLevel = (1 << b) - 1;
        int groups = scales.Length;
        int zeroed = 0;
        for (int g = 0; g < groups; g++)
        {
            int start = g * groupSize;
            var values = row.Slice(start, groupSize);
            if (!MinMax(values, out float min, out float max)) throw NonFinite(values, rowIndex, start);
            float absMax = Math.Max(max, -min);
            Half scale;
            int zero;
            if (symmetric)
            {
                // Levels -(2^(b-1)-1)..2^(b-1)-1 around zero, so |w| <= absmax is always on the grid's span.
                int maxMagnitudeLevel = (1 << (b - 1)) - 1;
                scale = ScaleAtLeast(absMax / (double)maxMagnitudeLevel, min, max, symmetric, b, maxMagnitudeLevel, rowIndex, start, groupSize);
                zero = 1 << (b - 1);
            }
            else
            {
                // Extending the range to include 0 makes zero exactly representable (q == z).
                double low = Math.Min(min, 0f), high = Math.Max(max, 0f);
                scale = ScaleAtLeast((high - low) / maxLevel, min, max, symmetric, b, maxLevel, rowIndex, start, groupSize);
                zero = scale == Half.Zero ? 0 : (int)Math.Clamp(Math.Round(-low / (float)scale), 0, maxLevel);
                zeroPoints[g] = (byte)zero;
            }

            scales[g] = scale;
            float s = (float)scale;
            QuantizeGroup(values, s, zero, maxLevel, levels.Slice(start, groupSize));
            // The same division and rounding as QuantizeGroup: the largest |w| lands on level 0 only if all of them do.
            if (absMax > 0f && MathF.Round(absMax / s) == 0f) zeroed++;
        }

        PackedBits.PackRow<TBits>(levels, packedRow);
        return zeroed;
    }

    /// <summary>Minimum and maximum of the values in one pass; false when any value is NaN or infinite.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool MinMax(ReadOnlySpan<float> values, out float min, out float max)
    {
        ref float v = ref MemoryMarshal.GetReference(values);
        int i = 0;
        float lo = float.PositiveInfinity, hi = float.NegativeInfinity, check = 0f;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<float>.Count)
        {
            var vLo = new Vector<float>(float.PositiveInfinity);
            var vHi = new Vector<float>(float.NegativeInfinity);
            // x - x is 0 for finite x and NaN for NaN or +-Inf, and NaN survives the sum: one cheap finiteness test.
            var vCheck = Vector<float>.Zero;
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var x = Vector.LoadUnsafe(ref v, (nuint)i);
                // Native min/max (no NaN fix-ups): non-finite values are caught by the check below instead.
                vLo = Vector.MinNative(vLo, x);
                vHi = Vector.MaxNative(vHi, x);
                vCheck += x - x;
            }
            for (int k = 0; k < Vector<float>.Count; k++)
            {
                lo = Math.Min(lo, vLo[k]);
                hi = Math.Max(hi, vHi[k]);
                check += vCheck[k];
            }
        }

        for (; i < values.Length; i++)
        {
            float x = Unsafe.Add(ref v, i);
            lo = Math.Min(lo, x);
            hi = Math.Max(hi, x);
            check += x - x;
        }

        min = lo;
        max = hi;
        return check == 0f;
    }

    /// <summary>q = clamp(round_half_even(w / s) + z, 0, maxLevel); all q = z when s is 0 (an all-zero group).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeGroup(ReadOnlySpan<float> values, float scale, int zero, int maxLevel, Span<int> levels)
    {
        if (levels.Length != values.Length) throw new ArgumentException("levels must match the group", nameof(levels));
        if (scale == 0f)
        {
            levels.Fill(zero);
            return;
        }

        ref float src = ref MemoryMarshal.GetReference(values);
        ref int dst = ref MemoryMarshal.GetReference(levels);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vScale = new Vector<float>(scale);
            var vZero = new Vector<float>(zero);
            var vMax = new Vector<float>(maxLevel);
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                // Division (not a reciprocal multiply) so the vector and scalar paths round identically.
                var q = Vector.Round(Vector.LoadUnsafe(ref src, (nuint)i) / vScale) + vZero;
                q = Vector.MinNative(Vector.MaxNative(q, Vector<float>.Zero), vMax);
                Vector.ConvertToInt32(q).StoreUnsafe(ref dst, (nuint)i);
            }
        }

        for (; i < values.Length; i++)
        {
            float q = MathF.Round(Unsafe.Add(ref src, i) / scale) + zero;
            Unsafe.Add(ref dst, i) = (int)Math.Clamp(q, 0f, maxLevel);
        }
    }

    /// <summary>
    /// The smallest float16 &gt;= <paramref name="exact"/>: rounding the scale up (never down) keeps every
    /// weight of the group inside the grid, so the s/2 bound holds with the stored scale. A scale beyond the float16
    /// maximum is an error quoting the group's extreme weights and the largest magnitude (symmetric) or span
    /// (asymmetric) the grid can hold: <paramref name="steps"/> steps of 65504.
    /// </summary>
    private static Half ScaleAtLeast(double exact, float min, float max, bool symmetric, int bits, int steps, int row, int start, int groupSize)
    {
        var scale = (Half)exact;
        if ((double)scale < exact) scale = Half.BitIncrement(scale);
        if (!Half.IsFinite(scale))
        {
            var inv = CultureInfo.InvariantCulture;
            double limit = steps * (double)Half.MaxValue;
            string values = symmetric
                ? string.Create(inv, $"the weight {(max >= -min ? max : min)} needs a scale of {exact:G6}, above the float16 maximum {(float)Half.MaxValue}: an int{bits} symmetric group holds |w| <= {limit:G6}")
                : string.Create(inv, $"weights from {Math.Min(min, 0f)} to {Math.Max(max, 0f)} need a scale of {exact:G6}, above the float16 maximum {(float)Half.MaxValue}: an int{bits} asymmetric group spans at most {limit:G6}");
            throw new ArgumentException(string.Create(inv,
                $"weight row {row}, columns {start}..{start + groupSize - 1}: {values}; rescale the layer's weights below that (e.g. fold a constant factor into the next layer), or mark the layer [KeepDense]"),
                "weight");
        }
        return scale;
    }

    private static ArgumentException NonFinite(ReadOnlySpan<float> values, int row, int start)
    {
        int column = 0;
        while (column < values.Length && float.IsFinite(values[column])) column++;
        float bad = column < values.Length ? values[column] : float.NaN;
        return new ArgumentException(string.Create(CultureInfo.InvariantCulture,
            $"weight[row {row}, column {start + column}] is {bad}; quantization expects finite weights (no NaN or Inf)"),
            "weight");
    }
}
