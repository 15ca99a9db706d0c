using Condense.Nn;
using Condense.Quantization;

namespace Condense.Compression;

// OWNER: integration (lead). Skeleton only: the calls generated Compress() methods make.

/// <summary>Options for <c>Compress</c>.</summary>
public sealed class CompressionOptions
{
    /// <summary>Measure each layer's relative reconstruction error ||W - W'|| / ||W|| (costs one dequantization).</summary>
    public bool MeasureError { get; init; } = true;
}

/// <summary>Progress of a <c>Compress</c> call: which layer is being compressed.</summary>
public readonly record struct CompressionProgress(int LayerIndex, int LayerCount, string Path);

/// <summary>
/// Applies a plan to a model's layers. Generated <c>Compress</c> methods call one typed method per layer, then
/// <see cref="Complete"/>; nothing in the model changes until every layer has been compressed successfully.
/// </summary>
public sealed class CompressionSession
{
    public CompressionSession(CompressionPlan plan, CompressionOptions? options, IProgress<CompressionProgress>? progress) =>
        throw new NotImplementedException();

    public void Quantize<TBits>(Linear layer, int layerIndex) where TBits : struct, IBitWidth => throw new NotImplementedException();

    public void Quantize<TBits>(Conv2d layer, int layerIndex) where TBits : struct, IBitWidth => throw new NotImplementedException();

    public void KeepDense(Layer layer, int layerIndex) => throw new NotImplementedException();

    public CompressionReport Complete() => throw new NotImplementedException();
}

/// <summary>What Compress did to one layer.</summary>
public sealed record LayerReport(string Path, string Technique, long BytesBefore, long BytesAfter, double RelativeError, TimeSpan Elapsed);

/// <summary>What Compress did to the model.</summary>
public sealed class CompressionReport
{
    public CompressionReport(CompressionPlan plan, IReadOnlyList<LayerReport> layers)
    {
        Plan = plan;
        Layers = layers;
    }

    public CompressionPlan Plan { get; }
    public IReadOnlyList<LayerReport> Layers { get; }
    public long TotalBytesBefore => Layers.Sum(l => l.BytesBefore);
    public long TotalBytesAfter => Layers.Sum(l => l.BytesAfter);
}
