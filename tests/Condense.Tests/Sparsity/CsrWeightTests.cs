using Condense.Sparsity;
using Condense.Tests.Quantization;

namespace Condense.Tests.Sparsity;

public class CsrWeightTests
{
    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.95)]
    [InlineData(0.333)]
    [InlineData(1.0)]
    public void Pruning_keeps_exactly_nnz_of_the_largest_magnitudes(double fraction)
    {
        const int o = 13, i = 77;
        var w = QuantTestData.Gaussian(21, o * i);
        var csr = CsrWeight.Prune(w, o, i, fraction);
        long expectedNnz = o * i - (long)Math.Floor(fraction * o * i);
        Assert.Equal(expectedNnz, csr.NonZeroCount);
        var dense = new float[o * i];
        csr.Dequantize(dense);
        var keptMagnitudes = Enumerable.Range(0, o * i).Where(t => dense[t] != 0).Select(t => Math.Abs(w[t])).ToList();
        var droppedMagnitudes = Enumerable.Range(0, o * i).Where(t => dense[t] == 0).Select(t => Math.Abs(w[t])).ToList();
        Assert.Equal(expectedNnz, keptMagnitudes.Count);
        if (keptMagnitudes.Count > 0 && droppedMagnitudes.Count > 0) Assert.True(droppedMagnitudes.Max() <= keptMagnitudes.Min());
        for (int t = 0; t < o * i; t++) Assert.True(dense[t] == 0 || dense[t] == w[t]);
    }

    [Fact]
    public void Ties_go_to_the_lower_flat_index_and_zeros_are_kept_when_needed()
    {
        var w = new float[] { 0, 2, -2, 1, /* row 1 */ 2, 0, -1, 1 };
        var csr = CsrWeight.Prune(w, 2, 4, 0.5); // keep 4: the three 2s and the first 1 (flat index 3)
        Assert.Equal(new float[] { 2, -2, 1, 2 }, csr.Values);
        Assert.Equal(new ushort[] { 1, 2, 3, 0 }, csr.ColumnIndices16);
        Assert.Equal(new[] { 0, 3, 4 }, csr.RowPointers);

        var zeros = CsrWeight.Prune(new float[6], 2, 3, 0.5);
        Assert.Equal(new ushort[] { 0, 1, 2 }, zeros.ColumnIndices16);
        Assert.Equal(new[] { 0, 3, 3 }, zeros.RowPointers);
    }

    [Fact]
    public void Pruning_is_deterministic_with_many_ties()
    {
        const int o = 200, i = 300;
        var w = QuantTestData.Gaussian(5, o * i).Select(v => MathF.Round(v * 4) / 4).ToArray();
        var a = CsrWeight.Prune(w, o, i, 0.8);
        var b = CsrWeight.Prune(w, o, i, 0.8);
        Assert.Equal(a.Values, b.Values);
        Assert.Equal(a.ColumnIndices16, b.ColumnIndices16);
        Assert.Equal(a.RowPointers, b.RowPointers);
        // Among the weights at the threshold magnitude, exactly the earliest ones in flat order are kept.
        var dense = new float[o * i];
        a.Dequantize(dense);
        float threshold = Enumerable.Range(0, o * i).Where(t => dense[t] != 0).Min(t => Math.Abs(w[t]));
        var atThreshold = Enumerable.Range(0, o * i).Where(t => Math.Abs(w[t]) == threshold).ToList();
        var keptAtThreshold = atThreshold.Where(t => dense[t] != 0 || w[t] == 0).ToList();
        Assert.Equal(atThreshold.Take(keptAtThreshold.Count), keptAtThreshold);
        Assert.True(keptAtThreshold.Count < atThreshold.Count);
    }

    [Fact]
    public void FromDense_keeps_the_non_zeros()
    {
        var w = new float[] { 0, 1.5f, 0, -0f, 3, 0 };
        var csr = CsrWeight.FromDense(w, 2, 3);
        Assert.Equal(new float[] { 1.5f, 3 }, csr.Values);
        Assert.Equal(new ushort[] { 1, 1 }, csr.ColumnIndices16);
        Assert.Equal(new[] { 0, 1, 2 }, csr.RowPointers);
    }

    [Theory]
    [InlineData(4, 100, 0.9)]
    [InlineData(3, 65536, 0.99)]
    [InlineData(2, 65537, 0.99)]
    [InlineData(5, 70000, 0.0)]
    public void ByteCount_matches_the_format_formula_and_the_stored_arrays(int o, int i, double fraction)
    {
        var csr = CsrWeight.Prune(QuantTestData.Gaussian(3, o * i), o, i, fraction);
        long nnz = (long)o * i - (long)Math.Floor(fraction * o * i);
        Assert.Equal(nnz * 4 + nnz * (i <= 65536 ? 2 : 4) + (o + 1) * 4L, csr.ByteCount);
        long real = csr.Values.Length * 4L + (csr.ColumnIndices16?.Length * 2L ?? 0) + (csr.ColumnIndices32?.Length * 4L ?? 0) + csr.RowPointers.Length * 4L;
        Assert.Equal(real, csr.ByteCount);
        Assert.Equal(i <= 65536, csr.ColumnIndices16 is not null);
        Assert.Equal(i > 65536, csr.ColumnIndices32 is not null);
    }

    [Fact]
    public void Products_match_the_reference_over_many_shapes_densities_and_batches()
    {
        int[] inputs = { 1, 2, 7, 8, 15, 16, 31, 33, 64, 100, 257 };
        int[] outputs = { 1, 2, 9 };
        double[] fractions = { 0, 0.5, 0.9, 1 };
        ulong seed = 300;
        foreach (int i in inputs)
            foreach (int o in outputs)
                foreach (double f in fractions)
                {
                    var csr = CsrWeight.Prune(QuantTestData.Gaussian(seed++, o * i), o, i, f);
                    var dense = new float[o * i];
                    csr.Dequantize(dense);
                    foreach (int batch in new[] { 1, 2, 3, 5, 8, 9, 33 })
                    {
                        var x = QuantTestData.Gaussian(seed++, batch * i);
                        var y = new float[batch * o];
                        csr.MatMulTransposed(x, y, batch);
                        SparseReference.AssertClose(dense, o, i, x, batch, y, $"csr [{o}, {i}] fraction {f} batch {batch}");
                    }
                }
    }

    [Fact]
    public void Large_and_u32_products_match_the_reference_at_batch_1_and_128()
    {
        foreach (var (o, i, f) in new[] { (300, 700, 0.9), (3, 70001, 0.95) })
        {
            var csr = CsrWeight.Prune(QuantTestData.Gaussian(9, o * i), o, i, f);
            var dense = new float[o * i];
            csr.Dequantize(dense);
            foreach (int batch in new[] { 1, 128 })
            {
                var x = QuantTestData.Gaussian(10, batch * i);
                var y = new float[batch * o];
                csr.MatMulTransposed(x, y, batch);
                SparseReference.AssertClose(dense, o, i, x, batch, y, $"{csr.Format} [{o}, {i}] batch {batch}");
            }
        }
    }

    [Fact]
    public void FromParts_round_trips_and_rejects_bad_parts_naming_the_array()
    {
        var csr = CsrWeight.Prune(QuantTestData.Gaussian(4, 3 * 10), 3, 10, 0.5);
        var back = CsrWeight.FromParts(3, 10, csr.Values, csr.ColumnIndices16!, csr.RowPointers);
        Assert.Equal(csr.ByteCount, back.ByteCount);

        var e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(3, 10, csr.Values, csr.ColumnIndices16!, new int[3]));
        Assert.Equal("rowPointers", e.ParamName);
        Assert.Contains("expects OutFeatures + 1 = 4", e.Message);

        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(3, 10, new float[14], csr.ColumnIndices16!, csr.RowPointers));
        Assert.Equal("values", e.ParamName);
        Assert.Contains("rowPointers[3] says nnz = 15", e.Message);

        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(3, 10, csr.Values, new ushort[16], csr.RowPointers));
        Assert.Equal("columnIndices", e.ParamName);
        Assert.Contains("columnIndices has 16 values; rowPointers[3] says nnz = 15", e.Message);

        var outOfRange = (ushort[])csr.ColumnIndices16!.Clone();
        outOfRange[csr.RowPointers[1]] = 10;
        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(3, 10, csr.Values, outOfRange, csr.RowPointers));
        Assert.Contains($"columnIndices[{csr.RowPointers[1]}] (row 1) is 10; expected a column below InFeatures = 10", e.Message);

        var unsorted = new ushort[] { 3, 3 };
        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(1, 10, new float[] { 1, 2 }, unsorted, new[] { 0, 2 }));
        Assert.Contains("is 3 after 3; expected strictly increasing columns", e.Message);

        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(2, 10, new float[] { 1, 2 }, new ushort[] { 1, 2 }, new[] { 0, 2, 1 }));
        Assert.Contains("rowPointers[2] is 1, below rowPointers[1] = 2", e.Message);

        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(1, 10, new float[] { 1 }, new uint[] { 1 }, new[] { 0, 1 }));
        Assert.Contains("expected u16 column indices", e.Message);

        e = Assert.Throws<ArgumentException>(() => CsrWeight.FromParts(1, 10, new float[] { float.NaN }, new ushort[] { 1 }, new[] { 0, 1 }));
        Assert.Contains("values[0] is NaN", e.Message);
    }

    [Fact]
    public void Prune_rejects_bad_fractions_and_non_finite_weights()
    {
        var e = Assert.Throws<ArgumentException>(() => CsrWeight.Prune(new float[4], 2, 2, 1.5));
        Assert.Contains("fraction is 1.5", e.Message);
        Assert.Throws<ArgumentException>(() => CsrWeight.Prune(new float[4], 2, 2, double.NaN));
        var w = new float[6];
        w[4] = float.NaN;
        e = Assert.Throws<ArgumentException>(() => CsrWeight.Prune(w, 2, 3, 0.5));
        Assert.Contains("dense[row 1, column 1] is NaN", e.Message);
    }

    [Fact]
    public void Large_values_are_backed_by_huge_pages_and_keep_their_products()
    {
        // Batch-1 products stream the values and column indices from memory; 2 MiB pages read them faster (see HugePages).
        if (!Condense.Tests.Kernels.Smaps.TransparentHugePagesAvailable) return; // the advice is a no-op by design
        bool canCollapse = Condense.Tests.Kernels.Smaps.CanCollapse();
        int outF = 2048, inF = 4096; // half kept: 4 Mi floats, 16 MiB
        var sparse = CsrWeight.Prune(SparseReference.LargeDense(outF, inF, 21), outF, inF, 0.5);
        var stored = new float[outF * inF];
        sparse.Dequantize(stored);
        var x = SparseReference.LargeDense(1, inF, 22);
        var y = new float[outF];
        sparse.MatMulTransposed(x, y, 1);
        SparseReference.AssertRowsMatch(stored, x, y, inF);
        if (!canCollapse) return;
        long hugeKiB = Condense.Tests.Kernels.Smaps.AnonHugePagesKiB(sparse.Values);
        // No free 2 MiB page when the values were advised, or none left since the probe: only the advice counts.
        if (hugeKiB < 2048 && (Condense.Tests.Kernels.Smaps.AdvisedWithoutCollapse(sparse.Values) || !Condense.Tests.Kernels.Smaps.CanCollapse())) return;
        Assert.True(hugeKiB >= 2048, $"the 16 MiB value array's mapping has no huge page after Prune (smaps AnonHugePages {hugeKiB} KiB)");
    }
}
