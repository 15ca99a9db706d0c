using Condense.Kernels;
using Condense.Tests.Quantization;

namespace Condense.Tests.Kernels;

public class FastfoodTests
{
    private static double Dot(float[] a, float[] b) => a.Zip(b, (p, q) => (double)p * q).Sum();

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 5)]
    [InlineData(3, 3)]
    [InlineData(5, 17)]
    [InlineData(16, 16)]
    [InlineData(100, 1000)]
    [InlineData(1000, 3000)]
    [InlineData(4096, 10000)]
    public void ApplyTranspose_is_the_adjoint_of_Apply(int d, int bigD)
    {
        var p = new Fastfood(d, bigD, 42);
        var x = QuantTestData.Gaussian(1, d);
        var y = QuantTestData.Gaussian(2, bigD);
        var px = new float[bigD];
        var pty = new float[d];
        p.Apply(x, px);
        p.ApplyTranspose(y, pty);
        double left = Dot(px, y), right = Dot(x, pty);
        double scale = Math.Sqrt(Dot(px, px) * Dot(y, y)) + 1e-12;
        Assert.True(Math.Abs(left - right) <= 1e-5 * scale, $"<Px, y> = {left}, <x, P^T y> = {right}");
    }

    [Fact]
    public void The_explicit_matrices_of_Apply_and_ApplyTranspose_are_transposes()
    {
        const int d = 6, bigD = 21;
        var p = new Fastfood(d, bigD, 3);
        var forward = new float[bigD, d];
        for (int j = 0; j < d; j++)
        {
            var e = new float[d];
            e[j] = 1;
            var column = new float[bigD];
            p.Apply(e, column);
            for (int i = 0; i < bigD; i++) forward[i, j] = column[i];
        }
        for (int i = 0; i < bigD; i++)
        {
            var e = new float[bigD];
            e[i] = 1;
            var row = new float[d];
            p.ApplyTranspose(e, row);
            for (int j = 0; j < d; j++) Assert.Equal(forward[i, j], row[j], 1e-5f);
        }
    }

    [Fact]
    public void Same_seed_same_projection_and_another_seed_another()
    {
        var x = QuantTestData.Gaussian(5, 300);
        var a = new float[5000];
        var b = new float[5000];
        var c = new float[5000];
        new Fastfood(300, 5000, 9).Apply(x, a);
        new Fastfood(300, 5000, 9).Apply(x, b);
        new Fastfood(300, 5000, 10).Apply(x, c);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Entries_behave_like_standard_normal_draws()
    {
        const int d = 64, bigD = 4096;
        var p = new Fastfood(d, bigD, 11);
        Assert.Equal(64, p.BlockLength);
        Assert.Equal(64, p.BlockCount);
        double sum = 0, squares = 0;
        for (int j = 0; j < d; j++)
        {
            var e = new float[d];
            e[j] = 1;
            var column = new float[bigD];
            p.Apply(e, column);
            foreach (float v in column) { sum += v; squares += (double)v * v; }
        }
        double count = (double)d * bigD, mean = sum / count, variance = squares / count - mean * mean;
        Assert.True(Math.Abs(mean) < 0.02, $"mean {mean}");
        Assert.True(Math.Abs(variance - 1) < 0.05, $"variance {variance}");
    }

    [Fact]
    public void Bad_dimensions_and_lengths_are_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new Fastfood(10, 5, 1));
        Assert.Contains("outputDimension is 5; expected at least inputDimension = 10", e.Message);
        Assert.Throws<ArgumentException>(() => new Fastfood(0, 5, 1));
        var p = new Fastfood(10, 20, 1);
        e = Assert.Throws<ArgumentException>(() => p.Apply(new float[9], new float[20]));
        Assert.Contains("x has 9 values; expected InputDimension d = 10", e.Message);
        e = Assert.Throws<ArgumentException>(() => p.ApplyTranspose(new float[21], new float[10]));
        Assert.Contains("y has 21 values; expected OutputDimension D = 20", e.Message);
    }
}
