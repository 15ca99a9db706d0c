namespace Condense.Tests.MixedPrecision;

/// <summary>
/// The exact Gauss-Newton blocks of a two-layer ReLU classifier x -> ReLU(W1 x + b1) -> W2 h + b2, in double, written
/// independently of the library: the reference the Hessian-vector products and the quadratic sensitivity are checked
/// against. Each diagonal block is J^T (diag p - p p^T) J averaged over rows, J the Jacobian of the logits with respect
/// to that block's weights (the logits are linear in W2 and piecewise linear in W1).
/// </summary>
internal static class ExactGaussNewton
{
    /// <summary>The blocks of W1 ([hidden * in]^2) and W2 ([classes * hidden]^2) over the rows of <paramref name="x"/>.</summary>
    public static double[][,] TwoLayerBlocks(float[] w1, float[] b1, float[] w2, float[] b2, float[] x, int rows, int inF, int hidden, int classes)
    {
        var h1 = new double[hidden * inF, hidden * inF];
        var h2 = new double[classes * hidden, classes * hidden];
        for (int n = 0; n < rows; n++)
        {
            var a = new double[hidden];
            var h = new double[hidden];
            for (int i = 0; i < hidden; i++)
            {
                a[i] = b1[i];
                for (int m = 0; m < inF; m++) a[i] += (double)w1[i * inF + m] * x[n * inF + m];
                h[i] = Math.Max(a[i], 0);
            }
            var z = new double[classes];
            for (int k = 0; k < classes; k++)
            {
                z[k] = b2[k];
                for (int i = 0; i < hidden; i++) z[k] += (double)w2[k * hidden + i] * h[i];
            }
            double max = z.Max();
            var p = z.Select(v => Math.Exp(v - max)).ToArray();
            double sum = p.Sum();
            for (int k = 0; k < classes; k++) p[k] /= sum;
            var s = new double[classes, classes];
            for (int k = 0; k < classes; k++)
                for (int l = 0; l < classes; l++) s[k, l] = (k == l ? p[k] : 0) - p[k] * p[l];

            // J2[k, (k', j)] = delta(k, k') h_j ; J1[k, (i, m)] = W2[k, i] 1[a_i > 0] x_m.
            var j2 = new double[classes, classes * hidden];
            for (int k = 0; k < classes; k++)
                for (int j = 0; j < hidden; j++) j2[k, k * hidden + j] = h[j];
            var j1 = new double[classes, hidden * inF];
            for (int k = 0; k < classes; k++)
                for (int i = 0; i < hidden; i++)
                    for (int m = 0; m < inF; m++)
                        j1[k, i * inF + m] = a[i] > 0 ? w2[k * hidden + i] * x[n * inF + m] : 0;
            Accumulate(h1, j1, s);
            Accumulate(h2, j2, s);
        }
        Scale(h1, 1.0 / rows);
        Scale(h2, 1.0 / rows);
        return [h1, h2];
    }

    // h += J^T S J.
    private static void Accumulate(double[,] h, double[,] j, double[,] s)
    {
        int n = h.GetLength(0), c = s.GetLength(0);
        var js = new double[c, n];
        for (int k = 0; k < c; k++)
            for (int u = 0; u < n; u++)
                for (int l = 0; l < c; l++) js[k, u] += s[k, l] * j[l, u];
        for (int u = 0; u < n; u++)
            for (int v = 0; v < n; v++)
            {
                double sum = 0;
                for (int k = 0; k < c; k++) sum += j[k, u] * js[k, v];
                h[u, v] += sum;
            }
    }

    private static void Scale(double[,] h, double factor)
    {
        for (int u = 0; u < h.GetLength(0); u++)
            for (int v = 0; v < h.GetLength(1); v++) h[u, v] *= factor;
    }
}
