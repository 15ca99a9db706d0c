namespace Condense.Nn;

/// <summary>y = x W^T + b, with W [OutFeatures, InFeatures]. The weight storage is swappable.</summary>
public sealed class Linear : WeightedLayer
{
    /// <summary>A layer initialized deterministically from its shape (PyTorch's default uniform bounds).</summary>
    public Linear(int inFeatures, int outFeatures, bool bias = true)
        : base(CheckedShape(inFeatures, outFeatures), bias)
    {
        InitializeOnFirstUse(new Rng(Rng.Derive(0x436F6E64656E7365UL, $"Linear({inFeatures},{outFeatures})")));
    }

    /// <inheritdoc/>
    public override string Description => $"Linear({InFeatures}, {OutFeatures})";

    /// <summary>y [B, OutFeatures] from x [B, InFeatures], through the compressed storage when there is one.</summary>
    public Tensor Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        return Storage == null ? Ops.Linear(x, DenseWeight!, Bias) : Ops.StorageLinear(x, Storage, Bias, Dequantized, Description);
    }

    private static int[] CheckedShape(int inFeatures, int outFeatures) =>
        inFeatures <= 0 || outFeatures <= 0
            ? throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear({inFeatures}, {outFeatures}): both sizes must be positive.")
            : [outFeatures, inFeatures];
}
