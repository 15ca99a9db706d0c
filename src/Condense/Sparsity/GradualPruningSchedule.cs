using System.Globalization;
using Condense.Catalogue;
using Condense.Nn;

namespace Condense.Sparsity;

/// <summary>Something a training loop calls once after every optimizer step (e.g. <c>Classifier.Train</c>).</summary>
public interface IPruningSchedule
{
    /// <summary>Optimizer steps seen so far.</summary>
    int Step { get; }

    /// <summary>
    /// Called once after each optimizer step: counts the step, recomputes the masks when the schedule says so, and
    /// sets every masked weight back to zero (the optimizer may have moved it).
    /// </summary>
    void OnStep();
}

/// <summary>The schedule of one layer, as the generator reads it from <c>[Sparsify(fraction, StartStep = .., EndStep = .., Frequency = ..)]</c>.</summary>
/// <param name="LayerIndex">Index of the layer in the model's <c>Layers</c> (the plan's order).</param>
/// <param name="Path">The layer's path.</param>
/// <param name="Fraction">s_f: the final sparsity (the declared fraction); s_i is 0.</param>
/// <param name="StartStep">t0: the first step at which the mask is recomputed.</param>
/// <param name="EndStep">The step at which the final sparsity is reached.</param>
/// <param name="Frequency">dt: the mask is recomputed every this many steps between t0 and the end step.</param>
/// <param name="Global">Scope = Global: one magnitude threshold over every global layer of the schedule.</param>
/// <param name="LayerFloor">With <paramref name="Global"/>: the fraction of its weights the layer keeps at least.</param>
public sealed record PruningTarget(int LayerIndex, string Path, double Fraction, int StartStep, int EndStep, int Frequency, bool Global = false, double LayerFloor = 0);

/// <summary>One scheduled layer and where it stands.</summary>
public sealed class ScheduledLayer
{
    internal ScheduledLayer(PruningTarget target, WeightedLayer layer)
    {
        Target = target;
        Layer = layer;
    }

    /// <summary>What the layer was declared with.</summary>
    public PruningTarget Target { get; }

    /// <summary>The layer the mask applies to.</summary>
    public WeightedLayer Layer { get; }

    /// <summary>The layer's current mask, or null before the schedule's first update.</summary>
    public PruningMask? Mask { get; internal set; }

    /// <summary>The fraction of the layer's weights the current mask removes (0 before the first update).</summary>
    public double Sparsity => Mask?.Sparsity ?? 0;
}

/// <summary>
/// Gradual magnitude pruning (Zhu and Gupta 2017) of a model's unstructured layers during training: after every
/// optimizer step <see cref="OnStep"/> counts the step; at t0, t0 + dt, ... and at the end step it recomputes each
/// layer's mask at the cubic schedule's sparsity (<see cref="GradualSparsity.At"/>, s_i = 0, s_f = the declared
/// fraction), ranking the weights it removed before below all others so pruning only grows; after every step it sets
/// the masked weights back to zero. Layers with Scope = Global share one magnitude threshold and keep their floors.
/// The masks stay attached to the layers (<see cref="PruningMask.Of"/>), so <c>Compress</c> stores exactly them.
/// </summary>
/// <remarks>The generator emits a typed subclass per model (<c>Model.PruningSchedule</c>, created by <c>CreatePruningSchedule()</c>).</remarks>
public class GradualPruningSchedule : IPruningSchedule
{
    private readonly ScheduledLayer[] _layers;
    private readonly ScheduledLayer[][] _groups;

    /// <param name="layers">The model's layers (<c>model.Layers</c>).</param>
    /// <param name="targets">The scheduled layers.</param>
    /// <exception cref="ArgumentException">A target names a layer that is missing, compressed or not a Linear/Conv2d, or has invalid settings.</exception>
    public GradualPruningSchedule(IReadOnlyList<NamedLayer> layers, IReadOnlyList<PruningTarget> targets)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(targets);
        _layers = new ScheduledLayer[targets.Count];
        var globals = new List<ScheduledLayer>();
        var groups = new List<ScheduledLayer[]>();
        for (int i = 0; i < targets.Count; i++)
        {
            var t = targets[i] ?? throw new ArgumentException($"Target {i} is null.", nameof(targets));
            if ((uint)t.LayerIndex >= (uint)layers.Count || layers[t.LayerIndex].Path != t.Path)
                throw new ArgumentException($"The schedule names layer '{t.Path}' at index {t.LayerIndex}, which the model's layers do not have there: rebuild the project.", nameof(targets));
            if (layers[t.LayerIndex].Layer is not WeightedLayer weighted)
                throw new ArgumentException($"Layer '{t.Path}' is not a Linear or Conv2d.", nameof(targets));
            if (weighted.CompressedWeight is not null)
                throw new ArgumentException($"Layer '{t.Path}' is already compressed ({weighted.CompressedWeight.Format}); prune it while it is dense, before Compress.", nameof(targets));
            Validate(t);
            _layers[i] = new ScheduledLayer(t, weighted);
            if (t.Global) globals.Add(_layers[i]);
            else groups.Add([_layers[i]]);
        }
        if (globals.Count > 0)
        {
            var first = globals[0].Target;
            foreach (var g in globals)
                if (g.Target.StartStep != first.StartStep || g.Target.EndStep != first.EndStep || g.Target.Frequency != first.Frequency)
                    throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                        $"Layers '{first.Path}' and '{g.Target.Path}' share one global threshold but have different schedules ({first.StartStep}..{first.EndStep} every {first.Frequency} vs {g.Target.StartStep}..{g.Target.EndStep} every {g.Target.Frequency}); give every Scope = Global layer the same StartStep, EndStep and Frequency."),
                        nameof(targets));
            groups.Add([.. globals]);
        }
        _groups = [.. groups];
    }

    /// <inheritdoc/>
    public int Step { get; private set; }

    /// <summary>Every scheduled layer, with its current mask and sparsity.</summary>
    public IReadOnlyList<ScheduledLayer> Layers => _layers;

    /// <summary>The scheduled layer with this path, or null.</summary>
    public ScheduledLayer? Find(string path)
    {
        foreach (var layer in _layers)
            if (string.Equals(layer.Target.Path, path, StringComparison.Ordinal)) return layer;
        return null;
    }

    /// <summary>The sparsity the schedule targets for <paramref name="target"/> after <paramref name="step"/> steps.</summary>
    public static double TargetSparsity(PruningTarget target, int step)
    {
        ArgumentNullException.ThrowIfNull(target);
        return GradualSparsity.At(step, target.StartStep, target.EndStep, 0, target.Fraction);
    }

    /// <inheritdoc/>
    public void OnStep()
    {
        Step++;
        foreach (var group in _groups)
        {
            var t = group[0].Target;
            if (GradualSparsity.IsUpdateStep(Step, t.StartStep, t.EndStep, t.Frequency)) UpdateMasks(group, Step);
        }
        foreach (var layer in _layers)
            layer.Mask?.Apply(WeightsOf(layer));
    }

    private static void UpdateMasks(ScheduledLayer[] group, int step)
    {
        var weights = new float[group.Length][];
        var masks = new PruningMask?[group.Length];
        var floors = new long[group.Length];
        long kept = 0;
        for (int i = 0; i < group.Length; i++)
        {
            var layer = group[i];
            weights[i] = WeightsOf(layer);
            masks[i] = layer.Mask;
            floors[i] = layer.Target.Global ? PruningRules.MinimumKeptCount(weights[i].Length, layer.Target.LayerFloor) : 0;
            kept += PruningRules.KeptCount(weights[i].Length, TargetSparsity(layer.Target, step));
        }
        long floorSum = floors.Sum();
        if (floorSum > kept)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"At step {step} the Scope = Global layers keep {kept} weights, but their LayerFloor values need {floorSum}: lower LayerFloor or the fraction."));
        var selected = MagnitudePruning.SelectGlobal(weights, masks, floors, kept);
        for (int i = 0; i < group.Length; i++)
        {
            var mask = new PruningMask(selected[i]);
            group[i].Mask = mask;
            PruningMask.Attach(group[i].Layer, mask);
        }
    }

    private static float[] WeightsOf(ScheduledLayer layer)
    {
        if (layer.Layer.CompressedWeight is { } compressed)
            throw new InvalidOperationException($"Layer '{layer.Target.Path}' was compressed ({compressed.Format}) while its pruning schedule runs; finish training before Compress.");
        return layer.Layer.Weight.Data;
    }

    private static void Validate(PruningTarget t)
    {
        string? problem =
            !(t.Fraction >= 0 && t.Fraction < 1) ? "the fraction must be in [0, 1)"
            : t.StartStep < 0 ? "StartStep must be at least 0"
            : t.EndStep <= t.StartStep ? "EndStep must be after StartStep"
            : t.Frequency < 1 ? "Frequency must be at least 1"
            : !(t.LayerFloor >= 0 && t.LayerFloor < 1) ? "LayerFloor must be in [0, 1)"
            : null;
        if (problem is not null)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"Layer '{t.Path}' cannot be pruned gradually (fraction {t.Fraction}, steps {t.StartStep}..{t.EndStep} every {t.Frequency}, floor {t.LayerFloor}): {problem}."), nameof(t));
    }
}
