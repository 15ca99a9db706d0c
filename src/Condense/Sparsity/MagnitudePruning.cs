namespace Condense.Sparsity;

/// <summary>
/// Magnitude selection for unstructured pruning, per layer or with one threshold over a group of layers
/// (<c>Scope = Global</c>). A weight a mask already removed ranks below every kept weight (even a kept exact zero),
/// so pruning again never brings one back; ties are broken by the lower layer, then the lower flat index, so the
/// selection is the same on every run.
/// </summary>
public static class MagnitudePruning
{
    /// <summary>Keeps the <paramref name="kept"/> largest |w| of one layer.</summary>
    /// <param name="weights">The layer's weights, row-major.</param>
    /// <param name="mask">Weights removed earlier (ranked last), or null.</param>
    /// <param name="kept">How many weights to keep, in [0, weights.Length].</param>
    public static bool[] SelectLayer(float[] weights, PruningMask? mask, long kept)
    {
        ArgumentNullException.ThrowIfNull(weights);
        return SelectGlobal([weights], [mask], [0], kept)[0];
    }

    /// <summary>
    /// One magnitude threshold over every layer of the group: keeps <paramref name="keptTotal"/> weights in all,
    /// the largest |w| over the group, except that layer i keeps at least <paramref name="minimumKept"/>[i] of its own
    /// (its largest) however small they are compared with the other layers.
    /// </summary>
    /// <param name="weights">Each layer's weights, row-major.</param>
    /// <param name="masks">Each layer's earlier mask (removed weights rank last), or null entries.</param>
    /// <param name="minimumKept">Each layer's floor: weights it keeps at least.</param>
    /// <param name="keptTotal">Weights kept over the group: at least the sum of the floors, at most the group's weights.</param>
    /// <returns>One kept flag per weight, per layer.</returns>
    /// <exception cref="ArgumentException">Mismatched lists, a mask of the wrong length, or counts out of range.</exception>
    public static bool[][] SelectGlobal(IReadOnlyList<float[]> weights, IReadOnlyList<PruningMask?> masks, IReadOnlyList<long> minimumKept, long keptTotal)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(minimumKept);
        if (masks.Count != weights.Count || minimumKept.Count != weights.Count)
            throw new ArgumentException($"{weights.Count} layers but {masks.Count} masks and {minimumKept.Count} floors.", nameof(masks));
        long total = 0, floors = 0;
        for (int l = 0; l < weights.Count; l++)
        {
            if (masks[l] is { } mask && mask.Kept.Length != weights[l].Length)
                throw new ArgumentException($"Layer {l} has {weights[l].Length} weights but its mask {mask.Kept.Length} flags.", nameof(masks));
            if (minimumKept[l] < 0 || minimumKept[l] > weights[l].Length)
                throw new ArgumentException($"Layer {l} must keep at least {minimumKept[l]} of its {weights[l].Length} weights, which is impossible.", nameof(minimumKept));
            total += weights[l].Length;
            floors += minimumKept[l];
        }
        if (total > uint.MaxValue)
            throw new ArgumentException($"The group has {total} weights; one selection handles at most {uint.MaxValue}.", nameof(weights));
        if (keptTotal < floors || keptTotal > total)
            throw new ArgumentException($"Keeping {keptTotal} weights is impossible: the group has {total}, and its layers' floors need {floors}.", nameof(keptTotal));

        // One sortable key per weight: rank (descending) in the high half, the flat offset over the group in the low half.
        var order = new ulong[total];
        long offset = 0;
        for (int l = 0; l < weights.Count; l++)
        {
            var w = weights[l];
            var mask = masks[l]?.Kept;
            for (int i = 0; i < w.Length; i++)
            {
                uint rank = mask is not null && !mask[i] ? 0u : (BitConverter.SingleToUInt32Bits(w[i]) & 0x7FFFFFFFu) + 1u;
                order[offset + i] = ((ulong)(uint.MaxValue - rank) << 32) | (uint)(offset + i);
            }
            offset += w.Length;
        }
        Array.Sort(order);

        var starts = new long[weights.Count + 1];
        for (int l = 0; l < weights.Count; l++) starts[l + 1] = starts[l] + weights[l].Length;
        var result = new bool[weights.Count][];
        for (int l = 0; l < weights.Count; l++) result[l] = new bool[weights[l].Length];

        // First each layer's floor (its own largest weights, in the global order), then the rest by the one threshold.
        var needed = new long[weights.Count];
        for (int l = 0; l < weights.Count; l++) needed[l] = minimumKept[l];
        long reserved = 0;
        if (floors > 0)
            foreach (ulong entry in order)
            {
                if (reserved == floors) break;
                long flat = (uint)entry;
                int l = LayerOf(starts, flat);
                if (needed[l] == 0) continue;
                needed[l]--;
                result[l][flat - starts[l]] = true;
                reserved++;
            }
        long remaining = keptTotal - reserved;
        foreach (ulong entry in order)
        {
            if (remaining == 0) break;
            long flat = (uint)entry;
            int l = LayerOf(starts, flat);
            ref bool kept = ref result[l][flat - starts[l]];
            if (kept) continue;
            kept = true;
            remaining--;
        }
        return result;
    }

    private static int LayerOf(long[] starts, long flat)
    {
        int lo = 0, hi = starts.Length - 2;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (starts[mid] <= flat) lo = mid;
            else hi = mid - 1;
        }
        return lo;
    }
}
