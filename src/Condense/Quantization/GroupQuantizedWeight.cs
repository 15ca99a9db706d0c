using Condense.Nn;

namespace Condense.Quantization;

// OWNER: quantization. Skeleton only.
/// <summary>Bits, group size (0 = one group per row) and grid of a group-wise quantization.</summary>
public readonly record struct QuantizationScheme(int Bits, int GroupSize, bool Symmetric);

/// <summary>A weight matrix quantized group-wise to 2, 3, 4 or 8 bits; layout in docs/format.md.</summary>
public sealed class GroupQuantizedWeight : IWeightStorage
{
    private GroupQuantizedWeight() => throw new NotImplementedException();

    public static GroupQuantizedWeight Quantize<TBits>(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, int groupSize, bool symmetric)
        where TBits : struct, IBitWidth => throw new NotImplementedException();

    public static GroupQuantizedWeight Quantize(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, QuantizationScheme scheme) =>
        throw new NotImplementedException();

    /// <summary>Rebuilds a weight from its stored parts (e.g. from a file), validating every length.</summary>
    public static GroupQuantizedWeight FromParts(int outFeatures, int inFeatures, QuantizationScheme scheme, byte[] packed, Half[] scales, byte[]? zeroPoints) =>
        throw new NotImplementedException();

    public QuantizationScheme Scheme { get; }
    public byte[] Packed => throw new NotImplementedException();
    public Half[] Scales => throw new NotImplementedException();
    public byte[]? ZeroPoints => throw new NotImplementedException();

    public int OutFeatures { get; }
    public int InFeatures { get; }
    public string Format => throw new NotImplementedException();
    public long ByteCount => throw new NotImplementedException();
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch) => throw new NotImplementedException();
    public void Dequantize(Span<float> destination) => throw new NotImplementedException();
}
