using Condense.Catalogue;
using Condense.Kernels;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// The 256-bit fused int8-activation kernel (AVX-VNNI and AVX2 multiply routes) against an exact integer reference,
/// at every SIMD width the machine has, so the same cases also cover the AVX-512, 128-bit and scalar paths.
/// </summary>
public class FusedInt8Dot256Tests
{
    public static TheoryData<int, int, bool> Formats()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int bits in new[] { 2, 3, 4, 8 })
            foreach (int group in new[] { 0, 16, 32, 64, 128, 256 })
                foreach (bool sym in new[] { true, false })
                    data.Add(bits, group, sym);
        return data;
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_batch_from_1_to_17_matches_the_integer_reference_on_both_multiply_routes(int bits, int group, bool sym)
    {
        // In: an odd multiple of the group (a partial last unit at most widths), or an odd length for one group per row.
        int inF = group switch { 0 => bits == 3 ? 1031 : 333, 16 => 208, 32 => 224, 64 => 320, 128 => 384, _ => 768 };
        const int outF = 7;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * bits + group), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + bits), 17 * inF);
        ForEachRoute(route =>
        {
            for (int batch = 1; batch <= 17; batch++)
                Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, route);
        });
    }

    [Theory]
    [InlineData(8, 0, true, 4100, 9)]   // a per-row group across several chunks of the row, batch tiles 8 + 1
    [InlineData(2, 64, false, 2304, 12)] // 2-bit units of 128 codes over several chunks, tiles 8 + 4
    [InlineData(3, 16, false, 1040, 5)]  // 3-bit rows whose last load runs past the row end
    [InlineData(4, 256, true, 4096, 16)] // groups of 4 units (integer accumulation across units)
    [InlineData(4, 32, false, 4064, 3)]  // groups smaller than a unit: lane-wise scale permute
    public void Long_rows_match_the_integer_reference(int bits, int group, bool sym, int inF, int batch)
    {
        const int outF = 19;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(inF + group), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF * 3 + bits), batch * inF);
        ForEachRoute(route => Int8Reference.AssertMatches(q, x, batch, route));
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Below_8_bits_both_multiply_routes_give_the_same_bits(int bits)
    {
        // Both routes compute the same exact int32 lane sums and scale them alike, so the floats agree to the bit.
        if (!FusedInt8Dot256.IsSupported) return;
        const int outF = 9, inF = 640, batch = 6;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)bits, outF * inF), outF, inF, new QuantizationScheme(bits, 32, false));
        var x = QuantTestData.Gaussian(99, batch * inF);
        var vnni = new float[batch * outF];
        var avx2 = new float[batch * outF];
        WithWidth(256, () =>
        {
            q.MatMulTransposed(x, vnni, batch, ActivationPrecision.Int8);
            FusedInt8Dot256.AllowVnni = false;
            try { q.MatMulTransposed(x, avx2, batch, ActivationPrecision.Int8); }
            finally { FusedInt8Dot256.AllowVnni = true; }
        });
        Assert.Equal(vnni, avx2);
    }

    [Fact]
    public void The_3_bit_code_order_is_a_permutation_whose_int32_lanes_stay_inside_16_code_groups()
    {
        var order = FusedInt8Dot256.s_order3;
        Assert.Equal(Enumerable.Range(0, 32), order.Select(o => (int)o).Order());
        for (int lane = 0; lane < 8; lane++)
            Assert.Single(order.Skip(4 * lane).Take(4).Select(c => c / 16).Distinct());
    }

    [Fact]
    public void Interleaving_4_bit_activations_puts_even_codes_first_and_odd_codes_second_in_every_64_code_unit()
    {
        if (!FusedInt8Dot256.IsSupported) return;
        var q = new sbyte[128];
        for (int i = 0; i < q.Length; i++) q[i] = (sbyte)(i - 64);
        unsafe
        {
            fixed (sbyte* p = q) FusedInt8Dot256.Interleave(p, q.Length, 4, pairs: false);
        }
        for (int unit = 0; unit < 2; unit++)
            for (int j = 0; j < 32; j++)
            {
                Assert.Equal(64 * unit + 2 * j - 64, q[64 * unit + j]);
                Assert.Equal(64 * unit + 2 * j + 1 - 64, q[64 * unit + 32 + j]);
            }
    }

    private static void WithWidth(int width, Action run) => KernelWidths.ForEach(w => { if (w == width) run(); });

    // Runs at every width; at 256 bits once per multiply route the machine has; at 512 bits with both kernels
    // (the 256-bit one forced, and never), whatever the dispatch would pick.
    private static void ForEachRoute(Action<string> run) => KernelWidths.ForEach(width =>
    {
        if (width == 512)
        {
            try
            {
                foreach (int o in new[] { -1, 1 })
                {
                    Int8MatMul.Override256 = o;
                    run($"width 512, {(o > 0 ? "256-bit kernel" : "AVX-512 kernel")}");
                }
            }
            finally { Int8MatMul.Override256 = 0; }
            return;
        }
        run($"width {width}");
        if (width == 256 && FusedInt8Dot256.UsesVnni)
        {
            FusedInt8Dot256.AllowVnni = false;
            try { run($"width {width} without VNNI"); }
            finally { FusedInt8Dot256.AllowVnni = true; }
        }
    });

    [Fact]
    public void Avx512_machines_run_the_256_bit_kernel_only_for_one_unit_groups_at_8_bits_from_batch_2()
    {
        if (!FusedInt8Dot256.UsesVnni) return;
        Assert.True(Int8MatMul.Prefers256(8, 32, 4, 16));
        Assert.True(Int8MatMul.Prefers256(8, 32, 4, 2));
        Assert.False(Int8MatMul.Prefers256(8, 32, 4, 1));
        Assert.False(Int8MatMul.Prefers256(4, 64, 4, 2));
        Assert.False(Int8MatMul.Prefers256(4, 64, 4, 1));
        Assert.False(Int8MatMul.Prefers256(4, 64, 4, 4));
        Assert.False(Int8MatMul.Prefers256(4, 128, 4, 1));
        Assert.False(Int8MatMul.Prefers256(2, 128, 4, 1));
        Assert.False(Int8MatMul.Prefers256(8, 32, 1, 1)); // one group per row: no pairs
    }
}
