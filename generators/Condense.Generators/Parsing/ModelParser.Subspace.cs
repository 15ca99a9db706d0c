using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Parsing;

/// <summary>
/// [Subspace]: what the generated <c>Reparameterize()</c> needs (the class's options, the model's forward pass) and the
/// checks of issue 9 beyond CND0020: d above half of D (CND0030), the memory of a cached Dense projection (CND0031),
/// the combinations refused on one layer (CND0032) and conflicting declarations (CND0033).
/// </summary>
internal static partial class ModelParser
{
    /// <summary>
    /// Bytes of a cached Dense projection (D x d float32) above which CND0031 warns: 256 MiB. Sparse and Fastfood
    /// keep O(D + d) whatever d, so they are the fix.
    /// </summary>
    public const long DenseProjectionWarningBytes = 256L * 1024 * 1024;

    /// <summary>The members the emitter adds to a model with [Subspace] (CND0009 when the model declares one).</summary>
    public static readonly string[] SubspaceMemberNames = { "SubspaceSpecs", "SubspaceOtherLayers", "Reparameterize", "LoadSubspace" };

    /// <summary>The class's [Subspace] options and whether the model has a forward pass the generated code can call.</summary>
    private static ModelSpec WithSubspace(ModelSpec spec, INamedTypeSymbol type, List<LayerEntry> layers)
    {
        var attribute = FindAttribute(type, KnownTypeNames.SubspaceAttribute);
        bool othersTrained = layers.Any(l => l.Settings.Subspace && l.SubspaceOtherLayers == 1);
        return spec with
        {
            SubspaceProjection = SubspaceProjectionOf(attribute),
            SubspaceSeed = SubspaceSeedOf(attribute),
            SubspaceOtherLayersTrained = attribute is null && othersTrained,
            HasForward = HasForwardMethod(type),
        };
    }

    /// <summary>An instance <c>Tensor Forward(Tensor)</c> on the model or a base class (not private there).</summary>
    private static bool HasForwardMethod(INamedTypeSymbol type)
    {
        for (var current = type; current is not null; current = current.BaseType)
            foreach (var member in current.GetMembers("Forward"))
                if (member is IMethodSymbol { IsStatic: false, Parameters.Length: 1, MethodKind: MethodKind.Ordinary } method
                    && (SymbolEqualityComparer.Default.Equals(current, type) || method.DeclaredAccessibility != Accessibility.Private)
                    && IsType(method.ReturnType, KnownTypeNames.Tensor)
                    && IsType(method.Parameters[0].Type, KnownTypeNames.Tensor)
                    && method.Parameters[0].RefKind == RefKind.None)
                    return true;
        return false;
    }

    /// <summary>CND0030..CND0033 for the class's [Subspace] and the layers the model itself declares.</summary>
    private static void CheckSubspaces(INamedTypeSymbol type, List<LayerEntry> layers, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        var classAttribute = FindAttribute(type, KnownTypeNames.SubspaceAttribute);
        var annotated = layers.Where(l => l.Settings.Subspace).ToList();
        if (classAttribute is null && annotated.Count == 0) return;

        foreach (var name in SubspaceMemberNames)
            foreach (var member in type.GetMembers(name))
            {
                if (member.IsImplicitlyDeclared || IsGeneratedByCondense(member)) continue;
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GeneratedMemberConflict, member.Locations.FirstOrDefault(l => l.IsInSource), type.Name, name));
                break;
            }

        if (classAttribute is not null)
        {
            if (annotated.Count > 0)
            {
                // A global subspace already covers every layer: a layer's own subspace would own its parameters twice.
                var first = annotated[0];
                var where = first.Attributes?[5] is { } own ? AttributeLocation(own, cancellationToken) : AttributeNameLocation(classAttribute, cancellationToken);
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceConflict, where, type.Name,
                    "[Subspace] on the class is one global subspace over every layer, and layer" + (annotated.Count == 1 ? " '" : "s '") +
                    string.Join("', '", annotated.Select(l => l.Path)) + "' declare" + (annotated.Count == 1 ? "s" : "") +
                    " a subspace of " + (annotated.Count == 1 ? "its" : "their") + " own; keep one: remove [Subspace] from the class, or from the layers"));
                return;
            }
            if (NamedArgument(classAttribute, "OtherLayers") is not null)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceConflict, ArgumentLocation(classAttribute, "OtherLayers", cancellationToken), type.Name,
                    "OtherLayers says what happens to the layers outside every per-layer subspace, but [Subspace] on the class covers every layer, so no layer is left; remove OtherLayers"));
            if (PositionalInt(classAttribute) is int d && layers.All(l => l.ShapeKnown))
                CheckSubspaceSize("Model '" + type.Name + "'", d, layers.Sum(Parameters), classAttribute, problems, cancellationToken);
            return;
        }

        // Per-layer subspaces: one policy for the layers none covers, so every annotated layer must agree.
        var declared = annotated.Where(l => l.SubspaceOtherLayers is not null).ToList();
        if (declared.Count > 0)
        {
            int policy = declared[0].SubspaceOtherLayers!.Value;
            foreach (var layer in declared.Skip(1))
                if (layer.SubspaceOtherLayers != policy && layer.Attributes?[5] is { } attribute)
                {
                    problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceConflict, ArgumentLocation(attribute, "OtherLayers", cancellationToken), type.Name,
                        "layer '" + layer.Path + "' says OtherLayers = " + PolicyName(layer.SubspaceOtherLayers!.Value) + " but layer '" + declared[0].Path + "' says " + PolicyName(policy) +
                        "; the layers outside every subspace follow one policy: give every [Subspace] the same OtherLayers, or set it on one layer only"));
                    break;
                }
            if (declared.Any(l => l.SubspaceOtherLayers is not (0 or 1)))
            {
                var bad = declared.First(l => l.SubspaceOtherLayers is not (0 or 1));
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceConflict, bad.Attributes?[5] is { } a ? ArgumentLocation(a, "OtherLayers", cancellationToken) : null, type.Name,
                    "layer '" + bad.Path + "' says OtherLayers = " + Format(bad.SubspaceOtherLayers!.Value) + ", which is not an UncoveredLayers; use UncoveredLayers.Frozen or UncoveredLayers.Trained"));
            }
        }

        foreach (var layer in annotated)
        {
            // Only the layers this model declares: a nested model's layers (no attributes here) are checked on that model.
            if (layer.Attributes?[5] is not { } attribute) continue;
            var s = layer.Settings;
            if (s.Sparsify && s.HasPruningSchedule && !s.HasSparsityPattern)
            {
                // The schedule masks the weights during training; the subspace overwrites them with theta0 + P d every step.
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceCombination, AttributeLocation(attribute, cancellationToken), layer.Path,
                    "[Sparsify] with StartStep/EndStep/Frequency prunes the weights while they train, but a subspace rewrites them as theta0 + P d at every step, so the masks would not hold; " +
                    "remove StartStep, EndStep and Frequency to prune one-shot at Compress (after Materialize()), or remove [Subspace]"));
                layer.HasError = true;
                continue;
            }
            if (layer.ShapeKnown && !layer.HasError)
                CheckSubspaceSize("Layer '" + layer.Path + "'", s.SubspaceDimension, Parameters(layer), attribute, problems, cancellationToken);
        }
    }

    /// <summary>CND0030 (d above D / 2, below D: CND0020 reports d >= D) and CND0031 (a cached Dense P above the limit).</summary>
    private static void CheckSubspaceSize(string subject, int d, long parameters, AttributeData attribute, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        if (d < 1 || parameters <= 0 || d >= parameters) return;
        if (d > parameters / 2.0)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceSavesLittle, PositionalArgumentLocation(attribute, cancellationToken), subject, Format(d), Long(parameters),
                "a file of " + Long(4L * d) + " bytes of coordinates against " + Long(4L * parameters) + " of float32 weights (" + (parameters / (double)d).ToString("0.00", CultureInfo.InvariantCulture) +
                "x); use d <= " + Long(parameters / 2) + ", or train the parameters directly"));
        if (SubspaceProjectionOf(attribute) == 0)
        {
            // Saturates rather than wraps: a D x d product past long.MaxValue must still exceed the limit.
            long bytes = parameters > long.MaxValue / 4 / d ? long.MaxValue : parameters * d * 4;
            if (bytes > DenseProjectionWarningBytes)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DenseProjectionTooLarge,
                    NamedArgument(attribute, "Projection") is not null ? ArgumentLocation(attribute, "Projection", cancellationToken) : AttributeLocation(attribute, cancellationToken),
                    subject, Long(parameters), Format(d), Long(bytes), Long(DenseProjectionWarningBytes)));
        }
    }

    private static long Parameters(LayerEntry layer) => (long)layer.OutFeatures * layer.InFeatures + (layer.HasBias ? layer.OutFeatures : 0);

    private static string PolicyName(int policy) => policy switch { 0 => "UncoveredLayers.Frozen", 1 => "UncoveredLayers.Trained", _ => Format(policy) };

    private static string Long(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
