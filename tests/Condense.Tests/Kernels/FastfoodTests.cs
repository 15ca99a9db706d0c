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
    [InlineData(10_000, 199_210)] // the subspace benchmark's shape: 13 blocks of 2^14 run whole on the worker pool
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

    private static void ScalarHadamard(float[] x)
    {
        for (int h = 1; h < x.Length; h <<= 1)
            for (int g = 0; g < x.Length; g += 2 * h)
                for (int j = g; j < g + h; j++)
                {
                    float a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
    }

    // y = P x straight from the definition: per block, S H G Pi H B of the zero-padded x, truncated to D.
    private static float[] ReferenceApply(Fastfood p, float[] x)
    {
        int l = p.BlockLength;
        var y = new float[p.OutputDimension];
        for (int k = 0; k < p.BlockCount; k++)
        {
            var (signs, gaussians, scales) = p.Diagonals(k);
            var map = p.Permutation(k);
            var a = new float[l];
            for (int i = 0; i < x.Length; i++) a[i] = signs[i] * x[i];
            ScalarHadamard(a);
            var b = new float[l];
            for (int i = 0; i < l; i++) b[i] = gaussians[i] * a[map[i]];
            ScalarHadamard(b);
            for (int i = 0; i < l && k * l + i < y.Length; i++) y[k * l + i] = scales[i] * b[i];
        }
        return y;
    }

    // x = P^T y straight from the definition: per block, B H Pi^T G H S of the block's slice of y, summed.
    private static float[] ReferenceTranspose(Fastfood p, float[] y)
    {
        int l = p.BlockLength;
        var x = new float[p.InputDimension];
        for (int k = 0; k < p.BlockCount; k++)
        {
            var (signs, gaussians, scales) = p.Diagonals(k);
            var map = p.Permutation(k);
            var b = new float[l];
            for (int i = 0; i < l && k * l + i < y.Length; i++) b[i] = scales[i] * y[k * l + i];
            ScalarHadamard(b);
            var a = new float[l];
            for (int i = 0; i < l; i++) a[map[i]] = gaussians[i] * b[i];
            ScalarHadamard(a);
            for (int i = 0; i < x.Length; i++) x[i] = k == 0 ? signs[i] * a[i] : x[i] + signs[i] * a[i];
        }
        return x;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 3)]
    [InlineData(3, 7)]
    [InlineData(5, 17)]
    [InlineData(16, 16)]
    [InlineData(100, 1000)]
    [InlineData(256, 600)]
    [InlineData(777, 777)]
    [InlineData(1000, 3000)]
    [InlineData(4096, 10000)]
    [InlineData(70000, 140001)] // L = 2^17: the worker-pool passes, two blocks, the last cut short
    [InlineData(1 << 18, 1 << 18)] // wide stages above the L2 block
    public void Apply_and_ApplyTranspose_match_the_definition_bit_for_bit_at_every_width(int d, int bigD)
    {
        var p = new Fastfood(d, bigD, 77);
        var x = QuantTestData.Gaussian(3, d);
        var y = QuantTestData.Gaussian(4, bigD);
        var expectedY = ReferenceApply(p, x);
        var expectedX = ReferenceTranspose(p, y);
        KernelWidths.ForEach(bits =>
        {
            var px = new float[bigD];
            var pty = new float[d];
            p.Apply(x, px);
            p.ApplyTranspose(y, pty);
            Assert.True(expectedY.AsSpan().SequenceEqual(px), $"Apply differs at {bits} bits");
            Assert.True(expectedX.AsSpan().SequenceEqual(pty), $"ApplyTranspose differs at {bits} bits");
        });
    }

    [Theory]
    [InlineData((1 << 18) - 5, 1 << 18)] // L = 2^18: every pass splits over the worker pool when it has more than one thread
    [InlineData(10_000, 199_210)] // L = 2^14, 13 blocks, the last cut short: whole blocks split over the pool
    public void Results_do_not_depend_on_the_thread_count(int d, int bigD)
    {
        var p = new Fastfood(d, bigD, 8);
        var x = QuantTestData.Gaussian(6, d);
        var y = QuantTestData.Gaussian(7, bigD);
        int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
        try
        {
            var results = new List<(float[] Px, float[] Pty)>();
            foreach (int threads in new[] { 1, 2, 3 })
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var px = new float[bigD];
                var pty = new float[d];
                p.Apply(x, px);
                p.ApplyTranspose(y, pty);
                results.Add((px, pty));
            }
            foreach (var (px, pty) in results.Skip(1))
            {
                Assert.True(results[0].Px.AsSpan().SequenceEqual(px));
                Assert.True(results[0].Pty.AsSpan().SequenceEqual(pty));
            }
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = saved;
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(512)]
    [InlineData(1 << 12)]
    [InlineData(1 << 15)]
    public void Pi_is_a_permutation_that_feeds_every_output_row_from_every_source_row(int l)
    {
        var p = new Fastfood(l, l, 5);
        var map = p.Permutation(0);
        Assert.Equal(Enumerable.Range(0, l), map.Order());
        // Views: source R x C, output C x R with C = R or 2R; output row c must read each source row exactly once.
        int columns = 1 << ((System.Numerics.BitOperations.Log2((uint)l) + 1) / 2), rows = l / columns;
        for (int c = 0; c < columns; c++)
            Assert.Equal(Enumerable.Range(0, rows), map.Skip(c * rows).Take(rows).Select(i => i / columns).Order());
        if (l >= 512)
        {
            // Not a structured map: the offsets inside rows differ between output rows, and another seed draws another Pi.
            Assert.True(Enumerable.Range(0, columns).Select(c => map[c * rows] % columns).Distinct().Count() > columns / 2);
            Assert.NotEqual(map, new Fastfood(l, l, 6).Permutation(0));
        }
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
