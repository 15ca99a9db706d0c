using System.Globalization;
using System.Text;
using Condense.Catalogue;

namespace Condense.Compression;

/// <summary>The kind of a planned layer.</summary>
public enum LayerKind
{
    Linear = 0,
    Conv2d = 1,
}

/// <summary>What the plan does to a layer's weight.</summary>
public enum LayerTechnique
{
    /// <summary>Kept in float32 (<c>[KeepDense]</c>).</summary>
    Dense = 0,
    /// <summary>Group-wise integer quantization (<c>[Quantize]</c>).</summary>
    Quantize = 1,
}

/// <summary>
/// One layer of a resolved plan. The generator fills it from the source at build time, including the exact
/// byte counts; compression checks that the storage it produces matches them.
/// </summary>
/// <param name="Path">The layer's path in the model, e.g. <c>hidden1</c> or <c>blocks[3].mlp.up</c>.</param>
/// <param name="KernelSize">0 for a Linear; the square kernel size of a Conv2d.</param>
/// <param name="InFeatures">Columns of the weight matrix: a Conv2d's InChannels x KernelSize x KernelSize.</param>
public sealed record LayerPlan(
    string Path,
    LayerKind Kind,
    int OutFeatures,
    int InFeatures,
    int KernelSize,
    bool HasBias,
    LayerTechnique Technique,
    int Bits,
    int GroupSize,
    bool Symmetric,
    long BytesBefore,
    long BytesAfter)
{
    /// <summary>Number of weights (bias excluded).</summary>
    public long WeightCount => (long)OutFeatures * InFeatures;

    /// <summary>The weight tensor's shape: [Out, In] for a Linear, [Out, InChannels, K, K] for a Conv2d.</summary>
    public int[] WeightShape => Kind == LayerKind.Conv2d
        ? [OutFeatures, InFeatures / (KernelSize * KernelSize), KernelSize, KernelSize]
        : [OutFeatures, InFeatures];

    /// <summary>Exact bytes of the weight as planned (bias excluded).</summary>
    public long WeightBytesAfter => BytesAfter - BiasBytes;

    /// <summary>Bytes of the float32 bias, 0 without one.</summary>
    public long BiasBytes => HasBias ? (long)OutFeatures * KernelCatalogue.Float32Bytes : 0;

    /// <summary>A short description of the technique, e.g. <c>int4 g64 sym</c> or <c>fp32</c>.</summary>
    public string TechniqueText => Technique switch
    {
        LayerTechnique.Quantize => string.Create(CultureInfo.InvariantCulture,
            $"int{Bits} {(GroupSize == 0 ? "per-row" : "g" + GroupSize.ToString(CultureInfo.InvariantCulture))} {(Symmetric ? "sym" : "asym")}"),
        _ => "fp32",
    };

    /// <summary>Computes a layer's exact byte counts from the kernel catalogue.</summary>
    public static (long Before, long After) ComputeBytes(LayerTechnique technique, int outFeatures, int inFeatures, bool hasBias, int bits, int groupSize, bool symmetric) =>
        KernelCatalogue.LayerBytes(outFeatures, inFeatures, hasBias, technique == LayerTechnique.Quantize, bits, groupSize, symmetric);

    /// <summary>The layer's path, kind and shape as one canonical line, e.g. <c>hidden1 Linear 256x784 bias</c>.</summary>
    public string ShapeSignature => string.Create(CultureInfo.InvariantCulture,
        $"{Path} {Kind} {string.Join("x", WeightShape)}{(HasBias ? " bias" : "")}");

    /// <summary>One canonical line, shape and technique: what a saved file is compared with.</summary>
    public string Signature => ShapeSignature + " " + TechniqueText;
}

/// <summary>A model's resolved compression plan, as emitted by the generator (<c>Model.Plan</c>).</summary>
public sealed class CompressionPlan
{
    public CompressionPlan(string modelName, IReadOnlyList<LayerPlan> layers, long maxBytes = 0, double maxBitsPerWeight = 0)
    {
        ArgumentNullException.ThrowIfNull(modelName);
        ArgumentNullException.ThrowIfNull(layers);
        ModelName = modelName;
        Layers = layers;
        MaxBytes = maxBytes;
        MaxBitsPerWeight = maxBitsPerWeight;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var layer in layers)
        {
            if (!seen.Add(layer.Path))
                throw new ArgumentException($"The plan of {modelName} names layer '{layer.Path}' twice.", nameof(layers));
            TotalBytesBefore += layer.BytesBefore;
            TotalBytesAfter += layer.BytesAfter;
            WeightCount += layer.WeightCount;
            WeightBytesAfter += layer.WeightBytesAfter;
        }
    }

    /// <summary>The model class's name.</summary>
    public string ModelName { get; }

    /// <summary>Every layer, in declaration order.</summary>
    public IReadOnlyList<LayerPlan> Layers { get; }

    /// <summary>The budget from <c>[Compressible(MaxBytes = ...)]</c>, 0 = none.</summary>
    public long MaxBytes { get; }

    /// <summary>The budget from <c>[Compressible(MaxBitsPerWeight = ...)]</c>, 0 = none.</summary>
    public double MaxBitsPerWeight { get; }

    /// <summary>Exact bytes of all planned layers in float32 (weights and biases).</summary>
    public long TotalBytesBefore { get; }

    /// <summary>Exact bytes of all planned layers once compressed (weights, scales, zero points, biases).</summary>
    public long TotalBytesAfter { get; }

    /// <summary>Number of weights over all layers (biases excluded).</summary>
    public long WeightCount { get; }

    /// <summary>Exact bytes of all weights once compressed (biases excluded).</summary>
    public long WeightBytesAfter { get; }

    /// <summary>Stored bits per weight over all layers, scales and zero points included, biases excluded.</summary>
    public double BitsPerWeight => WeightCount == 0 ? 0 : WeightBytesAfter * 8.0 / WeightCount;

    /// <summary>TotalBytesBefore / TotalBytesAfter.</summary>
    public double CompressionRatio => TotalBytesAfter == 0 ? 1 : (double)TotalBytesBefore / TotalBytesAfter;

    /// <summary>The layer with this path, or null.</summary>
    public LayerPlan? Find(string path)
    {
        foreach (var layer in Layers)
            if (string.Equals(layer.Path, path, StringComparison.Ordinal)) return layer;
        return null;
    }

    /// <summary>The plan as canonical text, one layer a line: stored in saved files and compared on load.</summary>
    public string Signature => string.Join("\n", Layers.Select(l => l.Signature));

    /// <summary>The plan as a Markdown table.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"### {ModelName}: compression plan\n\n");
        sb.Append("| layer | kind | shape | technique | bytes before | bytes after |\n");
        sb.Append("|---|---|---|---|---:|---:|\n");
        foreach (var l in Layers)
            sb.Append(inv, $"| {l.Path} | {l.Kind} | {string.Join("x", l.WeightShape)} | {l.TechniqueText} | {l.BytesBefore:N0} | {l.BytesAfter:N0} |\n");
        sb.Append(inv, $"| **total** | | | {BitsPerWeight:F2} bits/weight | {TotalBytesBefore:N0} | {TotalBytesAfter:N0} |\n");
        if (MaxBytes > 0) sb.Append(inv, $"\nBudget: {MaxBytes:N0} bytes ({(TotalBytesAfter <= MaxBytes ? "met" : "exceeded")}).\n");
        return sb.ToString();
    }
}
