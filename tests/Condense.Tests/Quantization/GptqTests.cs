using Condense.Calibration;
using Condense.Kernels;
using Condense.Quantization;
using Xunit.Abstractions;

namespace Condense.Tests.Quantization;

public sealed class GptqTests(ITestOutputHelper output)
{
    /// <summary>
    /// Calibration rows with correlated columns (x = z A, A random): the case where error feedback matters.
    /// </summary>
    private static float[] CorrelatedInputs(ulong seed, int rows, int width)
    {
        var z = QuantTestData.Gaussian(seed, rows * width);
        var mix = QuantTestData.Gaussian(seed + 1, width * width, 1f / MathF.Sqrt(width));
        for (int i = 0; i < width; i++) mix[i * width + i] += 1f;
        var x = new float[rows * width];
        Gemm.MatMul(z, mix, x, rows, width, width);
        return x;
    }

    /// <summary>
    /// The direct OBQ-style reference: the explicit inverse Hessian (double, Gauss-Jordan), one column at a time,
    /// the remaining columns updated by err * Hinv[i, j] / Hinv[i, i], then column i eliminated from Hinv. No lazy
    /// blocks, no Cholesky. Group parameters come from round-to-nearest on the group's current values
    /// (from the original weights for act-order, and up front for per-row scales).
    /// </summary>
    private static float[] Reference(float[] weight, int rows, int cols, float[] inputs, int samples, QuantizationScheme scheme, double damping, bool actOrder)
    {
        var h = new double[cols, cols];
        for (int s = 0; s < samples; s++)
            for (int i = 0; i < cols; i++)
                for (int j = 0; j < cols; j++) h[i, j] += 2.0 * inputs[s * cols + i] * inputs[s * cols + j] / samples;
        var w = new double[rows, cols];
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) w[r, c] = weight[r * cols + c];
        for (int i = 0; i < cols; i++)
            if (h[i, i] == 0) { h[i, i] = 1; for (int r = 0; r < rows; r++) w[r, i] = 0; }
        double mean = 0;
        for (int i = 0; i < cols; i++) mean += h[i, i];
        for (int i = 0; i < cols; i++) h[i, i] += damping * mean / cols;
        var hinv = Invert(h, cols);

        int groupSize = scheme.GroupSize == 0 ? cols : scheme.GroupSize;
        var order = Enumerable.Range(0, cols).ToArray();
        var diag = Enumerable.Range(0, cols).Select(i => (float)(h[i, i])).ToArray();
        if (actOrder) order = order.OrderByDescending(i => 2.0 * inputs.Where((_, k) => k % cols == i).Sum(v => (double)v * v)).ThenBy(i => i).ToArray();
        var scale = new double[rows, cols / groupSize];
        var zero = new int[rows, cols / groupSize];
        void Choose(int r, int g)
        {
            var values = new float[groupSize];
            for (int c = 0; c < groupSize; c++) values[c] = (float)w[r, g * groupSize + c];
            var q = GroupQuantizedWeight.Quantize(values, 1, groupSize, scheme with { GroupSize = 0 });
            scale[r, g] = (float)q.Scales[0];
            zero[r, g] = q.ZeroPoints is { } z ? z[0] : 1 << (scheme.Bits - 1);
        }
        if (actOrder || groupSize == cols)
            for (int r = 0; r < rows; r++) for (int g = 0; g < cols / groupSize; g++) Choose(r, g);

        var result = new float[rows * cols];
        var remaining = new bool[cols];
        Array.Fill(remaining, true);
        int maxLevel = (1 << scheme.Bits) - 1;
        foreach (int i in order)
        {
            int g = i / groupSize;
            if (!actOrder && groupSize != cols && i % groupSize == 0)
                for (int r = 0; r < rows; r++) Choose(r, g);
            remaining[i] = false;
            for (int r = 0; r < rows; r++)
            {
                double s = scale[r, g];
                double code = s == 0 ? zero[r, g] : Math.Clamp(Math.Round(w[r, i] / s, MidpointRounding.ToEven) + zero[r, g], 0, maxLevel);
                double dq = s * (code - zero[r, g]);
                result[r * cols + i] = (float)dq;
                double err = (w[r, i] - dq) / hinv[i, i];
                for (int j = 0; j < cols; j++)
                    if (remaining[j]) w[r, j] -= err * hinv[i, j];
            }
            // Eliminate column i from the inverse Hessian of the remaining columns.
            var hi = new double[cols];
            for (int j = 0; j < cols; j++) hi[j] = hinv[i, j];
            double pivot = hinv[i, i];
            for (int a = 0; a < cols; a++)
                for (int b = 0; b < cols; b++) hinv[a, b] -= hi[a] * hi[b] / pivot;
        }
        return result;
    }

    private static double[,] Invert(double[,] m, int n)
    {
        var a = (double[,])m.Clone();
        var inv = new double[n, n];
        for (int i = 0; i < n; i++) inv[i, i] = 1;
        for (int c = 0; c < n; c++)
        {
            double p = a[c, c];
            for (int j = 0; j < n; j++) { a[c, j] /= p; inv[c, j] /= p; }
            for (int r = 0; r < n; r++)
            {
                if (r == c) continue;
                double f = a[r, c];
                for (int j = 0; j < n; j++) { a[r, j] -= f * a[c, j]; inv[r, j] -= f * inv[c, j]; }
            }
        }
        return inv;
    }

    private static double OutputError(float[] weight, float[] restored, float[] inputs, int samples, int rows, int cols)
    {
        double diff = 0, norm = 0;
        for (int s = 0; s < samples; s++)
            for (int r = 0; r < rows; r++)
            {
                double y = 0, yq = 0;
                for (int c = 0; c < cols; c++)
                {
                    y += (double)inputs[s * cols + c] * weight[r * cols + c];
                    yq += (double)inputs[s * cols + c] * restored[r * cols + c];
                }
                diff += (y - yq) * (y - yq);
                norm += y * y;
            }
        return Math.Sqrt(diff / norm);
    }

    [Theory]
    [InlineData(4, 16, true, false, 8)]
    [InlineData(3, 16, false, false, 16)]
    [InlineData(4, 0, true, false, 5)]
    [InlineData(2, 32, true, false, 128)]
    [InlineData(8, 16, false, false, 128)]
    [InlineData(4, 16, true, true, 8)]
    [InlineData(3, 0, false, true, 16)]
    [InlineData(4, 32, true, false, 128, 320)]
    [InlineData(3, 64, false, true, 128, 320)]
    public void Matches_a_direct_reference_implementation(int bits, int groupSize, bool symmetric, bool actOrder, int blockSize, int cols = 64)
    {
        int rows = 12, samples = 200;
        var inputs = CorrelatedInputs(7, samples, cols);
        var weight = QuantTestData.Gaussian(9, rows * cols, 0.1f);
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        var stats = LayerStatistics.FromInputs(inputs, cols);
        // The reference is GPTQ itself: the scale refit after it is tested on its own below.
        var gptq = Gptq.Quantize(weight, rows, cols, scheme, stats, new GptqOptions { BlockSize = blockSize, ActOrder = actOrder, RefitScales = false });
        var restored = new float[rows * cols];
        gptq.Dequantize(restored);
        var reference = Reference(weight, rows, cols, inputs, samples, scheme, 0.01, actOrder);

        // float32 against double: a rounding tie can flip a code and then its feedback; nearly all must agree.
        int same = 0;
        for (int i = 0; i < restored.Length; i++) if (Math.Abs(restored[i] - reference[i]) <= 1e-6f + 1e-4f * Math.Abs(reference[i])) same++;
        double gptqError = OutputError(weight, restored, inputs, samples, rows, cols);
        double referenceError = OutputError(weight, reference, inputs, samples, rows, cols);
        var rtn = new float[rows * cols];
        GroupQuantizedWeight.Quantize(weight, rows, cols, scheme).Dequantize(rtn);
        double rtnError = OutputError(weight, rtn, inputs, samples, rows, cols);
        output.WriteLine($"agree {same}/{restored.Length}; output error gptq {gptqError:G4}, reference {referenceError:G4}, rtn {rtnError:G4}");
        Assert.True(same >= restored.Length * 0.95, $"only {same} of {restored.Length} weights match the reference");
        Assert.InRange(gptqError, referenceError * 0.97, referenceError * 1.03);
        Assert.True(gptqError < rtnError, $"GPTQ {gptqError} should beat RTN {rtnError} on its calibration data");
    }

    [Theory]
    [InlineData(4, 16, true, true)]
    [InlineData(4, 64, false, false)]
    [InlineData(3, 0, true, true)]
    [InlineData(2, 32, false, true)]
    public void Refitting_the_scales_keeps_the_codes_and_lowers_every_rows_loss(int bits, int groupSize, bool symmetric, bool actOrder)
    {
        int rows = 24, cols = 128, samples = 300;
        var inputs = CorrelatedInputs(31, samples, cols);
        var heldOut = CorrelatedInputs(32, samples, cols);
        var weight = QuantTestData.Gaussian(33, rows * cols, 0.1f);
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        var stats = LayerStatistics.FromInputs(inputs, cols);
        var plain = Gptq.Quantize(weight, rows, cols, scheme, stats, new GptqOptions { ActOrder = actOrder, RefitScales = false });
        var refit = Gptq.Quantize(weight, rows, cols, scheme, stats, new GptqOptions { ActOrder = actOrder, RefitScales = true });
        Assert.True(plain.Packed.AsSpan().SequenceEqual(refit.Packed), "the refit changed codes");
        if (!symmetric) Assert.True(plain.ZeroPoints!.AsSpan().SequenceEqual(refit.ZeroPoints), "the refit changed zero points");
        var p = new float[rows * cols];
        var r = new float[rows * cols];
        plain.Dequantize(p);
        refit.Dequantize(r);
        int changed = 0;
        for (int o = 0; o < rows; o++)
        {
            // Each row's calibration loss ||X (w - q)||^2: never higher, and lower where a scale changed.
            double before = OutputError(weight.AsSpan(o * cols, cols).ToArray(), p.AsSpan(o * cols, cols).ToArray(), inputs, samples, 1, cols);
            double after = OutputError(weight.AsSpan(o * cols, cols).ToArray(), r.AsSpan(o * cols, cols).ToArray(), inputs, samples, 1, cols);
            bool rowChanged = !p.AsSpan(o * cols, cols).SequenceEqual(r.AsSpan(o * cols, cols));
            if (rowChanged) changed++;
            Assert.True(rowChanged ? after < before * 1.0001 : after == before, $"row {o}: loss {before} -> {after}");
        }
        double plainError = OutputError(weight, p, inputs, samples, rows, cols), refitError = OutputError(weight, r, inputs, samples, rows, cols);
        double plainHeld = OutputError(weight, p, heldOut, samples, rows, cols), refitHeld = OutputError(weight, r, heldOut, samples, rows, cols);
        output.WriteLine($"{scheme.FormatName} act-order {actOrder}: {changed}/{rows} rows refit; output error {plainError:G4} -> {refitError:G4}, held out {plainHeld:G4} -> {refitHeld:G4}");
        Assert.True(changed > rows / 2, $"only {changed} of {rows} rows were refit");
        Assert.True(refitError < plainError * 0.999, $"calibration error {plainError} -> {refitError}");
        // Held out: a few scales per row fitted to 300 samples do not overfit noticeably (one scale per row can lose a little).
        Assert.True(refitHeld < plainHeld * 1.002, $"held-out error {plainHeld} -> {refitHeld}");
    }

    [Fact]
    public void Same_data_gives_the_same_bits_at_one_and_two_threads()
    {
        int rows = 96, cols = 384, samples = 160;
        var inputs = CorrelatedInputs(21, samples, cols);
        var weight = QuantTestData.Gaussian(22, rows * cols, 0.05f);
        GroupQuantizedWeight Run(int threads, bool actOrder)
        {
            int savedGemm = Gemm.MaxDegreeOfParallelism, savedPool = WorkerPool.Shared.MaxDegreeOfParallelism;
            Gemm.MaxDegreeOfParallelism = threads;
            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            try
            {
                var stats = LayerStatistics.FromInputs(inputs, cols);
                return Gptq.Quantize(weight, rows, cols, new QuantizationScheme(4, 64, false), stats, new GptqOptions { ActOrder = actOrder, BlockSize = 128 });
            }
            finally
            {
                Gemm.MaxDegreeOfParallelism = savedGemm;
                WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            }
        }
        foreach (bool actOrder in new[] { false, true })
        {
            var one = Run(1, actOrder);
            var two = Run(2, actOrder);
            Assert.True(one.Packed.AsSpan().SequenceEqual(two.Packed), "packed codes differ between 1 and 2 threads");
            Assert.True(one.Scales.AsSpan().SequenceEqual(two.Scales), "scales differ between 1 and 2 threads");
            Assert.True(one.ZeroPoints!.AsSpan().SequenceEqual(two.ZeroPoints), "zero points differ between 1 and 2 threads");
        }
    }

    [Fact]
    public void Dead_input_columns_are_damped_and_their_weights_zeroed()
    {
        int rows = 8, cols = 32, samples = 100;
        var inputs = CorrelatedInputs(3, samples, cols);
        // Columns 5 and 20 never fire: X^T X has zero rows there, so H is singular without GPTQ's fix.
        for (int s = 0; s < samples; s++) { inputs[s * cols + 5] = 0; inputs[s * cols + 20] = 0; }
        var weight = QuantTestData.Gaussian(4, rows * cols, 0.2f);
        var q = Gptq.Quantize(weight, rows, cols, new QuantizationScheme(4, 16, true), LayerStatistics.FromInputs(inputs, cols),
            new GptqOptions { DampingPercent = 0 });
        var restored = new float[rows * cols];
        q.Dequantize(restored);
        Assert.All(restored, v => Assert.True(float.IsFinite(v)));
        for (int r = 0; r < rows; r++)
        {
            Assert.Equal(0f, restored[r * cols + 5]);
            Assert.Equal(0f, restored[r * cols + 20]);
        }
    }

    [Fact]
    public void A_hessian_that_is_not_positive_definite_is_a_named_error()
    {
        int cols = 4;
        var stats = LayerStatistics.FromInputs(QuantTestData.Gaussian(5, 40 * cols), cols);
        // Indefinite: [[1, 3], [3, 1]] blocks (eigenvalue -2), beyond what even 100x the 1% damping (the last retry) repairs.
        Array.Clear(stats.XtX);
        for (int b = 0; b < cols; b += 2)
        {
            stats.XtX[b * cols + b] = stats.XtX[(b + 1) * cols + b + 1] = 1;
            stats.XtX[b * cols + b + 1] = stats.XtX[(b + 1) * cols + b] = 3;
        }
        var e = Assert.Throws<InvalidOperationException>(() =>
            Gptq.Quantize(QuantTestData.Gaussian(6, 2 * cols), 2, cols, new QuantizationScheme(4, 0, true), stats));
        Assert.Contains("not positive definite", e.Message);
        Assert.Contains("input column", e.Message);
        Assert.Contains("tried DampingPercent 0.01, then 0.1 and 1", e.Message);
    }

    [Fact]
    public void A_hessian_that_one_percent_damping_does_not_repair_is_retried_with_more()
    {
        int cols = 4;
        var stats = LayerStatistics.FromInputs(QuantTestData.Gaussian(5, 40 * cols), cols);
        // [[1, 1.05], [1.05, 1]] blocks: eigenvalue -0.05 of the mean diagonal; 1% damping leaves it negative, 10% does not.
        Array.Clear(stats.XtX);
        for (int b = 0; b < cols; b += 2)
        {
            stats.XtX[b * cols + b] = stats.XtX[(b + 1) * cols + b + 1] = 1;
            stats.XtX[b * cols + b + 1] = stats.XtX[(b + 1) * cols + b] = 1.05f;
        }
        var weight = QuantTestData.Gaussian(6, 2 * cols);
        // Undamped it is refused (0 asks for no damping, so no retry) ...
        Assert.Throws<InvalidOperationException>(() => Gptq.Quantize(weight, 2, cols, new QuantizationScheme(4, 0, true), stats, new GptqOptions { DampingPercent = 0 }));
        // ... at the default 1% the first factorization fails too (-0.05 + 0.01 of the mean diagonal) and the 10% retry succeeds.
        var quantized = Gptq.Quantize(weight, 2, cols, new QuantizationScheme(4, 0, true), stats);
        var restored = new float[weight.Length];
        quantized.Dequantize(restored);
        Assert.All(restored, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Statistics_of_another_width_are_rejected_with_both_widths()
    {
        var stats = LayerStatistics.FromInputs(QuantTestData.Gaussian(5, 10 * 16), 16, "encoder.fc");
        var e = Assert.Throws<ArgumentException>(() =>
            Gptq.Quantize(new float[4 * 32], 4, 32, new QuantizationScheme(4, 0, true), stats));
        Assert.Contains("'encoder.fc'", e.Message);
        Assert.Contains("16 inputs", e.Message);
        Assert.Contains("32", e.Message);
    }
}
