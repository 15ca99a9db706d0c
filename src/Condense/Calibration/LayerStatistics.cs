using System.Globalization;
using Condense.Kernels;

namespace Condense.Calibration;

/// <summary>
/// What calibration records for one layer: the input second moment X^T X (summed over every input row the layer
/// saw), the inputs' sum (for the mean), the per-input-channel activation norms, and the number of rows; with a
/// full-precision target (<see cref="Quantization.GptqOptions.FullPrecisionTarget"/>) also the cross moment of the dense
/// model's inputs with these.
/// </summary>
public sealed class LayerStatistics
{
    private LayerStatistics(string path, int inFeatures, float[] xtx, long sampleCount, double[] sums, float[]? cross, double[]? referenceSums)
    {
        Path = path;
        InFeatures = inFeatures;
        XtX = xtx;
        SampleCount = sampleCount;
        ColumnSums = sums;
        ReferenceCross = cross;
        ReferenceSums = referenceSums;
    }

    /// <summary>sum over input rows of x, [InFeatures] (float64): the inputs' mean times <see cref="SampleCount"/>.</summary>
    public double[] ColumnSums { get; }

    /// <summary>
    /// Null, or sum over input rows of (x_ref - x) x^T, row-major [InFeatures, InFeatures], where x_ref is the same
    /// token's input in the dense (reference) model and x the input recorded here (the model with its earlier layers
    /// quantized). GPTQ's full-precision target uses it: the least-squares weight for these inputs and the dense
    /// model's outputs is W + W C H^-1.
    /// </summary>
    public float[]? ReferenceCross { get; }

    /// <summary>Null, or sum over input rows of x_ref (the dense model's inputs, paired with <see cref="ReferenceCross"/>).</summary>
    public double[]? ReferenceSums { get; }

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
        private readonly double[] _sums = new double[inFeatures];
        private long _samples;
        // Full-precision target: the dense model's input rows in the same order (CalibrationRecorder.CaptureInputs),
        // and the cross moment and sums accumulated against them.
        private float[]? _reference, _cross, _delta;
        private double[]? _referenceSums;
        // Capture mode: the rows themselves are kept (in order).
        private List<float[]>? _captured;

        /// <summary>Pairs every added row with the next row of <paramref name="reference"/> (rows x inFeatures).</summary>
        public void PairWith(float[] reference)
        {
            _reference = reference;
            _cross = new float[_xtx.LongLength];
            _referenceSums = new double[inFeatures];
        }

        /// <summary>Keeps the added rows instead of only their moments (<see cref="CapturedRows"/>).</summary>
        public void Capture() => _captured = [];

        /// <summary>The rows added in capture mode, concatenated.</summary>
        public float[] CapturedRows()
        {
            var all = new float[_captured!.Sum(c => (long)c.Length)];
            long at = 0;
            foreach (var chunk in _captured!) { chunk.CopyTo(all, at); at += chunk.Length; }
            return all;
        }

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
            rows = rows[..(count * inFeatures)];
            if (_captured is not null)
            {
                _captured.Add(rows.ToArray());
                _samples += count;
                return;
            }
            Gemm.MatMulTransposedA(rows, rows, _xtx, inFeatures, count, inFeatures, accumulate: true);
            for (int r = 0; r < count; r++)
            {
                var row = rows.Slice(r * inFeatures, inFeatures);
                for (int c = 0; c < inFeatures; c++) _sums[c] += row[c];
            }
            if (_reference is not null)
            {
                long start = _samples * inFeatures;
                if (start + rows.Length > _reference.LongLength)
                    throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                        $"Layer '{path}': calibration batch {batch} brings its rows to {_samples + count}, but the dense model gave it {_reference.LongLength / inFeatures}: the forward pass must see the same rows with and without the quantized layers."));
                if (_delta is null || _delta.Length < rows.Length) _delta = new float[rows.Length];
                var reference = _reference.AsSpan((int)start, rows.Length);
                var delta = _delta.AsSpan(0, rows.Length);
                System.Numerics.Tensors.TensorPrimitives.Subtract(reference, rows, delta);
                Gemm.MatMulTransposedA(delta, rows, _cross, inFeatures, count, inFeatures, accumulate: true);
                for (int r = 0; r < count; r++)
                    for (int c = 0; c < inFeatures; c++) _referenceSums![c] += reference[r * inFeatures + c];
            }
            _samples += count;
        }

        public LayerStatistics ToStatistics()
        {
            if (_reference is not null && _samples * inFeatures != _reference.LongLength)
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"Layer '{path}' saw {_samples} calibration rows, but the dense model gave it {_reference.LongLength / inFeatures}: the forward pass must see the same rows with and without the quantized layers."));
            return new(path, inFeatures, _xtx, _samples, _sums, _cross, _referenceSums);
        }
    }
}
