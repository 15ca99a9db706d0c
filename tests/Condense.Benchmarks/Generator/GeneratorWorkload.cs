using System.Collections.Immutable;
using System.Globalization;
using System.Reflection;
using System.Text;
using Condense.Generators;
using Condense.Generators.Analyzers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Condense.Benchmarks.Generator;

/// <summary>
/// A compilation holding one [Compressible] model with 1,000 annotated Linear layers (varied bits, group sizes,
/// grids, a few KeepDense) and one unrelated file, plus the runs the generator benchmark times.
/// </summary>
public sealed class GeneratorWorkload
{
    public const int Layers = 1000;
    private const string UnrelatedPath = "Unrelated.cs";

    private static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    private static readonly string[] Annotations =
    [
        "[Quantize(4, GroupSize = 64)]",
        "[Quantize(8)]",
        "[Quantize(4, GroupSize = 32, Symmetric = false)]",
        "[Quantize(2, GroupSize = 128, Symmetric = false)]",
        "[Quantize(3, GroupSize = 128)]",
        "[Quantize(4, GroupSize = 128)]",
        "[Quantize(8, GroupSize = 256)]",
        "[Quantize(4, GroupSize = 16)]",
        "[Quantize(2, GroupSize = 64)]",
        "[Quantize(4)]",
    ];

    private static readonly (int Out, int In)[] Shapes = [(512, 512), (256, 1024), (1024, 256), (128, 512), (512, 768)];

    private readonly SyntaxTree _unrelated;
    private readonly string[] _generated;
    private int _edits;

    /// <param name="layers">Linear layers in the model.</param>
    /// <param name="mixtureOfExperts">
    /// Nested blocks (<see cref="MixtureOfExpertsSource"/>) instead of one flat class: the paths, arrays and nested
    /// plans a large real model has.
    /// </param>
    public GeneratorWorkload(int layers = Layers, bool mixtureOfExperts = false)
    {
        _unrelated = Unrelated(0);
        LayerCount = layers;
        Compilation = CSharpCompilation.Create(
            "GeneratorBenchmark",
            [CSharpSyntaxTree.ParseText(mixtureOfExperts ? MixtureOfExpertsSource(layers) : ModelSource(layers), ParseOptions, path: "LargeModel.cs"), _unrelated],
            References(),
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
        Primed = CreateDriver(trackSteps: true).RunGenerators(Compilation);
        _generated = Primed.GetRunResult().GeneratedTrees.Select(t => t.GetText().ToString()).ToArray();
    }

    /// <summary>The model and the unrelated file; never run on directly (runs use clones, which start with no semantic caches).</summary>
    public CSharpCompilation Compilation { get; }

    /// <summary>A driver that has already run on <see cref="Compilation"/>: the state an IDE holds before the next edit.</summary>
    public GeneratorDriver Primed { get; }

    /// <summary>The model: <c>[Quantize(...)] readonly Linear l0001 = new(512, 512);</c> x <paramref name="layers"/>, every 50th [KeepDense].</summary>
    public static string ModelSource(int layers)
    {
        var text = new StringBuilder("""
            using Condense;
            using Condense.Nn;

            namespace Benchmarks.Large;

            [Compressible]
            public sealed partial class LargeModel : Module
            {

            """);
        for (int i = 1; i <= layers; i++)
        {
            var (outFeatures, inFeatures) = Shapes[i % Shapes.Length];
            string annotation = i % 50 == 0 ? "[KeepDense]" : Annotations[i % Annotations.Length];
            text.Append(CultureInfo.InvariantCulture, $"    {annotation}\n    readonly Linear l{i:D4} = new({inFeatures}, {outFeatures});\n\n");
        }
        return text.Append("}\n").ToString();
    }

    /// <summary>The number of Linear layers in the model.</summary>
    public int LayerCount { get; }

    /// <summary>Experts per mixture-of-experts block: with the router, 100 Linear layers per block.</summary>
    public const int ExpertsPerBlock = 33;

    /// <summary>
    /// A mixture of experts: <c>LargeModel</c> holds <c>Block[] blocks</c> (layers / 100 of them, a multiple of 100 is
    /// expected), each a router and <see cref="ExpertsPerBlock"/> <c>Expert</c>s of three annotated Linear layers
    /// (gate, up: int4 g64; down: int8), every block and expert its own [Compressible] class in an array.
    /// </summary>
    public static string MixtureOfExpertsSource(int layers)
    {
        int perBlock = 1 + 3 * ExpertsPerBlock;
        if (layers % perBlock != 0) throw new ArgumentException($"layers = {layers}; a multiple of {perBlock} (one router and {ExpertsPerBlock} experts of 3 layers per block) is expected", nameof(layers));
        string Array(string type, int count) => $"{type}[] = {{ {string.Join(", ", Enumerable.Repeat("new()", count))} }};";
        return $$"""
            using Condense;
            using Condense.Nn;

            namespace Benchmarks.Large;

            [Compressible]
            public sealed partial class Expert : Module
            {
                [Quantize(4, GroupSize = 64)] readonly Linear gate = new(512, 1024);
                [Quantize(4, GroupSize = 64)] readonly Linear up = new(512, 1024);
                [Quantize(8)] readonly Linear down = new(1024, 512);
            }

            [Compressible]
            public sealed partial class Block : Module
            {
                [KeepDense] readonly Linear router = new(512, {{ExpertsPerBlock}});
                readonly {{Array("Expert", ExpertsPerBlock).Replace("[] =", "[] experts =")}}
            }

            [Compressible]
            public sealed partial class LargeModel : Module
            {
                readonly {{Array("Block", layers / perBlock).Replace("[] =", "[] blocks =")}}
            }

            """;
    }

    public static GeneratorDriver CreateDriver(bool trackSteps) =>
        CSharpGeneratorDriver.Create(
            [new ModelGenerator().AsSourceGenerator()],
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(IncrementalGeneratorOutputKind.None, trackIncrementalGeneratorSteps: trackSteps));

    /// <summary>A new driver on a fresh clone (what a full build pays).</summary>
    public GeneratorDriverRunResult RunGenerator() => CreateDriver(trackSteps: false).RunGenerators(Compilation.Clone()).GetRunResult();

    /// <summary><see cref="CompressionPlanAnalyzer"/> on a fresh clone.</summary>
    public ImmutableArray<Diagnostic> RunAnalyzer() => RunAnalyzer(Compilation.Clone());

    /// <summary>
    /// A no-op analyzer on the same kind of syntax nodes, on a fresh clone: what the analyzer driver and the
    /// binding it forces cost before CompressionPlanAnalyzer does any work of its own.
    /// </summary>
    public ImmutableArray<Diagnostic> RunNoOpAnalyzer() => RunAnalyzer(Compilation.Clone(), new NoOpAnalyzer());

    /// <summary>
    /// The no-op analyzer on a fresh clone plus the generated file, parsed anew: what the build's compile pays once
    /// the generated code is part of it (Roslyn's time, not the generator's or the analyzer's).
    /// </summary>
    public ImmutableArray<Diagnostic> RunNoOpAnalyzerWithGenerated() =>
        RunAnalyzer(Compilation.Clone().AddSyntaxTrees(_generated.Select((text, i) => CSharpSyntaxTree.ParseText(text, ParseOptions, path: $"Generated{i}.g.cs"))), new NoOpAnalyzer());

    /// <summary>Generator then analyzer on the same fresh clone: the full cost the two add to a build.</summary>
    public int RunFull()
    {
        var clone = Compilation.Clone();
        var result = CreateDriver(trackSteps: false).RunGenerators(clone).GetRunResult();
        return result.GeneratedTrees.Length + RunAnalyzer(clone).Length;
    }

    /// <summary>The primed driver after an edit of the unrelated file (a new edit each call).</summary>
    public GeneratorDriverRunResult RunAfterUnrelatedEdit() =>
        Primed.RunGenerators(Compilation.ReplaceSyntaxTree(_unrelated, Unrelated(++_edits))).GetRunResult();

    /// <summary>The generator's own tracked step names (internal TrackingNames constants).</summary>
    public static IReadOnlyList<string> StepNames { get; } = typeof(ModelGenerator).Assembly
        .GetType("Condense.Generators.TrackingNames", throwOnError: true)!
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral)
        .Select(f => (string)f.GetRawConstantValue()!)
        .ToArray();

    private static ImmutableArray<Diagnostic> RunAnalyzer(Compilation compilation, DiagnosticAnalyzer? analyzer = null)
    {
        var options = new CompilationWithAnalyzersOptions(new AnalyzerOptions([]), onAnalyzerException: null, concurrentAnalysis: true, logAnalyzerExecutionTime: false);
        return compilation.WithAnalyzers([analyzer ?? new CompressionPlanAnalyzer()], options).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
    }

    /// <summary>Registers for class declarations, as CompressionPlanAnalyzer does, and does nothing.</summary>
    // Never loaded by a compiler, only constructed here: no [DiagnosticAnalyzer] and no release tracking.
#pragma warning disable RS1001, RS2008
    private sealed class NoOpAnalyzer : DiagnosticAnalyzer
    {
        // An analyzer without a supported diagnostic would be skipped by the driver.
        private static readonly DiagnosticDescriptor Never = new("BENCH0001", "never reported", "never reported", "Benchmark", DiagnosticSeverity.Hidden, isEnabledByDefault: true);

        public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = [Never];

        public override void Initialize(AnalysisContext context)
        {
            context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
            context.EnableConcurrentExecution();
            context.RegisterSyntaxNodeAction(_ => { }, Microsoft.CodeAnalysis.CSharp.SyntaxKind.ClassDeclaration);
        }
    }
#pragma warning restore RS1001, RS2008

    private static SyntaxTree Unrelated(int version) => CSharpSyntaxTree.ParseText(
        $"namespace Benchmarks.Other;\n\npublic static class Helper\n{{\n    public static int Version => {version};\n}}\n",
        ParseOptions, path: UnrelatedPath);

    // The shared framework and Condense itself: what a project using Condense compiles against.
    private static IEnumerable<MetadataReference> References()
    {
        string framework = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        return ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!)
            .Split(Path.PathSeparator)
            .Where(p => Path.GetDirectoryName(p) == framework)
            .Append(typeof(Condense.Nn.Module).Assembly.Location)
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p));
    }
}
