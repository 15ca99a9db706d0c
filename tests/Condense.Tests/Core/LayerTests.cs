using Condense.Nn;

namespace Condense.Tests.Core;

public class LayerTests
{
    /// <summary>Dense weight behind the storage seam, scaled by 2 so the test can tell which path ran.</summary>
    private sealed class DoublingStorage(int outFeatures, int inFeatures, float[] weight) : IWeightStorage
    {
        public int Calls { get; private set; }
        public int DequantizeCalls { get; private set; }
        public int OutFeatures => outFeatures;
        public int InFeatures => inFeatures;
        public string Format => "fake-x2";
        public long ByteCount => weight.Length * 4L;

        public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch)
        {
            Calls++;
            for (int b = 0; b < batch; b++)
                for (int o = 0; o < outFeatures; o++)
                {
                    float s = 0;
                    for (int i = 0; i < inFeatures; i++) s += x[b * inFeatures + i] * 2f * weight[o * inFeatures + i];
                    y[b * outFeatures + o] = s;
                }
        }

        public void Dequantize(Span<float> destination)
        {
            DequantizeCalls++;
            for (int i = 0; i < weight.Length; i++) destination[i] = 2f * weight[i];
        }
    }

    [Fact]
    public void Linear_is_initialized_deterministically_within_pytorch_bounds()
    {
        var a = new Linear(50, 4);
        var b = new Linear(50, 4);
        Assert.Equal(a.Weight.Data, b.Weight.Data);
        Assert.Equal(a.Bias!.Data, b.Bias!.Data);
        Assert.Contains(a.Weight.Data, v => v != 0f);
        float bound = 1f / MathF.Sqrt(50);
        Assert.All(a.Weight.Data, v => Assert.InRange(v, -bound, bound));
        Assert.NotEqual(a.Weight.Data.Take(10), new Linear(50, 5).Weight.Data.Take(10));
        a.ResetParameters(new Rng(1));
        Assert.NotEqual(a.Weight.Data, b.Weight.Data);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Linear(0, 3));
    }

    /// <summary>
    /// 46341 x 46341 wraps around int; the constructor used to fail with a bare OverflowException from the array
    /// allocation. Now it names the layer, its weight count and the limit the analyzer's CND0025 uses.
    /// </summary>
    [Theory]
    [InlineData(46341, 46341, "46341 x 46341 has 2,147,488,281 values")]
    [InlineData(int.MaxValue, int.MaxValue, "has 4,611,686,014,132,420,609 values")]
    public void Linear_too_large_for_one_array_is_a_clear_error(int inFeatures, int outFeatures, string expected)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Linear(inFeatures, outFeatures));
        Assert.Contains($"Layer 'Linear({inFeatures}, {outFeatures})' is too large", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("a layer holds at most 2,147,483,591", e.Message, StringComparison.Ordinal);
        Assert.Equal(2_147_483_591L, Condense.Catalogue.KernelCatalogue.MaxWeightsPerLayer);
        Assert.Equal(Condense.Catalogue.KernelCatalogue.MaxWeightsPerLayer, Array.MaxLength);
    }

    [Fact]
    public void Conv2d_too_large_for_one_array_is_a_clear_error()
    {
        // In x K x K alone overflows int here; Out x In x K x K overflows long.
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Conv2d(int.MaxValue, int.MaxValue, 65536));
        Assert.StartsWith("Layer 'Conv2d(2147483647, 2147483647, kernel 65536)' is too large: its weight 2147483647 x 2147483647 x 65536 x 65536 has more than", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => new Conv2d(5000, 5000, 10));
        Assert.Contains("has 2,500,000,000 values", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Linear_forward_is_x_w_transposed_plus_bias()
    {
        var layer = new Linear(2, 2);
        layer.LoadWeight([1f, 2f, 3f, 4f]);
        layer.LoadBias([10f, 20f]);
        var y = layer.Forward(new Tensor([1f, 1f, 2f, 0f], 2, 2));
        Assert.Equal([13f, 27f, 12f, 26f], y.Data);
    }

    [Fact]
    public void Compressed_linear_uses_the_storage_adds_the_bias_and_backpropagates_to_x_and_bias_only()
    {
        var layer = new Linear(3, 2);
        float[] w = [1f, 0f, -1f, 0.5f, 0.5f, 0.5f];
        layer.LoadBias([1f, -1f]);
        var storage = new DoublingStorage(2, 3, w);
        layer.SetCompressedWeight(storage);
        Assert.Same(storage, layer.CompressedWeight);
        Assert.Equal(["bias"], layer.Parameters.Select(p => p.Name));
        var e = Assert.Throws<InvalidOperationException>(() => layer.Weight);
        Assert.Contains("Linear(3, 2)", e.Message);
        Assert.Contains("fake-x2", e.Message);

        var x = new Tensor([1f, 2f, 3f], 1, 3) { RequiresGrad = true };
        var y = layer.Forward(x);
        Assert.Equal(1, storage.Calls);
        Assert.Equal([2f * (1 - 3) + 1f, 2f * 3f - 1f], y.Data);

        Ops.Sum(y).Backward();
        // dL/dx = column sums of the dequantized (doubled) weight; dL/db = 1 per output.
        Assert.Equal([3f, 1f, -1f], x.Grad!.Data);
        Assert.Equal([1f, 1f], layer.Bias!.Grad!.Data);
        Ops.Sum(layer.Forward(x)).Backward();
        Assert.Equal(1, storage.DequantizeCalls); // cached across backward passes

        layer.LoadWeight(w);
        Assert.Null(layer.CompressedWeight);
        Assert.Equal(w, layer.Weight.Data);
        Assert.Equal(["weight", "bias"], layer.Parameters.Select(p => p.Name));
    }

    [Fact]
    public void Compressed_storage_of_the_wrong_shape_is_rejected_naming_both_shapes()
    {
        var layer = new Linear(3, 2);
        var e = Assert.Throws<ArgumentException>(() => layer.SetCompressedWeight(new DoublingStorage(3, 2, new float[6])));
        Assert.Contains("[3, 2]", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("Linear(3, 2)", e.Message);
        Assert.Throws<ArgumentException>(() => layer.LoadWeight(new float[5]));
        Assert.Throws<ArgumentException>(() => layer.LoadWeight([1f, 2f, 3f, 4f, 5f, float.NaN]));
        Assert.Throws<InvalidOperationException>(() => new Linear(2, 2, bias: false).LoadBias([1f, 2f]));
    }

    [Fact]
    public void Conv2d_storage_path_matches_the_dense_path_with_the_same_weight()
    {
        var dense = new Conv2d(2, 3, 3, stride: 2, padding: 1);
        var compressed = new Conv2d(2, 3, 3, stride: 2, padding: 1);
        var half = dense.Weight.Data.Select(v => v / 2f).ToArray();
        var storage = new DoublingStorage(3, 18, half);
        compressed.SetCompressedWeight(storage);
        Assert.Equal(["bias"], compressed.Parameters.Select(p => p.Name));
        Assert.Contains("Conv2d(2, 3, kernel 3)", Assert.Throws<InvalidOperationException>(() => compressed.Weight).Message);

        var x = GradCheck.Random(new Rng(3), 2, 2, 5, 5);
        var expected = dense.Forward(x);
        var actual = compressed.Forward(x);
        Assert.Equal(1, storage.Calls);
        Assert.Equal([2, 3, 3, 3], actual.Shape);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected.Data[i], actual.Data[i], 4);

        var wrong = Assert.Throws<ArgumentException>(() => compressed.SetCompressedWeight(new DoublingStorage(3, 9, new float[27])));
        Assert.Contains("[3, 9]", wrong.Message);
        Assert.Contains("[3, 18]", wrong.Message);
    }

    [Fact]
    public void Conv2d_forward_matches_a_direct_convolution()
    {
        var conv = new Conv2d(1, 1, 2, stride: 1, padding: 0);
        conv.LoadWeight([1f, 2f, 3f, 4f]);
        conv.LoadBias([0.5f]);
        var x = new Tensor([1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f], 1, 1, 3, 3);
        var y = conv.Forward(x);
        Assert.Equal([1, 1, 2, 2], y.Shape);
        Assert.Equal([37.5f, 47.5f, 67.5f, 77.5f], y.Data);
    }
}
