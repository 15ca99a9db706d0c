namespace Condense.Tests.Core;

/// <summary>Compares Backward's gradients with central finite differences.</summary>
internal static class GradCheck
{
    /// <summary>
    /// The worst relative error over all inputs: |analytic - numeric| / max(|analytic|, |numeric|, floor), where the
    /// floor (1e-2 of the largest gradient magnitude, at least 1e-3) keeps near-zero entries from dominating.
    /// </summary>
    public static double MaxRelativeError(Func<Tensor> loss, Tensor[] inputs, float step = 1e-2f, Func<float, float>? tamper = null)
    {
        foreach (var t in inputs) { t.RequiresGrad = true; t.Grad = null; }
        var l = loss();
        l.Backward();
        double worst = 0;
        foreach (var t in inputs)
        {
            var analytic = t.Grad!.Data.Select(g => (double)(tamper?.Invoke(g) ?? g)).ToArray();
            var numeric = new double[t.Length];
            using (Tensor.NoGrad())
            {
                for (int i = 0; i < t.Length; i++)
                {
                    float saved = t.Data[i];
                    t.Data[i] = saved + step;
                    double plus = loss().Data[0];
                    t.Data[i] = saved - step;
                    double minus = loss().Data[0];
                    t.Data[i] = saved;
                    numeric[i] = (plus - minus) / (2 * step);
                }
            }
            double scale = Math.Max(analytic.Concat(numeric).Max(Math.Abs) * 1e-2, 1e-3);
            for (int i = 0; i < t.Length; i++)
            {
                double err = Math.Abs(analytic[i] - numeric[i]) / Math.Max(Math.Max(Math.Abs(analytic[i]), Math.Abs(numeric[i])), scale);
                worst = Math.Max(worst, err);
            }
        }
        return worst;
    }

    public static Tensor Random(Rng rng, params int[] shape)
    {
        var t = Tensor.Zeros(shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] = rng.NextGaussian();
        return t;
    }

    /// <summary>Values at least <paramref name="gap"/> away from zero, so kinks (ReLU) are not crossed by the step.</summary>
    public static Tensor AwayFromZero(Rng rng, float gap, params int[] shape)
    {
        var t = Random(rng, shape);
        for (int i = 0; i < t.Length; i++) t.Data[i] += MathF.CopySign(gap, t.Data[i]);
        return t;
    }
}
