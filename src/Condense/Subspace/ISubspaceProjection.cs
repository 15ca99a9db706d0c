using System.Globalization;

namespace Condense.Subspace;

/// <summary>
/// A fixed random linear map P: R^d -&gt; R^D from subspace coordinates to a model's parameter space, regenerated
/// from a seed (Li et al. 2018: theta = theta0 + P d). This is the extension point for new projections: implement
/// it, give it a unique <see cref="Name"/>, and pass a factory as <see cref="SubspaceSpec.CustomProjection"/> both
/// when training and when loading a saved subspace model.
/// </summary>
/// <remarks>
/// <para>Contract: P depends only on (<see cref="Name"/>, <see cref="FullDimension"/>, <see cref="Dimension"/>,
/// <see cref="Seed"/>); <see cref="ProjectTranspose"/> is the exact adjoint of <see cref="Project"/>; both
/// accumulate into their destination; the results do not depend on the number of threads; the calls are safe from
/// several threads at once. Columns should have unit length (exactly or in expectation) so that learning rates carry
/// over between projections.</para>
/// </remarks>
public interface ISubspaceProjection
{
    /// <summary>A short, stable name stored in files (the built-ins: <c>dense</c>, <c>sparse</c>, <c>fastfood</c>).</summary>
    string Name { get; }

    /// <summary>D: the number of parameters the subspace covers (the length of theta).</summary>
    int FullDimension { get; }

    /// <summary>d: the number of subspace coordinates.</summary>
    int Dimension { get; }

    /// <summary>The seed P is regenerated from.</summary>
    ulong Seed { get; }

    /// <summary>theta += P <paramref name="coordinates"/>: d values in, D values accumulated.</summary>
    void Project(ReadOnlySpan<float> coordinates, Span<float> theta);

    /// <summary>coordinatesGradient += P^T <paramref name="gradient"/>: D values in, d values accumulated.</summary>
    void ProjectTranspose(ReadOnlySpan<float> gradient, Span<float> coordinatesGradient);
}

/// <summary>Whether a Dense or Sparse projection keeps its generated entries or regenerates them on every call.</summary>
public enum ProjectionStorage
{
    /// <summary>
    /// Generate once and keep: Dense holds D x d floats (4 D d bytes), Sparse its non-zeros (about 2 d sqrt(D) bytes
    /// plus 4 d D / 32768 bytes of offsets). Fast; use it when that memory is affordable.
    /// </summary>
    Cached,

    /// <summary>
    /// Keep only O(d) numbers (column norms or non-zero counts) and regenerate the entries from the seed in every
    /// call: memory O(D + d), time dominated by the random-number generation. Same bits as <see cref="Cached"/>.
    /// </summary>
    Streamed,
}

/// <summary>Creates the built-in projections by kind or by stored name.</summary>
public static class SubspaceProjections
{
    /// <summary>The name stored in files for a built-in kind.</summary>
    public static string NameOf(SubspaceProjection kind) => kind switch
    {
        SubspaceProjection.Dense => DenseProjection.ProjectionName,
        SubspaceProjection.Sparse => SparseProjection.ProjectionName,
        SubspaceProjection.Fastfood => FastfoodProjection.ProjectionName,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a subspace projection kind: expected Dense, Sparse or Fastfood."),
    };

    /// <summary>The built-in kind stored under <paramref name="name"/>, if any.</summary>
    public static bool TryParse(string name, out SubspaceProjection kind)
    {
        switch (name)
        {
            case DenseProjection.ProjectionName: kind = SubspaceProjection.Dense; return true;
            case SparseProjection.ProjectionName: kind = SubspaceProjection.Sparse; return true;
            case FastfoodProjection.ProjectionName: kind = SubspaceProjection.Fastfood; return true;
            default: kind = default; return false;
        }
    }

    /// <summary>A built-in projection P: R^d -&gt; R^D drawn from <paramref name="seed"/>.</summary>
    /// <param name="storage">Dense and Sparse only; Fastfood always holds O(D) numbers.</param>
    public static ISubspaceProjection Create(SubspaceProjection kind, int fullDimension, int dimension, ulong seed, ProjectionStorage storage = ProjectionStorage.Cached) => kind switch
    {
        SubspaceProjection.Dense => new DenseProjection(fullDimension, dimension, seed, storage),
        SubspaceProjection.Sparse => new SparseProjection(fullDimension, dimension, seed, storage),
        SubspaceProjection.Fastfood => new FastfoodProjection(fullDimension, dimension, seed),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a subspace projection kind: expected Dense, Sparse or Fastfood."),
    };

    internal static void CheckDimensions(string projection, int fullDimension, int dimension)
    {
        if (dimension < 1)
            throw new ArgumentOutOfRangeException(nameof(dimension), dimension, Invariant($"{projection} projection: d = {dimension}; expected at least 1."));
        if (fullDimension < dimension)
            throw new ArgumentOutOfRangeException(nameof(fullDimension), fullDimension,
                Invariant($"{projection} projection: D = {fullDimension} is below d = {dimension}; a subspace needs d <= D."));
    }

    internal static void CheckLengths(ISubspaceProjection p, int coordinates, int theta, string coordinatesName, string thetaName)
    {
        if (coordinates != p.Dimension)
            throw new ArgumentException(Invariant($"{p.Name} projection (D = {p.FullDimension}, d = {p.Dimension}): {coordinatesName} has {coordinates} values, expected d = {p.Dimension}."), coordinatesName);
        if (theta != p.FullDimension)
            throw new ArgumentException(Invariant($"{p.Name} projection (D = {p.FullDimension}, d = {p.Dimension}): {thetaName} has {theta} values, expected D = {p.FullDimension}."), thetaName);
    }

    internal static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Per-(column, row chunk) random streams, so any thread can regenerate any piece of P in any order.</summary>
internal static class ProjectionStreams
{
    /// <summary>Rows per chunk: P is generated in pieces of one column by 32768 rows (part of the format: it fixes the streams).</summary>
    public const int ChunkLength = 32768;

    public static int ChunkCount(int fullDimension) => (fullDimension + ChunkLength - 1) / ChunkLength;

    /// <summary>The generator of column <paramref name="column"/>, chunk <paramref name="chunk"/> (chunk -1: per-column extras).</summary>
    public static Rng Stream(ulong projectionSeed, int column, int chunk)
    {
        ulong key = ((ulong)(uint)column << 32) | (uint)chunk;
        return new Rng(projectionSeed ^ Mix(key + 0x9E3779B97F4A7C15UL));
    }

    /// <summary>
    /// A pooled copy of <paramref name="source"/> (at least its length) for the parallel bodies, which cannot capture
    /// spans: a fresh D-float array per call would land on the large-object heap every training step.
    /// </summary>
    public static float[] RentCopy(ReadOnlySpan<float> source)
    {
        var array = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, source.Length));
        source.CopyTo(array);
        return array;
    }

    /// <summary>A pooled, zeroed array of at least <paramref name="length"/> floats.</summary>
    public static float[] RentZeroed(int length)
    {
        var array = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, length));
        Array.Clear(array, 0, length);
        return array;
    }

    public static void Return(float[] array) => System.Buffers.ArrayPool<float>.Shared.Return(array);

    /// <summary>Standard normal draws, both outputs of each Box-Muller pair.</summary>
    public static void FillGaussian(Rng rng, Span<float> destination)
    {
        int i = 0;
        for (; i + 1 < destination.Length; i += 2)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            (double sin, double cos) = Math.SinCos(2.0 * Math.PI * u2);
            destination[i] = (float)(r * cos);
            destination[i + 1] = (float)(r * sin);
        }
        if (i < destination.Length) destination[i] = rng.NextGaussian();
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
