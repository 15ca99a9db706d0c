namespace Condense.Optim;

/// <summary>Updates a fixed list of parameters from their gradients.</summary>
public abstract class Optimizer
{
    /// <summary>Keeps <paramref name="parameters"/> (the list is copied; the tensors are shared).</summary>
    protected Optimizer(IReadOnlyList<Tensor> parameters, float learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        for (int i = 0; i < parameters.Count; i++)
            if (parameters[i] is null) throw new ArgumentException($"{GetType().Name}: parameter {i} is null.", nameof(parameters));
        if (!(learningRate >= 0) || float.IsInfinity(learningRate))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, $"{GetType().Name}: learning rate must be finite and non-negative.");
        Parameters = [.. parameters];
        LearningRate = learningRate;
    }

    /// <summary>The parameters this optimizer updates.</summary>
    public IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>The step size; may be changed between steps (schedules).</summary>
    public float LearningRate { get; set; }

    /// <summary>Applies one update to every parameter that has a gradient.</summary>
    public abstract void Step();

    /// <summary>Sets every existing gradient to zero (the buffers are kept).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters) p.Grad?.Data.AsSpan().Clear();
    }

    private protected static void CheckRange(float value, float low, float high, bool highInclusive, string name, string optimizer)
    {
        bool ok = value >= low && (highInclusive ? value <= high : value < high);
        if (!ok)
            throw new ArgumentOutOfRangeException(name, value, $"{optimizer}: {name} must be in [{low}, {high}{(highInclusive ? "]" : ")")}.");
    }
}
