using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>[MixedPrecision]: accepted with a Forward (CND0037 without), and its written-back overrides checked like a fixed plan.</summary>
public sealed partial class AnalyzerTests
{
    [Fact]
    public void CND0037_MixedPrecisionWithoutForward()
    {
        var d = Verify("""
            [Compressible(MaxBytes = 24 * 1024)]
            [{|CND0037:MixedPrecision|}(2, 4, 8)]
            public partial class NoForward : Module
            {
                readonly Linear hidden = new(256, 256);
            }

            [Compressible(MaxBytes = 24 * 1024)]
            [MixedPrecision(2, 4, 8)]
            public partial class WithForward : Module
            {
                readonly Linear hidden = new(256, 256);

                public Tensor Forward(Tensor x) => hidden.Forward(x);
            }
            """);
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        Assert.StartsWith("Model 'NoForward' has [MixedPrecision] but declares no Tensor Forward(Tensor)", Message(d[0]), StringComparison.Ordinal);
    }

    /// <summary>A nested block's unannotated layers are not given bits by the outer [MixedPrecision]: the build says so (CND0040);
    /// an [Override] reaching them, or a technique of their own, silences it.</summary>
    [Fact]
    public void CND0040_MixedPrecisionMissesNestedLayers()
    {
        const string Block = """
            [Compressible]
            public partial class Block : Module
            {
                readonly Linear up = new(64, 64);
                readonly Linear down = new(64, 64);

                public Tensor Forward(Tensor x) => down.Forward(up.Forward(x));
            }

            [Compressible]
            public partial class QuantizedBlock : Module
            {
                [Quantize(4)] readonly Linear up = new(64, 64);

                public Tensor Forward(Tensor x) => up.Forward(x);
            }

            """;
        var d = Verify(Block + """
            [Compressible(MaxBytes = 67 * 1024)]
            [{|CND0040:MixedPrecision|}(2, 4, 8)]
            public partial class Outer : Module
            {
                readonly Block[] blocks = [new(), new()];
                readonly Linear head = new(64, 10);

                public Tensor Forward(Tensor x) => head.Forward(blocks[1].Forward(blocks[0].Forward(x)));
            }
            """);
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        Assert.StartsWith("Model 'Outer': [MixedPrecision] gives no bits to 'blocks[0].up' and 3 more nested layers: a nested block's layer without a compression attribute stays float32", Message(d[0]), StringComparison.Ordinal);

        Assert.Empty(Verify(Block + """
            [Compressible(MaxBytes = 13 * 1024)]
            [MixedPrecision(2, 4, 8)]
            [Override("blocks[*].*", Bits = 4)]
            public partial class Outer : Module
            {
                readonly Block[] blocks = [new(), new()];
                readonly QuantizedBlock last = new();
                readonly Linear head = new(64, 10);

                public Tensor Forward(Tensor x) => head.Forward(last.Forward(blocks[1].Forward(blocks[0].Forward(x))));
            }
            """));
    }

    [Fact]
    public void MixedPrecisionCompressChoosesTheBitsFirst()
    {
        foreach (var (forward, call) in new[] { ("public Tensor Forward(Tensor x) => hidden.Forward(x);", "session.ChooseMixedPrecision(Layers, this.Forward);"), ("", "session.ChooseMixedPrecision(Layers, null);") })
        {
            var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(Usings + $$"""
                [Compressible(MaxBytes = 24 * 1024)]
                [MixedPrecision(2, 4, 8)]
                public partial class Mlp : Module
                {
                    readonly Linear hidden = new(256, 256);
                    [Quantize(8)] readonly Linear output = new(256, 10);
                    {{forward}}
                }
                """));
            Snapshot.AssertCompiles(output, result);
            string text = Assert.Single(result.GeneratedTrees).ToString();
            int choose = text.IndexOf(call, StringComparison.Ordinal);
            Assert.True(choose > 0, text);
            Assert.True(choose < text.IndexOf("session.MixedPrecision(this.hidden, 0);", StringComparison.Ordinal));
        }
    }

    /// <summary>Every layer [MixedPrecision] would decide fixed by [Override]: no "nothing to choose" error; the budgets are checked.</summary>
    [Fact]
    public void WrittenBackOverridesAreCheckedLikeAFixedPlan()
    {
        static string Model(string maxBytes, string open, string averageBits, string close) => $$"""
            [Compressible(MaxBytes = {{maxBytes}})]
            [Override("a", Bits = 4)]
            [Override("b", Bits = 2)]
            [{{open}}MixedPrecision(2, 4, 8, AverageBits = {{averageBits}}){{close}}]
            public partial class Mlp : Module
            {
                readonly Linear a = new(64, 64);
                readonly Linear b = new(64, 64);

                public Tensor Forward(Tensor x) => b.Forward(a.Forward(x));
            }
            """;
        // a at 4 bits, b at 2 (one scale per row): 2,176 + 1,152 weight bytes + 512 of biases = 3,840 bytes, 3.25 bits per weight.
        Assert.Empty(Verify(Model("4000", "", "3.5", "")));
        var over = Verify(Model("{|CND0007:3800|}", "", "3.5", ""));
        Assert.Contains("3,840 bytes", Message(over[0]), StringComparison.Ordinal);
        var average = Verify(Model("4000", "{|CND0016:", "3.2", "|}"));
        Assert.Equal("Model 'Mlp': [MixedPrecision] has AverageBits = 3.2, but the bits [Override] fixes on the layers it decides (a, b) store 3.25 bits per weight; lower their Bits, or delete the overrides so Compress chooses again", Message(average[0]));
    }
}
