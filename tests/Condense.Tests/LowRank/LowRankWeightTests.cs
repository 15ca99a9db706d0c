using Condense.Kernels;
using Condense.Tests.Kernels;
using Condense.LowRank;
using Condense.Quantization;
using Condense.Tests.Quantization;
using Condense.Tests.Sparsity;
using MathNet.Numerics.LinearAlgebra;

namespace Condense.Tests.LowRank;

public class LowRankWeightTests
{
    private static float[] Product(float[] u, float[] v, int m, int r, int n)
    {
        var w = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < r; k++) s += (double)u[i * r + k] * v[k * n + j];
                w[i * n + j] = (float)s;
            }
        return w;
    }

    private static double FrobeniusDistance(float[] a, float[] b) => Math.Sqrt(a.Zip(b, (p, q) => (double)(p - q) * (p - q)).Sum());

    [Theory]
    [InlineData(40, 30, 5)]
    [InlineData(17, 64, 3)]
    [InlineData(8, 8, 8)]
    public void FromDense_reproduces_a_matrix_of_that_rank(int m, int n, int r)
    {
        var w = Product(QuantTestData.Gaussian(1, m * r), QuantTestData.Gaussian(2, r * n), m, r, n);
        var lr = LowRankWeight.FromDense(w, m, n, r);
        var back = new float[m * n];
        lr.Dequantize(back);
        double norm = Math.Sqrt(w.Sum(t => (double)t * t));
        Assert.True(FrobeniusDistance(w, back) <= 1e-5 * norm, $"error {FrobeniusDistance(w, back)} vs norm {norm}");
    }

    [Fact]
    public void FromDense_is_close_to_the_optimal_truncation_error_and_deterministic()
    {
        const int m = 60, n = 90, r = 10;
        var w = QuantTestData.Gaussian(3, m * n);
        var lr = LowRankWeight.FromDense(w, m, n, r);
        var back = new float[m * n];
        lr.Dequantize(back);
        var svd = Matrix<double>.Build.Dense(m, n, (i, j) => w[i * n + j]).Svd(computeVectors: false);
        double optimal = Math.Sqrt(svd.S.Skip(r).Sum(s => s * s));
        double error = FrobeniusDistance(w, back);
        Assert.True(error >= optimal * (1 - 1e-5));
        Assert.True(error <= optimal * 1.02, $"error {error} vs optimal {optimal}");

        var again = LowRankWeight.FromDense(w, m, n, r);
        Assert.Equal(lr.U, again.U);
        Assert.Equal(lr.V, again.V);
        var otherSeed = LowRankWeight.FromDense(w, m, n, r, seed: 7);
        Assert.NotEqual(lr.V, otherSeed.V);
    }

    [Fact]
    public void Products_match_the_reference_over_many_shapes_ranks_and_batches_at_every_width() => KernelWidths.ForEach(_ =>
    {
        ulong seed = 500;
        foreach (int o in new[] { 1, 3, 17, 40 })
            foreach (int i in new[] { 1, 5, 16, 33, 100 })
                foreach (int r in new[] { 1, 2, 7, 20 })
                {
                    var lr = LowRankWeight.FromFactors(o, i, r, QuantTestData.Gaussian(seed++, o * r), QuantTestData.Gaussian(seed++, r * i));
                    var dense = new float[o * i];
                    lr.Dequantize(dense);
                    foreach (int batch in new[] { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 128 })
                    {
                        var x = QuantTestData.Gaussian(seed++, batch * i);
                        var y = new float[batch * o];
                        lr.MatMulTransposed(x, y, batch);
                        // U (V x) rounds once more than W x: the tolerance scales with |U| |V| |x|.
                        var absU = lr.U.Select(Math.Abs).ToArray();
                        var absV = lr.V.Select(Math.Abs).ToArray();
                        var absW = Product(absU, absV, o, r, i);
                        var (expected, _) = SparseReference.MatMulTransposed(dense, o, i, x, batch);
                        var (_, scale) = SparseReference.MatMulTransposed(absW, o, i, x.Select(Math.Abs).ToArray(), batch);
                        for (int t = 0; t < y.Length; t++)
                            Assert.True(Math.Abs(y[t] - expected[t]) <= 1e-5 * scale[t] + 1e-30, $"[{o}, {i}] r {r} batch {batch}: y[{t}] = {y[t]}, expected {expected[t]}");
                    }
                }
    });

    /// <summary>
    /// Batch 1 sums each row of V and then of U alone, in the order docs/kernels.md states (two chains over alternate
    /// vectors, a leftover vector into the first, their lane sum, then the scalar tail), at every vector width, on
    /// shapes whose In, Out and rank are not multiples of any vector, large enough that both products go parallel:
    /// the same bits at 1 and 2 threads, and the same as that order computed here row by row.
    /// </summary>
    [Fact]
    public void Batch_1_sums_each_factor_row_alone_in_the_documented_order_at_1_and_2_threads() => KernelWidths.ForEach(bits =>
    {
        foreach (var (o, i, r) in new[] { (4099, 4127, 53), (1, 77, 5), (3001, 1000, 45) })
        {
            var lr = LowRankWeight.FromFactors(o, i, r, QuantTestData.Gaussian(7, o * r), QuantTestData.Gaussian(8, r * i));
            var x = QuantTestData.Gaussian(9, i);
            var t = new float[r];
            for (int j = 0; j < r; j++) t[j] = RowInOrder(bits, x, lr.V.AsSpan(j * i, i));
            var expected = new float[o];
            for (int j = 0; j < o; j++) expected[j] = RowInOrder(bits, t, lr.U.AsSpan(j * r, r));
            foreach (int degree in new[] { 1, 2 })
            {
                var y = DeterminismTests.AtDegree(degree, () =>
                {
                    var result = new float[o];
                    lr.MatMulTransposed(x, result, 1);
                    return result;
                });
                for (int j = 0; j < o; j++)
                    Assert.True(BitConverter.SingleToInt32Bits(y[j]) == BitConverter.SingleToInt32Bits(expected[j]),
                        $"{bits}-bit vectors, [{o}, {i}] r {r}, {degree} thread(s): y[{j}] = {y[j]:R}, the documented order gives {expected[j]:R}");
            }
        }
    });

    private static float RowInOrder(int bits, ReadOnlySpan<float> x, ReadOnlySpan<float> w) => bits switch
    {
        >= 512 => RowInOrder<F512>(x, w),
        >= 256 => RowInOrder<F256>(x, w),
        >= 128 => RowInOrder<F128>(x, w),
        _ => RowInOrder<F1>(x, w),
    };

    private static unsafe float RowInOrder<TV>(ReadOnlySpan<float> xs, ReadOnlySpan<float> ws) where TV : struct, IFloatVector<TV>
    {
        int n = TV.Count, k = xs.Length, i = 0;
        fixed (float* x = xs, w = ws)
        {
            TV c0 = TV.Zero, c1 = TV.Zero;
            for (; i + 2 * n <= k; i += 2 * n)
            {
                c0 = TV.Fma(TV.Load(x + i), TV.Load(w + i), c0);
                c1 = TV.Fma(TV.Load(x + i + n), TV.Load(w + i + n), c1);
            }
            if (i + n <= k) { c0 = TV.Fma(TV.Load(x + i), TV.Load(w + i), c0); i += n; }
            float s = TV.Sum(TV.Add(c0, c1));
            for (; i < k; i++) s = MathF.FusedMultiplyAdd(x[i], w[i], s);
            return s;
        }
    }

    [Fact]
    public void Large_products_match_the_reference_at_batch_1_and_128()
    {
        const int o = 300, i = 257, r = 33;
        var lr = LowRankWeight.FromFactors(o, i, r, QuantTestData.Gaussian(1, o * r, 0.1f), QuantTestData.Gaussian(2, r * i, 0.1f));
        var dense = new float[o * i];
        lr.Dequantize(dense);
        foreach (int batch in new[] { 1, 128 })
        {
            var x = QuantTestData.Gaussian(3, batch * i);
            var y = new float[batch * o];
            lr.MatMulTransposed(x, y, batch);
            var (expected, _) = SparseReference.MatMulTransposed(dense, o, i, x, batch);
            for (int t = 0; t < y.Length; t++) Assert.True(Math.Abs(y[t] - expected[t]) <= 1e-3, $"batch {batch}: y[{t}] = {y[t]}, expected {expected[t]}");
        }
    }

    [Fact]
    public void ByteCount_matches_the_format_formula_and_the_factors()
    {
        var lr = LowRankWeight.FromDense(QuantTestData.Gaussian(1, 48 * 20), 48, 20, 6);
        Assert.Equal((48 * 6 + 6 * 20) * 4L, lr.ByteCount);
        Assert.Equal((lr.U.Length + lr.V.Length) * 4L, lr.ByteCount);
        Assert.Equal("lowrank-r6", lr.Format);
    }

    [Fact]
    public void Bad_factors_and_ranks_are_rejected_naming_the_array_and_the_expected_length()
    {
        var e = Assert.Throws<ArgumentException>(() => LowRankWeight.FromFactors(4, 5, 2, new float[7], new float[10]));
        Assert.Equal("u", e.ParamName);
        Assert.Contains("u has 7 values; expected OutFeatures x Rank = 4 x 2 = 8", e.Message);
        e = Assert.Throws<ArgumentException>(() => LowRankWeight.FromFactors(4, 5, 2, new float[8], new float[9]));
        Assert.Contains("v has 9 values; expected Rank x InFeatures = 2 x 5 = 10", e.Message);
        var v = new float[10];
        v[3] = float.NaN;
        e = Assert.Throws<ArgumentException>(() => LowRankWeight.FromFactors(4, 5, 2, new float[8], v));
        Assert.Contains("v[3] is NaN", e.Message);
        e = Assert.Throws<ArgumentException>(() => LowRankWeight.FromDense(new float[20], 4, 5, 5));
        Assert.Contains("rank is 5; a [4, 5] matrix expects 1..4", e.Message);
        e = Assert.Throws<ArgumentException>(() => LowRankWeight.FromFactors(4, 5, 0, new float[0], new float[0]));
        Assert.Contains("rank is 0", e.Message);
    }

    [Theory]
    [InlineData(4, 32, true, 8)]
    [InlineData(3, 64, false, 4)]
    [InlineData(2, 0, false, 16)]
    public void The_correction_lowers_the_reconstruction_error(int bits, int groupSize, bool symmetric, int rank)
    {
        const int o = 64, i = 128;
        // A low-rank structure plus noise: quantization error is what the correction fits.
        var w = Product(QuantTestData.Gaussian(1, o * 4), QuantTestData.Gaussian(2, 4 * i), o, 4, i);
        var noise = QuantTestData.Gaussian(3, o * i, 0.1f);
        for (int t = 0; t < w.Length; t++) w[t] += noise[t];
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        var corrected = LowRankCorrectedWeight.Fit(w, o, i, scheme, rank);

        var quantizedOnly = new float[o * i];
        corrected.Quantized.Dequantize(quantizedOnly);
        var withCorrection = new float[o * i];
        corrected.Dequantize(withCorrection);
        double before = FrobeniusDistance(w, quantizedOnly), after = FrobeniusDistance(w, withCorrection);
        Assert.True(after < 0.97 * before, $"error {before} -> {after}");

        long gq = o * ((i * bits + 7) / 8L) + o * (groupSize == 0 ? 1 : i / groupSize) * (symmetric ? 2L : 3L);
        Assert.Equal(gq + (o * rank + rank * i) * 4L, corrected.ByteCount);
        Assert.Equal(corrected.Quantized.ByteCount + corrected.Correction.U.Length * 4L + corrected.Correction.V.Length * 4L, corrected.ByteCount);
        Assert.Equal($"{scheme.FormatName}+lowrank-r{rank}", corrected.Format);

        foreach (int batch in new[] { 1, 2, 5, 9, 128 })
        {
            var x = QuantTestData.Gaussian(10 + (ulong)batch, batch * i);
            var y = new float[batch * o];
            corrected.MatMulTransposed(x, y, batch, ActivationPrecision.Float32);
            var (expected, scale) = SparseReference.MatMulTransposed(withCorrection, o, i, x, batch);
            for (int t = 0; t < y.Length; t++)
                Assert.True(Math.Abs(y[t] - expected[t]) <= 1e-4 * scale[t] + 1e-6, $"batch {batch}: y[{t}] = {y[t]}, expected {expected[t]}");
        }
    }

    [Fact]
    public void Corrected_parts_must_have_the_same_shape()
    {
        var q = GroupQuantizedWeight.Quantize(new float[4 * 32], 4, 32, new QuantizationScheme(4, 16, true));
        var c = LowRankWeight.FromFactors(4, 16, 1, new float[4], new float[16]);
        var e = Assert.Throws<ArgumentException>(() => LowRankCorrectedWeight.FromParts(q, c));
        Assert.Contains("correction is [4, 16]; the quantized weight is [4, 32]", e.Message);
    }

    [Fact]
    public unsafe void Large_factors_are_backed_by_huge_pages_and_keep_their_values()
    {
        // A batch-1 product streams both factors from memory: they get 2 MiB pages as the fp32 and quantized weights do.
        if (!Smaps.TransparentHugePagesAvailable) return; // the advice is a no-op by design
        var probe = new float[4 << 20];
        Array.Fill(probe, 1f);
        bool canCollapse = HugePages.Advise(probe); // false: this kernel cannot collapse (before 6.1, no free huge page)

        int outF = 4096, inF = 4096, rank = 512; // U and V 8 MiB each
        var rng = new Condense.Rng(3);
        var u = new float[outF * rank];
        var v = new float[rank * inF];
        for (int k = 0; k < u.Length; k++) u[k] = rng.NextGaussian();
        for (int k = 0; k < v.Length; k++) v[k] = rng.NextGaussian();
        var (uCopy, vCopy) = ((float[])u.Clone(), (float[])v.Clone());
        var weight = LowRankWeight.FromFactors(outF, inF, rank, u, v);
        Assert.Equal(uCopy, weight.U);
        Assert.Equal(vCopy, weight.V);
        if (!canCollapse) return;
        foreach (var (factor, name) in new[] { (u, "U"), (v, "V") })
        {
            long address;
            fixed (float* p = factor) address = (long)p + factor.Length * sizeof(float) / 2;
            long hugeKiB = Smaps.AnonHugePagesKiB(address);
            // No free 2 MiB page when the factor was advised, or none left since the probe: only the advice counts.
            if (hugeKiB < 2048 && (Smaps.AdvisedWithoutCollapse(address) || !Smaps.CanCollapse())) return;
            Assert.True(hugeKiB >= 2048, $"the 8 MiB factor {name}'s mapping has no huge page after FromFactors (smaps AnonHugePages {hugeKiB} KiB)");
        }
    }
}
