using System.Collections.Concurrent;
using System.Text;
using System.Text.RegularExpressions;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>Half-typed code is the IDE's normal state: the generator and the analyzer must never throw on it.</summary>
public sealed class RobustnessTests
{
    private static readonly string[] Fragments =
    [
        "partial ", "static ", "[Quantize(", "[KeepDense]", ")", "(", "{", "}", "new(", "new Linear(", "Hidden", "\"", "//", "#if X\n", "=>", ";", "0", "-1",
        "2147483647", ",", "<T>", "[Compressible]", "GroupSize = ", "null!", "@", "[LowRank(", "[Sparsify(N = 2, M = ", "[Override(\"**\", Bits = 8)]",
        "[MixedPrecision(2, 4)]", "[Subspace(", "[]", "[new(), new()]", "new Block[", ".mlp", "[0..", "**", "readonly Block[] blocks = new Block[3];",
        "Linear[] ", "{ new(4, 8), new(4, 8) }", "new Linear[", "Layer ", "List<Linear> ", "new(46341, 46341)", "new(int.MaxValue, int.MaxValue)", "[Compressible] partial class Holder : Module { }",
    ];

    /// <summary>Issue 8 section 2's shapes: duplicate [Compressible], a cycle, arrays of layers, layers Condense cannot list, a layer too large.</summary>
    private const string LayerHolders = """
        using System.Collections.Generic;
        using Condense;
        using Condense.Nn;

        public sealed class Norm : Layer
        {
            public override IReadOnlyList<Parameter> Parameters => [];
            public override void ResetParameters(Rng rng) { }
        }

        [Compressible]
        public partial class Ring : Module
        {
            readonly Linear x = new(4, 4);
            readonly Chain chain = new();
        }

        [Compressible]
        public partial class Chain : Module
        {
            readonly Ring? back;
        }

        [Compressible(MaxBytes = 1024)]
        [Override("heads[1]", Bits = 8)]
        public partial class Holder : Module
        {
            const int Count = 2;
            readonly Linear[] heads = { new(16, 4), new Linear(16, 4) };
            [Quantize(8)] readonly Linear[] late = new Linear[Count];
            readonly Conv2d[] convs = [new(1, 2, 3)];
            readonly Norm norm = new();
            readonly List<Linear> list = new();
            readonly Linear huge = new(46341, 46341);
            readonly Ring[] rings = new Ring[] { new(), new() };
        }

        [Compressible]
        public partial class Holder
        {
        }
        """;

    /// <summary>Wrong argument types for the attributes: the compiler rejects them, the analyzers must not crash.</summary>
    private static readonly string[] WrongArguments = ["\"4\"", "4.5", "true", "null", "int.MaxValue", "-2147483648", "(short)4", "typeof(int)", "new[] { 1 }", "M", "default"];

    /// <summary>Attributes placed on members they do not belong to.</summary>
    private static readonly string[] MisplacedAttributes =
    [
        "[Quantize(4)]", "[KeepDense]", "[LowRank(4)]", "[LowRankCorrection(2)]", "[Sparsify(0.5)]", "[Sparsify(N = 2, M = 4)]", "[Subspace(8)]",
        "[Override(\"*\", Bits = 8)]", "[MixedPrecision(2, 4, 8)]", "[Compressible]",
    ];

    private static readonly string[] Sources =
    [
        Infrastructure.Sources.FashionMlp + "\n" + Infrastructure.Sources.SmallCnn.Replace("namespace Samples.Vision;", "", StringComparison.Ordinal),
        Infrastructure.Sources.DesignMlp,
        Infrastructure.Sources.VisionCnn,
        Infrastructure.Sources.Transformer,
        LayerHolders,
    ];

    [Fact]
    public void MutatedSourcesNeverCrashTheGeneratorOrTheAnalyzer()
    {
        var mutants = new List<(string What, string Text)>();
        for (int s = 0; s < Sources.Length; s++)
            mutants.AddRange(Mutate(Sources[s], new Random(20261122 + s)).Select(m => ($"source {s}, {m.What}", m.Text)));
        Assert.True(mutants.Count >= 2000, $"only {mutants.Count} mutants");

        var failures = new ConcurrentQueue<string>();
        // Mutants are independent: two at a time keeps the run short on a shared 2-core machine.
        Parallel.ForEach(mutants, new ParallelOptions { MaxDegreeOfParallelism = Environment.GetEnvironmentVariable("CONDENSE_MUTANT_LOG") is null ? 2 : 1 }, mutant =>
        {
            if (Environment.GetEnvironmentVariable("CONDENSE_MUTANT_LOG") is { } log) File.AppendAllText(log, mutant.What + "\n");
            try
            {
                var compilation = TestCompilation.Create(mutant.Text);
                var (result, output) = TestCompilation.RunGenerator(compilation);
                var crashes = result.Diagnostics.Where(d => d.Id is "CS8784" or "CS8785").ToList();
                if (crashes.Count > 0) throw new InvalidOperationException(string.Join("; ", crashes));
                var analyzerCrashes = TestCompilation.RunAnalyzer(compilation).Where(d => d.Id == "AD0001").ToList();
                if (analyzerCrashes.Count > 0) throw new InvalidOperationException(string.Join("; ", analyzerCrashes));
            }
            catch (Exception e)
            {
                failures.Enqueue(mutant.What + ": " + e.GetType().Name + ": " + e.Message);
            }
        });
        Assert.True(failures.IsEmpty, $"{mutants.Count} mutants; these crashed:\n{string.Join("\n", failures.Take(20))}");
    }

    private static IEnumerable<(string What, string Text)> Mutate(string source, Random random)
    {
        for (int i = 0; i < 130; i++)
        {
            int at = (int)((long)source.Length * i / 130);
            yield return ($"truncated at {at}", source[..at]);
        }
        for (int i = 0; i < 100; i++)
        {
            int at = random.Next(source.Length), length = random.Next(1, 20);
            yield return ($"deleted {length} at {at}", source.Remove(at, Math.Min(length, source.Length - at)));
        }
        var tokens = Regex.Matches(source, @"\w+|[^\w\s]");
        for (int i = 0; i < 60; i++)
        {
            var token = tokens[random.Next(tokens.Count)];
            yield return ($"deleted token '{token.Value}' at {token.Index}", source.Remove(token.Index, token.Length));
        }
        for (int i = 0; i < 100; i++)
        {
            int at = random.Next(source.Length + 1);
            var fragment = Fragments[random.Next(Fragments.Length)];
            yield return ($"inserted '{fragment}' at {at}", source.Insert(at, fragment));
        }
        var digits = Regex.Matches(source, "[0-9]+");
        for (int i = 0; i < 50; i++)
        {
            var match = digits[random.Next(digits.Count)];
            string replacement = new[] { "0", "-3", "1", "7", "99999", "2147483647", "int.MaxValue", "1.5" }[random.Next(8)];
            yield return ($"replaced '{match.Value}' at {match.Index} with {replacement}", source.Remove(match.Index, match.Length).Insert(match.Index, replacement));
        }
        // Wrong argument types: the first argument of an attribute, or a named argument's value.
        var arguments = Regex.Matches(source, @"(?<=\[(Quantize|LowRank|LowRankCorrection|Sparsify|Subspace|Override|MixedPrecision|Compressible)\()[^,\)\]]+|(?<=(GroupSize|Bits|N|M|MaxBytes|MaxBitsPerWeight|Symmetric|OnIncompatible) = )[^,\)\]]+");
        for (int i = 0; i < 40 && arguments.Count > 0; i++)
        {
            var match = arguments[random.Next(arguments.Count)];
            string replacement = WrongArguments[random.Next(WrongArguments.Length)];
            yield return ($"argument '{match.Value}' at {match.Index} became {replacement}", source.Remove(match.Index, match.Length).Insert(match.Index, replacement));
        }
        // Missing usings.
        yield return ("without 'using Condense;'", source.Replace("using Condense;\n", "", StringComparison.Ordinal));
        yield return ("without 'using Condense.Nn;'", source.Replace("using Condense.Nn;\n", "", StringComparison.Ordinal));
        yield return ("without any using", source.Replace("using Condense;\n", "", StringComparison.Ordinal).Replace("using Condense.Nn;\n", "", StringComparison.Ordinal));
        // Attributes on the wrong members: before the class, a constant, a constructor, a method, another attribute's member.
        var anchors = Regex.Matches(source, @"(?m)^\s*(public |private |internal |static |const |readonly |sealed |partial |\[)");
        for (int i = 0; i < 22 && anchors.Count > 0; i++)
        {
            var anchor = anchors[random.Next(anchors.Count)];
            string attribute = MisplacedAttributes[random.Next(MisplacedAttributes.Length)];
            int at = anchor.Index + anchor.Length - anchor.Value.TrimStart().Length;
            yield return ($"inserted '{attribute}' at {at}", source.Insert(at, attribute + " "));
        }
        yield return ("attribute on a method", source.Replace("}\n", "    [Quantize(4)] public int Method() => 1;\n}\n", StringComparison.Ordinal));
    }
}
