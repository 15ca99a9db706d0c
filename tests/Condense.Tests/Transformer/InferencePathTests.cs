using Condense.Kernels;
using Condense.Nn;
using Condense.Tests.Core;
using Condense.Transformer;

namespace Condense.Tests.Transformer;

/// <summary>
/// Under NoGrad the encoder layer runs fused kernels (attention per sequence and head on the projections' rows,
/// residual + LayerNorm and GELU in place). They must give exactly the bits of the recorded (training) path, at any
/// thread count, for every shape the attention kernel pads or splits differently.
/// </summary>
public class InferencePathTests
{
    private const int Hidden = 64, Intermediate = 96, Heads = 4;

    private static EncoderLayerParts RandomLayer(ulong seed)
    {
        var rng = new Rng(seed);
        Linear Dense(int input, int output)
        {
            var layer = new Linear(input, output);
            layer.LoadWeight(GradCheck.Random(rng, output * input).Data.Select(v => v * 0.3f).ToArray());
            layer.LoadBias(GradCheck.Random(rng, output).Data);
            return layer;
        }
        LayerNorm Norm()
        {
            var norm = new LayerNorm(Hidden);
            for (int i = 0; i < Hidden; i++)
            {
                norm.Weight.Data[i] = 1f + 0.3f * rng.NextGaussian();
                norm.Bias.Data[i] = 0.2f * rng.NextGaussian();
            }
            return norm;
        }
        return new(Dense(Hidden, Hidden), Dense(Hidden, Hidden), Dense(Hidden, Hidden), Dense(Hidden, Hidden), Norm(),
            Dense(Hidden, Intermediate), Dense(Intermediate, Hidden), Norm());
    }

    private static int[] Mask(int batch, int sequence) =>
        // Sequence b keeps sequence - 3 b tokens (at least one), the rest is padding; the first sequence is unpadded.
        Enumerable.Range(0, batch * sequence).Select(i => i % sequence < Math.Max(1, sequence - 3 * (i / sequence)) ? 1 : 0).ToArray();

    [Theory]
    [InlineData(1, 1, false)]
    [InlineData(1, 7, false)]
    [InlineData(3, 16, false)]
    [InlineData(2, 17, false)]
    [InlineData(4, 33, false)]
    [InlineData(2, 17, true)]
    public void No_grad_encoder_layer_gives_the_bits_of_the_recorded_path_at_one_and_two_threads(int batch, int sequence, bool causal)
    {
        var parts = RandomLayer((ulong)(batch * 100 + sequence));
        var input = GradCheck.Random(new Rng((ulong)sequence), batch * sequence, Hidden);
        var shape = new SequenceBatch(batch, sequence, Mask(batch, sequence));
        // Recorded: the input requires gradients, so every op is the composed, taped one.
        var leaf = new Tensor((float[])input.Data.Clone(), input.Shape) { RequiresGrad = true };
        var recorded = Bert.EncoderLayer(leaf, parts, shape, Heads, causal);
        Assert.True(recorded.RequiresGrad);
        int saved = Gemm.MaxDegreeOfParallelism;
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Gemm.MaxDegreeOfParallelism = threads;
                Tensor fused;
                using (Tensor.NoGrad()) fused = Bert.EncoderLayer(input, parts, shape, Heads, causal);
                Assert.False(fused.RequiresGrad);
                Assert.Equal(recorded.Data, fused.Data);
            }
        }
        finally
        {
            Gemm.MaxDegreeOfParallelism = saved;
        }
        // The input is not overwritten by the in-place steps.
        Assert.Equal(leaf.Data, input.Data);
    }

    [Fact]
    public void No_grad_attention_still_gives_padded_keys_no_weight_and_differs_from_unmasked_attention()
    {
        // Guards the fused kernel's mask: with the mask, a padded key's value changes nothing; without it, it does.
        var parts = RandomLayer(7);
        const int Sequence = 6;
        var input = GradCheck.Random(new Rng(8), Sequence, Hidden);
        var mask = new[] { 1, 1, 1, 1, 0, 0 };
        var changed = new Tensor((float[])input.Data.Clone(), input.Shape);
        for (int c = 0; c < Hidden; c++) changed.Data[5 * Hidden + c] += 3f;
        using var _ = Tensor.NoGrad();
        var a = Attention.SelfAttention(input, parts.Query, parts.Key, parts.Value, new SequenceBatch(1, Sequence, mask), Heads);
        var b = Attention.SelfAttention(changed, parts.Query, parts.Key, parts.Value, new SequenceBatch(1, Sequence, mask), Heads);
        Assert.Equal(a.Data.AsSpan(0, 4 * Hidden).ToArray(), b.Data.AsSpan(0, 4 * Hidden).ToArray());
        var unmasked = Attention.SelfAttention(changed, parts.Query, parts.Key, parts.Value, new SequenceBatch(1, Sequence), Heads);
        Assert.NotEqual(a.Data.AsSpan(0, 4 * Hidden).ToArray(), unmasked.Data.AsSpan(0, 4 * Hidden).ToArray());
    }

    [Fact]
    public void Gelu_vector_kernel_gives_the_bits_of_the_step_by_step_passes()
    {
        // Values across the range that matters (and beyond, where exp underflows), plus signed zeros; 1003 values
        // so a tail shorter than a vector takes the passes.
        var rng = new Rng(10);
        var x = new float[1003];
        for (int i = 0; i < x.Length; i++) x[i] = rng.NextGaussian() * (i % 3 == 0 ? 6f : 1.5f);
        x[0] = 0f;
        x[1] = -0f;
        x[2] = 40f;
        x[3] = -40f;
        var expected = new float[x.Length];
        Ops.GeluErfPasses(x, expected);
        Assert.Equal(expected, Ops.GeluErf(new Tensor((float[])x.Clone(), x.Length)).Data);
    }

    [Fact]
    public void In_place_gelu_and_residual_layer_norm_equal_the_recorded_ops()
    {
        var rng = new Rng(9);
        // 1100 values: two full 512-value blocks of the GELU kernel and a partial one.
        var x = GradCheck.Random(rng, 11, 100);
        var expected = Ops.GeluErf(x).Data;
        var copy = new Tensor((float[])x.Data.Clone(), x.Shape);
        Assert.Same(copy, Ops.GeluErfInPlace(copy));
        Assert.Equal(expected, copy.Data);

        var residual = GradCheck.Random(rng, 11, 100);
        var w = GradCheck.Random(rng, 100);
        var b = GradCheck.Random(rng, 100);
        var normed = Ops.LayerNorm(Ops.Add(x, residual), w, b, 1e-5f).Data;
        var target = new Tensor((float[])x.Data.Clone(), x.Shape);
        Ops.ResidualLayerNormInPlace(target, residual, w, b, 1e-5f);
        Assert.Equal(normed, target.Data);
    }

    [Theory]
    [InlineData(1, 384, 1536)]
    [InlineData(16, 384, 384)]
    [InlineData(17, 1536, 384)]
    [InlineData(40, 96, 200)]
    [InlineData(300, 96, 200)]
    [InlineData(129, 50, 48)]
    [InlineData(70, 64, 40)]
    public void Linear_shaped_products_equal_the_scalar_reference_bit_for_bit(int m, int k, int n)
    {
        // At a few rows X W^T is computed as W X^T (the activations packed, not the weight); at many rows W^T is packed
        // in column panels with a narrower last panel. Same chains, same bits, either way.
        var rng = new Rng((ulong)(m + k + n));
        var a = GradCheck.Random(rng, m * k).Data;
        var w = GradCheck.Random(rng, n * k).Data;
        var start = GradCheck.Random(rng, m * n).Data;
        foreach (bool accumulate in new[] { false, true })
        {
            var c = accumulate ? (float[])start.Clone() : new float[m * n];
            Gemm.MatMulTransposedB(a, w, c, m, k, n, accumulate);
            var reference = accumulate ? (float[])start.Clone() : new float[m * n];
            Gemm.Reference(a, k, 1, w, 1, k, reference, m, k, n, accumulate);
            Assert.Equal(reference, c);
        }
    }
}
