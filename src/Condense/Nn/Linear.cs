using Condense.Catalogue;

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
        InputObserver?.Invoke(x);
        return Storage == null ? Ops.Linear(x, DenseWeight!, Bias) : Ops.StorageLinear(x, Storage, Bias, Dequantized, Description);
    }

    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or the weight has more values than one array can hold.</exception>
    private static int[] CheckedShape(int inFeatures, int outFeatures)
    {
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear({inFeatures}, {outFeatures}): both sizes must be positive.");
        // Checked here, before out x in wraps around int and the allocation fails with a bare OverflowException.
        var tooLarge = KernelCatalogue.LayerSizeProblem($"Linear({inFeatures}, {outFeatures})", $"{outFeatures} x {inFeatures}",
            KernelCatalogue.WeightCount(outFeatures, inFeatures));
        return tooLarge is null ? [outFeatures, inFeatures] : throw new ArgumentOutOfRangeException(nameof(outFeatures), tooLarge);
    }
}
