using Condense.Benchmarks.Harness;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// A group-quantized format run with <see cref="ActivationPrecision.Float32"/> (the exact path): the same codes and
/// bytes as the format it wraps, named <c>&lt;format&gt;/f32</c>. Issue 13's target: >= 50% of the measured
/// bandwidth at batch 1.
/// </summary>
internal static class Float32ActivationFormats
{
    public static WeightFormat Of(WeightFormat quantized) => new(
        quantized.Name + "/f32",
        (dense, outFeatures, inFeatures) => new Storage((GroupQuantizedWeight)quantized.Create(dense, outFeatures, inFeatures)),
        quantized.Copy is null ? null : (storage, dense) => new Storage((GroupQuantizedWeight)quantized.Copy(((Storage)storage).Inner, dense)),
        Batch1Target: Target.Bandwidth(50));

    public static readonly WeightFormat Int4G64 = Of(QuantizedFormats.Int4G64);
    public static readonly WeightFormat Int8G32 = Of(QuantizedFormats.Int8G32);

    private sealed class Storage(GroupQuantizedWeight inner) : IWeightStorage
    {
        public GroupQuantizedWeight Inner { get; } = inner;
        public int OutFeatures => Inner.OutFeatures;
        public int InFeatures => Inner.InFeatures;
        public string Format => Inner.Format + " (float32 activations)";
        public long ByteCount => Inner.ByteCount;
        public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch) => Inner.MatMulTransposed(x, y, batch, ActivationPrecision.Float32);
        public void Dequantize(Span<float> destination) => Inner.Dequantize(destination);
    }
}
