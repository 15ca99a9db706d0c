using Condense.Benchmarks.Harness;
using Condense.Quantization;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// Round-to-nearest group quantization of a whole fp32 matrix (what Compress does per layer): GB/s is fp32 weights
/// read per second. The matrix is far larger than the caches, so every call reads it from memory.
/// </summary>
internal sealed class QuantizeCase : BenchCase
{
    private readonly float[] _weights, _small;
    private readonly Shape _shape;
    private readonly QuantizationScheme _scheme;

    public QuantizeCase(Shape shape, QuantizationScheme scheme, Target? target = null)
        : base($"rtn-int{scheme.Bits}-g{scheme.GroupSize}", shape.Label, batch: 1, cold: false)
    {
        _shape = shape;
        _scheme = scheme;
        _weights = RandomData.Weights(shape);
        _small = RandomData.Uniform(64 * shape.In, seed: 37, scale: 0.05f);
        Target = target;
    }

    public override double BitsPerWeight => double.NaN;
    public override long BytesPerCall => _weights.LongLength * sizeof(float);
    public override void WarmUp(int calls) { for (int i = 0; i < calls; i++) GroupQuantizedWeight.Quantize(_small, 64, _shape.In, _scheme); }
    public override void Invoke() => GroupQuantizedWeight.Quantize(_weights, _shape.Out, _shape.In, _scheme);
}

internal static partial class CaseCatalog
{
    /// <summary>BENCHMARKS.md: RTN int4 quantization at >= 1 GB/s of fp32 weights.</summary>
    private static CaseGroup QuantizeGroup()
    {
        var shape = Shape.S2;
        double msAtOneGBps = shape.Out * (double)shape.In * sizeof(float) / 1e6;
        return new CaseGroup("quantize", _ => [new QuantizeCase(shape, new QuantizationScheme(4, 64, Symmetric: false), Target.TimeAtMost(msAtOneGBps, ">=1 GB/s fp32"))]);
    }
}
