using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Condense.Catalogue;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Condense.Generators.Parsing;

/// <summary>The resolved model and every problem found on the way, before the generator/analyzer split.</summary>
internal readonly record struct ModelResolution(ModelSpec Spec, IReadOnlyList<DiagnosticInfo> Problems);

/// <summary>
/// Resolves a <c>[Compressible]</c> class (symbols and syntax) into a <see cref="ModelSpec"/> and its problems.
/// The one place that reads the DSL: the generator and <c>CompressionPlanAnalyzer</c> both call it, so the
/// analyzer's diagnostics always describe exactly what the generator would plan.
/// </summary>
internal static partial class ModelParser
{
    /// <summary>Diagnostics that only the generator reports ("cannot generate"); the analyzer reports the rest.</summary>
    public static bool IsReportedByGenerator(DiagnosticDescriptor descriptor) =>
        descriptor.Id == DiagnosticDescriptors.GeneratedMemberConflictId;

    /// <param name="semanticModel">A semantic model of the compilation; one of a tree that declares <paramref name="type"/> saves a bind (other trees are bound as needed).</param>
    public static ModelResolution Resolve(INamedTypeSymbol type, SemanticModel semanticModel, CancellationToken cancellationToken)
    {
        var problems = new List<DiagnosticInfo>();
        var context = new ResolveContext(new SemanticModelCache(semanticModel), cancellationToken);

        var compressible = FindAttribute(type, KnownTypeNames.CompressibleAttribute);
        long maxBytes = NamedArgument(compressible, "MaxBytes") is { Value: long mb } ? mb : 0;
        double maxBits = NamedArgument(compressible, "MaxBitsPerWeight") is { Value: double bpw } ? bpw : 0;
        int policy = NamedArgument(compressible, "OnIncompatible") is { Value: int p } ? p : 0;

        CheckPartial(type, problems, cancellationToken);
        if (!DerivesFrom(type, KnownTypeNames.Module))
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModelNotModule, IdentifierLocation(type, cancellationToken), type.Name));

        context.Stack.Add(type);
        context.Order.Add(type);
        context.TopProblems = problems;
        var resolved = ResolveModelLayers(type, context, problems);
        var layers = resolved.Layers;

        bool hasParameterlessConstructor = !type.IsAbstract &&
            type.InstanceConstructors.Any(c => c.Parameters.Length == 0);
        CheckGeneratedMemberConflicts(type, hasParameterlessConstructor, resolved.ParameterMembers.Count > 0, problems, cancellationToken);

        int subspace = CheckModelSubspace(type, layers, problems, cancellationToken);
        var mixed = FindAttribute(type, KnownTypeNames.MixedPrecisionAttribute);
        var mixedBits = MixedPrecisionBits(mixed);
        double averageBits = NamedArgument(mixed, "AverageBits") is { Value: double ab } ? ab : 0;

        bool allKnown = layers.All(l => l.ShapeKnown);
        bool hasErrors = resolved.HasErrors || problems.Any(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error);
        if (!hasErrors && allKnown)
        {
            if (mixed is not null) CheckMixedPrecision(type, mixed, mixedBits, maxBytes, averageBits, layers, problems, cancellationToken);
            else CheckBudget(type, compressible, maxBytes, maxBits, layers, problems, cancellationToken);
        }
        else if (mixed is not null && mixedBits.Count == 0)
            CheckMixedPrecision(type, mixed, mixedBits, maxBytes, averageBits, layers, problems, cancellationToken);

        CheckModelOptions(type, layers, problems, cancellationToken);

        // An override that breaks many layers the same way is reported once, at the override, naming the first layer.
        var reported = new HashSet<(string, SyntaxTree?, Microsoft.CodeAnalysis.Text.TextSpan)>();
        problems.RemoveAll(p => p.Tree is not null && !reported.Add((p.Descriptor.Id, p.Tree, p.Span)));

        bool canGenerate = compressible is not null
            && !resolved.HasErrors
            && !problems.Any(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error);

        InvalidPlanSpec? invalidPlan = null;
        // A class that is not partial cannot be extended at all (CND0001); anything else gets throwing members.
        if (!canGenerate && compressible is not null && !problems.Any(p => p.Descriptor.Id == DiagnosticDescriptors.ModelNotPartialId))
            invalidPlan = new InvalidPlanSpec(
                InvalidPlanMessage(type, problems, resolved.FailedNested),
                DerivesFrom(type, KnownTypeNames.Module),
                new EquatableArray<string>(problems
                    .Where(p => p.Descriptor.Id == DiagnosticDescriptors.GeneratedMemberConflictId && p.Arguments.Count > 1)
                    .Select(p => p.Arguments[1])
                    .Distinct()));

        var spec = new ModelSpec(
            Namespace: type.ContainingNamespace is { IsGlobalNamespace: false } ns ? ns.ToDisplayString() : null,
            TypeName: type.Name,
            TypeParameters: TypeParameterList(type),
            HintName: HintName(type),
            Accessibility: AccessibilityText(type.DeclaredAccessibility),
            ContainingTypes: new EquatableArray<ContainingTypeSpec>(ContainingTypes(type)),
            MaxBytes: maxBytes,
            MaxBitsPerWeight: maxBits,
            OnIncompatible: policy,
            SubspaceDimension: subspace,
            MixedPrecisionBits: mixed is null ? EquatableArray<int>.Empty : new EquatableArray<int>(mixedBits),
            AverageBits: averageBits,
            HasParameterlessConstructor: hasParameterlessConstructor,
            Layers: new EquatableArray<LayerSpec>(layers.Select(l => l.ToSpec())),
            Members: new EquatableArray<MemberSpec>(resolved.Members),
            CanGenerate: canGenerate,
            Diagnostics: new EquatableArray<DiagnosticInfo>(problems.Where(p => IsReportedByGenerator(p.Descriptor))));
        return new ModelResolution(WithSubspace(spec, type, layers) with
        {
            InvalidPlan = invalidPlan,
            ParameterMembers = new EquatableArray<ParameterMemberSpec>(resolved.ParameterMembers),
        }, problems);
    }

    /// <summary>What the generated members of a model with an invalid plan throw: every build error, with its ID.</summary>
    private static string InvalidPlanMessage(INamedTypeSymbol type, List<DiagnosticInfo> problems, List<string> failedNested)
    {
        var errors = problems
            .Where(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error)
            .Select(p => p.Descriptor.Id + ": " + p.ToDiagnostic().GetMessage(CultureInfo.InvariantCulture))
            .Distinct()
            .ToList();
        if (errors.Count == 0 && failedNested.Count > 0)
            errors.Add("nested model " + string.Join(", ", failedNested) + (failedNested.Count == 1 ? " has" : " have") + " build errors of its own; fix the errors reported on it");
        if (errors.Count == 0) errors.Add("the plan has build errors");
        const int Shown = 5;
        string list = string.Join(" | ", errors.Take(Shown)) +
                      (errors.Count > Shown ? " | and " + (errors.Count - Shown).ToString(CultureInfo.InvariantCulture) + " more" : "");
        return "Model '" + type.Name + "' has no compression plan: the build reported " +
               (errors.Count == 1 ? "this error" : errors.Count.ToString(CultureInfo.InvariantCulture) + " errors") + ": " + list +
               ". Fix them and rebuild; this member exists only so that the errors above are the only ones reported.";
    }

    /// <summary>
    /// Resolves a model's layers: its members (nested models flattened), then its overrides, then mixed precision,
    /// then the catalogue checks, OnIncompatible and exact bytes of every layer the model itself configures.
    /// </summary>
    private static ModelLayers ResolveModelLayers(INamedTypeSymbol type, ResolveContext context, List<DiagnosticInfo> problems)
    {
        var cancellationToken = context.CancellationToken;
        var result = new ModelLayers();
        foreach (var member in type.GetMembers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            ResolveMember(type, member, context, result, problems);
        }

        var seen = new HashSet<string>(System.StringComparer.Ordinal);
        foreach (var layer in result.Layers)
            if (!seen.Add(layer.Path))
            {
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateLayerPath, IdentifierLocation(type, cancellationToken), type.Name, layer.Path, "two members produce this path; rename one of them"));
                result.HasErrors = true;
            }

        var compressible = FindAttribute(type, KnownTypeNames.CompressibleAttribute);
        int policy = NamedArgument(compressible, "OnIncompatible") is { Value: int p } ? p : 0;
        // With a nested member that could not be listed, "matches nothing" would only repeat that error.
        ApplyOverrides(type, result.Layers, reportUnmatched: !result.HasErrors, problems, cancellationToken);

        var mixedBits = MixedPrecisionBits(FindAttribute(type, KnownTypeNames.MixedPrecisionAttribute));
        int smallest = mixedBits.Where(KernelCatalogue.IsSupportedBits).DefaultIfEmpty(0).Min();
        if (smallest > 0)
            foreach (var layer in result.Layers)
                if (layer.Attributes is not null && !layer.HasAnyAttribute && layer.OverriddenBy is null)
                {
                    layer.Settings.MixedPrecision = true;
                    layer.Settings.Bits = smallest;
                }

        foreach (var layer in result.Layers)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!layer.Checked) CheckDeclaredOptions(layer, problems, cancellationToken);
            if (!layer.Checked) CheckLayer(layer, policy, problems, cancellationToken);
            result.HasErrors |= layer.HasError;
        }
        return result;
    }

    /// <summary>Runs the catalogue checks on one layer, applies OnIncompatible, and computes its exact bytes.</summary>
    private static void CheckLayer(LayerEntry layer, int policy, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        layer.Checked = true;
        var found = KernelCatalogue.CheckLayer(layer.Path, layer.Settings, layer.ShapeKnown ? layer.OutFeatures : 0, layer.ShapeKnown ? layer.InFeatures : 0, layer.HasBias);
        var handled = new List<string>();
        var settings = KernelCatalogue.ApplyIncompatiblePolicy(layer.Settings, found, policy, handled);
        int next = 0;
        foreach (var problem in found)
        {
            var location = ProblemLocation(layer, problem, cancellationToken);
            string? suggested = problem.Suggested?.ToString(CultureInfo.InvariantCulture);
            if (policy != 0 && problem.IsShapeDependent && !problem.IsWarning)
            {
                problems.Add(new DiagnosticInfo(DiagnosticDescriptors.IncompatibleLayerHandled, location?.SourceTree, location?.SourceSpan ?? default,
                    new EquatableArray<string>(new[] { problem.Message, policy == 1 ? "Skip" : "Adjust", "" }), suggested) with
                {
                    // The catalogue formatted the whole warning; keep its text exactly (the runtime uses the same).
                    Arguments = new EquatableArray<string>(SplitHandled(handled[next++], problem.Message, policy)),
                });
                continue;
            }
            if (!problem.IsWarning) layer.HasError = true;
            problems.Add(new DiagnosticInfo(DescriptorFor(problem.Check), location?.SourceTree, location?.SourceSpan ?? default,
                new EquatableArray<string>(problem.Arguments), suggested));
        }
        layer.Settings = settings;
        // An override resets HasError; a layer too large to allocate stays an error whatever its settings (CND0025).
        if (layer.TooLarge) layer.HasError = true;
        if (layer.ShapeKnown && !layer.HasError)
            (layer.BytesBefore, layer.BytesAfter) = KernelCatalogue.LayerBytes(settings.Technique, layer.OutFeatures, layer.InFeatures, layer.HasBias, settings);
    }

    /// <summary>The three arguments of CND0021 from the catalogue's formatted warning.</summary>
    private static string[] SplitHandled(string warning, string message, int policy)
    {
        string prefix = message + "; OnIncompatible = " + (policy == 1 ? "Skip" : "Adjust") + " ";
        return new[] { message, policy == 1 ? "Skip" : "Adjust", warning.StartsWith(prefix, System.StringComparison.Ordinal) ? warning.Substring(prefix.Length) : warning };
    }

    private static DiagnosticDescriptor DescriptorFor(LayerCheck check) => check switch
    {
        LayerCheck.Bits => DiagnosticDescriptors.UnsupportedBits,
        LayerCheck.GroupSize => DiagnosticDescriptors.UnsupportedGroupSize,
        LayerCheck.KeepDenseWithOther => DiagnosticDescriptors.KeepDenseWithCompression,
        LayerCheck.SparsityPattern => DiagnosticDescriptors.InvalidSparsityPattern,
        LayerCheck.SparsityFraction => DiagnosticDescriptors.InvalidSparsityFraction,
        LayerCheck.Rank => DiagnosticDescriptors.InvalidRank,
        LayerCheck.RankSavesNothing => DiagnosticDescriptors.RankSavesNothing,
        LayerCheck.Combination => DiagnosticDescriptors.NoKernelForCombination,
        LayerCheck.SameFamily => DiagnosticDescriptors.SameFamilyTwice,
        _ => DiagnosticDescriptors.InvalidSubspace,
    };

    /// <summary>Where a layer problem is reported: the argument it is about, on the attribute that set it (or the override).</summary>
    private static Location? ProblemLocation(LayerEntry layer, LayerProblem problem, CancellationToken cancellationToken)
    {
        if (layer.OverriddenBy is { } overrideAttribute)
        {
            string name = problem.Argument == "" && problem.Attribute == "Quantize" ? "Bits" : problem.Argument ?? "";
            return ArgumentLocation(overrideAttribute, name, cancellationToken);
        }
        var attributes = layer.Attributes!;
        string attributeName = problem.Attribute;
        // A conflict between two attributes is reported on the one declared later: removing it is the fix.
        if (problem.OtherAttribute is { } other && problem.Check != LayerCheck.KeepDenseWithOther &&
            Position(attributes, other, cancellationToken) > Position(attributes, attributeName, cancellationToken))
            attributeName = other;
        var attribute = AttributeNamed(attributes, attributeName);
        if (attribute is null) return null;
        if (problem.Check is LayerCheck.Combination or LayerCheck.SameFamily or LayerCheck.KeepDenseWithOther || problem.Argument is null)
            return AttributeLocation(attribute, cancellationToken);
        return problem.Argument == "" ? PositionalArgumentLocation(attribute, cancellationToken) : ArgumentLocation(attribute, problem.Argument, cancellationToken);
    }

    private static AttributeData? AttributeNamed(AttributeData?[] attributes, string name)
    {
        for (int i = 0; i < KnownTypeNames.LayerAttributes.Length; i++)
            if (KnownTypeNames.LayerAttributes[i].Name == name) return attributes[i];
        return null;
    }

    private static int Position(AttributeData?[] attributes, string name, CancellationToken cancellationToken) =>
        AttributeNamed(attributes, name)?.ApplicationSyntaxReference?.Span.Start ?? -1;

    private static List<int> MixedPrecisionBits(AttributeData? mixed)
    {
        var bits = new List<int>();
        if (mixed is { AttributeConstructor: not null } && mixed.ConstructorArguments.Length == 1 && mixed.ConstructorArguments[0].Kind == TypedConstantKind.Array)
            foreach (var value in mixed.ConstructorArguments[0].Values)
                if (value.Value is int b) bits.Add(b);
        return bits;
    }

    /// <summary>Applies every [Override] of the model to its flattened layers (CND0018 when one matches nothing, CND0022 on conflicts).</summary>
    private static void ApplyOverrides(INamedTypeSymbol type, List<LayerEntry> layers, bool reportUnmatched, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        var setBy = new Dictionary<(LayerEntry, string), AttributeData>();
        foreach (var attribute in type.GetAttributes())
        {
            if (attribute.AttributeClass is not { } c || !IsType(c, KnownTypeNames.OverrideAttribute)) continue;
            if (attribute.AttributeConstructor is null || attribute.ConstructorArguments.Length != 1 || attribute.ConstructorArguments[0].Value is not string text) continue;
            var location = PositionalArgumentLocation(attribute, cancellationToken);
            var pattern = PathPattern.Parse(text, out var syntaxProblem);
            if (pattern is null)
            {
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.OverrideMatchesNothing, location, text, type.Name, "is not a valid pattern: " + syntaxProblem));
                continue;
            }
            var bits = NamedArgument(attribute, "Bits");
            var groupSize = NamedArgument(attribute, "GroupSize");
            var symmetric = NamedArgument(attribute, "Symmetric");
            bool keepDense = NamedArgument(attribute, "KeepDense") is { Value: true };
            if (bits is null && groupSize is null && symmetric is null && !keepDense)
            {
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.OverrideMatchesNothing, AttributeLocation(attribute, cancellationToken), text, type.Name,
                    "sets nothing: give it Bits, GroupSize, Symmetric or KeepDense = true"));
                continue;
            }

            int matched = 0;
            foreach (var layer in layers)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!pattern.Matches(layer.Path)) continue;
                // GroupSize or Symmetric alone only change layers that are quantized.
                if (!keepDense && bits is null && !layer.Settings.Quantize) continue;
                matched++;
                foreach (var property in new[] { bits is null ? null : "Bits", groupSize is null ? null : "GroupSize", symmetric is null ? null : "Symmetric", keepDense ? "KeepDense" : null })
                {
                    if (property is null) continue;
                    if (setBy.TryGetValue((layer, property), out var earlier))
                        problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.OverrideConflict, location, layer.Path, (string)earlier.ConstructorArguments[0].Value!, text, property));
                    else setBy[(layer, property)] = attribute;
                }
                var s = layer.Settings.Clone();
                if (keepDense) s = new LayerSettings { KeepDense = true };
                else
                {
                    if (bits is { Value: int b })
                    {
                        if (!s.Quantize) { s.GroupSize = 0; s.Symmetric = true; }
                        s.Quantize = true;
                        s.Bits = b;
                    }
                    if (groupSize is { Value: int g }) s.GroupSize = g;
                    if (symmetric is { Value: bool sym }) s.Symmetric = sym;
                }
                layer.Settings = s;
                layer.OverriddenBy = attribute;
                layer.Checked = false;
                layer.HasError = false;
                layer.BytesBefore = layer.BytesAfter = 0;
            }
            if (matched == 0 && reportUnmatched)
            {
                var nearest = layers
                    .Select(l => l.Path)
                    .OrderBy(path => PathPattern.Distance(text, path))
                    .ThenBy(path => path, System.StringComparer.Ordinal)
                    .Take(3)
                    .ToList();
                string why = layers.Count == 0 ? "matches no layer: the model has no layers"
                    : "matches no " + (bits is null && !keepDense ? "quantized " : "") + "layer; the nearest paths are " + string.Join(", ", nearest) +
                      " ('*' is one segment, '**' any number, '[a..b]' an index range)";
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.OverrideMatchesNothing, location, text, type.Name, why));
            }
        }
    }

    /// <summary>[Subspace(d)] on the class covers every parameter of every layer (CND0020); returns d, or 0.</summary>
    private static int CheckModelSubspace(INamedTypeSymbol type, List<LayerEntry> layers, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        var attribute = FindAttribute(type, KnownTypeNames.SubspaceAttribute);
        if (attribute is null || PositionalInt(attribute) is not int dimension) return 0;
        long parameters = 0;
        foreach (var layer in layers)
        {
            if (!layer.ShapeKnown) { parameters = 0; break; }
            parameters += (long)layer.OutFeatures * layer.InFeatures + (layer.HasBias ? layer.OutFeatures : 0);
        }
        var problem = KernelCatalogue.SubspaceProblem("Model '" + type.Name + "'", dimension, parameters, "Subspace");
        if (problem is not null)
            problems.Add(new DiagnosticInfo(DiagnosticDescriptors.InvalidSubspace, attribute.ApplicationSyntaxReference?.SyntaxTree,
                PositionalArgumentLocation(attribute, cancellationToken)?.SourceSpan ?? default, new EquatableArray<string>(problem.Arguments), problem.Suggested?.ToString(CultureInfo.InvariantCulture)));
        return dimension;
    }

    /// <summary>[MixedPrecision]: candidate bits in the catalogue, a budget, reachable with the smallest bits (CND0016), not above dense (CND0017).</summary>
    private static void CheckMixedPrecision(INamedTypeSymbol type, AttributeData mixed, List<int> bits, long maxBytes, double averageBits, List<LayerEntry> layers, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        var location = AttributeLocation(mixed, cancellationToken);
        void Error(string text) => problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MixedPrecisionInfeasible, location, type.Name, text));
        var unsupported = bits.Where(b => !KernelCatalogue.IsSupportedBits(b)).ToList();
        if (bits.Count == 0) { Error("lists no candidate bit widths; use e.g. [MixedPrecision(2, 3, 4, 8)]"); return; }
        if (unsupported.Count > 0)
        {
            Error("lists bit width " + string.Join(", ", unsupported.Select(b => b.ToString(CultureInfo.InvariantCulture))) + ", which has no kernel; supported bit widths are " + string.Join(", ", KernelCatalogue.SupportedBits.Select(b => b.ToString(CultureInfo.InvariantCulture))));
            return;
        }
        if (maxBytes <= 0 && averageBits <= 0) { Error("needs a budget: set MaxBytes on [Compressible] or AverageBits on [MixedPrecision]"); return; }

        var candidates = layers.Where(l => l.Settings.MixedPrecision).ToList();
        if (candidates.Count == 0)
        {
            // Every layer it would decide has its bits from an [Override] (the lines a Compress run wrote back): the plan
            // is fixed, so it is checked like any other, and AverageBits over those layers.
            var decided = layers.Where(l => l.Attributes is { } own && own.All(a => a is null) && l.OverriddenBy is not null && l.Settings.Quantize).ToList();
            if (decided.Count == 0)
            {
                Error("has no layer to choose bits for: every layer already has a compression attribute or [KeepDense]; remove [MixedPrecision] or an attribute");
                return;
            }
            CheckBudget(type, FindAttribute(type, KnownTypeNames.CompressibleAttribute), maxBytes, 0, layers, problems, cancellationToken);
            if (averageBits > 0)
            {
                long decidedWeights = decided.Sum(l => (long)l.OutFeatures * l.InFeatures);
                long decidedBytes = decided.Sum(l => l.BytesAfter - (l.HasBias ? (long)l.OutFeatures * KernelCatalogue.Float32Bytes : 0));
                double average = decidedWeights == 0 ? 0 : decidedBytes * 8.0 / decidedWeights;
                if (average > averageBits)
                    Error("has AverageBits = " + BitsText(averageBits) + ", but the bits [Override] fixes on the layers it decides (" + string.Join(", ", decided.Select(l => l.Path)) +
                          ") store " + BitsText(average) + " bits per weight; lower their Bits, or delete the overrides so Compress chooses again");
            }
            return;
        }
        long minimum = layers.Sum(l => l.BytesAfter);
        long dense = layers.Sum(l => l.BytesBefore);
        if (maxBytes > 0 && minimum > maxBytes)
            Error("cannot reach MaxBytes = " + Bytes(maxBytes) + ": with every candidate layer at " + bits.Min().ToString(CultureInfo.InvariantCulture) +
                  " bits (one group per row) the plan still needs " + Bytes(minimum) + "; raise MaxBytes, add smaller bit widths, or compress more layers explicitly");
        else if (maxBytes > 0 && maxBytes >= dense)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MixedPrecisionBudgetNeedsNoCompression, location, type.Name,
                "has nothing to decide: MaxBytes = " + Bytes(maxBytes) + " is at or above the float32 size of the plan (" + Bytes(dense) + "); lower MaxBytes or remove [MixedPrecision]"));
        if (averageBits > 0)
        {
            long weights = candidates.Sum(l => (long)l.OutFeatures * l.InFeatures);
            long candidateBytes = candidates.Sum(l => l.BytesAfter - (l.HasBias ? (long)l.OutFeatures * KernelCatalogue.Float32Bytes : 0));
            double reachable = weights == 0 ? 0 : candidateBytes * 8.0 / weights;
            if (averageBits < reachable)
                Error("cannot reach AverageBits = " + BitsText(averageBits) + ": the smallest candidate, " + bits.Min().ToString(CultureInfo.InvariantCulture) +
                      " bits with one scale per row, already stores " + BitsText(reachable) + " bits per weight; raise AverageBits or add smaller bit widths");
            else if (averageBits >= 32)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MixedPrecisionBudgetNeedsNoCompression, location, type.Name,
                    "has nothing to decide: AverageBits = " + BitsText(averageBits) + " is at or above float32; lower AverageBits or remove [MixedPrecision]"));
        }
    }

    private static void CheckPartial(INamedTypeSymbol type, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        for (var current = type; current is not null; current = current.ContainingType)
        {
            bool isPartial = current.DeclaringSyntaxReferences.Any(r =>
                r.GetSyntax(cancellationToken) is TypeDeclarationSyntax declaration &&
                declaration.Modifiers.Any(SyntaxKind.PartialKeyword));
            if (!isPartial)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModelNotPartial, IdentifierLocation(current, cancellationToken), type.Name, current.Name));
        }
    }

    private static void CheckGeneratedMemberConflicts(INamedTypeSymbol type, bool emitsLoad, bool emitsParameterLayers, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        // ParameterLayers is generated only for a model with layers outside the plan.
        var names = emitsParameterLayers ? Emitting.ModelEmitter.GeneratedMemberNames.Concat(new[] { "ParameterLayers" }) : Emitting.ModelEmitter.GeneratedMemberNames;
        foreach (var name in names)
        {
            if (name == "Load" && !emitsLoad) continue;
            foreach (var member in type.GetMembers(name))
            {
                if (member.IsImplicitlyDeclared || IsGeneratedByCondense(member)) continue;
                var location = member.Locations.FirstOrDefault(l => l.IsInSource);
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GeneratedMemberConflict, location, type.Name, name));
                break;
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private static void CheckBudget(INamedTypeSymbol type, AttributeData? compressible, long maxBytes, double maxBits, List<LayerEntry> entries, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        var layers = entries.Select(e => e.ToSpec()).ToList();
        // Saturating sums: LINQ's Sum would throw on overflow (a crash of the analyzer), a plain += would wrap to a
        // negative total that passes every budget. Each layer is below KernelCatalogue.MaxWeightsPerLayer, so this is belt and braces.
        long planned = 0, weightCount = 0, weightBytes = 0;
        foreach (var l in layers)
        {
            planned = KernelCatalogue.SaturatingAdd(planned, l.BytesAfter);
            weightCount = KernelCatalogue.SaturatingAdd(weightCount, l.WeightCount);
            weightBytes = KernelCatalogue.SaturatingAdd(weightBytes, l.WeightBytesAfter);
        }
        double bitsPerWeight = weightCount == 0 ? 0 : weightBytes * 8.0 / weightCount;
        var largest = string.Join(", ", layers
            .OrderByDescending(l => l.BytesAfter)
            .ThenBy(l => l.Path, System.StringComparer.Ordinal)
            .Take(3)
            .Select(l => l.Path + " (" + l.TechniqueText + ", " + Bytes(l.BytesAfter) + ")"));

        if (maxBytes > 0 && planned > maxBytes)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BudgetExceeded,
                ArgumentLocation(compressible, "MaxBytes", cancellationToken),
                type.Name, Bytes(planned), "MaxBytes", Bytes(maxBytes), largest));

        if (maxBits > 0 && bitsPerWeight > maxBits)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BudgetExceeded,
                ArgumentLocation(compressible, "MaxBitsPerWeight", cancellationToken),
                type.Name, BitsText(bitsPerWeight) + " bits per weight", "MaxBitsPerWeight", BitsText(maxBits) + " bits per weight", largest));
    }

    private static string Bytes(long value) => value.ToString("N0", CultureInfo.InvariantCulture) + " bytes";

    private static string BitsText(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>
    /// A member this generator emitted (it carries <c>[GeneratedCode("Condense.Generators", ...)]</c>). The analyzer
    /// runs on the compilation that includes the generated code, where the model's Plan, Compress, ... exist: they are
    /// not the user's members (no CND0009 conflict, no unlisted layers), or every analyzer check behind "no errors yet"
    /// (budgets, calls of Compress) would be skipped in a real build.
    /// </summary>
    internal static bool IsGeneratedByCondense(ISymbol member)
    {
        foreach (var attribute in member.GetAttributes())
            if (attribute.AttributeClass is { Name: "GeneratedCodeAttribute" } &&
                attribute.ConstructorArguments.Length > 0 && attribute.ConstructorArguments[0].Value is "Condense.Generators")
                return true;
        return false;
    }

    internal static AttributeData? FindAttribute(ISymbol symbol, string metadataName)
    {
        foreach (var attribute in symbol.GetAttributes())
            if (attribute.AttributeClass is { } c && IsType(c, metadataName)) return attribute;
        return null;
    }

    internal static TypedConstant? NamedArgument(AttributeData? attribute, string name)
    {
        if (attribute is null) return null;
        foreach (var pair in attribute.NamedArguments)
            if (pair.Key == name) return pair.Value;
        return null;
    }

    /// <summary>
    /// Whether the type's definition displays as <paramref name="metadataName"/> (namespaces and containing types
    /// joined by '.', no type arguments), compared name by name: this runs several times per member, and
    /// ToDisplayString would build a string each time.
    /// </summary>
    internal static bool IsType(ITypeSymbol type, string metadataName)
    {
        if (type.TypeKind == TypeKind.Error || type is not INamedTypeSymbol named) return false;
        int end = metadataName.Length;
        ISymbol current = named.OriginalDefinition;
        while (true)
        {
            if (current is INamedTypeSymbol { Arity: > 0 }) return false;
            string name = current.Name;
            int start = end - name.Length;
            if (start < 0 || string.CompareOrdinal(metadataName, start, name, 0, name.Length) != 0) return false;
            var parent = current.ContainingSymbol;
            if (parent is null || parent is INamespaceSymbol { IsGlobalNamespace: true }) return start == 0;
            if (start == 0 || metadataName[start - 1] != '.' || parent is not (INamespaceSymbol or INamedTypeSymbol)) return false;
            end = start - 1;
            current = parent;
        }
    }

    private static bool DerivesFrom(INamedTypeSymbol type, string metadataName)
    {
        for (var current = type.BaseType; current is not null; current = current.BaseType)
            if (IsType(current, metadataName)) return true;
        return false;
    }

    private static Location? IdentifierLocation(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        foreach (var reference in type.DeclaringSyntaxReferences)
            if (reference.GetSyntax(cancellationToken) is BaseTypeDeclarationSyntax declaration)
                return declaration.Identifier.GetLocation();
        return type.Locations.FirstOrDefault();
    }

    /// <summary>The expression of a named attribute argument, else the attribute itself.</summary>
    private static Location? ArgumentLocation(AttributeData? attribute, string name, CancellationToken cancellationToken)
    {
        if (attribute?.ApplicationSyntaxReference?.GetSyntax(cancellationToken) is not AttributeSyntax syntax) return null;
        foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
            if (argument.NameEquals?.Name.Identifier.ValueText == name) return argument.Expression.GetLocation();
        return syntax.GetLocation();
    }

    /// <summary>The expression of the attribute's first positional argument, else the attribute itself.</summary>
    private static Location? PositionalArgumentLocation(AttributeData attribute, CancellationToken cancellationToken)
    {
        if (attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) is not AttributeSyntax syntax) return null;
        foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
            if (argument.NameEquals is null && argument.NameColon is null) return argument.Expression.GetLocation();
        return syntax.GetLocation();
    }

    private static Location? AttributeLocation(AttributeData attribute, CancellationToken cancellationToken) =>
        attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken).GetLocation();

    private static string TypeParameterList(INamedTypeSymbol type) =>
        type.TypeParameters.Length == 0 ? "" : "<" + string.Join(", ", type.TypeParameters.Select(p => p.Name)) + ">";

    private static string HintName(INamedTypeSymbol type)
    {
        var parts = new List<string>();
        for (var current = type; current is not null; current = current.ContainingType)
            parts.Insert(0, current.MetadataName.Replace('`', '_'));
        if (type.ContainingNamespace is { IsGlobalNamespace: false } ns) parts.Insert(0, ns.ToDisplayString());
        return string.Join(".", parts) + ".g.cs";
    }

    private static ContainingTypeSpec[] ContainingTypes(INamedTypeSymbol type)
    {
        var result = new List<ContainingTypeSpec>();
        for (var current = type.ContainingType; current is not null; current = current.ContainingType)
        {
            string keyword = current switch
            {
                { IsRecord: true, TypeKind: TypeKind.Struct } => "record struct",
                { IsRecord: true } => "record",
                { TypeKind: TypeKind.Struct } => "struct",
                { TypeKind: TypeKind.Interface } => "interface",
                _ => "class",
            };
            result.Insert(0, new ContainingTypeSpec(keyword, current.Name + TypeParameterList(current)));
        }
        return result.ToArray();
    }

    private static string AccessibilityText(Accessibility accessibility) => accessibility switch
    {
        Accessibility.Public => "public",
        Accessibility.Internal => "internal",
        Accessibility.Private => "private",
        Accessibility.Protected => "protected",
        Accessibility.ProtectedOrInternal => "protected internal",
        Accessibility.ProtectedAndInternal => "private protected",
        _ => "internal",
    };

    /// <summary>
    /// Members of a partial model may live in other trees than the one the pipeline handed us. Getting their
    /// semantic model costs a bind, so it happens only for split models, once per tree.
    /// </summary>
    private sealed class SemanticModelCache(SemanticModel first)
    {
        private readonly Dictionary<SyntaxTree, SemanticModel> models = new() { [first.SyntaxTree] = first };

        public SemanticModel For(SyntaxTree tree)
        {
            if (!models.TryGetValue(tree, out var model))
                models[tree] = model = first.Compilation.GetSemanticModel(tree);
            return model;
        }
    }
}
