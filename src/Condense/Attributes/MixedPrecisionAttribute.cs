namespace Condense;

/// <summary>
/// On a model with <c>MaxBytes</c> or <see cref="AverageBits"/>: layers without a compression attribute get their bits
/// from <see cref="Bits"/> at Compress time (Hessian-trace sensitivity solved as a knapsack under the budget). The
/// build checks that the budget is reachable.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false, AllowMultiple = false)]
public sealed class MixedPrecisionAttribute : Attribute
{
    /// <param name="bits">Candidate bit widths, each in the kernel catalogue.</param>
    public MixedPrecisionAttribute(params int[] bits) => Bits = bits;

    /// <summary>Candidate bit widths.</summary>
    public int[] Bits { get; }

    /// <summary>Budget as average stored bits per weight of the candidate layers (scales included); 0 = use MaxBytes.</summary>
    public double AverageBits { get; set; }
}
