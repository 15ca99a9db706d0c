using Condense.Catalogue;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

public class GroupQuantizedWeightTests
{
    private static readonly (int Out, int In)[] Shapes = [(1, 16), (3, 48), (7, 64), (5, 100), (13, 256)];

    /// <summary>Every bits x {per-row, 16, 32, 64} x {sym, asym} x shape the group size divides x {gaussian, uniform}.</summary>
    public static TheoryData<int, int, bool, int, int, bool> AllSchemes()
    {
        var data = new TheoryData<int, int, bool, int, int, bool>();
        foreach (int bits in KernelCatalogue.SupportedBits)
            foreach (int group in new[] { 0, 16, 32, 64 })
                foreach (bool sym in new[] { true, false })
                    foreach (var (o, i) in Shapes)
                        if (group == 0 || i % group == 0)
                            foreach (bool gaussian in new[] { true, false })
                                data.Add(bits, group, sym, o, i, gaussian);
        return data;
    }

    private static float[] Data(int bits, int group, bool sym, int o, int i, bool gaussian)
    {
        ulong seed = (ulong)(bits * 1_000_003 + group * 1009 + (sym ? 1 : 0) * 17 + o * 31 + i);
        // Uniform data shifted off-center so asymmetric grids see a non-trivial zero point.
        return gaussian ? QuantTestData.Gaussian(seed, o * i, 0.05f) : QuantTestData.Uniform(seed, o * i, -0.3f, 1.7f);
    }

    /// <summary>
    /// The documented min/max scale (independent re-derivation): the smallest float16 magnitude &gt;= absmax / 2^(b-1)
    /// (symmetric; negative when the largest-magnitude weight is positive, so it lands on level -2^(b-1)) or
    /// &gt;= (hi - lo) / (2^b - 1) (asymmetric).
    /// </summary>
    private static Half ExpectedScale(ReadOnlySpan<float> group, int bits, bool sym)
    {
        double exact;
        bool negative = false;
        if (sym)
        {
            double lo = 0, hi = 0;
            foreach (float w in group) { lo = Math.Min(lo, w); hi = Math.Max(hi, w); }
            exact = Math.Max(hi, -lo) / (1 << (bits - 1));
            negative = hi > -lo;
        }
        else
        {
            double lo = 0, hi = 0;
            foreach (float w in group) { lo = Math.Min(lo, w); hi = Math.Max(hi, w); }
            exact = (hi - lo) / ((1 << bits) - 1);
        }
        var h = (Half)exact;
        h = (double)h < exact ? Half.BitIncrement(h) : h;
        return negative ? -h : h;
    }

    private static int ExpectedZeroPoint(ReadOnlySpan<float> group, int bits, float scale)
    {
        double lo = 0;
        foreach (float w in group) lo = Math.Min(lo, w);
        return scale == 0 ? 0 : (int)Math.Clamp(Math.Round(-lo / scale), 0, (1 << bits) - 1);
    }

    /// <summary>The documented level: clamp(round_half_even(w * (1 / s)) + z, 0, 2^b - 1), 1 / s in float32.</summary>
    private static int ExpectedLevel(float w, float s, int zero, int bits) =>
        s == 0 ? zero : (int)Math.Clamp(MathF.Round(w * (1f / s)) + zero, 0, (1 << bits) - 1);

    [Theory]
    [MemberData(nameof(AllSchemes))]
    public void Min_max_rounding_has_the_documented_scale_zero_and_level_and_half_a_step_of_error(int bits, int group, bool sym, int o, int i, bool gaussian)
    {
        var w = Data(bits, group, sym, o, i, gaussian);
        var q = GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(bits, group, sym), QuantizationRounding.MinMax);
        var deq = new float[o * i];
        q.Dequantize(deq);

        int g = group == 0 ? i : group;
        int groupsPerRow = i / g;
        int rowBytes = (int)KernelCatalogue.PackedRowBytes(i, bits);
        int maxLevel = (1 << bits) - 1;
        Assert.Equal(o * groupsPerRow, q.Scales.Length);
        for (int r = 0; r < o; r++)
            for (int k = 0; k < groupsPerRow; k++)
            {
                int index = r * groupsPerRow + k;
                var span = w.AsSpan(r * i + k * g, g);
                Assert.Equal(ExpectedScale(span, bits, sym), q.Scales[index]);
                float s = (float)q.Scales[index];
                int zero = sym ? 1 << (bits - 1) : ExpectedZeroPoint(span, bits, s);
                if (!sym) Assert.Equal(zero, q.ZeroPoints![index]);
                var packedRow = q.Packed.AsSpan(r * rowBytes, rowBytes);
                for (int c = 0; c < g; c++)
                {
                    int at = r * i + k * g + c;
                    int level = ExpectedLevel(w[at], s, zero, bits);
                    Assert.Equal(level, PackedBits.ReadLevel(packedRow, k * g + c, bits));
                    float err = Math.Abs(w[at] - deq[at]);
                    // |s|/2, plus float32 rounding of w / s and of s * (q - z). The one exception: a symmetric weight
                    // opposite the extreme (on level 2^(b-1) - 1, the top code) may be up to a whole step away.
                    float step = Math.Abs(s) * (sym && level == maxLevel ? 1f : 0.5f);
                    float bound = step + 2e-7f * Math.Abs(w[at]) + 1e-30f;
                    Assert.True(err <= bound, $"row {r} col {k * g + c}: |{w[at]} - {deq[at]}| = {err} > {bound}");
                }
            }
    }

    /// <summary>The default MSE clip search never has a larger squared error than min/max, group by group.</summary>
    [Theory]
    [MemberData(nameof(AllSchemes))]
    public void Mse_clip_rounding_is_never_worse_than_min_max_on_any_group(int bits, int group, bool sym, int o, int i, bool gaussian)
    {
        var w = Data(bits, group, sym, o, i, gaussian);
        var scheme = new QuantizationScheme(bits, group, sym);
        var minMax = new float[w.Length];
        var clip = new float[w.Length];
        GroupQuantizedWeight.Quantize(w, o, i, scheme, QuantizationRounding.MinMax).Dequantize(minMax);
        GroupQuantizedWeight.Quantize(w, o, i, scheme).Dequantize(clip);
        int g = group == 0 ? i : group;
        for (int start = 0; start < w.Length; start += g)
        {
            double a = 0, b = 0, norm = 0;
            for (int c = start; c < start + g; c++)
            {
                a += ((double)w[c] - minMax[c]) * (w[c] - minMax[c]);
                b += ((double)w[c] - clip[c]) * (w[c] - clip[c]);
                norm += (double)w[c] * w[c];
            }
            // The search compares float32 sums: allow their rounding (a few ulps of the group's energy).
            Assert.True(b <= a + 1e-6 * norm + 1e-30, $"group at {start}: clip error {b} > min/max error {a}");
        }
    }

    /// <summary>
    /// Weights already on the grid (each group containing its extreme levels, so the scale is recovered exactly)
    /// round-trip bit for bit, and the packed bits hold exactly the chosen levels.
    /// </summary>
    [Theory]
    [MemberData(nameof(AllSchemes))]
    public void Values_on_the_grid_round_trip_exactly_and_pack_to_the_chosen_levels(int bits, int group, bool sym, int o, int i, bool gaussian)
    {
        _ = gaussian;
        int g = group == 0 ? i : group;
        int maxLevel = (1 << bits) - 1, half = 1 << (bits - 1);
        ulong state = (ulong)(bits * 7919 + group * 13 + o * i + (sym ? 5 : 0));
        var levels = new int[o * i];
        var scales = new Half[o * (i / g)];
        var zeros = new int[scales.Length];
        var w = new float[o * i];
        for (int grp = 0; grp < scales.Length; grp++)
        {
            // Scales span float16 normals, including small ones near the subnormal edge.
            scales[grp] = (Half)(Math.Pow(2, -14 + QuantTestData.NextInt(ref state, 20)) * (1 + QuantTestData.NextInt(ref state, 1024) / 1024.0));
            // Symmetric scales of either sign: a negative one puts a positive extreme on level 0 (-2^(b-1)).
            if (sym && QuantTestData.NextInt(ref state, 2) == 1) scales[grp] = -scales[grp];
            zeros[grp] = sym ? half : QuantTestData.NextInt(ref state, maxLevel + 1);
            int first = grp * g;
            for (int c = 0; c < g; c++)
                levels[first + c] = QuantTestData.NextInt(ref state, maxLevel + 1);
            // Pin the extremes so the group's range (and so its scale) is exactly the chosen one: symmetric, level 0
            // (-2^(b-1)) is the unique largest magnitude.
            levels[first] = 0;
            if (!sym) levels[first + g - 1] = maxLevel;
            if (!sym) levels[first + g / 2] = zeros[grp]; // a true zero: the range includes 0 already
            for (int c = 0; c < g; c++) w[first + c] = (float)scales[grp] * (levels[first + c] - zeros[grp]);
        }

        var q = GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(bits, group, sym));
        Assert.Equal(scales, q.Scales);
        var deq = new float[o * i];
        q.Dequantize(deq);
        Assert.Equal(w, deq);

        int rowBytes = (int)KernelCatalogue.PackedRowBytes(i, bits);
        for (int r = 0; r < o; r++)
        {
            var row = q.Packed.AsSpan(r * rowBytes, rowBytes);
            for (int c = 0; c < i; c++)
                Assert.Equal(levels[r * i + c], PackedBits.ReadLevel(row, c, bits));
        }
        if (!sym) Assert.Equal(zeros, q.ZeroPoints!.Select(z => (int)z));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    [InlineData(7)]
    [InlineData(9)]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(101)]
    public void Three_bit_rows_of_odd_length_pack_byte_aligned_with_zero_padding(int inFeatures)
    {
        const int rows = 3;
        var w = QuantTestData.Gaussian((ulong)inFeatures, rows * inFeatures);
        foreach (bool sym in new[] { true, false })
        {
            var q = GroupQuantizedWeight.Quantize<Bits3>(w, rows, inFeatures, 0, sym);
            int rowBytes = (inFeatures * 3 + 7) / 8;
            Assert.Equal(rows * rowBytes, q.Packed.Length);
            int usedBits = inFeatures * 3;
            for (int r = 0; r < rows; r++)
            {
                var row = q.Packed.AsSpan(r * rowBytes, rowBytes);
                for (int bit = usedBits; bit < rowBytes * 8; bit++)
                    Assert.Equal(0, (row[bit >> 3] >> (bit & 7)) & 1);
                // Decoding each level with the slow bit-by-bit reader gives what Dequantize gives.
                var deq = new float[rows * inFeatures];
                q.Dequantize(deq);
                int zero = sym ? 4 : q.ZeroPoints![r];
                float s = (float)q.Scales[r];
                for (int c = 0; c < inFeatures; c++)
                    Assert.Equal((PackedBits.ReadLevel(row, c, 3) - zero) * s, deq[r * inFeatures + c]);
            }
        }
    }

    /// <summary>
    /// The worked example of docs/format.md: weights 0.5, -0.5, 2, 0, 1 at 3 bits symmetric: the positive extreme 2
    /// takes level -4 with the negative scale -0.5, and the codes 3, 5, 0, 4, 2 pack to 0x2B 0x28.
    /// </summary>
    [Fact]
    public void Three_bit_worked_example_from_the_format_doc()
    {
        float[] w = [0.5f, -0.5f, 2f, 0f, 1f];
        foreach (var rounding in new[] { QuantizationRounding.MinMax, QuantizationRounding.MseClip })
        {
            var q = GroupQuantizedWeight.Quantize<Bits3>(w, 1, 5, 0, true, rounding);
            Assert.Equal([(Half)(-0.5f)], q.Scales); // -(absmax 2 / 2^2); exact, so the search keeps it
            Assert.Equal([0x2B, 0x28], q.Packed); // codes c + 4 = 3, 5, 0, 4, 2 as a 15-bit stream + 1 zero padding bit
        }

        var rebuilt = GroupQuantizedWeight.FromParts(1, 5, new QuantizationScheme(3, 0, true), [0x2B, 0x28], [(Half)(-0.5f)], null);
        var deq = new float[5];
        rebuilt.Dequantize(deq);
        Assert.Equal(w, deq);
    }

    /// <summary>A file written before the full grid (codes 1..2^b - 1, positive scales) decodes unchanged: 0xDD 0x69 of format 1.</summary>
    [Fact]
    public void Codes_of_the_previous_symmetric_grid_decode_unchanged()
    {
        var rebuilt = GroupQuantizedWeight.FromParts(1, 5, new QuantizationScheme(3, 0, true), [0xDD, 0x69], [(Half)0.5f], null);
        var deq = new float[5];
        rebuilt.Dequantize(deq);
        Assert.Equal([0.5f, -0.5f, 1.5f, 0f, 1f], deq);
    }

    /// <summary>The asymmetric worked example of docs/format.md (min/max rounding): the float16 scale is rounded up, not to nearest.</summary>
    [Fact]
    public void Four_bit_asymmetric_worked_example_from_the_format_doc()
    {
        var q = GroupQuantizedWeight.Quantize<Bits4>([-0.5f, 0.25f, 1.0f, 2.5f], 1, 4, 0, false, QuantizationRounding.MinMax);
        Assert.Equal((ushort)0x3267, BitConverter.HalfToUInt16Bits(q.Scales[0]));
        Assert.True((double)q.Scales[0] > 0.2 && (double)BitConverter.UInt16BitsToHalf(0x3266) < 0.2);
        Assert.Equal([2], q.ZeroPoints!);
        Assert.Equal([0x30, 0xE7], q.Packed);
    }

    [Fact]
    public void Zero_is_exact_and_an_all_zero_group_has_scale_zero()
    {
        var w = QuantTestData.Uniform(3, 2 * 64, 0.5f, 2f); // strictly positive: the range must be extended to 0
        w[5] = 0f;
        w.AsSpan(64 + 16, 16).Clear(); // row 1, group 1 all zero
        foreach (int bits in KernelCatalogue.SupportedBits)
            foreach (bool sym in new[] { true, false })
            {
                var q = GroupQuantizedWeight.Quantize(w, 2, 64, new QuantizationScheme(bits, 16, sym));
                var deq = new float[w.Length];
                q.Dequantize(deq);
                Assert.Equal(0f, deq[5]);
                Assert.Equal(Half.Zero, q.Scales[4 + 1]);
                Assert.All(deq.AsSpan(64 + 16, 16).ToArray(), v => Assert.Equal(0f, v));
            }
    }

    [Fact]
    public void Tiny_groups_keep_the_bound_with_a_subnormal_scale()
    {
        var w = QuantTestData.Gaussian(11, 32, 1e-9f);
        var q = GroupQuantizedWeight.Quantize<Bits4>(w, 1, 32, 16, true, QuantizationRounding.MinMax);
        var deq = new float[32];
        q.Dequantize(deq);
        for (int k = 0; k < 2; k++)
        {
            float s = Math.Abs((float)q.Scales[k]);
            Assert.True(s > 0f, "a non-zero group needs a non-zero scale");
            // Half a step, or a whole one for the top code opposite the extreme.
            for (int c = 0; c < 16; c++) Assert.True(Math.Abs(w[k * 16 + c] - deq[k * 16 + c]) <= s);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    public void MatMulTransposed_matches_dequantize_then_naive_matmul(int batch)
    {
        foreach (var (bits, group, sym, o, i) in new[] { (4, 16, true, 7, 64), (3, 0, false, 5, 100), (2, 32, false, 13, 256), (8, 64, true, 3, 128), (4, 64, false, 300, 1024) })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(o + i), o * i), o, i, new QuantizationScheme(bits, group, sym));
            var x = QuantTestData.Gaussian((ulong)(batch * 77 + i), batch * i);
            var deq = new float[o * i];
            q.Dequantize(deq);
            var y = new float[batch * o];
            y.AsSpan().Fill(float.NaN); // y is overwritten, not accumulated into
            q.MatMulTransposed(x, y, batch, Condense.Kernels.ActivationPrecision.Float32);
            for (int b = 0; b < batch; b++)
                for (int r = 0; r < o; r++)
                {
                    double expected = 0, magnitude = 0;
                    for (int c = 0; c < i; c++)
                    {
                        expected += (double)x[b * i + c] * deq[r * i + c];
                        magnitude += Math.Abs((double)x[b * i + c] * deq[r * i + c]);
                    }
                    Assert.True(Math.Abs(y[b * o + r] - expected) <= 1e-5 * magnitude + 1e-30,
                        $"int{bits} g{group} batch {b} row {r}: {y[b * o + r]} vs {expected}");
                }
        }
    }

    [Fact]
    public void Quantization_is_deterministic_and_independent_of_row_blocking()
    {
        const int o = 300, i = 1024; // large enough for the parallel row-block path
        var w = QuantTestData.Gaussian(5, o * i);
        var scheme = new QuantizationScheme(3, 64, false);
        var a = GroupQuantizedWeight.Quantize(w, o, i, scheme);
        var b = GroupQuantizedWeight.Quantize(w, o, i, scheme);
        Assert.Equal(a.Packed, b.Packed);
        Assert.Equal(a.Scales, b.Scales);
        Assert.Equal(a.ZeroPoints, b.ZeroPoints);

        int rowBytes = (int)KernelCatalogue.PackedRowBytes(i, 3);
        foreach (int r in new[] { 0, 1, 150, 299 })
        {
            var single = GroupQuantizedWeight.Quantize(w.AsSpan(r * i, i), 1, i, scheme);
            Assert.Equal(single.Packed, a.Packed.AsSpan(r * rowBytes, rowBytes).ToArray());
            Assert.Equal(single.Scales, a.Scales.AsSpan(r * 16, 16).ToArray());
        }
    }

    private static double RelativeError(int bits, int group, bool sym, float[] w, int o, int i)
    {
        var q = GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(bits, group, sym));
        var deq = new float[w.Length];
        q.Dequantize(deq);
        double num = 0, den = 0;
        for (int k = 0; k < w.Length; k++)
        {
            num += (double)(w[k] - deq[k]) * (w[k] - deq[k]);
            den += (double)w[k] * w[k];
        }
        return Math.Sqrt(num / den);
    }

    [Fact]
    public void Int8_error_on_gaussian_weights_is_below_one_percent()
    {
        var w = QuantTestData.Gaussian(21, 64 * 512, 0.02f);
        Assert.True(RelativeError(8, 0, true, w, 64, 512) < 0.01);
        Assert.True(RelativeError(8, 0, false, w, 64, 512) < 0.01);
    }

    [Fact]
    public void Smaller_groups_quantize_gaussian_weights_more_accurately()
    {
        var w = QuantTestData.Gaussian(22, 64 * 1024, 0.02f);
        foreach (bool sym in new[] { true, false })
        {
            double perRow = RelativeError(4, 0, sym, w, 64, 1024);
            double g128 = RelativeError(4, 128, sym, w, 64, 1024);
            double g32 = RelativeError(4, 32, sym, w, 64, 1024);
            Assert.True(g32 < g128 && g128 < perRow, $"sym={sym}: g32 {g32}, g128 {g128}, per-row {perRow}");
        }
    }

    [Theory]
    [InlineData(4, 64, true, "int4-g64-sym")]
    [InlineData(8, 0, false, "int8-row-asym")]
    [InlineData(3, 16, false, "int3-g16-asym")]
    [InlineData(2, 256, true, "int2-g256-sym")]
    public void Format_names_bits_group_and_grid(int bits, int group, bool sym, string expected)
    {
        var q = GroupQuantizedWeight.Quantize(new float[2 * 256], 2, 256, new QuantizationScheme(bits, group, sym));
        Assert.Equal(expected, q.Format);
        Assert.Equal(new QuantizationScheme(bits, group, sym), q.Scheme);
        Assert.Equal((2, 256), (q.OutFeatures, q.InFeatures));
    }

    [Fact]
    public unsafe void Large_packed_codes_are_backed_by_huge_pages_and_keep_their_products()
    {
        // Batch-1 products stream the codes from memory; on this VM 2 MiB pages read them 1.2-1.5x faster per core
        // (docs/benchmarks.md, "What governs the DRAM read rate"). Only the fp32 weight was advised before.
        if (!Condense.Tests.Kernels.Smaps.TransparentHugePagesAvailable) return; // the advice is a no-op by design
        // Can this kernel collapse a touched array at all (Linux >= 6.1, a free 2 MiB page)? If not, only values matter.
        var probe = new byte[16 << 20];
        Array.Fill(probe, (byte)1);
        bool canCollapse = Condense.Kernels.HugePages.Advise(probe);

        int outF = 2048, inF = 4096; // 8 MiB of 8-bit codes: at least 3 whole 2 MiB pages whatever the alignment
        var rng = new Condense.Rng(5);
        var packed = new byte[outF * inF];
        for (int k = 0; k < packed.Length; k++) packed[k] = (byte)rng.NextUInt64();
        var scales = new Half[outF * (inF / 128)];
        for (int k = 0; k < scales.Length; k++) scales[k] = (Half)(0.001f * (1 + k % 7));
        var codes = (byte[])packed.Clone();
        var x = new float[inF];
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();

        var weight = GroupQuantizedWeight.FromParts(outF, inF, new QuantizationScheme(8, 128, true), packed, scales, null);
        Assert.Equal(codes, packed);
        var y = new float[outF];
        weight.MatMulTransposed(x, y, 1, Condense.Kernels.ActivationPrecision.Float32);
        // The product is the decoded codes' (advice never changes contents): spot-check rows against a float64 sum.
        foreach (int row in new[] { 0, 1, outF / 2, outF - 1 })
        {
            double expected = 0;
            for (int i = 0; i < inF; i++) expected += (double)(float)scales[row * (inF / 128) + i / 128] * (codes[(long)row * inF + i] - 128) * x[i];
            Assert.True(Math.Abs(y[row] - expected) <= 1e-3 * (1 + Math.Abs(expected)), $"row {row}: {y[row]} vs {expected}");
        }
        if (!canCollapse) return;
        long address;
        fixed (byte* p = packed) address = (long)p + packed.Length / 2;
        long hugeKiB = Condense.Tests.Kernels.Smaps.AnonHugePagesKiB(address);
        // The kernel may have run out of free 2 MiB pages since the probe (other processes, fragmentation): a second
        // probe tells that apart from FromParts not advising the codes.
        if (hugeKiB < 2048 && (Condense.Tests.Kernels.Smaps.AdvisedWithoutCollapse(address) || !Condense.Tests.Kernels.Smaps.CanCollapse())) return;
        Assert.True(hugeKiB >= 2048, $"the 8 MiB int8 code array's mapping has no huge page after FromParts (smaps AnonHugePages {hugeKiB} KiB), while a fresh 16 MiB array collapses");
    }
}
