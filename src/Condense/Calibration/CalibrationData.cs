namespace Condense.Calibration;

/// <summary>
/// Calibration inputs for data-aware compression (GPTQ): a sequence of input batches, each a tensor the model's
/// Forward accepts. The sequence is enumerated once per recording pass (see <see cref="MaxStatisticsBytes"/>), so it
/// must be re-enumerable (a list, or a function that produces the batches afresh).
/// </summary>
/// <remarks>
/// The batches' widths are checked where each layer sees them: a batch a layer cannot take is an error naming the
/// layer, the batch and both widths. NaN or infinite activations are an error naming the layer, batch, row and column.
/// </remarks>
public sealed class CalibrationData
{
    private readonly Func<IEnumerable<Tensor>> _batches;
    private readonly Func<IEnumerable<int[]>>? _labels;

    /// <param name="batches">The input batches (re-enumerable; e.g. a list).</param>
    public CalibrationData(IEnumerable<Tensor> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        _batches = () => batches;
    }

    /// <param name="batches">Produces the input batches; called once per recording pass.</param>
    public CalibrationData(Func<IEnumerable<Tensor>> batches)
    {
        ArgumentNullException.ThrowIfNull(batches);
        _batches = batches;
    }

    /// <summary>
    /// Labelled calibration data: <paramref name="labels"/> holds one class index per input row of the batch at the same
    /// position. <c>[MixedPrecision]</c> then measures sensitivity on the training loss (softmax cross-entropy); without
    /// labels it uses the distance to the float32 model's outputs (see docs/mixed-precision.md). GPTQ ignores labels.
    /// </summary>
    /// <param name="batches">The input batches (re-enumerable; e.g. a list).</param>
    /// <param name="labels">The labels of each batch, in the same order (re-enumerable).</param>
    public CalibrationData(IEnumerable<Tensor> batches, IEnumerable<int[]> labels)
        : this(batches)
    {
        ArgumentNullException.ThrowIfNull(labels);
        _labels = () => labels;
    }

    /// <summary>
    /// Labelled calibration data from the first <paramref name="rows"/> rows of a data set, in batches of
    /// <paramref name="batchSize"/> (the last may be shorter), each input shaped [rows, FeatureCount].
    /// </summary>
    public static CalibrationData FromDataset(Condense.Data.Dataset data, int rows, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        rows = Math.Min(rows, data.Count);
        var inputs = new List<Tensor>();
        var labels = new List<int[]>();
        for (int start = 0; start < rows; start += batchSize)
        {
            int count = Math.Min(batchSize, rows - start);
            inputs.Add(new Tensor(data.Features.AsSpan(start * data.FeatureCount, count * data.FeatureCount).ToArray(), count, data.FeatureCount));
            labels.Add(data.Labels.AsSpan(start, count).ToArray());
        }
        return new CalibrationData(inputs, labels);
    }

    /// <summary>Whether the batches come with class labels.</summary>
    public bool HasLabels => _labels is not null;

    /// <summary>
    /// Upper bound on the bytes of the per-layer statistics held at once (one float32 InFeatures x InFeatures matrix
    /// per recorded layer). Layers are recorded together in one pass over the batches while their matrices fit; beyond
    /// that, in further passes. One layer is always recorded even when alone it exceeds the bound. Default 1 GiB.
    /// </summary>
    public long MaxStatisticsBytes { get; init; } = 1L << 30;

    /// <summary>
    /// Which rows of each recorded layer's input count in its statistics, per batch: given a batch, an array with one
    /// entry per input row every recorded layer sees for it, 1 for a row that counts and 0 for one to leave out (e.g. a
    /// padded position of a token batch: the attention mask), or null for all rows. Padding rows would otherwise enter
    /// X^T X (and the sample count), so sequences of different lengths could only be calibrated one per batch; with
    /// the mask, batched calibration gives the same statistics as the unpadded sequences one at a time. Only the rows
    /// that count are checked for NaN/Inf. A layer whose input has another number of rows than the mask is an error
    /// naming the layer and the batch. Default null: every row counts.
    /// </summary>
    public Func<Tensor, int[]?>? RowMask { get; init; }

    /// <summary>Receives one report per layer and batch while statistics are recorded.</summary>
    public IProgress<CalibrationProgress>? Progress { get; init; }

    internal IEnumerable<Tensor> Batches() => _batches() ?? throw new InvalidOperationException("The calibration data's batch function returned null; return a sequence of input tensors.");

    /// <summary>The batches with their labels (null labels when the data has none); a missing label batch is an error naming the batch.</summary>
    internal IEnumerable<(Tensor Input, int[]? Labels)> LabelledBatches()
    {
        if (_labels is null)
        {
            foreach (var input in Batches()) yield return (input, null);
            yield break;
        }
        using var labels = (_labels() ?? throw new InvalidOperationException("The calibration data's labels are null; give one label array per batch.")).GetEnumerator();
        int batch = 0;
        foreach (var input in Batches())
        {
            if (!labels.MoveNext())
                throw new InvalidDataException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"Calibration batch {batch} has no labels: the labels run out after {batch} batch(es); give one label array per input batch."));
            yield return (input, labels.Current);
            batch++;
        }
    }
}

/// <summary>Progress of recording calibration statistics: layer <paramref name="Path"/> has seen batch <paramref name="Batch"/> (0-based).</summary>
/// <param name="Samples">Input rows the layer has accumulated so far.</param>
/// <param name="Pass">0-based recording pass (layers whose statistics do not fit together are recorded in later passes).</param>
public readonly record struct CalibrationProgress(string Path, int LayerIndex, int Batch, long Samples, int Pass);
