namespace Condense.Optim;

/// <summary>
/// Stochastic gradient descent as PyTorch defines it: g = grad + weightDecay p; with momentum,
/// buf = momentum buf + g (buf = g on the first step) and g = buf; then p -= lr g.
/// </summary>
public sealed class Sgd : Optimizer
{
    private readonly float[]?[] _momentum;

    public Sgd(IReadOnlyList<Tensor> parameters, float learningRate, float momentum = 0f, float weightDecay = 0f)
        : base(parameters, learningRate)
    {
        CheckRange(momentum, 0f, 1f, highInclusive: false, nameof(momentum), nameof(Sgd));
        CheckRange(weightDecay, 0f, float.MaxValue, highInclusive: true, nameof(weightDecay), nameof(Sgd));
        Momentum = momentum;
        WeightDecay = weightDecay;
        _momentum = new float[]?[Parameters.Count];
    }

    public float Momentum { get; }
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
            float lr = LearningRate;
            if (Momentum == 0f)
            {
                for (int j = 0; j < w.Length; j++) w[j] -= lr * (g[j] + WeightDecay * w[j]);
                continue;
            }
            var buf = _momentum[i];
            bool first = buf == null;
            buf ??= _momentum[i] = new float[w.Length];
            for (int j = 0; j < w.Length; j++)
            {
                float d = g[j] + WeightDecay * w[j];
                buf[j] = first ? d : Momentum * buf[j] + d;
                w[j] -= lr * buf[j];
            }
        }
    }
}
