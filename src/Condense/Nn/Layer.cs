namespace Condense.Nn;

/// <summary>A named trainable tensor of a layer, e.g. <c>weight</c> or <c>bias</c>.</summary>
public readonly record struct Parameter(string Name, Tensor Value);

/// <summary>A layer of a model, reached by its path (e.g. <c>blocks[3].mlp.up</c>).</summary>
public readonly record struct NamedLayer(string Path, Layer Layer);

/// <summary>A trainable tensor reached by its full path (e.g. <c>hidden1.weight</c>).</summary>
public readonly record struct NamedParameter(string Path, Tensor Value);

/// <summary>A building block with parameters. Layers are created with a deterministic initialization.</summary>
public abstract class Layer
{
    /// <summary>The layer's own trainable tensors (empty once its weight is compressed and frozen).</summary>
    public abstract IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>Re-initializes the parameters from <paramref name="rng"/>.</summary>
    public abstract void ResetParameters(Rng rng);

    /// <summary>
    /// The subspace model that drives this layer while it lives (set by <c>Reparameterize</c>, cleared by
    /// <c>Materialize</c>): Compress refuses the layer then, and Save first writes theta0 + P d into it.
    /// </summary>
    internal Subspace.SubspaceModel? LiveSubspace { get; set; }
}
