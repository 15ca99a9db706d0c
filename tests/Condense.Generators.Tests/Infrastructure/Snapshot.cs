using System.Runtime.CompilerServices;
using System.Text;
using System.Text.RegularExpressions;
using DiffPlex;
using DiffPlex.DiffBuilder;
using DiffPlex.DiffBuilder.Model;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests.Infrastructure;

/// <summary>
/// Verify-style snapshots of generator output: <c>Snapshots/{Class}.{Method}#{HintName}.verified.cs</c> per
/// generated file and <c>Snapshots/{Class}.{Method}.verified.txt</c> for the generator's diagnostics.
/// On mismatch a <c>.received.</c> file is written beside the verified one and the test fails with a line diff;
/// <c>UPDATE_SNAPSHOTS=1</c> accepts the new output (never when <c>CI=true</c>).
/// </summary>
internal static partial class Snapshot
{
    /// <summary>Runs the generator on <paramref name="sources"/>, checks the output compiles, and compares it with the snapshots.</summary>
    public static GeneratorDriverRunResult VerifyGenerator(string[] sources, [CallerFilePath] string callerFile = "", [CallerMemberName] string method = "")
    {
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(sources));
        AssertCompiles(output, result);

        var actual = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string prefix = Path.GetFileNameWithoutExtension(callerFile) + "." + method;
        foreach (var source in result.Results.SelectMany(r => r.GeneratedSources))
            actual[prefix + "#" + Path.GetFileNameWithoutExtension(source.HintName) + ".verified.cs"] =
                "//HintName: " + source.HintName + "\n" + source.SourceText.ToString();
        var diagnostics = result.Diagnostics;
        if (!diagnostics.IsEmpty)
            actual[prefix + ".verified.txt"] = FormatDiagnostics(diagnostics);

        Compare(Path.Combine(Path.GetDirectoryName(callerFile)!, "Snapshots"), prefix, actual);
        return result;
    }

    /// <summary>Runs the analyzer and the generator and compares every Condense diagnostic with <c>{Class}.{Method}.verified.txt</c>.</summary>
    public static IReadOnlyList<Diagnostic> VerifyDiagnostics(string[] sources, [CallerFilePath] string callerFile = "", [CallerMemberName] string method = "")
    {
        var compilation = TestCompilation.Create(sources);
        var (result, _) = TestCompilation.RunGenerator(compilation);
        var diagnostics = TestCompilation.RunAnalyzer(compilation).Concat(result.Diagnostics)
            .Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal))
            .ToList();
        string prefix = Path.GetFileNameWithoutExtension(callerFile) + "." + method;
        var actual = new SortedDictionary<string, string>(StringComparer.Ordinal) { [prefix + ".verified.txt"] = FormatDiagnostics(diagnostics) };
        Compare(Path.Combine(Path.GetDirectoryName(callerFile)!, "Snapshots"), prefix, actual);
        return diagnostics;
    }

    /// <summary>The output compilation has no errors, and the generated files not even warnings.</summary>
    public static void AssertCompiles(Compilation output, GeneratorDriverRunResult result)
    {
        var generatedTrees = result.GeneratedTrees.ToHashSet();
        var problems = output.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error ||
                        (d.Severity == DiagnosticSeverity.Warning && generatedTrees.Contains(d.Location.SourceTree!)))
            .ToList();
        Assert.True(problems.Count == 0, "The generated code does not compile cleanly:\n" + string.Join("\n", problems));
    }

    public static string FormatDiagnostics(IEnumerable<Diagnostic> diagnostics)
    {
        var sb = new StringBuilder();
        foreach (var d in diagnostics
                     .OrderBy(d => d.Id, StringComparer.Ordinal)
                     .ThenBy(d => d.Location.SourceTree?.FilePath, StringComparer.Ordinal)
                     .ThenBy(d => d.Location.SourceSpan.Start))
        {
            var span = d.Location.GetLineSpan();
            sb.Append(d.Id).Append(' ').Append(d.Severity).Append(' ')
              .Append(Path.GetFileName(span.Path)).Append(' ')
              .Append($"({span.StartLinePosition.Line + 1},{span.StartLinePosition.Character + 1})-({span.EndLinePosition.Line + 1},{span.EndLinePosition.Character + 1})")
              .Append('\n')
              .Append("  Message: ").Append(d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)).Append('\n')
              .Append("  Category: ").Append(d.Descriptor.Category).Append('\n')
              .Append("  HelpLink: ").Append(d.Descriptor.HelpLinkUri).Append('\n');
        }
        return sb.ToString();
    }

    private static void Compare(string directory, string prefix, SortedDictionary<string, string> actual)
    {
        bool update = Environment.GetEnvironmentVariable("UPDATE_SNAPSHOTS") == "1" &&
                      !string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        Directory.CreateDirectory(directory);
        var existing = Directory.GetFiles(directory)
            .Select(f => Path.GetFileName(f))
            .Where(f => f.EndsWith(".verified.cs", StringComparison.Ordinal) || f.EndsWith(".verified.txt", StringComparison.Ordinal))
            .Where(f => f.StartsWith(prefix + "#", StringComparison.Ordinal) || f == prefix + ".verified.txt")
            .ToHashSet(StringComparer.Ordinal);

        var failures = new List<string>();
        foreach (var (name, text) in actual)
        {
            string normalized = Normalize(text);
            string path = Path.Combine(directory, name);
            string received = path.Replace(".verified.", ".received.", StringComparison.Ordinal);
            string? expected = existing.Contains(name) ? Normalize(File.ReadAllText(path)) : null;
            if (string.Equals(expected, normalized, StringComparison.Ordinal))
            {
                File.Delete(received);
                continue;
            }
            if (update)
            {
                File.WriteAllText(path, normalized);
                File.Delete(received);
                continue;
            }
            File.WriteAllText(received, normalized);
            failures.Add(expected is null
                ? $"{name}: no verified snapshot; the output was written to {Path.GetFileName(received)}"
                : $"{name} differs (output in {Path.GetFileName(received)}):\n{Diff(expected, normalized)}");
        }
        foreach (var stale in existing.Where(e => !actual.ContainsKey(e)).Order(StringComparer.Ordinal))
        {
            if (update) File.Delete(Path.Combine(directory, stale));
            else failures.Add($"{stale}: the generator no longer produces this file");
        }
        Assert.True(failures.Count == 0, string.Join("\n\n", failures) + "\n\nRun with UPDATE_SNAPSHOTS=1 to accept the new output.");
    }

    /// <summary>Line endings, BOM, trailing newline and the generator version are not part of a snapshot.</summary>
    internal static string Normalize(string text) =>
        VersionPattern().Replace(text.Replace("\r\n", "\n").TrimStart('\uFEFF').TrimEnd('\n'), "\"Condense.Generators\", \"{{VERSION}}\"");

    /// <summary>A unified-style diff: the first differing line, then changed lines with a little context.</summary>
    internal static string Diff(string expected, string actual)
    {
        var lines = new InlineDiffBuilder(new Differ()).BuildDiffModel(expected, actual, ignoreWhitespace: false).Lines;
        var sb = new StringBuilder();
        int firstChange = lines.FindIndex(l => l.Type is ChangeType.Inserted or ChangeType.Deleted);
        sb.Append("first difference at line ").Append(firstChange + 1).Append('\n');
        const int Context = 2, MaxLines = 60;
        int written = 0;
        for (int i = 0; i < lines.Count && written < MaxLines; i++)
        {
            bool near = false;
            for (int j = Math.Max(0, i - Context); j <= Math.Min(lines.Count - 1, i + Context); j++)
                near |= lines[j].Type is ChangeType.Inserted or ChangeType.Deleted;
            if (!near) continue;
            char mark = lines[i].Type switch { ChangeType.Inserted => '+', ChangeType.Deleted => '-', _ => ' ' };
            sb.Append(mark).Append(' ').Append(lines[i].Text).Append('\n');
            written++;
        }
        return sb.ToString();
    }

    [GeneratedRegex("\"Condense\\.Generators\", \"[0-9.]+\"")]
    private static partial Regex VersionPattern();
}
