using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>CND0028, CND0029: options that used to build and compress as something else; refused plans generate throwing members.</summary>
public sealed partial class AnalyzerTests
{
    [Fact]
    public void RefusedPlansGenerateOnlyMembersThatThrowTheError()
    {
        var compilation = TestCompilation.Create(Usings + """
            [Compressible(MaxBytes = 1000)]
            [MixedPrecision(4, 8)]
            public partial class Mlp : Module
            {
                readonly Linear hidden = new(64, 64);

                public Tensor Forward(Tensor x) => hidden.Forward(x);
            }
            """);
        var (result, _) = TestCompilation.RunGenerator(compilation);
        // The plan is never accepted: the generated members exist only so the CND error is the only error, and each
        // of them throws that error instead of compressing, saving or loading anything.
        var text = Assert.Single(result.GeneratedTrees).ToString();
        Assert.DoesNotContain("CompressionSession(", text, StringComparison.Ordinal);
        Assert.DoesNotContain("ModelFile.", text, StringComparison.Ordinal);
        Assert.Contains("throw new global::System.InvalidOperationException(\"Model 'Mlp' has no compression plan: the build reported this error: CND0016", text, StringComparison.Ordinal);
    }

    [Fact]
    public void CND0028_ScheduleValues()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(0.9, StartStep = 500, EndStep = {|CND0028:100|}, Frequency = 10)]
                readonly Linear a = new(64, 64);

                [Sparsify(0.9, StartStep = 0, EndStep = 100, Frequency = {|CND0028:0|})]
                readonly Linear b = new(64, 64);

                [{|CND0028:Sparsify(0.9, EndStep = 100)|}]
                readonly Linear c = new(64, 64);

                [Sparsify(0.9, StartStep = {|CND0028:-5|}, EndStep = 100, Frequency = 10)]
                readonly Linear d = new(64, 64);

                [Sparsify(N = 2, M = 4, EndStep = {|CND0028:100|}, Frequency = 10)]
                readonly Linear e = new(64, 64);

                [Sparsify(0.5, Criterion = {|CND0028:(SparsityCriterion)3|})]
                readonly Linear f = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'a' cannot be pruned gradually: EndStep = 100 is not after StartStep = 500; set EndStep to the step at which the final sparsity is reached, e.g. EndStep = 1500", Message(d[0]));
        Assert.Contains("Frequency = 0; the mask is recomputed every Frequency steps, so it must be at least 1, e.g. Frequency = 10", Message(d[1]), StringComparison.Ordinal);
        Assert.Contains("a gradual schedule applies to unstructured fractions only, not to N:M = 2:4", Message(d[4]), StringComparison.Ordinal);
        Assert.Contains("the only criterion is SparsityCriterion.Magnitude", Message(d[5]), StringComparison.Ordinal);
    }

    [Fact]
    public void CND0028_GlobalLayersShareOneSchedule() => Verify("""
        [Compressible]
        public partial class Mlp : Module
        {
            [Sparsify(0.9, Scope = SparsityScope.Global, StartStep = 0, EndStep = 100, Frequency = 10)]
            readonly Linear a = new(64, 64);

            [Sparsify(0.9, Scope = SparsityScope.Global, StartStep = 0, EndStep = {|CND0028:200|}, Frequency = 10)]
            readonly Linear b = new(64, 64);
        }
        """);

    [Fact]
    public void CND0029_ScopeAndFloor()
    {
        var d = Verify("""
            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(0.9, LayerFloor = {|CND0029:0.05|})]
                readonly Linear a = new(64, 64);

                [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = {|CND0029:1.5|})]
                readonly Linear b = new(64, 64);

                [Sparsify(N = 2, M = 4, Scope = {|CND0029:SparsityScope.Global|})]
                readonly Linear c = new(64, 64);

                [Sparsify(0.5, Scope = {|CND0029:(SparsityScope)7|})]
                readonly Linear d = new(64, 64);
            }

            [Compressible]
            public partial class Single : Module
            {
                [Sparsify(0.9, Scope = {|CND0029:SparsityScope.Global|})]
                readonly Linear a = new(64, 64);
                readonly Linear b = new(64, 64);
            }

            [Compressible]
            public partial class Floors : Module
            {
                [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = 0.05)]
                readonly Linear a = new(64, 64);

                [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = {|CND0029:0.5|})]
                readonly Linear b = new(64, 64);
            }
            """);
        Assert.Equal("Layer 'a' cannot use Scope = Global: LayerFloor applies only with Scope = SparsityScope.Global (a layer-scope fraction already fixes what the layer keeps); add Scope = SparsityScope.Global or remove LayerFloor", Message(d[0]));
        Assert.Contains("it is the only Scope = Global layer of model 'Single'", Message(d[4]), StringComparison.Ordinal);
        Assert.Equal("Layer 'b' cannot use Scope = Global: the Scope = Global layers keep 820 weights in all, but their floors need 2,253 (this layer's LayerFloor = 0.5 alone needs 2,048); lower LayerFloor or the fractions", Message(d[5]));
    }

    [Fact]
    public void ValidScheduleAndGlobalScopeReportNothingAndGenerateASchedule()
    {
        var compilation = TestCompilation.Create(Usings + """
            namespace Demo;

            [Compressible]
            public partial class Mlp : Module
            {
                [Sparsify(0.9, Scope = SparsityScope.Global, LayerFloor = 0.05, StartStep = 10, EndStep = 100, Frequency = 10)]
                readonly Linear a = new(64, 64);

                [Sparsify(0.8, Scope = SparsityScope.Global, LayerFloor = 0.05, StartStep = 10, EndStep = 100, Frequency = 10)]
                readonly Linear b = new(64, 10);
            }
            """);
        Assert.Empty(TestCompilation.RunAnalyzer(compilation));
        var (result, output) = TestCompilation.RunGenerator(compilation);
        Snapshot.AssertCompiles(output, result);
        string generated = result.GeneratedTrees.Single().ToString();
        Assert.Contains("public sealed class PruningSchedule : global::Condense.Sparsity.GradualPruningSchedule", generated, StringComparison.Ordinal);
        Assert.Contains("public PruningSchedule CreatePruningSchedule() => new(this);", generated, StringComparison.Ordinal);
        Assert.Contains("session.SelectGlobalSparsity(Layers);", generated, StringComparison.Ordinal);
        Assert.Contains("GlobalSparsity: true, LayerFloor: 0.05d, PruneStartStep: 10, PruneEndStep: 100, PruneFrequency: 10", generated, StringComparison.Ordinal);
    }
}
