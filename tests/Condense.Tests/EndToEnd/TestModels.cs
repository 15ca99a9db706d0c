using Condense.Nn;

namespace Condense.Tests.EndToEnd;

// Small annotated models over the 8x8 digits; the Condense generator runs on this project.

[Compressible]
public sealed partial class DigitsInt8 : Module
{
    [Quantize(8)] private readonly Linear hidden = new(64, 64);
    [Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

[Compressible(MaxBytes = 4096)]
public sealed partial class DigitsInt4 : Module
{
    [Quantize(4, GroupSize = 32)] private readonly Linear hidden = new(64, 64);
    [Quantize(4, GroupSize = 16, Symmetric = false)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

[Compressible]
public sealed partial class DigitsMixed : Module
{
    [Quantize(3, GroupSize = 16)] private readonly Linear hidden = new(64, 64);
    [KeepDense] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

/// <summary>Same layer names as the others, a different hidden width: files of the others must not load into it.</summary>
[Compressible]
public sealed partial class DigitsWide : Module
{
    [Quantize(8)] private readonly Linear hidden = new(64, 96);
    [Quantize(8)] private readonly Linear output = new(96, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

[Compressible]
public sealed partial class TinyCnn : Module
{
    [Quantize(8)] private readonly Conv2d conv = new(1, 4, 3, padding: 1);
    [Quantize(4, GroupSize = 16)] private readonly Linear output = new(4 * 4 * 4, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.Relu(conv.Forward(Ops.Reshape(x, x.Shape[0], 1, 8, 8)));
        return output.Forward(Ops.Flatten(Ops.MaxPool2d(h, 2, 2)));
    }
}
