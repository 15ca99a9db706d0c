using Condense;
using Condense.Compression;
using Condense.Nn;

namespace Condense.MixedPrecisionSample;

/// <summary>A classifier the sample trains, compresses and evaluates.</summary>
public interface IMixedModel
{
    Tensor Forward(Tensor x);
}

/// <summary>
/// Fashion-MNIST MLP 784-256-256-256-128-10: five layers of different sizes, every one left to [MixedPrecision].
/// AverageBits = 3.05 admits uniform 3-bit (3.03 bits per weight with its per-row scales), so the solver competes with
/// it at equal bytes.
/// </summary>
[Compressible]
[MixedPrecision(2, 3, 4, 8, AverageBits = 3.05)]
public sealed partial class FashionDeep : Module, IMixedModel
{
    private readonly Linear hidden1 = new(784, 256);
    private readonly Linear hidden2 = new(256, 256);
    private readonly Linear hidden3 = new(256, 256);
    private readonly Linear hidden4 = new(256, 128);
    private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.Relu(hidden1.Forward(x));
        h = Ops.Relu(hidden2.Forward(h));
        h = Ops.Relu(hidden3.Forward(h));
        h = Ops.Relu(hidden4.Forward(h));
        return output.Forward(h);
    }
}

/// <summary>The same shape for the bundled 8x8 digits, 64-128-128-128-64-10.</summary>
[Compressible]
[MixedPrecision(2, 3, 4, 8, AverageBits = 3.15)]
public sealed partial class DigitsDeep : Module, IMixedModel
{
    private readonly Linear hidden1 = new(64, 128);
    private readonly Linear hidden2 = new(128, 128);
    private readonly Linear hidden3 = new(128, 128);
    private readonly Linear hidden4 = new(128, 64);
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.Relu(hidden1.Forward(x));
        h = Ops.Relu(hidden2.Forward(h));
        h = Ops.Relu(hidden3.Forward(h));
        h = Ops.Relu(hidden4.Forward(h));
        return output.Forward(h);
    }
}
