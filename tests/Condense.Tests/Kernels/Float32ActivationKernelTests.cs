using Condense.Kernels;
using Condense.Quantization;
using Condense.Tests.Quantization;

namespace Condense.Tests.Kernels;

/// <summary>
/// The float32-activation kernel (<see cref="ActivationPrecision.Float32"/>) against dequantize-then-matmul in float64
/// and against the scalar reference, over odd shapes, every bit width, group size and grid, at every vector width.
/// </summary>
public unsafe class Float32ActivationKernelTests
{
    public static TheoryData<int, int, int, bool> Formats()
    {
        var data = new TheoryData<int, int, int, bool>();
        foreach (int bits in new[] { 2, 3, 4, 8 })
            foreach (int group in new[] { 0, 16, 32, 128 })
                foreach (bool sym in new[] { true, false })
                    foreach (int batch in new[] { 1, 2, 3, 4, 5, 6, 7, 16, 17, 33 }) // 512-bit passes of 4 inputs: remainders 0 to 3
                        data.Add(bits, group, batch, sym);
        return data;
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void Every_output_is_within_float_rounding_of_dequantize_then_matmul(int bits, int group, int batch, bool symmetric)
    {
        // Odd row counts (short last tiles, the staged last row), per-row groups on lengths that are not whole vectors.
        var shapes = group == 0 ? new[] { (1, 7), (5, 37), (7, 100), (13, 1031), (6, 256) } : new[] { (1, group), (5, 3 * group), (9, 7 * group), (4, 2 * group) };
        foreach (var (outF, inF) in shapes)
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(outF * 31 + inF), outF * inF), outF, inF, new QuantizationScheme(bits, group, symmetric));
            var x = QuantTestData.Gaussian((ulong)(batch * 7 + inF), batch * inF);
            var deq = new float[outF * inF];
            q.Dequantize(deq);
            var reference = new float[batch * outF];
            q.MatMulTransposedReference(x, reference, batch);
            KernelWidths.ForEach(width =>
            {
                var y = new float[batch * outF];
                y.AsSpan().Fill(float.NaN); // overwritten, never accumulated into
                q.MatMulTransposed(x, y, batch, ActivationPrecision.Float32);
                for (int b = 0; b < batch; b++)
                    for (int r = 0; r < outF; r++)
                    {
                        double exact = Exact(q, x, deq, b, r, out double magnitude);
                        // Every product is exact in float32 (w is the dequantized weight, or q x with the zero point
                        // folded into the group sums of x); only the additions round: at most In / 8 sequential ones
                        // per lane plus the lane and group sums, each 2^-24 of the magnitude (that of the folded terms).
                        double tolerance = (inF / 8.0 + 32) * Math.Pow(2, -24) * magnitude + 1e-30;
                        float got = y[b * outF + r];
                        Assert.True(Math.Abs(got - exact) <= tolerance,
                            $"{q.Format} [{outF}, {inF}] width {width} batch {batch} y[{b},{r}] = {got}, exact {exact}, tolerance {tolerance}");
                        Assert.True(Math.Abs(reference[b * outF + r] - exact) <= tolerance, "the scalar reference itself");
                    }
            });
        }
    }

    /// <summary>
    /// The float64 product of x row b with dequantized row r, and the magnitude its float32 sums round against:
    /// sum |x| (|w| + 2 |s z|), which bounds both sum |s (q - z) x| and the zero-point-folded sum |s q x| + |s z x|.
    /// </summary>
    internal static double Exact(GroupQuantizedWeight q, float[] x, float[] deq, int b, int r, out double magnitude)
    {
        int inF = q.InFeatures, bits = q.Scheme.Bits;
        int group = q.Scheme.GroupSize == 0 ? inF : q.Scheme.GroupSize, gpr = inF / group;
        double exact = 0;
        magnitude = 0;
        for (int i = 0; i < inF; i++)
        {
            int g = r * gpr + i / group;
            double sz = Math.Abs((double)q.Scales[g] * (q.ZeroPoints is null ? 1 << (bits - 1) : q.ZeroPoints[g]));
            double xi = x[b * inF + i], wi = deq[r * inF + i];
            exact += xi * wi;
            magnitude += Math.Abs(xi) * (Math.Abs(wi) + 2 * sz);
        }
        return exact;
    }

    public static TheoryData<int, int, bool> PlaneFormats()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int bits in new[] { 4, 8 })
            foreach (int group in new[] { 0, 16, 32, 64, 128, 256 })
                foreach (bool sym in new[] { true, false })
                    data.Add(bits, group, sym);
        return data;
    }

    [Theory]
    [MemberData(nameof(PlaneFormats))]
    public void Batch_one_bit_plane_path_is_within_float_rounding_and_thread_independent(int bits, int group, bool symmetric)
    {
        // The bit-plane kernel reads 64-byte chunks (128 4-bit or 64 8-bit codes): lengths that are not whole chunks
        // (the last chunk's lanes past In, scales past the row), odd row counts (short last tiles, the staged last row).
        var shapes = group == 0
            ? new[] { (1, 7), (5, 37), (7, 100), (13, 1031), (6, 256), (3, 130) }
            : new[] { (1, group), (5, 3 * group), (9, 7 * group), (4, 2 * group), (11, 33 * group),
                      // Rows of fewer than 16 groups over several 64-row blocks of converted scales (session 17), the
                      // last block partial and its last tile short.
                      (137, 6 * group), (70, 12 * group) };
        bool differs = false, ran512 = false; // outputs differ from the decode-to-weights kernel's somewhere: the plane path ran
        foreach (var (outF, inF) in shapes)
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(outF * 17 + inF), outF * inF), outF, inF, new QuantizationScheme(bits, group, symmetric));
            // Inputs with a nonzero mean (as after GELU) make the folded zero-point term large: the case it must survive.
            var x = QuantTestData.Gaussian((ulong)(inF + 5), inF);
            for (int i = 0; i < inF; i++) x[i] += 0.75f;
            var deq = new float[outF * inF];
            q.Dequantize(deq);
            KernelWidths.ForEach(width =>
            {
                float[] Run()
                {
                    var y = new float[outF];
                    y.AsSpan().Fill(float.NaN);
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Float32);
                    return y;
                }
                var one = DeterminismTests.AtDegree(1, Run);
                var two = DeterminismTests.AtDegree(2, Run);
                for (int r = 0; r < outF; r++)
                {
                    double exact = Exact(q, x, deq, 0, r, out double magnitude);
                    double tolerance = (inF / 8.0 + 32) * Math.Pow(2, -24) * magnitude + 1e-30;
                    Assert.True(Math.Abs(one[r] - exact) <= tolerance,
                        $"{q.Format} [{outF}, {inF}] width {width} y[{r}] = {one[r]}, exact {exact}, tolerance {tolerance}");
                    Assert.True(Math.Abs(one[r] - exact) <= 1e-4 * Math.Max(1e-3, Math.Abs(exact)) + tolerance);
                    Assert.Equal(BitConverter.SingleToInt32Bits(one[r]), BitConverter.SingleToInt32Bits(two[r]));
                }
                if (width == 512 && Float32ActivationKernel.Width == 512)
                {
                    ran512 = true;
                    Float32ActivationKernel.BitPlanes = false;
                    try { differs |= !Run().AsSpan().SequenceEqual(one); }
                    finally { Float32ActivationKernel.BitPlanes = true; }
                }
            });
        }
        Assert.True(!ran512 || differs, "the bit-plane kernel never ran (its outputs equal the other kernel's everywhere)");
    }

    [Theory]
    [InlineData(4, 64, false)]
    [InlineData(4, 32, true)]
    [InlineData(8, 32, true)]
    [InlineData(8, 0, false)]
    public void Bit_plane_path_declines_inputs_it_cannot_scale_exactly(int bits, int group, bool symmetric)
    {
        // All inputs below 2^-90 (x 2^-28 would be subnormal and lose bits), so the decode-to-weights path runs and stays exact.
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(9, 5 * 256), 5, 256, new QuantizationScheme(bits, group, symmetric));
        var x = QuantTestData.Gaussian(10, 256);
        for (int i = 0; i < x.Length; i++) x[i] *= 1e-35f;
        var deq = new float[5 * 256];
        q.Dequantize(deq);
        var y = new float[5];
        q.MatMulTransposed(x, y, 1, ActivationPrecision.Float32);
        for (int r = 0; r < 5; r++)
        {
            double exact = 0, magnitude = 0;
            for (int i = 0; i < 256; i++) { exact += (double)x[i] * deq[r * 256 + i]; magnitude += Math.Abs((double)x[i] * deq[r * 256 + i]); }
            Assert.True(Math.Abs(y[r] - exact) <= 64 * Math.Pow(2, -24) * magnitude, $"y[{r}] = {y[r]}, exact {exact}");
        }
    }

    [Theory]
    [InlineData(2, 32, 19, 96)]
    [InlineData(3, 0, 9, 100)]
    [InlineData(4, 64, 70, 128)]
    [InlineData(8, 16, 33, 48)]
    public void Panel_path_batches_equal_the_dense_fma_chain_on_the_dequantized_weights_bit_for_bit(int bits, int group, int outF, int inF)
    {
        // The panel path dequantizes exactly and runs the dense packed GEMM, whose outputs are the reference chain.
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)bits, outF * inF), outF, inF, new QuantizationScheme(bits, group, false));
        var deq = new float[outF * inF];
        q.Dequantize(deq);
        foreach (int batch in new[] { Float32ActivationKernel.GemmMinBatch, Float32ActivationKernel.GemmMinBatch + 5 })
        {
            var x = QuantTestData.Gaussian((ulong)batch, batch * inF);
            var expected = new float[batch * outF];
            fixed (float* px = x, pw = deq, py = expected)
                DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
            KernelWidths.ForEach(width =>
            {
                if (width < 256) return; // the scalar fallback dequantizes a row and dots it: not this chain
                var y = new float[batch * outF];
                q.MatMulTransposed(x, y, batch, ActivationPrecision.Float32);
                Assert.Equal(expected, y);
            });
        }
    }

    [Theory]
    [InlineData(4, 64, false, 70, 1088)]
    [InlineData(3, 0, false, 133, 1031)]
    [InlineData(8, 256, true, 9, 1280)]
    [InlineData(2, 32, false, 65, 608)]
    [InlineData(4, 128, true, 130, 640)]
    [InlineData(8, 16, false, 64, 1040)]
    [InlineData(4, 0, true, 20, 1029)]
    public void Packed_sgemm_panels_equal_the_dense_fma_chain_across_blocks_threads_and_the_old_panels(int bits, int group, bool symmetric, int outF, int inF)
    {
        // Batches from GemmMinBatch (24; a last batch group under 32 rows is padded) with AVX-512 decode 64-row x 512-feature blocks into PackedSgemm's micro-panels: In past one and
        // several 512-feature blocks, In not a multiple of 8 (the last chunk),
        // rows not a multiple of 8 or 64, the last row's staged read. Every output must be the reference chain on the
        // dequantized weights, at 1 and 2 threads, and equal the dequantized-panel path it replaces.
        if (Float32ActivationKernel.Width < 256) return; // the scalar fallback dequantizes a row and dots it: not this chain
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(bits * 31 + outF), outF * inF), outF, inF, new QuantizationScheme(bits, group, symmetric));
        var deq = new float[outF * inF];
        q.Dequantize(deq);
        foreach (int batch in new[] { Float32ActivationKernel.GemmMinBatch, 31, 32, 77, 130 })
        {
            var x = QuantTestData.Gaussian((ulong)(batch + inF), batch * inF);
            var expected = new float[batch * outF];
            fixed (float* px = x, pw = deq, py = expected)
                DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
            int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
            try
            {
                foreach (bool sgemm in new[] { true, false })
                    foreach (int threads in new[] { 1, 2 })
                    {
                        Float32ActivationKernel.PanelsOnPackedSgemm = sgemm;
                        WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                        var y = new float[batch * outF];
                        q.MatMulTransposed(x, y, batch, ActivationPrecision.Float32);
                        Assert.Equal(expected, y);
                    }
            }
            finally
            {
                Float32ActivationKernel.PanelsOnPackedSgemm = true;
                WorkerPool.Shared.MaxDegreeOfParallelism = saved;
            }
        }
    }

    [Theory]
    [InlineData(64, false, 70, 1088)]
    [InlineData(32, true, 130, 1536)]
    [InlineData(16, false, 64, 640)]
    [InlineData(128, false, 9, 1280)]
    [InlineData(256, true, 72, 1024)]
    [InlineData(0, false, 20, 1029)]
    [InlineData(0, true, 136, 1100)]
    public void Four_bit_decode_keeps_the_reference_bits_at_every_k_block_and_thread_count(int group, bool symmetric, int outF, int inF)
    {
        // 4-bit codes on PackedSgemm's tiles: the lean decode loop (scales transposed per tile, groups counted across
        // 8-chunk steps and 512-feature blocks) with the code prefetch, at k blocks of 128, 256 and 512 features, 1 and
        // 2 threads: every output is the reference chain on the dequantized weights.
        if (Float32ActivationKernel.Width < 512) return; // PackedSgemm runs with AVX-512 only
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group * 7 + outF), outF * inF), outF, inF, new QuantizationScheme(4, group, symmetric));
        var deq = new float[outF * inF];
        q.Dequantize(deq);
        int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
        try
        {
            foreach (int batch in new[] { 33, 130 })
            {
                var x = QuantTestData.Gaussian((ulong)(batch + inF), batch * inF);
                var expected = new float[batch * outF];
                fixed (float* px = x, pw = deq, py = expected)
                    DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
                foreach (int kBlock in new[] { 128, 256, 512 })
                    foreach (int threads in new[] { 1, 2 })
                    {
                        PackedSgemm.KBlock = kBlock;
                        WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                        var y = new float[batch * outF];
                        q.MatMulTransposed(x, y, batch, ActivationPrecision.Float32);
                        Assert.Equal(expected, y);
                    }
            }
        }
        finally
        {
            PackedSgemm.KBlock = 128;
            WorkerPool.Shared.MaxDegreeOfParallelism = saved;
        }
    }

    [Fact]
    public void The_vector_kernel_runs_at_256_and_512_bits_and_declines_below()
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(1, 8 * 64), 8, 64, new QuantizationScheme(4, 32, false));
        var x = QuantTestData.Gaussian(2, 64);
        KernelWidths.ForEach(width =>
        {
            var y = new float[8];
            fixed (byte* packed = q.Packed)
            fixed (Half* scales = q.Scales)
            fixed (byte* zeros = q.ZeroPoints)
            fixed (float* px = x, py = y)
            {
                var w = new PackedWeightView
                {
                    Packed = packed, Scales = scales, Zeros = zeros, Bits = 4, GroupSize = 32, GroupsPerRow = 2, RowBytes = 32, Out = 8, In = 64,
                };
                bool ran = Float32ActivationKernel.Run(w, px, py, 1);
                Assert.Equal(width >= 256 && Float32ActivationKernel.Width == width, ran);
            }
        });
    }

    [Fact]
    public void Non_finite_inputs_give_the_same_non_finite_outputs_as_the_reference()
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(3, 6 * 96), 6, 96, new QuantizationScheme(4, 32, false));
        var x = QuantTestData.Gaussian(4, 3 * 96);
        x[5] = float.NaN;
        x[96 + 40] = float.PositiveInfinity;
        var reference = new float[18];
        q.MatMulTransposedReference(x, reference, 3);
        KernelWidths.ForEach(width =>
        {
            var y = new float[18];
            q.MatMulTransposed(x, y, 3, ActivationPrecision.Float32);
            for (int k = 0; k < 18; k++)
            {
                Assert.Equal(float.IsNaN(reference[k]), float.IsNaN(y[k]));
                Assert.Equal(float.IsInfinity(reference[k]), float.IsInfinity(y[k]));
                if (float.IsFinite(reference[k])) Assert.Equal(reference[k], y[k], 1e-3f);
            }
            Assert.True(float.IsNaN(y[0]));
        });
    }

    [Theory]
    [InlineData(4, 64, false)]
    [InlineData(8, 32, true)]
    [InlineData(8, 16, false)]
    public void Batch_one_non_finite_inputs_give_the_reference_pattern(int bits, int group, bool symmetric)
    {
        // The plane path folds the zero point into group sums of x (an infinity times a zero weight would become NaN):
        // it must decline such inputs at batch 1, for 4- and 8-bit codes alike.
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(5, 7 * 192), 7, 192, new QuantizationScheme(bits, group, symmetric));
        foreach (float bad in new[] { float.PositiveInfinity, float.NaN })
        {
            var x = QuantTestData.Gaussian(6, 192);
            x[70] = bad;
            var reference = new float[7];
            q.MatMulTransposedReference(x, reference, 1);
            KernelWidths.ForEach(width =>
            {
                var y = new float[7];
                q.MatMulTransposed(x, y, 1, ActivationPrecision.Float32);
                for (int k = 0; k < 7; k++)
                {
                    Assert.Equal(float.IsNaN(reference[k]), float.IsNaN(y[k]));
                    Assert.Equal(float.IsInfinity(reference[k]), float.IsInfinity(y[k]));
                }
            });
        }
    }
}
