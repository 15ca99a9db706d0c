using System.Globalization;
using Condense.Calibration;
using Condense.LowRank;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Compression;

public sealed partial class CompressionSession
{
    private Dictionary<int, LayerStatistics>? _statistics;

    /// <summary>
    /// Records the calibration statistics the data-aware layers need (<paramref name="layerIndices"/>: the plan's
    /// <c>Method = Gptq</c> layers) by running <paramref name="forward"/> over <see cref="CompressionOptions.Calibration"/>.
    /// Generated <c>Compress</c> methods call it first when the plan has such layers.
    /// </summary>
    /// <param name="layers">The model's layers (<c>model.Layers</c>), in the plan's order.</param>
    /// <param name="forward">The model's Forward.</param>
    /// <exception cref="InvalidOperationException">No calibration data was given: the first layer that needs it is named.</exception>
    /// <exception cref="InvalidDataException">A batch of the wrong width for a layer, or a NaN/Inf activation (layer named).</exception>
    public void Calibrate(IReadOnlyList<NamedLayer> layers, Func<Tensor, Tensor> forward, IReadOnlyList<int> layerIndices)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(layerIndices);
        if (layerIndices.Count == 0) return;
        if (layers.Count != _plan.Layers.Count)
            throw new ArgumentException($"The plan of {_plan.ModelName} has {_plan.Layers.Count} layers; {layers.Count} were given.", nameof(layers));
        foreach (int index in layerIndices)
        {
            var plan = PlanAt(index);
            if (layers[index].Path != plan.Path)
                throw new ArgumentException($"Layer {index} of {_plan.ModelName} should be '{plan.Path}', not '{layers[index].Path}': rebuild the project.", nameof(layers));
        }
        if (_options.Calibration is null) throw MissingCalibration(PlanAt(layerIndices[0]));
        var recorded = CalibrationRecorder.Record(layers, layerIndices, forward, _options.Calibration);
        _statistics ??= [];
        for (int t = 0; t < layerIndices.Count; t++) _statistics[layerIndices[t]] = recorded[t];
    }

    /// <summary>
    /// Quantizes a layer to <typeparamref name="TBits"/> bits with GPTQ (<c>[Quantize(Method = Gptq)]</c>), from the
    /// statistics <see cref="Calibrate"/> recorded; the result is stored in the same packed format as round-to-nearest.
    /// </summary>
    /// <exception cref="InvalidOperationException">No calibration data was given, or this layer was not calibrated (layer named).</exception>
    public void QuantizeGptq<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth
    {
        var statistics = StatisticsFor(layerIndex);
        CompressLayer(layer, layerIndex, LayerTechnique.Quantize, (plan, w) =>
        {
            CheckBits<TBits>(plan);
            return Gptq.Quantize(w, plan.OutFeatures, plan.InFeatures, Scheme(plan), statistics, _options.Gptq);
        });
    }

    /// <summary>
    /// GPTQ-quantizes a layer, then fits the rank-r correction to what GPTQ left, W - deq(Q)
    /// (<c>[Quantize(Method = Gptq)]</c> + <c>[LowRankCorrection]</c>).
    /// </summary>
    /// <inheritdoc cref="QuantizeGptq{TBits}(WeightedLayer, int)" path="/exception"/>
    public void QuantizeGptqWithLowRankCorrection<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth
    {
        var statistics = StatisticsFor(layerIndex);
        CompressLayer(layer, layerIndex, LayerTechnique.QuantizeWithLowRankCorrection, (plan, w) =>
        {
            CheckBits<TBits>(plan);
            var quantized = Gptq.Quantize(w, plan.OutFeatures, plan.InFeatures, Scheme(plan), statistics, _options.Gptq);
            return LowRankCorrectedWeight.FitCorrection(w, quantized, plan.Rank, Rng.Derive(LowRankWeight.DefaultSeed, plan.Path));
        });
    }

    private LayerStatistics StatisticsFor(int layerIndex)
    {
        var plan = PlanAt(layerIndex);
        if (_options.Calibration is null) throw MissingCalibration(plan);
        if (_statistics is null || !_statistics.TryGetValue(layerIndex, out var statistics))
            throw new InvalidOperationException($"Layer '{plan.Path}' is quantized with GPTQ but was not calibrated: the generated Compress must call Calibrate with its index first; rebuild the project.");
        return statistics;
    }

    private static InvalidOperationException MissingCalibration(LayerPlan plan) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"Layer '{plan.Path}' is quantized with Method = Gptq, which needs calibration data: pass Compress(new CompressionOptions {{ Calibration = new CalibrationData(batches) }}) with a few hundred input rows, or use Method = RoundToNearest on it."));
}
