using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using Condense.Generators.Models;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Condense.Generators.Tests;

/// <summary>The pipeline caches what it should, re-runs what it must, and never holds symbols or syntax.</summary>
public sealed class IncrementalityTests
{
    private static readonly string[] StepNames = typeof(TrackingNames)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.IsLiteral)
        .Select(f => (string)f.GetRawConstantValue()!)
        .ToArray();

    [Fact]
    public void SecondRunOnAClonedCompilationIsFullyCached()
    {
        var compilation = TestCompilation.Create(Sources.FashionMlp, Sources.SmallCnn);
        var driver = TestCompilation.CreateDriver().RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();

        var second = driver.RunGenerators(compilation.Clone()).GetRunResult().Results.Single();

        Assert.Equal(StepNames.Order(), second.TrackedSteps.Keys.Where(StepNames.Contains).Order());
        foreach (var name in StepNames)
        {
            var firstOutputs = first.TrackedSteps[name].SelectMany(s => s.Outputs).Select(o => o.Value).ToList();
            var secondOutputs = second.TrackedSteps[name].SelectMany(s => s.Outputs).ToList();
            Assert.Equal(firstOutputs, secondOutputs.Select(o => o.Value));
            Assert.All(secondOutputs, o => Assert.True(
                o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"step {name} was {o.Reason} on an identical compilation"));
        }
        Assert.All(second.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs),
            o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
    }

    [Fact]
    public void PipelineModelsHoldNoSymbolsSyntaxOrCompilation()
    {
        // A model with a generator diagnostic too, so DiagnosticInfo is walked as well.
        var clash = Sources.FashionMlp.Replace("[KeepDense]", "public void Save(string path) { }\n    [KeepDense]");
        var result = TestCompilation.CreateDriver()
            .RunGenerators(TestCompilation.Create(clash, Sources.ConstShapes, Sources.Nested))
            .GetRunResult().Results.Single();

        int walked = 0;
        foreach (var name in StepNames)
            foreach (var output in result.TrackedSteps[name].SelectMany(s => s.Outputs))
            {
                AssertPure(output.Value, name, new HashSet<object>(ReferenceEqualityComparer.Instance));
                walked++;
            }
        Assert.True(walked >= 9, $"only {walked} outputs were walked");
        Assert.Contains(result.TrackedSteps[TrackingNames.Diagnostics].SelectMany(s => s.Outputs),
            o => o.Value is EquatableArray<DiagnosticInfo> { IsEmpty: false });
    }

    [Fact]
    public void ThePurityWalkCatchesALocationInsideAnEquatableArray()
    {
        var tree = CSharpSyntaxTree.ParseText("class C { }");
        var polluted = new EquatableArray<Holder>([new Holder(tree.GetRoot().GetLocation())]);
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertPure(polluted, "test", new HashSet<object>(ReferenceEqualityComparer.Instance)));
    }

    private sealed record Holder(object Value);

    private static void AssertPure(object? value, string path, HashSet<object> seen)
    {
        if (value is null || value is string || value.GetType().IsPrimitive || value.GetType().IsEnum) return;
        Assert.False(value is Compilation or ISymbol or SyntaxNode or SemanticModel or Location,
            $"{path} holds a {value.GetType().Name}, which keeps a whole compilation alive and defeats caching");
        // A tree and a descriptor are compared by reference; DiagnosticInfo needs them to report at output time.
        if (value is SyntaxTree or DiagnosticDescriptor) return;
        if (!value.GetType().IsValueType && !seen.Add(value)) return;
        if (value is Array && !path.Contains("EquatableArray", StringComparison.Ordinal))
            Assert.Fail($"{path} is a bare array, which compares by reference; wrap it in EquatableArray<T>");
        if (value.GetType().IsGenericType && value.GetType().GetGenericTypeDefinition() == typeof(ImmutableArray<>))
            Assert.Fail($"{path} is an ImmutableArray, which compares by reference; use EquatableArray<T>");
        if (value is IEnumerable enumerable and not Array)
        {
            int i = 0;
            foreach (var item in enumerable) AssertPure(item, $"{path}[{i++}]", seen);
        }
        for (var type = value.GetType(); type is not null; type = type.BaseType)
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                AssertPure(field.GetValue(value), $"{path}.{type.Name}.{field.Name}", seen);
    }

    public static TheoryData<string> EditScenarios => ["UnrelatedFile", "Comment", "UnattributedMember", "AttributeArgument", "SecondModel"];

    [Theory]
    [MemberData(nameof(EditScenarios))]
    public void EditsReRunOnlyWhatTheyChange(string scenario)
    {
        var modelTree = CSharpSyntaxTree.ParseText(Sources.FashionMlp, TestCompilation.ParseOptions, path: "Source0.cs");
        var compilation = TestCompilation.Create(Sources.FashionMlp, "namespace Other; public static class Helper { public static int Two => 2; }");
        var driver = TestCompilation.CreateDriver().RunGenerators(compilation);

        Compilation edited = scenario switch
        {
            "UnrelatedFile" => Replace(compilation, 1, "namespace Other; public static class Helper { public static int Three => 3; }"),
            "Comment" => Replace(compilation, 0, Sources.FashionMlp.Replace("[KeepDense]", "// the output layer stays fp32\n    [KeepDense]")),
            "UnattributedMember" => Replace(compilation, 0, Sources.FashionMlp.Replace("[KeepDense]", "public int Epochs { get; set; }\n    [KeepDense]")),
            "AttributeArgument" => Replace(compilation, 0, Sources.FashionMlp.Replace("[Quantize(4)]", "[Quantize(8)]")),
            "SecondModel" => compilation.AddSyntaxTrees(CSharpSyntaxTree.ParseText(Sources.SmallCnn, TestCompilation.ParseOptions, path: "Source2.cs")),
            _ => throw new ArgumentOutOfRangeException(nameof(scenario)),
        };
        var result = driver.RunGenerators(edited).GetRunResult().Results.Single();

        // The reasons of the FashionMlp model's outputs (the first output of each step).
        var reasons = StepNames.ToDictionary(n => n, n => result.TrackedSteps[n].SelectMany(s => s.Outputs).First().Reason);
        var expected = scenario switch
        {
            // The model re-resolves (the compilation changed) but to an equal spec, so nothing downstream runs.
            "UnrelatedFile" or "Comment" or "UnattributedMember" => (Models: IncrementalStepRunReason.Unchanged, Diagnostics: IncrementalStepRunReason.Cached, Output: IncrementalStepRunReason.Cached),
            "AttributeArgument" => (Models: IncrementalStepRunReason.Modified, Diagnostics: IncrementalStepRunReason.Unchanged, Output: IncrementalStepRunReason.Modified),
            "SecondModel" => (Models: IncrementalStepRunReason.Unchanged, Diagnostics: IncrementalStepRunReason.Cached, Output: IncrementalStepRunReason.Cached),
            _ => throw new ArgumentOutOfRangeException(nameof(scenario)),
        };
        Assert.Equal(expected, (reasons[TrackingNames.Models], reasons[TrackingNames.Diagnostics], reasons[TrackingNames.Output]));

        if (scenario == "SecondModel")
            Assert.Contains(result.TrackedSteps[TrackingNames.Output].SelectMany(s => s.Outputs), o => o.Reason == IncrementalStepRunReason.New);
        if (scenario == "AttributeArgument")
            Assert.Contains("Bits8>(this.hidden4, 3)", result.GeneratedSources.Single().SourceText.ToString(), StringComparison.Ordinal);
    }

    private static Compilation Replace(Compilation compilation, int index, string text)
    {
        var old = compilation.SyntaxTrees.ElementAt(index);
        return compilation.ReplaceSyntaxTree(old, CSharpSyntaxTree.ParseText(text, TestCompilation.ParseOptions, path: old.FilePath));
    }

    [Fact]
    public void EquivalentSourcesGiveEqualButDistinctModels()
    {
        static ModelSpec Parse() => TestCompilation.CreateDriver()
            .RunGenerators(TestCompilation.Create(Sources.FashionMlp))
            .GetRunResult().Results.Single()
            .TrackedSteps[TrackingNames.Models].Single().Outputs.Single().Value as ModelSpec
            ?? throw new InvalidOperationException("no model");

        var first = Parse();
        var second = Parse();
        Assert.NotSame(first, second);
        Assert.Equal(first, second);
        Assert.Equal(first.GetHashCode(), second.GetHashCode());
        Assert.NotEqual(first, first with { Layers = new EquatableArray<LayerSpec>(first.Layers.Take(4)) });
    }
}
