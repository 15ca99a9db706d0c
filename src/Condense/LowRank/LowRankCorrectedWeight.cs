using System.Globalization;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.LowRank;

/// <summary>
/// A group-quantized weight plus a low-rank fp32 correction of its error (LoRC / LQ-LoRA style):
/// W ~ deq(Q) + U V, computed as Q x + U (V x) in one call.
/// </summary>
public sealed class LowRankCorrectedWeight : IWeightStorage
{
    private LowRankCorrectedWeight(GroupQuantizedWeight quantized, LowRankWeight correction)
    {
        Quantized = quantized;
        Correction = correction;
    }

    /// <summary>The group-quantized part Q.</summary>
    public GroupQuantizedWeight Quantized { get; }

    /// <summary>The correction U V.</summary>
    public LowRankWeight Correction { get; }

    /// <inheritdoc/>
    public int OutFeatures => Quantized.OutFeatures;

    /// <inheritdoc/>
    public int InFeatures => Quantized.InFeatures;

    /// <inheritdoc/>
    public string Format => string.Create(CultureInfo.InvariantCulture, $"{Quantized.Format}+lowrank-r{Correction.Rank}");

    /// <inheritdoc/>
    public long ByteCount => Quantized.ByteCount + Correction.ByteCount;

    /// <summary>
    /// Quantizes <paramref name="dense"/> with <paramref name="scheme"/>, then fits the rank-<paramref name="rank"/>
    /// truncated SVD of the residual W - deq(Q) as the correction.
    /// </summary>
    /// <exception cref="ArgumentException">A shape mismatch, an unsupported scheme, a rank out of range, or a NaN/Inf weight.</exception>
    public static LowRankCorrectedWeight Fit(ReadOnlySpan<float> dense, int outFeatures, int inFeatures, QuantizationScheme scheme, int rank, ulong seed = LowRankWeight.DefaultSeed)
    {
        var quantized = GroupQuantizedWeight.Quantize(dense, outFeatures, inFeatures, scheme);
        return FitCorrection(dense, quantized, rank, seed);
    }

    /// <summary>
    /// Fits the rank-r correction U V to the error <paramref name="quantized"/> leaves, W - deq(Q), whatever produced Q
    /// (round-to-nearest in <see cref="Fit"/>, GPTQ in a compression session).
    /// </summary>
    /// <param name="dense">The float32 weight Q was computed from, [Out, In] row-major.</param>
    public static LowRankCorrectedWeight FitCorrection(ReadOnlySpan<float> dense, GroupQuantizedWeight quantized, int rank, ulong seed = LowRankWeight.DefaultSeed)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        var residual = new float[(long)quantized.OutFeatures * quantized.InFeatures];
        if (dense.Length != residual.Length)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"dense has {dense.Length} values; the quantized weight is [{quantized.OutFeatures}, {quantized.InFeatures}]"), nameof(dense));
        quantized.Dequantize(residual);
        for (int i = 0; i < residual.Length; i++) residual[i] = dense[i] - residual[i];
        return new LowRankCorrectedWeight(quantized, LowRankWeight.FromDense(residual, quantized.OutFeatures, quantized.InFeatures, rank, seed));
    }

    /// <summary>Combines stored parts (e.g. from a file); both must have the same shape.</summary>
    /// <exception cref="ArgumentException">The parts' shapes differ.</exception>
    public static LowRankCorrectedWeight FromParts(GroupQuantizedWeight quantized, LowRankWeight correction)
    {
        ArgumentNullException.ThrowIfNull(quantized);
        ArgumentNullException.ThrowIfNull(correction);
        if (quantized.OutFeatures != correction.OutFeatures || quantized.InFeatures != correction.InFeatures)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"correction is [{correction.OutFeatures}, {correction.InFeatures}]; the quantized weight is [{quantized.OutFeatures}, {quantized.InFeatures}] and the correction must match it"), nameof(correction));
        return new LowRankCorrectedWeight(quantized, correction);
    }

    /// <inheritdoc/>
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch) =>
        MatMulTransposed(x, y, batch, KernelOptions.QuantizedActivations);

    /// <summary>
    /// As <see cref="MatMulTransposed(ReadOnlySpan{float}, Span{float}, int)"/>, choosing how the quantized part treats
    /// the activations (int8 per row, or exact float32; see docs/format.md); the correction is always float32.
    /// </summary>
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch, ActivationPrecision activations)
    {
        LowRankWeight.CheckProduct(Format, OutFeatures, InFeatures, x.Length, y.Length, batch);
        if (batch == 0) return;
        Quantized.MatMulTransposed(x, y, batch, activations);
        Correction.MultiplyInto(x, y, batch, accumulate: true);
    }

    /// <inheritdoc/>
    public void Dequantize(Span<float> destination)
    {
        Quantized.Dequantize(destination);
        Gemm.MatMul(Correction.U, Correction.V, destination, OutFeatures, Correction.Rank, InFeatures, accumulate: true);
    }
}
