using System.Globalization;
using System.Reflection;
using Condense.Compression;
using Condense.Generators.Tests.Infrastructure;
using Condense.Nn;
using Module = Condense.Nn.Module;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>
/// No model or layer is left out without a word: duplicate [Compressible], models that contain each other, arrays
/// written as initializers, arrays of layers, layers Condense cannot plan, invalid plans and sizes past the runtime's limit.
/// </summary>
public sealed class NothingSkippedSilentlyTests
{
    private const string Usings = "using Condense;\nusing Condense.Nn;\n";

    [Fact]
    public void TwoCompressibleDeclarationsOfOnePartialClassGenerateOneModelAndEveryOtherModel()
    {
        var compilation = TestCompilation.Create(Usings + """
            [Compressible]
            public partial class Twice : Module
            {
                [Quantize(8)] readonly Linear first = new(16, 16);
            }

            [Compressible]
            public partial class Twice
            {
                static int Width() => 4;
                readonly Linear second = new(16, Width());
            }

            [Compressible]
            public partial class Other : Module
            {
                readonly Linear only = new(4, 4);
            }
            """);
        var (result, output) = TestCompilation.RunGenerator(compilation);

        Assert.DoesNotContain(result.Diagnostics, d => d.Id is "CS8784" or "CS8785");
        Assert.Equal(["Other.g.cs", "Twice.g.cs"], result.Results.Single().GeneratedSources.Select(s => s.HintName).Order(StringComparer.Ordinal));
        // The compiler's own CS0579 on the second attribute is the only error.
        Assert.Equal(["CS0579"], output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).Select(d => d.Id));
        string twice = result.GeneratedTrees.Single(t => t.FilePath.EndsWith("Twice.g.cs", StringComparison.Ordinal)).ToString();
        Assert.Contains("new(Path: \"first\"", twice, StringComparison.Ordinal);
        Assert.Contains("new(Path: \"second\"", twice, StringComparison.Ordinal);
        // The analyzer plans the model once too: one CND0006 for 'second', not one per declaration.
        Assert.Equal(["CND0006"], TestCompilation.RunAnalyzer(compilation).Select(d => d.Id));
    }

    [Fact]
    public void ModelsThatContainEachOtherGetTheCycleDiagnosticNamingTheCycle()
    {
        var d = Analyze("""
            [Compressible]
            public partial class A : Module
            {
                readonly Linear x = new(4, 4);
                readonly B {|CND0023:b|} = new();
            }

            [Compressible]
            public partial class B : Module
            {
                readonly Linear y = new(4, 4);
                readonly C {|CND0023:c|} = new();
            }

            [Compressible]
            public partial class C : Module
            {
                readonly A? {|CND0023:a|};
            }
            """);
        Assert.Equal("Nested model 'b' of 'A' cannot be planned: 'A' contains itself through A.b -> B.c -> C.a -> A, so its layers cannot be listed; remove one of these references (a model cannot hold a model that holds it)", Message(d[0]));
        Assert.Contains("'B' contains itself through B.c -> C.a -> A.b -> B", Message(d[1]), StringComparison.Ordinal);
        Assert.Contains("'C' contains itself through C.a -> A.b -> B.c -> C", Message(d[2]), StringComparison.Ordinal);
    }

    [Fact]
    public void BlockArraysWrittenAsInitializersHaveTheirLength()
    {
        var (result, output) = Generate(Sources.Block + """

            [Compressible]
            public partial class Net : Module
            {
                readonly Block[] blocks = { new(), new() };
                readonly Block[] more = new Block[] { new(), new(), new() };
            }
            """, usings: false);
        Assert.Empty(TestCompilation.RunAnalyzer(output).Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal)));
        var net = (CompressionPlan)Load(output).GetType("Net")!.GetProperty("Plan")!.GetValue(null)!;
        Assert.Equal(15, net.Layers.Count);
        Assert.Equal("blocks[1].mlp.down", net.Layers[5].Path);
        Assert.Equal("more[2].mlp.down", net.Layers[14].Path);
        Assert.NotNull(result);
    }

    private const string Heads = """
        [Compressible]
        [Override("heads[1]", Bits = 8)]
        public partial class Heads : Module
        {
            readonly Linear trunk = new(8, 16);
            readonly Linear[] heads = { new(16, 4), new Linear(16, 4), new(inFeatures: 16, outFeatures: 2, bias: false) };
            [Quantize(8, GroupSize = 32)] readonly Linear[] quantized = [new(64, 32), new(64, 32)];
            readonly Conv2d[] convs = new Conv2d[] { new(1, 2, 3) };

            public Tensor Forward(Tensor x) => heads[2].Forward(trunk.Forward(x));
        }
        """;

    [Fact]
    public void ArraysOfLayersAreRegisteredAsHeadsIndexAndRoundTripThroughSaveAndLoad()
    {
        var (result, output) = Generate(Heads);
        Assert.Empty(TestCompilation.RunAnalyzer(output).Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal)));
        var type = Load(output).GetType("Heads")!;
        var plan = (CompressionPlan)type.GetProperty("Plan")!.GetValue(null)!;
        string[] paths = ["trunk", "heads[0]", "heads[1]", "heads[2]", "quantized[0]", "quantized[1]", "convs[0]"];
        Assert.Equal(paths, plan.Layers.Select(l => l.Path));
        Assert.Equal(LayerTechnique.Quantize, plan.Layers[5].Technique);
        Assert.Equal(32, plan.Layers[5].GroupSize);
        Assert.Equal(LayerTechnique.Dense, plan.Layers[1].Technique);
        Assert.Equal((LayerTechnique.Quantize, 8), (plan.Layers[2].Technique, plan.Layers[2].Bits));
        Assert.False(plan.Layers[3].HasBias);
        Assert.Equal((2, 16), (plan.Layers[3].OutFeatures, plan.Layers[3].InFeatures));

        var model = (Module)Activator.CreateInstance(type)!;
        Assert.Equal(paths, model.Layers.Select(l => l.Path));
        Assert.Contains("heads[2].weight", model.NamedParameters().Select(p => p.Path));
        Assert.Equal(2 + 2 + 2 + 1 + 2 + 2 + 2, model.Parameters().Count);

        // Saved, loaded into a fresh model: every element's weights come back.
        using var directory = new TempDir();
        string file = Path.Combine(directory.Path, "heads.safetensors");
        model.Initialize(7);
        type.GetMethod("Save")!.Invoke(model, [file]);
        var loaded = (Module)type.GetMethod("Load")!.Invoke(null, [file])!;
        Assert.Equal(Weight(model, "heads[2]"), Weight(loaded, "heads[2]"));
        Assert.NotEqual(Weight(new Linear(16, 2, bias: false)), Weight(loaded, "heads[2]"));

        // Compressed, saved and loaded: the quantized elements stay quantized.
        type.GetMethod("Compress")!.Invoke(model, [null, null]);
        type.GetMethod("Save")!.Invoke(model, [file]);
        loaded = (Module)type.GetMethod("Load")!.Invoke(null, [file])!;
        Assert.NotNull(((WeightedLayer)loaded.Layers[5].Layer).CompressedWeight);
        Assert.Null(((WeightedLayer)loaded.Layers[1].Layer).CompressedWeight);
        Assert.NotNull(((WeightedLayer)loaded.Layers[2].Layer).CompressedWeight);
        Assert.Contains("RequireLayers(this.heads, \"Heads\", \"heads\", 3)", result.GeneratedTrees.Single().ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ArraysOfLayersInsideArraysOfBlocksAreFlattenedAndCompressed()
    {
        var (_, output) = Generate("""
            [Compressible]
            public partial class Block : Module
            {
                [Quantize(4, GroupSize = 16)] readonly Linear[] heads = { new(32, 8), new(32, 8) };
                readonly Linear mix = new(16, 16);
            }

            [Compressible]
            [Override("blocks[1].heads[0]", KeepDense = true)]
            public partial class Net : Module
            {
                readonly Block[] blocks = { new(), new() };
            }
            """);
        var type = Load(output).GetType("Net")!;
        var model = (Module)Activator.CreateInstance(type)!;
        Assert.Equal(["blocks[0].heads[0]", "blocks[0].heads[1]", "blocks[0].mix", "blocks[1].heads[0]", "blocks[1].heads[1]", "blocks[1].mix"], model.Layers.Select(l => l.Path));
        var report = (CompressionReport)type.GetMethod("Compress")!.Invoke(model, [null, null])!;
        Assert.Equal(6, report.Layers.Count);
        Assert.Equal([true, true, false, false, true, false], model.Layers.Select(l => ((WeightedLayer)l.Layer).CompressedWeight is not null));
    }

    [Fact]
    public void InvalidPlansOfEveryShapeCompileWithoutFollowOnErrors()
    {
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(Usings + """
            [Compressible]
            public partial class Plain
            {
                [Quantize(5)] readonly Linear layer = new(8, 8);
            }

            public partial class Outer<T>
            {
                [Compressible(MaxBytes = 16)]
                internal abstract partial class Generic<U> : Module where U : class
                {
                    readonly Linear layer = new(8, 8);
                }
            }

            [Compressible]
            public partial class Inner : Module
            {
                [LowRank(0)] readonly Linear layer = new(8, 8);
            }

            [Compressible]
            public partial class Holder : Module
            {
                readonly Inner inner = new();
                public Holder(int unused) { }
            }

            public static class Use
            {
                public static object Run(Plain plain, Holder holder) => (plain.Layers, Plain.Plan, Plain.Load("x"), holder.Compress(), Holder.PlannedBytes);
            }
            """));
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
        Assert.Equal(4, result.GeneratedTrees.Length);
        string holder = result.GeneratedTrees.Single(t => t.FilePath.EndsWith("Holder.g.cs", StringComparison.Ordinal)).ToString();
        Assert.Contains("Model 'Holder' has no compression plan: the build reported this error: nested model 'inner' ('Inner') has build errors of its own; fix the errors reported on it.", holder, StringComparison.Ordinal);
    }

    [Fact]
    public void AnArrayOfLayersAssignedInTheConstructorIsCheckedAtRunTime()
    {
        const string Source = """
            [Compressible]
            public partial class Late : Module
            {
                const int Count = 2;
                [Quantize(8)] readonly Linear[] heads = new Linear[Count];
                public Late() { for (int i = 0; i < Count; i++) heads[i] = new Linear(32, 8); }
                public Late(int count) { heads = new Linear[count]; }
            }
            """;
        var d = Analyze(Source.Replace("new Linear[Count];", "{|CND0006:new Linear[Count]|};", StringComparison.Ordinal));
        Assert.Equal("The shape of layer 'heads[0..1]' is not known at compile time: the elements are assigned at run time; list them in the initializer ('{ new(...), new(...) }'); model 'Late' checks this layer when Compress runs, with the messages the build would give; give it constant arguments to check it now", Message(d[0]));

        var (_, output) = Generate(Source);
        var type = Load(output).GetType("Late")!;
        var model = (Module)Activator.CreateInstance(type)!;
        Assert.Equal(["heads[0]", "heads[1]"], model.Layers.Select(l => l.Path));
        var report = (CompressionReport)type.GetMethod("Compress")!.Invoke(model, [null, null])!;
        Assert.Equal(2, report.Layers.Count);
        Assert.NotNull(((WeightedLayer)model.Layers[1].Layer).CompressedWeight);

        var wrong = (Module)Activator.CreateInstance(type, 3)!;
        var e = Assert.Throws<InvalidOperationException>(() => wrong.Layers);
        Assert.Equal("Model 'Late': layer array 'heads' has 3 layers but the compiled plan expects 2; keep its length the constant the build saw.", e.Message);
        var nulls = (Module)Activator.CreateInstance(type, 2)!;
        e = Assert.Throws<InvalidOperationException>(() => nulls.Layers);
        Assert.Equal("Model 'Late': layer 'heads[0]' is null; assign every element of 'heads' in the initializer or the constructor.", e.Message);
    }

    [Fact]
    public void MembersHoldingLayersThatCannotBeListedAreReported()
    {
        var d = Analyze("""
            using System.Collections.Generic;

            public sealed class Norm : Layer
            {
                public override IReadOnlyList<Parameter> Parameters => [];
                public override void ResetParameters(Rng rng) { }
            }

            public class Encoder : Module
            {
                readonly Linear inner = new(4, 4);
            }

            [Compressible]
            public partial class Mixed : Module
            {
                readonly Linear fine = new(4, 4);
                readonly Norm norm = new();                      // a layer outside the plan: registered by ParameterLayers
                readonly Norm[] norms = [new(), new()];          // likewise, norms[0] and norms[1]
                readonly Encoder {|CND0026:encoder|} = new();
                readonly List<Linear> {|CND0026:list|} = [new(4, 4)];
                readonly Linear[] {|CND0026:sized|};
                readonly List<Norm> {|CND0026:normList|} = [new()];
                readonly Norm[] {|CND0026:lateNorms|};
                public Layer {|CND0026:Any|} { get; } = new Linear(4, 4);
                public IEnumerable<Linear> Computed => list;
                static readonly Linear shared = new(4, 4);

                public Mixed(int count) { sized = new Linear[count]; lateNorms = new Norm[count]; }
            }
            """);
        Assert.EndsWith("'Encoder' is a Module that is not [Compressible]; mark 'Encoder' [Compressible] and partial so its layers are planned with this model", Message(d[0]), StringComparison.Ordinal);
        Assert.EndsWith("'System.Collections.Generic.List<Condense.Nn.Linear>' is a collection whose layers Condense cannot list; use a one-dimensional array ('Condense.Nn.Linear[]') with a length known at build time", Message(d[1]), StringComparison.Ordinal);
        Assert.EndsWith("array 'sized' has no initializer, so its length is not known at compile time; initialize it as 'new Linear[N]' with a constant N (and assign the elements in the constructor), or list the elements ('[new(...), new(...)]')", Message(d[2]), StringComparison.Ordinal);
        Assert.EndsWith("'System.Collections.Generic.List<Norm>' is a collection whose layers Condense cannot list; use a one-dimensional array ('Norm[]') with a length known at build time", Message(d[3]), StringComparison.Ordinal);
        Assert.EndsWith("array 'lateNorms' has no initializer, so its length is not known at compile time; initialize it as 'new Norm[N]' with a constant N (and assign the elements in the constructor), or list the elements ('[new(...), new(...)]')", Message(d[4]), StringComparison.Ordinal);
        Assert.EndsWith("its declared type 'Layer' does not say which layer it is; declare it as Linear or Conv2d", Message(d[5]), StringComparison.Ordinal);
        Assert.All(d, x => Assert.Equal(DiagnosticSeverity.Warning, x.Severity));
    }

    [Fact]
    public void LayersOutsideThePlanAreListedCheckedAtRunTimeAndNeverCompressed()
    {
        var d = Analyze("""
            [Compressible]
            public partial class Normed : Module
            {
                readonly Linear dense = new(4, 4);
                [{|CND0008:Quantize(8)|}] readonly LayerNorm norm = new(4);
            }
            """);
        Assert.Single(d);
        // A model that declares ParameterLayers itself, while the generator would write it, gets CND0009.
        d = Analyze("""
            using System.Collections.Generic;
            [Compressible]
            public partial class Own : Module
            {
                readonly LayerNorm norm = new(4);
                public override IReadOnlyList<NamedLayer> {|CND0009:ParameterLayers|} => [];
            }
            """);
        Assert.Single(d);

        const string Source = """
            [Compressible]
            public partial class Held : Module
            {
                readonly Linear dense = new(4, 4);
                LayerNorm? norm = new(4);
                readonly Embedding[] tables = { new(3, 4), new(5, 4) };
                public void Drop() => norm = null;
            }
            """;
        var (_, output) = Generate(Source);
        var type = Load(output).GetType("Held")!;
        var model = (Module)Activator.CreateInstance(type)!;
        Assert.Equal(["dense"], model.Layers.Select(l => l.Path));
        Assert.Equal(["norm", "tables[0]", "tables[1]"], model.ParameterLayers.Select(l => l.Path));
        Assert.Equal(["dense.weight", "dense.bias", "norm.weight", "norm.bias", "tables[0].weight", "tables[1].weight"], model.NamedParameters().Select(p => p.Path));
        type.GetMethod("Drop")!.Invoke(model, null);
        var e = Assert.Throws<InvalidOperationException>(() => model.ParameterLayers);
        Assert.Equal("Model 'Held': layer 'norm' is null; create it in the field initializer or the constructor.", e.Message);
    }

    [Fact]
    public void AnInvalidPlanIsTheOnlyErrorEvenWhenCodeCallsTheGeneratedMembers()
    {
        const string Source = """
            [Compressible]
            public partial class Broken : Module
            {
                [Quantize(5)] readonly Linear layer = new(64, 64);
            }

            public static class Use
            {
                public static long Run(Broken model, string path)
                {
                    model.Compress();
                    model.Save(path);
                    Broken loaded = Broken.Load(path);
                    CompressionPlan plan = Broken.Plan;
                    return Broken.PlannedBytes + Broken.DenseBytes + loaded.Layers.Count + plan.Layers.Count;
                }

                public static T Generic<T>(string path) where T : Module, ICompressibleModel<T> => T.Load(path);
            }
            """;
        var compilation = TestCompilation.Create(Usings + "using Condense.Compression;\n" + Source);
        var (result, output) = TestCompilation.RunGenerator(compilation);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
        Assert.Equal(["CND0003"], TestCompilation.RunAnalyzer(compilation).Select(d => d.Id));
        Assert.Empty(result.Diagnostics);

        // With the error suppressed (editorconfig severity = none) the build would pass: every member says why it cannot work.
        var type = Load(output).GetType("Broken")!;
        var model = Activator.CreateInstance(type)!;
        const string Expected = "Model 'Broken' has no compression plan: the build reported this error: CND0003: Layer 'layer' cannot be quantized: bits 5 has no kernel; supported bit widths are 2, 3, 4, 8. Fix them and rebuild; this member exists only so that the errors above are the only ones reported.";
        foreach (var call in new Func<object?>[]
                 {
                     () => type.GetMethod("Compress")!.Invoke(model, [null, null]),
                     () => type.GetMethod("Save")!.Invoke(model, ["x"]),
                     () => type.GetMethod("Load")!.Invoke(null, ["x"]),
                     () => type.GetProperty("Plan")!.GetValue(null),
                     () => ((Module)model).Layers,
                 })
            Assert.Equal(Expected, Assert.IsType<InvalidOperationException>(Thrown(call)).Message);
    }

    [Fact]
    public void AMemberNamedLikeAGeneratedOneKeepsItsOwnAndGetsTheOthers()
    {
        var compilation = TestCompilation.Create(Usings + """
            [Compressible]
            public partial class Clash : Module
            {
                readonly Linear layer = new(4, 4);
                public void Save(string path) { }
            }

            public static class Use
            {
                public static void Run(Clash model) { model.Compress(); model.Save("x"); }
            }
            """);
        var (result, output) = TestCompilation.RunGenerator(compilation);
        Assert.Equal(["CND0009"], result.Diagnostics.Select(d => d.Id));
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity >= DiagnosticSeverity.Warning));
        string generated = result.GeneratedTrees.Single().ToString();
        Assert.DoesNotContain("void Save(", generated, StringComparison.Ordinal);
        Assert.DoesNotContain("ICompressibleModel", generated, StringComparison.Ordinal);
        Assert.Contains("CND0009: Model 'Clash' already declares 'Save', which Condense generates", generated, StringComparison.Ordinal);
    }

    [Fact]
    public void ALayerTooLargeForTheRuntimeIsAnErrorAndTheBudgetArithmeticDoesNotWrap()
    {
        var d = Analyze("""
            [Compressible(MaxBytes = 1024)]
            public partial class Huge : Module
            {
                readonly Linear huge = {|CND0025:new(int.MaxValue, int.MaxValue)|};
                [Quantize(4)] readonly Linear justOver = {|CND0025:new Linear(46341, 46341)|};
                readonly Conv2d conv = {|CND0025:new(65536, 65536, kernelSize: 256)|};
            }
            """);
        Assert.Equal("Layer 'huge' is too large: its weight 2147483647 x 2147483647 has 4,611,686,014,132,420,609 values, and a layer holds at most 2,147,483,591 (the largest float array .NET can allocate); split it into smaller layers", Message(d[0]));
        // The runtime throws the very same text from the constructor.
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Linear(46341, 46341));
        Assert.StartsWith(Message(d[1]).Replace("'justOver'", "'Linear(46341, 46341)'", StringComparison.Ordinal), e.Message, StringComparison.Ordinal);
        Assert.Contains("65536 x 65536 x 256 x 256 has 281,474,976,710,656 values", Message(d[2]), StringComparison.Ordinal);

        // Five layers just under the limit: 42.9 GB in total, summed without wrapping, so the budget error is there.
        d = Analyze("""
            [Compressible(MaxBytes = {|CND0007:1024|})]
            public partial class Large : Module
            {
                readonly Linear a = new(46340, 46340, bias: false);
                readonly Linear b = new(46340, 46340, bias: false);
                readonly Linear c = new(46340, 46340, bias: false);
                readonly Linear d = new(46340, 46340, bias: false);
                readonly Linear e = new(46340, 46340, bias: false);
            }
            """);
        Assert.StartsWith("Model 'Large' exceeds its budget: the plan needs 42,947,912,000 bytes, but MaxBytes allows 1,024 bytes", Message(d[0]), StringComparison.Ordinal);
    }

    /// <summary>What the call throws, unwrapped from reflection's TargetInvocationException; null when it returns.</summary>
    private static Exception? Thrown(Func<object?> call)
    {
        try
        {
            call();
            return null;
        }
        catch (TargetInvocationException e)
        {
            return e.InnerException;
        }
        catch (InvalidOperationException e)
        {
            return e;
        }
    }

    private static float[] Weight(Module model, string path) => Weight((WeightedLayer)model.Layers.Single(l => l.Path == path).Layer);

    private static float[] Weight(WeightedLayer layer) => layer.Weight.Data.ToArray();

    private static string Message(Diagnostic d) => d.GetMessage(CultureInfo.InvariantCulture);

    /// <summary>Runs the analyzer and the generator on the markup's source and requires exactly the marked CND diagnostics, in source order.</summary>
    private static List<Diagnostic> Analyze(string markup, bool usings = true)
    {
        var (source, expected) = Markup.Parse((usings ? Usings : "") + markup);
        var compilation = TestCompilation.Create(source);
        var errors = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, "The test source itself does not compile:\n" + string.Join("\n", errors));
        var (result, output) = TestCompilation.RunGenerator(compilation);
        // Whatever the plan, the generated code adds no error of its own.
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var actual = TestCompilation.RunAnalyzer(compilation).Concat(result.Diagnostics)
            .Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal))
            .OrderBy(d => d.Location.SourceSpan.Start)
            .ToList();
        string Describe(string id, Microsoft.CodeAnalysis.Text.TextSpan span) => $"{id} at {span} '{source.Substring(span.Start, span.Length)}'";
        Assert.Equal(expected.OrderBy(e => e.Span.Start).Select(e => Describe(e.Id, e.Span)), actual.Select(d => Describe(d.Id, d.Location.SourceSpan)));
        return actual;
    }

    private static (GeneratorDriverRunResult Result, Compilation Output) Generate(string source, bool usings = true)
    {
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create((usings ? Usings : "") + source));
        Snapshot.AssertCompiles(output, result);
        return (result, output);
    }

    private static Assembly Load(Compilation output)
    {
        using var stream = new MemoryStream();
        var emit = output.Emit(stream);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        return Assembly.Load(stream.ToArray());
    }

    private sealed class TempDir : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory("condense-gen-").FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
