namespace Condense;

/// <summary>How the random projection P of a subspace is generated.</summary>
public enum SubspaceProjection
{
    /// <summary>Dense Gaussian P.</summary>
    Dense = 0,
    /// <summary>Sparse random P.</summary>
    Sparse = 1,
    /// <summary>Fastfood transform (structured, O(n log n)).</summary>
    Fastfood = 2,
}

/// <summary>
/// Trains theta = theta0 + P d with only d trainable (Li et al. 2018): on the model class, one subspace for every
/// parameter; on a layer, for that layer's weight and bias. P is never stored: it is regenerated from <see cref="Seed"/>.
/// The generator emits <c>Reparameterize()</c>, which returns the typed subspace model, and <c>LoadSubspace(path)</c>;
/// the layers' other attributes apply when the materialized model is compressed (docs/subspace.md).
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Field | AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class SubspaceAttribute : Attribute
{
    /// <param name="dimension">Length of d: at least 1, below the number of parameters covered.</param>
    public SubspaceAttribute(int dimension) => Dimension = dimension;

    /// <summary>Length of d.</summary>
    public int Dimension { get; }

    /// <summary>How P is generated.</summary>
    public SubspaceProjection Projection { get; set; }

    /// <summary>Seed P is regenerated from.</summary>
    public ulong Seed { get; set; }

    /// <summary>
    /// Per-layer subspaces only: whether the layers no <c>[Subspace]</c> covers stay frozen at theta0 (the default) or
    /// train normally beside the coordinates. Every annotated layer of a model must say the same (CND0033); a subspace on
    /// the class covers every layer, so it takes no value here.
    /// </summary>
    public Condense.Subspace.UncoveredLayers OtherLayers { get; set; }
}
