using Condense.Kernels;

namespace Condense.Tests.Kernels;

/// <summary>
/// The small-batch fp32 kernel with the outputs in the lanes (<see cref="OutputLanesSgemm"/>, AVX-512, batch 1-64):
/// every output is the reference fma chain over the features in order, so it must equal
/// <see cref="DenseMatMul.Reference"/> bit for bit, whether its panels are W's rows transposed per call (the Linear
/// forward, <see cref="Gemm.MatMulTransposedB"/>) or a packed copy; over shapes that cut every panel (Out not a
/// multiple of 16 or 32, Out below 16; panels in pairs up to 4 rows, an odd one left), every 16 x 16 transpose (In not a multiple of 16, In below 16) and k block
/// (In across 128), every row grouping (batch 1-64: groups of up to 12), and with accumulation.
/// </summary>
public class OutputLanesSgemmTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 1, 37, 384 }, { 2, 16, 16 }, { 3, 5, 17 }, { 4, 32, 128 }, { 5, 33, 129 }, { 6, 48, 31 },
        { 2, 100, 70 }, { 3, 130, 33 }, { 4, 97, 200 }, { 1, 200, 129 },
        { 7, 384, 384 }, { 8, 63, 200 }, { 9, 70, 257 }, { 11, 100, 15 }, { 12, 96, 300 }, { 13, 130, 385 },
        { 16, 64, 640 }, { 21, 47, 130 }, { 24, 31, 1 }, { 25, 129, 96 }, { 31, 200, 517 }, { 32, 33, 70 }, { 49, 96, 129 }, { 64, 65, 300 },
    };

    private static (float[] W, float[] X) Random(int batch, int outF, int inF)
    {
        var rng = new Rng((ulong)(batch * 1_000_003 + outF * 1009 + inF + 7));
        var w = new float[outF * inF];
        var x = new float[batch * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        // Zeros of both signs: the chain must start from +0 as the reference's does.
        if (w.Length > 3) { w[0] = -0f; w[3] = 0f; }
        if (x.Length > 2) x[1] = -0f;
        return (w, x);
    }

    private static unsafe float[] Reference(float[] x, float[] w, int batch, int outF, int inF, float[]? start = null)
    {
        var y = new float[batch * outF];
        fixed (float* px = x, pw = w, py = y)
            DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
        if (start is null) return y;
        // Accumulating: each chain starts from the old value instead of +0.
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < outF; o++)
            {
                float sum = start[b * outF + o];
                for (int i = 0; i < inF; i++) sum = MathF.FusedMultiplyAdd(x[b * inF + i], w[o * inF + i], sum);
                y[b * outF + o] = sum;
            }
        return y;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void The_linear_forward_equals_the_scalar_fma_chain_bit_for_bit(int batch, int outF, int inF)
    {
        // Without AVX-512 Gemm's own tiles run: the same bits are its contract too.
        var (w, x) = Random(batch, outF, inF);
        var y = new float[batch * outF];
        Gemm.MatMulTransposedB(x, w, y, batch, inF, outF);
        AssertBits(Reference(x, w, batch, outF, inF), y);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Accumulating_continues_each_chain_from_the_old_output(int batch, int outF, int inF)
    {
        var (w, x) = Random(batch, outF, inF);
        var start = new float[batch * outF];
        var rng = new Rng(99);
        for (int i = 0; i < start.Length; i++) start[i] = rng.NextGaussian();
        var y = (float[])start.Clone();
        Gemm.MatMulTransposedB(x, w, y, batch, inF, outF, accumulate: true);
        AssertBits(Reference(x, w, batch, outF, inF, start), y);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void A_packed_copy_gives_the_same_bits_as_the_per_call_transpose(int batch, int outF, int inF)
    {
        if (!OutputLanesSgemm.Applies(batch)) return; // the copy is made with AVX-512 transposes
        var (w, x) = Random(batch, outF, inF);
        var packed = new float[OutputLanesSgemm.PackedFloats(outF, inF)];
        var y = new float[batch * outF];
        fixed (float* pw = w, pp = packed, px = x, py = y)
        {
            OutputLanesSgemm.Pack(pw, outF, inF, pp);
            OutputLanesSgemm.Run(px, new OutputLanesSgemm.PackedPanels(pp, inF), py, batch, outF, inF, accumulate: false, degree: 2);
        }
        // The padding outputs of the last panel are +0 in the copy.
        for (int o = outF; o < (outF + 31) / 32 * 32; o++)
            for (int k = 0; k < inF; k++)
                Assert.Equal(0f, packed[(long)(o / 32 * inF + k) * 32 + o % 32]);
        AssertBits(Reference(x, w, batch, outF, inF), y);
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        int batch = 13, outF = 390, inF = 700;
        var (w, x) = Random(batch, outF, inF);
        float[] Run(int threads)
        {
            int saved = Gemm.MaxDegreeOfParallelism;
            try
            {
                Gemm.MaxDegreeOfParallelism = threads;
                var y = new float[batch * outF];
                Gemm.MatMulTransposedB(x, w, y, batch, inF, outF);
                return y;
            }
            finally { Gemm.MaxDegreeOfParallelism = saved; }
        }
        var one = Run(1);
        AssertBits(one, Run(2));
        AssertBits(one, Run(3));
        try
        {
            OutputLanesSgemm.PrefetchNext = false;
            AssertBits(one, Run(2));
        }
        finally { OutputLanesSgemm.PrefetchNext = true; }
        AssertBits(Reference(x, w, batch, outF, inF), one);
    }

    [Theory]
    [InlineData(1, 70, 385)]
    [InlineData(2, 33, 100)]
    [InlineData(4, 384, 384)]
    [InlineData(13, 130, 257)]
    [InlineData(31, 64, 40)]
    [InlineData(64, 97, 130)]
    [InlineData(65, 64, 64)]
    [InlineData(300, 70, 150)]
    [InlineData(520, 33, 17)]
    public void A_small_dense_weight_reads_its_panel_copy_at_any_batch_with_the_reference_bits(int batch, int outF, int inF)
    {
        var (w, x) = Random(batch, outF, inF);
        var storage = new DenseWeight(w, outF, inF);
        var y = new float[batch * outF];
        storage.MatMulTransposed(x, y, batch);
        if (!OutputLanesSgemm.Available) return; // DenseMatMul's tiles: DenseWeightTests
        Assert.True(storage.HasPanelCopy);
        AssertBits(Reference(x, w, batch, outF, inF), y);
        // The copy is made once; a second product reads it and gives the same bits.
        var again = new float[batch * outF];
        storage.MatMulTransposed(x, again, batch);
        AssertBits(y, again);
    }

    [Fact]
    public void After_WeightsChanged_a_product_reads_the_new_values()
    {
        int batch = 5, outF = 40, inF = 24;
        var (w, x) = Random(batch, outF, inF);
        var storage = new DenseWeight(w, outF, inF);
        var y = new float[batch * outF];
        storage.MatMulTransposed(x, y, batch);
        for (int i = 0; i < w.Length; i++) w[i] = -w[i] * 0.5f;
        storage.WeightsChanged();
        Assert.False(storage.HasPanelCopy);
        storage.MatMulTransposed(x, y, batch);
        // Whatever path this machine takes: the same as a weight made from the new values.
        var expected = new float[batch * outF];
        new DenseWeight((float[])w.Clone(), outF, inF).MatMulTransposed(x, expected, batch);
        AssertBits(expected, y);
        // Batch 1 of a large weight made with packForBatch1 reads its batch-1 copy: dropped the same way.
        int bigOut = 517, bigIn = 4100;
        var big = new float[bigOut * bigIn];
        var ones = new float[bigIn];
        Array.Fill(ones, 1f);
        var packed = new DenseWeight(big, bigOut, bigIn, packForBatch1: true);
        var y1 = new float[bigOut];
        packed.MatMulTransposed(ones, y1, 1);
        Array.Fill(big, 1f);
        packed.WeightsChanged();
        packed.MatMulTransposed(ones, y1, 1);
        Assert.All(y1, v => Assert.Equal(bigIn, v));
    }

    [Fact]
    public void Large_dense_weights_get_no_panel_copy()
    {
        // Above PanelCopyMaxValues the copy would cost more memory than the in-cache gain is worth: DenseMatMul's tiles.
        int outF = 1025, inF = 4096;
        Assert.True((long)outF * inF > DenseWeight.PanelCopyMaxValues);
        var large = new DenseWeight(new float[outF * inF], outF, inF);
        large.MatMulTransposed(new float[4 * inF], new float[4 * outF], 4);
        Assert.False(large.HasPanelCopy);
        large.MatMulTransposed(new float[65 * inF], new float[65 * outF], 65);
        Assert.False(large.HasPanelCopy);
        // Batch 1 of a weight made with packForBatch1 reads the batch-1 copy it asked for, not the panels.
        var packed = new DenseWeight(new float[64 * 64], 64, 64, packForBatch1: true);
        packed.MatMulTransposed(new float[64], new float[64], 1);
        Assert.False(packed.HasPanelCopy);
    }

    [Fact]
    public void Takes_batches_of_1_to_64_rows_with_avx512_only()
    {
        bool avx512 = KernelOptions.VectorBits == 512 && System.Runtime.Intrinsics.X86.Avx512F.IsSupported;
        Assert.False(OutputLanesSgemm.Applies(0));
        Assert.False(OutputLanesSgemm.Applies(65));
        Assert.Equal(avx512, OutputLanesSgemm.Applies(1));
        Assert.Equal(avx512, OutputLanesSgemm.Applies(64));
    }

    private static void AssertBits(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"element {i}: expected {expected[i]:R} ({BitConverter.SingleToInt32Bits(expected[i]):X8}), got {actual[i]:R} ({BitConverter.SingleToInt32Bits(actual[i]):X8})");
    }
}
