// Compiled into both the runtime and the generator/analyzers (see KernelCatalogue.cs): how unstructured pruning
// counts kept weights, so the build's checks and the runtime's selection agree. Keep it netstandard2.0-compatible C#.
namespace Condense.Catalogue;

/// <summary>Counting rules of unstructured pruning shared by the build and the runtime.</summary>
public static class PruningRules
{
    /// <summary>Weights kept at sparsity <paramref name="sparsity"/>: count - floor(sparsity x count).</summary>
    public static long KeptCount(long count, double sparsity) => count - (long)System.Math.Floor(sparsity * count);

    /// <summary>
    /// Weights a layer keeps at least with <c>LayerFloor</c> = <paramref name="floor"/>: the count kept at sparsity
    /// 1 - floor, so "keeps at least 5%" and "is at most 95% sparse" count alike.
    /// </summary>
    public static long MinimumKeptCount(long count, double floor) => floor <= 0 ? 0 : KeptCount(count, 1.0 - floor);
}
