using System.Globalization;
using System.Numerics.Tensors;
using Condense.Kernels;

namespace Condense.Quantization;

/// <summary>
/// Blocked Cholesky factorization and lower-triangular inverse of dense row-major float32 matrices, with the
/// O(n^3) part of each on <see cref="Gemm"/> (vectorized, multi-threaded, the same bits at any thread count) and the
/// rest on vectorized dot products over contiguous rows.
/// </summary>
internal static class DenseCholesky
{
    private const int Block = 128;

    /// <summary>
    /// Overwrites the lower triangle of symmetric positive definite <paramref name="a"/> [n, n] (only the lower
    /// triangle is read) with L, A = L L^T; the upper triangle is zeroed.
    /// </summary>
    /// <param name="columnName">Maps a pivot index to the column named in the error (e.g. the layer's input column).</param>
    /// <exception cref="InvalidOperationException">A pivot is not positive: A is not positive definite.</exception>
    public static void FactorLower(float[] a, int n, Func<int, int> columnName)
    {
        for (int k0 = 0; k0 < n; k0 += Block)
        {
            int kb = Math.Min(Block, n - k0);
            // Diagonal block: earlier blocks' contributions were already subtracted by the trailing updates.
            for (int j = k0; j < k0 + kb; j++)
            {
                var rowJ = a.AsSpan((int)((long)j * n + k0), j - k0);
                float pivot = a[(long)j * n + j] - TensorPrimitives.Dot(rowJ, rowJ);
                if (!(pivot > 0f) || !float.IsFinite(pivot))
                    throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                        $"the damped Hessian is not positive definite: pivot {pivot:G6} at input column {columnName(j)}; raise DampingPercent, or give more (and more varied) calibration rows"));
                float diagonal = MathF.Sqrt(pivot);
                a[(long)j * n + j] = diagonal;
                for (int i = j + 1; i < k0 + kb; i++)
                    a[(long)i * n + j] = (a[(long)i * n + j] - TensorPrimitives.Dot(a.AsSpan((int)((long)i * n + k0), j - k0), rowJ)) / diagonal;
            }

            int below = n - k0 - kb;
            if (below == 0) break;
            // Panel: rows below solve L21 L11^T = A21, one independent forward substitution per row.
            Parallel.For(k0 + kb, n, new ParallelOptions { MaxDegreeOfParallelism = Gemm.MaxDegreeOfParallelism }, r =>
            {
                for (int j = k0; j < k0 + kb; j++)
                {
                    float dot = TensorPrimitives.Dot(a.AsSpan((int)((long)r * n + k0), j - k0), a.AsSpan((int)((long)j * n + k0), j - k0));
                    a[(long)r * n + j] = (a[(long)r * n + j] - dot) / a[(long)j * n + j];
                }
            });

            // Trailing update A22 -= L21 L21^T through Gemm on contiguous copies, lower triangle only: each block of
            // rows [s, e) needs columns [0, e), which halves the work against updating the whole square.
            var panel = new float[(long)below * kb];
            var negated = new float[panel.LongLength];
            for (int r = 0; r < below; r++) Array.Copy(a, (long)(k0 + kb + r) * n + k0, panel, (long)r * kb, kb);
            TensorPrimitives.Negate(panel, negated);
            var strip = new float[(long)Math.Min(Block, below) * below];
            for (int s0 = 0; s0 < below; s0 += Block)
            {
                int e = Math.Min(s0 + Block, below), rows = e - s0;
                for (int r = 0; r < rows; r++) Array.Copy(a, (long)(k0 + kb + s0 + r) * n + k0 + kb, strip, (long)r * e, e);
                Gemm.MatMulTransposedB(negated.AsSpan(s0 * kb, rows * kb), panel.AsSpan(0, e * kb), strip.AsSpan(0, rows * e), rows, kb, e, accumulate: true);
                for (int r = 0; r < rows; r++) Array.Copy(strip, (long)r * e, a, (long)(k0 + kb + s0 + r) * n + k0 + kb, s0 + r + 1);
            }
        }
        for (int i = 0; i < n; i++) Array.Clear(a, (int)((long)i * n + i + 1), n - i - 1);
    }

    /// <summary>The inverse of lower-triangular <paramref name="l"/> [n, n] with a positive diagonal (also lower triangular).</summary>
    public static float[] InvertLower(float[] l, int n)
    {
        var x = new float[(long)n * n];
        for (int r0 = 0; r0 < n; r0 += Block)
        {
            int rb = Math.Min(Block, n - r0);
            // Diagonal block: X_ii = L_ii^-1, column by column by forward substitution.
            var diagonalInverse = new float[rb * rb];
            for (int c = 0; c < rb; c++)
            {
                diagonalInverse[c * rb + c] = 1f / l[(long)(r0 + c) * n + r0 + c];
                for (int r = c + 1; r < rb; r++)
                {
                    double sum = 0;
                    for (int t = c; t < r; t++) sum += (double)l[(long)(r0 + r) * n + r0 + t] * diagonalInverse[t * rb + c];
                    diagonalInverse[r * rb + c] = (float)(-sum / l[(long)(r0 + r) * n + r0 + r]);
                }
            }
            for (int r = 0; r < rb; r++) Array.Copy(diagonalInverse, r * rb, x, (long)(r0 + r) * n + r0, r + 1);
            if (r0 == 0) continue;

            // Off-diagonal: X[i, 0:i] = -X_ii (L[i, 0:i] X[0:i, 0:i]), by column blocks [j0, j1): X[0:i, 0:i] is lower
            // triangular, so only its rows j0.. reach those columns (half the work of the full product).
            TensorPrimitives.Negate(diagonalInverse, diagonalInverse);
            var rows = new float[(long)rb * r0];
            var lower = new float[(long)r0 * Block];
            var product = new float[(long)rb * Block];
            var result = new float[(long)rb * Block];
            for (int j0 = 0; j0 < r0; j0 += Block)
            {
                int j1 = Math.Min(j0 + Block, r0), width = j1 - j0, depth = r0 - j0;
                for (int r = 0; r < rb; r++) Array.Copy(l, (long)(r0 + r) * n + j0, rows, (long)r * depth, depth);
                for (int t = 0; t < depth; t++) Array.Copy(x, (long)(j0 + t) * n + j0, lower, (long)t * width, width);
                Gemm.MatMul(rows.AsSpan(0, rb * depth), lower.AsSpan(0, depth * width), product.AsSpan(0, rb * width), rb, depth, width);
                Gemm.MatMul(diagonalInverse, product.AsSpan(0, rb * width), result.AsSpan(0, rb * width), rb, rb, width);
                for (int r = 0; r < rb; r++) Array.Copy(result, (long)r * width, x, (long)(r0 + r) * n + j0, width);
            }
        }
        return x;
    }
}
