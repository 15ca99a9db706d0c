using System.Globalization;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>CompressionPlanAnalyzer: each v1 diagnostic at its exact span, with a message that names the fix.</summary>
public sealed partial class AnalyzerTests
{
    private const string Usings = """
        using Condense;
        using Condense.Nn;

        """;

    [Fact]
    public void CND0001_ModelNotPartial()
    {
        var d = Verify("""
            [Compressible]
            public class {|CND0001:Mlp|} : Module
            {
                readonly Linear layer = new(4, 4);
            }
            """);
        Assert.Contains("add 'partial' to the declaration of 'Mlp'", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0001_ContainingTypeNotPartial()
    {
        var d = Verify("""
            public class {|CND0001:Outer|}
            {
                [Compressible]
                public partial class Inner : Module
                {
                }
            }
            """);
        Assert.Equal("Model 'Inner' must be partial so Condense can generate its code: add 'partial' to the declaration of 'Outer'", Message(d[0]));
    }

    [Fact]
    public void CND0002_ModelNotModule() => Verify("""
        [Compressible]
        public partial class {|CND0002:Plain|}
        {
            readonly Linear layer = new(4, 4);
        }
        """);

    [Fact]
    public void CND0003_BitsNotInCatalogue()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Quantize({|CND0003:5|}, GroupSize = 16)]
                readonly Linear hidden = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'hidden' cannot be quantized: bits 5 has no kernel; supported bit widths are 2, 3, 4, 8", Message(d[0]));
    }

    [Fact]
    public void CND0004_GroupSizeNotDividingTheInputListsTheValidSizes()
    {
        var d = Verify(Sources.FashionMlp.Replace("GroupSize = 16", "GroupSize = {|CND0004:64|}"), withUsings: false);
        Assert.Equal("Layer 'hidden1' cannot be quantized: group size 64 does not divide the input size 784; valid group sizes for it are 0 (one group per row), 16", Message(d[0]));
    }

    [Fact]
    public void CND0004_GroupSizeWithoutKernel()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Quantize(4, GroupSize = {|CND0004:48|})]
                readonly Linear hidden = new(96, 8);
            }
            """);
        Assert.Contains("group size 48 has no kernel; supported group sizes are 0 (one group per row), 16, 32, 64, 128, 256", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0004_Conv2dInputIsChannelsTimesKernelArea()
    {
        var d = Verify("""
            [Compressible]
            public partial class Cnn : Module
            {
                [Quantize(4, GroupSize = {|CND0004:16|})]
                readonly Conv2d stem = new(3, 8, kernelSize: 3);
            }
            """);
        Assert.Contains("does not divide the input size 27; valid group sizes for it are only 0 (one group per row)", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0005_KeepDenseWithQuantize()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Quantize(4), {|CND0005:KeepDense|}]
                readonly Linear hidden = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'hidden' is marked [KeepDense] and [Quantize]: keep one of the two attributes", Message(d[0]));
    }

    [Fact]
    public void CND0006_NonConstantArgumentIsAWarningAndTheLayerIsCheckedAtCompress()
    {
        const string Markup = """
            [Compressible]
            public partial class Mlp : Module
            {
                static int Width() => 64;

                [Quantize(4)]
                readonly Linear hidden = new(inFeatures: 64, {|CND0006:outFeatures: Width()|});
            }
            """;
        var d = Verify(Markup);
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        Assert.Equal("The shape of layer 'hidden' is not known at compile time: argument 'outFeatures' is not a compile-time constant; model 'Mlp' checks this layer when Compress runs, with the messages the build would give; give it constant arguments to check it now", Message(d[0]));

        // The model is still generated: its plan marks the layer's shape unknown and resolves it in Compress.
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(Usings + Infrastructure.Markup.Parse(Markup).Source));
        Snapshot.AssertCompiles(output, result);
        string generated = result.GeneratedTrees.Single().ToString();
        Assert.Contains("ShapeKnown: false", generated, StringComparison.Ordinal);
        Assert.Contains("new global::Condense.Compression.CompressionSession(Plan.WithShapesFrom(Layers), options, progress)", generated, StringComparison.Ordinal);
    }

    [Fact]
    public void CND0006_LayerAssignedInTheConstructor()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                readonly Linear {|CND0006:hidden|};
                public Mlp() => hidden = new Linear(4, 4);
            }
            """);
        Assert.Contains("it has no initializer", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0007_MaxBytesExceededNamesTheThreeLargestLayers()
    {
        var d = Verify(Sources.FashionMlp.Replace("MaxBytes = 192 * 1024", "MaxBytes = {|CND0007:96 * 1024|}"), withUsings: false);
        Assert.Equal(
            "Model 'FashionMlp' exceeds its budget: the plan needs 167,424 bytes, but MaxBytes allows 98,304 bytes; " +
            "the largest layers are hidden1 (int4 g16 sym, 126,464 bytes), hidden2 (int4 g64 sym, 17,920 bytes), hidden3 (int8 per-row sym, 13,400 bytes). " +
            "Quantize more layers, use fewer bits, or raise MaxBytes",
            Message(d[0]));
    }

    [Fact]
    public void CND0007_MaxBitsPerWeightExceeded()
    {
        var d = Verify("""
            [Compressible(MaxBitsPerWeight = {|CND0007:4|})]
            public partial class Mlp : Module
            {
                [Quantize(4)]
                readonly Linear hidden = new(64, 64);
            }
            """);
        // 64 x 64 int4 = 2048 bytes + 64 fp16 scales = 2176 bytes over 4096 weights: 4.25 bits per weight.
        Assert.Contains("the plan needs 4.25 bits per weight, but MaxBitsPerWeight allows 4 bits per weight", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0007_NotReportedWhenTheBudgetIsMetExactly() => Verify(
        Sources.FashionMlp.Replace("MaxBytes = 192 * 1024", "MaxBytes = 167424"), withUsings: false);

    [Fact]
    public void CND0008_AttributesOnMembersThatAreNotLayers()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [{|CND0008:Quantize(4)|}]
                readonly int epochs = 3;

                [{|CND0008:KeepDense|}]
                static readonly Linear Shared = new(4, 4);

                public int Epochs => epochs + (Shared is null ? 0 : 1);
            }
            """);
        Assert.Equal("[Quantize] on 'epochs' has no effect: 'epochs' is of type 'int', not a non-static Condense.Nn.Linear or Condense.Nn.Conv2d field or property; remove the attribute or change the member", Message(d[0]));
        Assert.Contains("'Shared' is static", Message(d[1]), StringComparison.Ordinal);
    }

    [Fact]
    public void SeveralProblemsAreAllReportedAtOnce() => Verify("""
        [Compressible]
        public class {|CND0001:Mlp|} : Module
        {
            [Quantize({|CND0003:6|})]
            readonly Linear a = new(64, 64);

            [Quantize(4, GroupSize = {|CND0004:32|})]
            readonly Linear b = new(48, 64);
        }
        """);

    [Fact]
    public void CatalogueChecksStillRunWhenTheShapeIsUnknown() => Verify("""
        [Compressible]
        public partial class Mlp : Module
        {
            static readonly int Width = 64;

            [Quantize(4, GroupSize = {|CND0004:24|})]
            readonly Linear hidden = new({|CND0006:Width|}, 64);
        }
        """);

    public static TheoryData<string> ValidModels =>
        [Sources.FashionMlp, Sources.SmallCnn, Sources.ConstShapes, Sources.Nested, Sources.Asymmetric, Sources.DesignMlp, Sources.VisionCnn, Sources.Transformer, Sources.Block];

    [Theory]
    [MemberData(nameof(ValidModels))]
    public void ValidModelsProduceNoDiagnostics(string source)
    {
        var compilation = TestCompilation.Create(source);
        Assert.Empty(TestCompilation.RunAnalyzer(compilation));
        var (_, output) = TestCompilation.RunGenerator(compilation);
        Assert.Empty(TestCompilation.RunAnalyzer(output));
    }

    [Fact]
    public void EveryDescriptorHasItsDocumentationPage()
    {
        var descriptors = typeof(Condense.Generators.Diagnostics.DiagnosticDescriptors)
            .GetFields()
            .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
            .Select(f => (DiagnosticDescriptor)f.GetValue(null)!)
            .ToList();
        // IDs are unique and never reused: a retired ID leaves a gap, so only uniqueness and the format are checked.
        Assert.Equal(descriptors.Count, descriptors.Select(d => d.Id).Distinct(StringComparer.Ordinal).Count());
        var docs = Path.Combine(RepoRoot(), "docs", "diagnostics");
        foreach (var d in descriptors)
        {
            Assert.Matches("^CND[0-9]{4}$", d.Id);
            Assert.EndsWith("/docs/diagnostics/" + d.Id + ".md", d.HelpLinkUri, StringComparison.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(d.Description.ToString(CultureInfo.InvariantCulture)));
            Assert.True(File.Exists(Path.Combine(docs, d.Id + ".md")), $"docs/diagnostics/{d.Id}.md is missing");
        }
        // Every page belongs to a live descriptor, except the pages of retired IDs, which say so.
        foreach (var page in Directory.GetFiles(docs, "CND*.md"))
        {
            string id = Path.GetFileNameWithoutExtension(page);
            Assert.True(descriptors.Any(d => d.Id == id) || File.ReadAllText(page).Contains("Retired", StringComparison.Ordinal),
                $"docs/diagnostics/{id}.md has no descriptor and is not marked Retired");
        }
    }

    private static string RepoRoot([System.Runtime.CompilerServices.CallerFilePath] string file = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    private static string Message(Diagnostic d) => d.GetMessage(CultureInfo.InvariantCulture);

    /// <summary>Runs the analyzer on the markup's source and requires exactly the marked CND diagnostics; returns them in source order.</summary>
    private static List<Diagnostic> Verify(string markup, bool withUsings = true, string? ignoredId = null)
    {
        var (source, expected) = Markup.Parse((withUsings ? Usings : "") + markup);
        var compilation = TestCompilation.Create(source);
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, "The test source itself does not compile:\n" + string.Join("\n", errors));

        var actual = TestCompilation.RunAnalyzer(compilation)
            .Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal) && d.Id != ignoredId)
            .OrderBy(d => d.Location.SourceSpan.Start)
            .ToList();
        string Describe(string id, Microsoft.CodeAnalysis.Text.TextSpan span) => $"{id} at {span} '{source.Substring(span.Start, span.Length)}'";
        Assert.Equal(
            expected.OrderBy(e => e.Span.Start).Select(e => Describe(e.Id, e.Span)),
            actual.Select(d => Describe(d.Id, d.Location.SourceSpan)));
        return actual;
    }
}
