using Condense.Kernels;

namespace Condense.Tests.Kernels;

/// <summary>
/// The AVX-512 8 x 48 packed fp32 GEMM (<see cref="PackedSgemm"/>, batch >= 32): each output is the reference fma
/// chain over the input features in order, so it must equal <see cref="DenseMatMul.Reference"/> bit for bit over
/// shapes that cut every tile, group and block (rows not a multiple of 8 or of a 64-row chunk, batch groups of 48,
/// 32 and 16 with padding, K = 1, 3, 17, K across the 128-feature k blocks and the 512-feature packed W blocks).
/// </summary>
public class PackedSgemmTests
{
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 32, 1, 1 }, { 33, 7, 3 }, { 47, 9, 17 }, { 48, 8, 128 }, { 49, 63, 129 }, { 64, 65, 1 },
        { 80, 130, 515 }, { 96, 5, 513 }, { 128, 71, 1030 }, { 131, 64, 1100 }, { 144, 129, 200 }, { 200, 17, 640 },
    };

    private static (float[] W, float[] X) Random(int batch, int outF, int inF)
    {
        var rng = new Rng((ulong)(batch * 1_000_003 + outF * 1009 + inF));
        var w = new float[outF * inF];
        var x = new float[batch * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        return (w, x);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void Equals_the_scalar_fma_chain_bit_for_bit_and_the_float64_sum_within_rounding(int batch, int outF, int inF)
    {
        var (w, x) = Random(batch, outF, inF);
        var expected = new float[batch * outF];
        fixed (float* px = x, pw = w, py = expected)
            DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
        var y = new float[batch * outF];
        new DenseWeight(w, outF, inF).MatMulTransposed(x, y, batch);
        Assert.Equal(expected, y);
        for (int b = 0; b < batch; b++)
            for (int o = 0; o < outF; o++)
            {
                double sum = 0, magnitude = 0;
                for (int i = 0; i < inF; i++)
                {
                    double term = (double)x[b * inF + i] * w[o * inF + i];
                    sum += term;
                    magnitude += Math.Abs(term);
                }
                // A chain of inF float32 fmas is within ~inF * 2^-24 * sum |terms| of the exact sum.
                Assert.True(Math.Abs(y[b * outF + o] - sum) <= (inF + 1) * Math.Pow(2, -24) * magnitude,
                    $"b={b}, o={o}: {y[b * outF + o]} vs float64 {sum}");
            }
    }

    [Fact]
    public void Takes_batches_of_two_avx512_vectors_and_more_only()
    {
        Assert.False(PackedSgemm.Applies(31, 512));
        Assert.False(PackedSgemm.Applies(128, 256));
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, PackedSgemm.Applies(32, 512));
    }

    [Fact]
    public void Results_are_bit_identical_at_1_2_and_3_threads_and_equal_the_session_7_kernel()
    {
        int batch = 128, outF = 200, inF = 1100; // 4 chunks of 64 rows (the last partial), 3 W blocks, groups 48+48+32
        var (w, x) = Random(batch, outF, inF);
        var storage = new DenseWeight(w, outF, inF);
        float[] Run(int threads, bool packed)
        {
            var y = new float[batch * outF];
            int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
            bool savedPacked = PackedSgemm.Enabled;
            try
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                PackedSgemm.Enabled = packed;
                storage.MatMulTransposed(x, y, batch);
            }
            finally
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = saved;
                PackedSgemm.Enabled = savedPacked;
            }
            return y;
        }
        var one = Run(1, true);
        Assert.Equal(one, Run(2, true));
        Assert.Equal(one, Run(3, true));
        Assert.Equal(one, Run(2, false));
    }

    [Theory]
    [InlineData(33, 64 * 9 + 5, 1100)]  // 10 chunks (the last 5 rows), 3 W blocks, one 48-wide group with padding
    [InlineData(130, 64 * 7, 1029)]     // 7 whole chunks, In not a multiple of 8, groups 48 + 48 + 32 + 16
    [InlineData(64, 64 * 5 + 63, 520)]  // x packing: 8-row blocks only; a 63-row last chunk (7 tiles + a short one)
    public void Chunk_passes_keep_the_reference_bits_at_every_pass_width_and_thread_count(int batch, int outF, int inF)
    {
        var (w, x) = Random(batch, outF, inF);
        var expected = new float[batch * outF];
        unsafe
        {
            fixed (float* px = x, pw = w, py = expected)
                DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
        }
        var storage = new DenseWeight(w, outF, inF);
        int savedThreads = WorkerPool.Shared.MaxDegreeOfParallelism, savedPass = PackedSgemm.ChunksPerPass;
        try
        {
            foreach (int threads in new[] { 1, 2, 3 })
                foreach (int pass in new[] { 1, 3, 4 })
                {
                    WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                    PackedSgemm.ChunksPerPass = pass;
                    var y = new float[batch * outF];
                    storage.MatMulTransposed(x, y, batch);
                    Assert.True(expected.AsSpan().SequenceEqual(y), $"threads {threads}, pass {pass}");
                }
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = savedThreads;
            PackedSgemm.ChunksPerPass = savedPass;
        }
    }
}
