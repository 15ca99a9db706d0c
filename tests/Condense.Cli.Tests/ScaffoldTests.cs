using System.Collections.Immutable;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Condense.Cli.Tests;

public sealed class ScaffoldTests
{
    [Fact]
    public void RepeatedBlocksBecomeOneClassInAnArrayWithValidDefaults()
    {
        using var dir = new TempFolder();
        Fixtures.WriteBertLike(dir.File("bert.safetensors"));
        var r = CliRunner.Run("scaffold", dir.File("bert.safetensors"), "--namespace", "My.Models", "--class", "TinyBert", "--output", dir.File("TinyBert.cs"));
        Assert.True(r.ExitCode == 0, r.Error);
        string source = File.ReadAllText(dir.File("TinyBert.cs"));

        Assert.Contains("namespace My.Models;", source, StringComparison.Ordinal);
        Assert.Contains("private readonly TinyBertEncoderLayer[] layer = { new(), new(), new() };", source, StringComparison.Ordinal);
        Assert.Contains("private readonly TinyBertEncoder encoder = new();", source, StringComparison.Ordinal);
        Assert.Contains("[Quantize(4, GroupSize = 64)]\n    private readonly Linear dense = new(64, 32);", source.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.Contains("[Quantize(4, GroupSize = 32)]\n    private readonly Linear query = new(32, 32);", source.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        // One class per distinct structure: the three encoder layers share one.
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(source, "class TinyBertEncoderLayer "));
        // Norms and embedding tables are declared (kept dense); only the buffer is left to WeightOptions.
        Assert.Contains("private readonly Embedding word_embeddings = new(100, 32);", source, StringComparison.Ordinal);
        Assert.Contains("private readonly LayerNorm LayerNorm = new(32);", source, StringComparison.Ordinal);
        Assert.Contains("IgnoreExtras = [\"embeddings.position_ids\"],", source, StringComparison.Ordinal);

        var (diagnostics, generated) = CompileWithGenerator(source, "TinyBert");
        Assert.Empty(diagnostics);
        // The scaffold loads its own file: every tensor but the buffer lands in the model.
        string loaded = LoadWithScaffold(source, "My.Models.TinyBert", dir.File("bert.safetensors"));
        Assert.Contains("54 tensors", loaded, StringComparison.Ordinal);
        // The generated plan has every layer of the file, on the paths dry-run and [Override] use.
        Assert.Contains("Path: \"encoder.layer[2].attention.self.query\"", generated, StringComparison.Ordinal);
        Assert.Contains("Path: \"pooler.dense\"", generated, StringComparison.Ordinal);
        Assert.Equal(19, System.Text.RegularExpressions.Regex.Matches(generated, "new\\(Path: \"").Count);
    }

    [Fact]
    public void ConvolutionsKeywordsAndOddWidthsCompileWithZeroDiagnostics()
    {
        using var dir = new TempFolder();
        Fixtures.WriteConvNet(dir.File("convnet.safetensors"));
        var r = CliRunner.Run("scaffold", dir.File("convnet.safetensors"), "--output", dir.File("ConvNet.cs"), "--bits", "8");
        Assert.True(r.ExitCode == 0, r.Error);
        string source = File.ReadAllText(dir.File("ConvNet.cs"));
        Assert.Contains("public sealed partial class Convnet : Module", source, StringComparison.Ordinal);
        Assert.Contains("private readonly Conv2d _0 = new(1, 8, 3);", source, StringComparison.Ordinal);
        Assert.Contains("private readonly Linear @out = new(30, 10);", source, StringComparison.Ordinal);
        Assert.Contains("[Quantize(8)] // 30 inputs", source, StringComparison.Ordinal);
        Assert.Contains("renamed: '0' is not a C# identifier; the field is '_0'", r.Output, StringComparison.Ordinal);
        var (diagnostics, generated) = CompileWithGenerator(source, "Convnet");
        Assert.Empty(diagnostics);
        Assert.Contains("Path: \"head.out\"", generated, StringComparison.Ordinal);
        // features.0 is not an identifier: the field is _0, and WeightOptions maps the file's name to it.
        Assert.Contains("if (s.Length > 2 && s[0] == \"features\" && s[1] == \"0\") s[1] = \"_0\";", source, StringComparison.Ordinal);
        string loaded = LoadWithScaffold(source, "Models.Convnet", dir.File("convnet.safetensors"));
        Assert.Contains("6 tensors", loaded, StringComparison.Ordinal);

        // The output is never replaced silently.
        var again = CliRunner.Run("scaffold", dir.File("convnet.safetensors"), "--output", dir.File("ConvNet.cs"));
        Assert.Equal(ExitCodes.OutputExists, again.ExitCode);
        Assert.Equal(ExitCodes.Success, CliRunner.Run("scaffold", dir.File("convnet.safetensors"), "--output", dir.File("ConvNet.cs"), "--force").ExitCode);
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("scaffold", dir.File("convnet.safetensors"), "--class", "class", "--output", dir.File("X.cs")).ExitCode);
    }

    [Fact]
    public void OnnxMatMulWeightsAreDeclaredOutByInAndModuleListsAsLayerArrays()
    {
        using var dir = new TempFolder();
        // Exported by torch.onnx.export (tests/fixtures/make_import_fixtures.py): MatMul weights stored [in, out] under
        // numbered names; the reader recovers 'hidden1.weight' etc. from the bias each MatMul adds.
        string onnx = Path.Combine(RepoRoot(), "tests", "fixtures", "import", "mlp_matmul.onnx");
        var inspect = CliRunner.Run("inspect", onnx);
        Assert.True(inspect.ExitCode == 0, inspect.Error);
        Assert.Matches(@"hidden1\.weight\s+Float\s+\[64, 32\]\s+8,192\s+stored as 'onnx::MatMul_24'; MatMul weight \[in, out\]: a layer sees \[32, 64\]", inspect.Output);

        var r = CliRunner.Run("scaffold", onnx, "--class", "Mlp", "--output", dir.File("Mlp.cs"));
        Assert.True(r.ExitCode == 0, r.Error);
        string source = File.ReadAllText(dir.File("Mlp.cs"));
        Assert.Contains("private readonly Linear hidden1 = new(64, 32);", source, StringComparison.Ordinal);
        Assert.Contains("private readonly Linear[] blocks = { new(32, 32), new(32, 32) };", source, StringComparison.Ordinal);
        var (diagnostics, generated) = CompileWithGenerator(source, "Mlp");
        Assert.Empty(diagnostics);
        Assert.Contains("Path: \"blocks[1]\"", generated, StringComparison.Ordinal);

        var dry = CliRunner.Run("dry-run", onnx, "--bits", "4", "--group", "32");
        Assert.True(dry.ExitCode == 0, dry.Output + dry.Error);
        Assert.Matches(@"hidden1\s+Linear 32x64 \+bias\s+int4 g32 sym", dry.Output);
    }

    private static string RepoRoot([System.Runtime.CompilerServices.CallerFilePath] string file = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    /// <summary>Compiles the scaffold, loads it, and calls its LoadWeights on <paramref name="file"/> with its WeightOptions; returns the import report.</summary>
    private static string LoadWithScaffold(string source, string typeName, string file)
    {
        string probe = "public static class ScaffoldProbe { public static string Run(string path) { var m = new " + typeName +
            "(); return m.LoadWeights(path, " + typeName + ".WeightOptions).ToString(); } }";
        var (compilation, diagnostics) = Generate(source + "\n" + probe);
        Assert.Empty(diagnostics);
        using var image = new MemoryStream();
        var emitted = compilation.Emit(image);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics));
        var assembly = Assembly.Load(image.ToArray());
        // The probe lands in the scaffold's file-scoped namespace.
        return (string)assembly.GetTypes().Single(t => t.Name == "ScaffoldProbe").GetMethod("Run")!.Invoke(null, [file])!;
    }

    /// <summary>Compiles <paramref name="source"/> with Condense's generator and analyzers: every warning and error, and the generated code.</summary>
    private static (IReadOnlyList<string> Diagnostics, string Generated) CompileWithGenerator(string source, string model)
    {
        var (output, all) = Generate(source);
        string generated = string.Join("\n", output.SyntaxTrees.Where(t => Path.GetFileName(t.FilePath).EndsWith("." + model + ".g.cs", StringComparison.Ordinal)).Select(t => t.ToString()));
        Assert.False(string.IsNullOrEmpty(generated), "no generated file for " + model + ": " + string.Join(", ", output.SyntaxTrees.Select(t => t.FilePath)));
        return (all, generated);
    }

    private static (Compilation Output, IReadOnlyList<string> Diagnostics) Generate(string source)
    {
        var references = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Select(p => MetadataReference.CreateFromFile(p))
            .Append(MetadataReference.CreateFromFile(typeof(Condense.Nn.Module).Assembly.Location));
        var compilation = CSharpCompilation.Create("Scaffolded",
            [CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest))],
            references, new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));

        var generatorAssembly = Assembly.LoadFrom(Path.Combine(AppContext.BaseDirectory, "generator", "Condense.Generators.dll"));
        var generators = generatorAssembly.GetTypes().Where(t => !t.IsAbstract && typeof(IIncrementalGenerator).IsAssignableFrom(t))
            .Select(t => ((IIncrementalGenerator)Activator.CreateInstance(t)!).AsSourceGenerator()).ToList();
        var analyzers = generatorAssembly.GetTypes().Where(t => !t.IsAbstract && typeof(DiagnosticAnalyzer).IsAssignableFrom(t))
            .Select(t => (DiagnosticAnalyzer)Activator.CreateInstance(t)!).ToImmutableArray();
        Assert.NotEmpty(generators);
        Assert.NotEmpty(analyzers);

        CSharpGeneratorDriver.Create(generators, parseOptions: new CSharpParseOptions(LanguageVersion.Latest))
            .RunGeneratorsAndUpdateCompilation(compilation, out var output, out var generatorDiagnostics);
        var analyzerDiagnostics = output.WithAnalyzers(analyzers).GetAnalyzerDiagnosticsAsync().GetAwaiter().GetResult();
        var all = generatorDiagnostics.Concat(output.GetDiagnostics()).Concat(analyzerDiagnostics)
            .Where(d => d.Severity >= DiagnosticSeverity.Warning)
            .Select(d => d.ToString()).ToList();
        return (output, all);
    }
}
