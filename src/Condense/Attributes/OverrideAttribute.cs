namespace Condense;

/// <summary>
/// On a model: changes the settings of every layer whose path matches <see cref="Pattern"/>, e.g.
/// <c>[Override("blocks[0..1].mlp.*", Bits = 8)]</c>. Patterns: <c>*</c> is one path segment, <c>**</c> any number of
/// segments, <c>[a..b]</c> an inclusive index range, <c>[*]</c> any index. A pattern that matches no layer does not build.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = true)]
public sealed class OverrideAttribute : Attribute
{
    /// <param name="pattern">Layer paths to change, e.g. <c>blocks[*].attn.*</c>.</param>
    public OverrideAttribute(string pattern) => Pattern = pattern;

    /// <summary>Layer paths to change.</summary>
    public string Pattern { get; }

    /// <summary>Quantize the matched layers to this many bits (replacing their [Quantize] settings).</summary>
    public int Bits { get; set; }

    /// <summary>Group size of the matched layers' quantization.</summary>
    public int GroupSize { get; set; }

    /// <summary>Symmetric grid for the matched layers' quantization.</summary>
    public bool Symmetric { get; set; } = true;

    /// <summary>Keep the matched layers float32.</summary>
    public bool KeepDense { get; set; }
}
