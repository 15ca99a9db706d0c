namespace Condense;

/// <summary>Which weights sparsification removes.</summary>
public enum SparsityCriterion
{
    /// <summary>The smallest magnitudes (ties broken by the lower flat index).</summary>
    Magnitude = 0,
}

/// <summary>Over which weights an unstructured sparsity fraction is counted.</summary>
public enum SparsityScope
{
    /// <summary>Each layer removes its own fraction.</summary>
    Layer = 0,
    /// <summary>The fraction is counted over all layers with Scope = Global, each keeping at least <see cref="SparsifyAttribute.LayerFloor"/>.</summary>
    Global = 1,
}

/// <summary>
/// Removes weights: <c>[Sparsify(0.5)]</c> removes that fraction (unstructured, stored as CSR);
/// <c>[Sparsify(N = 2, M = 4)]</c> keeps N of every M consecutive inputs (semi-structured, optionally with
/// <see cref="QuantizeAttribute"/> at 4 or 8 bits).
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class SparsifyAttribute : Attribute
{
    /// <summary>Semi-structured: set <see cref="N"/> and <see cref="M"/>.</summary>
    public SparsifyAttribute()
    {
    }

    /// <param name="fraction">Fraction of the weights removed, in [0, 1).</param>
    public SparsifyAttribute(double fraction) => Fraction = fraction;

    /// <summary>Fraction of the weights removed (unstructured).</summary>
    public double Fraction { get; }

    /// <summary>Weights kept in every block of <see cref="M"/> consecutive inputs.</summary>
    public int N { get; set; }

    /// <summary>Block length of semi-structured sparsity.</summary>
    public int M { get; set; }

    /// <summary>Which weights are removed.</summary>
    public SparsityCriterion Criterion { get; set; }

    /// <summary>Gradual schedule: the training step at which pruning starts (0 = one shot at Compress).</summary>
    public int StartStep { get; set; }

    /// <summary>Gradual schedule: the step at which the final sparsity is reached (cubic schedule of Zhu and Gupta).</summary>
    public int EndStep { get; set; }

    /// <summary>Gradual schedule: prune every this many steps.</summary>
    public int Frequency { get; set; }

    /// <summary>Layer or global counting of the fraction.</summary>
    public SparsityScope Scope { get; set; }

    /// <summary>With Scope = Global: the fraction of weights every layer keeps at least.</summary>
    public double LayerFloor { get; set; }
}
