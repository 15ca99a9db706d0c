using System.Numerics.Tensors;
using Condense.Kernels;

namespace Condense.Subspace;

/// <summary>
/// Very sparse random projection (Li, Hastie &amp; Church 2006) with s = sqrt(D): each entry is non-zero with
/// probability 1/s, with a random sign; each column is then scaled to unit length, so its non-zeros are
/// +-1/sqrt(nnz_j) (the same as +-sqrt(s) up to that normalization).
/// </summary>
/// <remarks>
/// <para>Generation: column j, rows [32768 c, 32768 (c + 1)) come from their own stream of the seed; the non-zero
/// rows are found by geometric skips (O(nnz) draws, not O(D)). A column left empty (likely only for tiny D) gets
/// one entry at a row drawn from a separate stream, so no column is zero.</para>
/// <para>Memory: <see cref="ProjectionStorage.Cached"/> keeps each non-zero as 2 bytes (row in chunk and sign) plus
/// 4 bytes per column and chunk, about 2 d sqrt(D) + d D / 8192 bytes; <see cref="ProjectionStorage.Streamed"/>
/// keeps d counts (O(d)) and regenerates the non-zeros per call, with the same bits.</para>
/// <para>Project splits over row chunks, ProjectTranspose over columns; each output is summed in a fixed order, so
/// the bits do not depend on the thread count.</para>
/// </remarks>
public sealed class SparseProjection : ISubspaceProjection
{
    /// <summary>The name stored in files.</summary>
    public const string ProjectionName = "sparse";

    // A non-zero is its row inside the chunk (15 bits: chunks hold at most 32768 rows) and its sign in bit 15.
    private const ushort SignBit = 0x8000;

    private readonly ulong _streamSeed;
    private readonly double _logKeep; // log(1 - density)
    private readonly float[] _values; // 1 / sqrt(nnz_j)
    private readonly int[] _fallbackRows; // -1, or 2 row + sign of the single entry of a column that drew none
    private readonly int[][]? _columnStarts; // cached: per chunk, d + 1 offsets into _entries[chunk]
    private readonly ushort[][]? _entries;   // cached: per chunk, (row in chunk) | sign << 15, column-major

    /// <summary>Draws P: R^d -&gt; R^D from <paramref name="seed"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">d &lt; 1 or D &lt; d.</exception>
    public SparseProjection(int fullDimension, int dimension, ulong seed, ProjectionStorage storage = ProjectionStorage.Cached)
    {
        SubspaceProjections.CheckDimensions(ProjectionName, fullDimension, dimension);
        FullDimension = fullDimension;
        Dimension = dimension;
        Seed = seed;
        Storage = storage;
        Density = 1.0 / Math.Sqrt(fullDimension);
        _logKeep = Math.Log(1.0 - Density);
        _streamSeed = Rng.Derive(seed, "subspace/sparse");
        _values = new float[dimension];
        _fallbackRows = new int[dimension];
        int chunks = ProjectionStreams.ChunkCount(fullDimension);
        var counts = new int[dimension];
        WorkerPool.Shared.For(dimension, (start, end) =>
        {
            var buffer = new ushort[ProjectionStreams.ChunkLength];
            for (int j = start; j < end; j++)
            {
                int nnz = 0;
                for (int c = 0; c < chunks; c++) nnz += Draw(j, c, buffer, includeFallback: false);
                _fallbackRows[j] = -1;
                if (nnz == 0)
                {
                    var rng = ProjectionStreams.Stream(_streamSeed, j, -1);
                    int row = rng.NextInt(fullDimension);
                    _fallbackRows[j] = 2 * row + (int)(rng.NextUInt64() >> 63);
                    nnz = 1;
                }
                counts[j] = nnz;
                _values[j] = (float)(1.0 / Math.Sqrt(nnz));
            }
        });
        NonZeroCount = counts.Sum(c => (long)c);
        if (storage == ProjectionStorage.Cached)
        {
            _columnStarts = new int[chunks][];
            _entries = new ushort[chunks][];
            WorkerPool.Shared.For(chunks, (start, end) =>
            {
                var buffer = new ushort[ProjectionStreams.ChunkLength];
                for (int c = start; c < end; c++)
                {
                    var starts = new int[dimension + 1];
                    var list = new List<ushort>();
                    for (int j = 0; j < dimension; j++)
                    {
                        starts[j] = list.Count;
                        int n = Draw(j, c, buffer, includeFallback: true);
                        for (int e = 0; e < n; e++) list.Add(buffer[e]);
                    }
                    starts[dimension] = list.Count;
                    _columnStarts[c] = starts;
                    _entries[c] = [.. list];
                }
            });
        }
    }

    /// <inheritdoc/>
    public string Name => ProjectionName;

    /// <inheritdoc/>
    public int FullDimension { get; }

    /// <inheritdoc/>
    public int Dimension { get; }

    /// <inheritdoc/>
    public ulong Seed { get; }

    /// <summary>Whether the non-zeros are kept or regenerated per call.</summary>
    public ProjectionStorage Storage { get; }

    /// <summary>The probability that an entry is non-zero: 1/sqrt(D).</summary>
    public double Density { get; }

    /// <summary>The number of non-zero entries of P (about d sqrt(D)).</summary>
    public long NonZeroCount { get; }

    /// <inheritdoc/>
    public void Project(ReadOnlySpan<float> coordinates, Span<float> theta)
    {
        SubspaceProjections.CheckLengths(this, coordinates.Length, theta.Length, nameof(coordinates), nameof(theta));
        var coefficients = ProjectionStreams.RentZeroed(Dimension);
        TensorPrimitives.Multiply(coordinates, _values, coefficients.AsSpan(0, Dimension));
        var output = ProjectionStreams.RentCopy(theta);
        int dimension = Dimension;
        WorkerPool.Shared.For(ProjectionStreams.ChunkCount(FullDimension), (start, end) =>
        {
            var buffer = _entries == null ? new ushort[ProjectionStreams.ChunkLength] : null;
            for (int c = start; c < end; c++)
            {
                var target = output.AsSpan(c * ProjectionStreams.ChunkLength);
                for (int j = 0; j < dimension; j++)
                {
                    float coefficient = coefficients[j];
                    if (coefficient == 0f) continue; // adds nothing; d starts at 0
                    int bits = BitConverter.SingleToInt32Bits(coefficient);
                    ReadOnlySpan<ushort> entries = Entries(j, c, buffer);
                    // The sign flips the float's sign bit: random signs would defeat a branch predictor.
                    foreach (ushort e in entries)
                        target[e & ~SignBit] += BitConverter.Int32BitsToSingle(bits ^ ((e & SignBit) << 16));
                }
            }
        });
        output.AsSpan(0, theta.Length).CopyTo(theta);
        ProjectionStreams.Return(output);
        ProjectionStreams.Return(coefficients);
    }

    /// <inheritdoc/>
    public void ProjectTranspose(ReadOnlySpan<float> gradient, Span<float> coordinatesGradient)
    {
        SubspaceProjections.CheckLengths(this, coordinatesGradient.Length, gradient.Length, nameof(coordinatesGradient), nameof(gradient));
        var g = ProjectionStreams.RentCopy(gradient);
        var sums = ProjectionStreams.RentZeroed(Dimension);
        int chunks = ProjectionStreams.ChunkCount(FullDimension);
        WorkerPool.Shared.For(Dimension, (start, end) =>
        {
            var buffer = _entries == null ? new ushort[ProjectionStreams.ChunkLength] : null;
            // Chunk-outer, so the gathers stay in one 128 KiB slice of g; each column still sums its chunks in order.
            for (int c = 0; c < chunks; c++)
            {
                var source = g.AsSpan(c * ProjectionStreams.ChunkLength);
                for (int j = start; j < end; j++)
                {
                    float sum = sums[j];
                    foreach (ushort e in Entries(j, c, buffer))
                        sum += BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(source[e & ~SignBit]) ^ ((e & SignBit) << 16));
                    sums[j] = sum;
                }
            }
            for (int j = start; j < end; j++) sums[j] *= _values[j];
        });
        TensorPrimitives.Add(coordinatesGradient, sums.AsSpan(0, Dimension), coordinatesGradient);
        ProjectionStreams.Return(g);
        ProjectionStreams.Return(sums);
    }

    private ReadOnlySpan<ushort> Entries(int column, int chunk, ushort[]? buffer)
    {
        if (_entries != null)
        {
            var starts = _columnStarts![chunk];
            return _entries[chunk].AsSpan(starts[column], starts[column + 1] - starts[column]);
        }
        int n = Draw(column, chunk, buffer!, includeFallback: true);
        return buffer.AsSpan(0, n);
    }

    /// <summary>The non-zeros of column <paramref name="column"/> in chunk <paramref name="chunk"/>, rows ascending.</summary>
    private int Draw(int column, int chunk, ushort[] buffer, bool includeFallback)
    {
        int length = Math.Min(ProjectionStreams.ChunkLength, FullDimension - chunk * ProjectionStreams.ChunkLength);
        if (includeFallback && _fallbackRows[column] >= 0)
        {
            int row = _fallbackRows[column] >> 1;
            if (row / ProjectionStreams.ChunkLength != chunk) return 0;
            buffer[0] = (ushort)((row % ProjectionStreams.ChunkLength) | ((_fallbackRows[column] & 1) != 0 ? SignBit : 0));
            return 1;
        }
        var rng = ProjectionStreams.Stream(_streamSeed, column, chunk);
        int count = 0;
        long position = -1;
        while (true)
        {
            // Geometric gap: the number of zeros before the next non-zero.
            // At density 1 (D = 1) the log is -inf and every gap 0.
            double gap = Math.Floor(Math.Log(1.0 - rng.NextDouble()) / _logKeep);
            if (gap >= length - 1 - position) break;
            position += (long)gap + 1;
            buffer[count++] = (ushort)(position | (long)((rng.NextUInt64() >> 63) << 15));
        }
        return count;
    }
}
