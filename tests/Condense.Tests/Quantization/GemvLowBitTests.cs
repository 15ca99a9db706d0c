using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// Batch 1 with 2- and 3-bit codes: the emitted AVX512-VNNI loop (VnniGemvLowBit) against the managed loop (same bits,
/// at 1 and 2 threads) and the exact integer reference, over odd shapes: In not a multiple of a unit (the last row's
/// reads pass the end of the codes), Out not a multiple of the 16-row block, every group size the kernel takes
/// (one group per unit, 2 to 16 per unit), with and without zero points; and the raw kernel, with and without GFNI.
/// </summary>
public class GemvLowBitTests
{
    public static TheoryData<int, int, bool, int, int> Shapes()
    {
        var data = new TheoryData<int, int, bool, int, int>();
        // bits, group, symmetric, Out, In
        data.Add(2, 64, false, 37, 4096);   // S2's format: 4 groups per 256-code unit; 2 blocks of 16 rows and 5
        data.Add(2, 64, true, 5, 320);      // 1.25 units: the last unit reads past every row's end
        data.Add(2, 32, false, 19, 1056);   // 8 groups per unit (2 units per 16-scale block), 4.125 units
        data.Add(2, 128, false, 7, 1408);   // 2 groups per unit (8 units per block), 5.5 units
        data.Add(2, 16, true, 3, 784);      // 16 groups per unit (the block is the unit's scales)
        data.Add(2, 256, false, 9, 2560);   // one group per unit: 2 chunks of 4 and 2 more
        data.Add(3, 128, false, 17, 4096);  // 48-byte units, 64-byte loads: every row's last load passes its end
        data.Add(3, 128, true, 5, 1152);    // 9 units
        data.Add(3, 64, false, 11, 960);    // 2 groups per unit, 7.5 units
        data.Add(3, 32, true, 6, 224);      // 4 groups per unit, 1.75 units
        data.Add(3, 16, false, 4, 1040);    // 8 groups per unit
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Batch_1_is_bit_identical_with_and_without_the_generated_loop_at_1_and_2_threads(int bits, int group, bool sym, int outF, int inF)
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(31 * bits + group + outF), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + 5 * outF), inF);
        int groupsPerRow = inF / group;
        if (VnniGemvLowBit.IsSupported && (bits == 2 || System.Runtime.Intrinsics.X86.Avx512Vbmi.IsSupported))
            Assert.NotEqual(0, VnniGemvLowBit.Prepare(bits, 1, group, groupsPerRow, inF, (inF * bits + 7) / 8, (groupsPerRow + 15) & ~15, 512));
        var results = new List<(string Route, float[] Y)>();
        using var knobs = KernelKnobs.Save();
        int savedThreads = WorkerPool.Shared.MaxDegreeOfParallelism;
        KernelWidths.ForEach(width =>
        {
            foreach (bool generated in new[] { true, false })
            {
                VnniGemvLowBit.Enabled = generated;
                Int8Reference.AssertMatches(q, x, 1, $"width {width}, generated loop {(generated ? "allowed" : "off")}");
                if (width != 512) continue;
                foreach (int threads in new[] { 1, 2 })
                {
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    var y = new float[outF];
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                    results.Add(($"generated {(generated ? "allowed" : "off")}, {threads} threads", y));
                }
                WorkerPool.Shared.MaxDegreeOfParallelism = savedThreads;
            }
        });
        // Both compute the same exact integer lane sums and the same float operations in the same order.
        for (int i = 1; i < results.Count; i++)
            for (int r = 0; r < outF; r++)
                Assert.True(BitConverter.SingleToInt32Bits(results[0].Y[r]) == BitConverter.SingleToInt32Bits(results[i].Y[r]),
                    $"int{bits} g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}: {results[0].Route} gives {results[0].Y[r]:R}, {results[i].Route} {results[i].Y[r]:R}");
    }

    [Fact]
    public void The_generated_loop_takes_groups_of_one_unit_or_a_unit_split_in_2_to_16()
    {
        if (!VnniGemvLowBit.IsSupported) return; // no AVX512-VNNI here (or AVX-512 or generated code off)
        Assert.True(VnniGemvLowBit.Applies(2, 1, 64, 64, 4096, 512));
        Assert.True(VnniGemvLowBit.Applies(2, 1, 256, 16, 4096, 512));
        Assert.True(VnniGemvLowBit.Applies(2, 1, 16, 256, 4096, 512));
        Assert.False(VnniGemvLowBit.Applies(2, 1, 512, 8, 4096, 512));   // 2 units per group: the managed loop
        Assert.False(VnniGemvLowBit.Applies(2, 1, 4096, 1, 4096, 512));  // per row: the managed loop
        Assert.False(VnniGemvLowBit.Applies(2, 1, 8, 512, 4096, 512));   // 32 groups per unit: past a lane
        Assert.False(VnniGemvLowBit.Applies(2, 2, 64, 64, 4096, 512));   // batches take the tiled loops
        Assert.False(VnniGemvLowBit.Applies(2, 1, 64, 64, 4096, 256));
        Assert.False(VnniGemvLowBit.Applies(4, 1, 64, 64, 4096, 512));   // 4 and 8 bits: VnniGemv or the managed loop
        if (System.Runtime.Intrinsics.X86.Avx512Vbmi.IsSupported)
        {
            Assert.True(VnniGemvLowBit.Applies(3, 1, 128, 32, 4096, 512));
            Assert.True(VnniGemvLowBit.Applies(3, 1, 32, 128, 4096, 512));
            Assert.False(VnniGemvLowBit.Applies(3, 1, 256, 16, 4096, 512));
        }
        var g64 = VnniGemvLowBit.LayoutFor(2, 64, 5, 320, 80, 16)!.Value;
        Assert.Equal((VnniGemvLowBit.Plan.Permuted, 2, 4, 16, 4), (g64.Plan, g64.Units, g64.GroupsPerUnit, g64.ScaleCount, g64.Chunk));
        var g128 = VnniGemvLowBit.LayoutFor(2, 128, 11, 1408, 352, 16)!.Value;
        Assert.Equal((6, 16, 8), (g128.Units, g128.ScaleCount, g128.Chunk));
        var t128 = VnniGemvLowBit.LayoutFor(3, 128, 9, 1152, 432, 16)!.Value;
        Assert.Equal((VnniGemvLowBit.Plan.UnitFma, 9, 9, 48), (t128.Plan, t128.Units, t128.ScaleCount, t128.UnitBytes));
        using var knobs = KernelKnobs.Save();
        KernelOptions.GeneratedCode = false; // CONDENSE_NO_JIT=1 or the option: the managed loop runs
        Assert.Equal(0, VnniGemvLowBit.Prepare(2, 1, 64, 64, 4096, 1024, 64, 512));
    }

    [Theory]
    [InlineData(2, 64, 6)]   // 4 groups per unit: one 4-unit chunk and 2 more
    [InlineData(2, 128, 9)]  // 2 groups per unit: one 8-unit chunk (one 16-scale block) and 1 more
    [InlineData(2, 16, 5)]   // 16 groups per unit
    [InlineData(3, 128, 7)]  // one group per unit: one chunk and 3 more
    [InlineData(3, 32, 6)]   // 4 groups per unit
    public unsafe void The_emitted_loop_sums_codes_times_interleaved_inputs_per_lane_with_and_without_GFNI(int bits, int group, int units)
    {
        if (!VnniGemvLowBit.IsSupported || (bits == 3 && !System.Runtime.Intrinsics.X86.Avx512Vbmi.IsSupported)) return;
        int unitCodes = bits == 2 ? 256 : 128, unitBytes = bits == 2 ? 64 : 48, perUnit = unitCodes / group, laneCodes = unitCodes / 16;
        const int rows = 3;
        int rowBytes = unitBytes * units + 64; // room for the last unit's 64-byte load
        var rng = new Random(bits * 100 + group);
        var w = new byte[rows * rowBytes];
        var xs = new sbyte[unitCodes * units];
        rng.NextBytes(w);
        for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
        var layout = VnniGemvLowBit.LayoutFor(bits, group, units * unitCodes / group, units * unitCodes, rowBytes, 16)!.Value;
        int scaleStride = layout.ScaleStride;
        var scales = new float[rows * scaleStride];
        for (int i = 0; i < scales.Length; i++) scales[i] = (1 + rng.Next(2)) * (rng.Next(2) * 2 - 1);
        var outputs = new List<float[]>();
        foreach (bool gfni in new[] { true, false })
        {
            var kernel = VnniGemvLowBit.Kernel(layout with { Gfni = gfni });
            Assert.True(kernel != null);
            var lanes = new float[rows * 64];
            fixed (byte* pw = w)
            fixed (sbyte* px = xs)
            fixed (float* ps = scales)
            fixed (float* pl = lanes)
                kernel(pw, px, ps, pl, VnniGemvLowBit.Constants, rows);
            outputs.Add(lanes);
        }
        for (int k = 0; k < rows; k++)
        {
            var expected = new double[64];
            for (int u = 0; u < units; u++)
                for (int lane = 0; lane < 16; lane++)
                {
                    long sum = 0;
                    for (int c = laneCodes * lane; c < laneCodes * (lane + 1); c++)
                    {
                        // Code c of the unit: bits [bits c, bits (c + 1)) of its stored bytes; its input sits where
                        // FusedInt8Dot.Interleave puts it (part p = c mod P holds codes P j + p at 64 p + j).
                        int bit = bits * c, at = k * rowBytes + unitBytes * u + bit / 8;
                        int code = ((w[at] | (at + 1 < w.Length ? w[at + 1] : 0) << 8) >> (bit % 8)) & ((1 << bits) - 1);
                        int parts = bits == 2 ? 4 : 2;
                        sum += code * (long)xs[unitCodes * u + 64 * (c % parts) + c / parts];
                    }
                    float scale = layout.Plan == VnniGemvLowBit.Plan.UnitFma ? scales[k * scaleStride + u] : scales[k * scaleStride + u * perUnit + lane * perUnit / 16];
                    expected[16 * (u & 3) + lane] += scale * (double)sum;
                }
            // Integer sums below 2^17 and scales of +-1, +-2: every float step is exact.
            for (int i = 0; i < 64; i++)
            {
                Assert.Equal(expected[i], outputs[0][64 * k + i]);
                Assert.Equal(expected[i], outputs[1][64 * k + i]);
            }
        }
    }
}
