using System.Text.RegularExpressions;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>Each docs/diagnostics page's example reports its diagnostic and its fix reports nothing.</summary>
public sealed partial class DocumentationTests
{
    public static TheoryData<string> Ids => [.. typeof(Condense.Generators.Diagnostics.DiagnosticDescriptors)
        .GetFields()
        .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
        .Select(f => ((DiagnosticDescriptor)f.GetValue(null)!).Id)
        .Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(Ids))]
    public void ExampleReportsTheDiagnosticAndFixIsClean(string id)
    {
        var page = File.ReadAllText(Path.Combine(RepoRoot(), "docs", "diagnostics", id + ".md"));
        var blocks = CodeBlock().Matches(page).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, blocks.Count);

        Assert.Contains(id, Diagnose(blocks[0]).Select(d => d.Id));
        Assert.DoesNotContain(Diagnose(blocks[1]), d => d.Id.StartsWith("CND", StringComparison.Ordinal));
    }

    private static IEnumerable<Diagnostic> Diagnose(string snippet)
    {
        string source = "using Condense;\nusing Condense.Nn;\n" + (snippet.Contains("class ", StringComparison.Ordinal)
            ? snippet
            : "[Compressible]\npublic partial class DocModel : Module\n{\n" + snippet + "\n}");
        var compilation = TestCompilation.Create(source);
        var (result, output) = TestCompilation.RunGenerator(compilation);
        // On the generator's output, so calls of generated members (Compress: CND0034, CND0035) bind as in a build.
        var all = TestCompilation.RunAnalyzer(output).Concat(result.Diagnostics).ToList();
        if (!all.Any(d => d.Id.StartsWith("CND", StringComparison.Ordinal)))
            Snapshot.AssertCompiles(output, result);
        return all;
    }

    private static string RepoRoot([System.Runtime.CompilerServices.CallerFilePath] string file = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    [GeneratedRegex("```csharp\\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex CodeBlock();
}
