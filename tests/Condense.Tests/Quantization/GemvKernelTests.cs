using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// Batch 1 of the int8-activation product: the managed 4-rows-per-pass loop (FusedInt8Dot.Gemv) and the emitted
/// AVX512-VNNI loop for 8-bit codes (VnniGemv8) against the exact integer reference, over odd shapes: row counts that
/// leave a partial block of 4, rows whose last 64-code step reads past the row's end, per-row groups cut into
/// virtual groups, and group counts that are not a multiple of 16.
/// </summary>
public class GemvKernelTests
{
    public static TheoryData<int, int, bool, int, int> Shapes()
    {
        var data = new TheoryData<int, int, bool, int, int>();
        // bits, group (0 = per row), symmetric, Out, In
        data.Add(8, 64, true, 7, 640);      // 10 groups of one step; a partial block of 3
        data.Add(8, 128, false, 9, 1152);   // 9 groups of 2 steps, zero points; a partial block of 1
        data.Add(8, 256, true, 6, 1280);    // 4 steps per group
        data.Add(8, 0, false, 5, 4096);     // per row: 64 steps as 16 virtual groups of 4
        data.Add(8, 0, true, 5, 1000);      // per row, In not a multiple of 64: the last row's reads pass its end
        data.Add(8, 0, false, 8, 4160);     // per row: 65 steps as 65 groups of one step (an odd count)
        data.Add(8, 0, true, 4, 960);       // per row: 15 steps as 5 virtual groups of 3
        data.Add(8, 0, true, 3, 4288);      // per row: 67 steps (prime) as 67 groups of one step
        data.Add(8, 32, true, 6, 4128);     // g32 stays on the managed loop (sign trick)
        data.Add(8, 16, false, 5, 1040);
        data.Add(4, 32, false, 7, 4096);    // 4 bits: permuted scales, a partial block
        data.Add(4, 128, true, 5, 1152);
        data.Add(4, 256, false, 6, 1280);
        data.Add(4, 0, true, 9, 1001);
        data.Add(3, 64, false, 5, 1216);
        data.Add(2, 32, true, 6, 1056);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Batch_1_matches_the_integer_reference_with_and_without_the_VNNI_loop(int bits, int group, bool sym, int outF, int inF)
    {
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(97 * bits + group + outF), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + 3 * outF), inF);
        foreach (bool vnni in new[] { true, false })
        {
            bool saved = VnniGemv8.Enabled;
            VnniGemv8.Enabled = vnni;
            try
            {
                KernelWidths.ForEach(width => Int8Reference.AssertMatches(q, x, 1, $"width {width}, VNNI loop {(vnni ? "allowed" : "off")}"));
            }
            finally
            {
                VnniGemv8.Enabled = saved;
            }
        }
    }

    [Fact]
    public void The_VNNI_loop_takes_8_bit_groups_of_whole_64_code_steps_and_per_row_groups_only()
    {
        if (!VnniGemv8.IsSupported) return; // no AVX512-VNNI here (or AVX-512 disabled): nothing to select
        Assert.True(VnniGemv8.Applies(8, 1, 64, 64, 4096, 512));
        Assert.True(VnniGemv8.Applies(8, 1, 256, 16, 4096, 512));
        Assert.True(VnniGemv8.Applies(8, 1, 1000, 1, 1000, 512));
        Assert.False(VnniGemv8.Applies(8, 1, 32, 128, 4096, 512));   // a step would span two groups
        Assert.False(VnniGemv8.Applies(8, 1, 4096, 2, 8192, 512));   // 64 steps per group: past MaxSteps
        Assert.False(VnniGemv8.Applies(8, 2, 64, 64, 4096, 512));    // batches take the tiled loops
        Assert.False(VnniGemv8.Applies(4, 1, 64, 64, 4096, 512));
        Assert.False(VnniGemv8.Applies(8, 1, 64, 64, 4096, 256));
        Assert.NotEqual(0, VnniGemv8.Prepare(8, 1, 128, 32, 4096, 4096, 32, 512));
    }

    [Fact]
    public void Per_row_groups_are_cut_into_equal_virtual_groups_of_at_most_4_steps()
    {
        Assert.Equal(4, VnniGemv8.StepsPerGroup(4096, 1, 64));
        Assert.Equal(1, VnniGemv8.StepsPerGroup(4160, 1, 65));    // 5 x 13: no divisor from 2 to 4
        Assert.Equal(3, VnniGemv8.StepsPerGroup(960, 1, 15));     // 15 = 3 x 5
        Assert.Equal(1, VnniGemv8.StepsPerGroup(128, 1, 2));      // two groups of one step
        Assert.Equal(1, VnniGemv8.StepsPerGroup(4288, 1, 67));
        Assert.Equal(2, VnniGemv8.StepsPerGroup(128, 32, 64));
    }

    [Fact]
    public unsafe void The_emitted_loop_sums_unsigned_codes_times_signed_inputs_per_group_and_row()
    {
        if (!VnniGemv8.IsSupported) return;
        // 3 groups (a pair and the odd one) of 2 steps; rows padded by 64 bytes past their codes; scales 16 apart.
        const int steps = 2, groups = 3, rows = 3, rowBytes = 64 * steps * groups + 64, scaleStride = 16;
        var kernel = VnniGemv8.Kernel(steps, groups, rowBytes, scaleStride);
        Assert.True(kernel != null);
        var rng = new Random(7);
        var w = new byte[rows * rowBytes];
        var xs = new sbyte[64 * steps * groups];
        var scales = new float[rows * scaleStride];
        rng.NextBytes(w);
        for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
        for (int i = 0; i < scales.Length; i++) scales[i] = (1 + rng.Next(2)) * (rng.Next(2) * 2 - 1);
        var lanes = new float[rows * 32];
        fixed (byte* pw = w)
        fixed (sbyte* px = xs)
        fixed (float* ps = scales)
        fixed (float* pl = lanes)
            kernel(pw, px, ps, pl, groups / 2, rows);
        for (int k = 0; k < rows; k++)
            for (int lane = 0; lane < 16; lane++)
            {
                // Lane l of row k: even groups in the first 16 sums, odd ones in the second; each group's term is
                // scale[k, g] times the 4 products of bytes 4l..4l+3 of every step.
                var expected = new double[2];
                for (int g = 0; g < groups; g++)
                {
                    long sum = 0;
                    for (int s = 0; s < steps; s++)
                        for (int b = 0; b < 4; b++)
                        {
                            int i = 64 * (g * steps + s) + 4 * lane + b;
                            sum += w[k * rowBytes + i] * (long)xs[i];
                        }
                    expected[g & 1] += scales[k * scaleStride + g] * (double)sum;
                }
                // Scales of +-1 and +-2 and integer sums below 2^22: every float step is exact.
                Assert.Equal(expected[0], lanes[32 * k + lane]);
                Assert.Equal(expected[1], lanes[32 * k + 16 + lane]);
            }
    }

    [Fact]
    public void Prefetch_encodes_to_the_bytes_GNU_as_produces()
    {
        // as --64 -msyntax=intel: prefetcht0 byte ptr [...]
        var cases = new (Mem Mem, string Bytes)[]
        {
            (new Mem(Gpr.Rdi, 0x1800), "0f 18 8f 00 18 00 00"),
            (new Mem(Gpr.Rdi, 0x40), "0f 18 4f 40"),
            (new Mem(Gpr.Rax, 0), "0f 18 08"),
            (new Mem(Gpr.R9, 0x1840), "41 0f 18 89 40 18 00 00"),
            (new Mem(Gpr.R12, 0x10), "41 0f 18 4c 24 10"),
            (new Mem(Gpr.R13, 0), "41 0f 18 4d 00"),
            (new Mem(Gpr.Rsp, -8), "0f 18 4c 24 f8"),
            (new Mem(Gpr.Rbp, 0x100), "0f 18 8d 00 01 00 00"),
        };
        foreach (var (mem, bytes) in cases)
        {
            var a = new X86Assembler();
            a.Prefetcht0(mem);
            Assert.Equal(bytes, string.Join(' ', a.ToArray().Select(b => b.ToString("x2"))));
        }
        Assert.Throws<ArgumentException>(() => new X86Assembler().Prefetcht0(new Mem(Gpr.Rdi, 0, Broadcast: true)));
    }

    [Fact]
    public void Batch_1_results_do_not_depend_on_the_thread_count()
    {
        foreach (var (bits, group) in new[] { (8, 128), (8, 0), (4, 32), (4, 128) })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(bits + group), 258 * 1024), 258, 1024, new QuantizationScheme(bits, group, false));
            var x = QuantTestData.Gaussian(11, 1024);
            var one = new float[258];
            var three = new float[258];
            int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
            try
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = 1;
                q.MatMulTransposed(x, one, 1, ActivationPrecision.Int8);
                WorkerPool.Shared.MaxDegreeOfParallelism = 3;
                q.MatMulTransposed(x, three, 1, ActivationPrecision.Int8);
            }
            finally
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = saved;
            }
            Assert.Equal(one, three);
        }
    }
}
