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
    /// Mean-squared-error clipping (the default): per group, candidate scales searched coarse to fine, from the plain
    /// min/max one down to about half of it (clipping outliers), plus PyTorch's min/max observer scale and a least-squares
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
            float s = ToFloat(scale);
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
        Half best;
        int bestZero;
        // Symmetric: the clipped range is [-absMax f, absMax f]; asymmetric: [low f, high f] (0 stays inside).
        float low, high;
        bool negative = false;
        if (symmetric)
        {
            float absMax = Math.Max(max, -min);
            // The signed extreme goes to level -2^(b-1): a positive extreme needs a negative scale.
            // On a tie (max == -min) the scale stays positive.
            negative = max > -min;
            var magnitude = ScaleAtLeast(absMax / (double)half, min, max, symmetric, bits, half, rowIndex, start, values.Length);
            (best, bestZero) = (negative ? -magnitude : magnitude, half);
            (low, high) = (-absMax, absMax);
        }
        else
        {
            // Extending the range to include 0 makes zero exactly representable (q == z).
            (low, high) = (Math.Min(min, 0f), Math.Max(max, 0f));
            best = ScaleAtLeast((high - (double)low) / maxLevel, min, max, symmetric, bits, maxLevel, rowIndex, start, values.Length);
            bestZero = ZeroFor(low, best, maxLevel);
        }
        if (rounding == QuantizationRounding.MinMax || best == Half.Zero) return (best, bestZero);

        // Candidates in a fixed order, scored one to four per pass; the first strictly lowest error wins, so MinMax (first)
        // stays on an exact tie. Pass 1: MinMax, then (symmetric) PyTorch's observer grid |s| = absmax / (2^(b-1) - 1/2)
        // with a positive scale (asymmetric: the range times 0.96), then the range clipped by 0.88 and 0.80.
        Span<Half> candidates = stackalloc Half[4];
        Span<int> zeros = stackalloc int[4];
        Span<float> factors = stackalloc float[4];
        candidates[0] = best;
        zeros[0] = bestZero;
        factors[0] = 1f;
        if (symmetric)
        {
            candidates[1] = ToHalf(high / (half - 0.5f));
            zeros[1] = half;
            factors[1] = 1f;
        }
        else
        {
            factors[1] = 0.96f;
            candidates[1] = Clipped(factors[1], low, high, symmetric, negative, half, maxLevel, out zeros[1]);
        }
        // 8 bits: a step is so fine against the spread that clipping 12% or more never pays (the quality table's
        // 8-bit search gains come from the observer grid, the small clips and the refit), so pass 1 scores two.
        int firstCount = bits >= 8 ? 2 : 4;
        for (int k = 2; k < firstCount; k++)
        {
            factors[k] = k == 2 ? 0.88f : 0.80f;
            candidates[k] = Clipped(factors[k], low, high, symmetric, negative, half, maxLevel, out zeros[k]);
        }
        float bestError = float.PositiveInfinity, bestFactor = 1f;
        Score(values, candidates[..firstCount], zeros, factors, maxLevel, ref best, ref bestZero, ref bestError, ref bestFactor);

        // Pass 2. The error is close to unimodal in the clip factor, so the hard clips (0.72, 0.64) can only win when
        // pass 1's hardest clip (0.80) won; otherwise (most groups, and nearly all 8-bit ones) only one step finer next
        // to pass 1's best and a least-squares refit of its levels (symmetric s = sum(w c) / sum(c^2); asymmetric
        // w ~ a u + b, s = a, z = round(-b / s)) are scored, in a two-candidate pass at half the cost.
        float firstFactor = bestFactor;
        var refit = Refit(values, symmetric, best, bestZero, half, maxLevel, out int refitZero);
        if (firstFactor > 0.80f)
        {
            int count = 0;
            // Asymmetric: when the plain range beat 0.96 the error already rises with clipping, so 0.92 cannot win.
            if (symmetric || firstFactor < 1f)
            {
                factors[0] = firstFactor >= 0.96f ? 0.92f : firstFactor - 0.04f;
                candidates[0] = Clipped(factors[0], low, high, symmetric, negative, half, maxLevel, out zeros[0]);
                count++;
            }
            // The refit may land on the best scale itself: scoring it again could only tie, and ties keep the first.
            if (refit != best || refitZero != bestZero)
            {
                (candidates[count], zeros[count], factors[count]) = (refit, refitZero, firstFactor);
                count++;
            }
            if (count > 0) Score(values, candidates[..count], zeros, factors, maxLevel, ref best, ref bestZero, ref bestError, ref bestFactor);
            return (best, bestZero);
        }

        factors[0] = 0.72f;
        factors[1] = 0.64f;
        factors[2] = firstFactor - 0.04f;
        for (int k = 0; k < 3; k++)
            candidates[k] = Clipped(factors[k], low, high, symmetric, negative, half, maxLevel, out zeros[k]);
        (candidates[3], zeros[3], factors[3]) = (refit, refitZero, firstFactor);
        Score(values, candidates, zeros, factors, maxLevel, ref best, ref bestZero, ref bestError, ref bestFactor);

        // Pass 3, only when the hard clips won (heavy tails, few bits): their neighbours, 0.56 and a refit.
        if (bestFactor <= 0.72f && bestFactor != firstFactor)
        {
            factors[0] = bestFactor + 0.04f;
            factors[1] = bestFactor - 0.04f;
            factors[2] = 0.56f;
            for (int k = 0; k < 3; k++)
                candidates[k] = Clipped(factors[k], low, high, symmetric, negative, half, maxLevel, out zeros[k]);
            factors[3] = bestFactor;
            candidates[3] = Refit(values, symmetric, best, bestZero, half, maxLevel, out zeros[3]);
            Score(values, candidates, zeros, factors, maxLevel, ref best, ref bestZero, ref bestError, ref bestFactor);
        }
        return (best, bestZero);
    }

    /// <summary>The least-squares scale (and zero point) for the levels <paramref name="scale"/> gives; zero when there is none.</summary>
    private static Half Refit(ReadOnlySpan<float> values, bool symmetric, Half scale, int zero, int half, int maxLevel, out int refitZero)
    {
        if (symmetric)
        {
            refitZero = half;
            return SymmetricRefit(values, ToFloat(scale), half, maxLevel);
        }
        return AsymmetricRefit(values, ToFloat(scale), zero, maxLevel, out var refit, out refitZero) ? refit : Half.Zero;
    }

    /// <summary>Scores two or four candidates in one pass (a zero or non-finite scale is skipped) and keeps the first strictly better.</summary>
    private static void Score(ReadOnlySpan<float> values, ReadOnlySpan<Half> candidates, ReadOnlySpan<int> zeros, ReadOnlySpan<float> factors,
        int maxLevel, ref Half best, ref int bestZero, ref float bestError, ref float bestFactor)
    {
        int count = candidates.Length;
        Span<float> scales = stackalloc float[4];
        Span<float> errors = stackalloc float[4];
        // A skipped slot is computed with the first valid scale (never with 0) and then ignored.
        float fallback = ToFloat(best);
        for (int k = 0; k < count; k++)
            scales[k] = Usable(candidates[k]) ? ToFloat(candidates[k]) : fallback;
        if (count == 1) errors[0] = GroupError(values, scales[0], zeros[0], maxLevel);
        else if (count == 2) GroupErrors2(values, scales, zeros, maxLevel, errors);
        else GroupErrors(values, scales, zeros, maxLevel, errors);
        for (int k = 0; k < count; k++)
        {
            if (!Usable(candidates[k]) || !(errors[k] < bestError)) continue;
            (best, bestZero, bestError, bestFactor) = (candidates[k], zeros[k], errors[k], factors[k]);
        }
    }

    private static bool Usable(Half scale) => scale != Half.Zero && Half.IsFinite(scale);

    /// <summary>The float16 scale (and zero point) of the range clipped by <paramref name="f"/>.</summary>
    private static Half Clipped(float f, float low, float high, bool symmetric, bool negative, int half, int maxLevel, out int zero)
    {
        if (symmetric)
        {
            zero = half;
            var magnitude = ToHalf(high * f / half);
            return negative ? -magnitude : magnitude;
        }
        var scale = ToHalf((high - low) * f / maxLevel);
        zero = ZeroFor(low * f, scale, maxLevel);
        return scale;
    }

    /// <summary>
    /// The level of one weight: clamp(round_half_even(w * (1 / s)) + z, 0, maxLevel), with 1 / s rounded to float32;
    /// z when s is 0. The reciprocal (not a division per weight) keeps the scale search fast; every path uses it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Level(float weight, float scale, int zero, int maxLevel) =>
        scale == 0f ? zero : (int)Math.Clamp(MathF.Round(weight * (1f / scale)) + zero, 0f, maxLevel);

    private static int ZeroFor(float low, Half scale, int maxLevel) =>
        scale == Half.Zero ? 0 : (int)Math.Clamp(Math.Round(-low / ToFloat(scale)), 0, maxLevel);

    /// <summary>
    /// 1.5 * 2^23: (x + M) - M rounds x half-to-even to an integer exactly like MathF.Round for |x| &lt; 2^22, in two
    /// plain additions (Vector*.Round is not always a single instruction). Larger |x| give values beyond 2^21, which the
    /// level clamp (at most 255) maps to the same end as MathF.Round would.
    /// </summary>
    private const float RoundingMagic = 12582912f;

    private static Half SymmetricRefit(ReadOnlySpan<float> values, float scale, int zero, int maxLevel)
    {
        Moments(values, scale, zero, maxLevel, out _, out double cc, out _, out double wc);
        return cc == 0 ? Half.Zero : ToHalf((float)(wc / cc));
    }

    private static bool AsymmetricRefit(ReadOnlySpan<float> values, float scale, int zero, int maxLevel, out Half refit, out int refitZero)
    {
        // Sums over q = c + z from the sums over c = q - z.
        Moments(values, scale, zero, maxLevel, out double sc, out double scc, out double sw, out double swc);
        double n = values.Length;
        double sq = sc + n * zero, sqq = scc + 2.0 * zero * sc + n * zero * zero, swq = swc + zero * sw;
        double det = n * sqq - sq * sq;
        refit = Half.Zero;
        refitZero = 0;
        if (det <= 0) return false;
        double a = (n * swq - sq * sw) / det;
        double c = (sw - a * sq) / n;
        refit = ToHalf((float)a);
        if (refit <= Half.Zero || !Half.IsFinite(refit)) return false;
        refitZero = (int)Math.Clamp(Math.Round(-c / ToFloat(refit)), 0, maxLevel);
        return true;
    }

    /// <summary>Sums of c, c^2, w and w c over the group, c = q - z the levels <see cref="QuantizeGroup"/> picks (fixed lane order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Moments(ReadOnlySpan<float> values, float scale, int zero, int maxLevel, out double sumC, out double sumCC, out double sumW, out double sumWC)
    {
        ref float src = ref MemoryMarshal.GetReference(values);
        var vInverse = Vector256.Create(1f / scale);
        var vMagic = Vector256.Create(RoundingMagic);
        var vLow = Vector256.Create((float)-zero);
        var vHigh = Vector256.Create((float)(maxLevel - zero));
        Vector256<float> ac = default, acc = default, aw = default, awc = default;
        int i = 0;
        for (; i <= values.Length - 8; i += 8)
        {
            var w = Vector256.LoadUnsafe(ref src, (nuint)i);
            var c = Vector256.MinNative(Vector256.MaxNative((w * vInverse + vMagic) - vMagic, vLow), vHigh);
            ac += c;
            acc += c * c;
            aw += w;
            awc += w * c;
        }

        sumC = Sum(ac);
        sumCC = Sum(acc);
        sumW = Sum(aw);
        sumWC = Sum(awc);
        for (; i < values.Length; i++)
        {
            float w = Unsafe.Add(ref src, i);
            int c = Level(w, scale, zero, maxLevel) - zero;
            sumC += c;
            sumCC += (double)c * c;
            sumW += w;
            sumWC += (double)w * c;
        }
    }

    /// <summary>The eight lanes added in a fixed tree order, the same on every machine.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Sum(Vector256<float> v)
    {
        var h = v.GetLower() + v.GetUpper();
        return (h.GetElement(0) + h.GetElement(2)) + (h.GetElement(1) + h.GetElement(3));
    }

    /// <summary>
    /// Sum of (w - s (q - z))^2 over the group with q as <see cref="QuantizeGroup"/> picks it. The summation order is
    /// fixed (two 8-lane accumulators taking alternate chunks of 8, one more chunk of 8 into the first, a fixed tree,
    /// then the scalar tail), so every machine picks the same scale; <see cref="GroupErrors"/> computes the same sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float GroupError(ReadOnlySpan<float> values, float scale, int zero, int maxLevel)
    {
        ref float src = ref MemoryMarshal.GetReference(values);
        var magic = Vector256.Create(RoundingMagic);
        var i0 = Vector256.Create(1f / scale); var s0 = Vector256.Create(scale);
        var l0 = Vector256.Create((float)-zero); var h0 = Vector256.Create((float)(maxLevel - zero));
        Vector256<float> e0 = default, o0 = default;
        int i = 0;
        for (; i <= values.Length - 16; i += 16)
        {
            e0 += Squared(Vector256.LoadUnsafe(ref src, (nuint)i), i0, s0, l0, h0, magic);
            o0 += Squared(Vector256.LoadUnsafe(ref src, (nuint)(i + 8)), i0, s0, l0, h0, magic);
        }
        if (i <= values.Length - 8)
        {
            e0 += Squared(Vector256.LoadUnsafe(ref src, (nuint)i), i0, s0, l0, h0, magic);
            i += 8;
        }
        return Sum(e0 + o0) + TailError(values, i, scale, zero, maxLevel);
    }

    /// <summary>
    /// <see cref="GroupError"/> of four candidate grids in one pass over the group (the loads, loop and latency are
    /// shared; each candidate's sums are exactly those of a pass of its own).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupErrors(ReadOnlySpan<float> values, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeros, int maxLevel, Span<float> errors)
    {
        ref float src = ref MemoryMarshal.GetReference(values);
        var magic = Vector256.Create(RoundingMagic);
        // Levels relative to the zero point: c = clamp(round(w / s), -z, maxLevel - z), the same integers as q - z.
        var i0 = Vector256.Create(1f / scales[0]); var s0 = Vector256.Create(scales[0]);
        var i1 = Vector256.Create(1f / scales[1]); var s1 = Vector256.Create(scales[1]);
        var i2 = Vector256.Create(1f / scales[2]); var s2 = Vector256.Create(scales[2]);
        var i3 = Vector256.Create(1f / scales[3]); var s3 = Vector256.Create(scales[3]);
        var l0 = Vector256.Create((float)-zeros[0]); var h0 = Vector256.Create((float)(maxLevel - zeros[0]));
        var l1 = Vector256.Create((float)-zeros[1]); var h1 = Vector256.Create((float)(maxLevel - zeros[1]));
        var l2 = Vector256.Create((float)-zeros[2]); var h2 = Vector256.Create((float)(maxLevel - zeros[2]));
        var l3 = Vector256.Create((float)-zeros[3]); var h3 = Vector256.Create((float)(maxLevel - zeros[3]));
        Vector256<float> e0 = default, o0 = default, e1 = default, o1 = default, e2 = default, o2 = default, e3 = default, o3 = default;
        int i = 0;
        for (; i <= values.Length - 16; i += 16)
        {
            var wa = Vector256.LoadUnsafe(ref src, (nuint)i);
            var wb = Vector256.LoadUnsafe(ref src, (nuint)(i + 8));
            e0 += Squared(wa, i0, s0, l0, h0, magic); o0 += Squared(wb, i0, s0, l0, h0, magic);
            e1 += Squared(wa, i1, s1, l1, h1, magic); o1 += Squared(wb, i1, s1, l1, h1, magic);
            e2 += Squared(wa, i2, s2, l2, h2, magic); o2 += Squared(wb, i2, s2, l2, h2, magic);
            e3 += Squared(wa, i3, s3, l3, h3, magic); o3 += Squared(wb, i3, s3, l3, h3, magic);
        }
        if (i <= values.Length - 8)
        {
            var w = Vector256.LoadUnsafe(ref src, (nuint)i);
            e0 += Squared(w, i0, s0, l0, h0, magic);
            e1 += Squared(w, i1, s1, l1, h1, magic);
            e2 += Squared(w, i2, s2, l2, h2, magic);
            e3 += Squared(w, i3, s3, l3, h3, magic);
            i += 8;
        }

        errors[0] = Sum(e0 + o0);
        errors[1] = Sum(e1 + o1);
        errors[2] = Sum(e2 + o2);
        errors[3] = Sum(e3 + o3);
        for (int k = 0; k < 4; k++) errors[k] += TailError(values, i, scales[k], zeros[k], maxLevel);
    }

    /// <summary>The squared error of the weights from <paramref name="start"/> on (fewer than 8), one by one.</summary>
    private static float TailError(ReadOnlySpan<float> values, int start, float scale, int zero, int maxLevel)
    {
        float tail = 0f;
        for (int t = start; t < values.Length; t++)
        {
            float w = values[t];
            float d = w - (Level(w, scale, zero, maxLevel) - zero) * scale;
            tail += d * d;
        }
        return tail;
    }

    /// <summary><see cref="GroupErrors"/> of the first two candidates only (the same sums, half the work).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GroupErrors2(ReadOnlySpan<float> values, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeros, int maxLevel, Span<float> errors)
    {
        ref float src = ref MemoryMarshal.GetReference(values);
        var magic = Vector256.Create(RoundingMagic);
        var i0 = Vector256.Create(1f / scales[0]); var s0 = Vector256.Create(scales[0]);
        var i1 = Vector256.Create(1f / scales[1]); var s1 = Vector256.Create(scales[1]);
        var l0 = Vector256.Create((float)-zeros[0]); var h0 = Vector256.Create((float)(maxLevel - zeros[0]));
        var l1 = Vector256.Create((float)-zeros[1]); var h1 = Vector256.Create((float)(maxLevel - zeros[1]));
        Vector256<float> e0 = default, o0 = default, e1 = default, o1 = default;
        int i = 0;
        for (; i <= values.Length - 16; i += 16)
        {
            var wa = Vector256.LoadUnsafe(ref src, (nuint)i);
            var wb = Vector256.LoadUnsafe(ref src, (nuint)(i + 8));
            e0 += Squared(wa, i0, s0, l0, h0, magic); o0 += Squared(wb, i0, s0, l0, h0, magic);
            e1 += Squared(wa, i1, s1, l1, h1, magic); o1 += Squared(wb, i1, s1, l1, h1, magic);
        }
        if (i <= values.Length - 8)
        {
            var w = Vector256.LoadUnsafe(ref src, (nuint)i);
            e0 += Squared(w, i0, s0, l0, h0, magic);
            e1 += Squared(w, i1, s1, l1, h1, magic);
            i += 8;
        }

        errors[0] = Sum(e0 + o0);
        errors[1] = Sum(e1 + o1);
        for (int k = 0; k < 2; k++) errors[k] += TailError(values, i, scales[k], zeros[k], maxLevel);
    }

    /// <summary>(w - s clamp(round(w / s), low, high))^2 lane-wise, rounding as <see cref="Level"/> does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Squared(Vector256<float> w, Vector256<float> inverse, Vector256<float> scale,
        Vector256<float> low, Vector256<float> high, Vector256<float> magic)
    {
        var c = Vector256.MinNative(Vector256.MaxNative((w * inverse + magic) - magic, low), high);
        // w - c s fused (one rounding): the same on every machine (Vector256.FusedMultiplyAdd is exact in software too).
        var d = Vector256.FusedMultiplyAdd(-c, scale, w);
        return d * d;
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
    /// weight of the group inside the min/max grid, so its |s|/2 bound holds with the stored scale. A scale beyond the float16
    /// maximum is an error quoting the group's extreme weights and the largest magnitude (symmetric) or span
    /// (asymmetric) the grid can hold: <paramref name="steps"/> steps of 65504.
    /// </summary>
    private static Half ScaleAtLeast(double exact, float min, float max, bool symmetric, int bits, int steps, int row, int start, int groupSize)
    {
        // Through float (exact enough: a float that rounds below is caught by the comparison) for the fast conversion.
        var scale = ToHalf((float)exact);
        if (ToFloat(scale) < exact) scale = Half.BitIncrement(scale);
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

    /// <summary>
    /// float to float16, round to nearest even: bit arithmetic for the float16 normal range, the library conversion
    /// (several times slower, and the scale search converts a dozen candidates per group) for the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Half ToHalf(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint magnitude = bits & 0x7FFF_FFFFu;
        // [2^-14, 65520): a normal float16 after rounding (65520 and up round to infinity).
        if (magnitude - 0x3880_0000u < 0x477F_F000u - 0x3880_0000u)
        {
            uint rebiased = magnitude - 0x3800_0000u; // exponent bias 127 -> 15
            rebiased += 0x0FFFu + ((rebiased >> 13) & 1u); // round the 13 dropped bits to nearest even
            return BitConverter.UInt16BitsToHalf((ushort)(((bits >> 16) & 0x8000u) | (rebiased >> 13)));
        }
        return (Half)x;
    }

    /// <summary>float16 to float (exact): bit arithmetic for normal values, the library conversion for the rest.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float ToFloat(Half h)
    {
        uint bits = BitConverter.HalfToUInt16Bits(h);
        uint magnitude = bits & 0x7FFFu;
        if (magnitude - 0x0400u < 0x7C00u - 0x0400u)
            return BitConverter.UInt32BitsToSingle(((bits & 0x8000u) << 16) | ((magnitude << 13) + 0x3800_0000u));
        return (float)h;
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
