namespace Condense;

/// <summary>What the plan does with a layer whose settings cannot work (for example a group size that does not divide it).</summary>
public enum IncompatiblePolicy
{
    /// <summary>The build fails with a diagnostic that names the layer and the fix.</summary>
    Error = 0,
    /// <summary>The layer stays dense; a warning names it.</summary>
    Skip = 1,
    /// <summary>The nearest setting that works is used; a warning names the layer and the change.</summary>
    Adjust = 2,
}

/// <summary>
/// Marks a <c>partial</c> model class whose layers carry compression attributes. The Condense generator emits
/// the resolved plan, a parameter registry, <c>Compress</c>, <c>Save</c> and <c>Load</c> for it.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
public sealed class CompressibleAttribute : Attribute
{
    /// <summary>Upper bound on the compressed model's exact byte count (weights, scales, zero points, biases); 0 = none.</summary>
    public long MaxBytes { get; set; }

    /// <summary>Upper bound on stored bits per weight over all planned layers; 0 = none.</summary>
    public double MaxBitsPerWeight { get; set; }

    /// <summary>What to do with a layer whose settings cannot work.</summary>
    public IncompatiblePolicy OnIncompatible { get; set; }
}
