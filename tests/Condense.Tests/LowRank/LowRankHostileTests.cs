using Condense.LowRank;
using Condense.Tests.Quantization;

namespace Condense.Tests.LowRank;

/// <summary>Low-rank factoring of weights at the edges of float32: pre-scaling, and refusing what cannot be stored.</summary>
public class LowRankHostileTests
{
    private static float[] RankTwo(int m, int n, float magnitude)
    {
        var u = QuantTestData.Gaussian(1, m * 2);
        var v = QuantTestData.Gaussian(2, 2 * n);
        var w = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                w[i * n + j] = (double)u[i * 2] * v[j] + (double)u[i * 2 + 1] * v[n + j];
        double peak = w.Max(Math.Abs);
        return w.Select(x => (float)(x / peak * magnitude)).ToArray();
    }

    private static double RelativeError(float[] w, LowRankWeight lr)
    {
        var back = new float[w.Length];
        lr.Dequantize(back);
        double diff = 0, norm = 0;
        for (int i = 0; i < w.Length; i++)
        {
            diff += ((double)w[i] - back[i]) * ((double)w[i] - back[i]);
            norm += (double)w[i] * w[i];
        }
        return Math.Sqrt(diff / norm);
    }

    // Unscaled, the float32 sketch of weights near 1e38 overflows and MathNet's eigen solver threw IndexOutOfRange.
    // Divided by a power of two, the matrix factors like any other and V is multiplied back.
    [Fact]
    public void A_rank_two_matrix_of_huge_weights_is_recovered()
    {
        const int m = 16, n = 24;
        var w = RankTwo(m, n, 1e38f);
        var lr = LowRankWeight.FromDense(w, m, n, 2);
        Assert.All(lr.U.Concat(lr.V), x => Assert.True(float.IsFinite(x)));
        double error = RelativeError(w, lr);
        Assert.True(error < 1e-5, $"relative error {error}");
    }

    [Fact]
    public void Pre_scaling_is_exact_so_huge_weights_factor_as_their_ordinary_copy_times_a_power_of_two()
    {
        // w is factored as is; 2^20 w is pre-scaled (its max |w| is above 2^16): by a power of two, so every float32
        // step of the sketch is the same up to that power, and the factors are exactly U and 2^20 V.
        const int m = 12, n = 20;
        var w = QuantTestData.Gaussian(9, m * n);
        var plain = LowRankWeight.FromDense(w, m, n, 3);
        var scaled = LowRankWeight.FromDense(w.Select(x => MathF.ScaleB(x, 20)).ToArray(), m, n, 3);
        Assert.Equal(plain.U, scaled.U);
        Assert.Equal(plain.V.Select(x => MathF.ScaleB(x, 20)), scaled.V);
    }

    [Fact]
    public void Weights_whose_factors_would_overflow_are_refused_with_the_value_and_a_fix()
    {
        const int m = 8, n = 32;
        var w = QuantTestData.Gaussian(4, m * n);
        for (int i = 0; i < w.Length; i++) w[i] = w[i] < 0 ? -3e38f : 3e38f;
        var e = Assert.Throws<ArgumentException>(() => LowRankWeight.FromDense(w, m, n, 4));
        Assert.Contains("3E+38", e.Message);
        Assert.Contains("[KeepDense]", e.Message);
        Assert.Contains("rescale", e.Message);
    }
}
