namespace Condense.Nn;

/// <summary>
/// A lookup table of <c>Count</c> vectors of <c>Dimension</c> values (<see cref="Ops.Embedding"/>): its parameter
/// <c>weight</c> [Count, Dimension] is named and shaped as PyTorch's <c>nn.Embedding</c>. A <c>[Compressible]</c>
/// model registers an Embedding field: it is trained, saved and loaded, and kept dense.
/// </summary>
public sealed class Embedding : Layer
{
    /// <summary>A table initialized deterministically from its shape with N(0, 1) values, as PyTorch initializes it.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive, or the table has more values than one array can hold.</exception>
    public Embedding(int count, int dimension)
    {
        if (count <= 0 || dimension <= 0)
            throw new ArgumentOutOfRangeException(nameof(count), $"Embedding({count}, {dimension}): both sizes must be positive.");
        if ((long)count * dimension > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(count), $"Embedding({count}, {dimension}): {(long)count * dimension} values are more than one array holds.");
        Count = count;
        Dimension = dimension;
        Weight = new Tensor(new float[count * dimension], count, dimension) { RequiresGrad = true };
        ResetParameters(new Rng(Rng.Derive(0x436F6E64656E7365UL, $"Embedding({count},{dimension})")));
    }

    /// <summary>Rows of the table (vocabulary or positions).</summary>
    public int Count { get; }

    /// <summary>Values per row.</summary>
    public int Dimension { get; }

    /// <summary>The table [Count, Dimension].</summary>
    public Tensor Weight { get; }

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> Parameters => [new("weight", Weight)];

    /// <summary>Draws every value from N(0, 1).</summary>
    public override void ResetParameters(Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        var data = Weight.Data;
        for (int i = 0; i < data.Length; i++) data[i] = rng.NextGaussian();
    }

    /// <summary>The rows of <paramref name="ids"/>, as [ids.Length, Dimension].</summary>
    /// <exception cref="ArgumentException">An id is outside [0, Count).</exception>
    public Tensor Forward(ReadOnlySpan<int> ids) => Ops.Embedding(Weight, ids);

    /// <inheritdoc/>
    public override string ToString() => $"Embedding({Count}, {Dimension})";
}
