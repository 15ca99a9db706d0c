using Condense.Quantization;
using Condense.Sparsity;
using Condense.Tests.Quantization;

namespace Condense.Tests.Sparsity;

public class NmSparseWeightTests
{
    public static TheoryData<int, int> Patterns => new() { { 2, 4 }, { 1, 4 }, { 2, 8 } };

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Pruning_keeps_exactly_the_N_largest_magnitudes_of_every_block(int n, int m)
    {
        const int o = 7, i = 96;
        var w = QuantTestData.Gaussian(11, o * i);
        var pruned = NmSparseWeight.Prune(w, o, i, n, m);
        var dense = new float[o * i];
        pruned.Dequantize(dense);
        for (int r = 0; r < o; r++)
            for (int start = 0; start < i; start += m)
            {
                var block = w.AsSpan(r * i + start, m).ToArray();
                var kept = Enumerable.Range(0, m).Where(t => dense[r * i + start + t] != 0).ToArray();
                Assert.Equal(n, kept.Length);
                foreach (int t in kept) Assert.Equal(block[t], dense[r * i + start + t]);
                float smallestKept = kept.Min(t => Math.Abs(block[t]));
                for (int t = 0; t < m; t++)
                    if (!kept.Contains(t)) Assert.True(Math.Abs(block[t]) <= smallestKept);
            }
    }

    [Fact]
    public void Ties_go_to_the_lower_index_and_zeros_can_be_kept()
    {
        var w = new float[] { 1, -1, 1, 0.5f, /* 2:4 */ 0, 0, 0, 0, 3, -3, 3, -3 };
        var pruned = NmSparseWeight.Prune(w, 1, 12, 2, 4);
        var dense = new float[12];
        pruned.Dequantize(dense);
        Assert.Equal(new float[] { 1, -1, 0, 0, 0, 0, 0, 0, 3, -3, 0, 0 }, dense);
        Assert.Equal(new float[] { 1, -1, 0, 0, 3, -3 }, pruned.Values);
        // Positions 0,1 | 0,1 | 0,1 at 2 bits, low bits first: 0b01_00 per block.
        Assert.Equal(new byte[] { 0x44, 0x04 }, pruned.Indices);

        var one = NmSparseWeight.Prune(new float[] { 2, -2, 2, 2, 0, 0, 0, -0.5f }, 1, 8, 1, 4);
        Assert.Equal(new float[] { 2, -0.5f }, one.Values);
        Assert.Equal(new byte[] { 0b1100 }, one.Indices);
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Pruning_is_deterministic_including_the_parallel_path(int n, int m)
    {
        const int o = 300, i = 1024;
        var w = QuantTestData.Gaussian(3, o * i);
        var a = NmSparseWeight.Prune(w, o, i, n, m);
        var b = NmSparseWeight.Prune(w, o, i, n, m);
        Assert.Equal(a.Indices, b.Indices);
        Assert.Equal(a.Values, b.Values);
    }

    [Theory]
    [InlineData(2, 4, 0, 0)]
    [InlineData(1, 4, 0, 0)]
    [InlineData(2, 8, 0, 0)]
    [InlineData(2, 4, 4, 32)]
    [InlineData(2, 8, 8, 0)]
    [InlineData(1, 4, 4, 16)]
    [InlineData(2, 4, 8, 64)]
    public void ByteCount_matches_the_format_formula_and_the_stored_arrays(int n, int m, int bits, int groupSize)
    {
        foreach (var (o, i) in new[] { (3, 128), (5, 256), (1, 512) })
        {
            var scheme = bits == 0 ? (QuantizationScheme?)null : new QuantizationScheme(bits, groupSize, Symmetric: bits == 4);
            var w = NmSparseWeight.Prune(QuantTestData.Gaussian(5, o * i), o, i, n, m, scheme);
            long k = (long)i * n / m;
            int logM = m == 8 ? 3 : 2;
            long indexBytes = o * ((k * logM + 7) / 8);
            long values;
            if (scheme is null) values = o * k * 4;
            else
            {
                long groups = o * (groupSize == 0 ? 1 : k / groupSize);
                values = o * ((k * bits + 7) / 8) + groups * 2 + (scheme.Value.Symmetric ? 0 : groups);
            }
            Assert.Equal(indexBytes + values, w.ByteCount);
            long real = w.Indices.Length + (w.Values is null ? 0 : w.Values.Length * 4L);
            if (w.QuantizedValues is { } q) real += q.Packed.Length + q.Scales.Length * 2L + (q.ZeroPoints?.Length ?? 0);
            Assert.Equal(real, w.ByteCount);
        }
    }

    [Theory]
    [MemberData(nameof(Patterns))]
    public void Products_match_the_reference_over_many_shapes_and_batches(int n, int m)
    {
        int[] inputs = { m, 2 * m, 3 * m, 5 * m, 8 * m, 9 * m, 16 * m, 17 * m, 33 * m, 64 * m + m };
        int[] outputs = { 1, 3, 17 };
        ulong seed = 100;
        foreach (int i in inputs)
            foreach (int o in outputs)
            {
                var w = NmSparseWeight.Prune(QuantTestData.Gaussian(seed++, o * i), o, i, n, m);
                var dense = new float[o * i];
                w.Dequantize(dense);
                foreach (int batch in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 40 })
                {
                    var x = QuantTestData.Gaussian(seed++, batch * i);
                    var y = new float[batch * o];
                    w.MatMulTransposed(x, y, batch);
                    SparseReference.AssertClose(dense, o, i, x, batch, y, $"{n}:{m} [{o}, {i}] batch {batch}");
                }
            }
    }

    [Theory]
    [InlineData(2, 4)]
    [InlineData(2, 8)]
    public void Large_products_match_the_reference_at_batch_1_and_128(int n, int m)
    {
        const int o = 70, i = 512;
        var w = NmSparseWeight.Prune(QuantTestData.Gaussian(7, o * i), o, i, n, m);
        var dense = new float[o * i];
        w.Dequantize(dense);
        foreach (int batch in new[] { 1, 128 })
        {
            var x = QuantTestData.Gaussian(8, batch * i);
            var y = new float[batch * o];
            w.MatMulTransposed(x, y, batch);
            SparseReference.AssertClose(dense, o, i, x, batch, y, $"batch {batch}");
        }
    }

    [Theory]
    [InlineData(2, 4, 4, 32, true)]
    [InlineData(2, 4, 8, 0, false)]
    [InlineData(1, 4, 4, 16, false)]
    [InlineData(2, 8, 8, 32, true)]
    [InlineData(2, 8, 4, 0, true)]
    public void Quantized_values_products_match_their_dequantized_weight(int n, int m, int bits, int groupSize, bool symmetric)
    {
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        ulong seed = 40;
        foreach (var (o, i) in new[] { (1, 128), (9, 256), (33, 384) })
        {
            var source = QuantTestData.Gaussian(seed++, o * i);
            var w = NmSparseWeight.Prune(source, o, i, n, m, scheme);
            Assert.Null(w.Values);
            var fp = NmSparseWeight.Prune(source, o, i, n, m);
            Assert.Equal(fp.Indices, w.Indices);

            // The dequantized weight is the quantized compressed rows scattered to the fp32 pattern.
            var compressed = new float[o * w.CompressedWidth];
            w.QuantizedValues!.Dequantize(compressed);
            var scattered = NmSparseWeight.FromParts(o, i, n, m, w.Indices, compressed);
            var expected = new float[o * i];
            var dense = new float[o * i];
            scattered.Dequantize(expected);
            w.Dequantize(dense);
            Assert.Equal(expected, dense);

            foreach (int batch in new[] { 1, 2, 5, 9, 128 })
            {
                var x = QuantTestData.Gaussian(seed++, batch * i);
                var y = new float[batch * o];
                w.MatMulTransposed(x, y, batch);
                SparseReference.AssertClose(dense, o, i, x, batch, y, $"{w.Format} [{o}, {i}] batch {batch}");
            }
        }
    }

    [Fact]
    public void Formats_are_named_by_pattern_and_value_type()
    {
        var w = QuantTestData.Gaussian(1, 2 * 128);
        Assert.Equal("2:4-fp32", NmSparseWeight.Prune(w, 2, 128, 2, 4).Format);
        Assert.Equal("2:8-int4-g32-sym", NmSparseWeight.Prune(w, 2, 128, 2, 8, new QuantizationScheme(4, 32, true)).Format);
    }

    [Fact]
    public void FromParts_round_trips_the_stored_arrays()
    {
        const int o = 5, i = 64;
        var w = NmSparseWeight.Prune(QuantTestData.Gaussian(2, o * i), o, i, 2, 8);
        var back = NmSparseWeight.FromParts(o, i, 2, 8, w.Indices, w.Values!);
        var x = QuantTestData.Gaussian(3, i);
        var y1 = new float[o];
        var y2 = new float[o];
        w.MatMulTransposed(x, y1, 1);
        back.MatMulTransposed(x, y2, 1);
        Assert.Equal(y1, y2);
        var q = NmSparseWeight.Prune(QuantTestData.Gaussian(2, o * i), o, i, 2, 4, new QuantizationScheme(8, 0, false));
        Assert.Equal(q.ByteCount, NmSparseWeight.FromParts(o, i, 2, 4, q.Indices, q.QuantizedValues!).ByteCount);
    }

    [Fact]
    public void FromParts_rejects_bad_parts_naming_the_array_and_the_expected_length()
    {
        const int o = 3, i = 16;
        var w = NmSparseWeight.Prune(QuantTestData.Gaussian(4, o * i), o, i, 2, 4);

        var e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(o, i, 2, 4, new byte[5], w.Values!));
        Assert.Equal("indices", e.ParamName);
        Assert.Contains("expects OutFeatures x ceil8(K x 2 bits) = 3 x 2 = 6", e.Message);

        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(o, i, 2, 4, w.Indices, new float[23]));
        Assert.Equal("values", e.ParamName);
        Assert.Contains("OutFeatures x K = 3 x 8 = 24", e.Message);

        var nan = (float[])w.Values!.Clone();
        nan[9] = float.NaN;
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(o, i, 2, 4, w.Indices, nan));
        Assert.Contains("values[9] (row 1, kept value 1) is NaN", e.Message);

        var repeated = (byte[])w.Indices.Clone();
        repeated[2] = 0b0101_0101; // positions 1,1 in row 1, block 0
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(o, i, 2, 4, repeated, w.Values!));
        Assert.Contains("indices row 1, block 0 has positions 1 then 1", e.Message);

        var padded = NmSparseWeight.Prune(QuantTestData.Gaussian(4, 2 * 24), 2, 24, 2, 8);
        var badPadding = (byte[])padded.Indices.Clone();
        badPadding[2] |= 0x80; // 6 values x 3 bits = 18 bits: the top 6 bits of byte 2 are padding
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(2, 24, 2, 8, badPadding, padded.Values!));
        Assert.Contains("indices row 0 has non-zero padding bits", e.Message);

        var q = GroupQuantizedWeight.Quantize(new float[o * 16], o, 16, new QuantizationScheme(4, 0, true));
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(o, i, 2, 4, w.Indices, q));
        Assert.Contains("expects the compressed rows [OutFeatures, K] = [3, 8]", e.Message);

        var q2 = GroupQuantizedWeight.Quantize(new float[o * 8], o, 8, new QuantizationScheme(2, 0, true));
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.FromParts(o, i, 2, 4, w.Indices, q2));
        Assert.Contains("2 bits have no kernel; expected 4 or 8 bits", e.Message);
    }

    [Fact]
    public void Prune_rejects_unsupported_settings_and_non_finite_weights()
    {
        var e = Assert.Throws<ArgumentException>(() => NmSparseWeight.Prune(new float[16], 1, 16, 3, 4));
        Assert.Contains("3:4 has no kernel; expected 2:4, 1:4 or 2:8", e.Message);
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.Prune(new float[20], 2, 10, 2, 4));
        Assert.Contains("inFeatures is 10; the 2:4 pattern expects a positive multiple of M = 4", e.Message);
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.Prune(new float[15], 1, 16, 2, 4));
        Assert.Equal("dense", e.ParamName);
        var w = new float[32];
        w[21] = float.PositiveInfinity;
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.Prune(w, 2, 16, 2, 4));
        Assert.Contains("dense[row 1, column 5] is ∞", e.Message.Replace("Infinity", "∞"));
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.Prune(new float[64], 1, 64, 2, 4, new QuantizationScheme(3, 0, true)));
        Assert.Contains("3 bits have no kernel", e.Message);
        e = Assert.Throws<ArgumentException>(() => NmSparseWeight.Prune(new float[64], 1, 64, 2, 4, new QuantizationScheme(4, 64, true)));
        Assert.Contains("K = 32", e.Message);
    }

    [Fact]
    public void Large_kept_values_are_backed_by_huge_pages_and_keep_their_products()
    {
        // Batch-1 products stream the kept values from memory; 2 MiB pages read them faster (see HugePages). Only
        // dense, quantized and low-rank weights were advised before.
        if (!Condense.Tests.Kernels.Smaps.TransparentHugePagesAvailable) return; // the advice is a no-op by design
        bool canCollapse = Condense.Tests.Kernels.Smaps.CanCollapse();
        int outF = 2048, inF = 4096; // 2:4 keeps 2048 x 2048 floats: 16 MiB
        var sparse = NmSparseWeight.Prune(SparseReference.LargeDense(outF, inF, 11), outF, inF, 2, 4);
        var stored = new float[outF * inF];
        sparse.Dequantize(stored);
        var x = SparseReference.LargeDense(1, inF, 12);
        var y = new float[outF];
        sparse.MatMulTransposed(x, y, 1);
        SparseReference.AssertRowsMatch(stored, x, y, inF);
        if (!canCollapse) return;
        long hugeKiB = Condense.Tests.Kernels.Smaps.AnonHugePagesKiB(sparse.Values!);
        // No free 2 MiB page when Prune advised the values, or none left since the probe: only the advice counts.
        if (hugeKiB < 2048 && (Condense.Tests.Kernels.Smaps.AdvisedWithoutCollapse(sparse.Values!) || !Condense.Tests.Kernels.Smaps.CanCollapse())) return;
        Assert.True(hugeKiB >= 2048, $"the 16 MiB kept-value array's mapping has no huge page after Prune (smaps AnonHugePages {hugeKiB} KiB)");
    }
}
