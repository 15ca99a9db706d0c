using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// The generated small-batch 4-bit kernels (<see cref="VnniSmallBatch4"/>, 2..15 rows, packed codes read in place):
/// within rounding of the exact integer reference over odd shapes (inputs not a multiple of 128 or of the group, rows
/// not a multiple of the 2-4-row blocks, every batch 2..15), per-row and g8-g256 groups, symmetric and asymmetric;
/// the same bits at 1 and 2 threads and wherever a batch row falls in the tiles; and off wherever it must be off.
/// Without AVX-512 VNNI (or with CONDENSE_NO_JIT=1) the comparisons have nothing to compare and return.
/// </summary>
public class VnniSmallBatch4Tests
{
    public static TheoryData<int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (bool sym in new[] { true, false })
        {
            data.Add(0, 1031, sym);   // one group per row, a tail of 7 codes past 8 steps, odd
            data.Add(16, 400, sym);   // 8 groups per step, a tail of one group of 16
            data.Add(32, 4128, sym);  // many steps, a tail of one group
            data.Add(64, 448, sym);   // 3 steps and half a step of tail
            data.Add(128, 640, sym);  // one group per step
            data.Add(256, 768, sym);  // two steps per group (paired kernel)
            data.Add(64, 1024, sym);  // paired kernel, 4 groups per pair of steps
            data.Add(0, 512, sym);    // paired kernel, one group per row
        }
        data.Add(0, 128, false);      // exactly one step
        data.Add(0, 129, true);       // one step and one code (the last byte of a row holds one code)
        data.Add(256, 2304, false);   // an odd number of groups of 256 (a group ends mid-row at every other step)
        data.Add(16, 272, false);     // 2 steps and a tail of one group of 16
        data.Add(128, 1280, false);   // paired kernel, 2 groups per pair of steps
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_batch_from_2_to_15_is_within_rounding_of_the_integer_reference(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        foreach (int outF in new[] { 1, 13, 130 })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(5 * inF + group + outF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + 3 * outF), 15 * inF, 2f);
            Run(() =>
            {
                for (int batch = 2; batch <= 15; batch++)
                {
                    Assert.True(VnniSmallBatch4.Applies(4, group == 0 ? inF : group, group == 0 ? 1 : (inF + group - 1) / group, inF, outF, batch, 512));
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"small-batch int4 out {outF}");
                }
            });
        }
    }

    [Fact]
    public void Extreme_codes_and_activations_stay_within_rounding()
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        // Asymmetric rows whose codes sit at 0 and 15, inputs at +-max: the largest products (15 x 127).
        const int outF = 37, inF = 2112, batch = 11; // 16 steps and a tail of 64
        var w = new float[outF * inF];
        for (int i = 0; i < w.Length; i++) w[i] = (i * 7 % 3 == 0 ? 10f : -10f) + (i % outF);
        var x = new float[batch * inF];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 5 == 0 ? -1f : 1f) * (1 + i % 3);
        foreach (int group in new[] { 0, 32, 64 })
        {
            var q = GroupQuantizedWeight.Quantize(w, outF, inF, new QuantizationScheme(4, group, false));
            Run(() => Int8Reference.AssertMatches(q, x, batch, $"small-batch extreme g{group}"));
        }
    }

    [Theory]
    [InlineData(0, 1600, true)]
    [InlineData(64, 1600, false)]
    [InlineData(128, 1664, true)]
    [InlineData(64, 1536, false)] // paired kernel
    [InlineData(0, 1536, true)]   // paired kernel, one group per row
    public void Same_bits_at_1_and_2_threads_and_wherever_a_row_falls_in_the_tiles(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        const int outF = 203, batch = 15;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(25, outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian(26, batch * inF);
        Run(() =>
        {
            var pool = WorkerPool.Shared;
            var one = new float[batch * outF];
            var two = new float[batch * outF];
            using (KernelKnobs.Save())
            {
                pool.MaxDegreeOfParallelism = 1;
                q.MatMulTransposed(x, one, batch, ActivationPrecision.Int8);
                pool.MaxDegreeOfParallelism = 2;
                q.MatMulTransposed(x, two, batch, ActivationPrecision.Int8);
            }
            Assert.Equal(one, two);

            // Batch 15 runs as tiles of 8 and 7 rows (R = 2); smaller batches as other tiles and blocks: every row the same.
            foreach (int size in new[] { 2, 3, 4, 5, 9 })
                foreach (int first in new[] { 0, 6, batch - size })
                {
                    var part = new float[size * outF];
                    q.MatMulTransposed(x.AsSpan(first * inF, size * inF), part, size, ActivationPrecision.Int8);
                    Assert.Equal(one.AsSpan(first * outF, size * outF).ToArray(), part);
                }
        });
    }

    [Fact]
    public void Close_to_the_managed_batched_kernels_they_replace()
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        const int outF = 70, inF = 4096, batch = 8;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(31, outF * inF), outF, inF, new QuantizationScheme(4, 64, false));
        var x = QuantTestData.Gaussian(32, batch * inF);
        Assert.True(VnniSmallBatch4.UsesPairs(64, 64, inF));
        Assert.False(VnniSmallBatch4.UsesPairs(32, 128, inF));  // groups of 32 change within a lane's two steps
        Assert.False(VnniSmallBatch4.UsesPairs(64, 7, 448));     // 3.5 pairs of steps: the single-step kernel
        Run(() =>
        {
            var generated = new float[batch * outF];
            var managed = new float[batch * outF];
            q.MatMulTransposed(x, generated, batch, ActivationPrecision.Int8);
            using (KernelKnobs.Save())
            {
                VnniSmallBatch4.DisabledOverride = true;
                q.MatMulTransposed(x, managed, batch, ActivationPrecision.Int8);
            }
            float max = managed.Max(MathF.Abs);
            for (int i = 0; i < managed.Length; i++) Assert.True(MathF.Abs(generated[i] - managed[i]) <= 1e-5f * max, $"[{i}] {generated[i]} vs {managed[i]}");
            Assert.NotEqual(managed, generated); // really two kernels (different float32 rounding order)
        });
    }

    [Theory]
    [InlineData(64, 1536, false)] // paired kernel
    [InlineData(32, 1056, true)]  // unpaired, with a tail of one group
    public void Every_prefetch_variant_and_rows_per_call_give_the_same_bits(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        const int outF = 61;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(27, outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian(28, 8 * inF);
        int savedPf = VnniSmallBatch4.PrefetchVariant, savedCap = VnniSmallBatch4.RowsCap;
        bool savedIl = VnniSmallBatch4.InterleaveBatchRows;
        using (KernelKnobs.Save())
        {
            Run(() =>
            {
            foreach (int batch in new[] { 2, 3, 4, 5, 7, 8 })
            {
                var expected = new float[batch * outF];
                q.MatMulTransposed(x.AsSpan(0, batch * inF), expected, batch, ActivationPrecision.Int8);
                for (int pf = 0; pf < 4; pf++)
                    foreach (int cap in new[] { 0, 1, 2 })
                        foreach (bool interleave in new[] { false, true })
                        {
                            VnniSmallBatch4.PrefetchVariant = pf;
                            VnniSmallBatch4.RowsCap = cap;
                            VnniSmallBatch4.InterleaveBatchRows = interleave;
                            var y = new float[batch * outF];
                            q.MatMulTransposed(x.AsSpan(0, batch * inF), y, batch, ActivationPrecision.Int8);
                            Assert.Equal(expected, y);
                        }
                VnniSmallBatch4.InterleaveBatchRows = savedIl;
                VnniSmallBatch4.PrefetchVariant = savedPf;
                VnniSmallBatch4.RowsCap = savedCap;
            }
            });
        }
    }

    [Fact]
    public unsafe void The_vector_pair_layout_puts_every_code_where_the_order_table_says()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) return;
        var random = new Random(7);
        var from = new sbyte[256];
        var to = new sbyte[256];
        for (int round = 0; round < 4; round++)
        {
            for (int k = 0; k < 256; k++) from[k] = (sbyte)random.Next(-128, 128);
            fixed (sbyte* f = from) fixed (sbyte* t = to) VnniSmallBatch4.PairBlock(f, t);
            for (int k = 0; k < 256; k++) Assert.Equal(from[VnniSmallBatch4.s_pairOrder[k]], to[k]);
        }
        // The table is a permutation of the 256 codes.
        Assert.Equal(Enumerable.Range(0, 256), VnniSmallBatch4.s_pairOrder.Order());
    }

    [Fact]
    public void Prefetcht0_on_the_row_pointers_encodes_to_the_bytes_GNU_as_produces()
    {
        // as --64 -msyntax=intel: prefetcht0 byte ptr [...], the kernel's row registers (rsi, r10, r11, rbx) 6 KB ahead
        var cases = new (Mem Mem, string Bytes)[]
        {
            (new Mem(Gpr.R10, 0x1800), "41 0f 18 8a 00 18 00 00"),
            (new Mem(Gpr.Rsi, 0x1840), "0f 18 8e 40 18 00 00"),
            (new Mem(Gpr.Rbx, 0x1800), "0f 18 8b 00 18 00 00"),
            (new Mem(Gpr.R11, 0x1840), "41 0f 18 8b 40 18 00 00"),
        };
        foreach (var (mem, bytes) in cases)
        {
            var a = new X86Assembler();
            a.Prefetcht0(mem);
            Assert.Equal(bytes, string.Join(' ', a.ToArray().Select(b => b.ToString("x2"))));
        }
    }

    [Fact]
    public void Prefetcht1_encodes_to_the_bytes_GNU_as_produces()
    {
        // as --64 -msyntax=intel: prefetcht1 byte ptr [...]
        var cases = new (Mem Mem, string Bytes)[]
        {
            (new Mem(Gpr.Rdi, 0x1800), "0f 18 97 00 18 00 00"),
            (new Mem(Gpr.Rdi, 0x40), "0f 18 57 40"),
            (new Mem(Gpr.Rax, 0), "0f 18 10"),
            (new Mem(Gpr.R9, 0x1840), "41 0f 18 91 40 18 00 00"),
            (new Mem(Gpr.R12, 0x10), "41 0f 18 54 24 10"),
            (new Mem(Gpr.R13, 0), "41 0f 18 55 00"),
            (new Mem(Gpr.Rsp, -8), "0f 18 54 24 f8"),
            (new Mem(Gpr.Rbp, 0x100), "0f 18 95 00 01 00 00"),
        };
        foreach (var (mem, bytes) in cases)
        {
            var a = new X86Assembler();
            a.Prefetcht1(mem);
            Assert.Equal(bytes, string.Join(' ', a.ToArray().Select(b => b.ToString("x2"))));
        }
        Assert.Throws<ArgumentException>(() => new X86Assembler().Prefetcht1(new Mem(Gpr.Rdi, 0, Broadcast: true)));
    }

    [Fact]
    public void Off_for_other_codes_batches_groups_and_without_generated_code()
    {
        bool available = VnniSmallBatch4.IsAvailable;
        Assert.Equal(available, VnniSmallBatch4.Applies(4, 64, 64, 4096, 1024, 8, 512));
        Assert.Equal(available, VnniSmallBatch4.Applies(4, 1031, 1, 1031, 67, 2, 512));
        Assert.False(VnniSmallBatch4.Applies(8, 64, 64, 4096, 1024, 8, 512));   // 8-bit codes: other kernels
        Assert.False(VnniSmallBatch4.Applies(4, 64, 64, 4096, 1024, 1, 512));   // batch 1: the GEMV
        Assert.Equal(available, VnniSmallBatch4.Applies(4, 64, 64, 4096, 11008, 2, 512)); // a large weight at 2 rows too (the L2 block prefetch)
        Assert.Equal(available, VnniSmallBatch4.Applies(4, 64, 64, 4096, 11008, 8, 512));
        Assert.False(VnniSmallBatch4.Applies(4, 64, 64, 4096, 1024, 16, 512));  // 16 rows: the GEMM
        Assert.False(VnniSmallBatch4.Applies(4, 64, 1, 64, 1024, 4, 512));      // no whole step
        Assert.False(VnniSmallBatch4.Applies(4, 48, 8, 384, 1024, 4, 512));     // groups of 48 would change scale within a step's lane pattern
        Assert.False(VnniSmallBatch4.Applies(4, 64, 64, 4096, 1024, 8, 256));   // AVX-512 off
        if (Environment.GetEnvironmentVariable("CONDENSE_NO_JIT") == "1") Assert.False(available);
        using var knobs = KernelKnobs.Save();
        KernelOptions.GeneratedCode = false;
        Assert.False(VnniSmallBatch4.Applies(4, 64, 64, 4096, 1024, 8, 512));
    }

    [Fact]
    public unsafe void The_transposing_lane_sum_adds_every_vector_in_one_order_wherever_it_sits()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) return;
        // Lanes of very different magnitudes, so that another addition order rounds differently.
        var random = new Random(3);
        var v = new float[16 * 16];
        for (int i = 0; i < v.Length; i++) v[i] = (float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-20, 20)));
        static float Expected(float[] v, int i)
        {
            var p = new float[4];
            for (int k = 0; k < 4; k++) p[k] = (v[16 * i + k] + v[16 * i + k + 8]) + (v[16 * i + k + 4] + v[16 * i + k + 12]);
            return (p[0] + p[2]) + (p[1] + p[3]);
        }
        var sums = new float[16];
        fixed (float* pv = v, ps = sums) VnniSmallBatch4.ReduceLanes16(pv, ps);
        for (int i = 0; i < 16; i++) Assert.Equal(Expected(v, i), sums[i]);
        // The same vectors in another order (reversed, vector 5 also copied into every other slot): the same bits each.
        var w = new float[16 * 16];
        for (int i = 0; i < 16; i++) Array.Copy(v, 16 * (i % 2 == 0 ? 15 - i : 5), w, 16 * i, 16);
        fixed (float* pw = w, ps = sums) VnniSmallBatch4.ReduceLanes16(pw, ps);
        for (int i = 0; i < 16; i++) Assert.Equal(Expected(v, i % 2 == 0 ? 15 - i : 5), sums[i]);
    }

    [Theory]
    [InlineData(4, 16, 400, false)]   // 25 groups: one whole 16-group chunk in the start lanes, 9 in scalar
    [InlineData(4, 32, 4128, true)]   // 129 groups: 8 chunks and one group in scalar, a tail
    [InlineData(4, 64, 1024, false)]  // 16 groups: one chunk, paired kernel
    [InlineData(4, 0, 1031, false)]   // one group per row: all of it in scalar
    [InlineData(8, 32, 1600, false)]  // 50 groups
    [InlineData(8, 128, 1536, true)]  // 12 groups: all in scalar
    public void Fused_and_session_10_epilogues_both_match_the_reference_and_each_other(int bits, int group, int inF, bool sym)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        const int outF = 37;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(inF + group), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(2 * inF + bits), 15 * inF, 2f);
        using var knobs = KernelKnobs.Save();
        Run(() =>
        {
            foreach (int batch in new[] { 2, 3, 5, 8, 13 })
            {
                var y = new float[2][];
                for (int f = 0; f < 2; f++)
                {
                    VnniSmallBatch4.FusedEpilogue = f == 1;
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"int{bits} g{group} epilogue {f}");
                    y[f] = new float[batch * outF];
                    q.MatMulTransposed(x.AsSpan(0, batch * inF), y[f], batch, ActivationPrecision.Int8);
                }
                float max = y[0].Max(MathF.Abs);
                for (int i = 0; i < y[0].Length; i++) Assert.True(MathF.Abs(y[0][i] - y[1][i]) <= 1e-5f * max, $"[{i}] {y[0][i]} vs {y[1][i]}");
            }
        });
    }

    [Theory]
    [InlineData(64, 4096, false)]  // paired, 64 groups (the S2 rows' format), whole chunks of 16 groups only
    [InlineData(64, 1600, true)]   // unpaired, a tail of 64 codes and leftover groups past the last chunk of 16
    [InlineData(0, 1031, false)]   // one group per row, a tail
    [InlineData(32, 4128, false)]  // a tail of one group, 129 groups
    [InlineData(256, 768, true)]   // paired, 3 groups (no whole chunk of 16)
    public void Pipelined_blocks_give_the_same_bits_as_one_block_at_a_time(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        const int outF = 157; // 13 blocks of 12 and one row
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(31, outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian(32, 15 * inF);
        using var knobs = KernelKnobs.Save();
        var pool = WorkerPool.Shared;
        Run(() =>
        {
            foreach (int batch in new[] { 2, 3, 4, 5, 8, 9, 15 })
                foreach (int threads in new[] { 1, 2 })
                {
                    pool.MaxDegreeOfParallelism = threads;
                    var y = new float[2][];
                    for (int p = 0; p < 2; p++)
                    {
                        VnniSmallBatch4.PipelinedBlocks = p == 1;
                        y[p] = new float[batch * outF];
                        q.MatMulTransposed(x.AsSpan(0, batch * inF), y[p], batch, ActivationPrecision.Int8);
                    }
                    Assert.Equal(y[0], y[1]);
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"pipelined g{group} batch {batch}");
                }
        });
    }

    [Theory]
    [InlineData(64, 4096, false)]  // the S2 rows' format: 64 groups, 4 chunks of 16
    [InlineData(64, 4096, true)]   // symmetric (zero points 8)
    [InlineData(64, 1024, false)]  // one chunk per row
    [InlineData(128, 6144, false)] // g128: 48 groups, 3 chunks
    [InlineData(256, 4096, true)]  // g256: one chunk, symmetric
    [InlineData(64, 1536, false)]  // 24 groups: not whole chunks, stays on the managed set-up
    public void Own_scale_kernels_give_the_same_bits_as_the_managed_set_up(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        const int outF = 157; // 13 blocks of 12 and one row: every rows-per-call remainder
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(41, outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian(42, 15 * inF);
        using var knobs = KernelKnobs.Save();
        var pool = WorkerPool.Shared;
        Run(() =>
        {
            foreach (int batch in new[] { 2, 3, 4, 5, 7, 8, 9, 15 })
                foreach (int threads in new[] { 1, 2 })
                {
                    pool.MaxDegreeOfParallelism = threads;
                    // 0: managed set-up; 1: own scales, managed lane tree; 2: own scales, lane tree in the kernel (tiles of 6+).
                    var y = new float[3][];
                    for (int p = 0; p < 3; p++)
                    {
                        VnniSmallBatch4.OwnScales = p >= 1;
                        VnniSmallBatch4.OwnLaneTree = p == 2;
                        y[p] = new float[batch * outF];
                        q.MatMulTransposed(x.AsSpan(0, batch * inF), y[p], batch, ActivationPrecision.Int8);
                    }
                    for (int p = 1; p < 3; p++)
                        for (int i = 0; i < y[0].Length; i++)
                            Assert.True(BitConverter.SingleToInt32Bits(y[0][i]) == BitConverter.SingleToInt32Bits(y[p][i]),
                                $"g{group} in {inF} batch {batch} threads {threads} variant {p} [{i}]: {y[0][i]} vs {y[p][i]}");
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"own scales g{group} batch {batch}");
                }
            // Corrections that are exactly zero (zero points 0, and a batch row of zeros: zero group sums), where
            // only the sign of a zero could differ between the kernel's sign flip and the managed negation.
            var zero = GroupQuantizedWeight.FromParts(outF, inF, q.Scheme, q.Packed, q.Scales, sym ? null : new byte[q.ZeroPoints!.Length]);
            var x0 = x.AsSpan(0, 3 * inF).ToArray();
            Array.Clear(x0, inF, inF);
            var z = new float[2][];
            for (int p = 0; p < 2; p++)
            {
                VnniSmallBatch4.OwnScales = p == 1;
                VnniSmallBatch4.OwnLaneTree = true;
                z[p] = new float[3 * outF];
                zero.MatMulTransposed(x0, z[p], 3, ActivationPrecision.Int8);
            }
            for (int i = 0; i < z[0].Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(z[0][i]) == BitConverter.SingleToInt32Bits(z[1][i]), $"zero corrections [{i}]: {z[0][i]} vs {z[1][i]}");
        });
    }

    [Theory]
    [InlineData(64, 4096, false, 158)] // own-scale kernels (the S2 rows' format); the last block ends in 2 rows
    [InlineData(64, 1536, true, 159)]  // paired, managed set-up; the last block ends in 3 rows
    [InlineData(0, 512, true, 161)]    // paired, one group per row; the last block ends in 5 rows
    [InlineData(256, 768, false, 158)] // paired g256, no whole chunk of 16 groups
    [InlineData(32, 1056, true, 161)]  // unpaired, a tail of one group
    public void Prefetch_variants_and_rows_per_call_give_the_same_bits(int group, int inF, bool sym, int outF)
    {
        if (!VnniSmallBatch4.IsAvailable) return;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(51, outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian(52, 15 * inF);
        using var knobs = KernelKnobs.Save();
        var pool = WorkerPool.Shared;
        // Each setting on top of the defaults: prefetch 8 KB / 6 KB for 4+ rows (the default before session 15: 9 KB), one
        // row per call on 2 threads for tiles of up to 3 rows, and all of them at once.
        var settings = new (string Name, Action Set)[]
        {
            ("pf 8 KB", () => VnniSmallBatch4.PrefetchVariant = 6),
            ("pf4 6 KB", () => VnniSmallBatch4.PrefetchVariantWide = -1),
            ("shared rows 1", () => { VnniSmallBatch4.SharedSmallTileRows = 1; VnniSmallBatch4.SharedSmallTileMaxRows = 3; }),
            ("shared rows off", () => VnniSmallBatch4.SharedSmallTileRows = 0),
            ("all", () =>
            {
                VnniSmallBatch4.PrefetchVariant = 6;
                VnniSmallBatch4.PrefetchVariantWide = -1;
                VnniSmallBatch4.SharedSmallTileRows = 1;
            }),
        };
        void Defaults()
        {
            VnniSmallBatch4.PrefetchVariant = 2;
            VnniSmallBatch4.PrefetchVariantWide = 9;
            VnniSmallBatch4.SharedSmallTileRows = 1;
            VnniSmallBatch4.SharedSmallTileMaxRows = 2;
        }
        Run(() =>
        {
            foreach (int batch in new[] { 2, 3, 4, 5, 8, 9, 15 })
                foreach (int threads in new[] { 1, 2 })
                {
                    pool.MaxDegreeOfParallelism = threads;
                    Defaults();
                    var expected = new float[batch * outF];
                    q.MatMulTransposed(x.AsSpan(0, batch * inF), expected, batch, ActivationPrecision.Int8);
                    foreach (var (name, set) in settings)
                    {
                        Defaults();
                        set();
                        var y = new float[batch * outF];
                        q.MatMulTransposed(x.AsSpan(0, batch * inF), y, batch, ActivationPrecision.Int8);
                        SameBits.Equal(expected, y, i => $"g{group} in {inF} out {outF} batch {batch} threads {threads} {name} [{i}]");
                    }
                    if (threads == 1) Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"g{group} batch {batch}");
                }
        });
    }

    [Fact]
    public unsafe void Correction_lanes_are_one_chain_per_output_in_group_order()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) return;
        var random = new Random(11);
        foreach (int gpr in new[] { 1, 15, 16, 33, 64, 70, 129 })
            for (int rows = 1; rows <= 12; rows++)
                foreach (int m in new[] { 1, 2, 3, 4, 5, 7, 8 })
                {
                    int stride = gpr + 5;
                    var sz = new float[rows * gpr + 16]; // StartCorrections reads up to 16 floats past the last row
                    var gs = new float[m * stride];
                    for (int i = 0; i < rows * gpr; i++) sz[i] = (float)(random.NextDouble() - 0.5) * 3;
                    for (int i = rows * gpr; i < sz.Length; i++) sz[i] = float.NaN; // past the rows: must not count
                    for (int i = 0; i < gs.Length; i++) gs[i] = random.Next(-2000, 2000);
                    var acc = new float[rows * m * 16];
                    fixed (float* a = acc) fixed (float* s = sz) fixed (float* g = gs)
                        VnniSmallBatch4.StartCorrections(a, s, gpr, g, stride, rows, m);
                    for (int r = 0; r < rows; r++)
                        for (int c = 0; c < m; c++)
                            for (int l = 0; l < 16; l++)
                            {
                                // Lane l: sum over the row's groups l, l + 16, ... (a partial last chunk included, since
                                // session 17), in order, one FMA each, negated.
                                float lane = 0f;
                                for (int k = l; k < gpr; k += 16) lane = MathF.FusedMultiplyAdd(sz[r * gpr + k], gs[c * stride + k], lane);
                                Assert.Equal(-lane, acc[(r * m + c) * 16 + l]);
                            }
                }
    }

    /// <summary>At 512 bits, with the GEMM off (small weights take it from 4 rows) so every batch 2..15 runs here.</summary>
    private static void Run(Action run) => KernelWidths.ForEach(width =>
    {
        if (width != 512) return;
        Int8Gemm.ManagedOnlyOverride = true;
        try { run(); }
        finally { Int8Gemm.ManagedOnlyOverride = false; }
    });
}
