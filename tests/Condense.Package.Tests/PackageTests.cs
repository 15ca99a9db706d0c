using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Condense.Package.Tests;

/// <summary>
/// What a .NET developer gets from <c>dotnet add package Condense</c>: a package holding the runtime, the generator
/// and analyzers and the code fixes with real metadata; generated members and plan checks in a fresh app built only
/// from a folder feed; a bad plan as exactly one CND error.
/// </summary>
public sealed partial class PackageTests(PackageFixture package) : IClassFixture<PackageFixture>
{
    private const string ValidModel = """
        using Condense;
        using Condense.Nn;

        namespace Consumer;

        [Compressible(MaxBytes = 8 * 1024)]
        public sealed partial class TinyMlp : Module
        {
            [Quantize(4, GroupSize = 32)]
            private readonly Linear hidden = new(64, 48);

            [Quantize(8)]
            private readonly Linear output = new(48, 10);

            public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden.Forward(x)));
        }
        """;

    private const string Program = """
        using Condense;
        using Consumer;

        var model = new TinyMlp();
        model.Initialize(seed: 3);
        var input = new float[4 * 64];
        for (int i = 0; i < input.Length; i++) input[i] = MathF.Sin(i * 0.37f);
        var x = Tensor.FromArray(input, 4, 64);
        var report = model.Compress();
        var before = model.Forward(x).Data;
        model.Save("tiny.safetensors");
        var again = TinyMlp.Load("tiny.safetensors");
        var after = again.Forward(x).Data;
        bool same = before.AsSpan().SequenceEqual(after);
        Console.WriteLine($"layers {TinyMlp.Plan.Layers.Count}");
        Console.WriteLine($"planned {TinyMlp.Plan.TotalBytesAfter} compressed {report.TotalBytesAfter}");
        Console.WriteLine($"reloaded identical {same}");
        return same && TinyMlp.Plan.TotalBytesAfter == report.TotalBytesAfter ? 0 : 1;
        """;

    [Fact]
    public void PackageHoldsRuntimeAnalyzersCodeFixesAndMetadata()
    {
        package.AssertPacked();
        var entries = package.Entries();
        Assert.Contains("lib/net10.0/Condense.dll", entries);
        Assert.Contains("lib/net10.0/Condense.xml", entries);
        Assert.Contains("analyzers/dotnet/cs/Condense.Generators.dll", entries);
        Assert.Contains("analyzers/dotnet/cs/Condense.CodeFixes.dll", entries);
        Assert.Contains("README.md", entries);
        Assert.Contains("LICENSE", entries);

        var nuspec = package.Nuspec();
        XNamespace ns = nuspec.Root!.Name.Namespace;
        var metadata = nuspec.Root.Element(ns + "metadata")!;
        string Get(string name) => metadata.Element(ns + name)?.Value ?? "";
        Assert.Equal("Condense", Get("id"));
        Assert.Equal(package.Version, Get("version"));
        Assert.DoesNotContain("Package Description", Get("description"), StringComparison.Ordinal);
        Assert.Contains("compression", Get("description"), StringComparison.OrdinalIgnoreCase);
        Assert.Equal("MIT", Get("license"));
        Assert.Equal("README.md", Get("readme"));
        Assert.Contains("quantization", Get("tags"), StringComparison.Ordinal);
        Assert.NotNull(metadata.Element(ns + "repository")?.Attribute("url"));
        // Release notes come from the analyzer release tracking file: every rule it lists.
        Assert.Contains("CND0001", Get("releaseNotes"), StringComparison.Ordinal);
        Assert.Contains("CND0004", Get("releaseNotes"), StringComparison.Ordinal);

        // The generator and the code fixes ship inside the package; they are not separate package dependencies.
        var dependencies = metadata.Descendants(ns + "dependency").Select(d => d.Attribute("id")!.Value).ToList();
        Assert.Contains("System.Numerics.Tensors", dependencies);
        Assert.DoesNotContain(dependencies, d => d.StartsWith("Condense", StringComparison.Ordinal));
        Assert.DoesNotContain(dependencies, d => d.StartsWith("Microsoft.CodeAnalysis", StringComparison.Ordinal));
    }

    [Fact]
    public void FreshConsoleAppGetsTheGeneratedModelAndRunsIt()
    {
        package.AssertPacked();
        string app = package.CreateConsumer("ValidConsumer", ValidModel, Program);
        var run = Dotnet.Run(app, "run", "-c", "Release");
        Assert.True(run.ExitCode == 0, "the consumer app did not build or run:\n" + run);
        Assert.Contains("layers 2", run.Output, StringComparison.Ordinal);
        Assert.Contains("reloaded identical True", run.Output, StringComparison.Ordinal);
        var bytes = PlannedAndCompressed().Match(run.Output);
        Assert.True(bytes.Success, run.Output);
        Assert.Equal(bytes.Groups[1].Value, bytes.Groups[2].Value);
    }

    [Fact]
    public void BadGroupSizeIsExactlyOneCndErrorInTheBuildOutput()
    {
        package.AssertPacked();
        // 64 inputs, groups of 48: does not divide (CND0004), and nothing else is wrong.
        string model = ValidModel.Replace("[Quantize(4, GroupSize = 32)]", "[Quantize(4, GroupSize = 48)]", StringComparison.Ordinal);
        string app = package.CreateConsumer("InvalidConsumer", model, Program);
        var build = Dotnet.Run(app, "build", "-c", "Release");
        Assert.NotEqual(0, build.ExitCode);
        // dotnet build repeats errors in its summary: count distinct diagnostics.
        var errors = ErrorLine().Matches(build.Output).Select(m => m.Value.Trim()).Distinct().ToList();
        var cnd = errors.Where(e => e.Contains("error CND", StringComparison.Ordinal)).ToList();
        Assert.True(cnd.Count == 1, "expected exactly one CND error:\n" + build);
        Assert.Contains("error CND0004", cnd[0], StringComparison.Ordinal);
        Assert.Contains("hidden", cnd[0], StringComparison.Ordinal);
        // The generator still emitted the model's members: no follow-on compiler errors (CS0117 'Plan' and the like).
        Assert.True(errors.Count == 1, "expected no other errors:\n" + string.Join("\n", errors));
    }

    [Fact]
    public void CondenseToolInstallsFromTheFeedAndRuns()
    {
        Assert.True(package.ToolPack.ExitCode == 0 && File.Exists(package.ToolNupkgPath), "dotnet pack of the tool failed:\n" + package.ToolPack);
        string tools = Path.Combine(package.Root, "tools");
        var install = Dotnet.Run(package.Root, "tool", "install", "Condense.Cli", "--tool-path", tools, "--version", package.Version, "--add-source", package.Feed);
        Assert.True(install.ExitCode == 0, "dotnet tool install failed:\n" + install);
        string condense = Path.Combine(tools, OperatingSystem.IsWindows() ? "condense.exe" : "condense");
        var help = Dotnet.Exec(condense, package.Root, "--help");
        Assert.True(help.ExitCode == 0, help.ToString());
        foreach (var command in new[] { "inspect", "scaffold", "dry-run" }) Assert.Contains(command, help.Output, StringComparison.Ordinal);
        var missing = Dotnet.Exec(condense, package.Root, "inspect", "no-such-file.safetensors");
        Assert.Equal(2, missing.ExitCode);
        Assert.DoesNotContain("   at ", missing.Output, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"planned (\d+) compressed (\d+)")]
    private static partial Regex PlannedAndCompressed();

    [GeneratedRegex(@"^.*: error [A-Z]+[0-9]+:.*$", RegexOptions.Multiline)]
    private static partial Regex ErrorLine();
}
