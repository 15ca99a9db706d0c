using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// Session 12's 8-bit batch-1 kernel that converts its own float16 scales (the only path for these weights since session
/// 15): symmetric 8-bit weights whose rows are whole chunks of 16 groups give the same bits in every variant (scale
/// prefetch, row sums) at every plan (g32 permuted, in the loop; g64 one step per group; g128/g256 grouped), at 1 and 2
/// threads, a partial last block of rows included, within the reference's rounding; weights it does not take
/// (asymmetric) keep the ScaleRows kernel; and 8-bit g32 above the cache gate takes the generated loop only when
/// symmetric. The 4-bit own-scale kernels (session 13/14) give the managed loop's bits. Since session 17 rows that end in
/// a partial 16-group chunk take the own-scale kernels in cache, with the same bits.
/// </summary>
public class GemvOwnScalesTests
{
    public static TheoryData<int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int>();
        // group, In, Out
        data.Add(32, 512, 53);     // g32: 16 groups, one chunk per row; three blocks of 16 rows and a partial one
        data.Add(32, 1536, 37);    // g32: 48 groups, three chunks
        data.Add(64, 1024, 53);    // one step per group: 16 steps, two lean passes of 8
        data.Add(64, 3072, 17);    // 48 groups
        data.Add(128, 2048, 41);   // 2 steps per group, 16 groups
        data.Add(128, 6144, 19);   // 48 groups
        data.Add(256, 4096, 21);   // 4 steps per group
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void Own_scales_give_the_same_bits_in_every_variant_at_1_and_2_threads_and_match_the_reference(int group, int inF, int outF)
    {
        if (!VnniGemv.IsSupported) return; // no AVX512-VNNI here: the managed loop runs
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group * 13 + inF), outF * inF), outF, inF, new QuantizationScheme(8, group, true));
        var x = QuantTestData.Gaussian((ulong)inF + 5, inF);
        int gpr = inF / group, stride = (gpr + 15) & ~15;
        var own = VnniGemv.LayoutFor(8, group, gpr, inF, inF, stride)!.Value with { OwnScales = true, Sums = VnniGemv.OwnInt8RowSums };
        Assert.Equal((nint)VnniGemv.Kernel(own), VnniGemv.Prepare(8, 1, group, gpr, inF, inF, stride, 512, outF, symmetric: true));
        using var knobs = KernelKnobs.Save();
        // (Since session 15 the ScaleRows path no longer runs for these weights: session 12's test compared its bits with
        // these; the 8-bit managed loop sums in another order, so the reference bounds them.)
        var results = new List<(string Name, float[] Y)>();
        foreach (int threads in new[] { 1, 2 })
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            // sums: OwnInt8RowSums (session 15), the kernel adding each row's accumulators.
            foreach (var (prefetch, sums) in new[] { (2, false), (0, false), (5, false), (2, true), (0, true) })
            {
                VnniGemv.OwnScalePrefetchRows = prefetch;
                VnniGemv.OwnInt8RowSums = sums;
                var y = new float[outF];
                q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                results.Add(($"prefetch {prefetch} sums {sums} threads {threads}", y));
            }
        }
        VnniGemv.OwnScalePrefetchRows = 2;
        VnniGemv.OwnInt8RowSums = true;
        WorkerPool.Shared.MaxDegreeOfParallelism = 2;
        Int8Reference.AssertMatches(q, x, 1, $"own scales g{group} In {inF}");
        foreach (var (name, y) in results.Skip(1))
            SameBits.Equal(results[0].Y, y, i => $"g{group} In {inF}: {name}: output {i} against {results[0].Name}");
    }

    [Theory]
    [InlineData(64, 1024, false)]   // asymmetric: zero points
    [InlineData(32, 1024, false)]
    public unsafe void Weights_the_kernel_does_not_take_keep_the_ScaleRows_kernel(int group, int inF, bool symmetric)
    {
        const int outF = 29;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group + inF), outF * inF), outF, inF, new QuantizationScheme(8, group, symmetric));
        var x = QuantTestData.Gaussian((ulong)inF + 9, inF);
        if (VnniGemv.IsSupported)
        {
            int gpr = inF / group, stride = (gpr + 15) & ~15;
            Assert.Equal((nint)VnniGemv.Kernel(VnniGemv.LayoutFor(8, group, gpr, inF, inF, stride)!.Value),
                VnniGemv.Prepare(8, 1, group, gpr, inF, inF, stride, 512, outF, symmetric: symmetric));
        }
        using var knobs = KernelKnobs.Save();
        foreach (int threads in new[] { 1, 2 })
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            Int8Reference.AssertMatches(q, x, 1, $"g{group} In {inF} symmetric {symmetric}, {threads} threads");
        }
    }

    [Fact]
    public void Eight_bit_g32_above_the_gate_takes_the_generated_loop_only_when_symmetric_with_own_scales()
    {
        if (!VnniGemv.IsSupported) return;
        Assert.NotEqual(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 4096, symmetric: true));
        Assert.Equal(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 4096, symmetric: false));
        Assert.Equal(0, VnniGemv.Prepare(8, 1, 32, 136, 4352, 4352, 144, 512, 4096, symmetric: true)); // 136 groups

        // Above the gate (lowered here) the own-scale g32 loop gives the bits it gives below it.
        const int outF = 45, inF = 1024;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(77, outF * inF), outF, inF, new QuantizationScheme(8, 32, true));
        var x = QuantTestData.Gaussian(78, inF);
        using var knobs = KernelKnobs.Save();
        var below = new float[outF];
        q.MatMulTransposed(x, below, 1, ActivationPrecision.Int8);
        VnniGemv.CacheResidentBytes = 1024;
        var above = new float[outF];
        q.MatMulTransposed(x, above, 1, ActivationPrecision.Int8);
        Assert.Equal(below, above);
        Int8Reference.AssertMatches(q, x, 1, "8-bit g32 above the gate");
    }

    public static TheoryData<bool, int, int> G128RowsShapes()
    {
        var data = new TheoryData<bool, int, int>();
        // symmetric, Out, In (g128: In a multiple of 2048)
        data.Add(false, 53, 4096);  // blocks of 16, 16, 16, 5 rows: 4-row passes, then a 1-row own call
        data.Add(true, 19, 6144);   // 48 groups, three chunks per row
        data.Add(false, 18, 2048);  // a last block of 2 rows: the 1-row own kernel only
        data.Add(false, 35, 2048);
        return data;
    }

    [Theory]
    [MemberData(nameof(G128RowsShapes))]
    public unsafe void G128_own_scales_in_the_multi_row_streaming_kernel_give_the_managed_loops_bits(bool sym, int outF, int inF)
    {
        if (!VnniGemv.IsSupported) return;
        const int group = 128;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(inF + 7 * outF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian((ulong)inF + 5, inF);
        int gpr = inF / group;
        var layout = VnniGemv.LayoutFor(4, group, gpr, inF, inF / 2, (gpr + 15) & ~15)!.Value;
        using var knobs = KernelKnobs.Save();
        int savedRows = VnniGemv.StreamingRows, savedAhead = VnniGemv.OwnInt4PrefetchRows;
        VnniGemv.Enabled = false;
        WorkerPool.Shared.MaxDegreeOfParallelism = 1;
        var expected = new float[outF];
        q.MatMulTransposed(x, expected, 1, ActivationPrecision.Int8);   // the managed loop
        VnniGemv.Enabled = true;
        VnniGemv.CacheResidentBytes = 1024;
        foreach (int rows in new[] { 4, 2, 3 })
            foreach (int ahead in new[] { 2, 0, 1 })
                foreach (int threads in new[] { 1, 2 })
                {
                    VnniGemv.StreamingRows = rows;
                    VnniGemv.OwnInt4PrefetchRows = ahead;
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    // The choice: the multi-row own layout.
                    var own = layout with { Rows = rows, OwnScales = true, OwnZeros = !sym, Prefetch = VnniGemv.StreamingPrefetch, Sums = true };
                    Assert.Equal((nint)VnniGemv.Kernel(own), VnniGemv.Prepare(4, 1, group, gpr, inF, inF / 2, (gpr + 15) & ~15, 512, outF, symmetric: sym));
                    var y = new float[outF];
                    q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                    SameBits.Equal(expected, y, r => $"g128 {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}, {rows} rows per pass, scales {ahead} passes ahead, {threads} threads, generated against managed");
                }
        VnniGemv.StreamingRows = savedRows;
        VnniGemv.OwnInt4PrefetchRows = savedAhead;
        WorkerPool.Shared.MaxDegreeOfParallelism = 2;
        Int8Reference.AssertMatches(q, x, 1, $"4-bit g128 multi-row own scales In {inF} {(sym ? "sym" : "asym")}");
    }

    public static TheoryData<int, bool, int, int> FourBitShapes()
    {
        var data = new TheoryData<int, bool, int, int>();
        // group, symmetric, Out, In (4 bits: In a multiple of 16 groups)
        data.Add(32, false, 53, 512);    // 16 groups: one chunk of 4 steps; blocks of 16, 16, 16, 5 rows
        data.Add(32, true, 37, 1536);    // 48 groups, three chunks
        data.Add(32, false, 19, 2048);   // 64 groups
        data.Add(64, false, 53, 1024);   // 16 groups: one chunk of 8 steps
        data.Add(64, true, 17, 3072);    // 48 groups
        data.Add(64, false, 41, 2048);
        data.Add(128, false, 37, 2048);  // g128: one group per step, 16 groups, the row buffer
        data.Add(128, true, 19, 6144);   // 48 groups
        return data;
    }

    [Theory]
    [MemberData(nameof(FourBitShapes))]
    public unsafe void Four_bit_own_scales_and_zero_points_give_the_managed_loops_bits_in_cache_and_above_the_gate(int group, bool sym, int outF, int inF)
    {
        if (!VnniGemv.IsSupported) return;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group * 31 + inF + outF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian((ulong)inF + 11, inF);
        int gpr = inF / group;
        // The choice: the own-scale layout (with zero points when asymmetric) in cache.
        var layout = VnniGemv.LayoutFor(4, group, gpr, inF, inF / 2, (gpr + 15) & ~15)!.Value;
        var own = layout with { Rows = 1, OwnScales = true, OwnZeros = !sym, Sums = true };
        using var knobs = KernelKnobs.Save();
        long savedGate = VnniGemv.CacheResidentBytes;
        Assert.Equal((nint)VnniGemv.Kernel(own), VnniGemv.Prepare(4, 1, group, gpr, inF, inF / 2, (gpr + 15) & ~15, 512, outF, symmetric: sym));

        VnniGemv.Enabled = false;
        WorkerPool.Shared.MaxDegreeOfParallelism = 1;
        var expected = new float[outF];
        q.MatMulTransposed(x, expected, 1, ActivationPrecision.Int8);   // the managed loop
        VnniGemv.Enabled = true;
        // gate 0: as configured (in cache); 1024: above the gate, g32/g64 streaming on the own loop, g128 on the multi-row one.
        foreach (long gate in new[] { savedGate, 1024L })
            foreach (int threads in new[] { 1, 2 })
            {
                VnniGemv.CacheResidentBytes = gate;
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var y = new float[outF];
                q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                SameBits.Equal(expected, y, r => $"g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}, gate {gate}, {threads} threads, generated against managed");
            }
        VnniGemv.CacheResidentBytes = savedGate;
        WorkerPool.Shared.MaxDegreeOfParallelism = 2;
        Int8Reference.AssertMatches(q, x, 1, $"4-bit own scales g{group} In {inF} {(sym ? "sym" : "asym")}");
    }

    [Fact]
    public unsafe void Four_bit_g32_above_the_gate_takes_the_own_scale_loop()
    {
        if (!VnniGemv.IsSupported) return;
        Assert.NotEqual(0, VnniGemv.Prepare(4, 1, 64, 64, 4096, 2048, 64, 512, 4096, symmetric: false));  // g64 streams
        var own = VnniGemv.LayoutFor(4, 32, 128, 4096, 2048, 128)!.Value with { Rows = 1, OwnScales = true, OwnZeros = true, Prefetch = VnniGemv.StreamingPrefetch, Sums = true };
        Assert.Equal((nint)VnniGemv.Kernel(own), VnniGemv.Prepare(4, 1, 32, 128, 4096, 2048, 128, 512, 4096, symmetric: false));  // 8 MiB
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(own with { OwnScales = false, Sums = false }));
    }

    public static TheoryData<int, bool, int, int> RowSumShapes()
    {
        var data = new TheoryData<int, bool, int, int>();
        // group, symmetric, Out, In
        data.Add(32, false, 53, 512);    // g32: blocks of 16, 16, 16, 5 rows
        data.Add(32, true, 19, 1536);
        data.Add(64, false, 37, 1024);   // g64
        data.Add(64, true, 17, 3072);
        data.Add(128, false, 53, 4096);  // g128: 4-row passes then the 1-row own kernel for a block's last rows
        data.Add(128, true, 19, 6144);
        data.Add(128, false, 18, 2048);  // a last block of 2 rows
        return data;
    }

    /// <summary>
    /// Session 14: the 4-bit own-scale kernels reducing each row's accumulators themselves (Layout.Sums, always since
    /// session 15) and Run transposing their rows in place give the managed loop's bits, in cache and above the gate
    /// (g32/g64 streaming 1 row per pass, g128 on 2-4 rows per pass), at 1 and 2 threads; so do the streaming layouts'
    /// weight prefetch hints (VnniGemv.StreamingPrefetchHint: t0, t1, t2, nta, none). The choice takes the Sums layout.
    /// </summary>
    [Theory]
    [MemberData(nameof(RowSumShapes))]
    public unsafe void Row_sums_in_the_kernel_and_prefetch_hints_give_the_managed_loops_bits(int group, bool sym, int outF, int inF)
    {
        if (!VnniGemv.IsSupported) return;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group * 17 + inF + 3 * outF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian((ulong)inF + 23, inF);
        int gpr = inF / group;
        var layout = VnniGemv.LayoutFor(4, group, gpr, inF, inF / 2, (gpr + 15) & ~15)!.Value;
        using var knobs = KernelKnobs.Save();
        long savedGate = VnniGemv.CacheResidentBytes;
        int savedRows = VnniGemv.StreamingRows, savedHint = VnniGemv.StreamingPrefetchHint;
        VnniGemv.Enabled = false;
        WorkerPool.Shared.MaxDegreeOfParallelism = 1;
        var expected = new float[outF];
        q.MatMulTransposed(x, expected, 1, ActivationPrecision.Int8);   // the managed loop
        VnniGemv.Enabled = true;
        foreach (long gate in new[] { savedGate, 1024L })
                foreach (int rows in group == 128 && gate == 1024 ? new[] { 4, 2, 3 } : new[] { 4 })
                    foreach (int hint in gate == 1024 ? new[] { 0, 1, 2, 3, 4 } : new[] { 0 })
                        foreach (int threads in new[] { 1, 2 })
                        {
                            VnniGemv.CacheResidentBytes = gate;
                            VnniGemv.StreamingRows = rows;
                            VnniGemv.StreamingPrefetchHint = hint;
                            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                            var own = layout with
                            {
                                Rows = group == 128 && gate == 1024 ? rows : 1, OwnScales = true, OwnZeros = !sym, Sums = true,
                                Prefetch = gate == 1024 ? VnniGemv.StreamingPrefetch : 0,
                            };
                            Assert.Equal((nint)VnniGemv.Kernel(own), VnniGemv.Prepare(4, 1, group, gpr, inF, inF / 2, (gpr + 15) & ~15, 512, outF, symmetric: sym));
                            var y = new float[outF];
                            q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                            SameBits.Equal(expected, y, r => $"g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}, gate {gate}, {rows} rows, hint {hint}, {threads} threads, generated against managed");
                        }
        VnniGemv.CacheResidentBytes = savedGate;
        VnniGemv.StreamingPrefetchHint = savedHint;
        VnniGemv.StreamingRows = savedRows;
        WorkerPool.Shared.MaxDegreeOfParallelism = 2;
        Int8Reference.AssertMatches(q, x, 1, $"4-bit own scales, row sums in the kernel, g{group} In {inF} {(sym ? "sym" : "asym")}");
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(layout with { Sums = true }));
    }

    [Fact]
    public void Prefetcht2_prefetchnta_and_vshufps_encode_to_the_bytes_GNU_as_produces()
    {
        // as --64 -msyntax=intel: prefetcht2 / prefetchnta byte ptr [...]
        var cases = new (bool Nta, Mem Mem, string Bytes)[]
        {
            (false, new Mem(Gpr.Rdi, 0x1800), "0f 18 9f 00 18 00 00"),
            (false, new Mem(Gpr.Rdi, 0x40), "0f 18 5f 40"),
            (false, new Mem(Gpr.R9, 0x1840), "41 0f 18 99 40 18 00 00"),
            (false, new Mem(Gpr.R12, 0x10), "41 0f 18 5c 24 10"),
            (false, new Mem(Gpr.R13, 0), "41 0f 18 5d 00"),
            (true, new Mem(Gpr.Rdi, 0x1800), "0f 18 87 00 18 00 00"),
            (true, new Mem(Gpr.Rdi, 0x40), "0f 18 47 40"),
            (true, new Mem(Gpr.R9, 0x1840), "41 0f 18 81 40 18 00 00"),
            (true, new Mem(Gpr.R12, 0x10), "41 0f 18 44 24 10"),
            (true, new Mem(Gpr.R13, 0), "41 0f 18 45 00"),
        };
        foreach (var (nta, mem, bytes) in cases)
        {
            var a = new X86Assembler();
            if (nta) a.Prefetchnta(mem);
            else a.Prefetcht2(mem);
            Assert.Equal(bytes, string.Join(' ', a.ToArray().Select(b => b.ToString("x2"))));
        }
        Assert.Throws<ArgumentException>(() => new X86Assembler().Prefetcht2(new Mem(Gpr.Rdi, 0, Broadcast: true)));
        // as --64 -msyntax=intel: vshufps zmm, zmm, zmm, imm (VnniSmallBatch4's lane tree)
        var shuffles = new (int Dst, int A, int B, byte Imm, string Bytes)[]
        {
            (16, 0, 4, 0x88, "62 e1 7c 48 c6 c4 88"),
            (17, 0, 4, 0xDD, "62 e1 7c 48 c6 cc dd"),
            (16, 8, 12, 0x88, "62 c1 3c 48 c6 c4 88"),
            (3, 29, 31, 0xDD, "62 91 14 40 c6 df dd"),
        };
        foreach (var (dst, a0, b0, imm, bytes) in shuffles)
        {
            var a = new X86Assembler();
            a.Vshufps(new Zmm(dst), new Zmm(a0), new Zmm(b0), imm);
            Assert.Equal(bytes, string.Join(' ', a.ToArray().Select(b => b.ToString("x2"))));
        }
    }
    public static TheoryData<int, int, bool, int, int> PartialChunkShapes()
    {
        var data = new TheoryData<int, int, bool, int, int>();
        // bits, group, symmetric, Out, In: rows whose last 16-group chunk is partial
        data.Add(4, 32, false, 53, 384);   // MiniLM's In: 12 groups, blocks of 16, 16, 16, 5 rows
        data.Add(4, 64, false, 37, 384);   // 6 groups
        data.Add(4, 64, true, 19, 768);    // 12 groups
        data.Add(4, 128, false, 53, 384);  // g128 (the row buffer): 3 groups
        data.Add(4, 128, true, 29, 1152);  // 9 groups
        data.Add(4, 32, true, 17, 1152);   // 36 groups: two whole chunks and 4 groups
        data.Add(4, 64, false, 21, 2304);  // 36 groups
        data.Add(8, 32, true, 53, 384);    // 8 bits (symmetric): g32 permuted, 12 groups
        data.Add(8, 64, true, 37, 384);    // one step per group, 6 groups
        data.Add(8, 128, true, 19, 384);   // 2 steps per group, 3 groups
        data.Add(8, 32, true, 17, 1088);   // 34 groups
        data.Add(8, 64, true, 29, 1088);   // 17 groups
        return data;
    }

    /// <summary>
    /// Session 17: rows ending in a partial 16-group chunk (In 384 at g32/g64/g128, ...) take the 1-row own-scale kernels
    /// in cache, their last chunk's scales and zero points loaded under a mask. 4 bits give the managed loop's bits; both
    /// widths give the same bits at 1 and 2 threads as the ScaleRows kernel that runs them above the cache gate (8-bit
    /// g32: 1 and 2 threads only), and match the reference.
    /// </summary>
    [Theory]
    [MemberData(nameof(PartialChunkShapes))]
    public unsafe void Rows_ending_in_a_partial_chunk_take_the_own_scale_kernel_in_cache_with_the_same_bits(int bits, int group, bool sym, int outF, int inF)
    {
        if (!VnniGemv.IsSupported) return;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(bits * 1000 + group * 31 + inF + outF), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)inF + 23, inF);
        int gpr = inF / group, rowBytes = inF * bits / 8, stride = (gpr + 15) & ~15;
        var own = VnniGemv.LayoutFor(bits, group, gpr, inF, rowBytes, stride)!.Value
            with { Rows = 1, ScaleStride = gpr, OwnScales = true, OwnZeros = bits == 4 && !sym, Sums = bits == 4 || VnniGemv.OwnInt8RowSums };
        Assert.Equal((nint)VnniGemv.Kernel(own), VnniGemv.Prepare(bits, 1, group, gpr, inF, rowBytes, stride, 512, outF, symmetric: sym));
        using var knobs = KernelKnobs.Save();
        long savedGate = VnniGemv.CacheResidentBytes;
        var runs = new List<(string Name, float[] Y)>();
        if (bits == 4)
        {
            VnniGemv.Enabled = false;
            WorkerPool.Shared.MaxDegreeOfParallelism = 1;
            var managed = new float[outF];
            q.MatMulTransposed(x, managed, 1, ActivationPrecision.Int8);
            runs.Add(("the managed loop", managed));
            VnniGemv.Enabled = true;
        }
        // The gate as configured (in cache: the own kernel), then 1 KiB (above it: ScaleRows and the plain kernel; 8-bit g32
        // there runs the managed loop, which sums in another order, so the reference bounds it instead).
        foreach (long gate in bits == 8 && group == 32 ? new[] { savedGate } : new[] { savedGate, 1024L })
            foreach (int threads in new[] { 1, 2 })
            {
                VnniGemv.CacheResidentBytes = gate;
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var y = new float[outF];
                q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                runs.Add(($"gate {gate}, {threads} threads", y));
            }
        VnniGemv.CacheResidentBytes = savedGate;
        foreach (var (name, y) in runs.Skip(1))
            SameBits.Equal(runs[0].Y, y, r => $"{bits}-bit g{group} {(sym ? "sym" : "asym")} [{outF}, {inF}] row {r}: {name} against {runs[0].Name}");
        WorkerPool.Shared.MaxDegreeOfParallelism = 2;
        Int8Reference.AssertMatches(q, x, 1, $"{bits}-bit g{group} partial chunk In {inF} {(sym ? "sym" : "asym")}");
    }
}
