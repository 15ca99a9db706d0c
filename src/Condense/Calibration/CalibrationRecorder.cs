using System.Globalization;
using Condense.Nn;

namespace Condense.Calibration;

/// <summary>
/// Runs a model's own Forward over calibration batches and records <see cref="LayerStatistics"/> for chosen layers,
/// observing each layer's input through its <see cref="WeightedLayer.InputObserver"/> slot.
/// </summary>
/// <remarks>
/// Memory: one float32 InFeatures x InFeatures matrix per recorded layer, never per sample. Layers are taken in
/// order and grouped so each pass's matrices fit <see cref="CalibrationData.MaxStatisticsBytes"/>; each group is one
/// pass of Forward over all batches. Small models take one pass; a model whose matrices do not fit together is
/// recorded a group at a time (one layer at a time at worst), trading extra Forward passes for memory.
/// The statistics come from the dense model (every layer's input is the dense network's activation).
/// </remarks>
public static class CalibrationRecorder
{
    /// <summary>Records statistics for <paramref name="layerIndices"/> of <paramref name="layers"/> while running <paramref name="forward"/>.</summary>
    /// <param name="layers">The model's layers (the generated <c>model.Layers</c>).</param>
    /// <param name="forward">The model's Forward; its output is ignored.</param>
    /// <returns>One statistics object per requested index, in the same order.</returns>
    /// <exception cref="InvalidDataException">A batch of the wrong width for a layer, a NaN/Inf activation, or no batches: the layer is named.</exception>
    public static IReadOnlyList<LayerStatistics> Record(IReadOnlyList<NamedLayer> layers, IReadOnlyList<int> layerIndices, Func<Tensor, Tensor> forward, CalibrationData data)
        => Record(layers, layerIndices, forward, data, references: null);

    /// <summary>
    /// Records statistics as <see cref="Record(IReadOnlyList{NamedLayer}, IReadOnlyList{int}, Func{Tensor, Tensor}, CalibrationData)"/>,
    /// each layer's rows paired in order with <paramref name="references"/>[t] (the same layer's inputs in the dense
    /// model, from <see cref="CaptureInputs"/>) for <see cref="LayerStatistics.ReferenceCross"/>; null: unpaired.
    /// </summary>
    internal static IReadOnlyList<LayerStatistics> Record(IReadOnlyList<NamedLayer> layers, IReadOnlyList<int> layerIndices, Func<Tensor, Tensor> forward,
        CalibrationData data, IReadOnlyList<float[]>? references)
    {
        var results = new LayerStatistics[layerIndices.Count];
        Run(layers, layerIndices, forward, data, (t, accumulator) => { if (references is not null) accumulator.PairWith(references[t]); },
            (t, accumulator) => results[t] = accumulator.ToStatistics(), references is null ? 1 : 2);
        return results;
    }

    /// <summary>The input rows (concatenated, [rows, InFeatures]) each of <paramref name="layerIndices"/> sees over the calibration batches.</summary>
    internal static IReadOnlyList<float[]> CaptureInputs(IReadOnlyList<NamedLayer> layers, IReadOnlyList<int> layerIndices, Func<Tensor, Tensor> forward, CalibrationData data)
    {
        var results = new float[layerIndices.Count][];
        Run(layers, layerIndices, forward, data, (_, accumulator) => accumulator.Capture(), (t, accumulator) => results[t] = accumulator.CapturedRows(), 1);
        return results;
    }

    private static void Run(IReadOnlyList<NamedLayer> layers, IReadOnlyList<int> layerIndices, Func<Tensor, Tensor> forward, CalibrationData data,
        Action<int, LayerStatistics.Accumulator> prepare, Action<int, LayerStatistics.Accumulator> finish, int matricesPerLayer)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(layerIndices);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(data);
        var targets = new WeightedLayer[layerIndices.Count];
        for (int t = 0; t < targets.Length; t++)
        {
            int index = layerIndices[t];
            if ((uint)index >= (uint)layers.Count)
                throw new ArgumentOutOfRangeException(nameof(layerIndices), $"Layer index {index} is outside the model's {layers.Count} layers.");
            targets[t] = layers[index].Layer as WeightedLayer ?? throw new ArgumentException(
                $"Layer '{layers[index].Path}' is a {layers[index].Layer.GetType().Name}; calibration records Linear and Conv2d inputs.", nameof(layerIndices));
        }

        int pass = 0;
        for (int first = 0; first < targets.Length; pass++)
        {
            // Greedy grouping in order: at least one layer per pass.
            long bytes = 0;
            int end = first;
            while (end < targets.Length)
            {
                long layerBytes = (long)targets[end].InFeatures * targets[end].InFeatures * sizeof(float) * matricesPerLayer;
                if (end > first && bytes + layerBytes > data.MaxStatisticsBytes) break;
                bytes += layerBytes;
                end++;
            }
            RecordPass(layers, layerIndices, targets, first, end, forward, data, pass, prepare, finish);
            first = end;
        }
    }

    private static void RecordPass(IReadOnlyList<NamedLayer> layers, IReadOnlyList<int> indices, WeightedLayer[] targets, int first, int end,
        Func<Tensor, Tensor> forward, CalibrationData data, int pass, Action<int, LayerStatistics.Accumulator> prepare, Action<int, LayerStatistics.Accumulator> finish)
    {
        var accumulators = new LayerStatistics.Accumulator[end - first];
        int batch = 0;
        int[]? mask = null;   // the current batch's row mask (CalibrationData.RowMask), read by the observers
        try
        {
            for (int t = first; t < end; t++)
            {
                var layer = targets[t];
                if (layer.InputObserver is not null)
                    throw new InvalidOperationException($"Layer '{layers[indices[t]].Path}' is already being recorded (a calibration pass is running on this model).");
                string path = layers[indices[t]].Path;
                int layerIndex = indices[t];
                var accumulator = accumulators[t - first] = new LayerStatistics.Accumulator(path, layer.InFeatures);
                prepare(t, accumulator);
                layer.InputObserver = x =>
                {
                    int width = x.Rank == 2 ? x.Shape[1] : -1;
                    if (width != layer.InFeatures)
                        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                            $"Layer '{path}' ({layer.Description}) takes inputs of width {layer.InFeatures}, but calibration batch {batch} gives it {Tensor.FormatShape(x.Shape)} (width {(width < 0 ? x.Shape[^1] : width)}): give batches of the model's input width."));
                    if (mask is not null && mask.Length != x.Shape[0])
                        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                            $"Layer '{path}' ({layer.Description}) sees {x.Shape[0]} input rows in calibration batch {batch}, but CalibrationData.RowMask gives {mask.Length} entries for it: the mask needs one entry per input row of every recorded layer (for token rows, the attention mask)."));
                    accumulator.Add(x.Data, x.Shape[0], batch, mask);
                    data.Progress?.Report(new CalibrationProgress(path, layerIndex, batch, accumulator.Samples, pass));
                };
            }

            using (Tensor.NoGrad())
            {
                foreach (var input in data.Batches())
                {
                    ArgumentNullException.ThrowIfNull(input, "calibration batch");
                    mask = data.RowMask?.Invoke(input);
                    if (mask is not null)
                        for (int r = 0; r < mask.Length; r++)
                            if (mask[r] is not (0 or 1))
                                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                                    $"CalibrationData.RowMask gives {mask[r]} for row {r} of calibration batch {batch}; use 1 for a row that counts and 0 for one to leave out (padding)."));
                    forward(input);
                    batch++;
                }
            }
        }
        finally
        {
            for (int t = first; t < end; t++) targets[t].InputObserver = null;
        }

        for (int t = first; t < end; t++)
        {
            if (accumulators[t - first].Samples == 0)
                throw new InvalidDataException($"Layer '{layers[indices[t]].Path}' saw no calibration rows ({batch} batch(es) ran): give at least one non-empty batch, and check that Forward uses the layer.");
            finish(t, accumulators[t - first]);
        }
    }
}
