using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Condense.Catalogue;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;

namespace Condense.Generators.Parsing;

/// <summary>
/// The options no kernel reads directly: methods (GPTQ, activation-aware SVD), [MixedPrecision], and the
/// pruning options of [Sparsify] (criterion, gradual schedule, global scope). Every one is either planned (it reaches
/// the emitted plan) or reported here; none is silently ignored.
/// </summary>
internal static partial class ModelParser
{
    /// <summary>Reads the options of <see cref="ReadSettings"/>'s attributes that the catalogue checks do not cover.</summary>
    private static void ReadDeclaredOptions(AttributeData?[] attributes, LayerSettings s)
    {
        if (attributes[0] is { } quantize) s.QuantizeMethod = NamedArgument(quantize, "Method") is { Value: int qm } ? qm : 0;
        if (attributes[2] is { } lowRank) s.LowRankMethod = NamedArgument(lowRank, "Method") is { Value: int lm } ? lm : 0;
        if (attributes[4] is not { } sparsify) return;
        s.SparsityCriterion = NamedArgument(sparsify, "Criterion") is { Value: int c } ? c : 0;
        s.SparsityScope = NamedArgument(sparsify, "Scope") is { Value: int scope } ? scope : 0;
        s.LayerFloor = NamedArgument(sparsify, "LayerFloor") is { Value: double floor } ? floor : 0;
        var start = NamedArgument(sparsify, "StartStep");
        var end = NamedArgument(sparsify, "EndStep");
        var frequency = NamedArgument(sparsify, "Frequency");
        s.HasPruningSchedule = start is not null || end is not null || frequency is not null;
        s.PruneStartStep = start is { Value: int t0 } ? t0 : 0;
        s.PruneEndStep = end is { Value: int t1 } ? t1 : 0;
        s.PruneFrequency = frequency is { Value: int dt } ? dt : 0;
    }

    /// <summary>CND0036 (methods), CND0028 and CND0029 for one layer the model itself declares.</summary>
    private static void CheckDeclaredOptions(LayerEntry layer, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        if (layer.Attributes is not { } attributes) return;
        var s = layer.Settings;
        string path = layer.Path;
        void Report(DiagnosticDescriptor descriptor, Location? location, params string[] arguments)
        {
            problems.Add(DiagnosticInfo.Create(descriptor, location, arguments));
            layer.HasError = true;
        }

        if (attributes[0] is { } quantize && s.QuantizeMethod != 0)
        {
            if (s.QuantizeMethod != 1)
                Report(DiagnosticDescriptors.DataAwareMethodInvalid, ArgumentLocation(quantize, "Method", cancellationToken), path, "[Quantize(Method = " + Format(s.QuantizeMethod) + ")]",
                    "the value is not a QuantizationMethod; use Method = QuantizationMethod.Gptq, or remove Method to round each weight to the nearest level");
            else if (s.Sparsify && s.HasSparsityPattern)
                Report(DiagnosticDescriptors.DataAwareMethodInvalid, ArgumentLocation(quantize, "Method", cancellationToken), path, "[Quantize(Method = Gptq)]",
                    "GPTQ spreads each weight's rounding error over the weights not yet quantized, which assumes every weight is kept, but [Sparsify(N = " + Format(s.SparsityN) + ", M = " + Format(s.SparsityM) + ")] removes some; remove Method to round the kept values to the nearest level, or remove [Sparsify]");
        }
        if (attributes[2] is { } lowRank && s.LowRankMethod is not (0 or 1))
            Report(DiagnosticDescriptors.DataAwareMethodInvalid, ArgumentLocation(lowRank, "Method", cancellationToken), path, "[LowRank(Method = " + Format(s.LowRankMethod) + ")]",
                "the value is not a LowRankMethod; use Method = LowRankMethod.ActivationAwareSvd, or remove Method for a truncated SVD of the weight");

        if (attributes[4] is not { } sparsify || !s.Sparsify) return;
        if (s.SparsityCriterion != 0)
            Report(DiagnosticDescriptors.InvalidPruningSchedule, ArgumentLocation(sparsify, "Criterion", cancellationToken), path,
                "Criterion = " + Format(s.SparsityCriterion) + " is not a SparsityCriterion; the only criterion is SparsityCriterion.Magnitude: remove Criterion");
        if (s.HasPruningSchedule)
        {
            if (s.HasSparsityPattern)
                Report(DiagnosticDescriptors.InvalidPruningSchedule, ArgumentLocation(sparsify, NamedArgument(sparsify, "EndStep") is not null ? "EndStep" : NamedArgument(sparsify, "StartStep") is not null ? "StartStep" : "Frequency", cancellationToken), path,
                    "a gradual schedule applies to unstructured fractions only, not to N:M = " + Format(s.SparsityN) + ":" + Format(s.SparsityM) + "; use [Sparsify(fraction, StartStep = .., EndStep = .., Frequency = ..)], or remove StartStep, EndStep and Frequency to prune N:M one-shot at Compress");
            else if (s.PruneStartStep < 0)
                Report(DiagnosticDescriptors.InvalidPruningSchedule, ArgumentLocation(sparsify, "StartStep", cancellationToken), path,
                    "StartStep = " + Format(s.PruneStartStep) + " is negative; use 0 or a later step");
            else if (s.PruneEndStep <= s.PruneStartStep)
                Report(DiagnosticDescriptors.InvalidPruningSchedule, ArgumentLocation(sparsify, NamedArgument(sparsify, "EndStep") is not null ? "EndStep" : "StartStep", cancellationToken), path,
                    "EndStep = " + Format(s.PruneEndStep) + " is not after StartStep = " + Format(s.PruneStartStep) + "; set EndStep to the step at which the final sparsity is reached, e.g. EndStep = " + Format(s.PruneStartStep + 1000));
            else if (s.PruneFrequency <= 0)
                Report(DiagnosticDescriptors.InvalidPruningSchedule, NamedArgument(sparsify, "Frequency") is not null ? ArgumentLocation(sparsify, "Frequency", cancellationToken) : AttributeLocation(sparsify, cancellationToken), path,
                    "Frequency = " + Format(s.PruneFrequency) + "; the mask is recomputed every Frequency steps, so it must be at least 1, e.g. Frequency = " + Format(System.Math.Max(1, (s.PruneEndStep - s.PruneStartStep) / 10)));
        }
        if (s.SparsityScope is not (0 or 1))
            Report(DiagnosticDescriptors.InvalidGlobalSparsity, ArgumentLocation(sparsify, "Scope", cancellationToken), path,
                "Scope = " + Format(s.SparsityScope) + " is not a SparsityScope; use SparsityScope.Layer or SparsityScope.Global");
        else if (s.SparsityScope == 1 && s.HasSparsityPattern)
            Report(DiagnosticDescriptors.InvalidGlobalSparsity, ArgumentLocation(sparsify, "Scope", cancellationToken), path,
                "N:M = " + Format(s.SparsityN) + ":" + Format(s.SparsityM) + " keeps a fixed share of every block, so there is no fraction to count globally; use [Sparsify(fraction, Scope = SparsityScope.Global)] or remove Scope");
        if (!(s.LayerFloor >= 0 && s.LayerFloor < 1))
            Report(DiagnosticDescriptors.InvalidGlobalSparsity, ArgumentLocation(sparsify, "LayerFloor", cancellationToken), path,
                "LayerFloor = " + s.LayerFloor.ToString("R", CultureInfo.InvariantCulture) + " is outside [0, 1); it is the fraction of its weights the layer keeps at least, e.g. LayerFloor = 0.05");
        else if (s.LayerFloor > 0 && s.SparsityScope == 0)
            Report(DiagnosticDescriptors.InvalidGlobalSparsity, ArgumentLocation(sparsify, "LayerFloor", cancellationToken), path,
                "LayerFloor applies only with Scope = SparsityScope.Global (a layer-scope fraction already fixes what the layer keeps); add Scope = SparsityScope.Global or remove LayerFloor");
    }

    /// <summary>
    /// Model-wide: CND0037 for [MixedPrecision] without Forward; CND0030..CND0033 for [Subspace] (ModelParser.Subspace.cs); CND0028/CND0029 for the group of
    /// Scope = Global layers (at least two, one schedule, floors that fit, one column-index width).
    /// </summary>
    private static void CheckModelOptions(INamedTypeSymbol type, List<LayerEntry> layers, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        // [MixedPrecision] measures sensitivity by running the model: without a Forward only a given allocation works (CND0037).
        if (FindAttribute(type, KnownTypeNames.MixedPrecisionAttribute) is { } mixed && layers.Any(l => l.Settings.MixedPrecision) && !HasForwardMethod(type))
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MixedPrecisionWithoutForward, AttributeNameLocation(mixed, cancellationToken), type.Name));
        // A nested block's layer without a technique of its own is not given bits by this model's [MixedPrecision]
        // (the nested model's plan is compiled on its own): it stays float32, so say so rather than leave it out silently (CND0040).
        if (FindAttribute(type, KnownTypeNames.MixedPrecisionAttribute) is { } outerMixed)
        {
            var left = layers.Where(l => l.Attributes is null && !l.HasAnyAttribute && !l.Settings.MixedPrecision && l.OverriddenBy is null).ToList();
            if (left.Count > 0)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MixedPrecisionMissesNestedLayers, AttributeNameLocation(outerMixed, cancellationToken),
                    type.Name, left[0].Path, left.Count == 1 ? "" : " and " + (left.Count - 1).ToString(System.Globalization.CultureInfo.InvariantCulture) + " more nested layers"));
        }
        CheckSubspaces(type, layers, problems, cancellationToken);

        if (layers.Any(l => l.Settings.Sparsify && l.Settings.HasPruningSchedule))
            foreach (var name in Emitting.ModelEmitter.PruningScheduleMemberNames)
                foreach (var member in type.GetMembers(name))
                {
                    if (member.IsImplicitlyDeclared || IsGeneratedByCondense(member)) continue;
                    problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GeneratedMemberConflict, member.Locations.FirstOrDefault(l => l.IsInSource), type.Name, name));
                    break;
                }

        var global = layers.Where(l => !l.HasError && l.Settings.Sparsify && !l.Settings.HasSparsityPattern && l.Settings.SparsityScope == 1).ToList();
        if (global.Count == 0) return;
        Location? Where(LayerEntry layer, string argument) =>
            layer.Attributes?[4] is { } a ? ArgumentLocation(a, argument, cancellationToken) : IdentifierLocation(type, cancellationToken);
        void Report(DiagnosticDescriptor descriptor, LayerEntry layer, string argument, string text) =>
            problems.Add(DiagnosticInfo.Create(descriptor, Where(layer, argument), layer.Path, text));

        if (global.Count == 1)
        {
            Report(DiagnosticDescriptors.InvalidGlobalSparsity, global[0], "Scope",
                "it is the only Scope = Global layer of model '" + type.Name + "', so a global threshold is its own fraction; put Scope = SparsityScope.Global on the other layers that share the threshold, or remove Scope");
            return;
        }
        var first = global[0].Settings;
        foreach (var layer in global.Skip(1))
        {
            var s = layer.Settings;
            if (s.HasPruningSchedule != first.HasPruningSchedule || s.PruneStartStep != first.PruneStartStep || s.PruneEndStep != first.PruneEndStep || s.PruneFrequency != first.PruneFrequency)
            {
                Report(DiagnosticDescriptors.InvalidPruningSchedule, layer, s.HasPruningSchedule ? "EndStep" : "Scope",
                    "it shares a global threshold with '" + global[0].Path + "' but not its schedule (" + ScheduleText(first) + " there, " + ScheduleText(s) + " here); give every Scope = Global layer the same StartStep, EndStep and Frequency");
                return;
            }
            if (layer.ShapeKnown && global[0].ShapeKnown && (layer.InFeatures <= 65536) != (global[0].InFeatures <= 65536))
            {
                Report(DiagnosticDescriptors.InvalidGlobalSparsity, layer, "Scope",
                    "it has " + Format(layer.InFeatures) + " inputs and '" + global[0].Path + "' " + Format(global[0].InFeatures) + ", so their CSR column indices have different widths (16 and 32 bits) and the group's bytes would depend on the threshold; use Scope = SparsityScope.Layer on one of them");
                return;
            }
        }
        if (global.Any(l => !l.ShapeKnown)) return;
        long kept = global.Sum(l => PruningRules.KeptCount(Weights(l), l.Settings.SparsityFraction));
        long floors = global.Sum(l => PruningRules.MinimumKeptCount(Weights(l), l.Settings.LayerFloor));
        if (floors > kept)
        {
            var largest = global.OrderByDescending(l => PruningRules.MinimumKeptCount(Weights(l), l.Settings.LayerFloor)).First();
            Report(DiagnosticDescriptors.InvalidGlobalSparsity, largest, "LayerFloor",
                "the Scope = Global layers keep " + KernelCatalogue.FormatBytes(kept) + " weights in all, but their floors need " + KernelCatalogue.FormatBytes(floors) +
                " (this layer's LayerFloor = " + largest.Settings.LayerFloor.ToString("R", CultureInfo.InvariantCulture) + " alone needs " +
                KernelCatalogue.FormatBytes(PruningRules.MinimumKeptCount(Weights(largest), largest.Settings.LayerFloor)) + "); lower LayerFloor or the fractions");
        }
    }

    private static long Weights(LayerEntry layer) => (long)layer.OutFeatures * layer.InFeatures;

    private static string ScheduleText(LayerSettings s) => s.HasPruningSchedule
        ? "steps " + Format(s.PruneStartStep) + ".." + Format(s.PruneEndStep) + " every " + Format(s.PruneFrequency)
        : "one-shot at Compress";

    /// <summary>The attribute's name (<c>MixedPrecision</c> in <c>[MixedPrecision(2, 4)]</c>), so a sizing diagnostic on the whole attribute can sit beside it.</summary>
    private static Location? AttributeNameLocation(AttributeData attribute, CancellationToken cancellationToken) =>
        attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) is Microsoft.CodeAnalysis.CSharp.Syntax.AttributeSyntax syntax
            ? syntax.Name.GetLocation()
            : null;

}
