using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using Condense.Tests.Core;
using Condense.Transformer;

namespace Condense.Tests.Transformer;

/// <summary>
/// Under NoGrad an encoder layer with group-quantized Linear layers runs Q, K and V as one stacked product and leaves
/// the other layers' biases to the pass after them (GELU, residual + LayerNorm). Both must give exactly the bits of
/// the recorded path (three Forward calls, each adding its bias), at any thread count and activation precision, on
/// every kernel the row count selects (batch-1 GEMV, fused batched kernel, VNNI GEMM from 4 rows, GEMM from 16).
/// </summary>
public class QuantizedInferencePathTests
{
    private const int Hidden = 64, Heads = 4;

    public static TheoryData<int, int, bool> Schemes => new()
    {
        { 8, 0, true },    // int8 per row (the MiniLM int8 plan)
        { 4, 32, true },   // int4 g32 symmetric (as the int4 g64 plan, at this width)
        { 4, 32, false },  // asymmetric: zero points stacked too
    };

    private static EncoderLayerParts QuantizedLayer(ulong seed, QuantizationScheme scheme)
    {
        var parts = InferencePathTests.RandomLayer(seed);
        foreach (var layer in new[] { parts.Query, parts.Key, parts.Value, parts.AttentionOutput, parts.Intermediate, parts.Output })
            layer.SetCompressedWeight(GroupQuantizedWeight.Quantize(layer.Weight.Data, layer.OutFeatures, layer.InFeatures, scheme));
        return parts;
    }

    [Theory]
    [MemberData(nameof(Schemes))]
    public void Stacked_qkv_product_equals_the_three_forward_calls_bit_for_bit(int bits, int groupSize, bool symmetric)
    {
        var parts = QuantizedLayer(11, new QuantizationScheme(bits, groupSize, symmetric));
        var saved = (Gemm.MaxDegreeOfParallelism, KernelOptions.QuantizedActivations);
        int savedPool = WorkerPool.Shared.MaxDegreeOfParallelism;
        try
        {
            foreach (var precision in new[] { ActivationPrecision.Int8, ActivationPrecision.Float32 })
                foreach (int threads in new[] { 1, 2 })
                    foreach (int rows in new[] { 1, 3, 5, 13, 21, 40 })
                    {
                        KernelOptions.QuantizedActivations = precision;
                        Gemm.MaxDegreeOfParallelism = threads;
                        WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                        var x = GradCheck.Random(new Rng((ulong)rows), rows, Hidden);
                        using var _ = Tensor.NoGrad();
                        var stacked = InferenceLinear.ProjectQkv(x, parts.Query, parts.Key, parts.Value);
                        Assert.NotNull(stacked);
                        var separate = new[] { parts.Query.Forward(x), parts.Key.Forward(x), parts.Value.Forward(x) };
                        for (int r = 0; r < rows; r++)
                            for (int p = 0; p < 3; p++)
                                Assert.Equal(separate[p].Data.AsSpan(r * Hidden, Hidden).ToArray(),
                                    stacked!.AsSpan(r * 3 * Hidden + p * Hidden, Hidden).ToArray());
                    }
        }
        finally
        {
            (Gemm.MaxDegreeOfParallelism, KernelOptions.QuantizedActivations) = saved;
            WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
        }
    }

    [Theory]
    [MemberData(nameof(Schemes))]
    public void No_grad_quantized_encoder_layer_gives_the_bits_of_the_recorded_path(int bits, int groupSize, bool symmetric)
    {
        var parts = QuantizedLayer(12, new QuantizationScheme(bits, groupSize, symmetric));
        int saved = Gemm.MaxDegreeOfParallelism;
        try
        {
            // A padded batch, a packed one (the MiniLM encoder's), and one sentence of 13 tokens.
            foreach (var (batch, sequence, packed) in new[] { (1, 13, false), (3, 17, false), (3, 17, true), (2, 40, true) })
            {
                var mask = Enumerable.Range(0, batch * sequence).Select(i => i % sequence < sequence - 4 * (i / sequence) ? 1 : 0).ToArray();
                var padded = new SequenceBatch(batch, sequence, mask);
                var shape = packed ? padded.Pack() : padded;
                var input = GradCheck.Random(new Rng((ulong)(batch * sequence)), shape.Rows, Hidden);
                var leaf = new Tensor((float[])input.Data.Clone(), input.Shape) { RequiresGrad = true };
                var recorded = Bert.EncoderLayer(leaf, parts, shape, Heads);
                Assert.True(recorded.RequiresGrad);
                // The pooled buffers (the whole layer), at 1 and 2 threads.
                foreach (int threads in new[] { 1, 2 })
                {
                    Gemm.MaxDegreeOfParallelism = threads;
                    Tensor fused;
                    using (Tensor.NoGrad()) fused = Bert.EncoderLayer(input, parts, shape, Heads);
                    Assert.Equal(recorded.Data, fused.Data);
                    // Again, on buffers the pool hands back (stale values from the first call).
                    using (Tensor.NoGrad()) fused = Bert.EncoderLayer(input, parts, shape, Heads);
                    Assert.Equal(recorded.Data, fused.Data);
                }
                Assert.Equal(leaf.Data, input.Data);
            }
        }
        finally
        {
            Gemm.MaxDegreeOfParallelism = saved;
        }
    }

    [Fact]
    public void Stacked_product_follows_a_recompressed_layer_and_declines_mixed_formats()
    {
        var parts = QuantizedLayer(13, new QuantizationScheme(4, 32, true));
        var x = GradCheck.Random(new Rng(14), 9, Hidden);
        using var _ = Tensor.NoGrad();
        var before = InferenceLinear.ProjectQkv(x, parts.Query, parts.Key, parts.Value)!;
        // A new key weight: the cached stack must not serve the old one.
        var other = GradCheck.Random(new Rng(18), Hidden * Hidden).Data;
        parts.Key.SetCompressedWeight(GroupQuantizedWeight.Quantize(other, Hidden, Hidden, new QuantizationScheme(4, 32, true)));
        var after = InferenceLinear.ProjectQkv(x, parts.Query, parts.Key, parts.Value)!;
        var key = parts.Key.Forward(x);
        for (int r = 0; r < 9; r++)
        {
            Assert.Equal(key.Data.AsSpan(r * Hidden, Hidden).ToArray(), after.AsSpan(r * 3 * Hidden + Hidden, Hidden).ToArray());
            Assert.NotEqual(before.AsSpan(r * 3 * Hidden + Hidden, Hidden).ToArray(), after.AsSpan(r * 3 * Hidden + Hidden, Hidden).ToArray());
        }
        // Another format for the value layer: no stacking (the layers run one by one).
        parts.Value.SetCompressedWeight(GroupQuantizedWeight.Quantize(other, Hidden, Hidden, new QuantizationScheme(8, 0, true)));
        Assert.Null(InferenceLinear.ProjectQkv(x, parts.Query, parts.Key, parts.Value));
        // Dense layers: none either.
        var dense = InferencePathTests.RandomLayer(15);
        Assert.Null(InferenceLinear.ProjectQkv(x, dense.Query, dense.Key, dense.Value));
        Assert.Null(InferenceLinear.ProductWithoutBias(dense.Output, GradCheck.Random(new Rng(16), 2, dense.Output.InFeatures)));
    }

    [Fact]
    public void Gelu_with_a_row_bias_split_over_threads_equals_add_then_gelu()
    {
        var rng = new Rng(17);
        // 13 rows of 1536 (a MiniLM sentence's intermediate) and an odd width; above and below the parallel threshold.
        foreach (var (rows, width) in new[] { (13, 1536), (7, 100), (1, 37) })
        {
            var x = GradCheck.Random(rng, rows, width);
            var bias = GradCheck.Random(rng, width);
            var added = new Tensor(x.Data.Select((v, i) => v + bias.Data[i % width]).ToArray(), x.Shape);
            var expected = Ops.GeluErf(added).Data;
            int saved = Gemm.MaxDegreeOfParallelism;
            try
            {
                foreach (int threads in new[] { 1, 2 })
                {
                    Gemm.MaxDegreeOfParallelism = threads;
                    var copy = new Tensor((float[])x.Data.Clone(), x.Shape);
                    Ops.GeluErfInPlace(copy, bias);
                    Assert.Equal(expected, copy.Data);
                }
            }
            finally
            {
                Gemm.MaxDegreeOfParallelism = saved;
            }
        }
    }
}
