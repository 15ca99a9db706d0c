using Condense.Kernels;
using Condense.Tests.Core;

namespace Condense.Tests.Transformer;

/// <summary>Each transformer op: forward against a float64 reference written here, backward against finite differences.</summary>
public class TransformerOpTests
{
    private const double Tolerance = 2e-2;

    private static Tensor Project(Tensor y, Tensor r) => Ops.Sum(Ops.Mul(y, r));

    private static Tensor RandomLike(Rng rng, Tensor t) => GradCheck.Random(rng, t.Shape);

    /// <summary>
    /// erf in double, independent of the runtime's rational approximation: the Maclaurin series for |z| &lt;= 3, the
    /// continued fraction of erfc beyond (both accurate to ~1e-12 there).
    /// </summary>
    internal static double ReferenceErf(double z)
    {
        if (Math.Abs(z) > 3)
        {
            double a = Math.Abs(z), f = a;
            for (int n = 120; n >= 1; n--) f = a + n / 2.0 / f;
            return Math.CopySign(1 - Math.Exp(-a * a) / (Math.Sqrt(Math.PI) * f), z);
        }
        double sum = 0, term = z;
        for (int n = 0; n < 200; n++)
        {
            sum += term / (2 * n + 1);
            term *= -z * z / (n + 1);
            if (Math.Abs(term) < 1e-18) break;
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }

    internal static double ReferenceGelu(double x) => 0.5 * x * (1 + ReferenceErf(x / Math.Sqrt(2)));

    [Fact]
    public void LayerNorm_matches_a_float64_reference_and_finite_differences()
    {
        var rng = new Rng(11);
        foreach (var shape in new[] { new[] { 3, 7 }, new[] { 2, 3, 5 }, new[] { 1, 1 }, new[] { 4, 33 } })
        {
            var x = GradCheck.Random(rng, shape);
            // An offset larger than the spread: a one-pass variance would lose digits here.
            for (int i = 0; i < x.Length; i++) x.Data[i] = x.Data[i] * 0.5f + 3f;
            int c = shape[^1];
            var w = GradCheck.Random(rng, c);
            var b = GradCheck.Random(rng, c);
            var y = Ops.LayerNorm(x, w, b, 1e-5f);
            for (int r = 0; r < x.Length / c; r++)
            {
                double mean = 0, variance = 0;
                for (int j = 0; j < c; j++) mean += x.Data[r * c + j];
                mean /= c;
                for (int j = 0; j < c; j++) variance += Math.Pow(x.Data[r * c + j] - mean, 2);
                variance /= c;
                for (int j = 0; j < c; j++)
                {
                    double expected = (x.Data[r * c + j] - mean) / Math.Sqrt(variance + 1e-5) * w.Data[j] + b.Data[j];
                    Assert.True(Math.Abs(expected - y.Data[r * c + j]) < 1e-5 * (1 + Math.Abs(expected)), $"row {r} col {j}: {y.Data[r * c + j]} vs {expected}");
                }
            }
            var proj = RandomLike(rng, x);
            if (c > 1) Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.LayerNorm(x, w, b, 1e-5f), proj), [x, w, b]) < Tolerance, $"shape {Tensor.FormatShape(shape)}");
        }
    }

    [Fact]
    public void LayerNorm_gradients_are_wrong_when_tampered()
    {
        // The check above must be able to fail: a 10% error in the gradient is caught.
        var rng = new Rng(12);
        var x = GradCheck.Random(rng, 3, 6);
        var w = GradCheck.Random(rng, 6);
        var b = GradCheck.Random(rng, 6);
        var proj = RandomLike(rng, x);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.LayerNorm(x, w, b), proj), [x, w, b], tamper: g => g * 1.1f) > Tolerance);
    }

    [Fact]
    public void LayerNorm_layer_starts_as_identity_normalization_and_rejects_a_wrong_width()
    {
        var norm = new Nn.LayerNorm(4);
        Assert.Equal([1f, 1f, 1f, 1f], norm.Weight.Data);
        Assert.Equal(["weight", "bias"], norm.Parameters.Select(p => p.Name));
        var y = norm.Forward(Tensor.FromArray([1f, 2f, 3f, 4f], 1, 4));
        Assert.Equal(0.0, y.Data.Sum(), 1e-5);
        var ex = Assert.Throws<ArgumentException>(() => norm.Forward(Tensor.Zeros(2, 5)));
        Assert.Contains("[2, 5]", ex.Message);
    }

    [Fact]
    public void GeluErf_matches_the_exact_gelu_in_float64_and_its_scalar_reference_at_every_length()
    {
        var xs = new float[2001];
        for (int i = 0; i < xs.Length; i++) xs[i] = -10f + i * 0.01f;
        var y = Ops.GeluErf(Tensor.FromArray(xs, xs.Length));
        for (int i = 0; i < xs.Length; i++)
        {
            double expected = ReferenceGelu(xs[i]);
            Assert.True(Math.Abs(y.Data[i] - expected) < 2e-6 * Math.Max(1, Math.Abs(xs[i])), $"GELU({xs[i]}) = {y.Data[i]}, expected {expected}");
        }
        // The vectorized blocks against the scalar reference at lengths crossing vector and block boundaries.
        var rng = new Rng(13);
        foreach (int n in new[] { 0, 1, 7, 8, 15, 16, 17, 31, 255, 511, 512, 513, 1029, 40000 })
        {
            var x = GradCheck.Random(rng, n);
            for (int i = 0; i < n; i++) x.Data[i] *= 3f;
            var g = Ops.GeluErf(x);
            for (int i = 0; i < n; i++)
            {
                float reference = x.Data[i] * Ops.NormalCdf(x.Data[i]);
                Assert.True(Math.Abs(g.Data[i] - reference) <= 1e-6f * Math.Max(1f, Math.Abs(reference)), $"n={n} i={i}");
            }
        }
    }

    [Fact]
    public void GeluErf_and_Tanh_gradients_match_finite_differences()
    {
        var rng = new Rng(14);
        var x = GradCheck.Random(rng, 5, 9);
        var proj = RandomLike(rng, x);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.GeluErf(x), proj), [x]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Tanh(x), proj), [x]) < Tolerance);
        Assert.Equal(Math.Tanh(0.5), Ops.Tanh(Tensor.FromArray([0.5f], 1)).Data[0], 1e-6);
    }

    [Fact]
    public void Softmax_rows_sum_to_one_without_overflow_and_gradients_match()
    {
        var rng = new Rng(15);
        var x = GradCheck.Random(rng, 4, 3, 7);
        var y = Ops.Softmax(x);
        for (int r = 0; r < 12; r++)
        {
            double max = x.Data.Skip(r * 7).Take(7).Max();
            double sum = x.Data.Skip(r * 7).Take(7).Sum(v => Math.Exp(v - max));
            for (int j = 0; j < 7; j++) Assert.Equal(Math.Exp(x.Data[r * 7 + j] - max) / sum, y.Data[r * 7 + j], 1e-6);
        }
        var big = Ops.Softmax(Tensor.FromArray([1000f, 999f, -1000f], 1, 3));
        Assert.Equal(1 / (1 + Math.Exp(-1)), big.Data[0], 1e-6);
        Assert.Equal(0f, big.Data[2]);
        var proj = RandomLike(rng, x);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Softmax(x), proj), [x]) < Tolerance);
    }

    [Fact]
    public void LayerNorm_rows_give_the_same_bits_on_the_512_bit_and_the_lane_by_lane_path()
    {
        // Rows of 1-80 channels (whole vectors and tails), in place and not, with an offset mean and a wide range.
        var rng = new Rng(29);
        for (int n = 1; n <= 80; n++)
        {
            var x = new float[n];
            var w = new float[n];
            var b = new float[n];
            for (int j = 0; j < n; j++)
            {
                x[j] = 3f + 5f * rng.NextGaussian();
                w[j] = 1f + 0.3f * rng.NextGaussian();
                b[j] = 0.2f * rng.NextGaussian();
            }
            var lanes = new float[n];
            var (mean, rstd) = Ops.LayerNormRowLanes(x, lanes, w, b, 1e-5f);
            double m = x.Average(v => (double)v), variance = x.Sum(v => (v - m) * (v - m)) / n;
            Assert.Equal(m, mean, 1e-5);
            Assert.Equal(1 / Math.Sqrt(variance + 1e-5), rstd, 1e-4 / Math.Sqrt(variance + 1e-5));
            for (int j = 0; j < n; j++) Assert.Equal((x[j] - m) / Math.Sqrt(variance + 1e-5) * w[j] + b[j], lanes[j], 1e-4);
            if (!System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated || !System.Runtime.Intrinsics.X86.Avx512F.IsSupported) continue;
            var wide = new float[n];
            var (mean512, rstd512) = Ops.LayerNormRow512(x, wide, w, b, 1e-5f);
            Assert.True(wide.AsSpan().SequenceEqual(lanes) && mean512 == mean && rstd512 == rstd, $"n={n}: the paths differ");
            var inPlace = (float[])x.Clone();
            Ops.LayerNormRow512(inPlace, inPlace, w, b, 1e-5f);
            Assert.True(inPlace.AsSpan().SequenceEqual(lanes), $"n={n}: in place differs");
        }
    }

    [Fact]
    public void Softmax_rows_give_the_same_bits_on_the_512_bit_and_the_lane_by_lane_path()
    {
        // Rows of 1-50 keys (whole vectors and tails), with masked (-infinity) keys, a fully masked row, very
        // negative differences (exp under float32's smallest normal: exactly 0) and a NaN row.
        var rng = new Rng(23);
        for (int n = 1; n <= 50; n++)
            for (int trial = 0; trial < 4; trial++)
            {
                var x = new float[n];
                for (int j = 0; j < n; j++) x[j] = 8f * (float)rng.NextGaussian();
                if (trial == 1) for (int j = 0; j < n; j += 3) x[j] = float.NegativeInfinity;
                if (trial == 2) x[rng.NextInt(n)] = 200f;
                if (trial == 3 && n % 7 == 0) Array.Fill(x, float.NegativeInfinity);
                if (trial == 3 && n % 11 == 0) x[n / 2] = float.NaN;
                var lanes = new float[n];
                Ops.SoftmaxRowLanes(x, lanes);
                // A scale multiplies each value as it is read: the bits of scaling the row first.
                const float Scale = 0.1767767f;
                var scaledFirst = x.Select(v => v * Scale).ToArray();
                var expectedScaled = new float[n];
                Ops.SoftmaxRowLanes(scaledFirst, expectedScaled);
                var scaledLanes = new float[n];
                Ops.SoftmaxRowLanes(x, scaledLanes, Scale);
                Assert.True(scaledLanes.AsSpan().SequenceEqual(expectedScaled), $"n={n} trial {trial}: the scaled lanes differ");
                double max = x.Max(v => (double)v), sum = x.Sum(v => Math.Exp(v - max));
                for (int j = 0; j < n; j++)
                {
                    if (float.IsNaN(x[n / 2]) && n % 11 == 0 && trial == 3) { Assert.True(float.IsNaN(lanes[j])); continue; }
                    if (double.IsNegativeInfinity(max)) { Assert.Equal(0f, lanes[j]); continue; }
                    double expected = Math.Exp(x[j] - max) / sum;
                    if (x[j] - max < -87.4) Assert.Equal(0f, lanes[j]);
                    else Assert.Equal(expected, lanes[j], 1e-6 * Math.Max(1, expected * 10));
                }
                if (!System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated || !System.Runtime.Intrinsics.X86.Avx512F.IsSupported) continue;
                var wide = new float[n];
                Ops.SoftmaxRow512(x, wide);
                Assert.True(wide.AsSpan().SequenceEqual(lanes), $"n={n} trial {trial}: the paths differ");
                var scaledWide = new float[n];
                Ops.SoftmaxRow512(x, scaledWide, Scale);
                Assert.True(scaledWide.AsSpan().SequenceEqual(expectedScaled), $"n={n} trial {trial}: the scaled paths differ");
                Ops.SoftmaxRow512(x, scaledWide, -Scale);
                Ops.SoftmaxRowLanes(x, scaledLanes, -Scale);
                Assert.True(scaledWide.AsSpan().SequenceEqual(scaledLanes), $"n={n} trial {trial}: a negative scale differs between the paths");
                // In place, as the fused attention calls it.
                var inPlace = (float[])x.Clone();
                Ops.SoftmaxRow512(inPlace, inPlace);
                Assert.True(inPlace.AsSpan().SequenceEqual(lanes), $"n={n} trial {trial}: in place differs");
            }
    }

    [Fact]
    public void AttentionSoftmax_gives_masked_and_future_keys_exactly_zero_and_gradients_match()
    {
        var rng = new Rng(16);
        int batch = 2, heads = 3, t = 5;
        var scores = GradCheck.Random(rng, batch, heads, t, t);
        int[] mask = [1, 1, 1, 0, 0, /* second sequence: */ 1, 1, 1, 1, 1];
        const float Scale = 0.7f;
        foreach (bool causal in new[] { false, true })
        {
            var p = Ops.AttentionSoftmax(scores, mask, causal, Scale);
            for (int b = 0; b < batch; b++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < t; i++)
                    {
                        int row = ((b * heads + h) * t + i) * t;
                        var visible = Enumerable.Range(0, t).Where(j => mask[b * t + j] == 1 && (!causal || j <= i)).ToArray();
                        double max = visible.Max(j => Scale * (double)scores.Data[row + j]);
                        double sum = visible.Sum(j => Math.Exp(Scale * scores.Data[row + j] - max));
                        for (int j = 0; j < t; j++)
                        {
                            if (!visible.Contains(j)) Assert.Equal(0f, p.Data[row + j]);
                            else Assert.Equal(Math.Exp(Scale * scores.Data[row + j] - max) / sum, p.Data[row + j], 1e-6);
                        }
                    }
            var proj = RandomLike(rng, scores);
            Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.AttentionSoftmax(scores, mask, causal, Scale), proj), [scores]) < Tolerance, $"causal={causal}");
        }
        // A query that sees no key at all (an all-padding sequence) gets zeros, not NaN.
        var none = Ops.AttentionSoftmax(Tensor.Zeros(1, 1, 2, 2), [0, 0], causal: false, 1f);
        Assert.All(none.Data, v => Assert.Equal(0f, v));
        Assert.Contains("B * Tk = 10", Assert.Throws<ArgumentException>(() => Ops.AttentionSoftmax(scores, [1, 1], false, 1f)).Message);
    }

    [Fact]
    public void BatchedMatMul_matches_loops_and_finite_differences_in_both_layouts()
    {
        var rng = new Rng(17);
        foreach (bool transposeB in new[] { false, true })
        {
            int[] lead = [2, 3];
            int m = 5, k = 4, n = 3;
            var a = GradCheck.Random(rng, 2, 3, m, k);
            var b = transposeB ? GradCheck.Random(rng, 2, 3, n, k) : GradCheck.Random(rng, 2, 3, k, n);
            var c = Ops.BatchedMatMul(a, b, transposeB);
            Assert.Equal([2, 3, m, n], c.Shape);
            for (int s = 0; s < 6; s++)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double expected = 0;
                        for (int p = 0; p < k; p++)
                            expected += (double)a.Data[s * m * k + i * k + p] * (transposeB ? b.Data[s * n * k + j * k + p] : b.Data[s * k * n + p * n + j]);
                        Assert.Equal(expected, c.Data[s * m * n + i * n + j], 1e-4);
                    }
            var proj = RandomLike(rng, c);
            Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.BatchedMatMul(a, b, transposeB), proj), [a, b]) < Tolerance, $"transposeB={transposeB}");
        }
        Assert.Throws<ArgumentException>(() => Ops.BatchedMatMul(Tensor.Zeros(2, 3, 4), Tensor.Zeros(3, 4, 5)));
    }

    [Fact]
    public void SplitHeads_and_MergeHeads_are_inverse_permutations_with_matching_gradients()
    {
        var rng = new Rng(18);
        int batch = 2, t = 3, heads = 4, d = 5;
        var x = GradCheck.Random(rng, batch * t, heads * d);
        var split = Ops.SplitHeads(x, batch, heads);
        Assert.Equal([batch, heads, t, d], split.Shape);
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int s = 0; s < t; s++)
                    for (int e = 0; e < d; e++)
                        Assert.Equal(x.Data[(b * t + s) * heads * d + h * d + e], split.Data[((b * heads + h) * t + s) * d + e]);
        Assert.Equal(x.Data, Ops.MergeHeads(split).Data);
        var proj = RandomLike(rng, split);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.SplitHeads(x, batch, heads), proj), [x]) < Tolerance);
        var h4 = GradCheck.Random(rng, batch, heads, t, d);
        var proj2 = GradCheck.Random(rng, batch * t, heads * d);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.MergeHeads(h4), proj2), [h4]) < Tolerance);
    }

    [Fact]
    public void Embedding_gathers_rows_accumulates_repeated_ids_and_names_a_bad_id()
    {
        var rng = new Rng(19);
        var table = GradCheck.Random(rng, 6, 3);
        int[] ids = [4, 0, 4, 5, 2];
        var y = Ops.Embedding(table, ids);
        for (int i = 0; i < ids.Length; i++)
            Assert.Equal(table.Data.AsSpan(ids[i] * 3, 3).ToArray(), y.Data.AsSpan(i * 3, 3).ToArray());
        var proj = RandomLike(rng, y);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Embedding(table, ids), proj), [table]) < Tolerance);
        var ex = Assert.Throws<ArgumentException>(() => Ops.Embedding(table, [1, 6]));
        Assert.Contains("id 6 at position 1", ex.Message);
    }

    [Fact]
    public void MeanPool_averages_the_real_tokens_only_and_its_gradient_matches()
    {
        var rng = new Rng(21);
        var hidden = GradCheck.Random(rng, 2 * 4, 3);
        var batch = new Condense.Transformer.SequenceBatch(2, 4, [1, 1, 0, 0, 1, 1, 1, 1]);
        var pooled = Condense.Transformer.Bert.MeanPool(hidden, batch);
        Assert.Equal([2, 3], pooled.Shape);
        for (int j = 0; j < 3; j++)
        {
            Assert.Equal((hidden.Data[0 * 3 + j] + hidden.Data[1 * 3 + j]) / 2.0, pooled.Data[j], 1e-6);
            Assert.Equal(Enumerable.Range(4, 4).Average(r => (double)hidden.Data[r * 3 + j]), pooled.Data[3 + j], 1e-6);
        }
        var proj = RandomLike(rng, pooled);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Condense.Transformer.Bert.MeanPool(hidden, batch), proj), [hidden]) < Tolerance);
        Assert.All(hidden.Grad!.Data.AsSpan(2 * 3, 2 * 3).ToArray(), g => Assert.Equal(0f, g));
        Assert.Contains("entry 2 (sequence 0, position 2) is 2", Assert.Throws<ArgumentException>(() => new Condense.Transformer.SequenceBatch(2, 4, [1, 1, 2, 0, 1, 1, 1, 1])).Message);
    }

    [Fact]
    public void Dropout_is_seeded_scales_the_kept_values_and_has_a_matching_gradient()
    {
        var rng = new Rng(20);
        var x = GradCheck.Random(rng, 50, 40);
        var first = Ops.Dropout(x, 0.25f, new Rng(7));
        var second = Ops.Dropout(x, 0.25f, new Rng(7));
        Assert.Equal(first.Data, second.Data);
        int dropped = first.Data.Count(v => v == 0f);
        Assert.InRange(dropped / 2000.0, 0.2, 0.3);
        for (int i = 0; i < x.Length; i++)
            if (first.Data[i] != 0f) Assert.Equal(x.Data[i] / 0.75f, first.Data[i], 1e-5);
        var small = GradCheck.Random(rng, 4, 5);
        var proj = RandomLike(rng, small);
        // The same seed on every evaluation: finite differences see the same mask as Backward.
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Dropout(small, 0.5f, new Rng(3)), proj), [small]) < Tolerance);
        Assert.Throws<ArgumentOutOfRangeException>(() => Ops.Dropout(x, 1f, new Rng(1)));
    }
}
