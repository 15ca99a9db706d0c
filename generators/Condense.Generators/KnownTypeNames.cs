namespace Condense.Generators;

/// <summary>Metadata names of the runtime types the generator and analyzers look for.</summary>
internal static class KnownTypeNames
{
    public const string CompressibleAttribute = "Condense.CompressibleAttribute";
    public const string QuantizeAttribute = "Condense.QuantizeAttribute";
    public const string KeepDenseAttribute = "Condense.KeepDenseAttribute";
    public const string LowRankAttribute = "Condense.LowRankAttribute";
    public const string LowRankCorrectionAttribute = "Condense.LowRankCorrectionAttribute";
    public const string SparsifyAttribute = "Condense.SparsifyAttribute";
    public const string SubspaceAttribute = "Condense.SubspaceAttribute";
    public const string MixedPrecisionAttribute = "Condense.MixedPrecisionAttribute";
    public const string OverrideAttribute = "Condense.OverrideAttribute";
    public const string Module = "Condense.Nn.Module";
    public const string Tensor = "Condense.Tensor";
    public const string Linear = "Condense.Nn.Linear";
    public const string Conv2d = "Condense.Nn.Conv2d";
    public const string Layer = "Condense.Nn.Layer";
    public const string WeightedLayer = "Condense.Nn.WeightedLayer";
    public const string CompressionOptions = "Condense.Compression.CompressionOptions";

    /// <summary>Layer attributes, as (short name, metadata name), in the order their problems are reported.</summary>
    public static readonly (string Name, string MetadataName)[] LayerAttributes =
    {
        ("Quantize", QuantizeAttribute),
        ("KeepDense", KeepDenseAttribute),
        ("LowRank", LowRankAttribute),
        ("LowRankCorrection", LowRankCorrectionAttribute),
        ("Sparsify", SparsifyAttribute),
        ("Subspace", SubspaceAttribute),
    };
}
