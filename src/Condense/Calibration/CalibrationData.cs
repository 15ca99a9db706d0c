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
    /// Upper bound on the bytes of the per-layer statistics held at once (one float32 InFeatures x InFeatures matrix
    /// per recorded layer). Layers are recorded together in one pass over the batches while their matrices fit; beyond
    /// that, in further passes. One layer is always recorded even when alone it exceeds the bound. Default 1 GiB.
    /// </summary>
    public long MaxStatisticsBytes { get; init; } = 1L << 30;

    /// <summary>Receives one report per layer and batch while statistics are recorded.</summary>
    public IProgress<CalibrationProgress>? Progress { get; init; }

    internal IEnumerable<Tensor> Batches() => _batches() ?? throw new InvalidOperationException("The calibration data's batch function returned null; return a sequence of input tensors.");
}

/// <summary>Progress of recording calibration statistics: layer <paramref name="Path"/> has seen batch <paramref name="Batch"/> (0-based).</summary>
/// <param name="Samples">Input rows the layer has accumulated so far.</param>
/// <param name="Pass">0-based recording pass (layers whose statistics do not fit together are recorded in later passes).</param>
public readonly record struct CalibrationProgress(string Path, int LayerIndex, int Batch, long Samples, int Pass);
