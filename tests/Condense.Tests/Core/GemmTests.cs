using Condense.Kernels;

namespace Condense.Tests.Core;

public class GemmTests
{
    public static TheoryData<int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int>();
        int[] sizes = [0, 1, 3, 17, 64, 65, 129];
        foreach (int m in sizes)
            foreach (int k in sizes)
                foreach (int n in sizes)
                    if ((m + k + n) % 3 == 0 || m == 0 || n == 1) data.Add(m, k, n);
        data.Add(130, 300, 257);
        // More rows than OutputLanesSgemm.RowBlock (two row blocks over B packed once), a last panel of 13 columns.
        data.Add(300, 70, 45);
        return data;
    }

    private static float[] RandomArray(Rng rng, int length)
    {
        var a = new float[length];
        for (int i = 0; i < length; i++) a[i] = rng.NextGaussian();
        return a;
    }

    private static double Naive(float[] a, int rsA, int csA, float[] b, int rsB, int csB, int i, int j, int k)
    {
        double sum = 0;
        for (int p = 0; p < k; p++) sum += (double)a[i * rsA + p * csA] * b[p * rsB + j * csB];
        return sum;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void All_three_products_equal_the_scalar_reference_bit_for_bit_and_the_naive_sum_closely(int m, int k, int n)
    {
        var rng = new Rng((ulong)(m * 1_000_000 + k * 1000 + n));
        var a = RandomArray(rng, m * k);
        var bKn = RandomArray(rng, k * n);
        var bNk = RandomArray(rng, n * k);
        var start = RandomArray(rng, m * n);
        foreach (bool accumulate in new[] { false, true })
        {
            // (name, run, a strides, b strides)
            var cases = new (string Name, Action<float[]> Run, int RsA, int CsA, float[] B, int RsB, int CsB)[]
            {
                ("NN", c => Gemm.MatMul(a, bKn, c, m, k, n, accumulate), k, 1, bKn, n, 1),
                ("NT", c => Gemm.MatMulTransposedB(a, bNk, c, m, k, n, accumulate), k, 1, bNk, 1, k),
                ("TN", c => Gemm.MatMulTransposedA(a, bKn, c, m, k, n, accumulate), 1, m, bKn, n, 1),
            };
            foreach (var (name, run, rsA, csA, b, rsB, csB) in cases)
            {
                var c = accumulate ? (float[])start.Clone() : new float[m * n];
                run(c);
                var reference = accumulate ? (float[])start.Clone() : new float[m * n];
                Gemm.Reference(a, rsA, csA, b, rsB, csB, reference, m, k, n, accumulate);
                Assert.True(c.AsSpan().SequenceEqual(reference), $"{name} m={m} k={k} n={n} acc={accumulate} differs from the reference");
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double expected = Naive(a, rsA, csA, b, rsB, csB, i, j, k) + (accumulate ? start[i * n + j] : 0);
                        Assert.True(Math.Abs(c[i * n + j] - expected) <= 1e-4 * (Math.Sqrt(k) + 1) * 4,
                            $"{name} m={m} k={k} n={n} at ({i},{j}): {c[i * n + j]} vs {expected}");
                    }
            }
        }
    }

    [Fact]
    public void Results_are_bit_identical_at_one_and_two_threads()
    {
        var rng = new Rng(11);
        int m = 131, k = 257, n = 99;
        var a = RandomArray(rng, m * k);
        var b = RandomArray(rng, k * n);
        var bt = RandomArray(rng, n * k);
        float[] Run(int threads, int variant)
        {
            int saved = Gemm.MaxDegreeOfParallelism;
            Gemm.MaxDegreeOfParallelism = threads;
            try
            {
                var c = new float[m * n];
                if (variant == 0) Gemm.MatMul(a, b, c, m, k, n);
                else if (variant == 1) Gemm.MatMulTransposedB(a, bt, c, m, k, n);
                else Gemm.MatMulTransposedA(RandomArrayFixed(k * m), b, c, m, k, n);
                return c;
            }
            finally
            {
                Gemm.MaxDegreeOfParallelism = saved;
            }
        }
        for (int variant = 0; variant < 3; variant++)
            Assert.True(Run(1, variant).AsSpan().SequenceEqual(Run(2, variant)), $"variant {variant}");
    }

    private static float[] RandomArrayFixed(int length) => RandomArray(new Rng(12), length);

    [Fact]
    public unsafe void Strided_products_equal_the_reference_at_every_row_count_and_column_tail()
    {
        // Attention's products (Q K^T, P V) at a few tokens: rows past the 8-row and 4-row tiles take the 4-, 2- and
        // 1-row tiles; each output is still one fma chain over k from +0, so the bits are the scalar reference's.
        var rng = new Rng(19);
        foreach (int n in new[] { 5, 8, 16, 20, 32, 48 })
            foreach (int k in new[] { 1, 7, 32 })
                for (int m = 1; m <= 19; m++)
                {
                    int rsA = k + 3, ldb = n + 5, ldc = n + 2;
                    var a = RandomArray(rng, m * rsA);
                    var b = RandomArray(rng, k * ldb);
                    var c = new float[m * ldc];
                    fixed (float* pa = a, pb = b, pc = c) Gemm.MatMulStrided(pa, rsA, pb, ldb, pc, ldc, m, k, n);
                    var reference = new float[m * n];
                    Gemm.Reference(a, rsA, 1, b, ldb, 1, reference, m, k, n, accumulate: false);
                    for (int i = 0; i < m; i++)
                        Assert.True(c.AsSpan(i * ldc, n).SequenceEqual(reference.AsSpan(i * n, n)), $"m={m} k={k} n={n}: row {i} differs from the reference");
                }
    }

    [Fact]
    public void Too_small_buffers_are_rejected_with_the_sizes()
    {
        var e = Assert.Throws<ArgumentException>(() => Gemm.MatMul(new float[5], new float[6], new float[4], 2, 3, 2));
        Assert.Contains("MatMul", e.Message);
        Assert.Contains("m=2, k=3, n=2", e.Message);
    }
}
