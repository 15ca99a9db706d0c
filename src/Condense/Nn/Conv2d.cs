using Condense.Catalogue;

namespace Condense.Nn;

/// <summary>2-D convolution over [N, C, H, W]; the weight [Out, In, K, K] is a matrix Out x (In*K*K) for storage.</summary>
public sealed class Conv2d : WeightedLayer
{
    /// <summary>A layer initialized deterministically from its shape (PyTorch's default uniform bounds).</summary>
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, bool bias = true)
        : base(CheckedShape(inChannels, outChannels, kernelSize, stride, padding), bias)
    {
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        InitializeOnFirstUse(new Rng(Rng.Derive(0x436F6E64656E7365UL, $"Conv2d({inChannels},{outChannels},{kernelSize})")));
    }

    public int InChannels { get; }
    public int OutChannels { get; }
    public int KernelSize { get; }
    public int Stride { get; }
    public int Padding { get; }

    /// <summary>Columns of the weight matrix: InChannels x KernelSize x KernelSize.</summary>
    public int FanIn => InFeatures;

    /// <inheritdoc/>
    public override string Description => $"Conv2d({InChannels}, {OutChannels}, kernel {KernelSize})";

    /// <summary>[N, OutChannels, H', W'] from x [N, InChannels, H, W].</summary>
    public Tensor Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4 || x.Shape[1] != InChannels)
            throw new ArgumentException($"{Description}: expected x [N, {InChannels}, H, W]; got {Tensor.FormatShape(x.Shape)}.", nameof(x));
        // Calibration observes the im2col rows: the matrix the weight [Out, In*K*K] multiplies.
        if (InputObserver is { } observe) observe(Ops.Im2Col(x, KernelSize, Stride, Padding, out _, out _));
        if (Storage == null) return Ops.Conv2d(x, DenseWeight!, Bias, Stride, Padding);
        var rows = Ops.Im2Col(x, KernelSize, Stride, Padding, out int outH, out int outW);
        var y = Ops.StorageLinear(rows, Storage, Bias, Dequantized, Description);
        return Ops.RowsToChannels(y, x.Shape[0], outH, outW);
    }

    /// <exception cref="ArgumentOutOfRangeException">A size is out of range, or the weight has more values than one array can hold.</exception>
    private static int[] CheckedShape(int inChannels, int outChannels, int kernelSize, int stride, int padding)
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelSize <= 0 || stride <= 0 || padding < 0)
            throw new ArgumentOutOfRangeException(nameof(inChannels),
                $"Conv2d({inChannels}, {outChannels}, kernel {kernelSize}, stride {stride}, padding {padding}): channels, kernel and stride must be positive, padding non-negative.");
        // Checked before In x K x K or Out x In x K x K wraps around int (the weight is one float array).
        long columns = KernelCatalogue.SaturatingProduct(KernelCatalogue.SaturatingProduct(inChannels, kernelSize), kernelSize);
        var tooLarge = KernelCatalogue.LayerSizeProblem($"Conv2d({inChannels}, {outChannels}, kernel {kernelSize})",
            $"{outChannels} x {inChannels} x {kernelSize} x {kernelSize}", KernelCatalogue.WeightCount(outChannels, columns));
        return tooLarge is null ? [outChannels, inChannels, kernelSize, kernelSize] : throw new ArgumentOutOfRangeException(nameof(outChannels), tooLarge);
    }
}
