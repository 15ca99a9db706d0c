namespace Condense.Optim;

/// <summary>
/// Adam with decoupled weight decay (Loshchilov &amp; Hutter), as PyTorch's AdamW: p -= lr wd p; m and v are the
/// bias-corrected first and second moments; p -= lr m^ / (sqrt(v^) + eps). Step counts are per parameter, so a
/// parameter skipped (null gradient) does not age.
/// </summary>
public sealed class AdamW : Optimizer
{
    private readonly float[]?[] _m;
    private readonly float[]?[] _v;
    private readonly int[] _steps;

    public AdamW(IReadOnlyList<Tensor> parameters, float learningRate, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f, float weightDecay = 0.01f)
        : base(parameters, learningRate)
    {
        CheckRange(beta1, 0f, 1f, highInclusive: false, nameof(beta1), nameof(AdamW));
        CheckRange(beta2, 0f, 1f, highInclusive: false, nameof(beta2), nameof(AdamW));
        if (!(eps > 0) || float.IsInfinity(eps))
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "AdamW: eps must be positive and finite.");
        CheckRange(weightDecay, 0f, float.MaxValue, highInclusive: true, nameof(weightDecay), nameof(AdamW));
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
        WeightDecay = weightDecay;
        _m = new float[]?[Parameters.Count];
        _v = new float[]?[Parameters.Count];
        _steps = new int[Parameters.Count];
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Eps { get; }
    public float WeightDecay { get; }

    /// <inheritdoc/>
    public override void Step()
    {
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            if (p.Grad == null) continue;
            var w = p.Data;
            var g = p.Grad.Data;
            var m = _m[i] ??= new float[w.Length];
            var v = _v[i] ??= new float[w.Length];
            int t = ++_steps[i];
            float lr = LearningRate;
            float correction1 = 1f - MathF.Pow(Beta1, t);
            float correction2 = 1f - MathF.Pow(Beta2, t);
            float stepSize = lr / correction1;
            float decay = 1f - lr * WeightDecay;
            float sqrtCorrection2 = MathF.Sqrt(correction2);
            for (int j = 0; j < w.Length; j++)
            {
                w[j] *= decay;
                m[j] = Beta1 * m[j] + (1f - Beta1) * g[j];
                v[j] = Beta2 * v[j] + (1f - Beta2) * g[j] * g[j];
                w[j] -= stepSize * m[j] / (MathF.Sqrt(v[j]) / sqrtCorrection2 + Eps);
            }
        }
    }
}
