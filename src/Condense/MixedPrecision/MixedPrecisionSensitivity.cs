using System.Globalization;
using Condense.Calibration;
using Condense.Catalogue;
using Condense.Compression;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.MixedPrecision;

/// <summary>
/// One <c>[MixedPrecision]</c> layer's sensitivity (HAWQ-V2): Omega(b) = (Tr(H)/n) x ||Q_b(W) - W||^2, with Tr(H) the
/// Hutchinson estimate of the trace of the layer's Hessian block, n its weight count and Q_b the quantizer Compress uses
/// (b bits, symmetric, one scale per row or per group); or, with <see cref="SensitivityWeighting.Diagonal"/>,
/// Omega(b) = sum_j diag(H)_j (Q_b(W) - W)_j^2; or, with <see cref="SensitivityWeighting.TopEigenvalue"/>,
/// Omega(b) = 1/2 lambda_max(H) ||Q_b(W) - W||^2; or, with <see cref="SensitivityMethod.HessianQuadratic"/>,
/// Omega(b) = 1/2 dW^T H dW along dW = Q_b(W) - W; or, with <see cref="SensitivityMethod.MeasuredLoss"/>, the loss
/// increase measured with this layer alone at b bits.
/// </summary>
/// <param name="Path">The layer's path.</param>
/// <param name="LayerIndex">Its index in the plan.</param>
/// <param name="WeightCount">n, the weights of the layer.</param>
/// <param name="Trace">Tr(H) estimate (may be slightly negative from sampling noise; Omega uses max(Tr, 0)); NaN when no trace was estimated (measured loss, quadratic form, top eigenvalue).</param>
/// <param name="TraceStandardError">The estimate's standard error; NaN when no trace was estimated.</param>
/// <param name="Bits">The bit width of each candidate format, ascending (repeated when several group sizes are candidates).</param>
/// <param name="WeightBytes">Exact bytes of the weight at each candidate (packed codes and scales; bias excluded).</param>
/// <param name="SquaredError">||Q_b(W) - W||^2 at each candidate.</param>
/// <param name="Omega">The sensitivity at each candidate.</param>
/// <param name="GroupSizes">The group size of each candidate format (0 = one scale per row); null = all 0.</param>
/// <param name="TopEigenvalue">lambda_max of the layer's curvature block (power iteration), with <see cref="SensitivityWeighting.TopEigenvalue"/>; else NaN.</param>
public sealed record LayerSensitivity(string Path, int LayerIndex, long WeightCount, double Trace, double TraceStandardError,
    IReadOnlyList<int> Bits, IReadOnlyList<long> WeightBytes, IReadOnlyList<double> SquaredError, IReadOnlyList<double> Omega,
    IReadOnlyList<int>? GroupSizes = null, double TopEigenvalue = double.NaN)
{
    /// <summary>The group size of candidate <paramref name="k"/> (0 = one scale per row).</summary>
    public int GroupSizeAt(int k) => GroupSizes is null ? 0 : GroupSizes[k];

    /// <summary>The index of the candidate with <paramref name="bits"/> and <paramref name="groupSize"/>, or -1.</summary>
    public int IndexOf(int bits, int groupSize = 0)
    {
        for (int k = 0; k < Bits.Count; k++) if (Bits[k] == bits && GroupSizeAt(k) == groupSize) return k;
        return -1;
    }
}

/// <summary>
/// The measured sensitivities of a plan's <c>[MixedPrecision]</c> layers, and the exact bit allocation under any budget
/// (<see cref="Allocate"/>). <c>Compress</c> measures once and allocates under the model's budget; a sweep over budgets
/// (a Pareto front) can allocate many times from one measurement.
/// </summary>
public sealed class MixedPrecisionSensitivity
{
    private MixedPrecisionSensitivity(CompressionPlan plan, IReadOnlyList<int> bits, IReadOnlyList<LayerSensitivity> layers, SensitivityLoss loss,
        SensitivityMethod method = SensitivityMethod.HessianTrace)
    {
        Method = method;
        Plan = plan;
        Bits = bits;
        Layers = layers;
        Loss = loss;
        FixedBytes = plan.TotalBytesAfter - layers.Sum(l => plan.Layers[l.LayerIndex].WeightBytesAfter);
        CandidateWeightCount = layers.Sum(l => l.WeightCount);
    }

    /// <summary>The plan whose <c>[MixedPrecision]</c> layers were measured.</summary>
    public CompressionPlan Plan { get; }

    /// <summary>Candidate bit widths, ascending.</summary>
    public IReadOnlyList<int> Bits { get; }

    /// <summary>One entry per <c>[MixedPrecision]</c> layer, in plan order.</summary>
    public IReadOnlyList<LayerSensitivity> Layers { get; }

    /// <summary>The loss whose Hessian was estimated, or whose increase was measured.</summary>
    public SensitivityLoss Loss { get; }

    /// <summary>How Omega was obtained.</summary>
    public SensitivityMethod Method { get; }

    /// <summary>Bytes of everything the allocation does not decide: the other layers, and the candidates' biases.</summary>
    public long FixedBytes { get; }

    /// <summary>Weights of the candidate layers.</summary>
    public long CandidateWeightCount { get; }

    /// <summary>
    /// Measures every <c>[MixedPrecision]</c> layer of <paramref name="plan"/>: Hutchinson traces of the loss Hessian's
    /// diagonal blocks over <paramref name="data"/> and each layer's quantization error at every candidate width, or
    /// (<see cref="MixedPrecisionOptions.Method"/> = <see cref="SensitivityMethod.MeasuredLoss"/>) the loss increase of
    /// each layer alone at each width.
    /// The model is left as it was (weights restored bit for bit).
    /// </summary>
    /// <param name="layers">The model's layers (<c>model.Layers</c>), in plan order, dense.</param>
    /// <param name="forward">The model's Forward.</param>
    /// <param name="rounding">The rounding Compress uses (<c>CompressionOptions.Rounding</c>).</param>
    public static MixedPrecisionSensitivity Measure(CompressionPlan plan, IReadOnlyList<NamedLayer> layers, Func<Tensor, Tensor> forward, CalibrationData data,
        MixedPrecisionOptions? options = null, QuantizationRounding rounding = QuantizationRounding.MseClip)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(data);
        options ??= new MixedPrecisionOptions();
        CheckOptions(options);
        var (bits, indices) = Candidates(plan, layers);
        var formats = indices.Select(i => Formats(plan.Layers[i], bits, options.GroupSizes)).ToArray();
        bool measured = options.Method == SensitivityMethod.MeasuredLoss;
        bool quadratic = options.Method == SensitivityMethod.HessianQuadratic;
        // The measured increase defaults to KL to the float32 outputs: zero at float32 and never negative, where the
        // labelled cross-entropy's increase also carries the first-order term, noise from the calibration labels. The
        // quadratic form takes the same loss: its Gauss-Newton matrix is the KL's exact Hessian at the float32 weights
        // (and the same matrix as the cross-entropy's Gauss-Newton), so a Hessian product then needs no labels either.
        var loss = (measured || quadratic) && options.Loss == SensitivityLoss.Auto ? SensitivityLoss.OutputKl : options.Loss;
        // The measured loss and the Gauss-Newton quadratic form run forward passes only, so they also work inside Tensor.NoGrad().
        bool gradients = !measured && !(quadratic && options.Curvature == SensitivityCurvature.GaussNewton);
        var hessian = new LayerHessian(layers, indices, forward, data, loss, options.RelativeStep, requireGradients: gradients);
        if (measured) return MeasureLoss(plan, layers, bits, indices, formats, hessian, options, rounding);
        if (quadratic) return MeasureQuadratic(plan, layers, bits, indices, formats, hessian, options, rounding);
        if (options.Weighting == SensitivityWeighting.TopEigenvalue) return MeasureTopEigenvalue(plan, layers, bits, indices, formats, hessian, options, rounding);
        Action<int> progress = s => options.Progress?.Report(new MixedPrecisionProgress(s + 1, options.Samples));
        TraceEstimate[] traces;
        double[][]? diagonals = null;
        if (options.Weighting == SensitivityWeighting.Diagonal)
            (traces, diagonals) = HutchinsonTrace.EstimateWithDiagonal(hessian.BlockSizes,
                options.Curvature == SensitivityCurvature.Hessian ? hessian.BlockProduct : hessian.GaussNewtonProduct, options.Samples, options.Seed, progress);
        else
            traces = options.Curvature == SensitivityCurvature.Hessian
                ? HutchinsonTrace.Estimate(hessian.BlockSizes, hessian.Multiply, options.Samples, options.Seed, progress, options.SeparateLayers)
                : HutchinsonTrace.Estimate(hessian.BlockSizes, hessian.GaussNewtonQuadraticForm, options.Samples, options.Seed, progress);

        var result = new LayerSensitivity[indices.Length];
        for (int t = 0; t < indices.Length; t++)
        {
            var lp = plan.Layers[indices[t]];
            var weight = ((WeightedLayer)layers[indices[t]].Layer).Weight.Data;
            var format = formats[t];
            var bytes = new long[format.Length];
            var error = new double[format.Length];
            var omega = new double[format.Length];
            double curvature = Math.Max(traces[t].Trace, 0) / lp.WeightCount;
            var restored = new float[weight.Length];
            for (int k = 0; k < format.Length; k++)
            {
                bytes[k] = WeightBytes(lp, format[k].Bits, format[k].GroupSize);
                GroupQuantizedWeight.Quantize(weight, lp.OutFeatures, lp.InFeatures, Scheme(format[k].Bits, format[k].GroupSize), rounding).Dequantize(restored);
                double sum = 0, weighted = 0;
                for (int j = 0; j < weight.Length; j++)
                {
                    double d = (double)restored[j] - weight[j];
                    sum += d * d;
                    if (diagonals is not null) weighted += diagonals[t][j] * d * d;
                }
                error[k] = sum;
                // The diagonal estimates are unbiased but noisy per weight (some negative): clip the sum, not each term,
                // so the noise averages out instead of adding a positive bias.
                omega[k] = diagonals is null ? curvature * sum : Math.Max(weighted, 0);
            }
            result[t] = new LayerSensitivity(lp.Path, indices[t], lp.WeightCount, traces[t].Trace, traces[t].StandardError,
                format.Select(f => f.Bits).ToArray(), bytes, error, omega, format.Select(f => f.GroupSize).ToArray());
        }
        return new MixedPrecisionSensitivity(plan, bits, result, hessian.Loss);
    }

    /// <summary>
    /// <see cref="SensitivityMethod.MeasuredLoss"/>: each layer alone at each candidate width (dequantized from the stored
    /// format, so the same rounding and scales as Compress), the mean loss over the calibration data, less the float32 loss.
    /// </summary>
    private static MixedPrecisionSensitivity MeasureLoss(CompressionPlan plan, IReadOnlyList<NamedLayer> layers, int[] bits, int[] indices,
        (int Bits, int GroupSize)[][] formats, LayerHessian hessian, MixedPrecisionOptions options, QuantizationRounding rounding)
    {
        double baseline = hessian.MeanLoss();
        var result = new LayerSensitivity[indices.Length];
        int done = 0, total = formats.Sum(f => f.Length);
        for (int t = 0; t < indices.Length; t++)
        {
            var lp = plan.Layers[indices[t]];
            var weight = ((WeightedLayer)layers[indices[t]].Layer).Weight.Data;
            var original = (float[])weight.Clone();
            var format = formats[t];
            var bytes = new long[format.Length];
            var error = new double[format.Length];
            var omega = new double[format.Length];
            try
            {
                for (int k = 0; k < format.Length; k++)
                {
                    bytes[k] = WeightBytes(lp, format[k].Bits, format[k].GroupSize);
                    GroupQuantizedWeight.Quantize(original, lp.OutFeatures, lp.InFeatures, Scheme(format[k].Bits, format[k].GroupSize), rounding).Dequantize(weight);
                    double sum = SquaredDistance(weight, original);
                    error[k] = sum;
                    omega[k] = hessian.MeanLoss() - baseline;
                    options.Progress?.Report(new MixedPrecisionProgress(++done, total));
                }
            }
            finally
            {
                original.CopyTo(weight, 0);
            }
            result[t] = new LayerSensitivity(lp.Path, indices[t], lp.WeightCount, double.NaN, double.NaN,
                format.Select(f => f.Bits).ToArray(), bytes, error, omega, format.Select(f => f.GroupSize).ToArray());
        }
        return new MixedPrecisionSensitivity(plan, bits, result, hessian.Loss, SensitivityMethod.MeasuredLoss);
    }

    /// <summary>Options out of range are named before any pass over the data.</summary>
    private static void CheckOptions(MixedPrecisionOptions options)
    {
        if (!Enum.IsDefined(options.Method))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"MixedPrecisionOptions.Method is {(int)options.Method}, which is not a SensitivityMethod: use MeasuredLoss, HessianQuadratic or HessianTrace."), nameof(options));
        if (!Enum.IsDefined(options.Curvature))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"MixedPrecisionOptions.Curvature is {(int)options.Curvature}, which is not a SensitivityCurvature: use GaussNewton or Hessian."), nameof(options));
        if (!Enum.IsDefined(options.Weighting))
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"MixedPrecisionOptions.Weighting is {(int)options.Weighting}, which is not a SensitivityWeighting: use Trace, Diagonal or TopEigenvalue."), nameof(options));
        if (options.Method == SensitivityMethod.HessianTrace && options.Weighting == SensitivityWeighting.TopEigenvalue && options.PowerIterations < 1)
            throw new ArgumentOutOfRangeException(nameof(options), options.PowerIterations,
                "MixedPrecisionOptions.PowerIterations must be at least 1 for the top-eigenvalue weighting (e.g. 30).");
    }

    /// <summary>
    /// <see cref="SensitivityMethod.HessianQuadratic"/>: Omega = 1/2 dW^T H dW along each format's actual error dW. The
    /// direction is scaled to rms 1 before the product (the finite-difference step is a fraction of the layer's rms
    /// weight along a unit-rms direction, as for the Rademacher probes), and the form scaled back by rms(dW)^2.
    /// </summary>
    private static MixedPrecisionSensitivity MeasureQuadratic(CompressionPlan plan, IReadOnlyList<NamedLayer> layers, int[] bits, int[] indices,
        (int Bits, int GroupSize)[][] formats, LayerHessian hessian, MixedPrecisionOptions options, QuantizationRounding rounding)
    {
        var result = new LayerSensitivity[indices.Length];
        int done = 0, total = formats.Sum(f => f.Length);
        for (int t = 0; t < indices.Length; t++)
        {
            var lp = plan.Layers[indices[t]];
            var weight = ((WeightedLayer)layers[indices[t]].Layer).Weight.Data;
            var format = formats[t];
            var bytes = new long[format.Length];
            var error = new double[format.Length];
            var omega = new double[format.Length];
            var restored = new float[weight.Length];
            var direction = new float[weight.Length];
            var product = options.Curvature == SensitivityCurvature.Hessian ? new double[weight.Length] : null;
            for (int k = 0; k < format.Length; k++)
            {
                bytes[k] = WeightBytes(lp, format[k].Bits, format[k].GroupSize);
                GroupQuantizedWeight.Quantize(weight, lp.OutFeatures, lp.InFeatures, Scheme(format[k].Bits, format[k].GroupSize), rounding).Dequantize(restored);
                double sum = SquaredDistance(restored, weight);
                error[k] = sum;
                if (sum > 0)
                {
                    double rms = Math.Sqrt(sum / weight.Length);
                    for (int j = 0; j < weight.Length; j++) direction[j] = (float)(((double)restored[j] - weight[j]) / rms);
                    double form = product is null ? hessian.GaussNewtonQuadraticForm(t, direction) : hessian.BlockProduct(t, direction, product);
                    // The Gauss-Newton form is never negative; the Hessian's (cross-entropy away from its minimum) can be,
                    // and a negative Omega would make the knapsack buy error.
                    omega[k] = Math.Max(0.5 * sum / weight.Length * form, 0);
                }
                options.Progress?.Report(new MixedPrecisionProgress(++done, total));
            }
            result[t] = new LayerSensitivity(lp.Path, indices[t], lp.WeightCount, double.NaN, double.NaN,
                format.Select(f => f.Bits).ToArray(), bytes, error, omega, format.Select(f => f.GroupSize).ToArray());
        }
        return new MixedPrecisionSensitivity(plan, bits, result, hessian.Loss, SensitivityMethod.HessianQuadratic);
    }

    /// <summary>
    /// <see cref="SensitivityWeighting.TopEigenvalue"/> (Q-BERT): lambda_max of each layer's curvature block by power
    /// iteration from a seeded Rademacher start, then Omega = 1/2 lambda_max ||dW||^2.
    /// </summary>
    private static MixedPrecisionSensitivity MeasureTopEigenvalue(CompressionPlan plan, IReadOnlyList<NamedLayer> layers, int[] bits, int[] indices,
        (int Bits, int GroupSize)[][] formats, LayerHessian hessian, MixedPrecisionOptions options, QuantizationRounding rounding)
    {
        var result = new LayerSensitivity[indices.Length];
        for (int t = 0; t < indices.Length; t++)
        {
            var lp = plan.Layers[indices[t]];
            var weight = ((WeightedLayer)layers[indices[t]].Layer).Weight.Data;
            double lambda = TopEigenvalue(hessian, t, weight.Length, options);
            options.Progress?.Report(new MixedPrecisionProgress(t + 1, indices.Length));
            var format = formats[t];
            var bytes = new long[format.Length];
            var error = new double[format.Length];
            var omega = new double[format.Length];
            var restored = new float[weight.Length];
            for (int k = 0; k < format.Length; k++)
            {
                bytes[k] = WeightBytes(lp, format[k].Bits, format[k].GroupSize);
                GroupQuantizedWeight.Quantize(weight, lp.OutFeatures, lp.InFeatures, Scheme(format[k].Bits, format[k].GroupSize), rounding).Dequantize(restored);
                double sum = SquaredDistance(restored, weight);
                error[k] = sum;
                omega[k] = 0.5 * Math.Max(lambda, 0) * sum;
            }
            result[t] = new LayerSensitivity(lp.Path, indices[t], lp.WeightCount, double.NaN, double.NaN,
                format.Select(f => f.Bits).ToArray(), bytes, error, omega, format.Select(f => f.GroupSize).ToArray(), lambda);
        }
        return new MixedPrecisionSensitivity(plan, bits, result, hessian.Loss, SensitivityMethod.HessianTrace);
    }

    /// <summary>
    /// Power iteration on block <paramref name="block"/>: v := G v / rms(G v), lambda = v^T G v / v^T v (the Rayleigh
    /// quotient), from a Rademacher start seeded by (seed, block). Vectors are kept at rms 1 so the finite-difference
    /// step stays the same fraction of the weights as for the Hutchinson probes.
    /// </summary>
    internal static double TopEigenvalue(LayerHessian hessian, int block, int size, MixedPrecisionOptions options)
    {
        var v = new float[size];
        HutchinsonTrace.FillRademacher(v, Rng.Derive(options.Seed, string.Create(CultureInfo.InvariantCulture, $"power iteration block {block}")));
        var product = new double[size];
        double lambda = 0;
        for (int iteration = 0; iteration < options.PowerIterations; iteration++)
        {
            double form = options.Curvature == SensitivityCurvature.Hessian ? hessian.BlockProduct(block, v, product) : hessian.GaussNewtonProduct(block, v, product);
            double previous = lambda;
            lambda = form / size;
            double squares = 0;
            foreach (double x in product) squares += x * x;
            if (!(squares > 0)) return 0;
            double scale = 1 / Math.Sqrt(squares / size);
            for (int j = 0; j < size; j++) v[j] = (float)(product[j] * scale);
            if (iteration > 0 && Math.Abs(lambda - previous) <= 1e-4 * Math.Abs(lambda)) break;
        }
        return lambda;
    }

    /// <summary>The quantization scheme of a <c>[MixedPrecision]</c> layer at <paramref name="bits"/>: symmetric, one scale per row by default, else per group of <paramref name="groupSize"/>.</summary>
    public static QuantizationScheme Scheme(int bits, int groupSize = 0) => new(bits, groupSize, true);

    /// <summary>Exact bytes of the layer's weight at <paramref name="bits"/> and <paramref name="groupSize"/> (the catalogue's count, bias excluded).</summary>
    public static long WeightBytes(LayerPlan layer, int bits, int groupSize = 0) => KernelCatalogue.GroupQuantizedBytes(layer.OutFeatures, layer.InFeatures, bits, groupSize, true);

    /// <summary>
    /// A layer's candidate formats: every candidate width with one scale per row, and with each of
    /// <paramref name="groupSizes"/> that has a kernel and divides the layer's inputs (narrower than a row); by width, then per-row first,
    /// then larger groups first (so the smallest format of each width comes first).
    /// </summary>
    private static (int Bits, int GroupSize)[] Formats(LayerPlan layer, int[] bits, IReadOnlyList<int>? groupSizes)
    {
        var sizes = (groupSizes is { Count: > 0 } ? groupSizes : [0]).Distinct().ToArray();
        foreach (int g in sizes)
            if (!KernelCatalogue.IsSupportedGroupSize(g))
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"MixedPrecisionOptions.GroupSizes has {g}, which has no kernel: use 0 (one scale per row) or {string.Join(", ", KernelCatalogue.SupportedGroupSizes)}."), nameof(groupSizes));
        // Per row always: it is the format the build sized the budget with, so the smallest allocation stays reachable.
        // A group as wide as the row is the per-row format (same codes, scales and bytes): listed once.
        var usable = sizes.Where(g => g > 0 && g < layer.InFeatures && layer.InFeatures % g == 0).OrderDescending().Prepend(0).ToArray();
        return bits.SelectMany(b => usable.Select(g => (b, g))).ToArray();
    }

    /// <summary>
    /// The allocation of least total Omega whose bytes meet the budget (an exact multiple-choice knapsack over the
    /// catalogue's byte counts).
    /// </summary>
    /// <param name="maxBytes">Upper bound on the whole plan's bytes (weights, scales, biases), 0 = none; by default the plan's MaxBytes.</param>
    /// <param name="averageBits">Upper bound on the candidates' stored bits per weight, 0 = none; by default the plan's AverageBits.</param>
    /// <exception cref="MixedPrecisionBudgetException">Even the smallest bits exceed the budget; the message says by how many bytes.</exception>
    public MixedPrecisionSolution Allocate(long? maxBytes = null, double? averageBits = null)
    {
        long capacity = Capacity(Plan, CandidateWeightCount, maxBytes ?? Plan.MaxBytes, averageBits ?? Plan.AverageBits, FixedBytes, out string budget);
        long smallest = Layers.Sum(l => l.WeightBytes.Min());
        if (smallest > capacity)
            throw new MixedPrecisionBudgetException(string.Create(CultureInfo.InvariantCulture,
                $"Model '{Plan.ModelName}': the [MixedPrecision] budget ({budget}) cannot be met: with every candidate layer at {Bits[0]} bits (one scale per row) the plan takes {FixedBytes + smallest:N0} bytes, {smallest - capacity:N0} bytes over; raise the budget, add a smaller bit width, or compress more layers explicitly."),
                smallest - capacity);
        var choice = MultipleChoiceKnapsack.Solve(Layers.Select(l => l.WeightBytes.ToArray()).ToList(), Layers.Select(l => l.Omega.ToArray()).ToList(), capacity)
            ?? throw new InvalidOperationException("The knapsack found no allocation although the smallest one fits: a bug in Condense.");
        return new MixedPrecisionSolution(Plan, budget, Loss, Method, Layers.Select((l, t) => new LayerBitChoice(l.Path, l.LayerIndex, l.Bits[choice[t]],
            l.WeightBytes[choice[t]] + Plan.Layers[l.LayerIndex].BiasBytes, l.Omega[choice[t]], l.Trace, l.GroupSizeAt(choice[t]))).ToList());
    }

    /// <summary>The allocation <paramref name="bits"/> (per layer path), checked and costed like a solved one.</summary>
    /// <param name="bits">Bits per layer path.</param>
    /// <param name="maxBytes">As for <see cref="Allocate"/>.</param>
    /// <param name="averageBits">As for <see cref="Allocate"/>.</param>
    /// <param name="groupSizes">Group size per layer path (missing = 0, one scale per row); each must have been a measured candidate.</param>
    /// <exception cref="ArgumentException">A candidate layer missing, an unknown path, or bits that are not candidates.</exception>
    /// <exception cref="MixedPrecisionBudgetException">The allocation exceeds the budget.</exception>
    public MixedPrecisionSolution Evaluate(IReadOnlyDictionary<string, int> bits, long? maxBytes = null, double? averageBits = null, IReadOnlyDictionary<string, int>? groupSizes = null)
    {
        ArgumentNullException.ThrowIfNull(bits);
        var chosen = CheckAllocation(Plan, Bits, Layers.Select(l => l.LayerIndex).ToArray(), bits);
        var choices = Layers.Select((l, t) =>
        {
            int g = groupSizes is not null && groupSizes.TryGetValue(l.Path, out int size) ? size : 0;
            int k = l.IndexOf(chosen[t], g);
            if (k < 0)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"Layer '{l.Path}' was not measured at {chosen[t]} bits with group size {g}: measured group sizes are {string.Join(", ", Enumerable.Range(0, l.Bits.Count).Select(l.GroupSizeAt).Distinct())} (MixedPrecisionOptions.GroupSizes)."), nameof(groupSizes));
            return new LayerBitChoice(l.Path, l.LayerIndex, chosen[t], l.WeightBytes[k] + Plan.Layers[l.LayerIndex].BiasBytes, l.Omega[k], l.Trace, g);
        }).ToList();
        return CheckedAllocation(Plan, FixedBytes, CandidateWeightCount, maxBytes ?? Plan.MaxBytes, averageBits ?? Plan.AverageBits, choices, Loss, Method);
    }

    /// <summary>A given allocation without a measurement (Omega and trace unknown), checked against the plan's budget.</summary>
    internal static MixedPrecisionSolution FromAllocation(CompressionPlan plan, IReadOnlyList<NamedLayer>? layers, IReadOnlyDictionary<string, int> bits, long? maxBytes = null, double? averageBits = null,
        IReadOnlyDictionary<string, int>? groupSizes = null)
    {
        var (candidates, indices) = Candidates(plan, layers);
        var chosen = CheckAllocation(plan, candidates, indices, bits);
        if (groupSizes is not null)
            foreach (var path in groupSizes.Keys)
                if (!indices.Any(i => plan.Layers[i].Path == path))
                    throw new ArgumentException($"The [MixedPrecision] group sizes of {plan.ModelName} name '{path}', which is not one of its [MixedPrecision] layers ({string.Join(", ", indices.Select(i => plan.Layers[i].Path))}).", nameof(groupSizes));
        var choices = indices.Select((index, t) =>
        {
            var lp = plan.Layers[index];
            int g = groupSizes is not null && groupSizes.TryGetValue(lp.Path, out int size) ? size : 0;
            if (KernelCatalogue.QuantizationProblem(chosen[t], g, lp.InFeatures) is { } problem)
                throw new ArgumentException($"The [MixedPrecision] allocation of {plan.ModelName} gives layer '{lp.Path}' {chosen[t]} bits with group size {g}: {problem}.", nameof(groupSizes));
            return new LayerBitChoice(lp.Path, index, chosen[t], WeightBytes(lp, chosen[t], g) + lp.BiasBytes, double.NaN, double.NaN, g);
        }).ToList();
        long fixedBytes = plan.TotalBytesAfter - indices.Sum(i => plan.Layers[i].WeightBytesAfter);
        return CheckedAllocation(plan, fixedBytes, indices.Sum(i => plan.Layers[i].WeightCount), maxBytes ?? plan.MaxBytes, averageBits ?? plan.AverageBits, choices, null);
    }

    private static MixedPrecisionSolution CheckedAllocation(CompressionPlan plan, long fixedBytes, long weights, long maxBytes, double averageBits, List<LayerBitChoice> choices, SensitivityLoss? loss, SensitivityMethod method = SensitivityMethod.HessianTrace)
    {
        long candidateBytes = choices.Sum(c => c.BytesAfter - plan.Layers[c.LayerIndex].BiasBytes);
        long capacity = Capacity(plan, weights, maxBytes, averageBits, fixedBytes, out string budget);
        if (candidateBytes > capacity)
            throw new MixedPrecisionBudgetException(string.Create(CultureInfo.InvariantCulture,
                $"Model '{plan.ModelName}': the given [MixedPrecision] allocation takes {fixedBytes + candidateBytes:N0} bytes, {candidateBytes - capacity:N0} bytes over the budget ({budget}); lower some layers' bits."),
                candidateBytes - capacity);
        return new MixedPrecisionSolution(plan, budget, loss, method, choices);
    }

    /// <summary>The bytes the candidates' weights may take under MaxBytes (whole plan) and AverageBits (candidates only).</summary>
    private static long Capacity(CompressionPlan plan, long weights, long maxBytes, double averageBits, long fixedBytes, out string budget)
    {
        var inv = CultureInfo.InvariantCulture;
        long capacity = long.MaxValue;
        var parts = new List<string>();
        if (maxBytes > 0)
        {
            capacity = maxBytes - fixedBytes;
            parts.Add(string.Create(inv, $"MaxBytes = {maxBytes:N0}"));
        }
        if (averageBits > 0)
        {
            capacity = Math.Min(capacity, (long)Math.Floor(averageBits * weights / 8.0));
            parts.Add(string.Create(inv, $"AverageBits = {averageBits:0.###} over {weights:N0} weights"));
        }
        if (parts.Count == 0)
            throw new InvalidOperationException($"Model '{plan.ModelName}' has [MixedPrecision] without a budget: set MaxBytes on [Compressible] or AverageBits on [MixedPrecision].");
        budget = string.Join(" and ", parts);
        return capacity;
    }

    /// <summary>The candidate bits (ascending) and the indices of the [MixedPrecision] layers, checked against the model's layers.</summary>
    internal static (int[] Bits, int[] Indices) Candidates(CompressionPlan plan, IReadOnlyList<NamedLayer>? layers)
    {
        var indices = plan.Layers.Select((l, i) => (l, i)).Where(p => p.l.Technique == LayerTechnique.MixedPrecision).Select(p => p.i).ToArray();
        if (indices.Length == 0)
            throw new InvalidOperationException($"The plan of {plan.ModelName} has no [MixedPrecision] layer.");
        if (plan.MixedPrecisionBits is not { Count: > 0 } declared)
            throw new InvalidOperationException($"Layer '{plan.Layers[indices[0]].Path}' gets its bits from [MixedPrecision], but the plan of {plan.ModelName} lists no candidate bits: put [MixedPrecision] on the outermost model, and rebuild.");
        var bits = declared.Distinct().Order().ToArray();
        foreach (int b in bits)
            if (!KernelCatalogue.IsSupportedBits(b))
                throw new InvalidOperationException($"The plan of {plan.ModelName} lists [MixedPrecision] bit width {b}, which has no kernel: rebuild the project.");
        if (layers is not null)
        {
            if (layers.Count != plan.Layers.Count)
                throw new ArgumentException($"The plan of {plan.ModelName} has {plan.Layers.Count} layers; {layers.Count} were given.", nameof(layers));
            foreach (int i in indices)
                if (layers[i].Path != plan.Layers[i].Path)
                    throw new ArgumentException($"Layer {i} of {plan.ModelName} should be '{plan.Layers[i].Path}', not '{layers[i].Path}': rebuild the project.", nameof(layers));
        }
        return (bits, indices);
    }

    private static int[] CheckAllocation(CompressionPlan plan, IReadOnlyList<int> candidates, int[] indices, IReadOnlyDictionary<string, int> bits)
    {
        var chosen = new int[indices.Length];
        var paths = new HashSet<string>(StringComparer.Ordinal);
        for (int t = 0; t < indices.Length; t++)
        {
            string path = plan.Layers[indices[t]].Path;
            paths.Add(path);
            if (!bits.TryGetValue(path, out int b))
                throw new ArgumentException($"The [MixedPrecision] allocation of {plan.ModelName} gives no bits for layer '{path}': list every [MixedPrecision] layer ({string.Join(", ", indices.Select(i => plan.Layers[i].Path))}).", nameof(bits));
            if (IndexOf(candidates, b) < 0)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"The [MixedPrecision] allocation of {plan.ModelName} gives layer '{path}' {b} bits, which is not a candidate ({string.Join(", ", candidates)})."), nameof(bits));
            chosen[t] = b;
        }
        foreach (var path in bits.Keys)
            if (!paths.Contains(path))
                throw new ArgumentException($"The [MixedPrecision] allocation of {plan.ModelName} names '{path}', which is not one of its [MixedPrecision] layers ({string.Join(", ", paths)}).", nameof(bits));
        return chosen;
    }

    private static int IndexOf(IReadOnlyList<int> values, int value)
    {
        for (int i = 0; i < values.Count; i++) if (values[i] == value) return i;
        return -1;
    }

    /// <summary>||a - b||^2 in double: the squared quantization error every sensitivity starts from.</summary>
    private static double SquaredDistance(float[] a, float[] b)
    {
        double sum = 0;
        for (int j = 0; j < a.Length; j++)
        {
            double d = (double)a[j] - b[j];
            sum += d * d;
        }
        return sum;
    }
}
