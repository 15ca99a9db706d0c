using System.Numerics.Tensors;
using Condense.Kernels;

namespace Condense.Subspace;

/// <summary>
/// Dense Gaussian P (Li et al. 2018): every entry N(0, 1), every column then scaled to unit length. Column j is
/// generated in chunks of 32768 rows, each from its own stream of the seed, so pieces can be regenerated in any order.
/// </summary>
/// <remarks>
/// <para>Memory: <see cref="ProjectionStorage.Cached"/> keeps D x d floats (4 D d bytes: 800 MB at D = 2e5,
/// d = 1e3); <see cref="ProjectionStorage.Streamed"/> keeps d column norms and regenerates the entries in every
/// call (D d Gaussian draws per call), with the same bits. Prefer Sparse or Fastfood at large D d.</para>
/// <para>Both calls split over the shared worker pool: Project by row chunks, ProjectTranspose by columns; every
/// output value is summed in a fixed order, so the bits do not depend on the thread count.</para>
/// </remarks>
public sealed class DenseProjection : ISubspaceProjection
{
    /// <summary>The name stored in files.</summary>
    public const string ProjectionName = "dense";

    private readonly ulong _streamSeed;
    private readonly float[] _inverseNorms;
    private readonly float[][]? _columns; // cached: column j, D floats, already scaled

    /// <summary>Draws P: R^d -&gt; R^D from <paramref name="seed"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">d &lt; 1 or D &lt; d.</exception>
    public DenseProjection(int fullDimension, int dimension, ulong seed, ProjectionStorage storage = ProjectionStorage.Cached)
    {
        SubspaceProjections.CheckDimensions(ProjectionName, fullDimension, dimension);
        if (storage == ProjectionStorage.Cached && (long)fullDimension * dimension * sizeof(float) > 1L << 34)
            throw new ArgumentOutOfRangeException(nameof(storage), storage, SubspaceProjections.Invariant(
                $"dense projection: caching D x d = {fullDimension} x {dimension} floats needs {(long)fullDimension * dimension * 4} bytes; use ProjectionStorage.Streamed, or the Sparse or Fastfood projection."));
        FullDimension = fullDimension;
        Dimension = dimension;
        Seed = seed;
        Storage = storage;
        _streamSeed = Rng.Derive(seed, "subspace/dense");
        _inverseNorms = new float[dimension];
        if (storage == ProjectionStorage.Cached) _columns = new float[dimension][];
        WorkerPool.Shared.For(dimension, (start, end) =>
        {
            var column = new float[fullDimension];
            for (int j = start; j < end; j++)
            {
                int chunks = ProjectionStreams.ChunkCount(fullDimension);
                for (int c = 0; c < chunks; c++)
                    ProjectionStreams.FillGaussian(ProjectionStreams.Stream(_streamSeed, j, c), ChunkOf(column, c));
                double squares = 0;
                foreach (float v in column) squares += (double)v * v;
                float inverse = (float)(1.0 / Math.Sqrt(squares));
                _inverseNorms[j] = inverse;
                if (_columns != null)
                {
                    TensorPrimitives.Multiply(column, inverse, column);
                    _columns[j] = column;
                    column = new float[fullDimension];
                }
            }
        });
    }

    /// <inheritdoc/>
    public string Name => ProjectionName;

    /// <inheritdoc/>
    public int FullDimension { get; }

    /// <inheritdoc/>
    public int Dimension { get; }

    /// <inheritdoc/>
    public ulong Seed { get; }

    /// <summary>Whether the entries are kept or regenerated per call.</summary>
    public ProjectionStorage Storage { get; }

    /// <inheritdoc/>
    public void Project(ReadOnlySpan<float> coordinates, Span<float> theta)
    {
        SubspaceProjections.CheckLengths(this, coordinates.Length, theta.Length, nameof(coordinates), nameof(theta));
        var x = ProjectionStreams.RentCopy(coordinates);
        int dimension = Dimension;
        var output = ProjectionStreams.RentCopy(theta);
        try
        {
            int chunks = ProjectionStreams.ChunkCount(FullDimension);
            WorkerPool.Shared.For(chunks, (start, end) =>
            {
                var scratch = _columns == null ? new float[ProjectionStreams.ChunkLength] : null;
                for (int c = start; c < end; c++)
                {
                    var target = ChunkOf(output.AsSpan(0, FullDimension), c);
                    for (int j = 0; j < dimension; j++)
                    {
                        if (x[j] == 0f) continue; // adds nothing; d starts at 0
                        ReadOnlySpan<float> entries = _columns != null ? ChunkOf(_columns[j], c) : Regenerate(j, c, scratch!);
                        TensorPrimitives.MultiplyAdd(entries, x[j], target, target);
                    }
                }
            });
            output.AsSpan(0, FullDimension).CopyTo(theta);
        }
        finally
        {
            ProjectionStreams.Return(output);
            ProjectionStreams.Return(x);
        }
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
            var scratch = _columns == null ? new float[ProjectionStreams.ChunkLength] : null;
            for (int j = start; j < end; j++)
            {
                // Chunk by chunk in order, in both storages: the same sums, the same bits.
                float sum = 0;
                for (int c = 0; c < chunks; c++)
                {
                    ReadOnlySpan<float> entries = _columns != null ? ChunkOf(_columns[j], c) : Regenerate(j, c, scratch!);
                    sum += TensorPrimitives.Dot(entries, ChunkOf(g.AsSpan(0, FullDimension), c));
                }
                sums[j] = sum;
            }
        });
        TensorPrimitives.Add(coordinatesGradient, sums.AsSpan(0, Dimension), coordinatesGradient);
        ProjectionStreams.Return(g);
        ProjectionStreams.Return(sums);
    }

    private ReadOnlySpan<float> Regenerate(int column, int chunk, float[] scratch)
    {
        var entries = scratch.AsSpan(0, Math.Min(ProjectionStreams.ChunkLength, FullDimension - chunk * ProjectionStreams.ChunkLength));
        ProjectionStreams.FillGaussian(ProjectionStreams.Stream(_streamSeed, column, chunk), entries);
        TensorPrimitives.Multiply(entries, _inverseNorms[column], entries);
        return entries;
    }

    private static Span<float> ChunkOf(Span<float> vector, int chunk)
    {
        int start = chunk * ProjectionStreams.ChunkLength;
        return vector.Slice(start, Math.Min(ProjectionStreams.ChunkLength, vector.Length - start));
    }
}
