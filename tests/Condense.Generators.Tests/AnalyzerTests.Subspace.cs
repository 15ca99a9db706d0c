using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>CND0030-CND0033: the compile-time checks of [Subspace] beyond its dimension's range (CND0020).</summary>
public sealed partial class AnalyzerTests
{
    [Fact]
    public void CND0030_DimensionAboveHalfTheParametersSavesLittle()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Subspace({|CND0030:3000|}, Projection = SubspaceProjection.Fastfood)]
                readonly Linear hidden = new(64, 64);

                [Subspace(2080, Projection = SubspaceProjection.Fastfood)]
                readonly Linear output = new(64, 64);
            }
            """);
        // 64 x 64 + 64 = 4,160 parameters: 2,080 is exactly half (no warning), 3,000 is above it.
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        Assert.Equal("Layer 'hidden' trains a subspace of dimension 3000 over 4,160 parameters, more than half of them, so it saves little: " +
                     "a file of 12,000 bytes of coordinates against 16,640 of float32 weights (1.39x); use d <= 2,080, or train the parameters directly", Message(d[0]));

        var model = Verify("""
            [Compressible]
            [Subspace({|CND0030:600|}, Projection = SubspaceProjection.Sparse)]
            public partial class Small : Module
            {
                readonly Linear hidden = new(64, 16);
            }
            """);
        Assert.StartsWith("Model 'Small' trains a subspace of dimension 600 over 1,040 parameters", Message(model[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0031_DenseProjectionAboveTheMemoryLimit()
    {
        var d = Verify("""
            [Compressible]
            public partial class Wide : Module
            {
                [{|CND0031:Subspace(100)|}]
                readonly Linear a = new(1024, 1024);

                [Subspace(100, Projection = {|CND0031:SubspaceProjection.Dense|})]
                readonly Linear b = new(1024, 1024);

                [Subspace(100, Projection = SubspaceProjection.Fastfood)]
                readonly Linear c = new(1024, 1024);

                [Subspace(60)]
                readonly Linear small = new(1024, 1024);
            }
            """);
        // D = 1,049,600: d = 100 caches 419,840,000 bytes, above 256 MiB; d = 60 caches 251,904,000, below it.
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        Assert.Equal("Layer 'a' uses a Dense projection of 1,049,600 x 100, which the subspace model caches in 419,840,000 bytes (D x d x 4), above the 268,435,456-byte limit: " +
                     "use Projection = SubspaceProjection.Fastfood or SubspaceProjection.Sparse, which keep O(D + d)", Message(d[0]));
        Assert.Equal(2, d.Count);
    }

    [Fact]
    public void CND0032_SubspaceWithAGradualPruningScheduleIsRefused_StorageAttributesCombine()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(0.5, StartStep = 0, EndStep = 100, Frequency = 10)]
                [{|CND0032:Subspace(10, Projection = SubspaceProjection.Fastfood)|}]
                readonly Linear pruned = new(64, 64);

                [Quantize(4, GroupSize = 16), Subspace(10, Projection = SubspaceProjection.Fastfood)]
                readonly Linear quantized = new(64, 64);

                [LowRank(8), Subspace(10, Projection = SubspaceProjection.Fastfood)]
                readonly Linear lowRank = new(64, 64);

                [Sparsify(0.5), Subspace(10, Projection = SubspaceProjection.Fastfood)]
                readonly Linear oneShot = new(64, 64);
            }
            """);
        Assert.Equal(DiagnosticSeverity.Error, d[0].Severity);
        Assert.StartsWith("Layer 'pruned' cannot combine [Subspace] with its other attributes: [Sparsify] with StartStep/EndStep/Frequency prunes the weights while they train", Message(d[0]), StringComparison.Ordinal);
        Assert.Contains("remove StartStep, EndStep and Frequency", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0033_ConflictingDeclarations()
    {
        var d = Verify("""
            [Compressible]
            [Subspace(100, Projection = SubspaceProjection.Fastfood)]
            public partial class Both : Module
            {
                [{|CND0033:Subspace(10, Projection = SubspaceProjection.Fastfood)|}]
                readonly Linear a = new(64, 64);

                readonly Linear b = new(64, 64);
            }
            """);
        Assert.Equal("Model 'Both' declares conflicting subspaces: [Subspace] on the class is one global subspace over every layer, and layer 'a' declares a subspace of its own; " +
                     "keep one: remove [Subspace] from the class, or from the layers", Message(d[0]));

        var policy = Verify("""
            [Compressible]
            [Subspace(100, Projection = SubspaceProjection.Fastfood, OtherLayers = {|CND0033:Condense.Subspace.UncoveredLayers.Trained|})]
            public partial class Global : Module
            {
                readonly Linear a = new(64, 64);
            }

            [Compressible]
            public partial class Disagree : Module
            {
                [Subspace(10, Projection = SubspaceProjection.Fastfood, OtherLayers = Condense.Subspace.UncoveredLayers.Trained)]
                readonly Linear a = new(64, 64);

                [Subspace(10, Projection = SubspaceProjection.Fastfood, OtherLayers = {|CND0033:Condense.Subspace.UncoveredLayers.Frozen|})]
                readonly Linear b = new(64, 64);

                readonly Linear c = new(64, 64);
            }
            """);
        Assert.Contains("no layer is left; remove OtherLayers", Message(policy[0]), StringComparison.Ordinal);
        Assert.Equal("Model 'Disagree' declares conflicting subspaces: layer 'b' says OtherLayers = UncoveredLayers.Frozen but layer 'a' says UncoveredLayers.Trained; " +
                     "the layers outside every subspace follow one policy: give every [Subspace] the same OtherLayers, or set it on one layer only", Message(policy[1]));
    }

    [Fact]
    public void CND0033_ClassLevelSubspaceOfANestedModelIsReportedNotIgnored()
    {
        var d = Verify("""
            [Compressible]
            [Subspace(50, Projection = SubspaceProjection.Fastfood)]
            public partial class Block : Module
            {
                readonly Linear up = new(64, 64);
            }

            [Compressible]
            public partial class Outer : Module
            {
                readonly Block {|CND0033:block|} = new();
                readonly Linear head = new(64, 10);
            }
            """);
        Assert.Equal("Model 'Outer' declares conflicting subspaces: member 'block' holds 'Block', whose [Subspace] on the class is a global subspace of 'Block' " +
                     "reparameterized on its own, not of 'Outer'; put [Subspace] on 'Outer' (one subspace over every layer) or on the layers of 'Block' (one per layer), " +
                     "and remove it from the class 'Block'", Message(d[0]));
    }
}
