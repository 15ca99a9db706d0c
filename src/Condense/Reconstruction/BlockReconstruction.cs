using System.Diagnostics;
using System.Globalization;
using Condense.Nn;
using Condense.Optim;
using Condense.Quantization;

namespace Condense.Reconstruction;

/// <summary>
/// Gradient-based reconstruction after quantization (BRECQ / OmniQuant style, without learned rounding): the integer
/// codes a quantizer chose (round-to-nearest or GPTQ) are kept, so the storage format and its bytes do not change, and
/// the continuous parameters around them (the float16 group scales, the Linear biases and optionally the LayerNorms)
/// are tuned by Adam so that a unit of the model (one encoder block, or the whole model) reproduces the fp32 outputs
/// on calibration batches. docs/reconstruction.md describes the method and the MiniLM result.
/// </summary>
/// <remarks>
/// While tuning, each group-quantized Linear runs on its dequantized weight W = s (q - z) as a dense float32 tensor,
/// so the ordinary Linear backward gives dL/dW; the chain rule through W gives each group's scale gradient
/// dL/ds = sum over the group of dL/dW (q - z). The scale is tuned as a relative factor s = s0 (1 + u) and rounded to
/// float16 in the forward pass (the gradient passes the rounding unchanged), so what is tuned is exactly what is stored.
/// </remarks>
public static class BlockReconstruction
{
    /// <summary>
    /// Tunes <paramref name="layers"/> so that <paramref name="forward"/>(i) approaches <paramref name="targets"/>[i]
    /// over the calibration batches i = 0 .. targets.Count - 1.
    /// </summary>
    /// <param name="layers">
    /// The unit's parameters: Linear layers whose weight is a <see cref="GroupQuantizedWeight"/> (their scales and
    /// biases are tuned) and <see cref="LayerNorm"/>s (tuned with <see cref="ReconstructionParameters.LayerNorms"/>).
    /// The paths name them in errors.
    /// </param>
    /// <param name="forward">
    /// Runs the unit on calibration batch i and returns its output. It is called with gradients enabled while tuning
    /// (it must not enter <see cref="Tensor.NoGrad"/>) and under NoGrad to measure the loss before and after.
    /// Its inputs must not require gradients.
    /// </param>
    /// <param name="targets">The fp32 output for each batch, the shape <paramref name="forward"/> returns.</param>
    /// <param name="options">Steps, learning rates, seed, which parameters, the loss; null for the defaults.</param>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range (named).</exception>
    /// <exception cref="ArgumentException">A layer that is neither a group-quantized Linear nor a LayerNorm, no targets, or an output whose shape differs from its target.</exception>
    /// <exception cref="ReconstructionException">The loss or a scale gradient became NaN or infinite; the unit is restored.</exception>
    public static ReconstructionReport Run(IReadOnlyList<NamedLayer> layers, Func<int, Tensor> forward, IReadOnlyList<Tensor> targets, ReconstructionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(targets);
        options ??= new ReconstructionOptions();
        options.Validate();
        if (targets.Count == 0)
            throw new ArgumentException("BlockReconstruction: no calibration batches (targets is empty); pass one fp32 output per batch.", nameof(targets));
        for (int i = 0; i < targets.Count; i++)
            if (targets[i] is null) throw new ArgumentException(Invariant($"BlockReconstruction: targets[{i}] is null."), nameof(targets));

        var linears = new List<TunableLinear>();
        var norms = new List<(string Path, LayerNorm Norm, float[] Weight, float[] Bias)>();
        foreach (var (path, layer) in layers)
        {
            switch (layer)
            {
                case Linear { CompressedWeight: GroupQuantizedWeight } linear:
                    linears.Add(new TunableLinear(path, linear));
                    break;
                case LayerNorm norm:
                    norms.Add((path, norm, (float[])norm.Weight.Data.Clone(), (float[])norm.Bias.Data.Clone()));
                    break;
                case Linear linear:
                    throw new ArgumentException(Invariant($"BlockReconstruction: layer '{path}' ({linear.Description}) is {(linear.CompressedWeight is null ? "dense" : linear.CompressedWeight.Format)}; only group-quantized Linear layers (round-to-nearest or GPTQ) and LayerNorms are tuned: compress it first or leave it out of the list."), nameof(layers));
                default:
                    throw new ArgumentException(Invariant($"BlockReconstruction: layer '{path}' is a {layer?.GetType().Name ?? "null"}; only group-quantized Linear layers and LayerNorms are tuned: leave it out of the list."), nameof(layers));
            }
        }

        var clock = Stopwatch.StartNew();
        bool tuneScales = (options.Parameters & ReconstructionParameters.Scales) != 0;
        bool tuneBiases = (options.Parameters & ReconstructionParameters.Biases) != 0;
        bool tuneNorms = (options.Parameters & ReconstructionParameters.LayerNorms) != 0;
        var scaleParameters = new List<Tensor>();
        var otherParameters = new List<Tensor>();
        long tunedScales = 0, tunedParameters = 0;
        foreach (var l in linears)
        {
            if (tuneScales) { scaleParameters.Add(l.Factors); tunedScales += l.Factors.Length; }
            if (tuneBiases && l.Layer.Bias is { } bias) { otherParameters.Add(bias); tunedParameters += bias.Length; }
        }
        if (tuneNorms)
            foreach (var n in norms) { otherParameters.Add(n.Norm.Weight); otherParameters.Add(n.Norm.Bias); tunedParameters += 2L * n.Norm.Size; }

        try
        {
            foreach (var l in linears) l.Install();
            double before = MeanLoss(forward, targets, options.Loss);
            if (!double.IsFinite(before))
                throw new ReconstructionException(Invariant($"BlockReconstruction: the loss before tuning is {before} (a NaN or infinity in the unit's outputs or the targets); check the calibration inputs and targets."));

            var scaleOptimizer = scaleParameters.Count > 0 ? new AdamW(scaleParameters, options.LearningRate, weightDecay: 0f) : null;
            var otherOptimizer = otherParameters.Count > 0 ? new AdamW(otherParameters, options.ParameterLearningRate, weightDecay: 0f) : null;
            var rng = new Rng(Rng.Derive(options.Seed, "BlockReconstruction"));
            var order = Enumerable.Range(0, targets.Count).ToArray();
            int steps = tunedScales + tunedParameters > 0 ? options.Steps : 0;
            for (int step = 0; step < steps; step++)
            {
                if (step % order.Length == 0) rng.Shuffle(order.AsSpan());
                int batch = order[step % order.Length];
                ClearGradients(linears, norms);
                var output = forward(batch);
                var loss = Loss(output, targets[batch], options.Loss, batch);
                float value = loss.Data[0];
                if (!float.IsFinite(value))
                    throw new ReconstructionException(Invariant($"BlockReconstruction: the loss is {value} at step {step + 1} (batch {batch}); lower ReconstructionOptions.LearningRate ({options.LearningRate}) or ParameterLearningRate ({options.ParameterLearningRate}), or check the batch's inputs."));
                if (!loss.RequiresGrad)
                    throw new ArgumentException("BlockReconstruction: the forward's output does not depend on the tuned layers (it was computed under Tensor.NoGrad or from other layers); run the unit's layers with gradients enabled.", nameof(forward));
                loss.Backward();
                if (tuneScales)
                    foreach (var l in linears)
                        l.ScaleGradient(step + 1);
                scaleOptimizer?.Step();
                otherOptimizer?.Step();
                foreach (var l in linears) l.Install();
                options.Progress?.Report((step + 1, value));
            }

            double after = MeanLoss(forward, targets, options.Loss);
            if (!double.IsFinite(after))
                throw new ReconstructionException(Invariant($"BlockReconstruction: the loss after {steps} steps is {after}; lower the learning rates."));
            bool keep = !options.KeepOnlyIfBetter || after < before;
            ClearGradients(linears, norms);
            if (keep)
            {
                foreach (var l in linears) l.Commit();
            }
            else
            {
                Restore(linears, norms);
                after = before;
            }
            return new ReconstructionReport(before, after, steps, keep, clock.Elapsed.TotalSeconds, tunedScales, tunedParameters);
        }
        catch
        {
            // Left untouched on error: the original storages (same objects), biases and LayerNorms come back.
            Restore(linears, norms);
            throw;
        }
    }

    /// <summary>The loss of one output against its target, recorded for backward when the output is.</summary>
    /// <exception cref="ArgumentException">The shapes differ.</exception>
    internal static Tensor Loss(Tensor output, Tensor target, ReconstructionLoss kind, int batch)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (!output.Shape.AsSpan().SequenceEqual(target.Shape) || output.Length == 0)
            throw new ArgumentException(Invariant($"BlockReconstruction: batch {batch}'s output is {Tensor.FormatShape(output.Shape)} but its target is {Tensor.FormatShape(target.Shape)}; pass the fp32 output of the same batch."));
        var y = output.Data;
        var t = target.Data;
        if (kind == ReconstructionLoss.MeanSquaredError)
        {
            double sum = 0;
            for (int i = 0; i < y.Length; i++) { double d = (double)y[i] - t[i]; sum += d * d; }
            var result = new Tensor([(float)(sum / y.Length)]);
            return Tensor.Record(result, () =>
            {
                float g = result.Grad!.Data[0] * 2f / y.Length;
                var gy = output.GradSpan();
                for (int i = 0; i < y.Length; i++) gy[i] += g * (y[i] - t[i]);
            }, output);
        }
        int width = output.Shape[^1], rows = output.Length / width;
        var cosines = new double[rows];
        var norms = new double[rows * 2];
        double total = 0;
        for (int r = 0; r < rows; r++)
        {
            double dot = 0, yy = 0, tt = 0;
            for (int c = r * width; c < (r + 1) * width; c++) { dot += (double)y[c] * t[c]; yy += (double)y[c] * y[c]; tt += (double)t[c] * t[c]; }
            double ny = Math.Sqrt(Math.Max(yy, 1e-30)), nt = Math.Sqrt(Math.Max(tt, 1e-30));
            cosines[r] = dot / (ny * nt);
            norms[2 * r] = ny;
            norms[2 * r + 1] = nt;
            total += 1 - cosines[r];
        }
        var cosineLoss = new Tensor([(float)(total / rows)]);
        return Tensor.Record(cosineLoss, () =>
        {
            double g = cosineLoss.Grad!.Data[0] / rows;
            var gy = output.GradSpan();
            for (int r = 0; r < rows; r++)
            {
                double ny = norms[2 * r], nt = norms[2 * r + 1], cos = cosines[r];
                // d(1 - cos)/dy = -(t / (|y||t|) - cos y / |y|^2)
                for (int c = r * width; c < (r + 1) * width; c++)
                    gy[c] += (float)(-g * (t[c] / (ny * nt) - cos * y[c] / (ny * ny)));
            }
        }, output);
    }

    private static double MeanLoss(Func<int, Tensor> forward, IReadOnlyList<Tensor> targets, ReconstructionLoss kind)
    {
        using var noGrad = Tensor.NoGrad();
        double sum = 0;
        for (int i = 0; i < targets.Count; i++) sum += Loss(forward(i), targets[i], kind, i).Data[0];
        return sum / targets.Count;
    }

    private static void ClearGradients(List<TunableLinear> linears, List<(string Path, LayerNorm Norm, float[] Weight, float[] Bias)> norms)
    {
        foreach (var l in linears) l.ClearGradients();
        foreach (var n in norms) { n.Norm.Weight.Grad = null; n.Norm.Bias.Grad = null; }
    }

    private static void Restore(List<TunableLinear> linears, List<(string Path, LayerNorm Norm, float[] Weight, float[] Bias)> norms)
    {
        foreach (var l in linears) l.Restore();
        foreach (var n in norms)
        {
            n.Weight.CopyTo(n.Norm.Weight.Data, 0);
            n.Bias.CopyTo(n.Norm.Bias.Data, 0);
            n.Norm.Weight.Grad = null;
            n.Norm.Bias.Grad = null;
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// One group-quantized Linear being tuned: its codes as (q - z) per weight, the starting scales s0, the relative
/// factors u (s = s0 (1 + u)), and the original storage and bias to restore.
/// </summary>
internal sealed class TunableLinear
{
    private readonly GroupQuantizedWeight _original;
    private readonly float[] _originalBias;
    private readonly float[] _codes;          // q - z per weight, row-major (exact small integers)
    private readonly float[] _initialScales;  // s0 per group, row-major
    private readonly int _groupSize;
    private readonly int _groupsPerRow;

    public TunableLinear(string path, Linear layer)
    {
        Path = path;
        Layer = layer;
        _original = (GroupQuantizedWeight)layer.CompressedWeight!;
        _originalBias = layer.Bias is { } b ? (float[])b.Data.Clone() : [];
        int outF = layer.OutFeatures, inF = layer.InFeatures;
        _groupSize = _original.Scheme.GroupSize == 0 ? inF : _original.Scheme.GroupSize;
        _groupsPerRow = _original.Scales.Length / outF;
        // The same codes and zero points with every scale 1 dequantize to q - z exactly.
        var ones = new Half[_original.Scales.Length];
        ones.AsSpan().Fill(Half.One);
        _codes = new float[outF * inF];
        GroupQuantizedWeight.FromParts(outF, inF, _original.Scheme, _original.Packed, ones, _original.ZeroPoints).Dequantize(_codes);
        _initialScales = new float[_original.Scales.Length];
        for (int i = 0; i < _initialScales.Length; i++) _initialScales[i] = (float)_original.Scales[i];
        Factors = new Tensor(new float[_initialScales.Length], _initialScales.Length) { RequiresGrad = true };
    }

    public string Path { get; }

    public Linear Layer { get; }

    /// <summary>u per group: the tuned scale is s0 (1 + u), rounded to float16.</summary>
    public Tensor Factors { get; }

    /// <summary>Whether the forward rounds the scales to float16 (the stored precision); off only in gradient tests.</summary>
    internal bool RoundScales { get; set; } = true;

    /// <summary>The scale group <paramref name="group"/> has now (what <see cref="Commit"/> stores).</summary>
    internal float Scale(int group)
    {
        float s = _initialScales[group] * (1f + Factors.Data[group]);
        // An asymmetric grid's scales are >= 0 (FromParts checks it); a symmetric one keeps its sign.
        if (!_original.Scheme.Symmetric) s = MathF.Max(s, 0f);
        return RoundScales ? (float)(Half)s : s;
    }

    /// <summary>Writes W = s (q - z) into the layer's dense weight, which its Forward then uses (and its backward differentiates).</summary>
    public void Install()
    {
        int inF = Layer.InFeatures;
        // The first call makes the layer dense (LoadWeight); later calls overwrite that tensor, which the optimizer's
        // gradients and the forward share.
        bool first = Layer.CompressedWeight is not null;
        var w = first ? new float[_codes.Length] : Layer.Weight.Data;
        for (int group = 0; group < _initialScales.Length; group++)
        {
            int row = group / _groupsPerRow, start = row * inF + group % _groupsPerRow * _groupSize;
            float s = Scale(group);
            for (int i = start; i < start + _groupSize; i++) w[i] = s * _codes[i];
        }
        if (first) Layer.LoadWeight(w);
    }

    /// <summary>dL/du per group from the dense weight's gradient: s0 * sum over the group of dL/dW (q - z).</summary>
    /// <exception cref="ReconstructionException">A gradient is not finite.</exception>
    public void ScaleGradient(int step)
    {
        var gw = Layer.Weight.Grad?.Data;
        var gu = Factors.GradSpan();
        gu.Clear();
        if (gw is null) return;
        int inF = Layer.InFeatures;
        for (int group = 0; group < _initialScales.Length; group++)
        {
            int row = group / _groupsPerRow, start = row * inF + group % _groupsPerRow * _groupSize;
            double sum = 0;
            for (int i = start; i < start + _groupSize; i++) sum += (double)gw[i] * _codes[i];
            float g = (float)(sum * _initialScales[group]);
            if (!float.IsFinite(g))
                throw new ReconstructionException(string.Create(CultureInfo.InvariantCulture,
                    $"BlockReconstruction: the scale gradient of '{Path}' (row {row}, group {group % _groupsPerRow}) is {g} at step {step}; lower the learning rates or check the inputs."));
            gu[group] = g;
        }
    }

    public void ClearGradients()
    {
        if (Layer.CompressedWeight is null) Layer.Weight.Grad = null;
        if (Layer.Bias is { } b) b.Grad = null;
        Factors.Grad = null;
    }

    /// <summary>Stores the tuned scales (float16) with the same codes and zero points: same format, same bytes.</summary>
    public void Commit()
    {
        var scales = new Half[_initialScales.Length];
        bool changed = false;
        for (int group = 0; group < scales.Length; group++)
        {
            scales[group] = (Half)Scale(group);
            changed |= scales[group] != _original.Scales[group];
        }
        Layer.SetCompressedWeight(changed
            ? GroupQuantizedWeight.FromParts(Layer.OutFeatures, Layer.InFeatures, _original.Scheme, _original.Packed, scales, _original.ZeroPoints)
            : _original);
        if (Layer.Bias is { } b) b.Grad = null;
    }

    /// <summary>The original storage object and bias back.</summary>
    public void Restore()
    {
        Layer.SetCompressedWeight(_original);
        if (Layer.Bias is { } b)
        {
            _originalBias.CopyTo(b.Data, 0);
            b.Grad = null;
        }
        Factors.Data.AsSpan().Clear();
    }
}
