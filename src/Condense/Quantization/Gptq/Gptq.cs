using System.Globalization;
using System.Numerics.Tensors;
using Condense.Calibration;
using Condense.Catalogue;
using Condense.Kernels;
using Condense.Nn;

namespace Condense.Quantization;

/// <summary>Settings of <see cref="Gptq"/>.</summary>
public sealed record GptqOptions
{
    /// <summary>Columns per lazy block: errors inside a block update its columns at once, the rest of the matrix once per block. Default 128.</summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>
    /// Damping added to the Hessian's diagonal, as a fraction of its mean diagonal (GPTQ's percdamp). Default 0.01.
    /// When the damped Hessian is still not positive definite, it is retried at 10x and 100x this value before the
    /// error (0 means no damping and no retry).
    /// </summary>
    public double DampingPercent { get; init; } = 0.01;

    /// <summary>
    /// Quantize columns in decreasing order of the Hessian's diagonal (GPTQ's act-order). With groups, every group's
    /// scale is then chosen up front from the original weights (GPTQ's static groups), so the stored format keeps
    /// contiguous column groups and the kernels are unchanged. Default true: it costs nothing (one sort) and lowered
    /// MiniLM's error at every calibration size measured (samples/Condense.MiniLM/README.md); false quantizes the
    /// columns in order, with each group's scale chosen from the error-updated weights.
    /// </summary>
    public bool ActOrder { get; init; } = true;

    /// <summary>
    /// Record the inputs block by block (GPTQ's sequential mode): the GPTQ layers of the first nested block (or the
    /// model's own layers: the path's parent, <c>layers[2]</c> for <c>layers[2].query</c>) are recorded over the
    /// dense model and quantized; the next block's inputs are then recorded with those layers replaced by their
    /// dequantized values, so each layer corrects for the error of the blocks before it. One calibration pass per
    /// block instead of one in all; the model's weights are restored before <c>Compress</c> stores anything.
    /// Default false: every layer's inputs come from the dense model.
    /// </summary>
    public bool Sequential { get; init; }

    /// <summary>
    /// After the columns are quantized, refit each output row's group scales (codes and zero points kept) to the
    /// least-squares optimum of the layer's damped reconstruction loss (w - s q)^T H (w - s q), all groups of the row
    /// together (a groups x groups system per row), rounded to the stored float16; a row keeps its scales when the
    /// refit is not strictly better. The scale search GPTQ inherits from round-to-nearest sees only a group's own
    /// weights; this one sees the inputs' correlations. Costs one Out x In x In product per layer. Default true.
    /// </summary>
    public bool RefitScales { get; init; } = true;

    /// <summary>
    /// Rounds of (GPTQ column pass, scale refit) with static group scales (act-order or per-row scales): each round
    /// after the first re-runs the column pass from the original weights with the scales the previous refit chose, then
    /// refits again; each output row keeps the codes and scales of its round with the lowest damped layer loss, so more
    /// rounds never raise a row's loss. More than one round needs <see cref="RefitScales"/> and, with groups smaller than a
    /// row, <see cref="ActOrder"/> (<see cref="Gptq.Quantize"/> refuses the other combinations). Default 1.
    /// </summary>
    public int RefitRounds { get; init; } = 1;

    /// <summary>
    /// Fold the quantized layer's mean output shift over the calibration rows into its bias (bias correction):
    /// b += W mu_ref - Q mu, with mu the mean input the layer saw in calibration and mu_ref the dense model's (the same
    /// as mu unless <see cref="FullPrecisionTarget"/>), so the layer's mean output over the calibration set is the dense
    /// model's. Layers without a bias are left as they are. With <see cref="Sequential"/> the later blocks are recorded
    /// with the corrected biases. Default false.
    /// </summary>
    public bool BiasCorrection { get; init; }

    /// <summary>
    /// With <see cref="Sequential"/>: each layer's target is the dense model's output on the dense model's inputs,
    /// min ||W X_ref - Q X||^2 over the inputs X of the partly quantized model (asymmetric calibration, as GPTAQ), rather
    /// than W X. GPTQ then runs on the least-squares weight for that target, W' = W + W C H^-1 with C = (X_ref - X) X^T,
    /// which has the same minimiser (the two losses differ by a constant). Costs a second calibration pass per block,
    /// over the dense model, whose inputs are kept in memory for that block. Needs Sequential (refused without it). Default false.
    /// </summary>
    public bool FullPrecisionTarget { get; init; }
}

/// <summary>
/// GPTQ (Frantar et al. 2022): quantizes a weight column by column, spreading each column's rounding error over the
/// columns not yet quantized through the inverse Hessian of the layer's reconstruction loss, H = 2 X^T X / N + damping.
/// The result is a <see cref="GroupQuantizedWeight"/> in the same packed format as round-to-nearest.
/// </summary>
/// <remarks>
/// Steps: dead inputs (H_ii = 0) get H_ii = 1 and zero weights; damping; the upper Cholesky factor U of H^-1
/// (H^-1 = U^T U); then blocks of <see cref="GptqOptions.BlockSize"/> columns, each column quantized, its error
/// divided by U_ii and applied to the block's later columns, the block's errors applied to the remaining columns by one
/// matrix product. U comes from one Cholesky and one triangular inverse: with J the reversal, J H J = M M^T gives
/// U = J M^-1 J. Both, and the lazy updates, run blocked on <see cref="Gemm"/>, which gives the same bits at any thread
/// count. Without act-order a group's scale is chosen when its first column is reached, from the updated weights
/// (as GPTQ does); per-row scales are chosen up front.
/// </remarks>
public static class Gptq
{
    /// <summary>Times the damping is raised tenfold when the damped Hessian's Cholesky factor fails, before the error.</summary>
    private const int DampingRetries = 2;

    /// <summary>Quantizes the row-major weight [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>] with GPTQ.</summary>
    /// <exception cref="ArgumentException">A shape, scheme or statistics mismatch, or a NaN/Inf weight.</exception>
    /// <exception cref="InvalidOperationException">The damped Hessian is not positive definite (the column is named), or holds NaN.</exception>
    public static GroupQuantizedWeight Quantize(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, QuantizationScheme scheme,
        LayerStatistics statistics, GptqOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        options ??= new GptqOptions();
        if (outFeatures <= 0 || inFeatures <= 0)
            throw new ArgumentException(Invariant($"the weight is [{outFeatures}, {inFeatures}]; expected positive sizes"), nameof(outFeatures));
        if (KernelCatalogue.QuantizationProblem(scheme.Bits, scheme.GroupSize, inFeatures) is { } problem)
            throw new ArgumentException(problem, nameof(scheme));
        if (weight.Length != (long)outFeatures * inFeatures)
            throw new ArgumentException(Invariant($"weight has {weight.Length} values; expected {outFeatures} x {inFeatures}"), nameof(weight));
        statistics.ThrowIfNotFor(inFeatures, nameof(statistics));
        if (options.RefitRounds < 1)
            throw new ArgumentException(Invariant($"RefitRounds is {options.RefitRounds}; expected 1 or more rounds of GPTQ and scale refit"), nameof(options));
        if (options.RefitRounds > 1 && !options.RefitScales)
            throw new ArgumentException(Invariant($"RefitRounds is {options.RefitRounds} with RefitScales off: each round after the first starts from the refit scales; set RefitScales = true or RefitRounds = 1"), nameof(options));
        if (options.RefitRounds > 1 && !options.ActOrder && scheme.GroupSize != 0 && scheme.GroupSize < inFeatures)
            throw new ArgumentException(Invariant($"RefitRounds is {options.RefitRounds} without ActOrder on groups of {scheme.GroupSize}: rounds need the group scales fixed before the column pass (act-order or one group per row); set ActOrder = true or RefitRounds = 1"), nameof(options));
        if (options.FullPrecisionTarget && !options.Sequential)
            throw new ArgumentException("FullPrecisionTarget needs Sequential = true (the dense model's inputs are recorded block by block as the model is quantized); set Sequential = true or FullPrecisionTarget = false", nameof(options));
        if (options.BlockSize <= 0)
            throw new ArgumentException(Invariant($"BlockSize is {options.BlockSize}; expected a positive number of columns"), nameof(options));
        if (!(options.DampingPercent >= 0) || !double.IsFinite(options.DampingPercent))
            throw new ArgumentException(Invariant($"DampingPercent is {options.DampingPercent}; expected a finite fraction >= 0 (GPTQ uses 0.01)"), nameof(options));
        for (int i = 0; i < weight.Length; i++)
            if (!float.IsFinite(weight[i]))
                throw new ArgumentException(Invariant($"weight[row {i / inFeatures}, column {i % inFeatures}] is {weight[i]}; quantization expects finite weights"), nameof(weight));

        return scheme.Bits switch
        {
            2 => Run<Bits2>(weight, outFeatures, inFeatures, scheme, statistics, options),
            3 => Run<Bits3>(weight, outFeatures, inFeatures, scheme, statistics, options),
            4 => Run<Bits4>(weight, outFeatures, inFeatures, scheme, statistics, options),
            _ => Run<Bits8>(weight, outFeatures, inFeatures, scheme, statistics, options),
        };
    }

    private static GroupQuantizedWeight Run<TBits>(ReadOnlySpan<float> weight, int m, int n, QuantizationScheme scheme, LayerStatistics statistics, GptqOptions options)
        where TBits : struct, IBitWidth
    {
        int bits = TBits.Bits, maxLevel = (1 << bits) - 1;
        int groupSize = scheme.GroupSize == 0 ? n : scheme.GroupSize;
        int groups = n / groupSize;
        bool symmetric = scheme.Symmetric;

        // H = 2 X^T X / N, in the column order GPTQ will use.
        var xtx = statistics.XtX;
        var diagonal = new float[n];
        for (int i = 0; i < n; i++) diagonal[i] = xtx[(long)i * n + i];
        for (long i = 0; i < xtx.LongLength; i++)
            if (!float.IsFinite(xtx[i]))
                throw new InvalidOperationException(Invariant($"the calibration statistics X^T X hold {xtx[i]} at [{i / n}, {i % n}]; the activations overflowed float32: scale the inputs down"));

        // Transposed working copy: column i of W is the contiguous row i of wt, so column steps are vector operations.
        var wt = new float[(long)n * m];
        for (int o = 0; o < m; o++)
            for (int i = 0; i < n; i++) wt[(long)i * m + o] = weight[o * n + i];
        // Dead inputs (never active in calibration): GPTQ sets H_ii = 1 and zeroes the weights, which no input reaches.
        var dead = new bool[n];
        for (int i = 0; i < n; i++)
        {
            if (diagonal[i] != 0f) continue;
            dead[i] = true;
            Array.Clear(wt, i * m, m);
        }

        var perm = new int[n];
        for (int i = 0; i < n; i++) perm[i] = i;
        if (options.ActOrder)
            Array.Sort(perm, (a, b) => diagonal[a] != diagonal[b] ? diagonal[b].CompareTo(diagonal[a]) : a.CompareTo(b));

        // Group parameters, transposed [group, out] for the column loop. Chosen up front for per-row scales and for
        // act-order (static groups); otherwise when each group's first column is reached.
        var scales = new float[(long)groups * m];
        var zeros = new float[(long)groups * m];
        var storedScales = new Half[(long)m * groups];
        var storedZeros = new byte[(long)m * groups];
        bool upFront = groups == 1 || options.ActOrder;

        // Permuted, scaled and damped Hessian, flipped (J H J) for the factorization.
        float scale = (float)(2.0 / statistics.SampleCount);
        var a = new float[(long)n * n];
        double mean = 0;
        for (int i = 0; i < n; i++) mean += dead[i] ? 1.0 : (double)diagonal[i] * scale;
        double percent = options.DampingPercent;
        for (int attempt = 0; ; attempt++)
        {
            float damping = (float)(percent * mean / n);
            for (int r = 0; r < n; r++)
            {
                int pr = perm[n - 1 - r];
                for (int c = 0; c <= r; c++)
                {
                    int pc = perm[n - 1 - c];
                    float v = pr == pc ? (dead[pr] ? 1f : xtx[(long)pr * n + pr] * scale) + damping : xtx[(long)pr * n + pc] * scale;
                    a[(long)r * n + c] = v;
                }
            }
            try
            {
                DenseCholesky.FactorLower(a, n, column => perm[n - 1 - column]);
                break;
            }
            // Nearly dependent inputs (e.g. im2col rows of a mostly blank image) can leave a float32 pivot at or below
            // zero at the requested damping: retry at 10x and 100x before refusing (none when the caller asked for 0).
            catch (InvalidOperationException) when (percent > 0 && attempt < DampingRetries)
            {
                percent *= 10;
            }
            catch (InvalidOperationException e) when (attempt > 0)
            {
                throw new InvalidOperationException(Invariant($"{e.Message} (tried DampingPercent {options.DampingPercent}, then {options.DampingPercent * 10} and {percent})"), e);
            }
        }
        var inverse = DenseCholesky.InvertLower(a, n);
        // U = J M^-1 J, upper: U[i, j] = M^-1[n-1-i, n-1-j]; reuse a.
        var u = a;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) u[(long)i * n + j] = j >= i ? inverse[(long)(n - 1 - i) * n + (n - 1 - j)] : 0f;
        inverse = null;

        // Full-precision target: W' = W + W C H^-1, here transposed and permuted, P W'^T = P W^T + U^T U (P C^T W^T).
        float[]? target = null;
        if (statistics.ReferenceCross is { } cross)
        {
            // H here is 2 X^T X / N + damping: C takes the same factor.
            var cw = new float[(long)n * m];
            Gemm.MatMulTransposedA(cross, wt, cw, n, n, m);
            TensorPrimitives.Multiply(cw, scale, cw);
            var r = new float[(long)n * m];
            for (int k = 0; k < n; k++) Array.Copy(cw, (long)perm[k] * m, r, (long)k * m, m);
            Gemm.MatMul(u, r, cw, n, n, m);
            Gemm.MatMulTransposedA(u, cw, r, n, n, m);
            for (int k = 0; k < n; k++)
            {
                if (dead[perm[k]]) continue;
                TensorPrimitives.Add(wt.AsSpan((int)((long)perm[k] * m), m), r.AsSpan((int)((long)k * m), m), wt.AsSpan((int)((long)perm[k] * m), m));
            }
            target = new float[(long)m * n];
            for (int o = 0; o < m; o++)
                for (int i = 0; i < n; i++) target[(long)o * n + i] = wt[(long)i * m + o];
        }
        if (upFront)
            for (int g = 0; g < groups; g++) ChooseGroup<TBits>(wt, m, g, g * groupSize, groupSize, symmetric, scales, zeros, storedScales, storedZeros, groups);

        var codes = new int[(long)n * m];   // row k = codes of column perm[k]
        if (options.ActOrder)
        {
            // Rows of wt in processing order (without act-order perm is the identity and wt is already in order).
            var permuted = new float[wt.LongLength];
            for (int k = 0; k < n; k++) Array.Copy(wt, (long)perm[k] * m, permuted, (long)k * m, m);
            wt = permuted;
        }

        int blockSize = options.BlockSize;
        var negativeErrors = new float[(long)Math.Min(blockSize, n) * m];
        var trailing = new float[(long)Math.Min(blockSize, n) * n];
        var inversePerm = new int[n];
        for (int k = 0; k < n; k++) inversePerm[perm[k]] = k;
        int rounds = options.RefitScales && upFront ? options.RefitRounds : 1;
        var start = rounds > 1 ? wt.ToArray() : null;
        int[]? bestCodes = null;
        Half[]? bestScales = null;
        double[]? bestLoss = null, rowLoss = rounds > 1 ? new double[m] : null;
        for (int round = 0; round < rounds; round++)
        {
            if (round > 0)
            {
                // Again from the original weights, with the refit scales of the round before.
                start!.AsSpan().CopyTo(wt);
                for (int o = 0; o < m; o++)
                    for (int g = 0; g < groups; g++) scales[(long)g * m + o] = (float)storedScales[(long)o * groups + g];
            }
            for (int i1 = 0; i1 < n; i1 += blockSize)
            {
                int i2 = Math.Min(i1 + blockSize, n), count = i2 - i1;
                for (int k = i1; k < i2; k++)
                {
                    int column = perm[k], g = column / groupSize;
                    if (!upFront && column % groupSize == 0)
                        ChooseGroup<TBits>(wt, m, g, k, groupSize, symmetric, scales, zeros, storedScales, storedZeros, groups);
                    var w = wt.AsSpan((int)((long)k * m), m);
                    var s = scales.AsSpan(g * m, m);
                    var z = zeros.AsSpan(g * m, m);
                    var q = codes.AsSpan((int)((long)k * m), m);
                    var error = negativeErrors.AsSpan((k - i1) * m, m);
                    float d = u[(long)k * n + k];
                    for (int o = 0; o < m; o++)
                    {
                        int code = GptqGrid.Code(w[o], s[o], (int)z[o], maxLevel);
                        q[o] = code;
                        error[o] = (s[o] * (code - z[o]) - w[o]) / d;
                    }
                    // The block's later columns take this column's error now (GPTQ's W1[:, j] -= err * Hinv1[i, j]).
                    for (int j = k + 1; j < i2; j++)
                    {
                        float h = u[(long)k * n + j];
                        if (h != 0f) TensorPrimitives.MultiplyAdd(error, h, wt.AsSpan((int)((long)j * m), m), wt.AsSpan((int)((long)j * m), m));
                    }
                }
                // Lazy update of the columns after the block: wt[i2:] += U[i1:i2, i2:]^T (-E).
                int rest = n - i2;
                if (rest > 0)
                {
                    for (int r = 0; r < count; r++) Array.Copy(u, (long)(i1 + r) * n + i2, trailing, (long)r * rest, rest);
                    Gemm.MatMulTransposedA(trailing.AsSpan(0, count * rest), negativeErrors.AsSpan(0, count * m),
                        wt.AsSpan((int)((long)i2 * m), rest * m), rest, count, m, accumulate: true);
                }
            }

            if (options.RefitScales)
                RefitScales(target ?? weight, m, n, groupSize, codes, inversePerm, storedScales, storedZeros, xtx, dead, percent * mean / n / scale, rowLoss);
            if (rowLoss is not null)
            {
                // Keep, per output row, the round with the lowest loss (the losses share the constant w^T H w).
                if (bestLoss is null)
                {
                    bestLoss = (double[])rowLoss.Clone();
                    bestCodes = (int[])codes.Clone();
                    bestScales = (Half[])storedScales.Clone();
                }
                else
                    for (int o = 0; o < m; o++)
                    {
                        if (!(rowLoss[o] < bestLoss[o])) continue;
                        bestLoss[o] = rowLoss[o];
                        for (int k = 0; k < n; k++) bestCodes![(long)k * m + o] = codes[(long)k * m + o];
                        Array.Copy(storedScales, (long)o * groups, bestScales!, (long)o * groups, groups);
                    }
            }
        }
        if (bestCodes is not null)
        {
            codes = bestCodes;
            storedScales = bestScales!;
        }

        // Pack row by row in the original column order.
        int rowBytes = (int)KernelCatalogue.PackedRowBytes(n, bits);
        var packed = new byte[(long)m * rowBytes];
        var levels = new int[n];
        for (int o = 0; o < m; o++)
        {
            for (int i = 0; i < n; i++) levels[i] = codes[(long)inversePerm[i] * m + o];
            PackedBits.PackRow<TBits>(levels, packed.AsSpan(o * rowBytes, rowBytes));
        }
        return GroupQuantizedWeight.FromParts(m, n, scheme, packed, storedScales, symmetric ? null : storedZeros);
    }

    /// <summary>
    /// <see cref="GptqOptions.BiasCorrection"/>: the shift to add to the layer's bias so its mean output over the
    /// calibration rows equals the dense layer's, W mu_ref - Q mu (mu the recorded inputs' mean, mu_ref the dense
    /// model's when <see cref="LayerStatistics.ReferenceSums"/> was recorded, else mu), in float64.
    /// </summary>
    /// <param name="weight">The dense weight [outFeatures, InFeatures], row-major.</param>
    /// <param name="quantized">Its quantized form (any storage of that shape).</param>
    /// <param name="statistics">The layer's calibration statistics.</param>
    /// <exception cref="ArgumentException">Shapes that do not match the statistics or each other.</exception>
    public static float[] BiasShift(ReadOnlySpan<float> weight, IWeightStorage quantized, LayerStatistics statistics)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        ArgumentNullException.ThrowIfNull(statistics);
        int n = statistics.InFeatures;
        statistics.ThrowIfNotFor(quantized.InFeatures, nameof(statistics));
        int m = quantized.OutFeatures;
        if (weight.Length != (long)m * n)
            throw new ArgumentException(Invariant($"weight has {weight.Length} values; the quantized weight is {m} x {n}"), nameof(weight));
        var q = new float[(long)m * n];
        quantized.Dequantize(q);
        var sums = statistics.ColumnSums;
        var referenceSums = statistics.ReferenceSums ?? sums;
        double count = statistics.SampleCount;
        var shift = new float[m];
        for (int o = 0; o < m; o++)
        {
            double s = 0;
            for (int i = 0; i < n; i++) s += weight[o * n + i] * referenceSums[i] - q[(long)o * n + i] * sums[i];
            shift[o] = (float)(s / count);
        }
        return shift;
    }

    /// <summary>
    /// <see cref="GptqOptions.RefitScales"/>: per output row o, with c the row's centred codes (q - z) split by group,
    /// A[g, h] = c_g^T H_gh c_h and b[g] = c_g^T (H w)_g, the scales s = A^-1 b minimise (w - C s)^T H (w - C s), with
    /// H = X^T X + damping I (the loss GPTQ minimised, up to its factor 2 / N) and w the row with dead inputs zeroed.
    /// A[., .] and b come from one product per group, T = C_g H_g: (rows x size) x (size x n), on <see cref="Gemm"/>
    /// (same bits at any thread count). The solve is in float64; rows whose system is singular, or whose float16-rounded
    /// refit does not lower the loss, keep their scales. <paramref name="rowLoss"/>, when given, receives each row's loss
    /// after the refit, up to the constant w^T H w.
    /// </summary>
    private static void RefitScales(ReadOnlySpan<float> weight, int m, int n, int groupSize, int[] codes, int[] inversePerm,
        Half[] storedScales, byte[] storedZeros, float[] xtx, bool[] dead, double damping, double[]? rowLoss)
    {
        int groups = n / groupSize;
        // Centred codes [m, n] in the original column order, and the weights with dead inputs zeroed.
        var centred = new float[(long)m * n];
        var w = new float[(long)m * n];
        for (int o = 0; o < m; o++)
            for (int i = 0; i < n; i++)
            {
                long at = (long)o * n + i;
                centred[at] = codes[(long)inversePerm[i] * m + o] - storedZeros[(long)o * groups + i / groupSize];
                w[at] = dead[i] ? 0f : weight[(int)at];
            }
        // H's rows of one group (damped diagonal), the group's codes [m, size], and T = C_g H_g [m, n].
        var h = new float[(long)groupSize * n];
        var cg = new float[(long)m * groupSize];
        var t = new float[(long)m * n];
        var a = new double[(long)m * groups * groups];
        var b = new double[(long)m * groups];
        for (int g = 0; g < groups; g++)
        {
            int first = g * groupSize;
            Array.Copy(xtx, (long)first * n, h, 0, (long)groupSize * n);
            for (int r = 0; r < groupSize; r++)
            {
                long d = (long)r * n + first + r;
                h[d] = dead[first + r] ? 1f : h[d] + (float)damping;
            }
            for (int o = 0; o < m; o++) Array.Copy(centred, (long)o * n + first, cg, (long)o * groupSize, groupSize);
            Gemm.MatMul(cg, h, t, m, groupSize, n);
            for (int o = 0; o < m; o++)
            {
                var row = t.AsSpan((int)((long)o * n), n);
                b[(long)o * groups + g] = TensorPrimitives.Dot(row, w.AsSpan((int)((long)o * n), n));
                for (int k = 0; k < groups; k++)
                    a[((long)o * groups + g) * groups + k] = TensorPrimitives.Dot(row.Slice(k * groupSize, groupSize), centred.AsSpan((int)((long)o * n + k * groupSize), groupSize));
            }
        }
        var system = new double[groups * groups];
        var solution = new double[groups];
        var old = new double[groups];
        var rounded = new double[groups];
        for (int o = 0; o < m; o++)
        {
            var ao = a.AsSpan((int)((long)o * groups * groups), groups * groups);
            var bo = b.AsSpan(o * groups, groups);
            for (int g = 0; g < groups; g++) old[g] = (double)storedScales[(long)o * groups + g];
            if (rowLoss is not null) rowLoss[o] = Loss(ao, bo, old, groups);
            ao.CopyTo(system);
            if (!SolveSymmetric(system, bo, solution, groups)) continue;
            bool usable = true;
            for (int g = 0; g < groups; g++)
            {
                var half = (Half)solution[g];
                // A group whose codes are all at the zero point has no say (its A row is zero): keep its scale.
                if (ao[g * groups + g] == 0) half = storedScales[(long)o * groups + g];
                if (!Half.IsFinite(half)) { usable = false; break; }
                rounded[g] = (double)half;
            }
            // Loss up to the constant w^T H w: s^T A s - 2 b^T s.
            if (!usable || !(Loss(ao, bo, rounded, groups) < Loss(ao, bo, old, groups))) continue;
            for (int g = 0; g < groups; g++) storedScales[(long)o * groups + g] = (Half)rounded[g];
            if (rowLoss is not null) rowLoss[o] = Loss(ao, bo, rounded, groups);
        }
    }

    private static double Loss(ReadOnlySpan<double> a, ReadOnlySpan<double> b, ReadOnlySpan<double> s, int groups)
    {
        double loss = 0;
        for (int g = 0; g < groups; g++)
        {
            double row = 0;
            for (int k = 0; k < groups; k++) row += a[g * groups + k] * s[k];
            loss += s[g] * (row - 2 * b[g]);
        }
        return loss;
    }

    /// <summary>Solves A x = b for a symmetric positive definite A (Cholesky, in place); false when a pivot is not positive.</summary>
    private static bool SolveSymmetric(double[] a, ReadOnlySpan<double> b, double[] x, int n)
    {
        // Groups whose codes are all zero give a zero row and column: a unit pivot there leaves that scale at b / 1 = 0,
        // and the caller keeps the stored scale for them.
        for (int i = 0; i < n; i++)
            if (a[i * n + i] == 0)
            {
                for (int k = 0; k < n; k++) { a[i * n + k] = 0; a[k * n + i] = 0; }
                a[i * n + i] = 1;
            }
        for (int j = 0; j < n; j++)
        {
            double d = a[j * n + j];
            for (int k = 0; k < j; k++) d -= a[j * n + k] * a[j * n + k];
            if (!(d > 0)) return false;
            d = Math.Sqrt(d);
            a[j * n + j] = d;
            for (int i = j + 1; i < n; i++)
            {
                double v = a[i * n + j];
                for (int k = 0; k < j; k++) v -= a[i * n + k] * a[j * n + k];
                a[i * n + j] = v / d;
            }
        }
        for (int i = 0; i < n; i++)
        {
            double v = b[i];
            for (int k = 0; k < i; k++) v -= a[i * n + k] * x[k];
            x[i] = v / a[i * n + i];
        }
        for (int i = n - 1; i >= 0; i--)
        {
            double v = x[i];
            for (int k = i + 1; k < n; k++) v -= a[k * n + i] * x[k];
            x[i] = v / a[i * n + i];
        }
        return true;
    }

    /// <summary>Chooses group <paramref name="group"/>'s scale and zero for every output row from wt rows first..first+size.</summary>
    private static void ChooseGroup<TBits>(float[] wt, int m, int group, int first, int size, bool symmetric,
        float[] scales, float[] zeros, Half[] storedScales, byte[] storedZeros, int groups) where TBits : struct, IBitWidth
    {
        var values = new float[size];
        var levels = new int[size];
        var packed = new byte[KernelCatalogue.PackedRowBytes(size, TBits.Bits)];
        for (int o = 0; o < m; o++)
        {
            for (int c = 0; c < size; c++) values[c] = wt[(long)(first + c) * m + o];
            var (s, z) = GptqGrid.GroupParameters<TBits>(values, o, symmetric, levels, packed);
            scales[(long)group * m + o] = (float)s;
            zeros[(long)group * m + o] = z;
            storedScales[(long)o * groups + group] = s;
            storedZeros[(long)o * groups + group] = z;
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
