using System.Globalization;

namespace Condense.Kernels;

/// <summary>
/// A Fastfood random projection P: R^d -> R^D (Le, Sarlos, Smola 2013), as used for random-subspace training
/// (Li et al. 2018, intrinsic dimension): ceil(D / L) stacked blocks V = (1/sqrt(L)) S H G Pi H B of size L, the
/// next power of two &gt;= d, with the input zero-padded to L and the output truncated to D. B is random +-1, Pi a
/// random permutation built from cache-sized pieces (below), G Gaussian and S rescales row i to a chi(L)-distributed norm, so P's entries behave like
/// independent N(0, 1) draws. The diagonals come from the seed alone: same seed, same projection; the D x d
/// matrix is never formed. Each Apply costs 2 FWHTs of length L per block.
/// <para>Pi views the vector as an R x C matrix (C = R or 2R): it shuffles each row with its own random
/// permutation, transposes, and shuffles each row of the C x R result with its own random permutation. Output
/// (c, r) thus reads source row beta_c(r), column alpha_row(c): every source row feeds every output row, with
/// independent random offsets. Each step touches one or 16 rows at a time (L1/L2-resident), where a flat random
/// permutation of 2^20 floats is a random gather over 4 MiB; it is still an exact permutation, so the adjoint
/// applies the inverse steps.</para>
/// </summary>
public sealed class Fastfood
{
    private readonly float[][] _signs;
    private readonly ushort[][] _rowShuffles;    // alpha: R rows of C entries, tile-major (see TileMajor)
    private readonly ushort[][] _columnShuffles; // beta: C rows of R entries
    private readonly int _rows, _columns;
    private readonly float[][] _gaussians;
    private readonly float[][] _scales;

    /// <summary>Draws the projection's diagonals and permutations from <paramref name="seed"/>.</summary>
    /// <param name="inputDimension">d &gt;= 1.</param>
    /// <param name="outputDimension">D &gt;= d.</param>
    /// <param name="seed">Same seed, same projection.</param>
    /// <exception cref="ArgumentException">d &lt; 1, D &lt; d, or d above 2^30.</exception>
    public Fastfood(int inputDimension, int outputDimension, ulong seed)
    {
        if (inputDimension < 1 || inputDimension > 1 << 30)
            throw new ArgumentException(Invariant($"inputDimension is {inputDimension}; expected 1..2^30"), nameof(inputDimension));
        if (outputDimension < inputDimension)
            throw new ArgumentException(Invariant($"outputDimension is {outputDimension}; expected at least inputDimension = {inputDimension}"), nameof(outputDimension));
        InputDimension = inputDimension;
        OutputDimension = outputDimension;
        Seed = seed;
        BlockLength = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)inputDimension);
        BlockCount = (int)(((long)outputDimension + BlockLength - 1) / BlockLength);

        int l = BlockLength;
        var rng = new Rng(seed);
        int log = System.Numerics.BitOperations.Log2((uint)l);
        _columns = 1 << ((log + 1) / 2);
        _rows = l / _columns;
        _signs = new float[BlockCount][];
        _rowShuffles = new ushort[BlockCount][];
        _columnShuffles = new ushort[BlockCount][];
        _gaussians = new float[BlockCount][];
        _scales = new float[BlockCount][];
        for (int k = 0; k < BlockCount; k++)
        {
            var signs = new float[l];
            for (int i = 0; i < l; i++) signs[i] = (rng.NextUInt64() & 1) == 0 ? 1f : -1f;
            var rowShuffles = TileMajor(Shuffles(rng, _rows, _columns), _rows, _columns);
            var columnShuffles = Shuffles(rng, _columns, _rows);
            var gaussians = new float[l];
            double frobenius = 0;
            for (int i = 0; i < l; i++)
            {
                gaussians[i] = rng.NextGaussian();
                frobenius += (double)gaussians[i] * gaussians[i];
            }
            // Row norms of H G Pi H B are sqrt(L) ||G||_F; S brings row i to s_i ~ chi(L), like a Gaussian row.
            double normalize = 1 / (Math.Sqrt(frobenius) * Math.Sqrt(l));
            var scales = new float[l];
            for (int i = 0; i < l; i++) scales[i] = (float)(Math.Sqrt(2 * Gamma(rng, l / 2.0)) * normalize);
            _signs[k] = signs;
            _rowShuffles[k] = rowShuffles;
            _columnShuffles[k] = columnShuffles;
            _gaussians[k] = gaussians;
            _scales[k] = scales;
        }
    }

    /// <summary>d: the input length of <see cref="Apply"/>.</summary>
    public int InputDimension { get; }

    /// <summary>D: the output length of <see cref="Apply"/>.</summary>
    public int OutputDimension { get; }

    /// <summary>The seed the projection was drawn from.</summary>
    public ulong Seed { get; }

    /// <summary>L: the next power of two &gt;= d.</summary>
    public int BlockLength { get; }

    /// <summary>ceil(D / L).</summary>
    public int BlockCount { get; }

    /// <summary>y = P x: d values in, D values out.</summary>
    /// <exception cref="ArgumentException">A length other than d or D (named).</exception>
    public unsafe void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckLength(x.Length, InputDimension, nameof(x), "InputDimension d");
        CheckLength(y.Length, OutputDimension, nameof(y), "OutputDimension D");
        int l = BlockLength, d = InputDimension;
        var (first, second) = Scratch(l);
        var a = first.AsSpan(0, l);
        var b = second.AsSpan(0, l);
        fixed (float* ap = first, bp = second)
        {
            for (int k = 0; k < BlockCount; k++)
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(x, _signs[k].AsSpan(0, d), a.Slice(0, d));
                a.Slice(d).Clear();
                Hadamard.Transform(a);
                fixed (ushort* alpha = _rowShuffles[k], beta = _columnShuffles[k])
                fixed (float* gaussians = _gaussians[k])
                {
                    ShuffleRowsAndTranspose(ap, bp, alpha, _rows, _columns);
                    GatherRows(bp, ap, beta, gaussians, _columns, _rows);
                }
                Hadamard.Transform(a);
                int offset = k * l, count = Math.Min(l, OutputDimension - offset);
                System.Numerics.Tensors.TensorPrimitives.Multiply(a.Slice(0, count), _scales[k].AsSpan(0, count), y.Slice(offset, count));
            }
        }
    }

    /// <summary>x = P^T y, the exact adjoint of <see cref="Apply"/>: D values in, d values out.</summary>
    /// <exception cref="ArgumentException">A length other than D or d (named).</exception>
    public unsafe void ApplyTranspose(ReadOnlySpan<float> y, Span<float> x)
    {
        CheckLength(y.Length, OutputDimension, nameof(y), "OutputDimension D");
        CheckLength(x.Length, InputDimension, nameof(x), "InputDimension d");
        int l = BlockLength, d = InputDimension;
        x.Clear();
        var (first, second) = Scratch(l);
        var a = first.AsSpan(0, l);
        var b = second.AsSpan(0, l);
        fixed (float* ap = first, bp = second)
        {
            for (int k = 0; k < BlockCount; k++)
            {
                int offset = k * l, count = Math.Min(l, OutputDimension - offset);
                System.Numerics.Tensors.TensorPrimitives.Multiply(y.Slice(offset, count), _scales[k].AsSpan(0, count), b.Slice(0, count));
                b.Slice(count).Clear();
                Hadamard.Transform(b);
                fixed (ushort* alpha = _rowShuffles[k], beta = _columnShuffles[k])
                fixed (float* gaussians = _gaussians[k])
                {
                    // The transpose of "gather by Pi" is "scatter by Pi": the inverse steps in reverse order.
                    ScatterRows(bp, ap, beta, gaussians, _columns, _rows);
                    TransposeAndUnshuffleRows(ap, bp, alpha, _rows, _columns);
                }
                Hadamard.Transform(b);
                System.Numerics.Tensors.TensorPrimitives.FusedMultiplyAdd(b.Slice(0, d), _signs[k].AsSpan(0, d), x, x);
            }
        }
    }

    // Rows of source rows per tile of the transposing steps: 16 floats fill one cache line of the transposed side.
    private const int TileRows = 16;

    private static ushort[] Shuffles(Rng rng, int count, int length)
    {
        var shuffles = new ushort[count * length];
        for (int r = 0; r < count; r++)
        {
            var row = shuffles.AsSpan(r * length, length);
            for (int i = 0; i < length; i++) row[i] = (ushort)i;
            rng.Shuffle<ushort>(row);
        }
        return shuffles;
    }

    // alpha_r(c) for the TileRows rows of a tile and one c sit together, in the order the transposing steps read them.
    private static ushort[] TileMajor(ushort[] shuffles, int rows, int columns)
    {
        int tile = Math.Min(TileRows, rows);
        var result = new ushort[shuffles.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                result[(r - r % tile) * columns + c * tile + r % tile] = shuffles[r * columns + c];
        return result;
    }

    /// <summary>u[c, r] = a[r, alpha_r(c)]: a is rows x columns, u is columns x rows.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ShuffleRowsAndTranspose(float* a, float* u, ushort* alpha, int rows, int columns)
    {
        int tile = Math.Min(TileRows, rows);
        for (int r0 = 0; r0 < rows; r0 += tile)
        {
            float* src = a + (nint)r0 * columns;
            ushort* shuffle = alpha + (nint)r0 * columns;
            for (int c = 0; c < columns; c++)
            {
                float* dst = u + (nint)c * rows + r0;
                ushort* sh = shuffle + (nint)c * tile;
                for (int t = 0; t < tile; t++) dst[t] = src[(nint)t * columns + sh[t]];
            }
        }
    }

    /// <summary>The inverse of <see cref="ShuffleRowsAndTranspose"/>: a[r, alpha_r(c)] = u[c, r].</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static unsafe void TransposeAndUnshuffleRows(float* u, float* a, ushort* alpha, int rows, int columns)
    {
        int tile = Math.Min(TileRows, rows);
        for (int r0 = 0; r0 < rows; r0 += tile)
        {
            float* dst = a + (nint)r0 * columns;
            ushort* shuffle = alpha + (nint)r0 * columns;
            for (int c = 0; c < columns; c++)
            {
                float* src = u + (nint)c * rows + r0;
                ushort* sh = shuffle + (nint)c * tile;
                for (int t = 0; t < tile; t++) dst[(nint)t * columns + sh[t]] = src[t];
            }
        }
    }

    /// <summary>out[c, r] = g[c, r] u[c, beta_c(r)]: a gather inside each row of length rows.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static unsafe void GatherRows(float* u, float* output, ushort* beta, float* g, int count, int length)
    {
        for (int c = 0; c < count; c++)
        {
            nint o = (nint)c * length;
            float* row = u + o;
            for (int r = 0; r < length; r++) output[o + r] = g[o + r] * row[beta[o + r]];
        }
    }

    /// <summary>The adjoint of <see cref="GatherRows"/>: u[c, beta_c(r)] = g[c, r] y[c, r].</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScatterRows(float* y, float* u, ushort* beta, float* g, int count, int length)
    {
        for (int c = 0; c < count; c++)
        {
            nint o = (nint)c * length;
            float* row = u + o;
            for (int r = 0; r < length; r++) row[beta[o + r]] = g[o + r] * y[o + r];
        }
    }

    // Two L-float work buffers per thread, reused across calls: a 2^20 projection would otherwise allocate 8 MiB a call.
    [ThreadStatic] private static float[]? s_first;
    [ThreadStatic] private static float[]? s_second;

    private static (float[] First, float[] Second) Scratch(int length)
    {
        if (s_first is null || s_first.Length < length)
        {
            s_first = new float[length];
            s_second = new float[length];
        }
        return (s_first, s_second!);
    }

    /// <summary>A Gamma(shape, 1) draw (Marsaglia and Tsang 2000; shape &lt; 1 boosted by U^(1/shape)).</summary>
    private static double Gamma(Rng rng, double shape)
    {
        if (shape < 1)
            return Gamma(rng, shape + 1) * Math.Pow(1.0 - rng.NextDouble(), 1 / shape);
        double d = shape - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double z = rng.NextGaussian(), v = 1 + c * z;
            if (v <= 0) continue;
            v = v * v * v;
            double u = 1.0 - rng.NextDouble();
            if (Math.Log(u) < 0.5 * z * z + d - d * v + d * Math.Log(v)) return d * v;
        }
    }

    private static void CheckLength(int length, int expected, string name, string what)
    {
        if (length != expected)
            throw new ArgumentException(Invariant($"{name} has {length} values; expected {what} = {expected}"), name);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
