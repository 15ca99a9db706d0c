using Condense.MixedPrecision;

namespace Condense.Tests.MixedPrecision;

public sealed class HutchinsonTests
{
    /// <summary>A random symmetric matrix split into three blocks: H v is exact (a quadratic's Hessian).</summary>
    private static double[,] SymmetricMatrix(int n, ulong seed)
    {
        var rng = new Rng(seed);
        var a = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++)
                a[i, j] = a[j, i] = rng.NextDouble() * 2 - 1 + (i == j ? 1.5 : 0);
        return a;
    }

    private static Action<float[][], double[][]> Multiply(double[,] a, int[] blocks) => (v, hv) =>
    {
        int n = a.GetLength(0);
        var flat = v.SelectMany(b => b).ToArray();
        int offset = 0;
        for (int b = 0; b < blocks.Length; b++)
        {
            for (int r = 0; r < blocks[b]; r++)
            {
                double sum = 0;
                for (int c = 0; c < n; c++) sum += a[offset + r, c] * flat[c];
                hv[b][r] = sum;
            }
            offset += blocks[b];
        }
    };

    private static double[] BlockTraces(double[,] a, int[] blocks)
    {
        var traces = new double[blocks.Length];
        int offset = 0;
        for (int b = 0; b < blocks.Length; b++)
        {
            for (int i = 0; i < blocks[b]; i++) traces[b] += a[offset + i, offset + i];
            offset += blocks[b];
        }
        return traces;
    }

    [Fact]
    public void ConvergesToTheExactBlockTracesOfAQuadratic()
    {
        int[] blocks = [10, 7, 13];
        var a = SymmetricMatrix(blocks.Sum(), 3);
        var exact = BlockTraces(a, blocks);
        double previousError = double.PositiveInfinity;
        foreach (int samples in new[] { 16, 256, 4096 })
        {
            var estimate = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), samples, seed: 9);
            double error = 0;
            for (int b = 0; b < blocks.Length; b++)
            {
                double difference = Math.Abs(estimate[b].Trace - exact[b]);
                Assert.True(difference <= 4.5 * estimate[b].StandardError + 1e-12,
                    $"{samples} samples, block {b}: estimate {estimate[b].Trace} vs exact {exact[b]} (standard error {estimate[b].StandardError})");
                error += difference * difference;
            }
            // The error falls with the samples (1/sqrt(samples) on average: 16x the samples, 4x smaller).
            Assert.True(Math.Sqrt(error) < previousError, $"{samples} samples: error {Math.Sqrt(error)} did not fall from {previousError}");
            previousError = Math.Sqrt(error);
        }
        Assert.True(previousError < 0.05 * exact.Sum(Math.Abs), $"after 4096 samples the error is {previousError}");
    }

    /// <summary>Rademacher entries square to one: on a diagonal matrix every sample is the exact trace.</summary>
    [Fact]
    public void DiagonalMatrixIsExactInOneSample()
    {
        int[] blocks = [5, 3];
        var a = new double[8, 8];
        for (int i = 0; i < 8; i++) a[i, i] = i + 0.25;
        var estimate = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), samples: 1, seed: 1);
        Assert.Equal(0.25 + 1.25 + 2.25 + 3.25 + 4.25, estimate[0].Trace, 12);
        Assert.Equal(5.25 + 6.25 + 7.25, estimate[1].Trace, 12);
    }

    /// <summary>
    /// Diagonal diagonal blocks with strong coupling between the blocks: estimated separately, every sample is exact; one
    /// joint product per sample picks up the cross terms and is not.
    /// </summary>
    [Fact]
    public void SeparateBlocksRemoveTheCrossTermVariance()
    {
        int[] blocks = [6, 4];
        var a = new double[10, 10];
        for (int i = 0; i < 10; i++) a[i, i] = 1 + i;
        for (int i = 0; i < 6; i++)
            for (int j = 6; j < 10; j++) a[i, j] = a[j, i] = 3;
        var separate = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), samples: 5, seed: 4, separateBlocks: true);
        Assert.Equal(21, separate[0].Trace, 12);
        Assert.Equal(34, separate[1].Trace, 12);
        Assert.Equal(0, separate[1].StandardError, 12);
        var joint = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), samples: 50, seed: 4);
        Assert.True(joint[1].StandardError > 0.5, $"joint standard error {joint[1].StandardError}");
    }

    [Fact]
    public void SameSeedSameBitsOtherSeedOtherVectors()
    {
        int[] blocks = [40, 70];
        var a = SymmetricMatrix(110, 5);
        var first = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), 8, seed: 21);
        var again = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), 8, seed: 21);
        var other = HutchinsonTrace.Estimate(blocks, Multiply(a, blocks), 8, seed: 22);
        Assert.Equal(first, again);
        Assert.NotEqual(first[0].Trace, other[0].Trace);

        var v = new float[130];
        HutchinsonTrace.FillRademacher(v, 77);
        Assert.All(v, x => Assert.True(x is 1f or -1f));
        Assert.InRange(v.Count(x => x > 0), 40, 90);
    }
}
