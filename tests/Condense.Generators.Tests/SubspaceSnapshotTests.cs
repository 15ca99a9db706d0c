using Condense.Generators.Tests.Infrastructure;

namespace Condense.Generators.Tests;

/// <summary>The generated SubspaceSpecs, Reparameterize and LoadSubspace of a class-level and a per-layer subspace.</summary>
public sealed class SubspaceSnapshotTests
{
    [Fact]
    public void GlobalSubspace() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Samples.Subspace;

        [Compressible, Subspace(200, Projection = SubspaceProjection.Fastfood, Seed = 3)]
        public partial class DigitsMlp : Module
        {
            [Quantize(4, GroupSize = 16)]
            readonly Linear hidden = new(64, 32);

            readonly Linear output = new(32, 10);

            public Tensor Forward(Tensor x) => output.Forward(hidden.Forward(x).Relu());
        }
        """,
    ]);

    [Fact]
    public void PerLayerSubspaces() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Samples.Subspace;

        [Compressible]
        public partial class Tuned : Module
        {
            [Subspace(100, Projection = SubspaceProjection.Sparse, Seed = 1, OtherLayers = Condense.Subspace.UncoveredLayers.Trained)]
            readonly Linear hidden = new(64, 32);

            [Quantize(8), Subspace(50, Seed = 2)]
            readonly Linear output = new(32, 10);

            readonly Linear head = new(10, 10);
        }
        """,
    ]);
}
