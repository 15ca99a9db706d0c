using System.Runtime.Intrinsics.X86;
using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// The generated AVX-512 VNNI kernels of <see cref="Int8Gemm"/> (<see cref="VnniGemmKernel"/>): bit-identical to the
/// managed vpmaddwd kernels over odd shapes (inputs not a multiple of 4 or 64, rows not a multiple of the 64-row panel,
/// batches not a multiple of the 6- and 3-row tiles, 1 to 130 rows), per-row and grouped, symmetric and asymmetric; within rounding of
/// the exact integer reference; the same bits at 1 and 2 threads; and off wherever it must be off. On machines without
/// AVX-512 VNNI (or with CONDENSE_NO_JIT=1, DOTNET_EnableAVX512F=0) the comparisons have nothing to compare and return.
/// </summary>
public class VnniGemmTests
{
    public static TheoryData<int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int group in new[] { 0, 16, 32, 64, 128, 256 })
            foreach (bool sym in new[] { true, false })
                data.Add(group, group switch { 0 => 1031, 16 => 272, 32 => 160, 64 => 448, 128 => 640, _ => 768 }, sym);
        data.Add(0, 7, false);     // shorter than one quad chunk, not a multiple of 4
        data.Add(0, 33, true);     // 8 quads and one input
        data.Add(0, 130, false);   // a chunk of 32 quads and a partial one
        data.Add(0, 4097, false);  // many chunks, odd
        data.Add(16, 4112, true);  // many groups of 16 per chunk, many chunks
        data.Add(128, 128, false); // one group
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Same_bits_as_the_managed_kernel_and_within_rounding_of_the_integer_reference(int group, int inF, bool sym)
    {
        if (!VnniGemmKernel.IsAvailable) return;
        foreach (int outF in new[] { 1, 67, 130 })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * inF + group + outF), outF * inF), outF, inF, new QuantizationScheme(8, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + outF), 33 * inF, 3f);
            RunGemm(() =>
            {
                Assert.True(Int8Gemm.UsesVnni(group == 0 ? inF : group, group == 0 ? 1 : inF / group));
                foreach (int batch in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 33 })
                {
                    var xb = x.AsSpan(0, batch * inF).ToArray();
                    var vnni = new float[batch * outF];
                    var managed = new float[batch * outF];
                    q.MatMulTransposed(xb, vnni, batch, ActivationPrecision.Int8);
                    using (KernelKnobs.Save())
                    {
                        Int8Gemm.ManagedOnlyOverride = true;
                        q.MatMulTransposed(xb, managed, batch, ActivationPrecision.Int8);
                    }
                    Assert.Equal(managed, vnni);
                    Int8Reference.AssertMatches(q, xb, batch, $"vnni out {outF}");
                }
            });
        }
    }

    public static TheoryData<int, int, bool> FourBitShapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int group in new[] { 0, 16, 32, 64, 128 })
            foreach (bool sym in new[] { true, false })
                data.Add(group, group switch { 0 => 1031, 16 => 272, 32 => 160, 64 => 448, _ => 640 }, sym);
        data.Add(0, 7, true);     // one partial quad, odd (the last byte of a row holds one code)
        data.Add(0, 130, false);  // a chunk and a partial one
        data.Add(32, 4128, false); // many groups and chunks
        return data;
    }

    [Theory]
    [MemberData(nameof(FourBitShapes))]
    public void Four_bit_codes_run_on_the_generated_kernels_within_rounding_of_the_integer_reference(int group, int inF, bool sym)
    {
        if (!VnniGemmKernel.IsAvailable) return;
        foreach (int outF in new[] { 1, 67, 130 })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(3 * inF + group + outF), outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + 2 * outF), 33 * inF, 3f);
            RunGemm(() =>
            {
                Assert.True(Int8Gemm.Applies(4, group == 0 ? 1 : inF / group, inF, 1, 512));
                foreach (int batch in new[] { 1, 2, 3, 4, 5, 7, 9, 17, 33 })
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"vnni int4 out {outF}");
            });
        }
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(32, false)]
    [InlineData(128, false)]
    public void Four_bit_codes_give_the_same_bits_at_1_and_2_threads_and_wherever_a_row_falls_in_the_tiles(int group, bool sym)
    {
        if (!VnniGemmKernel.IsAvailable) return;
        const int outF = 203, inF = 1536, batch = 40;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(15, outF * inF), outF, inF, new QuantizationScheme(4, group, sym));
        var x = QuantTestData.Gaussian(16, batch * inF);
        RunGemm(() => AssertThreadAndTileInvariance(q, x, outF, inF, batch));
    }

    public static TheoryData<int, int, bool> RowPanelShapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (int bits in new[] { 8, 4 })
            foreach (int inF in new[] { 7, 130, 1031 })
                data.Add(bits, inF, bits == 4 || inF == 130); // 7: one partial quad; 130: 32 quads and a half; 1031: odd
        data.Add(8, 4097, false); // one quad past a whole 4,096
        return data;
    }

    /// <summary>
    /// The per-row kernel (one generated call per 64-row panel and tile of up to 6 batch rows over the whole input, the
    /// activation rows read in place) at the batches the dispatch sends it, 16 to 130 including tails of 1..5 rows:
    /// the managed kernel's bits (8-bit), within rounding of the integer reference (8- and 4-bit), and the same bits on
    /// 1 and 2 threads (rows and activation quantization then split between the threads).
    /// </summary>
    [Theory]
    [MemberData(nameof(RowPanelShapes))]
    public void Per_row_panels_at_batches_16_to_130_match_the_managed_kernel_and_the_reference_at_1_and_2_threads(int bits, int inF, bool sym)
    {
        if (!VnniGemmKernel.IsAvailable) return;
        foreach (int outF in new[] { 1, 67, 130 })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(11 * inF + bits + outF), outF * inF), outF, inF, new QuantizationScheme(bits, 0, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + 5 * outF), 130 * inF, 2f);
            foreach (int batch in new[] { 16, 17, 23, 64, 127, 128, 130 })
            {
                var xb = x.AsSpan(0, batch * inF).ToArray();
                var pool = WorkerPool.Shared;
                var one = new float[batch * outF];
                var two = new float[batch * outF];
                using (KernelKnobs.Save())
                {
                    pool.MaxDegreeOfParallelism = 1;
                    q.MatMulTransposed(xb, one, batch, ActivationPrecision.Int8);
                    pool.MaxDegreeOfParallelism = 2;
                    q.MatMulTransposed(xb, two, batch, ActivationPrecision.Int8);
                }
                Assert.Equal(one, two);
                if (bits == 8)
                {
                    var managed = new float[batch * outF];
                    using (KernelKnobs.Save())
                    {
                        Int8Gemm.ManagedOnlyOverride = true;
                        q.MatMulTransposed(xb, managed, batch, ActivationPrecision.Int8);
                    }
                    Assert.Equal(managed, two);
                }
                if (batch is 16 or 23 or 130) Int8Reference.AssertMatches(q, xb, batch, $"vnni row panels int{bits} out {outF}");
            }
        }
    }

    [Fact]
    public void Row_kernel_takes_1_to_6_batch_rows()
    {
        var a = new X86Assembler();
        for (int rows = 1; rows <= VnniGemmKernel.RowTile; rows++) VnniGemmKernel.EmitRowPanelKernel(a, rows);
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemmKernel.EmitRowPanelKernel(a, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemmKernel.EmitRowPanelKernel(a, VnniGemmKernel.RowTile + 1));
    }

    [Fact]
    public void Group_kernel_takes_1_to_6_batch_rows_of_a_6_row_tile()
    {
        var a = new X86Assembler();
        for (int rows = 1; rows <= VnniGemmKernel.GroupTile; rows++) VnniGemmKernel.EmitGroupKernel(a, rows, VnniGemmKernel.GroupTile);
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemmKernel.EmitGroupKernel(a, 0, VnniGemmKernel.GroupTile));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemmKernel.EmitGroupKernel(a, VnniGemmKernel.GroupTile + 1, VnniGemmKernel.GroupTile));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemmKernel.EmitGroupKernel(a, 1, VnniGemmKernel.GroupTile + 1));
    }

    [Fact]
    public void Extreme_codes_and_activations_keep_exact_int32_sums()
    {
        if (!VnniGemmKernel.IsAvailable) return;
        // Asymmetric rows whose codes sit at 0 and 255 (a row of +-1 steps around a far offset), inputs at +-max:
        // the largest products vpdpbusd sees (255 x 127, -128 never occurs: activations are in [-127, 127]).
        const int outF = 70, inF = 2080, batch = 13; // 2080 = 65 groups of 32
        var w = new float[outF * inF];
        for (int i = 0; i < w.Length; i++) w[i] = (i * 7 % 3 == 0 ? 10f : -10f) + (i % outF);
        var x = new float[batch * inF];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 5 == 0 ? -1f : 1f) * (1 + i % 3);
        foreach (int group in new[] { 0, 32 })
        {
            var q = GroupQuantizedWeight.Quantize(w, outF, inF, new QuantizationScheme(8, group, false));
            RunGemm(() =>
            {
                var vnni = new float[batch * outF];
                var managed = new float[batch * outF];
                q.MatMulTransposed(x, vnni, batch, ActivationPrecision.Int8);
                using (KernelKnobs.Save())
                {
                    Int8Gemm.ManagedOnlyOverride = true;
                    q.MatMulTransposed(x, managed, batch, ActivationPrecision.Int8);
                }
                Assert.Equal(managed, vnni);
                Int8Reference.AssertMatches(q, x, batch, $"vnni extreme g{group}");
            });
        }
    }

    [Theory]
    [InlineData(0, true)]
    [InlineData(32, false)]
    [InlineData(128, false)]
    public void Same_bits_at_1_and_2_threads_and_wherever_a_row_falls_in_the_tiles(int group, bool sym)
    {
        if (!VnniGemmKernel.IsAvailable) return;
        const int outF = 203, inF = 1536, batch = 40;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(5, outF * inF), outF, inF, new QuantizationScheme(8, group, sym));
        var x = QuantTestData.Gaussian(6, batch * inF);
        RunGemm(() => AssertThreadAndTileInvariance(q, x, outF, inF, batch));
    }

    private static void AssertThreadAndTileInvariance(GroupQuantizedWeight q, float[] x, int outF, int inF, int batch)
    {
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

            foreach (int b in new[] { 0, 2, 3, 5, 6, 20, 39 })
            {
                var single = new float[outF];
                q.MatMulTransposed(x.AsSpan(b * inF, inF), single, 1, ActivationPrecision.Int8);
                Assert.Equal(one.AsSpan(b * outF, outF).ToArray(), single);
            }
            var shifted = new float[(batch - 1) * outF];
            q.MatMulTransposed(x.AsSpan(inF), shifted, batch - 1, ActivationPrecision.Int8);
            Assert.Equal(one.AsSpan(outF).ToArray(), shifted);
        }
    }

    [Fact]
    public void Off_without_AVX512_with_the_opt_out_or_for_groups_that_are_not_whole_quads()
    {
        if (!Avx512BW.IsSupported || !Avx512F.VL.IsSupported) Assert.False(VnniGemmKernel.IsAvailable);
        bool available = VnniGemmKernel.IsAvailable;
        Assert.Equal(available, Int8Gemm.UsesVnni(64, 16));
        Assert.Equal(available, Int8Gemm.UsesVnni(1031, 1)); // one group per row: any input count
        Assert.False(Int8Gemm.UsesVnni(18, 10));             // groups of 18 would split a quad between two groups
        using (KernelKnobs.Save())
        {
            Int8Gemm.ManagedOnlyOverride = true;
            Assert.False(Int8Gemm.UsesVnni(64, 16));
        }
        if (Environment.GetEnvironmentVariable("CONDENSE_NO_JIT") == "1") Assert.False(available);
        using var knobs = KernelKnobs.Save();
        KernelOptions.GeneratedCode = false;
        Assert.False(VnniGemmKernel.IsAvailable);
        Assert.False(Int8Gemm.UsesVnni(64, 16));
    }

    [Fact]
    public void Available_on_Linux_x64_where_the_CPU_has_AVX512_VNNI()
    {
        // mmap/mprotect from libc must work here; if they did not, the managed kernels would run silently.
        if (VnniGemmKernel.CpuSupports && KernelOptions.GeneratedCode && OperatingSystem.IsLinux() &&
            System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64)
            Assert.True(VnniGemmKernel.IsAvailable);
    }

    // The GEMM from batch 1 on this thread, at 512 bits.
    private static void RunGemm(Action run) => KernelWidths.ForEach(width =>
    {
        if (width != 512) return;
        Int8Gemm.MinBatchOverride = 1;
        try { run(); }
        finally { Int8Gemm.MinBatchOverride = 0; }
    });
}
