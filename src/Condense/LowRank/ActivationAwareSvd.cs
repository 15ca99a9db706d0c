using System.Globalization;
using Condense.Calibration;
using Condense.Kernels;
using Condense.Quantization;

namespace Condense.LowRank;

/// <summary>
/// Activation-aware low rank (<c>[LowRank(r, Method = LowRankMethod.ActivationAwareSvd)]</c>), as SVD-LLM whitens:
/// with S the lower Cholesky factor of the layer's input second moment (X^T X / N = S S^T, damped), the truncated SVD
/// of W S gives W S ~ U Sigma V^T, and the layer stores U Sigma and V^T S^-1 in the ordinary <see cref="LowRankWeight"/>
/// format, so kernels and files are those of plain SVD.
/// </summary>
/// <remarks>
/// Why: the layer's output error on its inputs is ||(W - W') X^T||_F = ||(W - W') S||_F, so the best rank-r W' for the
/// inputs the layer actually sees is the truncated SVD of W S mapped back, not the truncated SVD of W itself. Plain SVD
/// treats every input direction as equally likely; with correlated or anisotropic channels it spends rank on
/// directions the inputs rarely take.
/// </remarks>
public static class ActivationAwareSvd
{
    /// <summary>Damping added to the diagonal of X^T X / N before its Cholesky factor, as a fraction of the mean diagonal (as GPTQ's percdamp).</summary>
    public const double DefaultDampingPercent = 0.01;

    /// <summary>Times the damping is multiplied by 10 when the damped matrix is still not positive definite, before the error.</summary>
    private const int DampingRetries = 2;

    /// <summary>Factors the row-major weight [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>] at <paramref name="rank"/>, whitened by <paramref name="statistics"/>.</summary>
    /// <param name="seed">Seeds the randomized SVD of W S: same inputs and seed, same factors.</param>
    /// <param name="dampingPercent">See <see cref="DefaultDampingPercent"/>; raised tenfold (twice at most) while the Cholesky factor fails.</param>
    /// <exception cref="ArgumentException">A shape, rank or statistics mismatch, or a NaN/Inf weight.</exception>
    /// <exception cref="InvalidOperationException">The damped X^T X is not positive definite even at 100x the damping (the input column is named).</exception>
    public static LowRankWeight Factor(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, int rank, LayerStatistics statistics,
        ulong seed = LowRankWeight.DefaultSeed, double dampingPercent = DefaultDampingPercent)
    {
        ArgumentNullException.ThrowIfNull(statistics);
        if (outFeatures <= 0 || inFeatures <= 0)
            throw new ArgumentException(Invariant($"the weight is [{outFeatures}, {inFeatures}]; expected positive sizes"), nameof(outFeatures));
        if (rank < 1 || rank > Math.Min(outFeatures, inFeatures))
            throw new ArgumentException(Invariant($"rank is {rank}; a [{outFeatures}, {inFeatures}] matrix expects 1..{Math.Min(outFeatures, inFeatures)}"), nameof(rank));
        if (weight.Length != (long)outFeatures * inFeatures)
            throw new ArgumentException(Invariant($"weight has {weight.Length} values; expected {outFeatures} x {inFeatures}"), nameof(weight));
        statistics.ThrowIfNotFor(inFeatures, nameof(statistics));
        if (!(dampingPercent >= 0) || !double.IsFinite(dampingPercent))
            throw new ArgumentException(Invariant($"dampingPercent is {dampingPercent}; expected a finite fraction >= 0 (default {DefaultDampingPercent})"), nameof(dampingPercent));
        for (int i = 0; i < weight.Length; i++)
            if (!float.IsFinite(weight[i]))
                throw new ArgumentException(Invariant($"weight[row {i / inFeatures}, column {i % inFeatures}] is {weight[i]}; expected finite weights"), nameof(weight));

        int n = inFeatures;
        var s = Whitening(statistics, dampingPercent);

        // W S, then its truncated SVD: U (orthonormal) and V = Sigma V^T.
        var ws = new float[(long)outFeatures * n];
        Gemm.MatMul(weight, s, ws, outFeatures, n, n);
        var (u, v) = TruncatedSvd.Factor(ws, outFeatures, n, rank, seed);

        // V S^-1, row by row: x S = v with S lower triangular is a back substitution over S's rows (contiguous), in double.
        var mapped = new float[v.Length];
        Parallel.For(0, rank, new ParallelOptions { MaxDegreeOfParallelism = Gemm.MaxDegreeOfParallelism }, k =>
        {
            var x = new double[n];
            for (int j = 0; j < n; j++) x[j] = v[(long)k * n + j];
            for (int i = n - 1; i >= 0; i--)
            {
                long row = (long)i * n;
                double xi = x[i] / s[row + i];
                x[i] = xi;
                for (int j = 0; j < i; j++) x[j] -= xi * s[row + j];
            }
            for (int j = 0; j < n; j++) mapped[(long)k * n + j] = (float)x[j];
        });
        return LowRankWeight.FromFactors(outFeatures, n, rank, u, mapped);
    }

    /// <summary>
    /// The lower Cholesky factor S of X^T X / N + damping I (full row-major, zeros above the diagonal). Inputs that
    /// were always zero get only the damping; with no input energy at all, S = I (plain SVD: there is nothing to weigh).
    /// </summary>
    private static float[] Whitening(LayerStatistics statistics, double dampingPercent)
    {
        int n = statistics.InFeatures;
        var xtx = statistics.XtX;
        double scale = 1.0 / statistics.SampleCount;
        double mean = 0;
        for (int i = 0; i < n; i++) mean += xtx[(long)i * n + i] * scale;
        mean /= n;
        var s = new float[(long)n * n];
        if (!(mean > 0))
        {
            for (int i = 0; i < n; i++) s[(long)i * n + i] = 1f;
            return s;
        }
        double damping = dampingPercent;
        for (int attempt = 0; ; attempt++)
        {
            // Dead inputs (zero diagonal) would make the factor singular without damping, so even dampingPercent = 0 adds 1e-6 x the mean.
            float add = (float)(Math.Max(damping, 1e-6) * mean);
            for (long i = 0; i < (long)n * n; i++) s[i] = (float)(xtx[i] * scale);
            for (int i = 0; i < n; i++) s[(long)i * n + i] += add;
            try
            {
                DenseCholesky.FactorLower(s, n, column => column);
                return s;
            }
            catch (InvalidOperationException) when (attempt < DampingRetries)
            {
                damping = Math.Max(damping, 1e-6) * 10;
            }
            catch (InvalidOperationException e)
            {
                throw new InvalidOperationException(Invariant(
                    $"activation-aware SVD of '{statistics.Path}': the input second moment is not positive definite at {damping:G3} x its mean diagonal of damping ({e.Message}); give more (and more varied) calibration rows, or use Method = LowRankMethod.Svd on this layer"), e);
            }
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
