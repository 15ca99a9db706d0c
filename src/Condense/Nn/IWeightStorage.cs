namespace Condense.Nn;

/// <summary>
/// How a layer's weight matrix [OutFeatures, InFeatures] is stored: dense float32 or a compressed format.
/// Compression swaps a layer's storage; the layer's Forward stays the same.
/// </summary>
public interface IWeightStorage
{
    /// <summary>Rows of the weight matrix.</summary>
    int OutFeatures { get; }

    /// <summary>Columns of the weight matrix (for a Conv2d: InChannels x KernelSize x KernelSize).</summary>
    int InFeatures { get; }

    /// <summary>A short name of the format, e.g. <c>int4-g64-sym</c>.</summary>
    string Format { get; }

    /// <summary>Exact bytes the stored weight occupies (values, scales, zero points).</summary>
    long ByteCount { get; }

    /// <summary>
    /// y[b, o] = sum_i x[b, i] * W[o, i] for b &lt; <paramref name="batch"/>;
    /// x is batch x InFeatures, y is batch x OutFeatures and is overwritten.
    /// </summary>
    void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch);

    /// <summary>Writes the (dequantized) weight as float32 [OutFeatures, InFeatures], row-major.</summary>
    void Dequantize(Span<float> destination);
}
