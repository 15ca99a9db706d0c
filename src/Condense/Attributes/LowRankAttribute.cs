namespace Condense;

/// <summary>How low-rank factors are fitted.</summary>
public enum LowRankMethod
{
    /// <summary>Truncated SVD of the weight.</summary>
    Svd = 0,
    /// <summary>
    /// Activation-aware SVD (SVD-LLM whitening): the truncated SVD of W S, S the Cholesky factor of the calibration
    /// inputs' X^T X, so the rank goes where the layer's inputs are. Compress needs <c>CompressionOptions.Calibration</c>.
    /// Same stored factors as <see cref="Svd"/>.
    /// </summary>
    ActivationAwareSvd = 1,
}

/// <summary>Replaces a layer's weight W [out, in] by float32 factors U [out, rank] and V [rank, in].</summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class LowRankAttribute : Attribute
{
    /// <param name="rank">Inner dimension of the factors: at least 1, below min(in, out).</param>
    public LowRankAttribute(int rank) => Rank = rank;

    /// <summary>Inner dimension of the factors.</summary>
    public int Rank { get; }

    /// <summary>How the factors are fitted.</summary>
    public LowRankMethod Method { get; set; }
}

/// <summary>With <see cref="QuantizeAttribute"/>: W ~ Q(W) + U V, low-rank float32 factors fitted to the quantization error (LoRC / LQ-LoRA).</summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class LowRankCorrectionAttribute : Attribute
{
    /// <param name="rank">Inner dimension of the correction factors: at least 1, below min(in, out).</param>
    public LowRankCorrectionAttribute(int rank) => Rank = rank;

    /// <summary>Inner dimension of the correction factors.</summary>
    public int Rank { get; }
}
