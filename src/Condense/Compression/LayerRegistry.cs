using System.Globalization;
using Condense.Nn;

namespace Condense.Compression;

/// <summary>
/// Helpers for generated layer registries of models that contain other <c>[Compressible]</c> models: they flatten a
/// child's layers under a path prefix and check at run time what the build assumed (array length, non-null blocks).
/// </summary>
public static class LayerRegistry
{
    /// <summary>Adds a nested model's layers as <c>{member}.{path}</c>.</summary>
    /// <exception cref="InvalidOperationException">The nested model is null.</exception>
    public static void AddNested(List<NamedLayer> layers, string modelName, string member, Module? child)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (child is null)
            throw new InvalidOperationException($"Model '{modelName}': nested model '{member}' is null; create it in the field initializer or the constructor.");
        foreach (var (path, layer) in child.Layers)
            layers.Add(new NamedLayer(member + "." + path, layer));
    }

    /// <summary>Adds every block of an array of nested models as <c>{member}[i].{path}</c>.</summary>
    /// <exception cref="InvalidOperationException">The array is null, has another length than the build saw, or holds a null block.</exception>
    public static void AddArray(List<NamedLayer> layers, string modelName, string member, IReadOnlyList<Module?>? blocks, int compiledLength)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (blocks is null)
            throw new InvalidOperationException($"Model '{modelName}': array '{member}' is null; the compiled plan expects {compiledLength} blocks.");
        if (blocks.Count != compiledLength)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"Model '{modelName}': array '{member}' has {blocks.Count} blocks but the compiled plan expects {compiledLength}; keep its length the constant the build saw."));
        for (int i = 0; i < compiledLength; i++)
        {
            var block = blocks[i] ?? throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"Model '{modelName}': block '{member}[{i}]' is null; assign every element of '{member}' in the constructor."));
            string prefix = string.Create(CultureInfo.InvariantCulture, $"{member}[{i}].");
            foreach (var (path, layer) in block.Layers)
                layers.Add(new NamedLayer(prefix + path, layer));
        }
    }

    /// <summary>
    /// An array of layers (<c>Linear[] heads</c>), checked against what the build planned: the length it saw and no
    /// null element. Used by the generated Layers, Compress and CompressInto, which list <c>heads[0]</c>, <c>heads[1]</c>, ...
    /// </summary>
    /// <exception cref="InvalidOperationException">The array is null, has another length than the build saw, or holds a null layer.</exception>
    public static T[] RequireLayers<T>(T?[]? layers, string modelName, string member, int compiledLength) where T : Layer
    {
        if (layers is null)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"Model '{modelName}': layer array '{member}' is null; the compiled plan expects {compiledLength} layers."));
        if (layers.Length != compiledLength)
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"Model '{modelName}': layer array '{member}' has {layers.Length} layers but the compiled plan expects {compiledLength}; keep its length the constant the build saw."));
        for (int i = 0; i < layers.Length; i++)
            if (layers[i] is null)
                throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                    $"Model '{modelName}': layer '{member}[{i}]' is null; assign every element of '{member}' in the initializer or the constructor."));
        return layers!;
    }

    /// <summary>A layer member outside the plan (LayerNorm, Embedding, a user layer), or an exception naming it (used by generated ParameterLayers).</summary>
    /// <exception cref="InvalidOperationException">The member is null.</exception>
    public static T RequireLayer<T>(T? layer, string modelName, string member) where T : Layer =>
        layer ?? throw new InvalidOperationException($"Model '{modelName}': layer '{member}' is null; create it in the field initializer or the constructor.");

    /// <summary>Adds every element of an array of layers outside the plan as <c>{member}[i]</c>, checked against the compiled length.</summary>
    /// <exception cref="InvalidOperationException">The array is null, has another length than the build saw, or holds a null layer.</exception>
    public static void AddLayerArray<T>(List<NamedLayer> layers, string modelName, string member, T?[]? array, int compiledLength) where T : Layer
    {
        ArgumentNullException.ThrowIfNull(layers);
        var checkedLayers = RequireLayers(array, modelName, member, compiledLength);
        for (int i = 0; i < checkedLayers.Length; i++)
            layers.Add(new NamedLayer(string.Create(CultureInfo.InvariantCulture, $"{member}[{i}]"), checkedLayers[i]));
    }

    /// <summary>Adds a nested model's <see cref="Module.ParameterLayers"/> as <c>{member}.{path}</c>.</summary>
    /// <exception cref="InvalidOperationException">The nested model is null.</exception>
    public static void AddNestedParameterLayers(List<NamedLayer> layers, string modelName, string member, Module? child)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var model = Require(child, modelName, member);
        foreach (var (path, layer) in model.ParameterLayers)
            layers.Add(new NamedLayer(member + "." + path, layer));
    }

    /// <summary>Adds every block's <see cref="Module.ParameterLayers"/> as <c>{member}[i].{path}</c>, checked against the compiled length.</summary>
    /// <exception cref="InvalidOperationException">The array is null, has another length than the build saw, or holds a null block.</exception>
    public static void AddArrayParameterLayers(List<NamedLayer> layers, string modelName, string member, IReadOnlyList<Module?>? blocks, int compiledLength)
    {
        ArgumentNullException.ThrowIfNull(layers);
        AddArray([], modelName, member, blocks, compiledLength);
        for (int i = 0; i < compiledLength; i++)
        {
            string prefix = string.Create(CultureInfo.InvariantCulture, $"{member}[{i}].");
            foreach (var (path, layer) in blocks![i]!.ParameterLayers)
                layers.Add(new NamedLayer(prefix + path, layer));
        }
    }

    /// <summary>The nested model, or an exception naming it (used by generated Compress).</summary>
    public static T Require<T>(T? child, string modelName, string member) where T : Module =>
        child ?? throw new InvalidOperationException($"Model '{modelName}': nested model '{member}' is null; create it in the field initializer or the constructor.");

    /// <summary>The array of blocks, checked against the compiled length (used by generated Compress).</summary>
    public static T[] RequireArray<T>(T[]? blocks, string modelName, string member, int compiledLength) where T : Module
    {
        var list = new List<NamedLayer>();
        AddArray(list, modelName, member, blocks, compiledLength);
        return blocks!;
    }
}
