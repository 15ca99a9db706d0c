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

/// <summary>
/// Fashion-MNIST CNN (LeNet-style): conv 1-16 3x3, pool, conv 16-32 3x3, pool, conv 32-32 3x3, pool to 3x3, 288-64-10.
/// Five layers of 144 to 18,432 weights, every one left to [MixedPrecision]; the convolutions are quantized per
/// output channel (a row is one filter, in x 3 x 3). Smaller layers than the DataAware CNN's 784-128 fc1, so that no
/// single layer holds most of the bytes and the allocation has room to choose.
/// </summary>
[Compressible]
[MixedPrecision(2, 3, 4, 8, AverageBits = 3.05)]
public sealed partial class FashionCnn : Module, IMixedModel
{
    private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    private readonly Conv2d conv2 = new(16, 32, 3, padding: 1);
    private readonly Conv2d conv3 = new(32, 32, 3, padding: 1);
    private readonly Linear fc1 = new(288, 64);
    private readonly Linear fc2 = new(64, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);   // 16 x 14 x 14
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);                                             // 32 x 7 x 7
        h = Ops.MaxPool2d(Ops.Relu(conv3.Forward(h)), 2, 2);                                             // 32 x 3 x 3
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}
