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
    /// <c>Method = Gptq</c> and <c>Method = ActivationAwareSvd</c> layers) by running <paramref name="forward"/> over
    /// <see cref="CompressionOptions.Calibration"/>. Generated <c>Compress</c> methods call it first when the plan has such layers.
    /// </summary>
    /// <param name="layers">The model's layers (<c>model.Layers</c>), in the plan's order.</param>
    /// <param name="forward">The model's Forward; null when the model declares no <c>Tensor Forward(Tensor)</c> (then an error names the layer).</param>
    /// <param name="layerIndices">The layers to record; those the plan resolved to dense at run time (OnIncompatible) are skipped.</param>
    /// <exception cref="InvalidOperationException">No calibration data was given, or no forward pass: the first layer that needs it is named.</exception>
    /// <exception cref="InvalidDataException">A batch of the wrong width for a layer, or a NaN/Inf activation (layer named).</exception>
    public void Calibrate(IReadOnlyList<NamedLayer> layers, Func<Tensor, Tensor>? forward, IReadOnlyList<int> layerIndices)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(layerIndices);
        if (layers.Count != _plan.Layers.Count)
            throw new ArgumentException($"The plan of {_plan.ModelName} has {_plan.Layers.Count} layers; {layers.Count} were given.", nameof(layers));
        var needed = new List<int>(layerIndices.Count);
        foreach (int index in layerIndices)
        {
            var plan = PlanAt(index);
            if (layers[index].Path != plan.Path)
                throw new ArgumentException($"Layer {index} of {_plan.ModelName} should be '{plan.Path}', not '{layers[index].Path}': rebuild the project.", nameof(layers));
            if (plan.Technique != LayerTechnique.Dense) needed.Add(index);
        }
        if (needed.Count == 0) return;
        if (_options.Calibration is null) throw MissingCalibration(PlanAt(needed[0]));
        if (forward is null)
            throw new InvalidOperationException($"Layer '{PlanAt(needed[0]).Path}' of {_plan.ModelName} uses {MethodText(PlanAt(needed[0]))}, which records its inputs by running the model's Forward, but {_plan.ModelName} declares no 'public Tensor Forward(Tensor x)': add one, or compress {_plan.ModelName} as part of a model that has one.");
        _statistics ??= [];
        if (_options.Gptq.Sequential)
        {
            CalibrateSequentially(layers, forward, needed);
            return;
        }
        var recorded = CalibrationRecorder.Record(layers, needed, forward, _options.Calibration);
        for (int t = 0; t < needed.Count; t++) _statistics[needed[t]] = recorded[t];
    }

    /// <summary>
    /// <see cref="GptqOptions.Sequential"/>: the layers grouped by their parent path in plan order, each group recorded
    /// with the earlier groups' GPTQ layers holding their dequantized GPTQ weights; the dense weights are put back at the end
    /// (also on an error), so Compress quantizes the original weights from these statistics.
    /// </summary>
    private void CalibrateSequentially(IReadOnlyList<NamedLayer> layers, Func<Tensor, Tensor> forward, List<int> needed)
    {
        var saved = new List<(WeightedLayer Layer, float[] Weight, float[]? Bias)>();
        // The earlier groups' layers as recorded (quantized, bias-corrected) while the dense model's inputs are captured.
        var quantizedWeights = new List<(float[] Weight, float[]? Bias)>();
        try
        {
            foreach (var group in needed.GroupBy(i => ParentPath(PlanAt(i).Path)))
            {
                var indices = group.ToArray();
                IReadOnlyList<float[]>? references = null;
                if (_options.Gptq.FullPrecisionTarget)
                {
                    // The dense model's inputs to this group (earlier groups back to dense), then the quantized ones again.
                    Restore(saved);
                    references = CalibrationRecorder.CaptureInputs(layers, indices, forward, _options.Calibration!);
                    for (int s = 0; s < saved.Count; s++) Put(saved[s].Layer, quantizedWeights[s].Weight, quantizedWeights[s].Bias);
                }
                var recorded = CalibrationRecorder.Record(layers, indices, forward, _options.Calibration!, references);
                references = null;
                for (int t = 0; t < indices.Length; t++) _statistics![indices[t]] = recorded[t];
                foreach (int index in indices)
                {
                    var plan = PlanAt(index);
                    // Only plain GPTQ layers are replaced for the later groups; corrected and low-rank layers stay dense there.
                    if (plan.Technique != LayerTechnique.Quantize || layers[index].Layer is not WeightedLayer layer) continue;
                    var weight = layer.Weight.Data;
                    var quantized = Gptq.Quantize(weight, plan.OutFeatures, plan.InFeatures, Scheme(plan), _statistics![index], _options.Gptq);
                    var bias = layer.Bias?.Data;
                    saved.Add((layer, weight.ToArray(), bias?.ToArray()));
                    if (_options.Gptq.BiasCorrection && bias is not null)
                        System.Numerics.Tensors.TensorPrimitives.Add(bias, Gptq.BiasShift(weight, quantized, _statistics[index]), bias);
                    quantized.Dequantize(weight);
                    if (_options.Gptq.FullPrecisionTarget) quantizedWeights.Add((weight.ToArray(), bias?.ToArray()));
                }
            }
        }
        finally
        {
            Restore(saved);
        }

        static void Restore(List<(WeightedLayer Layer, float[] Weight, float[]? Bias)> saved)
        {
            foreach (var (layer, weight, bias) in saved) Put(layer, weight, bias);
        }

        static void Put(WeightedLayer layer, float[] weight, float[]? bias)
        {
            weight.CopyTo(layer.Weight.Data, 0);
            bias?.CopyTo(layer.Bias!.Data, 0);
        }

        static string ParentPath(string path)
        {
            int dot = path.LastIndexOf('.');
            return dot < 0 ? "" : path[..dot];
        }
    }

    /// <summary>
    /// Factors a layer's weight at its planned rank with activation-aware SVD (<c>[LowRank(r, Method = ActivationAwareSvd)]</c>,
    /// SVD-LLM whitening; see <see cref="ActivationAwareSvd"/>) from the statistics <see cref="Calibrate"/> recorded.
    /// </summary>
    /// <exception cref="InvalidOperationException">No calibration data was given, or this layer was not calibrated (layer named).</exception>
    public void LowRankActivationAware(WeightedLayer layer, int layerIndex)
    {
        // A layer OnIncompatible made dense at run time is kept dense by CompressLayer, uncalibrated.
        var statistics = PlanAt(layerIndex).Technique == LayerTechnique.Dense ? null : StatisticsFor(layerIndex);
        CompressLayer(layer, layerIndex, LayerTechnique.LowRank,
            (plan, w) => ActivationAwareSvd.Factor(w, plan.OutFeatures, plan.InFeatures, plan.Rank, statistics!, Rng.Derive(LowRankWeight.DefaultSeed, plan.Path)));
    }

    /// <summary>
    /// Quantizes a layer to <typeparamref name="TBits"/> bits with GPTQ (<c>[Quantize(Method = Gptq)]</c>), from the
    /// statistics <see cref="Calibrate"/> recorded; the result is stored in the same packed format as round-to-nearest.
    /// </summary>
    /// <exception cref="InvalidOperationException">No calibration data was given, or this layer was not calibrated (layer named).</exception>
    public void QuantizeGptq<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth
    {
        // A layer OnIncompatible made dense at run time is kept dense by CompressLayer, uncalibrated.
        var statistics = PlanAt(layerIndex).Technique == LayerTechnique.Dense ? null : StatisticsFor(layerIndex);
        CompressLayer(layer, layerIndex, LayerTechnique.Quantize, (plan, w) =>
        {
            CheckBits<TBits>(plan);
            return Gptq.Quantize(w, plan.OutFeatures, plan.InFeatures, Scheme(plan), statistics!, _options.Gptq);
        }, _options.Gptq.BiasCorrection && layer.Bias is not null ? (w, q) => Gptq.BiasShift(w, q, statistics!) : null);
    }

    /// <summary>
    /// GPTQ-quantizes a layer, then fits the rank-r correction to what GPTQ left, W - deq(Q)
    /// (<c>[Quantize(Method = Gptq)]</c> + <c>[LowRankCorrection]</c>).
    /// </summary>
    /// <inheritdoc cref="QuantizeGptq{TBits}(WeightedLayer, int)" path="/exception"/>
    public void QuantizeGptqWithLowRankCorrection<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth
    {
        // A layer OnIncompatible made dense at run time is kept dense by CompressLayer, uncalibrated.
        var statistics = PlanAt(layerIndex).Technique == LayerTechnique.Dense ? null : StatisticsFor(layerIndex);
        CompressLayer(layer, layerIndex, LayerTechnique.QuantizeWithLowRankCorrection, (plan, w) =>
        {
            CheckBits<TBits>(plan);
            var quantized = Gptq.Quantize(w, plan.OutFeatures, plan.InFeatures, Scheme(plan), statistics!, _options.Gptq);
            return LowRankCorrectedWeight.FitCorrection(w, quantized, plan.Rank, Rng.Derive(LowRankWeight.DefaultSeed, plan.Path));
        });
    }

    /// <summary><see cref="Apply"/> for a data-aware layer: the typed call the generated code would make.</summary>
    private void ApplyCalibrated(WeightedLayer layer, int layerIndex, LayerPlan plan)
    {
        bool corrected = plan.Technique == LayerTechnique.QuantizeWithLowRankCorrection;
        switch (plan.Technique == LayerTechnique.LowRank ? 0 : plan.Bits)
        {
            case 0: LowRankActivationAware(layer, layerIndex); break;
            case 2: if (corrected) QuantizeGptqWithLowRankCorrection<Bits2>(layer, layerIndex); else QuantizeGptq<Bits2>(layer, layerIndex); break;
            case 3: if (corrected) QuantizeGptqWithLowRankCorrection<Bits3>(layer, layerIndex); else QuantizeGptq<Bits3>(layer, layerIndex); break;
            case 4: if (corrected) QuantizeGptqWithLowRankCorrection<Bits4>(layer, layerIndex); else QuantizeGptq<Bits4>(layer, layerIndex); break;
            case 8: if (corrected) QuantizeGptqWithLowRankCorrection<Bits8>(layer, layerIndex); else QuantizeGptq<Bits8>(layer, layerIndex); break;
            default: throw new InvalidOperationException($"Layer '{plan.Path}' is planned at {plan.Bits} bits, which has no kernel: rebuild the project.");
        }
    }

    private LayerStatistics StatisticsFor(int layerIndex)
    {
        var plan = PlanAt(layerIndex);
        if (_options.Calibration is null) throw MissingCalibration(plan);
        if (_statistics is null || !_statistics.TryGetValue(layerIndex, out var statistics))
            throw new InvalidOperationException($"Layer '{plan.Path}' uses {MethodText(plan)} but was not calibrated: the generated Compress must call Calibrate with its index first; rebuild the project.");
        return statistics;
    }

    private static InvalidOperationException MissingCalibration(LayerPlan plan) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"Layer '{plan.Path}' uses {MethodText(plan)}, which needs calibration data: pass Compress(new CompressionOptions {{ Calibration = new CalibrationData(batches) }}) with a few hundred input rows, or use {(plan.Technique == LayerTechnique.LowRank ? "Method = LowRankMethod.Svd" : "Method = QuantizationMethod.RoundToNearest")} on it."));

    private static string MethodText(LayerPlan plan) => plan.Technique == LayerTechnique.LowRank
        ? "[LowRank(Method = ActivationAwareSvd)]"
        : "[Quantize(Method = Gptq)]";
}
