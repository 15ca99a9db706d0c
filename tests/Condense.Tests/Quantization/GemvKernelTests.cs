using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// Batch 1 of the int8-activation product: the managed 4-rows-per-pass loop (FusedInt8Dot.Gemv) and the emitted
/// AVX512-VNNI loop for 8- and 4-bit codes (VnniGemv) against the exact integer reference, over odd shapes: row counts that
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
        data.Add(8, 32, true, 6, 4128);     // g32: two groups per 64-code step (permuted scales)
        data.Add(8, 32, false, 19, 1056);   // g32, zero points, a partial block of 16 rows
        data.Add(8, 16, false, 5, 1040);
        data.Add(4, 32, false, 7, 4096);    // 4 bits: permuted scales, a partial block
        data.Add(4, 128, true, 5, 1152);
        data.Add(4, 256, false, 6, 1280);
        data.Add(4, 0, true, 9, 1001);
        data.Add(4, 64, false, 17, 1088);   // 4 bits g64: 2 groups per 128-code step, 8.5 steps
        data.Add(4, 32, true, 5, 4000);     // 4 bits g32: 4 groups per step, In not a multiple of 128
        data.Add(4, 0, false, 6, 4224);     // per row: 33 steps as 8 virtual groups of 4 and one of 1
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
            using var knobs = KernelKnobs.Save();
            VnniGemv.Enabled = vnni;
            KernelWidths.ForEach(width => Int8Reference.AssertMatches(q, x, 1, $"width {width}, VNNI loop {(vnni ? "allowed" : "off")}"));
        }
    }

    [Fact]
    public void The_VNNI_loop_takes_4_and_8_bit_groups_that_tile_whole_steps_or_split_a_step_and_per_row_groups()
    {
        if (!VnniGemv.IsSupported) return; // no AVX512-VNNI here (or AVX-512 or generated code off): nothing to select
        Assert.True(VnniGemv.Applies(8, 1, 64, 64, 4096, 512));
        Assert.True(VnniGemv.Applies(8, 1, 256, 16, 4096, 512));
        Assert.True(VnniGemv.Applies(8, 1, 1000, 1, 1000, 512));
        Assert.True(VnniGemv.Applies(8, 1, 32, 128, 4096, 512));    // two groups per step: permuted scales
        Assert.True(VnniGemv.Applies(4, 1, 32, 128, 4096, 512));    // four groups per 128-code step
        Assert.True(VnniGemv.Applies(4, 1, 64, 64, 4096, 512));
        Assert.True(VnniGemv.Applies(4, 1, 128, 32, 4096, 512));
        Assert.True(VnniGemv.Applies(4, 1, 1001, 1, 1001, 512));
        Assert.False(VnniGemv.Applies(8, 1, 16, 256, 4096, 512));   // lanes of 4 codes and 16-code groups: the managed loop
        Assert.False(VnniGemv.Applies(4, 1, 16, 256, 4096, 512));
        Assert.False(VnniGemv.Applies(8, 1, 4096, 2, 8192, 512));   // 64 steps per group: past MaxSteps
        Assert.False(VnniGemv.Applies(4, 1, 100, 1, 100, 512));     // a per-row group of one step
        Assert.False(VnniGemv.Applies(8, 2, 64, 64, 4096, 512));    // batches take the tiled loops
        Assert.False(VnniGemv.Applies(2, 1, 64, 64, 4096, 512));
        Assert.False(VnniGemv.Applies(8, 1, 64, 64, 4096, 256));
        Assert.NotEqual(0, VnniGemv.Prepare(8, 1, 128, 32, 4096, 4096, 32, 512, 4096));
        Assert.NotEqual(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 1024));   // 8-bit g32: in cache only
        Assert.Equal(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 1025));
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 32, 128, 4096, 2048, 128, 512, 2048));   // 4 MiB: in cache
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 32, 128, 4096, 2048, 128, 512, 2049));   // larger: the own-scale loop (session 13)
        using var knobs = KernelKnobs.Save();
        KernelOptions.GeneratedCode = false; // CONDENSE_NO_JIT=1 or the option: the managed loops run
        Assert.Equal(0, VnniGemv.Prepare(4, 1, 32, 128, 4096, 2048, 128, 512, 2048));
    }

    [Fact]
    public void Layouts_pick_the_float_plan_of_the_managed_loop()
    {
        var perRow = VnniGemv.LayoutFor(4, 4224, 1, 4224, 2112, 16)!.Value;
        Assert.Equal((VnniGemv.Plan.GroupMulAdd, 33, 4, 9), (perRow.Plan, perRow.Units, perRow.Steps, perRow.ScaleCount));
        var g32 = VnniGemv.LayoutFor(4, 32, 125, 4000, 2000, 128)!.Value;
        Assert.Equal((VnniGemv.Plan.Permuted, 32, 4, 128), (g32.Plan, g32.Units, g32.GroupsPerStep, g32.ScaleCount));
        var g128 = VnniGemv.LayoutFor(4, 128, 9, 1152, 576, 16)!.Value;
        Assert.Equal((VnniGemv.Plan.StepFma, 9), (g128.Plan, g128.Units));
        var g256 = VnniGemv.LayoutFor(8, 256, 5, 1280, 1280, 16)!.Value;
        Assert.Equal((VnniGemv.Plan.GroupMulAdd, 4), (g256.Plan, g256.Steps));
        Assert.Null(VnniGemv.LayoutFor(4, 48, 4, 192, 96, 16));
    }

    [Fact]
    public unsafe void The_emitted_loop_sums_unsigned_codes_times_signed_inputs_per_group_and_row()
    {
        if (!VnniGemv.IsSupported) return;
        // 8 bits, 3 groups (a pair and the odd one) of 2 steps; rows padded by 64 bytes past their codes; scales 16 apart.
        const int steps = 2, groups = 3, rows = 3, rowBytes = 64 * steps * groups + 64, scaleStride = 16;
        var layout = new VnniGemv.Layout(8, VnniGemv.Plan.GroupMulAdd, steps * groups, steps, 1, rowBytes, scaleStride);
        var kernel = VnniGemv.Kernel(layout);
        Assert.True(kernel != null);
        var rng = new Random(7);
        var w = new byte[rows * rowBytes];
        var xs = new sbyte[64 * steps * groups];
        var scales = new float[rows * scaleStride];
        rng.NextBytes(w);
        for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
        for (int i = 0; i < scales.Length; i++) scales[i] = (1 + rng.Next(2)) * (rng.Next(2) * 2 - 1);
        var lanes = new float[rows * 64];
        fixed (byte* pw = w)
        fixed (sbyte* px = xs)
        fixed (float* ps = scales)
        fixed (float* pl = lanes)
            kernel(pw, px, ps, pl, VnniGemv.Constants, rows);
        for (int k = 0; k < rows; k++)
            for (int lane = 0; lane < 16; lane++)
            {
                // Lane l of row k: even groups in f0, odd ones in f1 (f2, f3 stay 0); each group's term is
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
                Assert.Equal(expected[0], lanes[64 * k + lane]);
                Assert.Equal(expected[1], lanes[64 * k + 16 + lane]);
                Assert.Equal(0f, lanes[64 * k + 32 + lane]);
                Assert.Equal(0f, lanes[64 * k + 48 + lane]);
            }
    }

    [Fact]
    public unsafe void The_emitted_4_bit_loop_splits_nibbles_against_even_and_odd_inputs_and_permutes_g32_scales()
    {
        if (!VnniGemv.IsSupported) return;
        // 4 bits, g32: 4 groups per 128-code step; 6 steps = one 4-step chunk (one 16-scale block) and 2 more.
        const int units = 6, rows = 2, rowBytes = 64 * units, scaleStride = 32;
        var layout = new VnniGemv.Layout(4, VnniGemv.Plan.Permuted, units, 1, 4, rowBytes, scaleStride);
        var kernel = VnniGemv.Kernel(layout);
        Assert.True(kernel != null);
        var rng = new Random(11);
        var w = new byte[rows * rowBytes];
        var xs = new sbyte[128 * units]; // per step: 64 inputs of the even codes, then 64 of the odd ones
        var scales = new float[rows * scaleStride];
        rng.NextBytes(w);
        for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
        for (int i = 0; i < scales.Length; i++) scales[i] = (1 + rng.Next(2)) * (rng.Next(2) * 2 - 1);
        var lanes = new float[rows * 64];
        fixed (byte* pw = w)
        fixed (sbyte* px = xs)
        fixed (float* ps = scales)
        fixed (float* pl = lanes)
            kernel(pw, px, ps, pl, VnniGemv.Constants, rows);
        for (int k = 0; k < rows; k++)
        {
            var expected = new double[64];
            for (int u = 0; u < units; u++)
                for (int lane = 0; lane < 16; lane++)
                {
                    // Lane l of step u: bytes 4l..4l+3, i.e. codes 8l..8l+7 of the step, all in group 4u + l / 4.
                    long sum = 0;
                    for (int b = 4 * lane; b < 4 * lane + 4; b++)
                    {
                        byte code = w[k * rowBytes + 64 * u + b];
                        sum += (code & 15) * (long)xs[128 * u + b] + (code >> 4) * (long)xs[128 * u + 64 + b];
                    }
                    expected[16 * (u & 3) + lane] += scales[k * scaleStride + 4 * u + lane / 4] * (double)sum;
                }
            // Integer sums below 2^17 and scales of +-1, +-2: every float step is exact.
            for (int i = 0; i < 64; i++) Assert.Equal(expected[i], lanes[64 * k + i]);
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

    public static TheoryData<int, bool, int, int> FourBitShapes()
    {
        var data = new TheoryData<int, bool, int, int>();
        // group (0 = per row), symmetric, Out, In
        data.Add(32, false, 37, 4000);     // 4 groups per step; 31.25 steps: a chunk's partial block of scales
        data.Add(32, true, 5, 1056);
        data.Add(64, false, 17, 1088);     // 2 groups per step; 8.5 steps
        data.Add(64, true, 33, 4096);
        data.Add(128, false, 19, 1152);    // one group per step: 9 steps (two 4-step chunks and one)
        data.Add(128, true, 4, 640);
        data.Add(256, false, 9, 1280);     // 2 steps per group, 5 groups (2 pairs and one)
        data.Add(256, true, 7, 1536);      // 3 pairs of groups
        data.Add(0, false, 9, 1001);       // per row: In odd, the last row's reads pass its end
        data.Add(0, true, 6, 4224);        // per row: 33 steps = 8 virtual groups of 4 and a partial one
        data.Add(0, false, 3, 384);        // per row: 3 steps, one partial virtual group
        return data;
    }

    [Theory]
    [MemberData(nameof(FourBitShapes))]
    public void Four_bit_batch_1_is_bit_identical_with_and_without_the_VNNI_loop_at_1_and_2_threads(int group, bool sym, int outF, int inF)
    {
        // Both compute the same exact integer lane sums (codes unshifted) and the same float operations in the same
        // order, so every output must carry the same bits.
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * group + outF + inF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + outF), inF);
        var results = new List<(string Route, float[] Y)>();
        using var knobs = KernelKnobs.Save();
        KernelWidths.ForEach(width =>
        {
            if (width != 512) return;
            foreach (bool vnni in new[] { true, false })
                foreach (int threads in new[] { 1, 2 })
                {
                    VnniGemv.Enabled = vnni;
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    var y = new float[outF];
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                    results.Add(($"VNNI {(vnni ? "allowed" : "off")}, {threads} threads", y));
                }
        });
        for (int i = 1; i < results.Count; i++)
            for (int r = 0; r < outF; r++)
                Assert.True(BitConverter.SingleToInt32Bits(results[0].Y[r]) == BitConverter.SingleToInt32Bits(results[i].Y[r]),
                    $"g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}: {results[0].Route} gives {results[0].Y[r]:R}, {results[i].Route} {results[i].Y[r]:R}");
    }

    [Fact]
    public void Streaming_g32_g64_give_the_managed_loops_bits_with_the_scale_prefetch_in_any_slices_and_blocks_ahead()
    {
        if (!VnniGemv.IsSupported) return;
        using var knobs = KernelKnobs.Save();
        // A 1 KiB gate makes these weights "large": g64 runs the streaming kernel, the next block's scales prefetched
        // in 1..16 slices, 1 or 2 blocks ahead, into L1 or L2; 53 rows = blocks of 16, 16, 16, 5 (and of 5 rows per
        // call), so slices of uneven size and a last block without a next one. (g32 above the gate: the own-scale loop
        // or the managed one.) Rows of 24, 33, 49, 17 groups are not whole 16-group chunks, so they keep the ScaleRows
        // path with its scale prefetch (own scales: GemvOwnScalesTests).
        VnniGemv.CacheResidentBytes = 1024;
        foreach (var (group, sym, outF, inF) in new[] { (64, false, 53, 1088), (64, false, 53, 1536), (64, true, 37, 2112), (64, true, 41, 3136) })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * group + outF + inF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + 3 * outF), inF);
            VnniGemv.Enabled = false;
            WorkerPool.Shared.MaxDegreeOfParallelism = 1;
            var expected = new float[outF];
            q.MatMulTransposed(x, expected, 1, ActivationPrecision.Int8);   // the managed loop
            VnniGemv.Enabled = true;
            foreach (var (slices, ahead, l2, call) in new[] { (1, 1, false, 16), (16, 1, false, 16), (8, 1, false, 16), (3, 1, false, 16), (4, 2, false, 16), (16, 2, true, 16), (2, 1, true, 5), (16, 4, false, 5) })
                foreach (int threads in new[] { 1, 2 })
                {
                    VnniGemv.ScalePrefetchSlices = slices;
                    VnniGemv.ScalePrefetchAhead = ahead;
                    VnniGemv.ScalePrefetchToL2 = l2;
                    VnniGemv.RowsPerCall = call;
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    var y = new float[outF];
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                    SameBits.Equal(expected, y, r => $"g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}, {slices} slices, {ahead} ahead, l2 {l2}, {call} rows per call, {threads} threads, streaming against managed");
                }
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.ScalePrefetchSlices = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.ScalePrefetchSlices = VnniGemv.BlockRows + 1);
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.ScalePrefetchAhead = 0);
    }

    [Fact]
    public unsafe void Four_bit_weights_above_the_cache_gate_stream_through_the_generated_loop_with_a_prefetch_and_the_same_bits()
    {
        if (!VnniGemv.IsSupported) return;
        static int Prefetches(VnniGemv.Layout l)
        {
            var code = VnniGemv.Emit(l);
            int n = 0;
            for (int i = 0; i + 2 < code.Length; i++)
                if (code[i] == 0x0F && code[i + 1] == 0x18 && code[i + 2] == 0x8F) n++;
            return n;
        }
        using var knobs = KernelKnobs.Save();
        int savedStream = VnniGemv.StreamingPrefetch, savedRows = VnniGemv.StreamingRows;
        // 4096 x 2049 rows of 2 KiB: past the 4 MiB gate. g128 / g256 / per row take the generated loop, prefetching
        // (g128 rows of whole 16-group chunks with own scales: GemvOwnScalesTests).
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 128, 32, 4096, 2048, 32, 512, 2049));
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 256, 16, 4096, 2048, 16, 512, 2049));
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 4096, 1, 4096, 2048, 16, 512, 2049));
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 32, 128, 4096, 2048, 128, 512, 2049)); // g32 and g64 of whole chunks: own scales
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 64, 64, 4096, 2048, 64, 512, 2049));
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 64, 24, 1536, 768, 32, 512, 8192));   // g64 rows of 24 groups: streaming, ScaleRows
        Assert.Equal(0, VnniGemv.Prepare(4, 1, 32, 40, 1280, 640, 48, 512, 8192));      // g32 rows of 40 groups: the managed loop
        var streaming = VnniGemv.LayoutFor(4, 128, 32, 4096, 2048, 32)!.Value;
        // Rows of 33 groups (not whole 16-group chunks): the ScaleRows streaming kernel.
        Assert.True(VnniGemv.Prepare(4, 1, 128, 33, 4224, 2112, 48, 512, 2049) == (nint)VnniGemv.Kernel(VnniGemv.LayoutFor(4, 128, 33, 4224, 2112, 48)!.Value with { Prefetch = VnniGemv.StreamingPrefetch, Rows = VnniGemv.StreamingRows }),
            "a streaming 4-bit weight runs the kernel with the streaming prefetch");
        Assert.True(Prefetches(streaming with { Prefetch = VnniGemv.StreamingPrefetch }) == 4, "a prefetcht0 before each of the loop's 4 loads (4 steps per iteration)");
        Assert.True(Prefetches(streaming with { Prefetch = VnniGemv.StreamingPrefetch, Rows = 4 }) == 16, "4 rows per pass: a prefetcht0 before each row's load");
        Assert.Equal(0, Prefetches(streaming));                                           // in cache: none
        // At the gate (4 MiB) the weight is in cache: g128 rows of whole 16-group chunks take the 1-row own-scale kernel
        // (session 16), without the streaming prefetch; rows of 33 groups too, their last chunk masked (session 17).
        Assert.True(VnniGemv.Prepare(4, 1, 128, 32, 4096, 2048, 32, 512, 2048) == (nint)VnniGemv.Kernel(streaming with { OwnScales = true, OwnZeros = true, Sums = true }),
            "a 4 MiB g128 weight takes the in-cache own-scale kernel without prefetch");
        Assert.True(VnniGemv.Prepare(4, 1, 128, 33, 4224, 2112, 48, 512, 1985) == (nint)VnniGemv.Kernel(VnniGemv.LayoutFor(4, 128, 33, 4224, 2112, 48)!.Value
                with { ScaleStride = 33, OwnScales = true, OwnZeros = true, Sums = true }),
            "a 4-bit weight in cache whose rows end in a partial chunk takes the own-scale kernel without prefetch");
        Assert.True(VnniGemv.Prepare(8, 1, 128, 32, 4096, 4096, 32, 512, 4096) == (nint)VnniGemv.Kernel(VnniGemv.LayoutFor(8, 128, 32, 4096, 4096, 32)!.Value),
            "8-bit layouts keep their kernel (no streaming prefetch)");
        VnniGemv.StreamingPrefetch = 0;                                                       // the knob: the earlier gate
        Assert.Equal(0, VnniGemv.Prepare(4, 1, 128, 32, 4096, 2048, 32, 512, 2049));
        VnniGemv.StreamingPrefetch = savedStream;

        // Small weights made "large" by a 1 KiB gate: the streaming kernel gives the managed loop's bits at 1 and 2 threads.
        VnniGemv.CacheResidentBytes = 1024;
        foreach (var (group, sym, outF, inF) in new[] { (128, false, 37, 1152), (128, true, 19, 4096), (256, false, 9, 1280), (0, false, 9, 1001), (0, true, 6, 4224), (32, false, 21, 1024), (64, true, 13, 2048), (64, true, 7, 1536), (64, false, 11, 2112) })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(5 * group + outF + inF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + 2 * outF), inF);
            var results = new List<(string Route, float[] Y)>();
            foreach (int rows in new[] { 4, 1, 2, 0 })   // 0: the managed loop
                foreach (int threads in new[] { 1, 2 })
                {
                    VnniGemv.Enabled = rows != 0;
                    if (rows != 0) VnniGemv.StreamingRows = rows;
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    var y = new float[outF];
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                    results.Add(($"{(rows != 0 ? $"streaming, {rows} rows per pass" : "managed")}, {threads} threads", y));
                }
            VnniGemv.StreamingRows = savedRows;
            for (int i = 1; i < results.Count; i++)
                for (int r = 0; r < outF; r++)
                    Assert.True(BitConverter.SingleToInt32Bits(results[0].Y[r]) == BitConverter.SingleToInt32Bits(results[i].Y[r]),
                        $"g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}: {results[0].Route} gives {results[0].Y[r]:R}, {results[i].Route} {results[i].Y[r]:R}");
            VnniGemv.Enabled = true;
            Int8Reference.AssertMatches(q, x, 1, $"g{group} [{outF}, {inF}], streaming kernel");
        }
    }

    [Fact]
    public void Batch_1_results_do_not_depend_on_the_thread_count()
    {
        foreach (var (bits, group) in new[] { (8, 128), (8, 0), (8, 32), (4, 32), (4, 64), (4, 128), (4, 0) })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(bits + group), 258 * 1024), 258, 1024, new QuantizationScheme(bits, group, false));
            var x = QuantTestData.Gaussian(11, 1024);
            var one = new float[258];
            var three = new float[258];
            using var knobs = KernelKnobs.Save();
            WorkerPool.Shared.MaxDegreeOfParallelism = 1;
            q.MatMulTransposed(x, one, 1, ActivationPrecision.Int8);
            WorkerPool.Shared.MaxDegreeOfParallelism = 3;
            q.MatMulTransposed(x, three, 1, ActivationPrecision.Int8);
            Assert.Equal(one, three);
        }
    }

    public static TheoryData<int, int, bool, int, int> MultiRowShapes()
    {
        var data = new TheoryData<int, int, bool, int, int>();
        // bits, group (0 = per row), symmetric, Out, In: Out leaves passes of 2 and 4 (and blocks of 16) partial
        data.Add(4, 32, false, 37, 4000);    // permuted scales (4 groups per step), In not a multiple of 128
        data.Add(4, 64, false, 19, 1088);    // permuted (2 per step), 8.5 steps
        data.Add(4, 64, true, 23, 4096);
        data.Add(4, 128, false, 18, 1152);   // one group per step: 9 steps
        data.Add(4, 256, true, 7, 1280);     // groups of 2 steps: 2 pairs and one
        data.Add(4, 0, false, 9, 1001);      // per row, the last row's reads pass its end
        data.Add(4, 0, true, 6, 4224);       // per row: 8 virtual groups of 4 and one of 1
        data.Add(8, 32, false, 19, 1056);    // 8 bits, permuted (2 per step)
        data.Add(8, 64, true, 21, 640);      // one group per step
        data.Add(8, 128, false, 11, 1152);   // groups of 2 steps: 4 pairs and one
        data.Add(8, 0, true, 5, 1000);       // per row, In not a multiple of 64
        data.Add(8, 0, false, 13, 4160);     // per row, 65 steps
        return data;
    }

    [Theory]
    [MemberData(nameof(MultiRowShapes))]
    public void Rows_read_side_by_side_give_the_bits_of_rows_read_one_at_a_time_at_1_and_2_threads(int bits, int group, bool sym, int outF, int inF)
    {
        // Each row's float sums are the 1-row kernel's operations in its order, so R rows per pass may not move a bit;
        // 4-bit results must also equal the managed loop's (same integer sums, same order).
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(31 * group + outF + inF + bits), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + 5 * outF), inF);
        var results = new List<(string Route, float[] Y)>();
        using var knobs = KernelKnobs.Save();
        KernelWidths.ForEach(width =>
        {
            if (width != 512) return;
            foreach (int rows in new[] { 1, 2, 3, 4, 0 })
                foreach (int threads in new[] { 1, 2 })
                {
                    VnniGemv.Enabled = rows != 0;
                    VnniGemv.RowsPerPass = Math.Max(1, rows);
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    if (rows == 0 && bits == 8) continue; // the managed 8-bit loop rounds differently (sign trick)
                    Int8Reference.AssertMatches(q, x, 1, $"{rows} rows per pass, {threads} threads");
                    var y = new float[outF];
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                    results.Add((rows == 0 ? $"managed, {threads} threads" : $"{rows} rows per pass, {threads} threads", y));
                }
        });
        for (int i = 1; i < results.Count; i++)
            for (int r = 0; r < outF; r++)
                Assert.True(BitConverter.SingleToInt32Bits(results[0].Y[r]) == BitConverter.SingleToInt32Bits(results[i].Y[r]),
                    $"{bits}-bit g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}: {results[0].Route} gives {results[0].Y[r]:R}, {results[i].Route} {results[i].Y[r]:R}");
    }

    [Fact]
    public unsafe void The_emitted_multi_row_kernel_stores_each_rows_sums_as_the_1_row_kernel_does()
    {
        if (!VnniGemv.IsSupported) return;
        // Raw kernels on random codes, activations and scales (no zero points): per layout, the R-row kernel's 64
        // floats per row must carry the 1-row kernel's bits (odd unit counts leave partial chunks and groups).
        var layouts = new[]
        {
            new VnniGemv.Layout(4, VnniGemv.Plan.Permuted, 7, 1, 4, 64 * 7, 32),
            new VnniGemv.Layout(4, VnniGemv.Plan.Permuted, 11, 1, 2, 64 * 11, 32),
            new VnniGemv.Layout(4, VnniGemv.Plan.StepFma, 9, 1, 1, 64 * 9, 16),
            new VnniGemv.Layout(4, VnniGemv.Plan.GroupMulAdd, 7, 2, 1, 64 * 7, 16),
            new VnniGemv.Layout(8, VnniGemv.Plan.GroupMulAdd, 10, 4, 1, 64 * 10, 16),
            new VnniGemv.Layout(8, VnniGemv.Plan.Permuted, 9, 1, 2, 64 * 9, 32),
            new VnniGemv.Layout(8, VnniGemv.Plan.StepFma, 6, 1, 1, 64 * 6, 16),
        };
        var rng = new Random(5);
        foreach (var one in layouts)
            foreach (int rowsPerPass in new[] { 2, 3, 4 })
            {
                const int rows = 12;
                var multi = one with { Rows = rowsPerPass };
                var w = new byte[rows * one.RowBytes + 64];
                var xs = new sbyte[one.StepCodes * one.Units];
                var scales = new float[rows * one.ScaleStride];
                rng.NextBytes(w);
                for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
                for (int i = 0; i < scales.Length; i++) scales[i] = (float)(rng.NextDouble() - 0.5);
                var expected = new float[rows * 64];
                var actual = new float[rows * 64];
                int passes = rows / rowsPerPass * rowsPerPass;
                fixed (byte* pw = w)
                fixed (sbyte* px = xs)
                fixed (float* ps = scales)
                fixed (float* pe = expected)
                fixed (float* pa = actual)
                {
                    VnniGemv.Kernel(one)(pw, px, ps, pe, VnniGemv.Constants, rows);
                    VnniGemv.Kernel(multi)(pw, px, ps, pa, VnniGemv.Constants, passes);
                }
                for (int i = 0; i < passes * 64; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                        $"{multi}: row {i / 64} float {i % 64}: {actual[i]:R}, 1 row per pass {expected[i]:R}");
            }
    }

    [Fact]
    public unsafe void The_1_row_kernels_prefetch_knobs_change_the_prefetches_emitted_and_never_the_sums()
    {
        if (!VnniGemv.IsSupported) return;
        // prefetcht0/t1 [rdi + disp32] encode as 0F 18 8F / 0F 18 97 (ModRM mod 10, reg 1 or 2, rm rdi): counted in
        // Emit's bytes per setting, and the kernel's 64 floats per row must keep their bits under every setting.
        static int Count(byte[] code, byte modRm)
        {
            int n = 0;
            for (int i = 0; i + 2 < code.Length; i++)
                if (code[i] == 0x0F && code[i + 1] == 0x18 && code[i + 2] == modRm) n++;
            return n;
        }
        var layouts = new[]
        {
            new VnniGemv.Layout(4, VnniGemv.Plan.Permuted, 11, 1, 2, 64 * 11, 32),
            new VnniGemv.Layout(8, VnniGemv.Plan.GroupMulAdd, 16, 4, 1, 64 * 16, 16),
            new VnniGemv.Layout(8, VnniGemv.Plan.StepFma, 9, 1, 1, 64 * 9, 16),
        };
        using var knobs = KernelKnobs.Save();
        int savedDistance = VnniGemv.PrefetchDistance;
        // The default since session 9: no software prefetch (measured faster cold and hot; VnniGemv.PrefetchDistance).
        Assert.Equal(0, savedDistance);
        foreach (var l in layouts)
        {
            var code = VnniGemv.Emit(l);
            Assert.True(Count(code, 0x8F) == 0 && Count(code, 0x97) == 0, $"{l}: the default kernel prefetches");
        }
        var rng = new Random(9);
        foreach (var l in layouts)
        {
            const int rows = 5;
            var w = new byte[rows * l.RowBytes + 64];
            var xs = new sbyte[l.StepCodes * l.Units];
            var scales = new float[rows * l.ScaleStride];
            rng.NextBytes(w);
            for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
            for (int i = 0; i < scales.Length; i++) scales[i] = (float)(rng.NextDouble() - 0.5);
            float[] Run()
            {
                var y = new float[rows * 64];
                fixed (byte* pw = w)
                fixed (sbyte* px = xs)
                fixed (float* ps = scales)
                fixed (float* py = y)
                    VnniGemv.Kernel(l)(pw, px, ps, py, VnniGemv.Constants, rows);
                return y;
            }
            (int T0, int T1, float[] Y) With(int distance, int every, bool l2)
            {
                VnniGemv.PrefetchDistance = distance;
                VnniGemv.PrefetchEvery = every;
                VnniGemv.PrefetchToL2 = l2;
                var code = VnniGemv.Emit(l);
                return (Count(code, 0x8F), Count(code, 0x97), Run());
            }
            var all = With(6144, 1, false);
            var none = With(0, 1, false);
            var half = With(6144, 2, false);
            var quarter = With(6144, 4, false);
            var l2 = With(8192, 1, true);
            Assert.True(all.T0 > 0 && all.T1 == 0, $"{l}: {all.T0} prefetcht0, {all.T1} prefetcht1 on every line");
            Assert.True(none.T0 == 0 && none.T1 == 0, $"{l}: {none.T0 + none.T1} prefetches at distance 0");
            Assert.True(half.T0 > 0 && half.T0 < all.T0, $"{l}: {half.T0} prefetches every 2nd line, {all.T0} on every line");
            Assert.True(quarter.T0 > 0 && quarter.T0 < half.T0, $"{l}: {quarter.T0} prefetches every 4th line, {half.T0} every 2nd");
            Assert.True(l2.T1 == all.T0 && l2.T0 == 0, $"{l}: {l2.T1} prefetcht1 and {l2.T0} prefetcht0 into L2, {all.T0} loads");
            foreach (var other in new[] { none, half, quarter, l2 })
                for (int i = 0; i < all.Y.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(all.Y[i]) == BitConverter.SingleToInt32Bits(other.Y[i]),
                        $"{l}: row {i / 64} float {i % 64}: {other.Y[i]:R}, with the default prefetch {all.Y[i]:R}");
        }
    }

    [Fact]
    public unsafe void Scale_rows_convert_every_finite_float16_exactly_and_sum_the_zero_point_correction()
    {
        // Every finite half, positive and negative (normal, subnormal, zero), through the vector conversion.
        var halves = new List<Half>();
        for (int bits = 0; bits < 0x10000; bits++)
        {
            var h = BitConverter.UInt16BitsToHalf((ushort)bits);
            if (Half.IsFinite(h)) halves.Add(h);
        }
        int count = halves.Count / 16 * 16;
        var scales = halves.Take(count).ToArray();
        var zeros = new byte[count];
        var sums = new float[count];
        var rng = new Random(3);
        for (int g = 0; g < count; g++)
        {
            zeros[g] = (byte)rng.Next(16);
            sums[g] = rng.Next(-50, 50);
        }
        var sf = new float[count];
        fixed (Half* ps = scales)
        fixed (byte* pz = zeros)
        fixed (float* pq = sums)
        fixed (float* pf = sf)
        {
            FusedInt8Dot.ScaleRow(ps, pz, 8, 8, pf, pq, count);
            for (int g = 0; g < count; g++)
                Assert.True(BitConverter.SingleToInt32Bits((float)scales[g]) == BitConverter.SingleToInt32Bits(sf[g]),
                    $"half 0x{BitConverter.HalfToUInt16Bits(scales[g]):x4}: {sf[g]:R}, expected {(float)scales[g]:R}");
            // 16 groups with small integer terms: the correction sum_g s_g (z_g - 8) Q_g is exact.
            var small = Enumerable.Range(0, 16).Select(i => (Half)(i - 7)).ToArray();
            fixed (Half* pm = small)
            {
                float correction = FusedInt8Dot.ScaleRow(pm, pz, 8, 8, pf, pq, 16);
                double expected = 0;
                for (int g = 0; g < 16; g++) expected += (g - 7) * (zeros[g] - 8) * (double)sums[g];
                Assert.Equal(expected, correction);
            }
            // Counts that leave a tail (rows of 384 codes: 6 or 12 groups; 22 = a block and 6): the tail's scales
            // convert exactly, nothing past the count is written, and the correction is exact, with and without zero points.
            foreach (int n in new[] { 1, 6, 12, 22 })
            {
                var tail = Enumerable.Range(0, n).Select(i => (Half)(0.5 * (i % 9) - 2)).ToArray();
                var outF = Enumerable.Repeat(-1f, 48).ToArray();
                fixed (Half* pt = tail)
                fixed (float* po = outF)
                {
                    float withZeros = FusedInt8Dot.ScaleRow(pt, pz, 8, 8, po, pq, n);
                    float symmetric = FusedInt8Dot.ScaleRow(pt, null, 8, 0, po, pq, n);
                    double expectedZ = 0, expectedS = 0;
                    for (int g = 0; g < n; g++)
                    {
                        Assert.Equal((float)tail[g], outF[g]);
                        expectedZ += (double)tail[g] * (zeros[g] - 8) * sums[g];
                        expectedS += (double)tail[g] * sums[g];
                    }
                    for (int g = n; g < 48; g++) Assert.Equal(-1f, outF[g]);
                    Assert.Equal(expectedZ, withZeros);
                    Assert.Equal(8 * expectedS, symmetric);
                }
            }
        }
    }
}
