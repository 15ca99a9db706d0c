using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Condense.Quantization;

/// <summary>How round-to-nearest picks each group's scale (and zero point); the levels are always rounded to nearest.</summary>
public enum QuantizationRounding
{
    /// <summary>
    /// Mean-squared-error clipping (the default): per group, a fixed set of candidate scales, from the plain min/max
    /// one down to about half of it (clipping outliers), plus PyTorch's min/max observer scale and a least-squares
    /// refit of the best candidate's levels, each scored by the group's exact squared error with its stored float16
    /// scale; the first lowest error wins. Never worse than <see cref="MinMax"/> on a group, since that is a candidate.
    /// </summary>
    MseClip,

    /// <summary>
    /// Plain min/max: symmetric maps the group's largest-magnitude weight exactly to level -2^(b-1) (the sign of the
    /// scale picks which side), asymmetric spans [min(w, 0), max(w, 0)] with all 2^b levels. No search.
    /// </summary>
    MinMax,
}

/// <summary>
/// Round-to-nearest group quantization of one row: picks each group's float16 scale (and zero point) by
/// <see cref="QuantizationRounding"/>, then the levels q = clamp(round(w / s) + z, 0, 2^b - 1), which dequantize to
/// s (q - z). Symmetric grids use all 2^b codes with z = 2^(b-1): the scale may be negative, so the group's
/// largest-magnitude weight, whatever its sign, can take the extra level -2^(b-1).
/// </summary>
/// <remarks>
/// The kernels are compiled fully optimized up front: a model is quantized once, in a few long calls,
/// which tiered compilation would otherwise run mostly in unoptimized or on-stack-replaced code.
/// </remarks>
internal static class RoundToNearest
{
    /// <summary>Clip candidates of <see cref="QuantizationRounding.MseClip"/>: the min/max scale times 1, 1 - d, ..., 1 - (n-1) d.</summary>
    private const int ClipSteps = 16;
    private const float ClipStep = 0.03f;

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
        Span<byte> packedRow, Span<Half> scales, Span<byte> zeroPoints, Span<int> levels,
        QuantizationRounding rounding = QuantizationRounding.MseClip)
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
            var (scale, zero) = GroupGrid(values, b, symmetric, rounding, rowIndex, start);
            if (!symmetric) zeroPoints[g] = (byte)zero;
            scales[g] = scale;
            float s = (float)scale;
            var groupLevels = levels.Slice(start, groupSize);
            QuantizeGroup(values, s, zero, maxLevel, groupLevels);
            if (s != 0f && AllAtZero(groupLevels, zero) && HasNonZero(values)) zeroed++;
        }

        PackedBits.PackRow<TBits>(levels, packedRow);
        return zeroed;
    }

    /// <summary>
    /// The float16 scale and zero point of one group of <paramref name="bits"/>-bit weights (zero = 2^(bits-1) when
    /// symmetric). Levels then come from <see cref="QuantizeGroup"/> or <see cref="Level"/>; the weight dequantizes to
    /// scale * (level - zero). GPTQ-style callers use this on a group's (updated) weights.
    /// </summary>
    /// <exception cref="ArgumentException">A NaN/Inf weight, or a group whose min/max scale exceeds float16 (row and columns named).</exception>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static (Half Scale, int Zero) GroupGrid(ReadOnlySpan<float> values, int bits, bool symmetric, QuantizationRounding rounding, int rowIndex, int start)
    {
        if (!MinMax(values, out float min, out float max)) throw NonFinite(values, rowIndex, start);
        int maxLevel = (1 << bits) - 1;
        int half = 1 << (bits - 1);
        if (symmetric)
        {
            float absMax = Math.Max(max, -min);
            // The signed extreme goes to level -2^(b-1): a positive extreme needs a negative scale.
            // On a tie (max == -min) the scale stays positive.
            bool negative = max > -min;
            var magnitude = ScaleAtLeast(absMax / (double)half, min, max, symmetric, bits, half, rowIndex, start, values.Length);
            var best = negative ? -magnitude : magnitude;
            if (rounding == QuantizationRounding.MinMax || magnitude == Half.Zero) return (best, half);

            float bestError = GroupError(values, (float)best, half, maxLevel);
            // PyTorch's observer grid (scale absmax / (2^(b-1) - 1/2), both signs): the baseline this search must not lose to.
            var observer = (Half)(absMax / (half - 0.5));
            Consider(values, observer, half, maxLevel, ref best, ref bestError);
            Consider(values, -observer, half, maxLevel, ref best, ref bestError);
            for (int k = 1; k < ClipSteps; k++)
            {
                var candidate = (Half)(absMax * (1f - k * ClipStep) / half);
                Consider(values, negative ? -candidate : candidate, half, maxLevel, ref best, ref bestError);
            }

            // Least squares for the winner's levels c = q - z: s = sum(w c) / sum(c^2).
            var refit = SymmetricRefit(values, (float)best, half, maxLevel);
            Consider(values, refit, half, maxLevel, ref best, ref bestError);
            return (best, half);
        }
        else
        {
            // Extending the range to include 0 makes zero exactly representable (q == z).
            float low = Math.Min(min, 0f), high = Math.Max(max, 0f);
            var scale = ScaleAtLeast((high - (double)low) / maxLevel, min, max, symmetric, bits, maxLevel, rowIndex, start, values.Length);
            int zero = ZeroFor(low, scale, maxLevel);
            if (rounding == QuantizationRounding.MinMax || scale == Half.Zero) return (scale, zero);

            float bestError = GroupError(values, (float)scale, zero, maxLevel);
            for (int k = 1; k < ClipSteps; k++)
            {
                float f = 1f - k * ClipStep;
                var candidate = (Half)((high - low) * f / maxLevel);
                if (candidate <= Half.Zero || !Half.IsFinite(candidate)) continue;
                int candidateZero = ZeroFor(low * f, candidate, maxLevel);
                float error = GroupError(values, (float)candidate, candidateZero, maxLevel);
                if (error < bestError) (scale, zero, bestError) = (candidate, candidateZero, error);
            }

            // Least squares w ~ a q + c for the winner's levels, then the nearest stored grid: s = a, z = -c / s.
            if (AsymmetricRefit(values, (float)scale, zero, maxLevel, out var refit, out int refitZero))
            {
                float error = GroupError(values, (float)refit, refitZero, maxLevel);
                if (error < bestError) (scale, zero) = (refit, refitZero);
            }
            return (scale, zero);
        }
    }

    /// <summary>
    /// The level of one weight: clamp(round_half_even(w * (1 / s)) + z, 0, maxLevel), with 1 / s rounded to float32;
    /// z when s is 0. The reciprocal (not a division per weight) keeps the scale search fast; every path uses it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Level(float weight, float scale, int zero, int maxLevel) =>
        scale == 0f ? zero : (int)Math.Clamp(MathF.Round(weight * (1f / scale)) + zero, 0f, maxLevel);

    private static int ZeroFor(float low, Half scale, int maxLevel) =>
        scale == Half.Zero ? 0 : (int)Math.Clamp(Math.Round(-low / (float)scale), 0, maxLevel);

    private static void Consider(ReadOnlySpan<float> values, Half candidate, int zero, int maxLevel, ref Half best, ref float bestError)
    {
        if (candidate == Half.Zero || !Half.IsFinite(candidate)) return;
        float error = GroupError(values, (float)candidate, zero, maxLevel);
        // Strictly lower: on an exact tie the earlier (larger, less clipped) candidate stays.
        if (error < bestError) (best, bestError) = (candidate, error);
    }

    private static Half SymmetricRefit(ReadOnlySpan<float> values, float scale, int zero, int maxLevel)
    {
        double wc = 0, cc = 0;
        foreach (float w in values)
        {
            int c = Level(w, scale, zero, maxLevel) - zero;
            wc += (double)w * c;
            cc += (double)c * c;
        }
        return cc == 0 ? Half.Zero : (Half)(wc / cc);
    }

    private static bool AsymmetricRefit(ReadOnlySpan<float> values, float scale, int zero, int maxLevel, out Half refit, out int refitZero)
    {
        double n = values.Length, sq = 0, sqq = 0, sw = 0, swq = 0;
        foreach (float w in values)
        {
            int q = Level(w, scale, zero, maxLevel);
            sq += q;
            sqq += (double)q * q;
            sw += w;
            swq += (double)w * q;
        }
        double det = n * sqq - sq * sq;
        refit = Half.Zero;
        refitZero = 0;
        if (det <= 0) return false;
        double a = (n * swq - sq * sw) / det;
        double c = (sw - a * sq) / n;
        refit = (Half)a;
        if (refit <= Half.Zero || !Half.IsFinite(refit)) return false;
        refitZero = (int)Math.Clamp(Math.Round(-c / (double)refit), 0, maxLevel);
        return true;
    }

    /// <summary>
    /// Sum of (w - s (q - z))^2 over the group with q as <see cref="QuantizeGroup"/> picks it. Eight float lanes
    /// summed in a fixed order (512-bit vectors add their two halves in turn), so every machine picks the same scale.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float GroupError(ReadOnlySpan<float> values, float scale, int zero, int maxLevel)
    {
        ref float src = ref MemoryMarshal.GetReference(values);
        float inverse = 1f / scale;
        int i = 0;
        var acc = Vector256<float>.Zero;
        // Levels relative to the zero point: c = clamp(round(w / s), -z, maxLevel - z), the same integers as q - z.
        float low = -zero, high = maxLevel - zero;
        if (Vector512.IsHardwareAccelerated)
        {
            var vInverse = Vector512.Create(inverse);
            var vScale = Vector512.Create(scale);
            var vLow = Vector512.Create(low);
            var vHigh = Vector512.Create(high);
            for (; i <= values.Length - 16; i += 16)
            {
                var w = Vector512.LoadUnsafe(ref src, (nuint)i);
                var c = Vector512.Min(Vector512.Max(Vector512.Round(w * vInverse), vLow), vHigh);
                var d = w - c * vScale;
                d *= d;
                acc += d.GetLower();
                acc += d.GetUpper();
            }
        }

        {
            var vInverse = Vector256.Create(inverse);
            var vScale = Vector256.Create(scale);
            var vLow = Vector256.Create(low);
            var vHigh = Vector256.Create(high);
            for (; i <= values.Length - 8; i += 8)
            {
                var w = Vector256.LoadUnsafe(ref src, (nuint)i);
                var c = Vector256.Min(Vector256.Max(Vector256.Round(w * vInverse), vLow), vHigh);
                var d = w - c * vScale;
                acc += d * d;
            }
        }

        float sum = 0f;
        for (int k = 0; k < 8; k++) sum += acc.GetElement(k);
        float tail = 0f;
        for (; i < values.Length; i++)
        {
            float w = Unsafe.Add(ref src, i);
            float d = w - (Level(w, scale, zero, maxLevel) - zero) * scale;
            tail += d * d;
        }
        return sum + tail;
    }

    private static bool AllAtZero(ReadOnlySpan<int> levels, int zero)
    {
        foreach (int q in levels) if (q != zero) return false;
        return true;
    }

    private static bool HasNonZero(ReadOnlySpan<float> values)
    {
        foreach (float w in values) if (w != 0f) return true;
        return false;
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

    /// <summary>q = clamp(round_half_even(w * (1 / s)) + z, 0, maxLevel); all q = z when s is 0 (an all-zero group). See <see cref="Level"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeGroup(ReadOnlySpan<float> values, float scale, int zero, int maxLevel, Span<int> levels)
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
            var vInverse = new Vector<float>(1f / scale);
            var vZero = new Vector<float>(zero);
            var vMax = new Vector<float>(maxLevel);
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                var q = Vector.Round(Vector.LoadUnsafe(ref src, (nuint)i) * vInverse) + vZero;
                q = Vector.MinNative(Vector.MaxNative(q, Vector<float>.Zero), vMax);
                Vector.ConvertToInt32(q).StoreUnsafe(ref dst, (nuint)i);
            }
        }

        for (; i < values.Length; i++) Unsafe.Add(ref dst, i) = Level(Unsafe.Add(ref src, i), scale, zero, maxLevel);
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
