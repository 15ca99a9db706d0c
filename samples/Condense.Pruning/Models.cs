using Condense;
using Condense.Nn;

namespace Condense.Pruning;

/// <summary>A classifier the sample trains and evaluates.</summary>
public interface IClassifier
{
    Tensor Forward(Tensor x);
}

/// <summary>Fashion-MNIST MLP (784 -> 256 -> 128 -> 10), hidden layers pruned to 90% one-shot at Compress.</summary>
[Compressible]
public sealed partial class FashionOneShot : Module, IClassifier
{
    [Sparsify(0.9)] private readonly Linear hidden1 = new(784, 256);
    [Sparsify(0.9)] private readonly Linear hidden2 = new(256, 128);
    private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>
/// The same MLP pruned gradually to 90% while it trains: 469 steps an epoch at batch 128, so the ramp covers epochs
/// 1 to 3 and the last epoch trains the pruned network.
/// </summary>
[Compressible]
public sealed partial class FashionGradual : Module, IClassifier
{
    [Sparsify(0.9, StartStep = 200, EndStep = 1400, Frequency = 50)] private readonly Linear hidden1 = new(784, 256);
    [Sparsify(0.9, StartStep = 200, EndStep = 1400, Frequency = 50)] private readonly Linear hidden2 = new(256, 128);
    private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The bundled 8x8 digits (64 -> 128 -> 64 -> 10), hidden layers pruned to 90% one-shot.</summary>
[Compressible]
public sealed partial class DigitsOneShot : Module, IClassifier
{
    [Sparsify(0.9)] private readonly Linear hidden1 = new(64, 128);
    [Sparsify(0.9)] private readonly Linear hidden2 = new(128, 64);
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The digits MLP pruned gradually to 90% (44 steps an epoch at batch 32, 40 epochs).</summary>
[Compressible]
public sealed partial class DigitsGradual : Module, IClassifier
{
    [Sparsify(0.9, StartStep = 100, EndStep = 1200, Frequency = 25)] private readonly Linear hidden1 = new(64, 128);
    [Sparsify(0.9, StartStep = 100, EndStep = 1200, Frequency = 25)] private readonly Linear hidden2 = new(128, 64);
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}
