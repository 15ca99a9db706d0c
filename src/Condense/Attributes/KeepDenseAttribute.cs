namespace Condense;

/// <summary>Explicitly keeps a layer in float32: it is listed in the plan but never compressed.</summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class KeepDenseAttribute : Attribute
{
}
