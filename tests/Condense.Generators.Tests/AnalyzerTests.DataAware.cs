using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>Data-aware methods (GPTQ, activation-aware SVD): CND0034..CND0036.</summary>
public sealed partial class AnalyzerTests
{
    private const string DataAwareModel = """
        [Compressible]
        public partial class Mlp : Module
        {
            [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)]
            readonly Linear hidden = new(64, 64);

            [LowRank(8, Method = LowRankMethod.ActivationAwareSvd)]
            readonly Linear output = new(64, 64);

            public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
        }

        """;

    [Fact]
    public void GptqAndActivationAwareSvdBuildWithoutDiagnostics() => Verify(DataAwareModel);

    [Fact]
    public void CND0036_MethodsOutsideTheirEnumsAreRefused()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Quantize(4, GroupSize = 16, Method = {|CND0036:(QuantizationMethod)7|})]
                readonly Linear hidden = new(64, 64);

                [LowRank(8, Method = {|CND0036:(LowRankMethod)3|})]
                readonly Linear output = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'hidden' cannot use [Quantize(Method = 7)]: the value is not a QuantizationMethod; use Method = QuantizationMethod.Gptq, or remove Method to round each weight to the nearest level", Message(d[0]));
        Assert.StartsWith("Layer 'output' cannot use [LowRank(Method = 3)]: the value is not a LowRankMethod", Message(d[1]), StringComparison.Ordinal);
        Assert.All(d, x => Assert.Equal(DiagnosticSeverity.Error, x.Severity));
    }

    [Fact]
    public void CND0036_GptqOnSemiStructuredSparsityIsRefused()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(N = 2, M = 4)]
                [Quantize(4, GroupSize = 16, Method = {|CND0036:QuantizationMethod.Gptq|})]
                readonly Linear hidden = new(64, 64);
            }
            """);
        Assert.Contains("[Sparsify(N = 2, M = 4)] removes some; remove Method", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0034_CompressWithoutOptionsNamesTheDataAwareLayers()
    {
        var d = VerifyCalls(DataAwareModel + """
            public static class Use
            {
                public static void Run(Mlp m, Condense.Compression.CompressionOptions given)
                {
                    m.{|CND0034:Compress|}();
                    m.Compress({|CND0034:null|});
                    m.Compress({|CND0034:new Condense.Compression.CompressionOptions { MeasureError = false }|});
                    m.Compress({|CND0034:new Condense.Compression.CompressionOptions()|});
                    m.Compress(given);
                    m.Compress(new Condense.Compression.CompressionOptions { Calibration = new Condense.Calibration.CalibrationData(new Tensor[0]) });
                }
            }
            """);
        Assert.Equal("Compress of model 'Mlp' is called without calibration data, but data-aware layers 'hidden' (GPTQ), 'output' (activation-aware SVD) cannot be compressed without it: " +
                     "pass Compress(new CompressionOptions { Calibration = new CalibrationData(batches) }) with a few hundred input rows (model.Plan.CalibratedLayers lists the layers), or use Method = RoundToNearest / Method = Svd on them", Message(d[0]));
        Assert.All(d, x => Assert.Equal(DiagnosticSeverity.Error, x.Severity));
    }

    [Fact]
    public void CND0034_IsNotReportedForAPlanWithoutDataAwareLayers() => VerifyCalls("""
        [Compressible]
        public partial class Mlp : Module
        {
            [Quantize(4, GroupSize = 16)]
            readonly Linear hidden = new(64, 64);
        }

        public static class Use
        {
            public static void Run(Mlp m) => m.Compress();
        }
        """);

    [Fact]
    public void CND0035_CompressOfAModelWithoutForwardIsReportedButItsContainingModelIsNot()
    {
        var d = VerifyCalls("""
            [Compressible]
            public partial class Block : Module
            {
                [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)]
                readonly Linear up = new(64, 64);
            }

            [Compressible]
            public partial class Net : Module
            {
                readonly Block block = new();

                public Tensor Forward(Tensor x) => x;
            }

            public static class Use
            {
                public static void Run(Block b, Net n, Condense.Compression.CompressionOptions options)
                {
                    b.{|CND0035:Compress|}(options);
                    n.Compress(options);
                }
            }
            """);
        Assert.Equal("Compress of model 'Block' cannot record the inputs of layer 'up' (GPTQ): 'Block' declares no 'public Tensor Forward(Tensor x)'; " +
                     "add one (calibration runs it over the batches), or compress 'Block' through a containing model that has one", Message(d[0]));
    }

    [Fact]
    public void OnTheCompilationWithGeneratedCodeTheBudgetIsStillChecked()
    {
        // A build runs the analyzer on the compilation that holds the generated Plan, Compress, ...: taken for the
        // user's own members (CND0009), they hid every check behind "no errors yet", CND0007 included.
        var (source, expected) = Markup.Parse(Sources.FashionMlp.Replace("MaxBytes = 192 * 1024", "MaxBytes = {|CND0007:96 * 1024|}"));
        var (_, output) = TestCompilation.RunGenerator(TestCompilation.Create(source));
        var actual = TestCompilation.RunAnalyzer(output).Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal)).ToList();
        Assert.Equal(expected.Select(e => (e.Id, e.Span)), actual.Select(d => (d.Id, d.Location.SourceSpan)));
    }

    /// <summary>Like <see cref="Verify"/>, for sources that call generated members: the analyzer runs on the compilation with the generator's output.</summary>
    private static List<Diagnostic> VerifyCalls(string markup)
    {
        var (source, expected) = Markup.Parse(Usings + markup);
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(source));
        var errors = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, "The test source does not compile with the generated code:\n" + string.Join("\n", errors));
        Assert.Empty(result.Diagnostics);

        var actual = TestCompilation.RunAnalyzer(output)
            .Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal))
            .OrderBy(d => d.Location.SourceSpan.Start)
            .ToList();
        string Describe(string id, Microsoft.CodeAnalysis.Text.TextSpan span) => $"{id} at {span} '{source.Substring(span.Start, span.Length)}'";
        Assert.Equal(
            expected.OrderBy(e => e.Span.Start).Select(e => Describe(e.Id, e.Span)),
            actual.Select(d => Describe(d.Id, d.Location.SourceSpan)));
        return actual;
    }
}
