namespace Condense.Generators;

/// <summary>Metadata names of the runtime types the generator and analyzers look for.</summary>
internal static class KnownTypeNames
{
    public const string CompressibleAttribute = "Condense.CompressibleAttribute";
    public const string QuantizeAttribute = "Condense.QuantizeAttribute";
    public const string KeepDenseAttribute = "Condense.KeepDenseAttribute";
    public const string Module = "Condense.Nn.Module";
    public const string Linear = "Condense.Nn.Linear";
    public const string Conv2d = "Condense.Nn.Conv2d";
}
