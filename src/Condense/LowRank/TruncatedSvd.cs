using System.Numerics.Tensors;
using Condense.Kernels;
using MathNet.Numerics.LinearAlgebra;
using MathNet.Numerics.LinearAlgebra.Factorization;

namespace Condense.LowRank;

/// <summary>
/// Seeded randomized truncated SVD (Halko, Martinsson, Tropp 2011): a Gaussian sketch with oversampling and
/// power iterations finds an orthonormal basis Q of A's dominant column space; the best rank-r approximation
/// of Q Q^T A then comes from the eigenvectors of the small (B B^T), B = Q^T A. Same seed, same factors.
/// </summary>
internal static class TruncatedSvd
{
    private const int Oversampling = 10;
    private const int PowerIterations = 2;

    /// <summary>Factors A [m, n] ~ U V with U [m, r] (orthonormal columns) and V [r, n].</summary>
    public static (float[] U, float[] V) Factor(ReadOnlySpan<float> a, int m, int n, int rank, ulong seed)
    {
        int l = Math.Min(rank + Oversampling, Math.Min(m, n));
        var rng = new Rng(seed);
        var omega = new float[n * l];
        for (int i = 0; i < omega.Length; i++) omega[i] = rng.NextGaussian();

        var y = new float[m * l];
        Gemm.MatMul(a, omega, y, m, n, l);
        Orthonormalize(y, m, l);
        var z = new float[n * l];
        for (int q = 0; q < PowerIterations; q++)
        {
            // Z = A^T Q, then Y = A Z: sharpens the spectrum so the sketch finds the dominant subspace.
            Gemm.MatMulTransposedA(a, y, z, n, m, l);
            Orthonormalize(z, n, l);
            Gemm.MatMul(a, z, y, m, n, l);
            Orthonormalize(y, m, l);
        }

        var b = new float[l * n];
        Gemm.MatMulTransposedA(y, a, b, l, m, n);

        // B B^T = W diag(s^2) W^T; the top-r eigenvectors W_r give U = Q W_r and V = W_r^T B.
        var gram = Matrix<double>.Build.Dense(l, l);
        for (int i = 0; i < l; i++)
            for (int j = 0; j <= i; j++)
            {
                double dot = 0;
                for (int c = 0; c < n; c++) dot += (double)b[i * n + c] * b[j * n + c];
                // The eigen solver indexes out of range on NaN/Inf (MathNet): refuse an overflowed sketch clearly.
                if (!double.IsFinite(dot))
                    throw new ArgumentException("the randomized SVD's sketch overflowed float32 (the weights are too large to factor); rescale the layer's weights or mark the layer [KeepDense]", nameof(a));
                gram[i, j] = dot;
                gram[j, i] = dot;
            }
        var evd = gram.Evd(Symmetricity.Symmetric);
        var order = Enumerable.Range(0, l).OrderByDescending(i => evd.EigenValues[i].Real).ThenBy(i => i).Take(rank).ToArray();

        int r = rank;
        var w = new float[l * r];
        for (int k = 0; k < order.Length; k++)
        {
            // A fixed sign (largest entry positive) so the factors do not depend on the eigen solver's choice.
            int col = order[k];
            int argMax = 0;
            for (int i = 1; i < l; i++) if (Math.Abs(evd.EigenVectors[i, col]) > Math.Abs(evd.EigenVectors[argMax, col])) argMax = i;
            double sign = evd.EigenVectors[argMax, col] < 0 ? -1 : 1;
            for (int i = 0; i < l; i++) w[i * r + k] = (float)(sign * evd.EigenVectors[i, col]);
        }

        var u = new float[m * r];
        Gemm.MatMul(y, w, u, m, l, r);
        var v = new float[r * n];
        Gemm.MatMulTransposedA(w, b, v, r, l, n);
        return (u, v);
    }

    /// <summary>Orthonormalizes the columns of a row-major [rows, cols] matrix in place (Gram-Schmidt twice, in double).</summary>
    private static void Orthonormalize(float[] matrix, int rows, int cols)
    {
        var basis = new double[cols][];
        for (int j = 0; j < cols; j++)
        {
            var v = new double[rows];
            for (int i = 0; i < rows; i++) v[i] = matrix[i * cols + j];
            double original = Math.Sqrt(TensorPrimitives.Dot<double>(v, v));
            for (int pass = 0; pass < 2; pass++)
                for (int p = 0; p < j; p++)
                {
                    double dot = TensorPrimitives.Dot<double>(basis[p], v);
                    TensorPrimitives.MultiplyAdd(basis[p], -dot, v, v);
                }
            double norm = Math.Sqrt(TensorPrimitives.Dot<double>(v, v));
            // A column inside the span of the previous ones (rank-deficient A) becomes zero rather than noise.
            if (norm <= 1e-10 * Math.Max(original, double.Epsilon)) Array.Clear(v);
            else TensorPrimitives.Multiply(v, 1 / norm, v);
            basis[j] = v;
        }
        for (int j = 0; j < cols; j++)
            for (int i = 0; i < rows; i++) matrix[i * cols + j] = (float)basis[j][i];
    }
}
