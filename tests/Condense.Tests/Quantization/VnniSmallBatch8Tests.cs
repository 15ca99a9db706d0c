using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// The generated small-batch 8-bit kernels (<see cref="VnniSmallBatch8"/>, 2..15 rows, codes multiplied as stored):
/// within rounding of the exact integer reference over odd shapes (inputs not a multiple of the 64-256-code unit or
/// of the group, rows not a multiple of the 1-4-row calls or 12-row blocks, every batch 2..15), per-row and g4-g512
/// groups, symmetric and asymmetric; the same bits at 1 and 2 threads and wherever a batch row falls in the tiles;
/// close to the managed batched kernels; and off wherever it must be off. Without AVX-512 VNNI (or with
/// CONDENSE_NO_JIT=1) the comparisons have nothing to compare and return.
/// </summary>
public class VnniSmallBatch8Tests
{
    public static TheoryData<int, int, bool> Shapes()
    {
        var data = new TheoryData<int, int, bool>();
        foreach (bool sym in new[] { true, false })
        {
            data.Add(0, 1031, sym);   // one group per row (integer lanes, units of one step), a tail of 7 codes
            data.Add(32, 4128, sym);  // two groups per step, many steps, a tail of one group
            data.Add(64, 448, sym);   // one group per step, no tail
            data.Add(128, 640, sym);  // units of 2 steps, an odd number of units
            data.Add(256, 1280, sym); // units of 4 steps
        }
        data.Add(0, 256, false);      // exactly one unit
        data.Add(0, 384, true);       // per row, units of 2 steps (MiniLM's inputs)
        data.Add(0, 640, false);      // per row, units of 2 steps, an odd number of units
        data.Add(0, 192, false);      // per row, units of one step
        data.Add(0, 257, true);       // one unit and one code
        data.Add(16, 400, false);     // four groups per step, a tail of one group of 16
        data.Add(16, 80, true);       // one step and a tail of one group
        data.Add(256, 2304, false);   // an odd number of units of 4 steps
        data.Add(32, 96, false);      // one step and a tail of one group of 32
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_batch_from_2_to_15_is_within_rounding_of_the_integer_reference(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch8.IsAvailable) return;
        foreach (int outF in new[] { 1, 13, 130 })
        {
            var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * inF + group + outF), outF * inF), outF, inF, new QuantizationScheme(8, group, sym));
            var x = QuantTestData.Gaussian((ulong)(inF + 5 * outF), 15 * inF, 2f);
            Run(() =>
            {
                for (int batch = 2; batch <= 15; batch++)
                {
                    Assert.True(VnniSmallBatch8.Applies(8, group == 0 ? inF : group, group == 0 ? 1 : (inF + group - 1) / group, inF, batch, 512));
                    Int8Reference.AssertMatches(q, x.AsSpan(0, batch * inF).ToArray(), batch, $"small-batch int8 out {outF}");
                }
            });
        }
    }

    [Fact]
    public void Extreme_codes_and_activations_stay_within_rounding()
    {
        if (!VnniSmallBatch8.IsAvailable) return;
        // Asymmetric rows whose codes sit at 0 and 255, inputs at +-max: the largest products (255 x 127, x -128).
        const int outF = 37, inF = 2112, batch = 11; // 8 units of 256 and a tail of 64
        var w = new float[outF * inF];
        for (int i = 0; i < w.Length; i++) w[i] = (i * 7 % 3 == 0 ? 10f : -10f) + (i % outF);
        var x = new float[batch * inF];
        for (int i = 0; i < x.Length; i++) x[i] = (i % 5 == 0 ? -1f : 1f) * (1 + i % 3);
        foreach (int group in new[] { 0, 16, 32, 64 })
        {
            var q = GroupQuantizedWeight.Quantize(w, outF, inF, new QuantizationScheme(8, group, false));
            Run(() => Int8Reference.AssertMatches(q, x, batch, $"small-batch int8 extreme g{group}"));
        }
    }

    [Theory]
    [InlineData(0, 1600, true)]
    [InlineData(32, 1600, false)]
    [InlineData(64, 1664, true)]
    [InlineData(128, 1536, false)]
    [InlineData(256, 1792, true)]
    public void Same_bits_at_1_and_2_threads_and_wherever_a_row_falls_in_the_tiles(int group, int inF, bool sym)
    {
        if (!VnniSmallBatch8.IsAvailable) return;
        const int outF = 203, batch = 15;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(35, outF * inF), outF, inF, new QuantizationScheme(8, group, sym));
        var x = QuantTestData.Gaussian(36, batch * inF);
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

            // Batch 15 runs as tiles of 8 and 7 rows per row (3 and 4 weight rows per call), 5 x 3 with groups (2); others as other tiles
            // and calls: every row the same.
            foreach (int size in new[] { 2, 3, 4, 5, 8, 9 })
                foreach (int first in new[] { 0, 6, batch - size })
                {
                    var part = new float[size * outF];
                    q.MatMulTransposed(x.AsSpan(first * inF, size * inF), part, size, ActivationPrecision.Int8);
                    Assert.Equal(one.AsSpan(first * outF, size * outF).ToArray(), part);
                }
        });
    }

    [Theory]
    [InlineData(32)]
    [InlineData(64)]
    [InlineData(128)]
    [InlineData(0)]
    public void Close_to_the_managed_batched_kernels_they_replace(int group)
    {
        if (!VnniSmallBatch8.IsAvailable) return;
        const int outF = 70, inF = 4096, batch = 8;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(41, outF * inF), outF, inF, new QuantizationScheme(8, group, false));
        var x = QuantTestData.Gaussian(42, batch * inF);
        Run(() =>
        {
            var generated = new float[batch * outF];
            var managed = new float[batch * outF];
            q.MatMulTransposed(x, generated, batch, ActivationPrecision.Int8);
            using (KernelKnobs.Save())
            {
                VnniSmallBatch8.DisabledOverride = true;
                q.MatMulTransposed(x, managed, batch, ActivationPrecision.Int8);
            }
            float max = managed.Max(MathF.Abs);
            for (int i = 0; i < managed.Length; i++) Assert.True(MathF.Abs(generated[i] - managed[i]) <= 1e-5f * max, $"g{group} [{i}] {generated[i]} vs {managed[i]}");
        });
    }

    [Fact]
    public void Off_for_other_codes_batches_groups_and_without_generated_code()
    {
        bool available = VnniSmallBatch8.IsAvailable;
        Assert.Equal(available, VnniSmallBatch8.Applies(8, 32, 128, 4096, 8, 512));
        Assert.Equal(available, VnniSmallBatch8.Applies(8, 1031, 1, 1031, 2, 512));
        Assert.Equal(available, VnniSmallBatch8.Applies(8, 4, 16, 64, 15, 512));
        Assert.False(VnniSmallBatch8.Applies(4, 64, 64, 4096, 8, 512));   // 4-bit codes: VnniSmallBatch4
        Assert.False(VnniSmallBatch8.Applies(8, 64, 64, 4096, 1, 512));   // batch 1: the GEMV
        Assert.False(VnniSmallBatch8.Applies(8, 64, 64, 4096, 16, 512));  // 16 rows: the GEMM
        Assert.False(VnniSmallBatch8.Applies(8, 63, 1, 63, 4, 512));      // one group per row below one step
        Assert.Equal(4, VnniSmallBatch8.UnitSteps(1536, 1, 1536));        // per row: the most steps (up to 4) dividing the row
        Assert.Equal(2, VnniSmallBatch8.UnitSteps(384, 1, 384));
        Assert.Equal(1, VnniSmallBatch8.UnitSteps(1031, 1, 1031));
        Assert.Equal(2, VnniSmallBatch8.UnitSteps(128, 12, 1536));        // groups: a whole group, up to 4 steps
        Assert.Equal(1, VnniSmallBatch8.UnitSteps(32, 48, 1536));
        Assert.False(VnniSmallBatch8.Applies(8, 48, 8, 384, 4, 512));     // groups of 48: lane scales would not repeat per step
        Assert.False(VnniSmallBatch8.Applies(8, 2, 64, 128, 4, 512));     // groups of 2 straddle a 4-code lane
        Assert.False(VnniSmallBatch8.Applies(8, 1 << 21, 1, 1 << 21, 4, 512)); // int32 lanes of one group per row could overflow
        Assert.False(VnniSmallBatch8.Applies(8, 64, 64, 4096, 8, 256));   // AVX-512 off
        if (Environment.GetEnvironmentVariable("CONDENSE_NO_JIT") == "1") Assert.False(available);
        using var knobs = KernelKnobs.Save();
        KernelOptions.GeneratedCode = false;
        Assert.False(VnniSmallBatch8.Applies(8, 64, 64, 4096, 8, 512));
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
