using Condense.Generators.Tests.Infrastructure;

namespace Condense.Generators.Tests;

/// <summary>Snapshots of the generated code for representative models; each also asserts the output compiles.</summary>
public sealed class GeneratorSnapshotTests
{
    [Fact]
    public void FashionMlp() => Snapshot.VerifyGenerator([Sources.FashionMlp]);

    [Fact]
    public void SmallCnn() => Snapshot.VerifyGenerator([Sources.SmallCnn]);

    [Fact]
    public void ConstShapesAndProperties() => Snapshot.VerifyGenerator([Sources.ConstShapes]);

    [Fact]
    public void NestedInNamespace() => Snapshot.VerifyGenerator([Sources.Nested]);

    [Fact]
    public void AsymmetricAndPerRow() => Snapshot.VerifyGenerator([Sources.Asymmetric]);

    [Fact]
    public void ModelSplitOverTwoFiles() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Split;
        [Compressible]
        public partial class SplitModel : Module
        {
            [Quantize(8)] readonly Linear first = new(32, 16);
        }
        """,
        """
        using Condense;
        using Condense.Nn;
        namespace Split;
        public partial class SplitModel
        {
            [Quantize(4, GroupSize = 16)] readonly Linear second = new(Sizes.Width, 4);
        }
        static class Sizes { public const int Width = 16; }
        """,
    ]);

    [Fact]
    public void GenericModelWithoutLayersInsideARecord() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Generic;
        public partial record Container<TKey>(TKey Key)
        {
            [Compressible(MaxBitsPerWeight = 2.5)]
            public partial class Empty<T> : Module where T : struct
            {
                public T Tag { get; set; }
            }
        }
        """,
    ]);

    [Fact]
    public void LayersOutsideThePlan() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Encoder;
        [Compressible]
        public partial class Block : Module
        {
            [Quantize(8)] readonly Linear query = new(16, 16);
            readonly LayerNorm norm = new(16);
            readonly LayerNorm[] extra = { new(16), new(16) };
        }
        [Compressible]
        public partial class Tiny : Module
        {
            readonly Embedding words = new(10, 16);
            readonly LayerNorm embeddingsNorm = new(16);
            readonly Block[] blocks = { new(), new() };
            readonly Block last = new();
        }
        """,
    ]);

    [Fact]
    public void ArraysOfLayers() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Heads;
        [Compressible]
        [Override("heads[1]", Bits = 8)]
        public partial class MultiHead : Module
        {
            readonly Linear trunk = new(8, 16);
            readonly Linear[] heads = { new(16, 4), new(16, 4) };
            [Quantize(4, GroupSize = 16)] readonly Linear[] @checked = new Linear[2];
            public MultiHead() { for (int i = 0; i < 2; i++) @checked[i] = new(16, 16); }
        }
        """,
    ]);

    [Fact]
    public void AbstractModelGetsNoLoad()
    {
        Snapshot.VerifyGenerator(
        [
            """
            using Condense;
            using Condense.Nn;
            [Compressible]
            public abstract partial class Backbone : Module
            {
                [Quantize(8, GroupSize = 256, Symmetric = false)]
                protected Linear Trunk { get; } = new(512, 512);
            }
            """,
        ]);
    }

    [Fact]
    public void MemberNamedLikeAGeneratedOneIsReportedAndLeftOut()
    {
        var result = Snapshot.VerifyGenerator(
        [
            """
            using Condense;
            using Condense.Nn;
            [Compressible]
            public partial class Clash : Module
            {
                readonly Linear layer = new(4, 4);
                public void Save(string path) { }
            }
            """,
        ]);
        // The other members are emitted (throwing CND0009's message), so calls to them add no error of their own.
        Assert.DoesNotContain("void Save(", Assert.Single(result.GeneratedTrees).ToString(), StringComparison.Ordinal);
        Assert.Equal("CND0009", Assert.Single(result.Diagnostics).Id);
    }

    [Fact]
    public void InvalidPlanGeneratesThrowingMembersAndTheGeneratorLeavesTheReportToTheAnalyzer()
    {
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(Sources.FashionMlp.Replace("GroupSize = 16", "GroupSize = 64")));
        Snapshot.AssertCompiles(output, result);
        string generated = Assert.Single(result.GeneratedTrees).ToString();
        Assert.Contains("public void Save(string path) => throw new global::System.InvalidOperationException(\"Model 'FashionMlp' has no compression plan: the build reported this error: CND0004: Layer 'hidden1' cannot be quantized: group size 64 does not divide the input size 784;", generated, StringComparison.Ordinal);
        Assert.Empty(result.Diagnostics);
    }
}
