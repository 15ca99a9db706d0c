using System.Diagnostics;
using System.Globalization;
using System.Text;
using Condense.Nn;
using Condense.LowRank;
using Condense.Quantization;
using Condense.Sparsity;

namespace Condense.Compression;

/// <summary>Options for <c>Compress</c>.</summary>
public sealed class CompressionOptions
{
    /// <summary>Measure each layer's relative reconstruction error ||W - W'|| / ||W|| (costs one dequantization).</summary>
    public bool MeasureError { get; init; } = true;

    /// <summary>
    /// Calibration inputs for data-aware layers (<c>[Quantize(Method = Gptq)]</c>, <c>[LowRank(r, Method = ActivationAwareSvd)]</c>;
    /// <c>Plan.CalibratedLayers</c> lists them): Compress runs the model's Forward over them and records each such layer's
    /// input statistics. Without it, such a plan is an error naming the layer (and the build warns at the call, CND0034).
    /// </summary>
    public Condense.Calibration.CalibrationData? Calibration { get; init; }

    /// <summary>GPTQ's block size, damping and act-order (see <see cref="GptqOptions"/>).</summary>
    public GptqOptions Gptq { get; init; } = new();

    /// <summary>
    /// How round-to-nearest picks each group's scale for <c>[Quantize]</c> layers: <see cref="QuantizationRounding.MseClip"/>
    /// (default: a per-group clipping search, never worse than min/max) or <see cref="QuantizationRounding.MinMax"/>.
    /// N:M quantized values and <c>[LowRankCorrection]</c> layers always use the default.
    /// </summary>
    public QuantizationRounding Rounding { get; init; } = QuantizationRounding.MseClip;

    /// <summary>How the bits of <c>[MixedPrecision]</c> layers are chosen (Hutchinson samples, seed, loss, or a given allocation).</summary>
    public Condense.MixedPrecision.MixedPrecisionOptions MixedPrecision { get; init; } = new();
}

/// <summary>Progress of a <c>Compress</c> call: which layer is being compressed.</summary>
public readonly record struct CompressionProgress(int LayerIndex, int LayerCount, string Path);

/// <summary>
/// Applies a plan to a model's layers. Generated <c>Compress</c> methods call one typed method per layer, then
/// <see cref="Complete"/>; nothing in the model changes until every layer has been compressed successfully.
/// </summary>
public sealed partial class CompressionSession
{
    private readonly CompressionPlan _plan;
    private readonly CompressionOptions _options;
    private readonly IProgress<CompressionProgress>? _progress;
    private readonly LayerReport?[] _reports;
    private readonly List<Action> _swaps = [];
    private bool _completed;

    public CompressionSession(CompressionPlan plan, CompressionOptions? options, IProgress<CompressionProgress>? progress)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.HasUnknownShapes)
            throw new ArgumentException($"The plan of {plan.ModelName} has layers whose shape was not known at build time; pass plan.WithShapesFrom(model.Layers), which checks them.", nameof(plan));
        _plan = plan;
        _options = options ?? new CompressionOptions();
        _progress = progress;
        _reports = new LayerReport?[plan.Layers.Count];
    }

    /// <summary>Quantizes a Linear layer's weight group-wise to <typeparamref name="TBits"/> bits.</summary>
    public void Quantize<TBits>(Linear layer, int layerIndex) where TBits : struct, IBitWidth => QuantizeLayer<TBits>(layer, layerIndex);

    /// <summary>Quantizes a Conv2d layer's weight (as the matrix Out x (In*K*K)) to <typeparamref name="TBits"/> bits.</summary>
    public void Quantize<TBits>(Conv2d layer, int layerIndex) where TBits : struct, IBitWidth => QuantizeLayer<TBits>(layer, layerIndex);

    /// <summary>Factors a layer's weight into low-rank U V by a seeded truncated SVD (<c>[LowRank]</c>).</summary>
    public void LowRank(WeightedLayer layer, int layerIndex) =>
        CompressLayer(layer, layerIndex, LayerTechnique.LowRank,
            (plan, w) => LowRankWeight.FromDense(w, plan.OutFeatures, plan.InFeatures, plan.Rank, Rng.Derive(LowRankWeight.DefaultSeed, plan.Path)));

    /// <summary>
    /// Quantizes a layer to <typeparamref name="TBits"/> bits, then fits a rank-r correction U V to the quantization
    /// error W - deq(Q) (LoRC / LQ-LoRA style; <c>[Quantize]</c> + <c>[LowRankCorrection]</c>).
    /// </summary>
    public void QuantizeWithLowRankCorrection<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth =>
        CompressLayer(layer, layerIndex, LayerTechnique.QuantizeWithLowRankCorrection, (plan, w) =>
        {
            CheckBits<TBits>(plan);
            return LowRankCorrectedWeight.Fit(w, plan.OutFeatures, plan.InFeatures, Scheme(plan), plan.Rank, Rng.Derive(LowRankWeight.DefaultSeed, plan.Path));
        });

    /// <summary>One-shot N:M magnitude pruning with float32 values (<c>[Sparsify(N = .., M = ..)]</c>).</summary>
    public void SparsifySemiStructured(WeightedLayer layer, int layerIndex) =>
        CompressLayer(layer, layerIndex, LayerTechnique.SemiStructuredSparse,
            (plan, w) => NmSparseWeight.Prune(w, plan.OutFeatures, plan.InFeatures, plan.SparsityN, plan.SparsityM));

    /// <summary>One-shot N:M magnitude pruning with the kept values quantized to <typeparamref name="TBits"/> bits.</summary>
    public void SparsifySemiStructured<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth =>
        CompressLayer(layer, layerIndex, LayerTechnique.SemiStructuredSparse, (plan, w) =>
        {
            CheckBits<TBits>(plan);
            return NmSparseWeight.Prune(w, plan.OutFeatures, plan.InFeatures, plan.SparsityN, plan.SparsityM, Scheme(plan));
        });

    /// <summary>One-shot magnitude pruning of a fraction of the layer's weights, stored as CSR (<c>[Sparsify(fraction)]</c>).</summary>
    public void SparsifyUnstructured(WeightedLayer layer, int layerIndex) =>
        CompressLayer(layer, layerIndex, LayerTechnique.UnstructuredSparse,
            (plan, w) => PruneUnstructured(plan, layer, layerIndex, w));

    /// <summary>
    /// Applies whatever the plan says for this layer, choosing the typed method at run time. Nested models use it:
    /// an <c>[Override]</c> on the parent can change a child's layers, so the child's code cannot bake the bits in.
    /// </summary>
    public void Apply(WeightedLayer layer, int layerIndex)
    {
        ArgumentNullException.ThrowIfNull(layer);
        var plan = PlanAt(layerIndex);
        if (plan.NeedsCalibration)
        {
            ApplyCalibrated(layer, layerIndex, plan);
            return;
        }
        switch (plan.Technique)
        {
            case LayerTechnique.Dense: KeepDense(layer, layerIndex); break;
            case LayerTechnique.Quantize:
                switch (plan.Bits)
                {
                    case 2: QuantizeLayer<Bits2>(layer, layerIndex); break;
                    case 3: QuantizeLayer<Bits3>(layer, layerIndex); break;
                    case 4: QuantizeLayer<Bits4>(layer, layerIndex); break;
                    case 8: QuantizeLayer<Bits8>(layer, layerIndex); break;
                    default: throw new InvalidOperationException($"Layer '{plan.Path}' is planned at {plan.Bits} bits, which has no kernel: rebuild the project.");
                }
                break;
            case LayerTechnique.LowRank: LowRank(layer, layerIndex); break;
            case LayerTechnique.QuantizeWithLowRankCorrection:
                CompressLayer(layer, layerIndex, plan.Technique,
                    (p, w) => LowRankCorrectedWeight.Fit(w, p.OutFeatures, p.InFeatures, Scheme(p), p.Rank, Rng.Derive(LowRankWeight.DefaultSeed, p.Path)));
                break;
            case LayerTechnique.SemiStructuredSparse:
                CompressLayer(layer, layerIndex, plan.Technique,
                    (p, w) => NmSparseWeight.Prune(w, p.OutFeatures, p.InFeatures, p.SparsityN, p.SparsityM, p.Bits > 0 ? Scheme(p) : null));
                break;
            case LayerTechnique.UnstructuredSparse: SparsifyUnstructured(layer, layerIndex); break;
            case LayerTechnique.MixedPrecision: MixedPrecision(layer, layerIndex); break;
            default: throw NotImplementedFor(layer, layerIndex);
        }
    }

    /// <summary>Keeps a layer in float32; its weights are still checked to be finite.</summary>
    public void KeepDense(Layer layer, int layerIndex)
    {
        ArgumentNullException.ThrowIfNull(layer);
        var weighted = layer as WeightedLayer ?? throw new ArgumentException(
            $"Layer '{_plan.Layers[layerIndex].Path}' is a {layer.GetType().Name}; the plan expects a Linear or Conv2d.", nameof(layer));
        var plan = Begin(layerIndex, weighted, LayerTechnique.Dense);
        TensorChecks.ThrowIfNotFinite(weighted.Weight.Data, plan.Path + ".weight", plan.WeightShape);
        Finish(plan, layerIndex, null, 0, TimeSpan.Zero, static () => { });
    }

    private void QuantizeLayer<TBits>(WeightedLayer layer, int layerIndex) where TBits : struct, IBitWidth
    {
        ArgumentNullException.ThrowIfNull(layer);
        // OnIncompatible = Skip/Adjust applied at run time (shape unknown at build time) may have made it dense.
        if (PlanAt(layerIndex).Technique == LayerTechnique.Dense)
        {
            KeepDense(layer, layerIndex);
            return;
        }
        var plan = Begin(layerIndex, layer, LayerTechnique.Quantize);
        var storage = QuantizeWeight<TBits>(plan, layer.Weight.Data, out var error, out var elapsed);
        Finish(plan, layerIndex, storage, error, elapsed, () => layer.SetCompressedWeight(storage));
    }

    /// <summary>Compresses one layer with <paramref name="compress"/>; the layer itself changes only in <see cref="Complete"/>.</summary>
    /// <param name="biasShift">Null, or the shift to add to the layer's bias with the swap (GPTQ's bias correction), from the weight and its storage.</param>
    private void CompressLayer(WeightedLayer layer, int layerIndex, LayerTechnique technique, Func<LayerPlan, float[], IWeightStorage> compress,
        Func<float[], IWeightStorage, float[]?>? biasShift = null)
    {
        ArgumentNullException.ThrowIfNull(layer);
        // OnIncompatible = Skip/Adjust applied at run time (shape unknown at build time) may have made it dense.
        if (PlanAt(layerIndex).Technique == LayerTechnique.Dense)
        {
            KeepDense(layer, layerIndex);
            return;
        }
        var plan = Begin(layerIndex, layer, technique);
        var weight = layer.Weight.Data;
        TensorChecks.ThrowIfNotFinite(weight, plan.Path + ".weight", plan.WeightShape);
        var clock = Stopwatch.StartNew();
        var storage = WithLayerContext(plan, () => compress(plan, weight));
        var elapsed = clock.Elapsed;
        double error = _options.MeasureError ? RelativeError(storage, weight) : double.NaN;
        var shift = biasShift is null ? null : WithLayerContext(plan, () => biasShift(weight, storage));
        Finish(plan, layerIndex, storage, error, elapsed, () =>
        {
            layer.SetCompressedWeight(storage);
            if (shift is not null) System.Numerics.Tensors.TensorPrimitives.Add(layer.Bias!.Data, shift, layer.Bias.Data);
        });
    }

    /// <summary>
    /// Runs a storage constructor. The constructors know rows, columns and values but not the layer: a data error
    /// they raise (ArgumentException, InvalidOperationException, ArithmeticException) is rethrown as an
    /// <see cref="InvalidDataException"/> naming the layer's path and technique, the original kept as the inner
    /// exception. Anything else (a bug: null or out-of-range indexing) propagates untouched.
    /// </summary>
    private static T WithLayerContext<T>(LayerPlan plan, Func<T> build)
    {
        try
        {
            return build();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or ArithmeticException && e is not ArgumentNullException)
        {
            string message = e is ArgumentException { ParamName: { } name } ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message;
            throw new InvalidDataException($"Layer '{plan.Path}' ({plan.TechniqueText}) cannot be compressed: {message}", e);
        }
    }

    /// <summary>Quantization groups of the storage that held non-zero weights but dequantize to all zeros.</summary>
    private static long ZeroedGroupsOf(IWeightStorage storage) => storage switch
    {
        GroupQuantizedWeight q => q.ZeroedGroups,
        LowRankCorrectedWeight c => c.Quantized.ZeroedGroups,
        NmSparseWeight { QuantizedValues: { } q } => q.ZeroedGroups,
        _ => 0,
    };

    private static QuantizationScheme Scheme(LayerPlan plan) => new(plan.Bits, plan.GroupSize, plan.Symmetric);

    private static void CheckBits<TBits>(LayerPlan plan) where TBits : struct, IBitWidth
    {
        if (TBits.Bits != plan.Bits)
            throw new InvalidOperationException($"Layer '{plan.Path}' is planned at {plan.Bits} bits but the generated code asked for {TBits.Bits}: rebuild the project.");
    }

    /// <summary>Checks that every planned layer was handled, then swaps in all compressed weights at once.</summary>
    public CompressionReport Complete()
    {
        if (_completed) throw new InvalidOperationException("This compression session has already completed.");
        var missing = _plan.Layers.Where((l, i) => _reports[i] is null).Select(l => l.Path).ToList();
        if (missing.Count > 0)
            throw new InvalidOperationException(
                $"Compress of {_plan.ModelName} did not handle layer(s) {string.Join(", ", missing)}: the generated code is out of date with the plan; rebuild the project.");
        CheckGlobalSparsityBytes();
        var reports = _reports.Select(r => r!).ToList();
        CheckMixedPrecisionBytes(reports.Sum(r => r.BytesAfter));
        foreach (var swap in _swaps) swap();
        _completed = true;
        return new CompressionReport(_plan, reports) { MixedPrecision = _mixedPrecision };
    }

    private LayerPlan PlanAt(int layerIndex) =>
        (uint)layerIndex < (uint)_reports.Length
            ? _plan.Layers[layerIndex]
            : throw new ArgumentOutOfRangeException(nameof(layerIndex), $"The plan of {_plan.ModelName} has {_reports.Length} layers; index {layerIndex} is outside it.");

    private NotSupportedException NotImplementedFor(WeightedLayer layer, int layerIndex)
    {
        ArgumentNullException.ThrowIfNull(layer);
        var plan = PlanAt(layerIndex);
        var inv = CultureInfo.InvariantCulture;
        string attribute = plan.Technique switch
        {
            LayerTechnique.LowRank => string.Create(inv, $"[LowRank({plan.Rank})]"),
            LayerTechnique.QuantizeWithLowRankCorrection => string.Create(inv, $"[Quantize({plan.Bits})] + [LowRankCorrection({plan.Rank})]"),
            LayerTechnique.SemiStructuredSparse => string.Create(inv, $"[Sparsify(N = {plan.SparsityN}, M = {plan.SparsityM})]") + (plan.Bits > 0 ? string.Create(inv, $" + [Quantize({plan.Bits})]") : ""),
            LayerTechnique.UnstructuredSparse => string.Create(inv, $"[Sparsify({plan.SparsityFraction:R})]"),
            LayerTechnique.MixedPrecision => "[MixedPrecision]",
            _ => plan.TechniqueText,
        };
        return NotImplemented(attribute, "layer '" + plan.Path + "'");
    }

    private static NotSupportedException NotImplemented(string attribute, string where) =>
        new($"{attribute} on {where} is not implemented in this version of Condense yet; the build checked and sized the plan, " +
            "but Compress cannot apply it: use [Quantize] or [KeepDense] on it to compress the model with this version.");

    private LayerPlan Begin(int layerIndex, WeightedLayer layer, LayerTechnique technique)
    {
        var (kind, kernelSize) = layer is Conv2d conv ? (LayerKind.Conv2d, conv.KernelSize) : (LayerKind.Linear, 0);
        int outFeatures = layer.OutFeatures, inFeatures = layer.InFeatures;
        bool hasBias = layer.Bias is not null;
        var current = layer.CompressedWeight;
        if (_completed) throw new InvalidOperationException("This compression session has already completed.");
        if ((uint)layerIndex >= (uint)_reports.Length)
            throw new ArgumentOutOfRangeException(nameof(layerIndex), $"The plan of {_plan.ModelName} has {_reports.Length} layers; index {layerIndex} is outside it.");
        var plan = _plan.Layers[layerIndex];
        // [Subspace] is a training-time reparameterization: Compress stores the (materialized) weights as the layer's
        // other attributes say, so a subspace layer without any is kept dense.
        if (_reports[layerIndex] is not null)
            throw new InvalidOperationException($"Layer '{plan.Path}' was compressed twice in one session.");
        if (plan.Kind != kind || plan.Technique != technique)
            throw new InvalidOperationException($"Layer '{plan.Path}' is planned as {plan.Kind} {plan.TechniqueText}, not {kind} {technique}: rebuild the project so the generated code matches the plan.");
        if (plan.OutFeatures != outFeatures || plan.InFeatures != inFeatures || plan.KernelSize != kernelSize || plan.HasBias != hasBias)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"Layer '{plan.Path}' has shape {ShapeText(kind, outFeatures, inFeatures, kernelSize, hasBias)} but the compiled plan expects {ShapeText(plan.Kind, plan.OutFeatures, plan.InFeatures, plan.KernelSize, plan.HasBias)}: construct it with the shape its declaration states."));
        if (current is not null)
            throw new InvalidOperationException($"Layer '{plan.Path}' is already compressed ({current.Format}); Compress applies the plan to a dense model once.");
        if (layer.LiveSubspace is { } live)
            throw new InvalidOperationException(
                $"Layer '{plan.Path}' of {_plan.ModelName} is driven by a live subspace model (Reparameterize, d = {live.Coordinates.Length}); call Materialize() on it first: it writes theta0 + P d into the layers and ends the subspace, then Compress.");
        _progress?.Report(new CompressionProgress(layerIndex, _reports.Length, plan.Path));
        return plan;
    }

    private GroupQuantizedWeight QuantizeWeight<TBits>(LayerPlan plan, float[] weight, out double error, out TimeSpan elapsed) where TBits : struct, IBitWidth
    {
        if (TBits.Bits != plan.Bits)
            throw new InvalidOperationException($"Layer '{plan.Path}' is planned at {plan.Bits} bits but the generated code asked for {TBits.Bits}: rebuild the project.");
        TensorChecks.ThrowIfNotFinite(weight, plan.Path + ".weight", plan.WeightShape);
        var clock = Stopwatch.StartNew();
        var storage = WithLayerContext(plan, () => GroupQuantizedWeight.Quantize<TBits>(weight, plan.OutFeatures, plan.InFeatures, plan.GroupSize, plan.Symmetric, _options.Rounding));
        elapsed = clock.Elapsed;
        error = _options.MeasureError ? RelativeError(storage, weight) : double.NaN;
        return storage;
    }

    /// <param name="storage">The compressed weight, or null for a layer kept dense.</param>
    private void Finish(LayerPlan plan, int layerIndex, IWeightStorage? storage, double error, TimeSpan elapsed, Action swap)
    {
        long bytesAfter = (storage?.ByteCount ?? plan.WeightBytesAfter) + plan.BiasBytes;
        // A Scope = Global layer's share is only known now; Complete checks its group's total instead.
        if (bytesAfter != plan.BytesAfter && !plan.GlobalSparsity)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"Layer '{plan.Path}' was planned at {plan.BytesAfter} bytes but its storage takes {bytesAfter}: the generator and runtime disagree; rebuild with matching Condense versions."));
        _reports[layerIndex] = new LayerReport(plan.Path, plan.TechniqueText, plan.BytesBefore, bytesAfter, error, elapsed,
            storage is null ? 0 : ZeroedGroupsOf(storage));
        _swaps.Add(swap);
    }

    private static double RelativeError(IWeightStorage storage, float[] weight)
    {
        var restored = new float[weight.Length];
        storage.Dequantize(restored);
        double diff = 0, norm = 0;
        for (int i = 0; i < weight.Length; i++)
        {
            double d = weight[i] - restored[i];
            diff += d * d;
            norm += (double)weight[i] * weight[i];
        }
        return norm == 0 ? (diff == 0 ? 0 : double.PositiveInfinity) : Math.Sqrt(diff / norm);
    }

    private static string ShapeText(LayerKind kind, int outFeatures, int inFeatures, int kernelSize, bool hasBias) =>
        string.Create(CultureInfo.InvariantCulture,
            $"{kind}({(kind == LayerKind.Conv2d ? $"{inFeatures / (kernelSize * kernelSize)} -> {outFeatures}, kernel {kernelSize}" : $"{inFeatures} -> {outFeatures}")}{(hasBias ? "" : ", no bias")})");
}

/// <summary>What Compress did to one layer.</summary>
/// <param name="RelativeError">||W - W'|| / ||W|| of the weight (NaN when not measured).</param>
/// <param name="ZeroedGroups">Quantization groups (of the quantized part, before any low-rank correction) that held
/// non-zero weights yet dequantize to all zeros: every |w| was at most half the smallest float16 scale (~3e-8), so
/// their error is 100%. Flagged in <see cref="CompressionReport.ToString"/>; 0 for techniques that do not quantize.</param>
public sealed record LayerReport(string Path, string Technique, long BytesBefore, long BytesAfter, double RelativeError, TimeSpan Elapsed, long ZeroedGroups = 0);

/// <summary>What Compress did to the model.</summary>
public sealed class CompressionReport
{
    public CompressionReport(CompressionPlan plan, IReadOnlyList<LayerReport> layers)
    {
        Plan = plan;
        Layers = layers;
    }

    public CompressionPlan Plan { get; }
    public IReadOnlyList<LayerReport> Layers { get; }

    /// <summary>
    /// The bits <c>[MixedPrecision]</c> chose per layer and the predicted bytes (equal to <see cref="TotalBytesAfter"/>),
    /// with the <c>[Override]</c> lines that fix them in source; null without <c>[MixedPrecision]</c> layers.
    /// </summary>
    public Condense.MixedPrecision.MixedPrecisionSolution? MixedPrecision { get; init; }
    public long TotalBytesBefore => Layers.Sum(l => l.BytesBefore);
    public long TotalBytesAfter => Layers.Sum(l => l.BytesAfter);
    public double CompressionRatio => TotalBytesAfter == 0 ? 1 : (double)TotalBytesBefore / TotalBytesAfter;

    /// <summary>
    /// A plain-text table: per layer technique, bytes, relative error and zeroed groups (see
    /// <see cref="LayerReport.ZeroedGroups"/>); totals; then a warning for each layer with zeroed groups.
    /// </summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        int w = Math.Max(5, Layers.Count == 0 ? 5 : Layers.Max(l => l.Path.Length));
        int t = Math.Max(16, Layers.Count == 0 ? 16 : Layers.Max(l => l.Technique.Length));
        var sb = new StringBuilder();
        sb.Append(inv, $"{"layer".PadRight(w)}  {"technique".PadRight(t)} {"bytes before",12} {"bytes after",12} {"rel. error",10} {"zeroed groups",13}\n");
        foreach (var l in Layers)
            sb.Append(inv, $"{l.Path.PadRight(w)}  {l.Technique.PadRight(t)} {l.BytesBefore,12:N0} {l.BytesAfter,12:N0} {l.RelativeError,10:P2} {l.ZeroedGroups,13:N0}\n");
        // From the stored bytes, not the plan: [MixedPrecision] layers are planned at their smallest width.
        long biasBytes = Plan.Layers.Sum(l => l.BiasBytes);
        double bitsPerWeight = Plan.WeightCount == 0 ? 0 : (TotalBytesAfter - biasBytes) * 8.0 / Plan.WeightCount;
        sb.Append(inv, $"{"total".PadRight(w)}  {string.Create(inv, $"{bitsPerWeight:F2} b/w").PadRight(t)} {TotalBytesBefore,12:N0} {TotalBytesAfter,12:N0}   ratio {CompressionRatio:F2}x\n");
        if (MixedPrecision is { } mixed)
            sb.Append(inv, $"[MixedPrecision] chose {string.Join(", ", mixed.Layers.Select(l => string.Create(inv, $"{l.Path} {l.FormatText}")))} bits: {mixed.PredictedBytes:N0} bytes predicted, budget {mixed.Budget}; fix them in source with:\n{mixed.OverrideAttributes}\n");
        foreach (var l in Layers.Where(l => l.ZeroedGroups > 0))
            sb.Append(inv, $"warning: layer '{l.Path}': {l.ZeroedGroups:N0} quantization group(s) hold only weights with |w| <= ~3e-8 (half the smallest float16 scale) and dequantize to all zeros, so their error is 100%; rescale the layer's weights up (and the next layer's down), or mark the layer [KeepDense].\n");
        return sb.ToString();
    }
}
