using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>CND0010-CND0023: each at its exact span, with the layer, the value and the fix in the message.</summary>
public sealed partial class AnalyzerTests
{
    [Fact]
    public void CND0010_PatternNotTilingTheInput()
    {
        var d = Verify("""
            [Compressible]
            public partial class Cnn : Module
            {
                [Sparsify(N = 2, M = {|CND0010:4|})]
                readonly Conv2d stem = new(3, 8, kernelSize: 3);
            }
            """);
        Assert.Equal("Layer 'stem' cannot be sparsified: the input size 27 is not a multiple of M = 4, so 2:4 blocks cannot tile a row; use a pattern whose M divides it, or remove [Sparsify]", Message(d[0]));
    }

    [Fact]
    public void CND0010_PatternWithoutKernelAndNNotBelowM()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(N = 3, M = {|CND0010:4|})]
                readonly Linear a = new(64, 64);

                [Sparsify(N = 4, M = {|CND0010:4|})]
                readonly Linear b = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'a' cannot be sparsified: N:M = 3:4 has no kernel; supported patterns are 2:4, 1:4, 2:8", Message(d[0]));
        Assert.Contains("N:M = 4:4 needs 0 < N < M", Message(d[1]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0011_FractionOutsideRangeAndAmbiguousSparsify()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify({|CND0011:1.0|})]
                readonly Linear a = new(64, 64);

                [{|CND0011:Sparsify|}]
                readonly Linear b = new(64, 64);

                [{|CND0011:Sparsify(0.5, N = 2, M = 4)|}]
                readonly Linear c = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'a' cannot be sparsified: the fraction of removed weights is 1, outside [0, 1); use a value such as 0.5", Message(d[0]));
        Assert.Contains("sets neither a fraction nor N:M", Message(d[1]), StringComparison.Ordinal);
        Assert.Contains("sets both a fraction and N:M", Message(d[2]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0012_RankNotBelowTheSmallerDimension()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [LowRank({|CND0012:10|})]
                readonly Linear head = new(100, 10);

                [Quantize(4), LowRankCorrection({|CND0012:0|})]
                readonly Linear hidden = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'head' cannot use [LowRank(10)]: the rank must be below min(out 10, in 100) = 10; use at most 9", Message(d[0]));
        Assert.Equal("Layer 'hidden' cannot use [LowRankCorrection(0)]: the rank must be at least 1", Message(d[1]));
        Assert.Equal("9", d[0].Properties["SuggestedValue"]);
    }

    [Fact]
    public void CND0013_RankThatSavesNothingIsAWarning()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [LowRank({|CND0013:50|})]
                readonly Linear hidden = new(100, 100);

                [LowRank(49)]
                readonly Linear saving = new(100, 100);
            }
            """);
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        // 50 x (100 + 100) floats = 40,000 bytes = the dense 100 x 100 x 4: nothing saved; 49 saves 800 bytes.
        Assert.Equal("Layer 'hidden': [LowRank(50)] saves nothing: its factors take 40,000 bytes, the dense weight 40,000 bytes; use a rank of at most 49, or [KeepDense]", Message(d[0]));
    }

    [Fact]
    public void CND0014_CombinationsWithoutKernelAreReportedOnTheLaterAttribute()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(N = 2, M = 4), {|CND0014:Quantize(3)|}]
                readonly Linear a = new(128, 100);

                [{|CND0014:LowRankCorrection(8)|}]
                readonly Linear b = new(64, 64);

                [Quantize(4), {|CND0014:LowRank(8)|}]
                readonly Linear c = new(64, 64);

                [Sparsify(0.5), {|CND0014:Quantize(8)|}]
                readonly Linear e = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'a' cannot combine [Sparsify] and [Quantize]: the kept values of an N:M layer can only be quantized to 4 or 8 bits, not 3; use [Quantize(4)] or [Quantize(8)], or remove [Quantize]", Message(d[0]));
        Assert.Contains("add [Quantize(bits)], or use [LowRank(rank)] instead", Message(d[1]), StringComparison.Ordinal);
        Assert.Contains("quantized low-rank factors have no kernel", Message(d[2]), StringComparison.Ordinal);
        Assert.Contains("unstructured (CSR) layers store float32 values", Message(d[3]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0014_NmGroupSizeMustDivideTheKeptValues()
    {
        // 2:4 on 96 inputs keeps 48 per row: 32 does not divide it, 16 does.
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(N = 2, M = 4), Quantize(4, GroupSize = {|CND0004:32|})]
                readonly Linear a = new(96, 10);
            }
            """);
        Assert.Equal("Layer 'a' cannot be quantized: group size 32 does not divide the 48 values an 2:4 row keeps of its 96 inputs; valid group sizes for it are 0 (one group per row), 16", Message(d[0]));
    }

    [Fact]
    public void CND0015_TwoLowRankAttributes()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [LowRank(8), {|CND0015:LowRankCorrection(8)|}]
                readonly Linear hidden = new(128, 128);
            }
            """);
        Assert.Equal("Layer 'hidden' has both [LowRank] and [LowRankCorrection], two low-rank attributes: keep one", Message(d[0]));
    }

    [Fact]
    public void CND0005_KeepDenseWithAnyTechnique() => Verify("""
        [Compressible]
        public partial class Mlp : Module
        {
            [LowRank(4), {|CND0005:KeepDense|}]
            readonly Linear hidden = new(64, 64);
        }
        """);

    [Fact]
    public void CND0016_MixedPrecisionBudgetUnreachableOrWithoutBudget()
    {
        var d = Verify("""
            [Compressible(MaxBytes = 1000)]
            [{|CND0016:MixedPrecision(2, 4, 8)|}]
            public partial class Mlp : Module
            {
                readonly Linear hidden = new(256, 256);
            }

            [Compressible]
            [{|CND0016:MixedPrecision(2, 5)|}]
            public partial class Other : Module
            {
                readonly Linear hidden = new(256, 256);
            }
            """, ignoredId: "CND0037");
        Assert.Equal("Model 'Mlp': [MixedPrecision] cannot reach MaxBytes = 1,000 bytes: with every candidate layer at 2 bits (one group per row) the plan still needs 17,920 bytes; raise MaxBytes, add smaller bit widths, or compress more layers explicitly", Message(d[0]));
        Assert.Contains("lists bit width 5, which has no kernel", Message(d[1]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0017_MixedPrecisionBudgetAboveDense()
    {
        var d = Verify("""
            [Compressible(MaxBytes = 1024 * 1024)]
            [{|CND0017:MixedPrecision(2, 4, 8)|}]
            public partial class Mlp : Module
            {
                readonly Linear hidden = new(256, 256);
            }
            """, ignoredId: "CND0037");
        Assert.Equal(DiagnosticSeverity.Warning, d[0].Severity);
        Assert.Contains("MaxBytes = 1,048,576 bytes is at or above the float32 size of the plan (263,168 bytes)", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0018_OverrideMatchingNothingListsTheNearestPaths()
    {
        var d = Verify(Sources.Block + """

            [Compressible]
            [Override({|CND0018:"blocks[0..1].mlp.upp"|}, Bits = 8)]
            [Override({|CND0018:"blocks[1..0]"|}, Bits = 8)]
            public partial class Net : Module
            {
                readonly Block[] blocks = [new(), new()];
            }
            """, withUsings: false);
        Assert.Equal("[Override(\"blocks[0..1].mlp.upp\")] on model 'Net' matches no layer; the nearest paths are blocks[0].mlp.up, blocks[1].mlp.up, blocks[0].mlp.down ('*' is one segment, '**' any number, '[a..b]' an index range)", Message(d[0]));
        Assert.Contains("is not a valid pattern: '[1..0]' is not an index", Message(d[1]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0019_PropertyReturningAnotherLayer()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Quantize(4)] readonly Linear hidden = new(64, 64);
                public Linear {|CND0019:Alias|} => hidden;
            }
            """);
        Assert.StartsWith("Model 'Mlp' names layer 'hidden' twice: 'Alias' returns 'hidden'", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0020_SubspaceOnLayerAndModel()
    {
        var d = Verify("""
            [Compressible]
            [Subspace({|CND0020:0|})]
            public partial class Mlp : Module
            {
                [Subspace({|CND0020:1040|})]
                readonly Linear hidden = new(64, 16);
            }
            """, ignoredId: "CND0033");
        Assert.Equal("Model 'Mlp' cannot be trained in a subspace of dimension 0: the dimension must be at least 1", Message(d[0]));
        Assert.Equal("Layer 'hidden' cannot be trained in a subspace of dimension 1040: it covers only 1040 parameters, so the subspace must be smaller; use at most 1039", Message(d[1]));
    }

    [Fact]
    public void CND0021_AdjustAndSkipWarnPerLayerAndBuild()
    {
        var d = Verify("""
            [Compressible(OnIncompatible = IncompatiblePolicy.Adjust)]
            public partial class Adjusted : Module
            {
                [Quantize(4, GroupSize = {|CND0021:64|})]
                readonly Linear hidden1 = new(784, 256);

                [LowRank({|CND0021:20|})]
                readonly Linear head = new(100, 10);

                [Quantize({|CND0003:5|})]                  // no kernel at all: an error under every policy
                readonly Linear other = new(64, 64);
            }

            [Compressible(OnIncompatible = IncompatiblePolicy.Skip)]
            public partial class Skipped : Module
            {
                [Sparsify(N = 2, M = {|CND0021:4|})]
                readonly Conv2d stem = new(3, 8, kernelSize: 3);
            }
            """);
        Assert.Equal("Layer 'hidden1' cannot be quantized: group size 64 does not divide the input size 784; valid group sizes for it are 0 (one group per row), 16; OnIncompatible = Adjust uses group size 16 instead", Message(d[0]));
        Assert.EndsWith("OnIncompatible = Adjust uses rank 9 instead", Message(d[1]), StringComparison.Ordinal);
        Assert.EndsWith("OnIncompatible = Skip keeps it float32", Message(d[3]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0021_AdjustedPlanIsWhatTheGeneratorEmits()
    {
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create("""
            using Condense;
            using Condense.Nn;
            [Compressible(OnIncompatible = IncompatiblePolicy.Adjust)]
            public partial class Adjusted : Module
            {
                [Quantize(4, GroupSize = 64)] readonly Linear hidden1 = new(784, 256);
            }
            """));
        Snapshot.AssertCompiles(output, result);
        Assert.Contains("GroupSize: 16", result.GeneratedTrees.Single().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0022_TwoOverridesSettingTheSameProperty()
    {
        var d = Verify("""
            [Compressible]
            [Override("*", Bits = 8)]
            [Override({|CND0022:"head"|}, Bits = 4)]
            public partial class Mlp : Module
            {
                [Quantize(4)] readonly Linear hidden = new(64, 64);
                [Quantize(4)] readonly Linear head = new(64, 16);
            }
            """);
        Assert.Equal("Layer 'head' is matched by [Override(\"*\")] and [Override(\"head\")], which both set Bits: make the patterns disjoint", Message(d[0]));
    }

    [Fact]
    public void CND0023_ArrayOfBlocksWithoutCompileTimeLength()
    {
        var d = Verify(Sources.Block + """

            [Compressible]
            public partial class Net : Module
            {
                static int Depth() => 3;
                readonly Block[] {|CND0023:blocks|} = new Block[Depth()];
            }
            """, withUsings: false);
        Assert.Contains("the length 'Depth()' of array 'blocks' is not a compile-time constant", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void OverrideErrorsAreReportedAtTheOverride()
    {
        var d = Verify(Sources.Block + """

            [Compressible]
            [Override("blocks[*].mlp.up", Bits = 4, GroupSize = {|CND0004:48|})]
            public partial class Net : Module
            {
                readonly Block[] blocks = new Block[2];
                public Net() { for (int i = 0; i < 2; i++) blocks[i] = new Block(); }
            }
            """, withUsings: false);
        Assert.StartsWith("Layer 'blocks[0].mlp.up' cannot be quantized: group size 48 has no kernel", Message(d[0]), StringComparison.Ordinal);
    }

    [Fact]
    public void LayerAttributesOnANestedModelMemberAreMisplaced()
    {
        var d = Verify(Sources.Block + """

            [Compressible]
            public partial class Net : Module
            {
                [{|CND0008:Quantize(4)|}]
                readonly Block block = new();
            }
            """, withUsings: false);
        Assert.Contains("is a nested model (put the attributes on its layers, or use [Override] on 'Net')", Message(d[0]), StringComparison.Ordinal);
    }
}
