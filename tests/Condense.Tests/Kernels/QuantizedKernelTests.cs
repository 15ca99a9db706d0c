using Condense.Catalogue;
using Condense.Kernels;
using Condense.Quantization;
using Condense.Tests.Quantization;

namespace Condense.Tests.Kernels;

public unsafe class QuantizedKernelTests
{
    private static readonly int[] Bits = [2, 3, 4, 8];

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(100)]
    [InlineData(784)]
    [InlineData(1031)]
    public void Unpacking_a_row_gives_every_code_of_the_bit_stream_in_order_then_zero_padding(int inFeatures)
    {
        ulong state = (ulong)inFeatures;
        foreach (int bits in Bits)
        {
            int rowBytes = (int)KernelCatalogue.PackedRowBytes(inFeatures, bits);
            // Three rows in one array: the middle one is unpacked with real neighbours on both sides.
            var packed = new byte[3 * rowBytes];
            for (int k = 0; k < packed.Length; k++) packed[k] = (byte)QuantTestData.NextInt(ref state, 256);
            int padded = CodeUnpack.PaddedLength(inFeatures);
            KernelWidths.ForEach(width =>
            {
                foreach (int r in new[] { 1, 2 })
                {
                    var codes = new byte[padded];
                    codes.AsSpan().Fill(0xAA);
                    fixed (byte* p = packed, c = codes)
                        CodeUnpack.Row(p + r * rowBytes, rowBytes, bits, inFeatures, c, width);
                    var row = packed.AsSpan(r * rowBytes, rowBytes);
                    for (int i = 0; i < inFeatures; i++)
                        Assert.True(PackedBits.ReadLevel(row, i, bits) == codes[i], $"int{bits} width {width} row {r} code {i}");
                    for (int i = inFeatures; i < padded; i++) Assert.Equal(0, codes[i]);
                }
            });
        }
    }

    [Theory]
    [InlineData(16, 16)]
    [InlineData(48, 16)]
    [InlineData(64, 32)]
    [InlineData(100, 100)]
    [InlineData(4096, 4096)]
    [InlineData(4100, 4100)]
    [InlineData(256, 256)]
    [InlineData(384, 64)]
    [InlineData(1536, 1536)]
    [InlineData(400, 32)]
    [InlineData(208, 48)]
    public void Activation_quantization_is_round_half_even_of_x_times_127_over_max_at_every_width(int n, int groupSize)
    {
        var x = QuantTestData.Gaussian((ulong)n, n);
        x[n / 2] = 0.5f * 127f / 127f; // an exact tie candidate once scaled
        float absMax = x.Max(Math.Abs);
        float inv = 127f / absMax;
        var expected = x.Select(v => (sbyte)MathF.Round(v * inv)).ToArray();
        int padded = CodeUnpack.PaddedLength(n);
        KernelWidths.ForEach(width =>
        {
            var q = new sbyte[padded];
            var sums = new float[n / groupSize];
            float scale;
            fixed (float* px = x, ps = sums)
            fixed (sbyte* pq = q)
                scale = Int8Activations.QuantizeRow(px, n, groupSize, pq, ps, width);
            Assert.Equal(absMax / 127f, scale);
            Assert.Equal(expected, q.AsSpan(0, n).ToArray());
            Assert.All(q.AsSpan(n).ToArray(), v => Assert.Equal(0, v));
            for (int g = 0; g < sums.Length; g++)
                Assert.Equal(expected.Skip(g * groupSize).Take(groupSize).Sum(v => (int)v), sums[g]);
        });
    }

    [Fact]
    public void Activation_quantization_reports_non_finite_inputs_and_zero_rows()
    {
        var q = new sbyte[64];
        var sums = new float[2];
        KernelWidths.ForEach(width =>
        {
            foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
            {
                var x = new float[40];
                x[37] = bad;
                fixed (float* px = x, ps = sums)
                fixed (sbyte* pq = q)
                    Assert.True(float.IsNaN(Int8Activations.QuantizeRow(px, 40, 20, pq, ps, width)));
            }
            var zeros = new float[40];
            fixed (float* px = zeros, ps = sums)
            fixed (sbyte* pq = q)
                Assert.Equal(0f, Int8Activations.QuantizeRow(px, 40, 20, pq, ps, width));
            Assert.All(q, v => Assert.Equal(0, v));
            // Whole 16-float vectors (the AVX-512 loop), the bad value in either of its two chains or the tail.
            foreach (int at in new[] { 3, 20, 40 })
            {
                var x = new float[48];
                var badSums = new float[3];
                x[at] = float.NaN;
                fixed (float* px = x, ps = badSums)
                fixed (sbyte* pq = q)
                    Assert.True(float.IsNaN(Int8Activations.QuantizeRow(px, 48, 16, pq, ps, width)));
                x[at] = float.NegativeInfinity;
                fixed (float* px = x, ps = badSums)
                fixed (sbyte* pq = q)
                    Assert.True(float.IsNaN(Int8Activations.QuantizeRow(px, 48, 16, pq, ps, width)));
            }
            var zeros48 = new float[48];
            var sums48 = new float[3];
            q.AsSpan().Fill(1);
            fixed (float* px = zeros48, ps = sums48)
            fixed (sbyte* pq = q)
                Assert.Equal(0f, Int8Activations.QuantizeRow(px, 48, 16, pq, ps, width));
            Assert.All(q, v => Assert.Equal(0, v));
        });
    }

    public static TheoryData<int, int, bool, int, int, int> ProductCases()
    {
        var data = new TheoryData<int, int, bool, int, int, int>();
        foreach (int bits in Bits)
            foreach (int group in new[] { 0, 16, 32, 64, 128, 256 })
                foreach (bool sym in new[] { true, false })
                {
                    int inF = group switch { 0 => bits == 3 ? 1031 : 100, 16 => 48, 32 => 96, 64 => 320, 128 => 384, _ => 768 };
                    data.Add(bits, group, sym, 5, inF, group == 32 ? 9 : group == 0 ? 3 : 1);
                }
        data.Add(4, 32, false, 3, 4096, 128);
        data.Add(8, 16, true, 2, 64, 128);
        data.Add(3, 64, false, 7, 192, 5);
        data.Add(2, 0, true, 1, 1, 2);
        data.Add(4, 16, true, 1, 16, 4);
        // 4 bits, In a multiple of 64, batch <= 4: the AVX-512 kernel reads nibbles straight from the packed row.
        data.Add(4, 32, true, 3, 128, 2);
        data.Add(4, 16, false, 2, 64, 4);
        data.Add(4, 0, false, 3, 192, 1);
        data.Add(4, 128, true, 4, 512, 3);
        // Fused AVX-512 kernel: batch tiles of 1, 2, 4 and 8 with aliased rows past the batch, and row ends that are
        // not a whole unit (odd In at 4 bits, In not a multiple of 256 at 2 bits, 3-bit rows ending inside a load).
        data.Add(4, 0, true, 3, 1031, 6);
        data.Add(4, 16, false, 5, 208, 8);
        data.Add(4, 64, false, 3, 192, 11);
        data.Add(2, 0, false, 2, 777, 7);
        data.Add(2, 16, true, 3, 272, 5);
        data.Add(8, 0, false, 2, 333, 5);
        data.Add(8, 32, false, 4, 160, 8);
        data.Add(3, 16, true, 4, 144, 8);
        data.Add(3, 256, false, 2, 512, 2);
        // Several row blocks of 16 and chunks of the row (2048 codes at a tile of 8), per-row groups across chunks.
        data.Add(4, 64, true, 40, 2304, 9);
        data.Add(8, 0, true, 2, 2112, 8);
        // Batch 1 (FusedInt8Dot.Gemv): 4-unit steps plus remainders, units read from the row's zero-padded end,
        // permuted scale blocks of every cycle (16 / groups per unit units), odd group counts, per-row groups, and
        // 8 bits through vpdpbusd (groups >= 32) or the sign trick (16).
        data.Add(4, 32, true, 3, 4096, 1);
        data.Add(4, 32, false, 5, 1056, 1);
        data.Add(4, 64, false, 4, 2112, 1);
        data.Add(4, 16, true, 3, 1040, 1);
        data.Add(4, 128, false, 3, 1152, 1);
        data.Add(4, 256, true, 2, 1280, 1);
        data.Add(4, 0, false, 2, 1001, 1);
        data.Add(8, 32, true, 4, 4128, 1);
        data.Add(8, 32, false, 3, 96, 1);
        data.Add(8, 64, false, 3, 4160, 1);
        data.Add(8, 16, true, 2, 1040, 1);
        data.Add(8, 0, true, 2, 1000, 1);
        data.Add(3, 128, false, 3, 1152, 1);
        data.Add(3, 32, true, 2, 1056, 1);
        data.Add(3, 16, false, 2, 208, 1);
        data.Add(2, 64, false, 3, 1088, 1);
        data.Add(2, 32, true, 2, 1056, 1);
        data.Add(2, 16, false, 2, 272, 1);
        data.Add(2, 256, false, 2, 1280, 1);
        // Batch 1, 3-bit units of 128 codes (48 bytes): rows whose last loads run into the next row (4096 codes: 31
        // of 32 units fit a 64-byte load), rows ending inside a unit (In not a multiple of 128), odd group counts.
        data.Add(3, 128, false, 4, 4096, 1);
        data.Add(3, 0, true, 3, 1000, 1);
        data.Add(3, 16, true, 3, 1040, 1);
        data.Add(3, 64, true, 5, 1216, 1);
        data.Add(3, 256, false, 3, 1280, 1);
        data.Add(2, 0, true, 3, 999, 1);
        data.Add(8, 0, false, 3, 1001, 1);
        // Batch 1, permuted scales in 4-unit steps for every groups-per-unit shift (2 bits: 16 and 8 groups per unit).
        data.Add(2, 16, true, 3, 1280, 1);
        data.Add(2, 32, false, 3, 2304, 1);
        data.Add(4, 16, false, 2, 2064, 1);
        return data;
    }

    [Theory]
    [MemberData(nameof(ProductCases))]
    public void Int8_product_equals_the_integer_reference_at_every_width(int bits, int group, bool sym, int outF, int inF, int batch)
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(bits * 1000 + group + outF), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + batch), batch * inF);
        int g = group == 0 ? inF : group;
        var expected = Int8Reference.Product(q, x, batch, out var magnitude);
        KernelWidths.ForEach(width =>
        {
            var y = new float[batch * outF];
            y.AsSpan().Fill(float.NaN);
            q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
            for (int k = 0; k < y.Length; k++)
            {
                // The integer group sums are exact; only float32 rounding of the lane-wise scaling and accumulation
                // (at most ~(In/4 + groups + 4) roundings of 2^-24 relative, on terms bounded by magnitude) remains.
                double tolerance = (inF / 4.0 + inF / (double)g + 8) * Math.Pow(2, -24) * magnitude[k] + 1e-30;
                Assert.True(Math.Abs(y[k] - expected[k]) <= tolerance,
                    $"{q.Format} width {width} [{k / outF},{k % outF}]: {y[k]} vs {expected[k]} (tolerance {tolerance})");
            }
        });
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(8)]
    public void Int8_activations_stay_within_half_an_input_step_times_the_weight_row_norm_of_the_exact_product(int bits)
    {
        int outF = 33, inF = 512, batch = 3;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(11, outF * inF), outF, inF, new QuantizationScheme(bits, 64, false));
        var x = QuantTestData.Gaussian(12, batch * inF);
        var exact = new float[batch * outF];
        var fast = new float[batch * outF];
        q.MatMulTransposed(x, exact, batch, ActivationPrecision.Float32);
        q.MatMulTransposed(x, fast, batch, ActivationPrecision.Int8);
        var deq = new float[outF * inF];
        q.Dequantize(deq);
        for (int b = 0; b < batch; b++)
        {
            double sx = x.AsSpan(b * inF, inF).ToArray().Max(Math.Abs) / 127.0;
            for (int r = 0; r < outF; r++)
            {
                // Each input moves by at most sx / 2 when rounded to its int8 level.
                double l1 = 0;
                for (int i = 0; i < inF; i++) l1 += Math.Abs(deq[r * inF + i]);
                double bound = sx / 2 * l1 * (1 + 1e-4) + 1e-4 * Math.Abs(exact[b * outF + r]);
                Assert.True(Math.Abs(fast[b * outF + r] - exact[b * outF + r]) <= bound, $"int{bits} [{b},{r}]: {fast[b * outF + r]} vs {exact[b * outF + r]}");
            }
        }
    }

    [Fact]
    public void A_non_finite_input_row_takes_the_float32_path()
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(3, 4 * 64), 4, 64, new QuantizationScheme(4, 32, true));
        var x = QuantTestData.Gaussian(4, 2 * 64);
        x[64 + 5] = float.NaN;
        var y = new float[8];
        var reference = new float[8];
        q.MatMulTransposed(x, y, 2, ActivationPrecision.Int8);
        q.MatMulTransposed(x, reference, 2, ActivationPrecision.Float32);
        Assert.Equal(reference, y);
        Assert.True(float.IsNaN(y[4]));
    }

    [Fact]
    public void Int8_results_do_not_depend_on_the_thread_count_and_the_default_follows_KernelOptions()
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(5, 257 * 1024), 257, 1024, new QuantizationScheme(4, 32, false));
        var x = QuantTestData.Gaussian(6, 4 * 1024);
        var one = new float[4 * 257];
        var two = new float[4 * 257];
        int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
        try
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = 1;
            q.MatMulTransposed(x, one, 4, ActivationPrecision.Int8);
            WorkerPool.Shared.MaxDegreeOfParallelism = 3;
            q.MatMulTransposed(x, two, 4, ActivationPrecision.Int8);
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = saved;
        }
        Assert.Equal(one, two);

        var byDefault = new float[4 * 257];
        Assert.Equal(ActivationPrecision.Int8, KernelOptions.QuantizedActivations);
        q.MatMulTransposed(x, byDefault, 4);
        Assert.Equal(one, byDefault);
    }
}
