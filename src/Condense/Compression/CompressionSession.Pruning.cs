using System.Globalization;
using Condense.Catalogue;
using Condense.Nn;
using Condense.Sparsity;

namespace Condense.Compression;

public sealed partial class CompressionSession
{
    private Dictionary<int, bool[]>? _globalSelection;

    /// <summary>
    /// Chooses the kept weights of every <c>Scope = Global</c> layer of the plan with one magnitude threshold over all
    /// of them, each keeping at least its <c>LayerFloor</c>; the group keeps the sum of the layers' planned counts.
    /// Masks a pruning schedule attached to these layers rank their removed weights last, so a schedule that
    /// finished is stored exactly. Generated <c>Compress</c> methods call it first when the plan has such layers.
    /// </summary>
    /// <param name="layers">The model's layers (<c>model.Layers</c>), in the plan's order.</param>
    /// <exception cref="InvalidOperationException">The floors cannot be met, or the group mixes 16- and 32-bit column indices.</exception>
    public void SelectGlobalSparsity(IReadOnlyList<NamedLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count != _plan.Layers.Count)
            throw new ArgumentException($"The plan of {_plan.ModelName} has {_plan.Layers.Count} layers; {layers.Count} were given.", nameof(layers));
        var indices = new List<int>();
        for (int i = 0; i < _plan.Layers.Count; i++)
            if (_plan.Layers[i] is { GlobalSparsity: true, Technique: LayerTechnique.UnstructuredSparse }) indices.Add(i);
        var weights = new float[indices.Count][];
        var masks = new PruningMask?[indices.Count];
        var floors = new long[indices.Count];
        long kept = 0;
        for (int g = 0; g < indices.Count; g++)
        {
            var plan = _plan.Layers[indices[g]];
            if (layers[indices[g]].Layer is not WeightedLayer weighted || layers[indices[g]].Path != plan.Path)
                throw new ArgumentException($"Layer {indices[g]} of {_plan.ModelName} should be '{plan.Path}', a Linear or Conv2d: rebuild the project.", nameof(layers));
            if (weighted.CompressedWeight is not null)
                throw new InvalidOperationException($"Layer '{plan.Path}' is already compressed ({weighted.CompressedWeight.Format}); Compress applies the plan to a dense model once.");
            if ((plan.InFeatures <= CsrWeight.MaxInFeaturesForU16) != (_plan.Layers[indices[0]].InFeatures <= CsrWeight.MaxInFeaturesForU16))
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"Layers '{_plan.Layers[indices[0]].Path}' ({_plan.Layers[indices[0]].InFeatures} inputs) and '{plan.Path}' ({plan.InFeatures} inputs) share a global threshold but store 16- and 32-bit column indices, so the group's bytes are not fixed; use Scope = Layer on one of them."));
            weights[g] = weighted.Weight.Data;
            TensorChecks.ThrowIfNotFinite(weights[g], plan.Path + ".weight", plan.WeightShape);
            masks[g] = PruningMask.Of(weighted);
            floors[g] = PruningRules.MinimumKeptCount(plan.WeightCount, plan.LayerFloor);
            kept += PruningRules.KeptCount(plan.WeightCount, plan.SparsityFraction);
        }
        long floorSum = floors.Sum();
        if (floorSum > kept)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"The Scope = Global layers of {_plan.ModelName} keep {kept:N0} weights in all, but their LayerFloor values need {floorSum:N0}: lower LayerFloor or the fraction."));
        var selected = MagnitudePruning.SelectGlobal(weights, masks, floors, kept);
        _globalSelection = new Dictionary<int, bool[]>();
        for (int g = 0; g < indices.Count; g++) _globalSelection[indices[g]] = selected[g];
    }

    /// <summary>
    /// The CSR weight of an unstructured layer: the global selection for a <c>Scope = Global</c> layer; a layer a
    /// schedule pruned keeps exactly its mask (more of it pruned by magnitude only if the schedule stopped early);
    /// otherwise one-shot magnitude pruning.
    /// </summary>
    private IWeightStorage PruneUnstructured(LayerPlan plan, WeightedLayer layer, int layerIndex, float[] weight)
    {
        if (plan.GlobalSparsity)
        {
            if (_globalSelection is null || !_globalSelection.TryGetValue(layerIndex, out var kept))
                throw new InvalidOperationException($"Layer '{plan.Path}' has Scope = Global, so its weights are chosen together with the other global layers: call SelectGlobalSparsity(model.Layers) before compressing it (generated Compress methods do).");
            return CsrWeight.FromMask(weight, plan.OutFeatures, plan.InFeatures, kept);
        }
        if (PruningMask.Of(layer) is { } mask)
        {
            long count = PruningRules.KeptCount(plan.WeightCount, plan.SparsityFraction);
            return CsrWeight.FromMask(weight, plan.OutFeatures, plan.InFeatures, MagnitudePruning.SelectLayer(weight, mask, count));
        }
        return CsrWeight.Prune(weight, plan.OutFeatures, plan.InFeatures, plan.SparsityFraction);
    }

    /// <summary>The Scope = Global layers' bytes vary one by one, but their total is the planned total.</summary>
    private void CheckGlobalSparsityBytes()
    {
        long planned = 0, stored = 0;
        for (int i = 0; i < _reports.Length; i++)
        {
            if (!_plan.Layers[i].GlobalSparsity) continue;
            planned += _plan.Layers[i].BytesAfter;
            stored += _reports[i]!.BytesAfter;
        }
        if (planned != stored)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"The Scope = Global layers of {_plan.ModelName} were planned at {planned} bytes in all but store {stored}: the generator and runtime disagree; rebuild with matching Condense versions."));
    }
}
