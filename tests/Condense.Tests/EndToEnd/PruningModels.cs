using Condense.Nn;

namespace Condense.Tests.EndToEnd;

/// <summary>The digits MLP pruned to 90% one-shot at Compress: the baseline of gradual pruning.</summary>
[Compressible]
public sealed partial class DigitsOneShot90 : Module
{
    [Sparsify(0.9)] private readonly Linear hidden1 = new(64, 128);
    [Sparsify(0.9)] private readonly Linear hidden2 = new(128, 64);
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The same MLP pruned gradually to 90% while it trains (44 steps an epoch at batch 32).</summary>
[Compressible]
public sealed partial class DigitsGradual90 : Module
{
    [Sparsify(0.9, StartStep = 100, EndStep = 700, Frequency = 25)] private readonly Linear hidden1 = new(64, 128);
    [Sparsify(0.9, StartStep = 100, EndStep = 700, Frequency = 25)] private readonly Linear hidden2 = new(128, 64);
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>Three layers sharing one global threshold, with a floor.</summary>
[Compressible]
public sealed partial class GlobalThree : Module
{
    [Sparsify(0.8, Scope = SparsityScope.Global, LayerFloor = 0.05)] private readonly Linear a = new(64, 64);
    [Sparsify(0.8, Scope = SparsityScope.Global, LayerFloor = 0.05)] private readonly Linear b = new(64, 64);
    [Sparsify(0.8, Scope = SparsityScope.Global, LayerFloor = 0.05)] private readonly Linear c = new(64, 10);

    public Tensor Forward(Tensor x) => c.Forward(Ops.Relu(b.Forward(Ops.Relu(a.Forward(x)))));
}

/// <summary>Global threshold and a gradual schedule together.</summary>
[Compressible]
public sealed partial class GlobalGradual : Module
{
    [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = 0.02, StartStep = 50, EndStep = 400, Frequency = 10)] private readonly Linear hidden = new(64, 128);
    [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = 0.02, StartStep = 50, EndStep = 400, Frequency = 10)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

/// <summary>An array of layers sharing a global, gradual schedule with a plain layer: the two features compose.</summary>
[Compressible]
public sealed partial class GlobalGradualHeads : Module
{
    [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = 0.02, StartStep = 50, EndStep = 400, Frequency = 10)]
    private readonly Linear[] heads = { new(64, 64), new(64, 64) };

    [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = 0.02, StartStep = 50, EndStep = 400, Frequency = 10)]
    private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(Ops.Add(heads[0].Forward(x), heads[1].Forward(x))));
}
