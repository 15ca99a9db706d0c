// One pattern, repeated: the same two architectures under every plan the sample compares. A plan is
// a class because the plan is the attributes: the build checks and sizes each, and Compress applies it.
using Condense;
using Condense.Nn;

namespace Condense.DataAware;

/// <summary>A classifier the sample can train and evaluate.</summary>
public interface IClassifier
{
    Tensor Forward(Tensor x);
}

/// <summary>MLP 784-256-128-10, int3 g64 (g16 on the 784-input layer: 64 does not divide 784), round to nearest.</summary>
[Compressible]
public sealed partial class MlpRtnInt3G64 : Module, IClassifier
{
    [Quantize(3, GroupSize = 16)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(3, GroupSize = 64)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(3, GroupSize = 64)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int3 g64 (g16 on the 784-input layer: 64 does not divide 784), GPTQ.</summary>
[Compressible]
public sealed partial class MlpGptqInt3G64 : Module, IClassifier
{
    [Quantize(3, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(3, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(3, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int3 per-row, round to nearest.</summary>
[Compressible]
public sealed partial class MlpRtnInt3Row : Module, IClassifier
{
    [Quantize(3)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(3)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(3)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int3 per-row, GPTQ.</summary>
[Compressible]
public sealed partial class MlpGptqInt3Row : Module, IClassifier
{
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int4 g64 (g16 on the 784-input layer: 64 does not divide 784), round to nearest.</summary>
[Compressible]
public sealed partial class MlpRtnInt4G64 : Module, IClassifier
{
    [Quantize(4, GroupSize = 16)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(4, GroupSize = 64)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(4, GroupSize = 64)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int4 g64 (g16 on the 784-input layer: 64 does not divide 784), GPTQ.</summary>
[Compressible]
public sealed partial class MlpGptqInt4G64 : Module, IClassifier
{
    [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int4 per-row, round to nearest.</summary>
[Compressible]
public sealed partial class MlpRtnInt4Row : Module, IClassifier
{
    [Quantize(4)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(4)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(4)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, int4 per-row, GPTQ.</summary>
[Compressible]
public sealed partial class MlpGptqInt4Row : Module, IClassifier
{
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Linear hidden1 = new(784, 256);
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Linear hidden2 = new(256, 128);
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, hidden layers at rank 24 and 16 (plain SVD), output dense.</summary>
[Compressible]
public sealed partial class MlpSvd : Module, IClassifier
{
    [LowRank(24)] private readonly Linear hidden1 = new(784, 256);
    [LowRank(16)] private readonly Linear hidden2 = new(256, 128);
    private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>MLP 784-256-128-10, hidden layers at rank 24 and 16 (activation-aware SVD), output dense.</summary>
[Compressible]
public sealed partial class MlpAsvd : Module, IClassifier
{
    [LowRank(24, Method = LowRankMethod.ActivationAwareSvd)] private readonly Linear hidden1 = new(784, 256);
    [LowRank(16, Method = LowRankMethod.ActivationAwareSvd)] private readonly Linear hidden2 = new(256, 128);
    private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int3 grouped (g64 where 64 divides the inputs: fc2; g16 on conv2 and fc1; conv1 per-row), round to nearest.</summary>
[Compressible]
public sealed partial class CnnRtnInt3G64 : Module, IClassifier
{
    [Quantize(3)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(3, GroupSize = 16)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(3, GroupSize = 16)] private readonly Linear fc1 = new(784, 128);
    [Quantize(3, GroupSize = 64)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int3 grouped (g64 where 64 divides the inputs: fc2; g16 on conv2 and fc1; conv1 per-row), GPTQ.</summary>
[Compressible]
public sealed partial class CnnGptqInt3G64 : Module, IClassifier
{
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(3, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(3, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Linear fc1 = new(784, 128);
    [Quantize(3, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int3 per-row, round to nearest.</summary>
[Compressible]
public sealed partial class CnnRtnInt3Row : Module, IClassifier
{
    [Quantize(3)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(3)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(3)] private readonly Linear fc1 = new(784, 128);
    [Quantize(3)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int3 per-row, GPTQ.</summary>
[Compressible]
public sealed partial class CnnGptqInt3Row : Module, IClassifier
{
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Linear fc1 = new(784, 128);
    [Quantize(3, Method = QuantizationMethod.Gptq)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int4 grouped (g64 where 64 divides the inputs: fc2; g16 on conv2 and fc1; conv1 per-row), round to nearest.</summary>
[Compressible]
public sealed partial class CnnRtnInt4G64 : Module, IClassifier
{
    [Quantize(4)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(4, GroupSize = 16)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(4, GroupSize = 16)] private readonly Linear fc1 = new(784, 128);
    [Quantize(4, GroupSize = 64)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int4 grouped (g64 where 64 divides the inputs: fc2; g16 on conv2 and fc1; conv1 per-row), GPTQ.</summary>
[Compressible]
public sealed partial class CnnGptqInt4G64 : Module, IClassifier
{
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Linear fc1 = new(784, 128);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int4 per-row, round to nearest.</summary>
[Compressible]
public sealed partial class CnnRtnInt4Row : Module, IClassifier
{
    [Quantize(4)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(4)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(4)] private readonly Linear fc1 = new(784, 128);
    [Quantize(4)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN conv 1-16 3x3, pool, conv 16-16 3x3, pool, 784-128-10; int4 per-row, GPTQ.</summary>
[Compressible]
public sealed partial class CnnGptqInt4Row : Module, IClassifier
{
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Linear fc1 = new(784, 128);
    [Quantize(4, Method = QuantizationMethod.Gptq)] private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN with conv2 at rank 8 and fc1 at rank 16 (plain SVD), conv1 and fc2 dense.</summary>
[Compressible]
public sealed partial class CnnSvd : Module, IClassifier
{
    private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [LowRank(8)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [LowRank(16)] private readonly Linear fc1 = new(784, 128);
    private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}

/// <summary>CNN with conv2 at rank 8 and fc1 at rank 16 (activation-aware SVD), conv1 and fc2 dense.</summary>
[Compressible]
public sealed partial class CnnAsvd : Module, IClassifier
{
    private readonly Conv2d conv1 = new(1, 16, 3, padding: 1);
    [LowRank(8, Method = LowRankMethod.ActivationAwareSvd)] private readonly Conv2d conv2 = new(16, 16, 3, padding: 1);
    [LowRank(16, Method = LowRankMethod.ActivationAwareSvd)] private readonly Linear fc1 = new(784, 128);
    private readonly Linear fc2 = new(128, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(Ops.Reshape(x, x.Shape[0], 1, 28, 28))), 2, 2);
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);
        return fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))));
    }
}
