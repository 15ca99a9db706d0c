using Condense.Kernels;
using Condense.Quantization;
using Condense.Sparsity;
using Condense.Tests.Kernels;
using Condense.Tests.Quantization;

namespace Condense.Tests.Sparsity;

/// <summary>
/// The batch-1 sparse kernels at every SIMD width (512, 256, 128 and the scalar reference): N:M rows of every chunk
/// count and tail, zero rows, CSR rows of every length around the 8- and 16-wide steps, empty and full
/// rows, u16 and u32 columns, serial and parallel splits.
/// </summary>
public class SparseKernelWidthTests
{
    public static TheoryData<int, int> Patterns => new() { { 2, 4 }, { 1, 4 }, { 2, 8 } };

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Nm_products_match_the_reference_at_every_width(int n, int m)
    {
        // K = In * N / M around the 16-value chunk: below one chunk, exactly one, one plus a tail, several plus a tail.
        int[] inputs = { m, 3 * m, 8 * m, 16 * m / n, 16 * m / n + m, 48 * m / n + 3 * m, 128 * m };
        // Row counts that split unevenly over the pool's chunks.
        int[] outputs = { 1, 3, 4, 5, 8, 9, 19 };
        KernelWidths.ForEach(bits =>
        {
            ulong seed = 500;
            foreach (int i in inputs)
                foreach (int o in outputs)
                {
                    var source = QuantTestData.Gaussian(seed++, o * i);
                    // A zero row: every kept value is 0 and its product must be exactly 0.
                    Array.Clear(source, (o / 2) * i, i);
                    var w = NmSparseWeight.Prune(source, o, i, n, m);
                    var dense = new float[o * i];
                    w.Dequantize(dense);
                    foreach (int batch in new[] { 1, 3 })
                    {
                        var x = QuantTestData.Gaussian(seed++, batch * i);
                        var y = new float[batch * o];
                        w.MatMulTransposed(x, y, batch);
                        SparseReference.AssertClose(dense, o, i, x, batch, y, $"{n}:{m} [{o}, {i}] batch {batch} at {bits} bits");
                        for (int b = 0; b < batch; b++) Assert.Equal(0f, y[b * o + o / 2]);
                    }
                }
        });
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Nm_products_split_over_threads_match_the_reference_at_every_width(int n, int m)
    {
        // Large enough to go parallel, with a row count that the pool's chunks do not divide.
        const int o = 134, i = 2048 + 64;
        var w = NmSparseWeight.Prune(QuantTestData.Gaussian(77, o * i), o, i, n, m);
        var dense = new float[o * i];
        w.Dequantize(dense);
        var x = QuantTestData.Gaussian(78, i);
        KernelWidths.ForEach(bits =>
        {
            var y = new float[o];
            w.MatMulTransposed(x, y, 1);
            SparseReference.AssertClose(dense, o, i, x, 1, y, $"{n}:{m} [{o}, {i}] at {bits} bits");
        });
    }

    [Theory]
    [InlineData(2, 4, 8, 32)]
    [InlineData(2, 4, 4, 128)]
    [InlineData(2, 8, 4, 0)]
    public void Nm_quantized_value_products_match_their_dequantized_weight_at_every_width(int n, int m, int bits, int groupSize)
    {
        const int o = 9, i = 512;
        var w = NmSparseWeight.Prune(QuantTestData.Gaussian(90, o * i), o, i, n, m, new QuantizationScheme(bits, groupSize, Symmetric: false));
        var dense = new float[o * i];
        w.Dequantize(dense);
        var x = QuantTestData.Gaussian(91, i);
        KernelWidths.ForEach(width =>
        {
            var y = new float[o];
            w.MatMulTransposed(x, y, 1);
            SparseReference.AssertClose(dense, o, i, x, 1, y, $"{w.Format} at {width} bits");
        });
    }

    [Theory]
    [InlineData(300)]
    [InlineData(70001)]
    public void Csr_rows_of_every_length_match_the_reference_at_every_width(int inFeatures)
    {
        // Lengths around the 8-wide gather and the 16-wide step, plus empty and (for the narrow shape) full rows.
        var lengths = new List<int> { 0, 1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 47, 100, 0 };
        if (inFeatures <= 300) lengths.Add(inFeatures);
        int o = lengths.Count;
        var random = new Random(11);
        var rowPointers = new int[o + 1];
        for (int r = 0; r < o; r++) rowPointers[r + 1] = rowPointers[r] + lengths[r];
        int nnz = rowPointers[o];
        var values = QuantTestData.Gaussian(12, nnz);
        var columns = new uint[nnz];
        for (int r = 0; r < o; r++)
        {
            // Distinct sorted columns spread over the whole row, including its first and last column when full.
            var picked = Enumerable.Range(0, inFeatures).OrderBy(_ => random.Next()).Take(lengths[r]).OrderBy(c => c).ToArray();
            for (int t = 0; t < picked.Length; t++) columns[rowPointers[r] + t] = (uint)picked[t];
        }
        var csr = inFeatures <= CsrWeight.MaxInFeaturesForU16
            ? CsrWeight.FromParts(o, inFeatures, values, columns.Select(c => (ushort)c).ToArray(), rowPointers)
            : CsrWeight.FromParts(o, inFeatures, values, columns, rowPointers);
        var dense = new float[o * inFeatures];
        csr.Dequantize(dense);
        KernelWidths.ForEach(bits =>
        {
            foreach (int batch in new[] { 1, 2 })
            {
                var x = QuantTestData.Gaussian(13, batch * inFeatures);
                var y = new float[batch * o];
                csr.MatMulTransposed(x, y, batch);
                SparseReference.AssertClose(dense, o, inFeatures, x, batch, y, $"{csr.Format} batch {batch} at {bits} bits");
                for (int b = 0; b < batch; b++)
                    for (int r = 0; r < o; r++)
                        if (lengths[r] == 0) Assert.Equal(0f, y[b * o + r]);
            }
        });
    }

    [Fact]
    public void Csr_products_split_over_threads_match_the_reference_at_every_width()
    {
        const int o = 600, i = 1000;
        var csr = CsrWeight.Prune(QuantTestData.Gaussian(21, o * i), o, i, 0.7);
        var dense = new float[o * i];
        csr.Dequantize(dense);
        var x = QuantTestData.Gaussian(22, i);
        KernelWidths.ForEach(bits =>
        {
            var y = new float[o];
            csr.MatMulTransposed(x, y, 1);
            SparseReference.AssertClose(dense, o, i, x, 1, y, $"csr [{o}, {i}] at {bits} bits");
        });
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public unsafe void Nm_row_kernel_matches_the_scalar_reference_at_every_width(int n, int m)
    {
        // The row kernel alone against the scalar reference, including K = 0 and K below one 16-value chunk.
        foreach (int k in new[] { 0, 1 * n, 2 * n, 16, 16 + n, 64, 96 + 3 * n })
        {
            int inFeatures = k / n * m;
            var values = QuantTestData.Gaussian((ulong)(600 + k), k);
            var x = QuantTestData.Gaussian((ulong)(700 + k), Math.Max(1, inFeatures));
            int rowBytes = (k * (m == 8 ? 3 : 2) + 7) / 8;
            var positions = new byte[rowBytes];
            var random = new Random(k);
            var levels = new int[k];
            for (int j = 0; j < k; j += n)
            {
                // n distinct increasing positions per block.
                var block = Enumerable.Range(0, m).OrderBy(_ => random.Next()).Take(n).OrderBy(p => p).ToArray();
                for (int t = 0; t < n; t++) levels[j + t] = block[t];
            }
            if (m == 8) PackedBits.PackRow<Bits3>(levels, positions);
            else PackedBits.PackRow<Bits2>(levels, positions);
            fixed (float* v = values, xp = x)
            fixed (byte* p = positions)
            {
                float expected = n == 1 && m == 4
                    ? SparseNmKernels.RowDotScalar<Nm1Of4>(v, p, k, xp)
                    : m == 8 ? SparseNmKernels.RowDotScalar<Nm2Of8>(v, p, k, xp) : SparseNmKernels.RowDotScalar<Nm2Of4>(v, p, k, xp);
                double scale = 0;
                for (int j = 0; j < k; j++) scale += Math.Abs((double)values[j] * x[j / n * m + levels[j]]);
                nint va = (nint)v, pa = (nint)p, xa = (nint)xp;
                KernelWidths.ForEach(bits =>
                {
                    float* vv = (float*)va, xx = (float*)xa;
                    byte* pp = (byte*)pa;
                    float actual = n == 1 && m == 4
                        ? SparseNmKernels.RowDot<Nm1Of4>(vv, pp, pp + rowBytes, k, xx)
                        : m == 8 ? SparseNmKernels.RowDot<Nm2Of8>(vv, pp, pp + rowBytes, k, xx) : SparseNmKernels.RowDot<Nm2Of4>(vv, pp, pp + rowBytes, k, xx);
                    Assert.True(Math.Abs(actual - expected) <= 1e-5 * scale + 1e-30, $"{n}:{m} K = {k} at {bits} bits: {actual} vs {expected}");
                });
            }
        }
    }
}
