using Condense.Kernels;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

public sealed class DenseCholeskyTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(127)]
    [InlineData(128)]
    [InlineData(300)]
    [InlineData(520)]
    public void Factor_and_inverse_reproduce_the_matrix_across_blocks(int n)
    {
        // A = B B^T / n + I: symmetric positive definite, well conditioned.
        var b = QuantTestData.Gaussian((ulong)n, n * n);
        var a = new float[n * n];
        Gemm.MatMulTransposedB(b, b, a, n, n, n);
        for (int i = 0; i < a.Length; i++) a[i] /= n;
        for (int i = 0; i < n; i++) a[i * n + i] += 1f;
        var l = (float[])a.Clone();
        DenseCholesky.FactorLower(l, n, c => c);
        var inverse = DenseCholesky.InvertLower(l, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double product = 0, identity = 0;
                for (int k = 0; k < n; k++)
                {
                    product += (double)l[i * n + k] * l[j * n + k];
                    identity += (double)inverse[i * n + k] * l[k * n + j];
                }
                Assert.True(Math.Abs(product - a[i * n + j]) < 1e-4 * (1 + Math.Abs(a[i * n + j])), $"(L L^T)[{i},{j}] = {product}, A = {a[i * n + j]}");
                Assert.True(Math.Abs(identity - (i == j ? 1 : 0)) < 1e-4, $"(L^-1 L)[{i},{j}] = {identity}");
                if (j > i)
                {
                    Assert.Equal(0f, l[i * n + j]);
                    Assert.Equal(0f, inverse[i * n + j]);
                }
            }
    }
}
