namespace Condense.Subspace;

/// <summary>What happens to the layers no subspace covers (per-layer subspaces only).</summary>
public enum UncoveredLayers
{
    /// <summary>They keep theta0 and get no gradient: d is the only trainable tensor.</summary>
    Frozen,

    /// <summary>They train normally next to d; their trained weights are stored in the subspace file.</summary>
    Trained,
}

/// <summary>The arguments a custom projection factory receives.</summary>
/// <param name="FullDimension">D, the parameters the subspace covers.</param>
/// <param name="Dimension">d, the subspace coordinates.</param>
/// <param name="Seed">The group's projection seed (derived from <see cref="SubspaceSpec.Seed"/> and the group name).</param>
public readonly record struct SubspaceProjectionRequest(int FullDimension, int Dimension, ulong Seed);

/// <summary>
/// One subspace: theta = theta0 + P d over the parameters of <see cref="Layers"/> (all layers when null), as
/// <c>[Subspace(d, Projection = ..., Seed = ...)]</c> declares it on a model class (global) or on a layer.
/// </summary>
public sealed record SubspaceSpec
{
    /// <param name="dimension">d: at least 1 and below D, the number of parameters covered.</param>
    public SubspaceSpec(int dimension) => Dimension = dimension;

    /// <summary>d, the number of trainable coordinates.</summary>
    public int Dimension { get; init; }

    /// <summary>How P is generated (ignored when <see cref="CustomProjection"/> is set).</summary>
    public SubspaceProjection Projection { get; init; } = SubspaceProjection.Dense;

    /// <summary>The seed P is regenerated from (each group derives its own stream from it and its name).</summary>
    public ulong Seed { get; init; }

    /// <summary>Layer paths this subspace covers (weight and bias of each); null covers every layer of the model.</summary>
    public IReadOnlyList<string>? Layers { get; init; }

    /// <summary>Dense and Sparse only: keep P's entries or regenerate them per call (same bits either way).</summary>
    public ProjectionStorage Storage { get; init; } = ProjectionStorage.Cached;

    /// <summary>
    /// A user projection (the extension point): called with D, d and the group's seed. Its
    /// <see cref="ISubspaceProjection.Name"/> is stored in files; pass the same factory to Load.
    /// </summary>
    public Func<SubspaceProjectionRequest, ISubspaceProjection>? CustomProjection { get; init; }

    /// <summary>The group's name in files and messages: <c>model</c> for a global subspace, else the layer paths joined by '+'.</summary>
    public string GroupName => Layers == null ? "model" : string.Join("+", Layers);
}

/// <summary>Settings shared by all subspaces of a model.</summary>
public sealed record SubspaceOptions
{
    /// <summary>Layers outside every subspace: frozen at theta0 (default) or trained normally.</summary>
    public UncoveredLayers UncoveredLayers { get; init; } = UncoveredLayers.Frozen;

    /// <summary>
    /// When set, the model is first initialized with <c>Module.Initialize(seed)</c> and theta0 is that initialization:
    /// a saved file then stores only the seed (about 4 d bytes in all). When null, theta0 is the model's current
    /// weights (e.g. pretrained ones) and the file carries them, 4 D bytes more.
    /// </summary>
    public ulong? InitializationSeed { get; init; }
}
