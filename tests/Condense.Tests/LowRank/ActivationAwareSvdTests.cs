using Condense.Calibration;
using Condense.Kernels;
using Condense.LowRank;
using Condense.Tests.Quantization;
using Xunit.Abstractions;

namespace Condense.Tests.LowRank;

public sealed class ActivationAwareSvdTests(ITestOutputHelper output)
{
    /// <summary>
    /// Rows x = z D M: independent Gaussians z scaled by a decaying spectrum D (channel scales from 3 down to 0.03)
    /// and mixed by M: anisotropic, correlated channels, as hidden activations are.
    /// </summary>
    private static float[] AnisotropicInputs(ulong seed, int rows, int width)
    {
        var z = QuantTestData.Gaussian(seed, rows * width);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < width; c++) z[r * width + c] *= 3f * MathF.Pow(0.01f, c / (float)(width - 1));
        var mix = QuantTestData.Gaussian(77, width * width, 1f / MathF.Sqrt(width));
        var x = new float[rows * width];
        Gemm.MatMul(z, mix, x, rows, width, width);
        return x;
    }

    /// <summary>||X (W - W')^T|| / ||X W^T|| over the rows of <paramref name="inputs"/>, in double.</summary>
    private static double OutputError(float[] weight, LowRankWeight factors, float[] inputs, int outFeatures, int inFeatures)
    {
        var restored = new float[weight.Length];
        factors.Dequantize(restored);
        double diff = 0, norm = 0;
        for (int s = 0; s < inputs.Length / inFeatures; s++)
            for (int o = 0; o < outFeatures; o++)
            {
                double y = 0, y2 = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    y += (double)inputs[s * inFeatures + i] * weight[o * inFeatures + i];
                    y2 += (double)inputs[s * inFeatures + i] * restored[o * inFeatures + i];
                }
                diff += (y - y2) * (y - y2);
                norm += y * y;
            }
        return Math.Sqrt(diff / norm);
    }

    [Theory]
    [InlineData(48, 64, 8)]
    [InlineData(96, 128, 16)]
    [InlineData(64, 96, 4)]
    public void Held_out_output_error_is_lower_than_plain_svd_at_the_same_rank_on_anisotropic_inputs(int rows, int cols, int rank)
    {
        var weight = QuantTestData.Gaussian(5, rows * cols, 0.1f);
        var calibration = AnisotropicInputs(11, 512, cols);
        var heldOut = AnisotropicInputs(12, 512, cols);
        var statistics = LayerStatistics.FromInputs(calibration, cols);

        var svd = LowRankWeight.FromDense(weight, rows, cols, rank);
        var asvd = ActivationAwareSvd.Factor(weight, rows, cols, rank, statistics);
        double svdError = OutputError(weight, svd, heldOut, rows, cols);
        double asvdError = OutputError(weight, asvd, heldOut, rows, cols);
        output.WriteLine($"{rows}x{cols} r{rank}: held-out output error SVD {svdError:P2}, activation-aware SVD {asvdError:P2}");
        Assert.Equal(svd.ByteCount, asvd.ByteCount);
        Assert.True(asvdError < 0.9 * svdError, $"activation-aware {asvdError:P2} should be well below plain SVD {svdError:P2}");
    }

    [Fact]
    public void On_white_inputs_it_matches_plain_svd()
    {
        // X^T X / N ~ I: the whitening is (nearly) the identity, so V^T S^-1 must map back to plain SVD's error.
        int rows = 48, cols = 64, rank = 8;
        var weight = QuantTestData.Gaussian(5, rows * cols, 0.1f);
        var white = QuantTestData.Gaussian(31, 8192 * cols);
        var heldOut = QuantTestData.Gaussian(32, 512 * cols);
        var svd = LowRankWeight.FromDense(weight, rows, cols, rank);
        var asvd = ActivationAwareSvd.Factor(weight, rows, cols, rank, LayerStatistics.FromInputs(white, cols));
        double svdError = OutputError(weight, svd, heldOut, rows, cols), asvdError = OutputError(weight, asvd, heldOut, rows, cols);
        Assert.InRange(asvdError, svdError * 0.97, svdError * 1.03);
    }

    [Fact]
    public void Inputs_without_energy_give_exactly_plain_svd()
    {
        int rows = 16, cols = 32, rank = 4;
        var weight = QuantTestData.Gaussian(8, rows * cols, 0.1f);
        var asvd = ActivationAwareSvd.Factor(weight, rows, cols, rank, LayerStatistics.FromInputs(new float[10 * cols], cols), seed: 99);
        var svd = LowRankWeight.FromDense(weight, rows, cols, rank, seed: 99);
        Assert.Equal(svd.U, asvd.U);
        Assert.Equal(svd.V, asvd.V);
    }

    [Fact]
    public void Dead_input_channels_are_damped_and_the_factors_stay_finite()
    {
        int rows = 24, cols = 32, rank = 4;
        var inputs = AnisotropicInputs(3, 200, cols);
        for (int r = 0; r < 200; r++)
            for (int c = 0; c < cols; c += 3) inputs[r * cols + c] = 0;
        var weight = QuantTestData.Gaussian(4, rows * cols, 0.1f);
        var asvd = ActivationAwareSvd.Factor(weight, rows, cols, rank, LayerStatistics.FromInputs(inputs, cols));
        Assert.All(asvd.U, v => Assert.True(float.IsFinite(v)));
        Assert.All(asvd.V, v => Assert.True(float.IsFinite(v)));
        var svd = LowRankWeight.FromDense(weight, rows, cols, rank);
        Assert.True(OutputError(weight, asvd, inputs, rows, cols) < OutputError(weight, svd, inputs, rows, cols));
    }

    [Fact]
    public void Same_data_gives_the_same_bits_at_one_and_two_threads()
    {
        int rows = 96, cols = 256, rank = 12;
        var weight = QuantTestData.Gaussian(6, rows * cols, 0.1f);
        var inputs = AnisotropicInputs(7, 300, cols);
        LowRankWeight Run(int threads)
        {
            int saved = Gemm.MaxDegreeOfParallelism, savedPool = WorkerPool.Shared.MaxDegreeOfParallelism;
            Gemm.MaxDegreeOfParallelism = threads;
            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            try { return ActivationAwareSvd.Factor(weight, rows, cols, rank, LayerStatistics.FromInputs(inputs, cols)); }
            finally
            {
                Gemm.MaxDegreeOfParallelism = saved;
                WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            }
        }
        var one = Run(1);
        var two = Run(2);
        Assert.Equal(one.U, two.U);
        Assert.Equal(one.V, two.V);
    }

    [Fact]
    public void A_singular_second_moment_without_damping_is_damped_rather_than_refused()
    {
        // Every input column duplicated: X^T X has rank 16 of 32. At dampingPercent 0 the factor needs the floor (and,
        // if rounding leaves a pivot at or below zero, the tenfold retries); the result must be finite and still beat
        // plain SVD on these inputs.
        int rows = 24, cols = 32, rank = 4;
        var half = AnisotropicInputs(13, 300, cols / 2);
        var inputs = new float[300 * cols];
        for (int r = 0; r < 300; r++)
            for (int c = 0; c < cols; c++) inputs[r * cols + c] = half[r * (cols / 2) + c / 2];
        var weight = QuantTestData.Gaussian(14, rows * cols, 0.1f);
        var asvd = ActivationAwareSvd.Factor(weight, rows, cols, rank, LayerStatistics.FromInputs(inputs, cols), dampingPercent: 0);
        Assert.All(asvd.V, v => Assert.True(float.IsFinite(v)));
        var svd = LowRankWeight.FromDense(weight, rows, cols, rank);
        Assert.True(OutputError(weight, asvd, inputs, rows, cols) < OutputError(weight, svd, inputs, rows, cols));
    }

    [Fact]
    public void Statistics_of_another_width_are_rejected_with_both_widths()
    {
        var statistics = LayerStatistics.FromInputs(new float[4 * 30], 30, "encoder.q");
        var e = Assert.Throws<ArgumentException>(() => ActivationAwareSvd.Factor(new float[8 * 32], 8, 32, 2, statistics));
        Assert.Contains("'encoder.q'", e.Message);
        Assert.Contains("30 inputs", e.Message);
        Assert.Contains("32", e.Message);
    }
}
