// Compiled into both the runtime (Condense) and the generator/analyzers (see KernelCatalogue.cs): the largest
// layer the runtime can allocate. The analyzer reports CND0025 with this message at build time; the Linear and
// Conv2d constructors throw it at run time. Keep it netstandard2.0-compatible C#.
using System.Globalization;

namespace Condense.Catalogue;

public static partial class KernelCatalogue
{
    /// <summary>
    /// Most weights one layer can hold: its dense weight is one float array, and .NET arrays hold at most
    /// 0x7FFFFFC7 elements (<c>Array.MaxLength</c>, which netstandard2.0 does not expose).
    /// </summary>
    public const long MaxWeightsPerLayer = 0x7FFFFFC7;

    /// <summary>Weights of a layer with <paramref name="outFeatures"/> rows of <paramref name="columns"/> (saturates at long.MaxValue, never wraps).</summary>
    public static long WeightCount(long outFeatures, long columns) => SaturatingProduct(outFeatures, columns);

    /// <summary><paramref name="a"/> x <paramref name="b"/> for non-negative values, long.MaxValue when the product does not fit.</summary>
    public static long SaturatingProduct(long a, long b) =>
        a <= 0 || b <= 0 ? 0 : a > long.MaxValue / b ? long.MaxValue : a * b;

    /// <summary><paramref name="a"/> + <paramref name="b"/> for non-negative values, long.MaxValue when the sum does not fit.</summary>
    public static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;

    /// <summary>
    /// Why a layer is too large for the runtime, or null when it fits: the message names the layer, its weight
    /// count and the limit. <paramref name="layer"/> is the path (build time) or the description (run time).
    /// </summary>
    /// <param name="shape">The weight's shape as text, e.g. <c>46341 x 46341</c>.</param>
    public static string? LayerSizeProblem(string layer, string shape, long weights) =>
        weights <= MaxWeightsPerLayer ? null
        : "Layer '" + layer + "' is too large: its weight " + shape + " has " +
          (weights == long.MaxValue ? "more than " + long.MaxValue.ToString("N0", CultureInfo.InvariantCulture) : weights.ToString("N0", CultureInfo.InvariantCulture)) +
          " values, and a layer holds at most " + MaxWeightsPerLayer.ToString("N0", CultureInfo.InvariantCulture) +
          " (the largest float array .NET can allocate); split it into smaller layers";
}
