using Condense;
using Condense.Nn;

namespace Condense.Sample;

/// <summary>A classifier the sample can train and evaluate.</summary>
public interface IClassifier
{
    Tensor Forward(Tensor x);
}

/// <summary>The main model: an MLP for Fashion-MNIST (784 -> 256 -> 128 -> 10), 4 bits per weight plus scales.</summary>
[Compressible(MaxBytes = 150 * 1024)]
public sealed partial class FashionMlp : Module, IClassifier
{
    [Quantize(4, GroupSize = 16)]              // 784 = 16 x 49: 32 or 64 would not divide it
    private readonly Linear hidden1 = new(784, 256);

    [Quantize(4, GroupSize = 64)]
    private readonly Linear hidden2 = new(256, 128);

    [Quantize(4, GroupSize = 64)]
    private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The same MLP at 8 bits per weight everywhere, for comparison.</summary>
[Compressible]
public sealed partial class FashionMlpInt8 : Module, IClassifier
{
    [Quantize(8)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(8)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(8)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The main model for the bundled 8x8 digits (64 -> 128 -> 64 -> 10).</summary>
[Compressible(MaxBytes = 16 * 1024)]
public sealed partial class DigitsMlp : Module, IClassifier
{
    [Quantize(4, GroupSize = 32)]
    private readonly Linear hidden1 = new(64, 128);

    [Quantize(4, GroupSize = 64)]
    private readonly Linear hidden2 = new(128, 64);

    [Quantize(8)]
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The digits MLP at 8 bits per weight everywhere, for comparison.</summary>
[Compressible]
public sealed partial class DigitsMlpInt8 : Module, IClassifier
{
    [Quantize(8)] private readonly Linear hidden1 = new(64, 128);
    [Quantize(8)] private readonly Linear hidden2 = new(128, 64);
    [Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}
