namespace Condense.Nn;

/// <summary>
/// Base class of user models. For a <c>[Compressible] partial</c> class the Condense generator implements
/// <see cref="Layers"/> (a reflection-free registry); everything else builds on it.
/// </summary>
public abstract class Module
{
    /// <summary>Every layer of the model with its path, in declaration order.</summary>
    public virtual IReadOnlyList<NamedLayer> Layers =>
        throw new InvalidOperationException(
            $"{GetType().Name} has no generated layer registry: mark the class [Compressible] and partial so the Condense generator can emit it.");

    /// <summary>
    /// Every layer that holds parameters outside the compression plan, with its path, in declaration order:
    /// <see cref="LayerNorm"/>, <see cref="Embedding"/> and a user's own <see cref="Layer"/> subclasses (nested models'
    /// included). For a <c>[Compressible]</c> model that has such fields the generator implements it; they are trained,
    /// initialized, saved and loaded like the planned layers, and always kept dense. Empty by default.
    /// </summary>
    public virtual IReadOnlyList<NamedLayer> ParameterLayers => [];

    /// <summary>
    /// Every trainable tensor with its path (<c>layer.weight</c>, the name the file and an import map use): the planned
    /// layers' in declaration order, then those of <see cref="ParameterLayers"/>.
    /// </summary>
    public IEnumerable<NamedParameter> NamedParameters()
    {
        foreach (var (path, layer) in Layers)
            foreach (var p in layer.Parameters)
                yield return new NamedParameter(path + "." + p.Name, p.Value);
        foreach (var (path, layer) in ParameterLayers)
            foreach (var p in layer.Parameters)
                yield return new NamedParameter(path + "." + p.Name, p.Value);
    }

    /// <summary>Every trainable tensor, for an optimizer.</summary>
    public IReadOnlyList<Tensor> Parameters()
    {
        var list = new List<Tensor>();
        foreach (var p in NamedParameters()) list.Add(p.Value);
        return list;
    }

    /// <summary>Initializes every layer from <paramref name="seed"/>; each layer's stream depends on its path only.</summary>
    public void Initialize(ulong seed)
    {
        foreach (var (path, layer) in Layers)
            layer.ResetParameters(new Rng(Rng.Derive(seed, path)));
        foreach (var (path, layer) in ParameterLayers)
            layer.ResetParameters(new Rng(Rng.Derive(seed, path)));
    }
}
