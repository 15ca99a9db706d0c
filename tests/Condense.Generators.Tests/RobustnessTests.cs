using System.Text;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>Half-typed code is the IDE's normal state: the generator and the analyzer must never throw on it.</summary>
public sealed class RobustnessTests
{
    private static readonly string[] Fragments =
        ["partial ", "static ", "[Quantize(", "[KeepDense]", ")", "(", "{", "}", "new(", "new Linear(", "Hidden", "\"", "//", "#if X\n", "=>", ";", "0", "-1", "2147483647", ",", "<T>", "[Compressible]", "GroupSize = ", "null!", "@"];

    [Fact]
    public void MutatedSourcesNeverCrashTheGeneratorOrTheAnalyzer()
    {
        string source = Sources.FashionMlp + "\n" + Sources.SmallCnn.Replace("namespace Samples.Vision;", "");
        var random = new Random(20261122);
        var mutants = new List<(string What, string Text)>();

        for (int i = 0; i < 120; i++)
        {
            int at = (int)((long)source.Length * i / 120);
            mutants.Add(($"truncated at {at}", source[..at]));
        }
        for (int i = 0; i < 100; i++)
        {
            int at = random.Next(source.Length), length = random.Next(1, 20);
            mutants.Add(($"deleted {length} at {at}", source.Remove(at, Math.Min(length, source.Length - at))));
        }
        for (int i = 0; i < 100; i++)
        {
            int at = random.Next(source.Length + 1);
            var fragment = Fragments[random.Next(Fragments.Length)];
            mutants.Add(($"inserted '{fragment}' at {at}", source.Insert(at, fragment)));
        }
        for (int i = 0; i < 60; i++)
        {
            var digits = System.Text.RegularExpressions.Regex.Matches(source, "[0-9]+");
            var match = digits[random.Next(digits.Count)];
            string replacement = new[] { "0", "-3", "1", "7", "99999", "2147483647", "int.MaxValue", "1.5" }[random.Next(8)];
            mutants.Add(($"replaced '{match.Value}' at {match.Index} with {replacement}",
                source.Remove(match.Index, match.Length).Insert(match.Index, replacement)));
        }

        var failures = new StringBuilder();
        foreach (var (what, text) in mutants)
        {
            try
            {
                var compilation = TestCompilation.Create(text);
                var (result, output) = TestCompilation.RunGenerator(compilation);
                var crashes = output.GetDiagnostics().Concat(result.Diagnostics).Where(d => d.Id is "CS8784" or "CS8785").ToList();
                if (crashes.Count > 0) throw new InvalidOperationException(string.Join("; ", crashes));
                var analyzerCrashes = TestCompilation.RunAnalyzer(compilation).Where(d => d.Id == "AD0001").ToList();
                if (analyzerCrashes.Count > 0) throw new InvalidOperationException(string.Join("; ", analyzerCrashes));
            }
            catch (Exception e)
            {
                failures.Append(what).Append(": ").Append(e.GetType().Name).Append(": ").Append(e.Message).Append('\n');
            }
        }
        Assert.True(failures.Length == 0, $"{mutants.Count} mutants; these crashed:\n{failures}");
    }
}
