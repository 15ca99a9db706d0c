using System.Buffers;
using System.Globalization;
using Condense.Kernels;
using Condense.Nn;

namespace Condense.LowRank;

/// <summary>
/// A weight matrix [OutFeatures, InFeatures] stored as the product of two fp32 factors W ~ U V, U [OutFeatures, Rank]
/// and V [Rank, InFeatures], both row-major; products compute y = U (V x) without forming W.
/// </summary>
public sealed class LowRankWeight : IWeightStorage
{
    /// <summary>The seed <see cref="FromDense"/> uses when none is given.</summary>
    public const ulong DefaultSeed = 0x10C0_5EED;

    private LowRankWeight(int outFeatures, int inFeatures, int rank, float[] u, float[] v)
    {
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        Rank = rank;
        U = u;
        V = v;
        // Batch-1 products stream both factors from memory: 2 MiB pages read them faster (see HugePages).
        HugePages.Advise(u);
        HugePages.Advise(v);
    }

    /// <summary>Inner dimension r of the factors.</summary>
    public int Rank { get; }

    /// <summary>U [OutFeatures, Rank], row-major (the stored array).</summary>
    public float[] U { get; }

    /// <summary>V [Rank, InFeatures], row-major (the stored array).</summary>
    public float[] V { get; }

    /// <inheritdoc/>
    public int OutFeatures { get; }

    /// <inheritdoc/>
    public int InFeatures { get; }

    /// <inheritdoc/>
    public string Format => string.Create(CultureInfo.InvariantCulture, $"lowrank-r{Rank}");

    /// <inheritdoc/>
    public long ByteCount => (U.LongLength + V.LongLength) * 4;

    /// <summary>
    /// The rank-<paramref name="rank"/> truncated SVD of a dense matrix, by a seeded randomized SVD (oversampling 10,
    /// two power iterations): exact for matrices of rank &lt;= <paramref name="rank"/>, near-optimal otherwise.
    /// </summary>
    /// <param name="dense">OutFeatures x InFeatures finite weights, row-major.</param>
    /// <param name="rank">1 .. min(OutFeatures, InFeatures).</param>
    /// <param name="seed">Seeds the random sketch: same inputs and seed, same factors.</param>
    /// <remarks>
    /// A matrix whose largest |w| is at least 2^16 or below 2^-16 is factored divided by a power of two near it (the
    /// SVD is scale-equivariant; only V is multiplied back), so neither huge nor denormal weights break the float32
    /// sketch. Weights so large that |U row| |V column| could exceed float.MaxValue / 2 are refused.
    /// </remarks>
    /// <exception cref="ArgumentException">A shape mismatch, a rank out of range, a NaN/Inf weight, or weights too
    /// large for float32 factors (the value, its row and column named).</exception>
    public static LowRankWeight FromDense(ReadOnlySpan<float> dense, int outFeatures, int inFeatures, int rank, ulong seed = DefaultSeed)
    {
        ValidateShape(outFeatures, inFeatures, rank);
        if (rank > Math.Min(outFeatures, inFeatures))
            throw new ArgumentException(Invariant($"rank is {rank}; a [{outFeatures}, {inFeatures}] matrix expects 1..{Math.Min(outFeatures, inFeatures)}"), nameof(rank));
        long expected = (long)outFeatures * inFeatures;
        if (dense.Length != expected)
            throw new ArgumentException(Invariant($"dense has {dense.Length} values; expected OutFeatures x InFeatures = {outFeatures} x {inFeatures} = {expected}"), nameof(dense));
        int peak = 0;
        for (int i = 0; i < dense.Length; i++)
        {
            if (!float.IsFinite(dense[i]))
                throw new ArgumentException(Invariant($"dense[row {i / inFeatures}, column {i % inFeatures}] is {dense[i]}; expected finite weights"), nameof(dense));
            if (Math.Abs(dense[i]) > Math.Abs(dense[peak])) peak = i;
        }

        // The sketch runs in float32: weights near float.MaxValue overflow it (and NaNs reach the eigen solver), tiny
        // ones lose their digits to denormals. The SVD is scale-equivariant, so such a matrix is factored divided by
        // the power of two nearest its largest |w| (exact for normal floats), and V is multiplied back.
        float peakAbs = Math.Abs(dense[peak]);
        int exponent = peakAbs > 0 && (peakAbs >= PreScaleAbove || peakAbs < 1 / PreScaleAbove) ? Math.ILogB(peakAbs) : 0;
        float[]? scaled = null;
        if (exponent != 0)
        {
            scaled = new float[dense.Length];
            for (int i = 0; i < scaled.Length; i++) scaled[i] = MathF.ScaleB(dense[i], -exponent);
        }
        var (u, v) = TruncatedSvd.Factor(scaled ?? dense, outFeatures, inFeatures, rank, seed);

        // |(U V)[i, j]| and every partial sum of it are at most |U row i| |V column j|: below float.MaxValue / 2 the
        // factors (V multiplied back included) reconstruct the layer without overflowing float32.
        double bound = Math.ScaleB(MaxRowNorm(u, outFeatures, rank) * MaxColumnNorm(v, rank, inFeatures), exponent);
        if (!(bound <= float.MaxValue / 2.0))
            throw new ArgumentException(Invariant(
                $"weight[row {peak / inFeatures}, column {peak % inFeatures}] is {dense[peak]}: weights this large give rank-{rank} factors whose product U V can reach {bound:G3}, more than half float32's maximum {float.MaxValue} (the headroom its sums need); rescale the layer's weights (e.g. divide them by 2^{Math.ILogB(peakAbs) + 1} and fold that factor into the layer's bias and the next layer), or mark the layer [KeepDense]"),
                nameof(dense));
        if (exponent != 0)
            for (int i = 0; i < v.Length; i++) v[i] = MathF.ScaleB(v[i], exponent);
        return new LowRankWeight(outFeatures, inFeatures, rank, u, v);
    }

    /// <summary>Largest |w| factored as is; beyond it (or below its inverse) <see cref="FromDense"/> pre-scales by a power of two.</summary>
    private const float PreScaleAbove = 65536f;

    private static double MaxRowNorm(float[] matrix, int rows, int cols)
    {
        double max = 0;
        for (int i = 0; i < rows; i++)
        {
            double sum = 0;
            for (int k = 0; k < cols; k++) sum += (double)matrix[i * cols + k] * matrix[i * cols + k];
            max = Math.Max(max, sum);
        }
        return Math.Sqrt(max);
    }

    private static double MaxColumnNorm(float[] matrix, int rows, int cols)
    {
        var sums = new double[cols];
        for (int k = 0; k < rows; k++)
            for (int j = 0; j < cols; j++) sums[j] += (double)matrix[k * cols + j] * matrix[k * cols + j];
        double max = 0;
        foreach (double sum in sums) max = Math.Max(max, sum); // Math.Max keeps a NaN: the caller's check refuses it
        return Math.Sqrt(max);
    }

    /// <summary>Wraps given factors (e.g. from a file), validating lengths and finiteness; the arrays are not copied.</summary>
    /// <param name="u">OutFeatures x Rank values.</param>
    /// <param name="v">Rank x InFeatures values.</param>
    /// <exception cref="ArgumentException">A factor with the wrong length or a NaN/Inf value, named with what was expected.</exception>
    public static LowRankWeight FromFactors(int outFeatures, int inFeatures, int rank, float[] u, float[] v)
    {
        ArgumentNullException.ThrowIfNull(u);
        ArgumentNullException.ThrowIfNull(v);
        ValidateShape(outFeatures, inFeatures, rank);
        CheckFactor(u, (long)outFeatures * rank, Invariant($"OutFeatures x Rank = {outFeatures} x {rank}"), nameof(u));
        CheckFactor(v, (long)rank * inFeatures, Invariant($"Rank x InFeatures = {rank} x {inFeatures}"), nameof(v));
        return new LowRankWeight(outFeatures, inFeatures, rank, u, v);
    }

    /// <inheritdoc/>
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch)
    {
        CheckProduct(Format, OutFeatures, InFeatures, x.Length, y.Length, batch);
        MultiplyInto(x, y, batch, accumulate: false);
    }

    /// <inheritdoc/>
    public void Dequantize(Span<float> destination)
    {
        long expected = (long)OutFeatures * InFeatures;
        if (destination.Length != expected)
            throw new ArgumentException(Invariant($"destination has {destination.Length} values; {Format} [{OutFeatures}, {InFeatures}] expects OutFeatures x InFeatures = {expected}"), nameof(destination));
        Gemm.MatMul(U, V, destination, OutFeatures, Rank, InFeatures);
    }

    /// <summary>y (+)= U (V x) for a validated batch: t = x V^T [batch, r] first, then y = t U^T.</summary>
    internal unsafe void MultiplyInto(ReadOnlySpan<float> x, Span<float> y, int batch, bool accumulate)
    {
        if (batch == 0) return;
        float[] t = ArrayPool<float>.Shared.Rent(batch * Rank);
        try
        {
            fixed (float* xp = x, yp = y, tp = t, up = U, vp = V)
            {
                LowRankKernels.DotProducts(xp, batch, InFeatures, vp, Rank, tp, Rank, accumulate: false);
                LowRankKernels.DotProducts(tp, batch, Rank, up, OutFeatures, yp, OutFeatures, accumulate);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(t);
        }
    }

    internal static void CheckProduct(string format, int outFeatures, int inFeatures, int xLength, int yLength, int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        long expectedX = (long)batch * inFeatures, expectedY = (long)batch * outFeatures;
        if (xLength != expectedX)
            throw new ArgumentException(Invariant($"x has {xLength} values; {format} [{outFeatures}, {inFeatures}] with batch {batch} expects batch x InFeatures = {expectedX}"), "x");
        if (yLength != expectedY)
            throw new ArgumentException(Invariant($"y has {yLength} values; {format} [{outFeatures}, {inFeatures}] with batch {batch} expects batch x OutFeatures = {expectedY}"), "y");
    }

    private static void ValidateShape(int outFeatures, int inFeatures, int rank)
    {
        if (outFeatures <= 0)
            throw new ArgumentException(Invariant($"outFeatures is {outFeatures}; expected a positive number of weight rows"), nameof(outFeatures));
        if (inFeatures <= 0)
            throw new ArgumentException(Invariant($"inFeatures is {inFeatures}; expected a positive number of weight columns"), nameof(inFeatures));
        if (rank <= 0)
            throw new ArgumentException(Invariant($"rank is {rank}; expected a positive rank"), nameof(rank));
        if ((long)outFeatures * rank > int.MaxValue || (long)rank * inFeatures > int.MaxValue || (long)outFeatures * inFeatures > int.MaxValue)
            throw new ArgumentException(Invariant($"a [{outFeatures}, {inFeatures}] rank-{rank} weight is too large; expected at most {int.MaxValue} values per matrix"), nameof(rank));
    }

    private static void CheckFactor(float[] factor, long expected, string shape, string name)
    {
        if (factor.LongLength != expected)
            throw new ArgumentException(Invariant($"{name} has {factor.LongLength} values; expected {shape} = {expected}"), name);
        for (int i = 0; i < factor.Length; i++)
            if (!float.IsFinite(factor[i]))
                throw new ArgumentException(Invariant($"{name}[{i}] is {factor[i]}; expected finite values"), name);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
