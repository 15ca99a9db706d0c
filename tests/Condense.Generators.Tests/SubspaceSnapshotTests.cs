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

    [Fact]
    public void NestedLayersSubspacesAreTheContainingModelsUnderTheirFullPaths()
    {
        var compilation = TestCompilation.Create("""
            using Condense;
            using Condense.Nn;

            [Compressible]
            public partial class Block : Module
            {
                [Subspace(40, Projection = SubspaceProjection.Fastfood, Seed = 9)]
                readonly Linear up = new(16, 16);
            }

            [Compressible]
            public partial class Net : Module
            {
                readonly Block[] blocks = { new(), new() };
                readonly Linear head = new(16, 4);
            }
            """);
        var (result, output) = TestCompilation.RunGenerator(compilation);
        Snapshot.AssertCompiles(output, result);
        var net = result.GeneratedTrees.Single(t => t.FilePath.EndsWith("Net.g.cs", StringComparison.Ordinal)).ToString();
        // One subspace per annotated layer of every block, each with the block's d, projection and seed.
        Assert.Contains("new(40) { Projection = global::Condense.SubspaceProjection.Fastfood, Seed = 9UL, Layers = new[] { \"blocks[0].up\" } },", net, StringComparison.Ordinal);
        Assert.Contains("new(40) { Projection = global::Condense.SubspaceProjection.Fastfood, Seed = 9UL, Layers = new[] { \"blocks[1].up\" } },", net, StringComparison.Ordinal);
        Assert.Contains("UncoveredLayers.Frozen", net, StringComparison.Ordinal);
    }

    [Fact]
    public void AnInvalidSubspacePlanStillHasReparameterizeAndLoadSubspaceThatThrowTheError()
    {
        var compilation = TestCompilation.Create("""
            using Condense;
            using Condense.Nn;

            [Compressible, Subspace(10, Projection = SubspaceProjection.Fastfood)]
            public partial class Both : Module
            {
                [Subspace(5, Projection = SubspaceProjection.Fastfood)]
                readonly Linear a = new(16, 16);

                public Tensor Forward(Tensor x) => a.Forward(x);

                public static void Use() => Both.LoadSubspace("x").Materialize();
                public void Train() => Reparameterize(1).Materialize();
            }
            """);
        var (result, output) = TestCompilation.RunGenerator(compilation);
        // The CND0033 error is the only error: no CS1061 for the generated members the user already calls.
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == Microsoft.CodeAnalysis.DiagnosticSeverity.Error));
        var text = Assert.Single(result.GeneratedTrees).ToString();
        Assert.Contains("Reparameterize(ulong? initializationSeed = null) => throw new global::System.InvalidOperationException(\"Model 'Both' has no compression plan: the build reported this error: CND0033", text, StringComparison.Ordinal);
        Assert.DoesNotContain("SubspaceModel.Create", text, StringComparison.Ordinal);
    }
}
