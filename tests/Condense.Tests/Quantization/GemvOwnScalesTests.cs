using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

/// <summary>
/// Session 12's 8-bit batch-1 kernel that converts its own float16 scales (VnniGemv.OwnInt8Scales): symmetric 8-bit
/// weights whose rows are whole chunks of 16 groups give the bits of the ScaleRows path (the same float scales and the
/// same correction FMA chain) at every plan (g32 permuted, in the loop or from the row's buffer; g64 one step per group;
/// g128/g256 grouped), with and without whole-line loads, at 1 and 2 threads, a partial last block of rows included;
/// weights it does not take (asymmetric, rows not whole 16-group chunks) are unchanged; and 8-bit g32 above the cache
/// gate takes the generated loop only when symmetric.
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
    public void Own_scales_give_the_bits_of_the_ScaleRows_path_at_1_and_2_threads(int group, int inF, int outF)
    {
        if (!VnniGemv.IsSupported) return; // no AVX512-VNNI here: the managed loop runs
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group * 13 + inF), outF * inF), outF, inF, new QuantizationScheme(8, group, true));
        var x = QuantTestData.Gaussian((ulong)inF + 5, inF);
        Assert.NotEqual(0, VnniGemv.Prepare(8, 1, group, inF / group, inF, inF, (inF / group + 15) & ~15, 512, outF, symmetric: true));
        bool savedOwn = VnniGemv.OwnInt8Scales, savedInLoop = VnniGemv.OwnScalesInLoop, savedShift = VnniGemv.ShiftedLoads;
        int savedPrefetch = VnniGemv.OwnScalePrefetchRows;
        int savedDegree = WorkerPool.Shared.MaxDegreeOfParallelism;
        var results = new List<(string Name, float[] Y)>();
        try
        {
            foreach (bool shifted in new[] { true, false })
                foreach (int threads in new[] { 1, 2 })
                {
                    VnniGemv.ShiftedLoads = shifted;
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    foreach (var (own, inLoop, prefetch) in new[] { (false, true, 2), (true, true, 2), (true, false, 0), (true, true, 5) })
                    {
                        VnniGemv.OwnInt8Scales = own;
                        VnniGemv.OwnScalesInLoop = inLoop;
                        VnniGemv.OwnScalePrefetchRows = prefetch;
                        var y = new float[outF];
                        q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                        results.Add(($"own {own} in-loop {inLoop} prefetch {prefetch} shifted {shifted} threads {threads}", y));
                    }
                }
            VnniGemv.OwnInt8Scales = true;
            VnniGemv.OwnScalesInLoop = true;
            VnniGemv.OwnScalePrefetchRows = 2;
            WorkerPool.Shared.MaxDegreeOfParallelism = 2;
            Int8Reference.AssertMatches(q, x, 1, $"own scales g{group} In {inF}");
        }
        finally
        {
            VnniGemv.OwnInt8Scales = savedOwn;
            VnniGemv.OwnScalesInLoop = savedInLoop;
            VnniGemv.OwnScalePrefetchRows = savedPrefetch;
            VnniGemv.ShiftedLoads = savedShift;
            WorkerPool.Shared.MaxDegreeOfParallelism = savedDegree;
        }
        for (int r = 1; r < results.Count; r++)
            for (int i = 0; i < outF; i++)
                Assert.True(BitConverter.SingleToInt32Bits(results[0].Y[i]) == BitConverter.SingleToInt32Bits(results[r].Y[i]),
                    $"g{group} In {inF}: {results[r].Name}: output {i} {results[r].Y[i]} vs {results[0].Y[i]} ({results[0].Name})");
    }

    [Theory]
    [InlineData(32, 1088, true)]    // 34 groups: not whole 16-group chunks
    [InlineData(64, 1024, false)]   // asymmetric: zero points
    [InlineData(32, 1024, false)]
    public void Weights_the_kernel_does_not_take_are_unchanged(int group, int inF, bool symmetric)
    {
        const int outF = 29;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group + inF), outF * inF), outF, inF, new QuantizationScheme(8, group, symmetric));
        var x = QuantTestData.Gaussian((ulong)inF + 9, inF);
        bool savedOwn = VnniGemv.OwnInt8Scales;
        try
        {
            VnniGemv.OwnInt8Scales = false;
            var off = new float[outF];
            q.MatMulTransposed(x, off, 1, ActivationPrecision.Int8);
            VnniGemv.OwnInt8Scales = true;
            var on = new float[outF];
            q.MatMulTransposed(x, on, 1, ActivationPrecision.Int8);
            Assert.Equal(off, on);
            Int8Reference.AssertMatches(q, x, 1, $"g{group} In {inF} symmetric {symmetric}");
        }
        finally { VnniGemv.OwnInt8Scales = savedOwn; }
    }

    [Fact]
    public void Eight_bit_g32_above_the_gate_takes_the_generated_loop_only_when_symmetric_with_own_scales()
    {
        if (!VnniGemv.IsSupported) return;
        bool savedOwn = VnniGemv.OwnInt8Scales;
        try
        {
            VnniGemv.OwnInt8Scales = true;
            Assert.NotEqual(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 4096, symmetric: true));
            Assert.Equal(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 4096, symmetric: false));
            Assert.Equal(0, VnniGemv.Prepare(8, 1, 32, 136, 4352, 4352, 144, 512, 4096, symmetric: true)); // 136 groups
            VnniGemv.OwnInt8Scales = false;
            Assert.Equal(0, VnniGemv.Prepare(8, 1, 32, 128, 4096, 4096, 128, 512, 4096, symmetric: true));
        }
        finally { VnniGemv.OwnInt8Scales = savedOwn; }

        // Above the gate (lowered here) the own-scale g32 loop gives the bits it gives below it.
        const int outF = 45, inF = 1024;
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(77, outF * inF), outF, inF, new QuantizationScheme(8, 32, true));
        var x = QuantTestData.Gaussian(78, inF);
        long savedGate = VnniGemv.CacheResidentBytes;
        try
        {
            var below = new float[outF];
            q.MatMulTransposed(x, below, 1, ActivationPrecision.Int8);
            VnniGemv.CacheResidentBytes = 1024;
            var above = new float[outF];
            q.MatMulTransposed(x, above, 1, ActivationPrecision.Int8);
            Assert.Equal(below, above);
            Int8Reference.AssertMatches(q, x, 1, "8-bit g32 above the gate");
        }
        finally { VnniGemv.CacheResidentBytes = savedGate; }
    }
}
