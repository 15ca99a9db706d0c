namespace Condense.Nn;

/// <summary>
/// Layer normalization over the last dimension with a learned scale and shift (<see cref="Ops.LayerNorm"/>).
/// Its parameters are <c>weight</c> [Size] (starts at 1) and <c>bias</c> [Size] (starts at 0), as PyTorch's
/// <c>nn.LayerNorm</c> names and initializes them. A <c>[Compressible]</c> model registers a LayerNorm field: it is
/// trained, saved and loaded, and always kept dense.
/// </summary>
public sealed class LayerNorm : Layer
{
    /// <param name="size">The normalized (last) dimension.</param>
    /// <param name="epsilon">Added to the variance; BERT uses 1e-12, PyTorch's default is 1e-5.</param>
    /// <exception cref="ArgumentOutOfRangeException">The size is not positive, or epsilon is negative or not finite.</exception>
    public LayerNorm(int size, float epsilon = 1e-12f)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size), size, $"LayerNorm({size}): the size must be positive.");
        if (!(epsilon >= 0f) || float.IsInfinity(epsilon))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, $"LayerNorm({size}): epsilon must be finite and >= 0.");
        Size = size;
        Epsilon = epsilon;
        Weight = new Tensor(new float[size], size) { RequiresGrad = true };
        Bias = new Tensor(new float[size], size) { RequiresGrad = true };
        Weight.Data.AsSpan().Fill(1f);
    }

    /// <summary>The normalized dimension.</summary>
    public int Size { get; }

    /// <summary>Added to the variance before the square root.</summary>
    public float Epsilon { get; }

    /// <summary>The scale (gamma) [Size].</summary>
    public Tensor Weight { get; }

    /// <summary>The shift (beta) [Size].</summary>
    public Tensor Bias { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> Parameters => [new("weight", Weight), new("bias", Bias)];

    /// <summary>Weight back to 1 and bias to 0 (the generator is not used: this is PyTorch's initialization).</summary>
    public override void ResetParameters(Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        Weight.Data.AsSpan().Fill(1f);
        Bias.Data.AsSpan().Clear();
    }

    /// <summary>y [..., Size] from x [..., Size].</summary>
    public Tensor Forward(Tensor x) => Ops.LayerNorm(x, Weight, Bias, Epsilon);

    /// <inheritdoc/>
    public override string ToString() => $"LayerNorm({Size})";
}
