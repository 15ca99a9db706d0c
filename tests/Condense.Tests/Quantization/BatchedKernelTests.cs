using Condense.Catalogue;
using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// The batched (batch >= 2) int8-activation kernels against an exact integer reference at every SIMD width the machine
/// has; at 512 bits the AVX-512 kernel is forced (never the 256-bit one), so its batch tiles of 2, 4 and 8, the rows
/// past the batch that alias its last row, row blocks, chunks of long rows and row ends read from a padded copy are
/// all covered.
/// </summary>
public class BatchedKernelTests
{
    public static TheoryData<int, int> Formats()
    {
        var data = new TheoryData<int, int>();
        foreach (int bits in new[] { 2, 3, 4, 8 })
            foreach (int group in new[] { 0, 16, 32, 64, 128, 256 })
                data.Add(bits, group);
        return data;
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_batch_from_2_to_17_matches_the_integer_reference(int bits, int group)
    {
        // In: an odd multiple of the group (the row ends inside a unit at most widths), or odd for one group per row;
        // Out: 21 rows, so the tiles past the first one run over row blocks of 16 and a partial block of 5.
        int inF = group switch { 0 => 1031, 16 => 272, 32 => 160, 64 => 448, 128 => 640, _ => 1280 };
        const int outF = 21;
        bool sym = (bits + group / 16) % 2 == 0;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(31 * bits + group), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + 5 * bits), 17 * inF);
        ForEachWidth(width =>
        {
            for (int batch = 2; batch <= 17; batch++)
                Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"width {width}");
        });
    }

    [Theory]
    [InlineData(4, 64, false, 8256, 8)]  // one tile over chunks of 4096 codes: scale permutes across chunk ends
    [InlineData(4, 64, true, 4160, 11)]  // two tiles (8 + 3 aliased rows), row blocks, two chunks
    [InlineData(4, 256, false, 8448, 9)] // groups of 2 units accumulated in integers across 3 chunks
    [InlineData(3, 128, true, 4224, 6)]  // a 3-bit group split between the row and its padded end, two chunks
    [InlineData(2, 0, false, 9001, 5)]   // one group per row accumulated across chunks
    [InlineData(8, 32, false, 4160, 16)] // 8 bits (sign trick), two full tiles
    public void Long_rows_match_the_integer_reference(int bits, int group, bool sym, int inF, int batch)
    {
        const int outF = 18;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(inF + bits), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(2 * inF + group), batch * inF);
        ForEachWidth(width => Int8Reference.AssertMatches(q, x, batch, $"width {width}"));
    }

    [Theory]
    [InlineData(64, 3)]  // 4-bit g64 takes the 512-code step from batch 3: tiles of 4 against tiles of 8
    [InlineData(32, 2)]  // tiles of 2 against tiles of 8
    public void Batch_rows_are_independent_of_the_tile_they_fall_in(int group, int small)
    {
        // The same input row gives bit-identical outputs whether it fills a small batch or is one row of a tile of 8
        // (a kernel mixing up tile rows, or the aliased rows past the batch, would break this).
        const int outF = 17, inF = 640, batch = 13;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(11, outF * inF), outF, inF, new QuantizationScheme(4, group, false));
        var x = QuantTestData.Gaussian(12, batch * inF);
        // 13 rows would take the VNNI GEMM where it runs (from 4 rows): keep them on the batched kernel this checks.
        using var knobs = KernelKnobs.Save();
        Int8Gemm.ManagedOnlyOverride = true;
        ForEachWidth(width => AssertRowsIndependent(q, x, outF, inF, batch, small));
    }

    private static void AssertRowsIndependent(GroupQuantizedWeight q, float[] x, int outF, int inF, int batch, int small)
    {
        var all = new float[batch * outF];
        q.MatMulTransposed(x, all, batch, ActivationPrecision.Int8);
        for (int b = 0; b < batch; b++)
        {
            var few = new float[small * outF];
            var xs = new float[small * inF];
            for (int k = 0; k < small; k++) x.AsSpan(b * inF, inF).CopyTo(xs.AsSpan(k * inF));
            q.MatMulTransposed(xs, few, small, ActivationPrecision.Int8);
            for (int k = 0; k < small; k++)
                Assert.Equal(all.AsSpan(b * outF, outF).ToArray(), few.AsSpan(k * outF, outF).ToArray());
        }
    }

    [Theory]
    [InlineData(128, 3, false)]  // 2 groups would be padded to 8
    [InlineData(768, 8, false)]  // 12 groups padded to 16: a third more work
    [InlineData(4096, 3, true)]  // 64 groups: no padding
    [InlineData(4160, 8, true)]  // 65 groups padded to 72: under 1/8
    [InlineData(4096, 2, false)] // batch 2 keeps the per-unit loop
    public void The_wide_4_bit_step_is_used_only_where_its_padding_is_small(int inF, int batch, bool wide)
    {
        Assert.Equal(wide, FusedInt8Dot.UsesWide4(4, 64, inF / 64, batch));
        Assert.False(FusedInt8Dot.UsesWide4(4, 32, inF / 32, batch));
        Assert.False(FusedInt8Dot.UsesWide4(8, 64, inF / 64, batch));
    }

    [Theory]
    [InlineData(128, 5)]
    [InlineData(768, 9)]
    public void Small_4_bit_g64_rows_at_larger_batches_match_the_integer_reference(int inF, int batch)
    {
        const int outF = 10;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(inF + 5), outF * inF), outF, inF, new QuantizationScheme(4, 64, false));
        var x = QuantTestData.Gaussian((ulong)(3 * inF), batch * inF);
        ForEachWidth(width => Int8Reference.AssertMatches(q, x, batch, $"width {width}"));
    }

    [Fact]
    public void The_wide_4_bit_layout_puts_code_64q_plus_16i_plus_2b_plus_p_at_128i_plus_64p_plus_8q_plus_b()
    {
        var q = new sbyte[1024];
        for (int i = 0; i < q.Length; i++) q[i] = (sbyte)(i % 251 - 125);
        var expected = (sbyte[])q.Clone();
        unsafe
        {
            fixed (sbyte* p = q) FusedInt8Dot.InterleaveWide4(p, q.Length);
        }
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < 4; i++)
                for (int p = 0; p < 2; p++)
                    for (int g = 0; g < 8; g++)
                        for (int b = 0; b < 8; b++)
                            Assert.Equal(expected[512 * s + 64 * g + 16 * i + 2 * b + p], q[512 * s + 128 * i + 64 * p + 8 * g + b]);
    }

    // Every width; at 512 bits the AVX-512 kernel, whatever the dispatch would pick.
    private static void ForEachWidth(Action<int> run) => KernelWidths.ForEach(width =>
    {
        if (width != 512) { run(width); return; }
        using var knobs = KernelKnobs.Save();
        Int8MatMul.Override256 = -1;
        run(width);
        // Small weights take the VNNI GEMM from 2 rows (every width of code since session 17) and 4- and 8-bit batches
        // of 2-15 the generated small-batch kernels elsewhere (VnniSmallBatch4Tests, VnniSmallBatch8Tests): run them
        // again on the managed AVX-512 kernels this class covers.
        if (!VnniSmallBatch4.IsAvailable && !VnniSmallBatch8.IsAvailable && !Int8Gemm.UsesVnni(64, 2)) return;
        VnniSmallBatch4.DisabledOverride = true;
        VnniSmallBatch8.DisabledOverride = true;
        Int8Gemm.ManagedOnlyOverride = true;
        try { run(width); }
        finally { Int8Gemm.ManagedOnlyOverride = false; }
    });
}
