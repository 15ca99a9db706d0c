using System.Runtime.CompilerServices;
using Condense.Nn;

namespace Condense.Sparsity;

/// <summary>
/// Which weights of a layer a pruning schedule kept (row-major over the weight matrix [Out, In]). While a mask is
/// attached to a layer (<see cref="PruningMask.Attach"/>), Compress of an unstructured layer keeps exactly the
/// positions it kept (pruning more of them by magnitude only when the schedule stopped short of its final sparsity).
/// </summary>
public sealed class PruningMask
{
    private static readonly ConditionalWeakTable<WeightedLayer, PruningMask> Attached = new();

    /// <param name="kept">One flag per weight, row-major: true = kept.</param>
    public PruningMask(bool[] kept)
    {
        ArgumentNullException.ThrowIfNull(kept);
        Kept = kept;
        foreach (bool k in kept) if (k) KeptCount++;
    }

    /// <summary>One flag per weight, row-major: true = kept.</summary>
    public bool[] Kept { get; }

    /// <summary>Number of kept weights.</summary>
    public long KeptCount { get; }

    /// <summary>Fraction of weights removed.</summary>
    public double Sparsity => Kept.Length == 0 ? 0 : 1.0 - (double)KeptCount / Kept.Length;

    /// <summary>Sets every removed weight to zero.</summary>
    /// <exception cref="ArgumentException">The weights are not as many as the mask's flags.</exception>
    public void Apply(Span<float> weights)
    {
        if (weights.Length != Kept.Length)
            throw new ArgumentException($"The mask has {Kept.Length} flags but the weight has {weights.Length} values.", nameof(weights));
        for (int i = 0; i < weights.Length; i++)
            if (!Kept[i]) weights[i] = 0;
    }

    /// <summary>Attaches <paramref name="mask"/> to <paramref name="layer"/> (replacing any earlier one), so Compress stores exactly it.</summary>
    /// <exception cref="ArgumentException">The mask does not cover the layer's weight.</exception>
    public static void Attach(WeightedLayer layer, PruningMask mask)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(mask);
        long count = (long)layer.OutFeatures * layer.InFeatures;
        if (mask.Kept.Length != count)
            throw new ArgumentException($"{layer.Description} has {count} weights; the mask has {mask.Kept.Length} flags.", nameof(mask));
        Attached.AddOrUpdate(layer, mask);
    }

    /// <summary>The mask attached to <paramref name="layer"/>, or null.</summary>
    public static PruningMask? Of(WeightedLayer layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        return Attached.TryGetValue(layer, out var mask) ? mask : null;
    }

    /// <summary>Removes the mask attached to <paramref name="layer"/>, if any: Compress then prunes it one-shot by magnitude again.</summary>
    public static void Detach(WeightedLayer layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        Attached.Remove(layer);
    }
}
