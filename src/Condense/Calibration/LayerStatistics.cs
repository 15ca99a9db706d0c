using System.Globalization;
using Condense.Kernels;

namespace Condense.Calibration;

/// <summary>
/// What calibration records for one layer: the input second moment X^T X (summed over every input row the layer
/// saw), the per-input-channel activation norms, and the number of rows.
/// </summary>
public sealed class LayerStatistics
{
    private LayerStatistics(string path, int inFeatures, float[] xtx, long sampleCount)
    {
        Path = path;
        InFeatures = inFeatures;
        XtX = xtx;
        SampleCount = sampleCount;
    }

    /// <summary>The layer's path in the model (for messages).</summary>
    public string Path { get; }

    /// <summary>
    /// The check every data-aware method (GPTQ, activation-aware SVD) makes first: these statistics describe a layer of
    /// <paramref name="inFeatures"/> inputs and hold at least one input row.
    /// </summary>
    /// <exception cref="ArgumentException">Another width, or no rows (the layer is named).</exception>
    internal void ThrowIfNotFor(int inFeatures, string paramName)
    {
        if (InFeatures != inFeatures)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"the calibration statistics of '{Path}' are for {InFeatures} inputs; the weight has {inFeatures}"), paramName);
        if (SampleCount <= 0)
            throw new ArgumentException($"the calibration statistics of '{Path}' hold no input rows", paramName);
    }

    /// <summary>Input width: X^T X is InFeatures x InFeatures.</summary>
    public int InFeatures { get; }

    /// <summary>sum over input rows x of x x^T, row-major [InFeatures, InFeatures] (the stored array).</summary>
    public float[] XtX { get; }

    /// <summary>Input rows accumulated (for a convolution: im2col rows, i.e. batch x output positions).</summary>
    public long SampleCount { get; }

    /// <summary>Per-input-channel activation norms: sqrt(sum over rows of x_i^2), the square roots of X^T X's diagonal.</summary>
    public double[] ColumnNorms()
    {
        var norms = new double[InFeatures];
        for (int i = 0; i < InFeatures; i++) norms[i] = Math.Sqrt(Math.Max(0f, XtX[(long)i * InFeatures + i]));
        return norms;
    }

    /// <summary>Statistics of the rows of one matrix <paramref name="inputs"/> [rows, inFeatures] (e.g. for tests or precomputed activations).</summary>
    /// <exception cref="ArgumentException">A length that is not a multiple of the width, or a NaN/Inf input.</exception>
    public static LayerStatistics FromInputs(ReadOnlySpan<float> inputs, int inFeatures, string path = "layer")
    {
        var accumulator = new Accumulator(path, inFeatures);
        if (inFeatures <= 0 || inputs.Length % inFeatures != 0)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"inputs has {inputs.Length} values; expected rows x InFeatures with InFeatures = {inFeatures}"), nameof(inputs));
        accumulator.Add(inputs, inputs.Length / inFeatures, batch: 0);
        return accumulator.ToStatistics();
    }

    /// <summary>Builds X^T X one batch at a time: memory is the one matrix, whatever the number of rows.</summary>
    internal sealed class Accumulator(string path, int inFeatures)
    {
        // float32 with Gemm's accumulate: each entry is one fused multiply-add chain over all rows in order, so the
        // result does not depend on batch boundaries' threads; float32 as GPTQ's reference implementation keeps H.
        private readonly float[] _xtx = new float[checked((long)inFeatures * inFeatures)];
        private long _samples;

        public long Samples => _samples;

        private float[]? _kept;

        /// <param name="mask">Null, or one entry per row: only the rows at 1 are added (in order).</param>
        public void Add(ReadOnlySpan<float> rows, int rowCount, int batch, int[]? mask = null)
        {
            for (int r = 0; r < rowCount; r++)
            {
                if (mask is not null && mask[r] == 0) continue;
                var row = rows.Slice(r * inFeatures, inFeatures);
                for (int c = 0; c < inFeatures; c++)
                    if (!float.IsFinite(row[c]))
                        throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                            $"Layer '{path}': calibration batch {batch} gives it an input of {row[c]} at row {r}, column {c}; activations must be finite: check the batch's values (and the layers before '{path}')."));
            }
            int count = rowCount;
            if (mask is not null)
            {
                // The kept rows, packed in order: one product over them equals the product over the unpadded rows.
                count = 0;
                for (int r = 0; r < rowCount; r++) count += mask[r];
                if (count == 0) return;
                if (count < rowCount)
                {
                    if (_kept is null || _kept.Length < count * inFeatures) _kept = new float[count * inFeatures];
                    int k = 0;
                    for (int r = 0; r < rowCount; r++)
                        if (mask[r] != 0) rows.Slice(r * inFeatures, inFeatures).CopyTo(_kept.AsSpan(k++ * inFeatures, inFeatures));
                    rows = _kept;
                }
            }
            Gemm.MatMulTransposedA(rows[..(count * inFeatures)], rows[..(count * inFeatures)], _xtx, inFeatures, count, inFeatures, accumulate: true);
            _samples += count;
        }

        public LayerStatistics ToStatistics() => new(path, inFeatures, _xtx, _samples);
    }
}
