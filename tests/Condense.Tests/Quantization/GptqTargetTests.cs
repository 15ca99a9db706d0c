using Condense.Calibration;
using Condense.Kernels;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

/// <summary><see cref="GptqOptions.BiasCorrection"/> (<see cref="Gptq.BiasShift"/>) and the full-precision target (<see cref="LayerStatistics.ReferenceCross"/>).</summary>
public sealed class GptqTargetTests(Xunit.Abstractions.ITestOutputHelper output)
{
    /// <summary>Rows x width inputs with a non-zero mean per column (as LayerNorm and GELU outputs have).</summary>
    private static float[] Inputs(ulong seed, int rows, int width)
    {
        var x = QuantTestData.Gaussian(seed, rows * width);
        var offsets = QuantTestData.Gaussian(seed + 1, width, 0.8f);
        var mix = QuantTestData.Gaussian(seed + 2, width * width, 0.5f / MathF.Sqrt(width));
        var y = new float[x.Length];
        Gemm.MatMul(x, mix, y, rows, width, width);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < width; c++) y[r * width + c] += x[r * width + c] + offsets[c];
        return y;
    }

    /// <summary>Statistics of <paramref name="inputs"/>, each row paired with the same row of <paramref name="reference"/>.</summary>
    private static LayerStatistics Paired(float[] inputs, float[] reference, int width)
    {
        var accumulator = new LayerStatistics.Accumulator("layer", width);
        accumulator.PairWith(reference);
        int rows = inputs.Length / width, half = rows / 2;
        // Two batches: the pairing follows the rows across batch boundaries.
        accumulator.Add(inputs.AsSpan(0, half * width), half, batch: 0);
        accumulator.Add(inputs.AsSpan(half * width), rows - half, batch: 1);
        return accumulator.ToStatistics();
    }

    /// <summary>sum over rows of ||W x_ref - Q x||^2 (float64).</summary>
    private static double Loss(float[] weight, float[] quantized, float[] reference, float[] inputs, int rows, int cols, int samples)
    {
        double loss = 0;
        for (int s = 0; s < samples; s++)
            for (int r = 0; r < rows; r++)
            {
                double y = 0, yq = 0;
                for (int c = 0; c < cols; c++)
                {
                    y += (double)weight[r * cols + c] * reference[s * cols + c];
                    yq += (double)quantized[r * cols + c] * inputs[s * cols + c];
                }
                loss += (y - yq) * (y - yq);
            }
        return loss;
    }

    [Theory]
    [InlineData(4, 16, true)]
    [InlineData(3, 0, false)]
    public void Bias_correction_makes_the_mean_output_error_over_the_calibration_rows_zero(int bits, int groupSize, bool symmetric)
    {
        int rows = 24, cols = 64, samples = 300;
        var inputs = Inputs(31, samples, cols);
        var weight = QuantTestData.Gaussian(34, rows * cols, 0.1f);
        var bias = QuantTestData.Gaussian(35, rows, 0.1f);
        var statistics = LayerStatistics.FromInputs(inputs, cols);
        var quantized = Gptq.Quantize(weight, rows, cols, new QuantizationScheme(bits, groupSize, symmetric), statistics);
        var restored = new float[weight.Length];
        quantized.Dequantize(restored);
        var shift = Gptq.BiasShift(weight, quantized, statistics);

        double worstBefore = 0, worstAfter = 0;
        for (int r = 0; r < rows; r++)
        {
            double before = 0, after = 0;
            for (int s = 0; s < samples; s++)
            {
                double y = bias[r], yq = bias[r];
                for (int c = 0; c < cols; c++)
                {
                    y += (double)weight[r * cols + c] * inputs[s * cols + c];
                    yq += (double)restored[r * cols + c] * inputs[s * cols + c];
                }
                before += yq - y;
                after += yq + shift[r] - y;
            }
            worstBefore = Math.Max(worstBefore, Math.Abs(before / samples));
            worstAfter = Math.Max(worstAfter, Math.Abs(after / samples));
        }
        // Quantization moved the mean output; the corrected bias puts it back, to float32 rounding.
        Assert.True(worstBefore > 1e-3, $"the test's quantization does not shift the mean output ({worstBefore})");
        Assert.True(worstAfter < 1e-5, $"mean output error after bias correction {worstAfter} (before {worstBefore})");
    }

    [Fact]
    public void Bias_shift_targets_the_dense_models_mean_input_when_it_was_recorded()
    {
        int rows = 8, cols = 32, samples = 120;
        var reference = Inputs(41, samples, cols);
        var inputs = reference.Select((v, i) => v + 0.3f * MathF.Sin(i)).ToArray();
        var weight = QuantTestData.Gaussian(44, rows * cols, 0.1f);
        var statistics = Paired(inputs, reference, cols);
        var quantized = Gptq.Quantize(weight, rows, cols, new QuantizationScheme(4, 16, true), statistics);
        var restored = new float[weight.Length];
        quantized.Dequantize(restored);
        var shift = Gptq.BiasShift(weight, quantized, statistics);
        for (int r = 0; r < rows; r++)
        {
            double error = 0;
            for (int s = 0; s < samples; s++)
                for (int c = 0; c < cols; c++)
                    error += (double)restored[r * cols + c] * inputs[s * cols + c] - (double)weight[r * cols + c] * reference[s * cols + c];
            Assert.Equal(0, error / samples + shift[r], 5);
        }
    }

    [Fact]
    public void Paired_statistics_hold_the_cross_moment_of_the_input_difference()
    {
        int cols = 12, samples = 50;
        var reference = Inputs(51, samples, cols);
        var inputs = reference.Select((v, i) => v * 0.9f + 0.05f * MathF.Cos(i)).ToArray();
        var statistics = Paired(inputs, reference, cols);
        for (int i = 0; i < cols; i++)
        {
            double sum = 0;
            for (int s = 0; s < samples; s++) sum += reference[s * cols + i];
            Assert.Equal(sum, statistics.ReferenceSums![i], 3);
            for (int j = 0; j < cols; j++)
            {
                double c = 0;
                for (int s = 0; s < samples; s++) c += ((double)reference[s * cols + i] - inputs[s * cols + i]) * inputs[s * cols + j];
                Assert.Equal(c, statistics.ReferenceCross![i * cols + j], 3);
            }
        }
        var unpaired = new LayerStatistics.Accumulator("layer", cols);
        unpaired.PairWith(reference);
        unpaired.Add(inputs.AsSpan(0, 10 * cols), 10, batch: 0);
        var error = Assert.Throws<InvalidDataException>(unpaired.ToStatistics);
        Assert.Contains("'layer' saw 10 calibration rows, but the dense model gave it 50", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(4, 16, true, true)]
    [InlineData(4, 16, false, false)]
    [InlineData(3, 0, true, true)]
    public void The_full_precision_target_lowers_the_error_against_the_dense_models_output(int bits, int groupSize, bool symmetric, bool actOrder)
    {
        int rows = 32, cols = 64, samples = 400;
        var reference = Inputs(61, samples, cols);
        // The inputs of a model whose earlier layers are quantized: the dense inputs plus a correlated error.
        var noise = Inputs(62, samples, cols);
        var inputs = reference.Select((v, i) => v + 0.15f * noise[i]).ToArray();
        var weight = QuantTestData.Gaussian(64, rows * cols, 0.1f);
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        var options = new GptqOptions { ActOrder = actOrder };
        var plain = new float[weight.Length];
        Gptq.Quantize(weight, rows, cols, scheme, LayerStatistics.FromInputs(inputs, cols), options).Dequantize(plain);
        var targeted = new float[weight.Length];
        Gptq.Quantize(weight, rows, cols, scheme, Paired(inputs, reference, cols), options).Dequantize(targeted);
        double plainLoss = Loss(weight, plain, reference, inputs, rows, cols, samples);
        double targetLoss = Loss(weight, targeted, reference, inputs, rows, cols, samples);
        output.WriteLine($"plain {plainLoss}, target {targetLoss}");
        Assert.True(targetLoss < 0.9 * plainLoss, $"||W X_ref - Q X||^2: plain GPTQ {plainLoss}, full-precision target {targetLoss}");
    }

    [Fact]
    public void A_reference_equal_to_the_inputs_changes_nothing()
    {
        int rows = 16, cols = 64, samples = 200;
        var inputs = Inputs(71, samples, cols);
        var weight = QuantTestData.Gaussian(72, rows * cols, 0.1f);
        var scheme = new QuantizationScheme(4, 16, true);
        var plain = Gptq.Quantize(weight, rows, cols, scheme, LayerStatistics.FromInputs(inputs, cols));
        var paired = Gptq.Quantize(weight, rows, cols, scheme, Paired(inputs, inputs, cols));
        Assert.Equal(plain.Packed, paired.Packed);
        Assert.Equal(plain.Scales, paired.Scales);
    }

    [Theory]
    [InlineData(4, 16, true)]
    [InlineData(3, 16, false)]
    [InlineData(3, 0, true)]
    public void More_refit_rounds_never_raise_a_rows_damped_loss_and_change_some_rows(int bits, int groupSize, bool symmetric)
    {
        int rows = 32, cols = 64, samples = 300;
        var inputs = Inputs(81, samples, cols);
        var weight = QuantTestData.Gaussian(82, rows * cols, 0.1f);
        var statistics = LayerStatistics.FromInputs(inputs, cols);
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        var one = new float[weight.Length];
        var three = new float[weight.Length];
        Gptq.Quantize(weight, rows, cols, scheme, statistics).Dequantize(one);
        Gptq.Quantize(weight, rows, cols, scheme, statistics, new GptqOptions { RefitRounds = 3 }).Dequantize(three);
        // The loss GPTQ and the refit minimise: (w - q)^T (X^T X + 1% mean diag I) (w - q), per row, in float64.
        var xtx = statistics.XtX;
        double damping = 0;
        for (int i = 0; i < cols; i++) damping += xtx[i * cols + i];
        damping *= 0.01 / cols;
        double RowLoss(float[] q, int r)
        {
            double loss = 0;
            for (int i = 0; i < cols; i++)
            {
                double di = weight[r * cols + i] - (double)q[r * cols + i], hd = damping * di;
                for (int j = 0; j < cols; j++) hd += xtx[i * cols + j] * (weight[r * cols + j] - (double)q[r * cols + j]);
                loss += di * hd;
            }
            return loss;
        }
        int changed = 0;
        double total1 = 0, total3 = 0;
        for (int r = 0; r < rows; r++)
        {
            double l1 = RowLoss(one, r), l3 = RowLoss(three, r);
            total1 += l1;
            total3 += l3;
            Assert.True(l3 <= l1 * (1 + 1e-4), $"row {r}: loss {l1} after one round, {l3} after three");
            if (l3 < l1 * (1 - 1e-6)) changed++;
        }
        output.WriteLine($"{changed} of {rows} rows lower; total {total1} -> {total3}");
        Assert.True(changed > 0, "three rounds changed no row");
        Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, rows, cols, scheme, statistics, new GptqOptions { RefitRounds = 0 }));
        // Declared options that would otherwise do nothing are refused, naming the option that is missing.
        var noRefit = Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, rows, cols, scheme, statistics, new GptqOptions { RefitRounds = 3, RefitScales = false }));
        Assert.Contains("RefitScales", noRefit.Message);
        if (scheme.GroupSize != 0 && scheme.GroupSize < cols)
        {
            var noActOrder = Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, rows, cols, scheme, statistics, new GptqOptions { RefitRounds = 3, ActOrder = false }));
            Assert.Contains("ActOrder", noActOrder.Message);
        }
        var noSequential = Assert.Throws<ArgumentException>(() => Gptq.Quantize(weight, rows, cols, scheme, statistics, new GptqOptions { FullPrecisionTarget = true }));
        Assert.Contains("Sequential", noSequential.Message);
    }
}
