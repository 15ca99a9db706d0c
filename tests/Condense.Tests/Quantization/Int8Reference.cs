using Condense.Catalogue;
using Condense.Kernels;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

/// <summary>The int8-activation product in exact integers and doubles, the reference every int8 kernel is checked against.</summary>
internal static class Int8Reference
{
    /// <summary>
    /// Runs <paramref name="q"/>'s int8-activation product and asserts every output is within float32 rounding of
    /// <see cref="Product"/>; <paramref name="route"/> names the kernel or width in the failure message.
    /// </summary>
    public static void AssertMatches(GroupQuantizedWeight q, float[] x, int batch, string route)
    {
        int outF = q.OutFeatures, inF = q.InFeatures;
        int g = q.Scheme.GroupSize == 0 ? inF : q.Scheme.GroupSize;
        var expected = Product(q, x, batch, out var magnitude);
        var y = new float[batch * outF];
        y.AsSpan().Fill(float.NaN);
        q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
        for (int k = 0; k < y.Length; k++)
        {
            // Integer group sums are exact; float32 rounding of the lane-wise scaling and sums remains.
            double tolerance = (inF / 4.0 + inF / (double)g + 8) * Math.Pow(2, -24) * magnitude[k] + 1e-30;
            Assert.True(Math.Abs(y[k] - expected[k]) <= tolerance,
                $"{q.Format} {route} batch {batch} [{k / outF},{k % outF}]: {y[k]} vs {expected[k]} (tolerance {tolerance})");
        }
    }

    /// <summary>
    /// sx * sum_g s_g * (sum_i u_i q_i - z_g sum_i q_i) with q = round-half-even(x * 127 / max|x|); <paramref name="magnitude"/>
    /// bounds the terms' absolute sum, for the float32 tolerance.
    /// </summary>
    public static double[] Product(GroupQuantizedWeight w, float[] x, int batch, out double[] magnitude)
    {
        int outF = w.OutFeatures, n = w.InFeatures, bits = w.Scheme.Bits;
        int g = w.Scheme.GroupSize == 0 ? n : w.Scheme.GroupSize, groups = n / g;
        int rowBytes = (int)KernelCatalogue.PackedRowBytes(n, bits);
        var result = new double[batch * outF];
        magnitude = new double[batch * outF];
        var levels = new int[n];
        var qx = new int[n];
        for (int b = 0; b < batch; b++)
        {
            var xr = x.AsSpan(b * n, n);
            float absMax = 0f;
            foreach (float v in xr) absMax = Math.Max(absMax, Math.Abs(v));
            float inv = absMax == 0 ? 0 : 127f / absMax;
            for (int i = 0; i < n; i++) qx[i] = (int)MathF.Round(xr[i] * inv);
            double sx = absMax / 127f;
            for (int r = 0; r < outF; r++)
            {
                var row = w.Packed.AsSpan(r * rowBytes, rowBytes);
                for (int i = 0; i < n; i++) levels[i] = PackedBits.ReadLevel(row, i, bits);
                double sum = 0, mag = 0;
                for (int k = 0; k < groups; k++)
                {
                    long dot = 0, xs = 0;
                    for (int i = k * g; i < (k + 1) * g; i++)
                    {
                        dot += (long)levels[i] * qx[i];
                        xs += qx[i];
                    }
                    int zero = w.ZeroPoints?[r * groups + k] ?? 1 << (bits - 1);
                    double s = (double)w.Scales[r * groups + k];
                    sum += s * (dot - (double)zero * xs);
                    mag += Math.Abs(s * dot) + Math.Abs(s * 256.0 * xs) + Math.Abs(s * zero * xs);
                }
                result[b * outF + r] = sx * sum;
                magnitude[b * outF + r] = sx * mag;
            }
        }
        return result;
    }
}
