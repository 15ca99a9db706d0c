namespace Condense.Data;

/// <summary>One mini-batch: <see cref="Features"/> is <see cref="Count"/> x FeatureCount, row-major.</summary>
/// <param name="Features">Rows of this batch (fresh arrays: callers may keep them).</param>
/// <param name="Labels">Class labels of this batch.</param>
/// <param name="Count">Rows in this batch; the last batch may be shorter than the batch size.</param>
public readonly record struct Batch(float[] Features, int[] Labels, int Count);

/// <summary>
/// A labelled classification data set held in memory: <see cref="Features"/> is
/// <see cref="Count"/> x <see cref="FeatureCount"/>, row-major; <see cref="Labels"/> are in 0..ClassCount-1.
/// </summary>
public sealed class Dataset
{
    /// <summary>Creates a data set, validating that the arrays agree with the shape and the labels with the class count.</summary>
    /// <param name="name">A short name used in messages (e.g. <c>digits</c>).</param>
    /// <param name="features">Row-major features, Count x product(sampleShape); not copied.</param>
    /// <param name="labels">One label per row; not copied.</param>
    /// <param name="sampleShape">Shape of one sample, e.g. [1, 28, 28].</param>
    /// <param name="classCount">Number of classes.</param>
    public Dataset(string name, float[] features, int[] labels, int[] sampleShape, int classCount)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(sampleShape);
        if (sampleShape.Length == 0 || sampleShape.Any(d => d <= 0))
            throw new ArgumentException($"Data set '{name}': sample shape [{string.Join(", ", sampleShape)}] must have at least one dimension, all positive.", nameof(sampleShape));
        if (classCount <= 0)
            throw new ArgumentOutOfRangeException(nameof(classCount), classCount, $"Data set '{name}': expected at least one class.");
        var featureCount = 1;
        foreach (var d in sampleShape)
            featureCount = checked(featureCount * d);
        if ((long)labels.Length * featureCount != features.Length)
            throw new ArgumentException($"Data set '{name}': {labels.Length} labels x {featureCount} features per sample need {(long)labels.Length * featureCount} values but features has {features.Length}.", nameof(features));
        for (var i = 0; i < labels.Length; i++)
        {
            if ((uint)labels[i] >= (uint)classCount)
                throw new ArgumentException($"Data set '{name}': label {labels[i]} of row {i} is outside 0..{classCount - 1}.", nameof(labels));
        }
        Name = name;
        Features = features;
        Labels = labels;
        SampleShape = (int[])sampleShape.Clone();
        FeatureCount = featureCount;
        ClassCount = classCount;
    }

    /// <summary>Short name used in messages.</summary>
    public string Name { get; }

    /// <summary>Row-major features, <see cref="Count"/> x <see cref="FeatureCount"/>.</summary>
    public float[] Features { get; }

    /// <summary>One label per row, in 0..<see cref="ClassCount"/>-1.</summary>
    public int[] Labels { get; }

    /// <summary>Number of rows (samples).</summary>
    public int Count => Labels.Length;

    /// <summary>Values per sample: product(<see cref="SampleShape"/>).</summary>
    public int FeatureCount { get; }

    /// <summary>Number of classes.</summary>
    public int ClassCount { get; }

    /// <summary>Shape of one sample, e.g. [1, 28, 28] (channels, height, width).</summary>
    public int[] SampleShape { get; }

    /// <summary>Row <paramref name="index"/>'s features, a view into <see cref="Features"/>.</summary>
    public ReadOnlySpan<float> Row(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Features.AsSpan(index * FeatureCount, FeatureCount);
    }

    /// <summary>A copy of rows [start, start + count).</summary>
    public Dataset Subset(int start, int count)
    {
        if (start < 0 || count < 0 || start > Count - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"Data set '{Name}': rows [{start}, {start}+{count}) are outside 0..{Count}.");
        return new Dataset(Name,
            Features.AsSpan(start * FeatureCount, count * FeatureCount).ToArray(),
            Labels.AsSpan(start, count).ToArray(),
            SampleShape, ClassCount);
    }

    /// <summary>The first <paramref name="firstCount"/> rows and the rest, as copies.</summary>
    public (Dataset First, Dataset Second) Split(int firstCount)
    {
        if (firstCount < 0 || firstCount > Count)
            throw new ArgumentOutOfRangeException(nameof(firstCount), firstCount, $"Data set '{Name}' has {Count} rows; expected a split point in 0..{Count}.");
        return (Subset(0, firstCount), Subset(firstCount, Count - firstCount));
    }

    /// <summary>A copy with rows in a seeded random order: the same seed gives the same order on every machine.</summary>
    public Dataset Shuffled(ulong seed)
    {
        var order = Permutation(Count, seed);
        var features = new float[Features.Length];
        var labels = new int[Count];
        for (var i = 0; i < order.Length; i++)
        {
            Features.AsSpan(order[i] * FeatureCount, FeatureCount).CopyTo(features.AsSpan(i * FeatureCount));
            labels[i] = Labels[order[i]];
        }
        return new Dataset(Name, features, labels, SampleShape, ClassCount);
    }

    /// <summary>
    /// Mini-batches covering every row exactly once, in order or (with <paramref name="shuffleSeed"/>) in a seeded
    /// random order; the last batch holds the remainder and may be short.
    /// </summary>
    public IEnumerable<Batch> Batches(int batchSize, ulong? shuffleSeed = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        return Iterate(batchSize, shuffleSeed is { } seed ? Permutation(Count, seed) : null);
    }

    private IEnumerable<Batch> Iterate(int batchSize, int[]? order)
    {
        for (var start = 0; start < Count; start += batchSize)
        {
            var count = Math.Min(batchSize, Count - start);
            var features = new float[count * FeatureCount];
            var labels = new int[count];
            for (var i = 0; i < count; i++)
            {
                var row = order is null ? start + i : order[start + i];
                Features.AsSpan(row * FeatureCount, FeatureCount).CopyTo(features.AsSpan(i * FeatureCount));
                labels[i] = Labels[row];
            }
            yield return new Batch(features, labels, count);
        }
    }

    /// <summary>A seeded permutation of 0..count-1 (Fisher-Yates over SplitMix64, unbiased bounded draws).</summary>
    internal static int[] Permutation(int count, ulong seed)
    {
        var order = new int[count];
        for (var i = 0; i < count; i++)
            order[i] = i;
        var state = seed;
        for (var i = count - 1; i > 0; i--)
        {
            var j = (int)Below(ref state, (ulong)i + 1);
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    // Lemire's multiply-shift with rejection: uniform in [0, bound) without modulo bias.
    private static ulong Below(ref ulong state, ulong bound)
    {
        var threshold = (0 - bound) % bound;
        while (true)
        {
            var product = (UInt128)SplitMix64(ref state) * bound;
            if ((ulong)product >= threshold)
                return (ulong)(product >> 64);
        }
    }

    private static ulong SplitMix64(ref ulong state)
    {
        var z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {Count} x [{string.Join(", ", SampleShape)}], {ClassCount} classes";
}
