using Condense.Nn;
using Condense.Subspace;

namespace Condense.Tests.EndToEnd;

/// <summary>The digits MLP trained in one global Fastfood subspace of d = 200 (D = 4,810), then quantized to int8.</summary>
[Compressible, Subspace(200, Projection = SubspaceProjection.Fastfood, Seed = 3)]
public sealed partial class DigitsSubspace : Module
{
    [Quantize(8)] private readonly Linear hidden = new(64, 64);
    [Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

/// <summary>The same network and subspace as <see cref="DigitsSubspace"/> but another projection seed: its files do not load there.</summary>
[Compressible, Subspace(200, Projection = SubspaceProjection.Fastfood, Seed = 4)]
public sealed partial class DigitsSubspaceOtherSeed : Module
{
    [Quantize(8)] private readonly Linear hidden = new(64, 64);
    [Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}

/// <summary>A per-layer subspace on the hidden layer only; the output layer trains normally beside it.</summary>
[Compressible]
public sealed partial class DigitsHiddenSubspace : Module
{
    [Quantize(8), Subspace(300, Projection = SubspaceProjection.Sparse, Seed = 2, OtherLayers = UncoveredLayers.Trained)]
    private readonly Linear hidden = new(64, 64);

    [Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
}
