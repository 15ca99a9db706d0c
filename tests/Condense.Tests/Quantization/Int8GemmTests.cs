using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;
using Condense.Tests.Kernels;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

/// <summary>
/// The 8-bit int8-activation GEMM (<see cref="Int8Gemm"/>) against the exact integer reference over odd shapes: row
/// counts that are not multiples of its 64-row panels, odd input counts (per-row groups), every group size, symmetric
/// and asymmetric grids, batches that fill none, one or several tiles of 3 and 6 rows; and bit-identical results at 1
/// and 2 threads and wherever a batch row falls in the tiles.
/// </summary>
public class Int8GemmTests
{
    public static TheoryData<int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int group in new[] { 0, 16, 32, 64, 128, 256 })
            foreach (bool sym in new[] { true, false })
                data.Add(group, group switch { 0 => 1031, 16 => 272, 32 => 160, 64 => 448, 128 => 640, _ => 768 }, sym);
        data.Add(0, 7, false);     // shorter than one 32-code piece
        data.Add(0, 33, true);     // one full piece and an odd tail
        data.Add(0, 4097, false);  // several chunks, odd
        data.Add(16, 4112, true);  // groups of 16 across chunks, a piece split between two groups at the row end
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matches_the_integer_reference_at_batches_1_to_9_17_and_33(int group, int inF, bool sym)
    {
        foreach (int outF in new[] { 1, 67, 130 })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * inF + group + outF), outF * inF), outF, inF, new QuantizationScheme(8, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + outF), 33 * inF, 3f);
            RunGemm(() =>
            {
                foreach (int batch in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33 })
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"gemm out {outF}");
            });
        }
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(32, false)]
    [InlineData(16, true)]
    public void Same_bits_at_1_and_2_threads_and_wherever_a_row_falls_in_the_tiles(int group, bool sym)
    {
        const int outF = 203, inF = 1536, batch = 40;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(5, outF * inF), outF, inF, new QuantizationScheme(8, group, sym));
        var x = QuantTestData.Gaussian(6, batch * inF);
        RunGemm(() =>
        {
            var pool = WorkerPool.Shared;
            int saved = pool.MaxDegreeOfParallelism;
            var one = new float[batch * outF];
            var two = new float[batch * outF];
            try
            {
                pool.MaxDegreeOfParallelism = 1;
                q.MatMulTransposed(x, one, batch, ActivationPrecision.Int8);
                pool.MaxDegreeOfParallelism = 2;
                q.MatMulTransposed(x, two, batch, ActivationPrecision.Int8);
            }
            finally { pool.MaxDegreeOfParallelism = saved; }
            Assert.Equal(one, two);

            // Batch row b alone (batch 1) and at the start of a shifted batch: the same bits as inside the batch of 40.
            foreach (int b in new[] { 0, 4, 5, 6, 20, 39 })
            {
                var single = new float[outF];
                q.MatMulTransposed(x.AsSpan(b * inF, inF), single, 1, ActivationPrecision.Int8);
                Assert.Equal(one.AsSpan(b * outF, outF).ToArray(), single);
            }
            var shifted = new float[(batch - 1) * outF];
            q.MatMulTransposed(x.AsSpan(inF), shifted, batch - 1, ActivationPrecision.Int8);
            Assert.Equal(one.AsSpan(outF).ToArray(), shifted);
        });
    }

    [Fact]
    public void The_dispatch_takes_8_bit_codes_from_batch_16_at_512_bits_only()
    {
        bool here = Vector512.IsHardwareAccelerated && Avx512BW.IsSupported;
        Assert.Equal(here, Int8Gemm.Applies(8, 64, 4096, 16, 512));
        Assert.Equal(here, Int8Gemm.Applies(8, 1, 4096, 128, 512));
        Assert.False(Int8Gemm.Applies(8, 64, 4096, 15, 512));
        // 4-bit codes only on the generated VNNI kernels (bytes in the quad panels).
        Assert.Equal(here && Int8Gemm.UsesVnni(64, 64), Int8Gemm.Applies(4, 64, 4096, 128, 512));
        Int8Gemm.ManagedOnlyOverride = true;
        try { Assert.False(Int8Gemm.Applies(4, 64, 4096, 128, 512)); }
        finally { Int8Gemm.ManagedOnlyOverride = false; }
        // 2- and 3-bit codes as 4-bit ones (expanded to bytes), but the dispatch takes them only while the weight is small.
        Assert.Equal(here && Int8Gemm.UsesVnni(64, 64), Int8Gemm.Applies(2, 64, 4096, 128, 512));
        Assert.False(GroupQuantizedWeight.GemmApplies(2, 64, 64, 4096, 128, 11008));
        Assert.Equal(here && Int8Gemm.UsesVnni(64, 6), GroupQuantizedWeight.GemmApplies(3, 64, 6, 384, 2, 1536));
        Assert.False(Int8Gemm.Applies(8, 64, 4096, 128, 256));
        Assert.False(Int8Gemm.Applies(8, 1, 70000, 128, 512)); // one group: int32 sums need In <= 65,536
    }

    [Fact]
    public unsafe void Panels_hold_codes_2kp_and_2kp_plus_1_of_row_64p_plus_o_at_byte_2_of_p_pairs_64_plus_kp_64_plus_o()
    {
        const int outF = 70, inF = 7, pairs = 4;
        var packed = new byte[outF * inF];
        for (int i = 0; i < packed.Length; i++) packed[i] = (byte)(i * 7 + 3);
        var panels = new byte[Int8Gemm.PanelBytes(outF, inF)];
        Assert.Equal(2 * pairs * 64 * 2, panels.Length);
        fixed (byte* src = packed)
        fixed (byte* dst = panels)
            Int8Gemm.BuildPanels(src, outF, inF, dst);
        for (int p = 0; p < 2; p++)
            for (int kp = 0; kp < pairs; kp++)
                for (int o = 0; o < 64; o++)
                {
                    int r = 64 * p + o, at = 2 * ((p * pairs + kp) * 64 + o);
                    Assert.Equal(r < outF ? packed[r * inF + 2 * kp] : 0, panels[at]);
                    Assert.Equal(r < outF && 2 * kp + 1 < inF ? packed[r * inF + 2 * kp + 1] : 0, panels[at + 1]);
                }
    }

    // The GEMM at every batch on this thread, at 512 bits; skipped where the machine (or DOTNET_Enable*) has no AVX-512BW.
    [Theory]
    [InlineData(4, 64, 384, 2)]    // rows the own-scale small-batch kernels cannot take (unpaired, 6 groups): from 2 rows
    [InlineData(4, 64, 1536, 2)]   // 24 groups: not whole 16-group chunks
    [InlineData(4, 64, 1024, 4)]   // 16 groups, paired: the own-scale small-batch kernels up to 3 rows
    [InlineData(8, 0, 384, 2)]     // 8-bit codes: from 2 rows
    public void Products_of_a_few_rows_take_the_vnni_gemm_from_2_or_4_rows_and_the_managed_one_from_16(int bits, int group, int inF, int vnniFirst)
    {
        // One MiniLM sentence gives every Linear layer 7-21 rows: where the generated VNNI kernels run they are
        // faster there than the batched kernels; the managed GEMM is not (its threshold stays 16). Since session 17
        // small weights take it from 2 rows unless the 4-bit own-scale small-batch kernels run them.
        if (Environment.GetEnvironmentVariable("CONDENSE_VNNI_GEMM_MIN_ROWS") is null)
            Assert.Equal(vnniFirst, GroupQuantizedWeight.SmallWeightGemmMinRows(bits, group == 0 ? inF : group, group == 0 ? 1 : inF / group, inF));
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(11, 64 * inF), 64, inF, new QuantizationScheme(bits, group, true));
        var x = QuantTestData.Gaussian(12, 16 * inF);
        KernelWidths.ForEach(width =>
        {
            if (width != 512 || !Avx512BW.IsSupported) return;
            int first = Int8Gemm.UsesVnni(group == 0 ? inF : group, group == 0 ? 1 : inF / group)
                ? GroupQuantizedWeight.SmallWeightGemmMinRows(bits, group == 0 ? inF : group, group == 0 ? 1 : inF / group, inF)
                : Int8Gemm.DefaultMinBatch;
            if (bits == 4 && first == Int8Gemm.DefaultMinBatch && !Int8Gemm.Applies(4, inF / group, inF, 16, width)) return; // 4-bit codes need VNNI
            Int8Reference.AssertMatches(q, x.AsSpan(0, (first - 1) * inF).ToArray(), first - 1, $"{bits}-bit, {first - 1} rows");
            Assert.False(q.HasGemmCopy);
            Int8Reference.AssertMatches(q, x.AsSpan(0, first * inF).ToArray(), first, $"{bits}-bit gemm, {first} rows");
            Assert.True(q.HasGemmCopy);
        });
    }

    // A layer too large for cache stays on the batched kernels below 16 rows, VNNI or not: there the GEMM's
    // byte-per-code copy doubles the bytes a 4-bit product reads.
    [Fact]
    public void A_large_weight_keeps_the_batched_kernel_below_16_rows()
    {
        int outF = 1088, inF = 4096; // 4.46 Mi codes: above the small-weight bound
        Assert.True((long)outF * inF > GroupQuantizedWeight.VnniGemmMaxSmallElements);
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(13, outF * inF), outF, inF, new QuantizationScheme(4, 64, true));
        var x = QuantTestData.Gaussian(14, 8 * inF);
        KernelWidths.ForEach(width =>
        {
            if (width != 512 || !Avx512BW.IsSupported) return;
            Int8Reference.AssertMatches(q, x, 8, "4-bit, 8 rows of a large weight");
            Assert.False(q.HasGemmCopy);
            Assert.False(GroupQuantizedWeight.GemmApplies(4, 64, inF / 64, inF, 15, outF));
            Assert.True(GroupQuantizedWeight.GemmApplies(4, 64, inF / 64, inF, 8, 512) == Int8Gemm.UsesVnni(64, inF / 64));
        });
    }

    // The GEMM path quantizes its activation rows on the pool's threads; a row with a NaN or an infinity anywhere in the
    // batch must still send the whole product to the float32 path, as the serial loop did, at 1 and 2 threads.
    [Theory]
    [InlineData(0, 0)]
    [InlineData(0, 37)]
    [InlineData(64, 21)]
    public void A_non_finite_activation_row_at_a_GEMM_batch_takes_the_float32_path(int group, int badRow)
    {
        const int outF = 70, inF = 2048, batch = 40; // 40 x 2,048 inputs: quantized on 2 threads
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(21, outF * inF), outF, inF, new QuantizationScheme(8, group, true));
        var x = QuantTestData.Gaussian(22, batch * inF);
        foreach (float bad in new[] { float.NaN, float.PositiveInfinity })
        {
            x[badRow * inF + 1000] = bad;
            var expected = new float[batch * outF];
            q.MatMulTransposed(x, expected, batch, ActivationPrecision.Float32);
            var pool = WorkerPool.Shared;
            int saved = pool.MaxDegreeOfParallelism;
            try
            {
                foreach (int threads in new[] { 1, 2 })
                {
                    pool.MaxDegreeOfParallelism = threads;
                    var y = new float[batch * outF];
                    q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
                    Assert.Equal(expected, y);
                }
            }
            finally { pool.MaxDegreeOfParallelism = saved; }
        }
    }

    private static void RunGemm(Action run) => KernelWidths.ForEach(width =>
    {
        if (width != 512) return;
        Int8Gemm.MinBatchOverride = 1;
        try { run(); }
        finally { Int8Gemm.MinBatchOverride = 0; }
    });
}
