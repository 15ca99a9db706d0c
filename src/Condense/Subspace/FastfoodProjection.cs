using System.Buffers;
using System.Numerics.Tensors;
using Condense.Kernels;

namespace Condense.Subspace;

/// <summary>
/// Fastfood P (Le, Sarlos &amp; Smola 2013, as Li et al. 2018 use it): the existing <see cref="Fastfood"/> kernel's
/// stacked blocks (1/sqrt(L)) S H G Pi H B of length L = the next power of two &gt;= d, ceil(D / L) of them, the
/// input zero-padded to L and the output truncated to D, scaled by 1/sqrt(D) so that columns have unit length in
/// expectation (the kernel's entries behave like N(0, 1) draws).
/// </summary>
/// <remarks>
/// Memory O(D + d): the kernel keeps its diagonals and permutation codes (about 7 bytes per output row); nothing of
/// size D x d exists. Each call costs 2 fast Walsh-Hadamard transforms of length L per block, O(D log d) in all; the
/// kernel's bits do not depend on the thread count or the SIMD width.
/// </remarks>
public sealed class FastfoodProjection : ISubspaceProjection
{
    /// <summary>The name stored in files.</summary>
    public const string ProjectionName = "fastfood";

    private readonly Fastfood _kernel;
    private readonly float _scale;

    /// <summary>Draws P: R^d -&gt; R^D from <paramref name="seed"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">d &lt; 1 or D &lt; d.</exception>
    public FastfoodProjection(int fullDimension, int dimension, ulong seed)
    {
        SubspaceProjections.CheckDimensions(ProjectionName, fullDimension, dimension);
        FullDimension = fullDimension;
        Dimension = dimension;
        Seed = seed;
        _kernel = new Fastfood(dimension, fullDimension, Rng.Derive(seed, "subspace/fastfood"));
        _scale = (float)(1.0 / Math.Sqrt(fullDimension));
    }

    /// <inheritdoc/>
    public string Name => ProjectionName;

    /// <inheritdoc/>
    public int FullDimension { get; }

    /// <inheritdoc/>
    public int Dimension { get; }

    /// <inheritdoc/>
    public ulong Seed { get; }

    /// <summary>L: the block length, the next power of two &gt;= d.</summary>
    public int BlockLength => _kernel.BlockLength;

    /// <summary>ceil(D / L): the number of stacked blocks.</summary>
    public int BlockCount => _kernel.BlockCount;

    /// <inheritdoc/>
    public void Project(ReadOnlySpan<float> coordinates, Span<float> theta)
    {
        SubspaceProjections.CheckLengths(this, coordinates.Length, theta.Length, nameof(coordinates), nameof(theta));
        var product = ArrayPool<float>.Shared.Rent(FullDimension);
        try
        {
            var p = product.AsSpan(0, FullDimension);
            _kernel.Apply(coordinates, p);
            TensorPrimitives.MultiplyAdd(p, _scale, theta, theta);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(product);
        }
    }

    /// <summary>
    /// parameters[i] = theta0 slice + (P d) slice for consecutive parameter slices of theta: the same bits as copying
    /// theta0 into theta, <see cref="Project"/> and copying theta out, with two passes over D fewer.
    /// <paramref name="product"/> (D floats) receives the unscaled kernel output.
    /// </summary>
    internal void ProjectInto(ReadOnlySpan<float> coordinates, ReadOnlySpan<float> theta0, Span<float> product, IReadOnlyList<Nn.NamedParameter> parameters)
    {
        SubspaceProjections.CheckLengths(this, coordinates.Length, product.Length, nameof(coordinates), nameof(product));
        _kernel.Apply(coordinates, product);
        int at = 0;
        foreach (var (_, parameter) in parameters)
        {
            int length = parameter.Length;
            TensorPrimitives.MultiplyAdd(product.Slice(at, length), _scale, theta0.Slice(at, length), parameter.Data);
            at += length;
        }
    }

    /// <inheritdoc/>
    public void ProjectTranspose(ReadOnlySpan<float> gradient, Span<float> coordinatesGradient)
    {
        SubspaceProjections.CheckLengths(this, coordinatesGradient.Length, gradient.Length, nameof(coordinatesGradient), nameof(gradient));
        var product = ArrayPool<float>.Shared.Rent(Dimension);
        try
        {
            var p = product.AsSpan(0, Dimension);
            _kernel.ApplyTranspose(gradient, p);
            TensorPrimitives.MultiplyAdd(p, _scale, coordinatesGradient, coordinatesGradient);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(product);
        }
    }
}
