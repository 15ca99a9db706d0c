using Condense;
using Condense.Nn;

namespace Condense.IntrinsicDimensionSample;

/// <summary>A model the sweep trains: logits of a [batch, features] input.</summary>
public interface IClassifier
{
    /// <summary>Logits of a [batch, features] input.</summary>
    Tensor Forward(Tensor x);
}

// The fully connected networks of the sweep: input -> w -> w -> 10 with ReLU, as Li et al. 2018's FC networks
// (784-200-200-10 is the paper's MNIST network). One class per (input, width): the generator needs constant shapes
// to size the plan and emit Save/Load, which the sample uses for the dense file it compares the subspace file with.

/// <summary>Fashion-MNIST, hidden width 100.</summary>
[Compressible]
public sealed partial class Fc784W100 : Module, IClassifier
{
    private readonly Linear hidden1 = new(784, 100);
    private readonly Linear hidden2 = new(100, 100);
    private readonly Linear output = new(100, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>Fashion-MNIST, hidden width 200 (the paper's 784-200-200-10).</summary>
[Compressible]
public sealed partial class Fc784W200 : Module, IClassifier
{
    private readonly Linear hidden1 = new(784, 200);
    private readonly Linear hidden2 = new(200, 200);
    private readonly Linear output = new(200, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>Fashion-MNIST, hidden width 400.</summary>
[Compressible]
public sealed partial class Fc784W400 : Module, IClassifier
{
    private readonly Linear hidden1 = new(784, 400);
    private readonly Linear hidden2 = new(400, 400);
    private readonly Linear output = new(400, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 100.</summary>
[Compressible]
public sealed partial class Fc64W100 : Module, IClassifier
{
    private readonly Linear hidden1 = new(64, 100);
    private readonly Linear hidden2 = new(100, 100);
    private readonly Linear output = new(100, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 200.</summary>
[Compressible]
public sealed partial class Fc64W200 : Module, IClassifier
{
    private readonly Linear hidden1 = new(64, 200);
    private readonly Linear hidden2 = new(200, 200);
    private readonly Linear output = new(200, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 400.</summary>
[Compressible]
public sealed partial class Fc64W400 : Module, IClassifier
{
    private readonly Linear hidden1 = new(64, 400);
    private readonly Linear hidden2 = new(400, 400);
    private readonly Linear output = new(400, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}
