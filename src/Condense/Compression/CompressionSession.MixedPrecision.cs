using System.Diagnostics;
using System.Globalization;
using Condense.MixedPrecision;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Compression;

public sealed partial class CompressionSession
{
    private MixedPrecisionSolution? _mixedPrecision;

    /// <summary>
    /// Chooses the bits (and group sizes) of the plan's <c>[MixedPrecision]</c> layers before they are compressed: each
    /// layer's sensitivity over <see cref="CompressionOptions.Calibration"/> (by default the measured KL increase of the
    /// layer alone at each format; or Hutchinson traces of the loss Hessian), then an exact knapsack under the model's budget
    /// (or <see cref="MixedPrecisionOptions.Allocation"/> when given). Generated <c>Compress</c> methods call it first
    /// when the plan has such layers; the model is left unchanged.
    /// </summary>
    /// <param name="layers">The model's layers (<c>model.Layers</c>), in the plan's order.</param>
    /// <param name="forward">The model's Forward; null when the model declares none (then only a given allocation works).</param>
    /// <exception cref="InvalidOperationException">No calibration data or no Forward (the model named).</exception>
    /// <exception cref="MixedPrecisionBudgetException">The budget cannot be met; the message says by how many bytes.</exception>
    public void ChooseMixedPrecision(IReadOnlyList<NamedLayer> layers, Func<Tensor, Tensor>? forward)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (_mixedPrecision is not null) throw new InvalidOperationException($"The bits of {_plan.ModelName}'s [MixedPrecision] layers were already chosen in this session.");
        if (!_plan.Layers.Any(l => l.Technique == LayerTechnique.MixedPrecision)) return;
        var options = _options.MixedPrecision;
        if (options.Allocation is { } allocation)
        {
            _mixedPrecision = MixedPrecisionSensitivity.FromAllocation(_plan, layers, allocation, options.MaxBytes, options.AverageBits, options.AllocationGroupSizes);
            return;
        }
        if (forward is null)
            throw new InvalidOperationException($"Model '{_plan.ModelName}' has [MixedPrecision] layers, whose bits come from running the model, but it declares no Tensor Forward(Tensor): declare one, or give the bits in CompressionOptions.MixedPrecision.Allocation.");
        if (_options.Calibration is null)
        {
            var first = _plan.Layers.First(l => l.Technique == LayerTechnique.MixedPrecision);
            throw new InvalidOperationException(
                $"Layer '{first.Path}' gets its bits from [MixedPrecision] on {_plan.ModelName}, which measures each layer's sensitivity on calibration data: pass Compress(new CompressionOptions {{ Calibration = CalibrationData.FromDataset(train, 1024) }}) (labelled: the training loss; or new CalibrationData(batches) without labels), or fix the bits with the [Override] lines of an earlier run.");
        }
        var sensitivity = MixedPrecisionSensitivity.Measure(_plan, layers, forward, _options.Calibration, options, _options.Rounding);
        _mixedPrecision = sensitivity.Allocate(options.MaxBytes, options.AverageBits);
    }

    /// <summary>Quantizes a layer at the bits <see cref="ChooseMixedPrecision"/> chose (<c>[MixedPrecision]</c> on the model), symmetric, one scale per row or per chosen group.</summary>
    /// <exception cref="InvalidOperationException">The bits were not chosen first (out-of-date generated code).</exception>
    public void MixedPrecision(WeightedLayer layer, int layerIndex)
    {
        ArgumentNullException.ThrowIfNull(layer);
        var planned = PlanAt(layerIndex);
        var choice = _mixedPrecision?.Layers.FirstOrDefault(l => l.LayerIndex == layerIndex)
            ?? throw new InvalidOperationException($"Layer '{planned.Path}' gets its bits from [MixedPrecision], but they were not chosen: the generated Compress must call ChooseMixedPrecision first; rebuild the project.");
        var plan = Begin(layerIndex, layer, LayerTechnique.MixedPrecision);
        // From here on the layer is an ordinary quantized layer at the chosen bits, and its bytes are checked against the solver's prediction.
        var chosen = plan with
        {
            Technique = LayerTechnique.Quantize,
            Bits = choice.Bits,
            GroupSize = choice.GroupSize,
            Symmetric = true,
            BytesAfter = choice.BytesAfter,
        };
        var weight = layer.Weight.Data;
        TensorChecks.ThrowIfNotFinite(weight, plan.Path + ".weight", plan.WeightShape);
        var clock = Stopwatch.StartNew();
        var storage = WithLayerContext(chosen, () => GroupQuantizedWeight.Quantize(weight, chosen.OutFeatures, chosen.InFeatures, MixedPrecisionSensitivity.Scheme(choice.Bits, choice.GroupSize), _options.Rounding));
        var elapsed = clock.Elapsed;
        double error = _options.MeasureError ? RelativeError(storage, weight) : double.NaN;
        Finish(chosen, layerIndex, storage, error, elapsed, () => layer.SetCompressedWeight(storage));
    }

    /// <summary>Checks that the compressed model takes exactly the bytes the allocation predicted.</summary>
    private void CheckMixedPrecisionBytes(long totalBytesAfter)
    {
        if (_mixedPrecision is { } solution && solution.PredictedBytes != totalBytesAfter)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"The [MixedPrecision] allocation of {_plan.ModelName} predicted {solution.PredictedBytes:N0} bytes but the compressed model takes {totalBytesAfter:N0}: the generator and runtime disagree; rebuild with matching Condense versions."));
    }
}
