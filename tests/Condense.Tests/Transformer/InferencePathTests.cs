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

    internal static EncoderLayerParts RandomLayer(ulong seed)
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

/// <summary>
/// Packed batches (<see cref="SequenceBatch.Pack"/>): the encoder runs on the real tokens only, and each sequence is
/// computed as it is alone, unpadded.
/// </summary>
public class PackedBatchTests
{
    private const int Hidden = 64, Heads = 4;

    private static readonly int[] Lengths = [7, 1, 17, 0, 12];

    private static SequenceBatch Padded(out int longest)
    {
        longest = Lengths.Max();
        int sequence = longest;
        var mask = Enumerable.Range(0, Lengths.Length * sequence).Select(i => i % sequence < Lengths[i / sequence] ? 1 : 0).ToArray();
        return new SequenceBatch(Lengths.Length, sequence, mask);
    }

    [Fact]
    public void Pack_keeps_the_real_tokens_in_order_with_their_positions()
    {
        var padded = Padded(out int longest);
        var packed = padded.Pack();
        Assert.True(packed.IsPacked);
        Assert.False(padded.IsPacked);
        Assert.Equal(Lengths.Sum(), packed.Rows);
        Assert.Equal(longest, packed.SequenceLength);
        Assert.Null(packed.AttentionMask);
        int row = 0;
        for (int b = 0; b < Lengths.Length; b++)
        {
            Assert.Equal(row, packed.SequenceStart(b));
            Assert.Equal(Lengths[b], packed.SequenceRows(b));
            for (int t = 0; t < Lengths[b]; t++) Assert.Equal(t, packed.Position(row + t));
            row += Lengths[b];
        }
        // PackRows picks the entries at real tokens: here each padded index itself.
        var expected = Enumerable.Range(0, padded.Rows).Where(i => padded.AttentionMask![i] == 1).ToArray();
        Assert.Equal(expected, padded.PackRows(Enumerable.Range(0, padded.Rows).ToArray()));
        Assert.Throws<InvalidOperationException>(() => packed.Pack());
        var error = Assert.Throws<ArgumentException>(() => padded.PackRows(new int[3]));
        Assert.Contains("expected " + padded.Rows, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_packed_no_grad_layer_gives_each_sequence_the_bits_it_gets_alone_at_one_and_two_threads(bool causal)
    {
        var parts = InferencePathTests.RandomLayer(21);
        var packed = Padded(out _).Pack();
        var input = GradCheck.Random(new Rng(22), packed.Rows, Hidden);
        // Each sequence alone: a batch of one, unpadded, through the recorded (taped) path.
        var alone = new float[input.Length];
        for (int b = 0; b < Lengths.Length; b++)
        {
            if (Lengths[b] == 0) continue;
            var rows = new Tensor(input.Data.AsSpan(packed.SequenceStart(b) * Hidden, Lengths[b] * Hidden).ToArray(), Lengths[b], Hidden) { RequiresGrad = true };
            var y = Bert.EncoderLayer(rows, parts, new SequenceBatch(1, Lengths[b]), Heads, causal);
            y.Data.AsSpan(0, y.Length).CopyTo(alone.AsSpan(packed.SequenceStart(b) * Hidden));
        }
        int saved = Gemm.MaxDegreeOfParallelism;
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                Gemm.MaxDegreeOfParallelism = threads;
                Tensor fused;
                using (Tensor.NoGrad()) fused = Bert.EncoderLayer(input, parts, packed, Heads, causal);
                Assert.Equal(alone, fused.Data);
            }
        }
        finally
        {
            Gemm.MaxDegreeOfParallelism = saved;
        }
        // The recorded path on the packed batch gives the same bits too.
        var leaf = new Tensor((float[])input.Data.Clone(), input.Shape) { RequiresGrad = true };
        Assert.Equal(alone, Bert.EncoderLayer(leaf, parts, packed, Heads, causal).Data);
    }

    [Fact]
    public void Packed_gradients_equal_each_sequence_alone()
    {
        var parts = InferencePathTests.RandomLayer(31);
        var packed = Padded(out _).Pack();
        var input = GradCheck.Random(new Rng(32), packed.Rows, Hidden);
        var target = GradCheck.Random(new Rng(33), packed.Rows, Hidden);
        var leaf = new Tensor((float[])input.Data.Clone(), input.Shape) { RequiresGrad = true };
        Ops.Sum(Ops.Mul(Bert.EncoderLayer(leaf, parts, packed, Heads), target)).Backward();
        for (int b = 0; b < Lengths.Length; b++)
        {
            if (Lengths[b] == 0) continue;
            int start = packed.SequenceStart(b) * Hidden, count = Lengths[b] * Hidden;
            var rows = new Tensor(input.Data.AsSpan(start, count).ToArray(), Lengths[b], Hidden) { RequiresGrad = true };
            var weights = new Tensor(target.Data.AsSpan(start, count).ToArray(), Lengths[b], Hidden);
            Ops.Sum(Ops.Mul(Bert.EncoderLayer(rows, parts, new SequenceBatch(1, Lengths[b]), Heads), weights)).Backward();
            var expected = rows.Grad!.Data;
            var actual = leaf.Grad!.Data.AsSpan(start, count);
            for (int i = 0; i < count; i++) Assert.Equal(expected[i], actual[i], 1e-5f);
        }
    }

    [Fact]
    public void Packed_embeddings_and_mean_pool_equal_the_padded_ones_on_real_tokens()
    {
        var padded = Padded(out int longest);
        var packed = padded.Pack();
        var rng = new Rng(41);
        var words = new Embedding(50, Hidden);
        var positions = new Embedding(longest, Hidden);
        var norm = new LayerNorm(Hidden);
        var ids = Enumerable.Range(0, padded.Rows).Select(_ => (int)(rng.NextFloat() * 50)).ToArray();
        using var _ = Tensor.NoGrad();
        var paddedHidden = Bert.Embed(words, positions, null, norm, ids, null, padded);
        var packedHidden = Bert.Embed(words, positions, null, norm, padded.PackRows(ids), null, packed);
        var realRows = Enumerable.Range(0, padded.Rows).Where(i => padded.AttentionMask![i] == 1)
            .SelectMany(i => paddedHidden.Data.AsSpan(i * Hidden, Hidden).ToArray()).ToArray();
        Assert.Equal(realRows, packedHidden.Data);
        // The pools see the same real rows in the same order: the same bits, and zeros for the empty sequence.
        var pooled = Bert.MeanPool(packedHidden, packed);
        Assert.Equal(Bert.MeanPool(paddedHidden, padded).Data, pooled.Data);
        Assert.All(pooled.Data.AsSpan(3 * Hidden, Hidden).ToArray(), v => Assert.Equal(0f, v));
    }
}
