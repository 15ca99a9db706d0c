using System.Reflection;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Tests;

/// <summary>
/// No declared option is silently ignored: every public constructor parameter and settable property of every
/// attribute in the runtime assembly has evidence here, either a pair of models differing only in that value whose
/// generated plans differ, or a model the build rejects with a diagnostic because of that value. A new attribute
/// member without evidence fails <see cref="EveryAttributeMemberHasEvidence"/>.
/// </summary>
public sealed class DeclaredOptionsTests
{
    private abstract record Evidence;

    /// <summary>Both models build without errors and their generated code (plan, Compress, schedule) differs.</summary>
    private sealed record ChangesPlan(string Before, string After) : Evidence;

    /// <summary>The accepted model builds without errors (null: the attribute is refused whatever its values); the refused one reports <paramref name="Id"/>.</summary>
    private sealed record Refused(string? Accepted, string Rejected, string Id) : Evidence;

    private const string Usings = "using Condense;\nusing Condense.Nn;\n";

    /// <summary>A model with two 64x64 layers and a 96-input one; {M} = model attributes, {A} and {B} the first two layers' attributes.</summary>
    private static string Model(string model, string a, string b = "", string c = "") => Usings + $$"""
        [Compressible{{(model.StartsWith('(') ? model : "")}}]
        {{(model.StartsWith('(') ? "" : model)}}
        public partial class M : Module
        {
            {{a}} readonly Linear a = new(64, 64);
            {{b}} readonly Linear b = new(64, 64);
            {{c}} readonly Linear c = new(96, 64);
        }
        """;

    private static Evidence Layer(string before, string after) => new ChangesPlan(Model("", before), Model("", after));

    private static readonly Dictionary<string, Evidence> Table = new(StringComparer.Ordinal)
    {
        ["Compressible.MaxBytes"] = new ChangesPlan(Model("(MaxBytes = 100000)", "[Quantize(4)]"), Model("(MaxBytes = 200000)", "[Quantize(4)]")),
        ["Compressible.MaxBitsPerWeight"] = new ChangesPlan(Model("(MaxBitsPerWeight = 25)", "[Quantize(4)]"), Model("(MaxBitsPerWeight = 30)", "[Quantize(4)]")),
        ["Compressible.OnIncompatible"] = new ChangesPlan(
            Model("(OnIncompatible = IncompatiblePolicy.Skip)", "", "", "[Quantize(4, GroupSize = 64)]"),
            Model("(OnIncompatible = IncompatiblePolicy.Adjust)", "", "", "[Quantize(4, GroupSize = 64)]")),
        ["Quantize.bits"] = Layer("[Quantize(4)]", "[Quantize(8)]"),
        ["Quantize.GroupSize"] = Layer("[Quantize(4, GroupSize = 16)]", "[Quantize(4, GroupSize = 32)]"),
        ["Quantize.Symmetric"] = Layer("[Quantize(4, Symmetric = true)]", "[Quantize(4, Symmetric = false)]"),
        ["Quantize.Method"] = Layer("[Quantize(4, Method = QuantizationMethod.RoundToNearest)]", "[Quantize(4, Method = QuantizationMethod.Gptq)]"),
        ["LowRank.rank"] = Layer("[LowRank(4)]", "[LowRank(8)]"),
        ["LowRank.Method"] = Layer("[LowRank(4, Method = LowRankMethod.Svd)]", "[LowRank(4, Method = LowRankMethod.ActivationAwareSvd)]"),
        ["LowRankCorrection.rank"] = Layer("[Quantize(4), LowRankCorrection(2)]", "[Quantize(4), LowRankCorrection(4)]"),
        ["Sparsify.fraction"] = Layer("[Sparsify(0.5)]", "[Sparsify(0.7)]"),
        ["Sparsify.N"] = Layer("[Sparsify(N = 2, M = 4)]", "[Sparsify(N = 1, M = 4)]"),
        ["Sparsify.M"] = Layer("[Sparsify(N = 2, M = 4)]", "[Sparsify(N = 2, M = 8)]"),
        ["Sparsify.Criterion"] = new Refused(Model("", "[Sparsify(0.5, Criterion = SparsityCriterion.Magnitude)]"), Model("", "[Sparsify(0.5, Criterion = (SparsityCriterion)1)]"), "CND0028"),
        ["Sparsify.StartStep"] = Layer("[Sparsify(0.5, StartStep = 0, EndStep = 100, Frequency = 10)]", "[Sparsify(0.5, StartStep = 20, EndStep = 100, Frequency = 10)]"),
        ["Sparsify.EndStep"] = Layer("[Sparsify(0.5, StartStep = 0, EndStep = 100, Frequency = 10)]", "[Sparsify(0.5, StartStep = 0, EndStep = 200, Frequency = 10)]"),
        ["Sparsify.Frequency"] = Layer("[Sparsify(0.5, StartStep = 0, EndStep = 100, Frequency = 10)]", "[Sparsify(0.5, StartStep = 0, EndStep = 100, Frequency = 20)]"),
        ["Sparsify.Scope"] = new ChangesPlan(
            Model("", "[Sparsify(0.5, Scope = SparsityScope.Layer)]", "[Sparsify(0.5, Scope = SparsityScope.Layer)]"),
            Model("", "[Sparsify(0.5, Scope = SparsityScope.Global)]", "[Sparsify(0.5, Scope = SparsityScope.Global)]")),
        ["Sparsify.LayerFloor"] = new ChangesPlan(
            Model("", "[Sparsify(0.5, Scope = SparsityScope.Global, LayerFloor = 0.01)]", "[Sparsify(0.5, Scope = SparsityScope.Global)]"),
            Model("", "[Sparsify(0.5, Scope = SparsityScope.Global, LayerFloor = 0.05)]", "[Sparsify(0.5, Scope = SparsityScope.Global)]")),
        ["Override.pattern"] = new ChangesPlan(Model("[Override(\"a\", Bits = 8)]", "[Quantize(4)]", "[Quantize(4)]"), Model("[Override(\"b\", Bits = 8)]", "[Quantize(4)]", "[Quantize(4)]")),
        ["Override.Bits"] = new ChangesPlan(Model("[Override(\"a\", Bits = 8)]", "[Quantize(4)]"), Model("[Override(\"a\", Bits = 2)]", "[Quantize(4)]")),
        ["Override.GroupSize"] = new ChangesPlan(Model("[Override(\"a\", GroupSize = 16)]", "[Quantize(4)]"), Model("[Override(\"a\", GroupSize = 32)]", "[Quantize(4)]")),
        ["Override.Symmetric"] = new ChangesPlan(Model("[Override(\"a\", Symmetric = true)]", "[Quantize(4)]"), Model("[Override(\"a\", Symmetric = false)]", "[Quantize(4)]")),
        ["Override.KeepDense"] = new ChangesPlan(Model("[Override(\"a\", Bits = 8, KeepDense = false)]", "[Quantize(4)]"), Model("[Override(\"a\", Bits = 8, KeepDense = true)]", "[Quantize(4)]")),
        // The candidates reach the plan (smallest bits, candidate list); the budget reaches it as averageBits.
        ["MixedPrecision.bits"] = new ChangesPlan(Model("(MaxBytes = 20000)] [MixedPrecision(2, 4, 8)", ""), Model("(MaxBytes = 20000)] [MixedPrecision(3, 4, 8)", "")),
        ["MixedPrecision.AverageBits"] = new ChangesPlan(Model("[MixedPrecision(4, 8, AverageBits = 6)]", ""), Model("[MixedPrecision(4, 8, AverageBits = 7)]", "")),
        ["Subspace.dimension"] = Layer("[Subspace(100)]", "[Subspace(200)]"),
        ["Subspace.Projection"] = Layer("[Subspace(100, Projection = SubspaceProjection.Sparse)]", "[Subspace(100, Projection = SubspaceProjection.Fastfood)]"),
        ["Subspace.Seed"] = Layer("[Subspace(100, Seed = 7)]", "[Subspace(100, Seed = 8)]"),
        ["Subspace.OtherLayers"] = Layer("[Subspace(100, OtherLayers = Condense.Subspace.UncoveredLayers.Frozen)]", "[Subspace(100, OtherLayers = Condense.Subspace.UncoveredLayers.Trained)]"),
    };

    /// <summary>Every public constructor parameter and settable property of the runtime's attributes, as <c>Quantize.GroupSize</c>.</summary>
    private static SortedSet<string> DeclaredMembers()
    {
        var members = new SortedSet<string>(StringComparer.Ordinal);
        var attributes = typeof(Condense.CompressibleAttribute).Assembly.GetExportedTypes()
            .Where(t => t.Namespace == "Condense" && typeof(Attribute).IsAssignableFrom(t));
        foreach (var type in attributes)
        {
            string name = type.Name.EndsWith("Attribute", StringComparison.Ordinal) ? type.Name[..^"Attribute".Length] : type.Name;
            foreach (var constructor in type.GetConstructors())
                foreach (var parameter in constructor.GetParameters())
                    members.Add(name + "." + parameter.Name);
            foreach (var property in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
                if (property.SetMethod is { IsPublic: true } && property.DeclaringType == type)
                    members.Add(name + "." + property.Name);
        }
        return members;
    }

    [Fact]
    public void EveryAttributeMemberHasEvidence()
    {
        var declared = DeclaredMembers();
        Assert.True(declared.Count >= 25, $"only {declared.Count} members found: the reflection is not looking where the attributes are");
        var missing = declared.Where(m => !Table.ContainsKey(m)).ToList();
        Assert.True(missing.Count == 0,
            "No evidence that these attribute members change the plan or the weights, or are reported: " + string.Join(", ", missing) +
            ". Add a pair of models whose generated plans differ, or a model the build rejects, to DeclaredOptionsTests.Table.");
        var stale = Table.Keys.Where(k => !declared.Contains(k)).ToList();
        Assert.True(stale.Count == 0, "The table has evidence for members that no longer exist: " + string.Join(", ", stale));
    }

    public static TheoryData<string> Members => [.. Table.Keys.Order(StringComparer.Ordinal)];

    [Theory]
    [MemberData(nameof(Members))]
    public void EvidenceHolds(string member)
    {
        switch (Table[member])
        {
            case ChangesPlan(var before, var after):
                Assert.NotEqual(before, after);
                Assert.NotEqual(Generate(before, member), Generate(after, member));
                break;
            case Refused(var accepted, var rejected, var id):
                if (accepted is not null) Generate(accepted, member);
                var reported = Diagnose(rejected);
                Assert.True(reported.Any(d => d.Id == id && d.Severity == DiagnosticSeverity.Error),
                    $"{member}: expected error {id}, got: {string.Join("; ", reported)}");
                break;
        }
    }

    /// <summary>The generated code of a model that must build without errors.</summary>
    private static string Generate(string source, string member)
    {
        var errors = Diagnose(source).Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, $"{member}: the model should build, but: {string.Join("; ", errors)}\n{source}");
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(source));
        Snapshot.AssertCompiles(output, result);
        return string.Join("\n", result.GeneratedTrees.Select(t => t.ToString()));
    }

    private static List<Diagnostic> Diagnose(string source)
    {
        var compilation = TestCompilation.Create(source);
        var compile = compilation.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(compile.Count == 0, "The test source itself does not compile:\n" + string.Join("\n", compile) + "\n" + source);
        var (result, _) = TestCompilation.RunGenerator(compilation);
        return [.. TestCompilation.RunAnalyzer(compilation).Concat(result.Diagnostics).Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal))];
    }
}
