using Condense.Kernels;
using Condense.Tests.Quantization;

namespace Condense.Tests.Kernels;

public class HadamardTests
{
    private static float[] ScalarReference(float[] input)
    {
        var x = (float[])input.Clone();
        for (int h = 1; h < x.Length; h <<= 1)
            for (int g = 0; g < x.Length; g += 2 * h)
                for (int j = g; j < g + h; j++)
                {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
        return x;
    }

    [Fact]
    public void Known_small_transforms()
    {
        var one = new float[] { 3 };
        Hadamard.Transform(one);
        Assert.Equal(new float[] { 3 }, one);
        var two = new float[] { 1, 2 };
        Hadamard.Transform(two);
        Assert.Equal(new float[] { 3, -1 }, two);
        var four = new float[] { 1, 0, 0, 0 };
        Hadamard.Transform(four);
        Assert.Equal(new float[] { 1, 1, 1, 1 }, four);
        var e1 = new double[] { 0, 1, 0, 0, 0, 0, 0, 0 };
        Hadamard.Transform(e1);
        Assert.Equal(new double[] { 1, -1, 1, -1, 1, -1, 1, -1 }, e1);
        var e5 = new float[16];
        e5[5] = 1;
        Hadamard.Transform(e5);
        // Sylvester order: H[i, j] = (-1)^popcount(i & j).
        for (int i = 0; i < 16; i++) Assert.Equal(System.Numerics.BitOperations.PopCount((uint)(i & 5)) % 2 == 0 ? 1f : -1f, e5[i]);
    }

    [Fact]
    public void Every_length_matches_the_scalar_reference_bit_for_bit()
    {
        for (int log = 0; log <= 20; log++)
        {
            int n = 1 << log;
            var x = QuantTestData.Gaussian((ulong)log + 1, n);
            var expected = ScalarReference(x);
            Hadamard.Transform(x);
            Assert.True(expected.AsSpan().SequenceEqual(x), $"n = {n}");

            var xd = QuantTestData.Gaussian((ulong)log + 100, Math.Min(n, 1 << 16)).Select(v => (double)v).ToArray();
            var expectedD = (double[])xd.Clone();
            for (int h = 1; h < xd.Length; h <<= 1)
                for (int g = 0; g < xd.Length; g += 2 * h)
                    for (int j = g; j < g + h; j++)
                    {
                        double a = expectedD[j], b = expectedD[j + h];
                        expectedD[j] = a + b;
                        expectedD[j + h] = a - b;
                    }
            Hadamard.Transform(xd);
            Assert.True(expectedD.AsSpan().SequenceEqual(xd), $"double n = {xd.Length}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(64)]
    [InlineData(4096)]
    [InlineData(1 << 17)]
    public void Applying_twice_multiplies_by_n_and_the_normalized_transform_is_its_own_inverse(int n)
    {
        var x = QuantTestData.Uniform(7, n, -1, 1).Select(v => (double)v).ToArray();
        var y = (double[])x.Clone();
        Hadamard.Transform(y);
        Hadamard.Transform(y);
        for (int i = 0; i < n; i++) Assert.Equal(n * x[i], y[i], 1e-9 * n);

        var f = QuantTestData.Uniform(8, n, -1, 1);
        var g = (float[])f.Clone();
        Hadamard.TransformNormalized(g);
        Hadamard.TransformNormalized(g);
        for (int i = 0; i < n; i++) Assert.Equal(f[i], g[i], 1e-4f);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(12)]
    [InlineData(1000)]
    public void Lengths_that_are_not_powers_of_two_are_rejected_naming_the_length(int n)
    {
        var e = Assert.Throws<ArgumentException>(() => Hadamard.Transform(new float[n]));
        Assert.Contains($"data has length {n}; the Walsh-Hadamard transform expects a power of two", e.Message);
        Assert.Throws<ArgumentException>(() => Hadamard.Transform(new double[n]));
        Assert.Throws<ArgumentException>(() => Hadamard.TransformNormalized(new float[n]));
    }
}
