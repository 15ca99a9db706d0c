namespace Condense.Tests.Sparsity;

/// <summary>Reference products for the sparse and low-rank kernels, in double, with an error scale for tolerances.</summary>
internal static class SparseReference
{
    /// <summary>y[b, o] = sum_i x[b, i] w[o, i] in double, plus scale[b, o] = sum_i |x w| for relative tolerances.</summary>
    public static (double[] Y, double[] Scale) MatMulTransposed(float[] w, int outFeatures, int inFeatures, float[] x, int batch)
    {
        var y = new double[batch * outFeatures];
        var scale = new double[batch * outFeatures];
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < outFeatures; o++)
            {
                double sum = 0, abs = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    double p = (double)x[b * inFeatures + i] * w[o * inFeatures + i];
                    sum += p;
                    abs += Math.Abs(p);
                }
                y[b * outFeatures + o] = sum;
                scale[b * outFeatures + o] = abs;
            }
        return (y, scale);
    }

    /// <summary>Asserts y matches the double reference within a few float roundings of each output's magnitude.</summary>
    public static void AssertClose(float[] w, int outFeatures, int inFeatures, float[] x, int batch, float[] y, string what)
    {
        var (expected, scale) = MatMulTransposed(w, outFeatures, inFeatures, x, batch);
        for (int i = 0; i < y.Length; i++)
        {
            double tolerance = 1e-5 * scale[i] + 1e-30;
            if (Math.Abs(y[i] - expected[i]) > tolerance)
                Assert.Fail($"{what}: y[{i / outFeatures}, {i % outFeatures}] = {y[i]}, expected {expected[i]} (tolerance {tolerance})");
        }
    }

    /// <summary>An OutFeatures x InFeatures weight of seeded Gaussian values.</summary>
    public static float[] LargeDense(int outF, int inF, ulong seed)
    {
        var rng = new Condense.Rng(seed);
        var dense = new float[outF * inF];
        for (int k = 0; k < dense.Length; k++) dense[k] = rng.NextGaussian();
        return dense;
    }

    /// <summary>Spot-checks rows 0, 1, Out/2 and Out-1 of y = W x against a float64 sum over the stored weight's dense form.</summary>
    public static void AssertRowsMatch(float[] denseStored, float[] x, float[] y, int inF)
    {
        foreach (int row in new[] { 0, 1, y.Length / 2, y.Length - 1 })
        {
            double expected = 0;
            for (int i = 0; i < inF; i++) expected += (double)denseStored[(long)row * inF + i] * x[i];
            Assert.True(Math.Abs(y[row] - expected) <= 1e-4 * (1 + Math.Abs(expected)), $"row {row}: {y[row]} vs {expected}");
        }
    }
}
