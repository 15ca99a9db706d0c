using Condense;
using Condense.Compression;
using Condense.Nn;
using Condense.Subspace;

namespace Condense.IntrinsicDimensionSample;

/// <summary>
/// What the sample needs of a network: its forward pass and the members the generator emits for
/// <c>[Compressible, Subspace(...)]</c> (the interface only names them, so the sample's generic code can call them;
/// a user with one model class calls them directly).
/// </summary>
public interface ISubspaceClassifier<TSelf> : ICompressibleModel<TSelf> where TSelf : Module, ISubspaceClassifier<TSelf>
{
    /// <summary>Logits of a [batch, features] input.</summary>
    Tensor Forward(Tensor x);

    /// <summary>Generated: the declared subspace model (d from the attribute).</summary>
    SubspaceModel<TSelf> Reparameterize(ulong? initializationSeed = null);

    /// <summary>Generated: the declared subspace with d, seed or projection changed, as a sweep needs.</summary>
    SubspaceModel<TSelf> Reparameterize(Func<SubspaceSpec, SubspaceSpec> change, ulong? initializationSeed);

    /// <summary>Generated: a saved declared subspace model, checked against the compiled specs.</summary>
    static abstract SubspaceModel<TSelf> LoadSubspace(string path);

    /// <summary>Generated: a saved changed subspace model, checked against the changed specs.</summary>
    static abstract SubspaceModel<TSelf> LoadSubspace(string path, Func<SubspaceSpec, SubspaceSpec> change);

    /// <summary>Generated: the subspaces the build read from the attribute.</summary>
    static abstract IReadOnlyList<SubspaceSpec> SubspaceSpecs { get; }
}

// The fully connected networks of the sweep: input -> w -> w -> 10 with ReLU, as Li et al. 2018's FC networks
// (784-200-200-10 is the paper's MNIST network), and LeNet. One class per (input, width): the generator needs
// constant shapes to size the plan. Each declares a global Fastfood subspace at about the d_int90 this sample
// measured (README): Reparameterize() trains it, LoadSubspace() checks a file against it, and the int8 plan is what
// Materialize() then Compress() store. The sweep changes d, seed and projection per run through the generated
// Reparameterize(change, seed).

/// <summary>
/// Fashion-MNIST, hidden width 32 (D = 26,506): small enough that a Dense P at d near D / 2 fits in memory
/// (1.4 GB cached at d = 13,000), for the quality check of every projection at a large d.
/// </summary>
[Compressible, Subspace(500, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc784W32 : Module, ISubspaceClassifier<Fc784W32>
{
    [Quantize(8)] private readonly Linear hidden1 = new(784, 32);
    [Quantize(8)] private readonly Linear hidden2 = new(32, 32);
    [Quantize(8)] private readonly Linear output = new(32, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 32.</summary>
[Compressible, Subspace(300, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc64W32 : Module, ISubspaceClassifier<Fc64W32>
{
    [Quantize(8)] private readonly Linear hidden1 = new(64, 32);
    [Quantize(8)] private readonly Linear hidden2 = new(32, 32);
    [Quantize(8)] private readonly Linear output = new(32, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>Fashion-MNIST, hidden width 100.</summary>
[Compressible, Subspace(600, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc784W100 : Module, ISubspaceClassifier<Fc784W100>
{
    [Quantize(8)] private readonly Linear hidden1 = new(784, 100);
    [Quantize(8)] private readonly Linear hidden2 = new(100, 100);
    [Quantize(8)] private readonly Linear output = new(100, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>Fashion-MNIST, hidden width 200 (the paper's 784-200-200-10).</summary>
[Compressible, Subspace(700, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc784W200 : Module, ISubspaceClassifier<Fc784W200>
{
    [Quantize(8)] private readonly Linear hidden1 = new(784, 200);
    [Quantize(8)] private readonly Linear hidden2 = new(200, 200);
    [Quantize(8)] private readonly Linear output = new(200, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>Fashion-MNIST, hidden width 400.</summary>
[Compressible, Subspace(900, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc784W400 : Module, ISubspaceClassifier<Fc784W400>
{
    [Quantize(8)] private readonly Linear hidden1 = new(784, 400);
    [Quantize(8)] private readonly Linear hidden2 = new(400, 400);
    [Quantize(8)] private readonly Linear output = new(400, 10);

    /// <summary>Logits of a [batch, 784] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 100.</summary>
[Compressible, Subspace(300, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc64W100 : Module, ISubspaceClassifier<Fc64W100>
{
    [Quantize(8)] private readonly Linear hidden1 = new(64, 100);
    [Quantize(8)] private readonly Linear hidden2 = new(100, 100);
    [Quantize(8)] private readonly Linear output = new(100, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 200.</summary>
[Compressible, Subspace(300, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc64W200 : Module, ISubspaceClassifier<Fc64W200>
{
    [Quantize(8)] private readonly Linear hidden1 = new(64, 200);
    [Quantize(8)] private readonly Linear hidden2 = new(200, 200);
    [Quantize(8)] private readonly Linear output = new(200, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>8x8 digits, hidden width 400.</summary>
[Compressible, Subspace(300, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class Fc64W400 : Module, ISubspaceClassifier<Fc64W400>
{
    [Quantize(8)] private readonly Linear hidden1 = new(64, 400);
    [Quantize(8)] private readonly Linear hidden2 = new(400, 400);
    [Quantize(8)] private readonly Linear output = new(400, 10);

    /// <summary>Logits of a [batch, 64] input.</summary>
    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>
/// LeNet-5 as Li et al. 2018 measure it on MNIST (D = 44,426): conv 5x5 (6) - max pool 2 - conv 5x5 (16) - max pool 2 -
/// 120 - 84 - 10 with ReLU, on 28x28 images given as [batch, 784] rows.
/// </summary>
[Compressible, Subspace(300, Projection = SubspaceProjection.Fastfood, Seed = 1)]
public sealed partial class LeNet : Module, ISubspaceClassifier<LeNet>
{
    [Quantize(8)] private readonly Conv2d conv1 = new(1, 6, 5);
    [Quantize(8)] private readonly Conv2d conv2 = new(6, 16, 5);
    [Quantize(8)] private readonly Linear fc1 = new(16 * 4 * 4, 120);
    [Quantize(8)] private readonly Linear fc2 = new(120, 84);
    [Quantize(8)] private readonly Linear output = new(84, 10);

    /// <summary>Logits of a [batch, 784] input (28x28 images, one channel).</summary>
    public Tensor Forward(Tensor x)
    {
        var h = Ops.Reshape(x, x.Shape[0], 1, 28, 28);
        h = Ops.MaxPool2d(Ops.Relu(conv1.Forward(h)), 2, 2);    // [N, 6, 12, 12]
        h = Ops.MaxPool2d(Ops.Relu(conv2.Forward(h)), 2, 2);    // [N, 16, 4, 4]
        return output.Forward(Ops.Relu(fc2.Forward(Ops.Relu(fc1.Forward(Ops.Flatten(h))))));
    }
}
