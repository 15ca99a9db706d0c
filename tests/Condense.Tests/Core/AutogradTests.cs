namespace Condense.Tests.Core;

public class AutogradTests
{
    private const double Tolerance = 2e-2;

    // A fixed random projection makes every output element matter to the scalar loss with a distinct weight.
    private static Tensor Project(Tensor y, Tensor r) => Ops.Sum(Ops.Mul(y, r));

    [Fact]
    public void GradCheck_catches_a_wrong_gradient()
    {
        var rng = new Rng(1);
        var x = GradCheck.Random(rng, 3, 4);
        var w = GradCheck.Random(rng, 2, 4);
        var r = GradCheck.Random(rng, 3, 2);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Linear(x, w), r), [x, w]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Linear(x, w), r), [x, w], tamper: g => g * 1.1f) > Tolerance);
    }

    [Fact]
    public void Linear_gradients_match_finite_differences()
    {
        var rng = new Rng(2);
        var x = GradCheck.Random(rng, 5, 7);
        var w = GradCheck.Random(rng, 3, 7);
        var b = GradCheck.Random(rng, 3);
        var r = GradCheck.Random(rng, 5, 3);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Linear(x, w, b), r), [x, w, b]) < Tolerance);
    }

    [Fact]
    public void MatMul_gradients_match_finite_differences()
    {
        var rng = new Rng(3);
        var a = GradCheck.Random(rng, 6, 5);
        var b = GradCheck.Random(rng, 5, 9);
        var r = GradCheck.Random(rng, 6, 9);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.MatMul(a, b), r), [a, b]) < Tolerance);
    }

    [Fact]
    public void Elementwise_gradients_match_finite_differences()
    {
        var rng = new Rng(4);
        var a = GradCheck.Random(rng, 3, 4);
        var b = GradCheck.Random(rng, 3, 4);
        var bias = GradCheck.Random(rng, 4);
        var r = GradCheck.Random(rng, 3, 4);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Add(a, b), r), [a, b]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Mul(a, b), r), [a, b]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Mul(a, -2.5f), r), [a]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.AddBias(a, bias), r), [a, bias]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Gelu(a), r), [a]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Ops.Mean(Ops.Mul(a, a)), [a]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Ops.Sum(Ops.Mul(a, a)), [a]) < Tolerance);
        var z = GradCheck.AwayFromZero(rng, 0.1f, 3, 4);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Relu(z), r), [z]) < Tolerance);
    }

    [Fact]
    public void AddBias_over_channels_gradients_match_finite_differences()
    {
        var rng = new Rng(5);
        var x = GradCheck.Random(rng, 2, 3, 2, 2);
        var bias = GradCheck.Random(rng, 3);
        var r = GradCheck.Random(rng, 2, 3, 2, 2);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.AddBias(x, bias), r), [x, bias]) < Tolerance);
    }

    [Fact]
    public void Reshape_and_flatten_pass_gradients_through()
    {
        var rng = new Rng(6);
        var x = GradCheck.Random(rng, 2, 3, 4);
        var r = GradCheck.Random(rng, 2, 12);
        var r2 = GradCheck.Random(rng, 6, 4);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Flatten(x), r), [x]) < Tolerance);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Reshape(x, -1, 4), r2), [x]) < Tolerance);
        Assert.Equal([6, 4], x.Reshape(-1, 4).Shape);
    }

    [Theory]
    [InlineData(1, 0)]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 0)]
    public void Conv2d_gradients_match_finite_differences(int stride, int padding)
    {
        var rng = new Rng(7);
        var x = GradCheck.Random(rng, 2, 2, 5, 5);
        var w = GradCheck.Random(rng, 3, 2, 3, 3);
        var b = GradCheck.Random(rng, 3);
        int o = (5 + 2 * padding - 3) / stride + 1;
        var r = GradCheck.Random(rng, 2, 3, o, o);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.Conv2d(x, w, b, stride, padding), r), [x, w, b]) < Tolerance);
    }

    [Fact]
    public void MaxPool2d_gradients_match_finite_differences()
    {
        var rng = new Rng(8);
        // Distinct values spaced wider than the step, so the maximum never switches.
        var values = Enumerable.Range(0, 2 * 2 * 4 * 4).Select(i => (float)i * 0.1f).ToArray();
        rng.Shuffle(values.AsSpan());
        var x = new Tensor(values, 2, 2, 4, 4);
        var r = GradCheck.Random(rng, 2, 2, 2, 2);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.MaxPool2d(x, 2, 2), r), [x]) < Tolerance);
        var r3 = GradCheck.Random(rng, 2, 2, 2, 2);
        Assert.True(GradCheck.MaxRelativeError(() => Project(Ops.MaxPool2d(x, 3, 1), r3), [x]) < Tolerance);
    }

    [Fact]
    public void SoftmaxCrossEntropy_gradients_match_finite_differences()
    {
        var rng = new Rng(9);
        var logits = GradCheck.Random(rng, 4, 5);
        int[] labels = [0, 4, 2, 2];
        Assert.True(GradCheck.MaxRelativeError(() => Ops.SoftmaxCrossEntropy(logits, labels), [logits]) < Tolerance);
    }

    [Fact]
    public void SoftmaxCrossEntropy_is_stable_and_exact_on_known_values()
    {
        var uniform = new Tensor(new float[6], 2, 3);
        Assert.Equal(MathF.Log(3), Ops.SoftmaxCrossEntropy(uniform, [0, 2]).Data[0], 5);
        var huge = new Tensor([1000f, 0f, -1000f], 1, 3);
        Assert.Equal(0f, Ops.SoftmaxCrossEntropy(huge, [0]).Data[0], 5);
        Assert.Equal(2000f, Ops.SoftmaxCrossEntropy(huge, [2]).Data[0], 1);
    }

    [Fact]
    public void Gelu_matches_the_tanh_formula()
    {
        var x = new Tensor([-3f, -1f, 0f, 0.5f, 2f], 5);
        var y = Ops.Gelu(x);
        foreach (var (v, g) in x.Data.Zip(y.Data))
        {
            double expected = 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            Assert.Equal(expected, g, 5);
        }
    }

    [Fact]
    public void Backward_accumulates_shared_inputs_and_across_calls()
    {
        var x = new Tensor([2f, 3f], 2) { RequiresGrad = true };
        // y = sum(x*x + x) uses x three times: dy/dx = 2x + 1.
        Ops.Sum(Ops.Add(Ops.Mul(x, x), x)).Backward();
        Assert.Equal([5f, 7f], x.Grad!.Data);
        Ops.Sum(x).Backward();
        Assert.Equal([6f, 8f], x.Grad!.Data);
    }

    [Fact]
    public void NoGrad_records_no_tape_and_nests()
    {
        var x = new Tensor([1f, -2f], 2) { RequiresGrad = true };
        using (Tensor.NoGrad())
        {
            using (Tensor.NoGrad()) Assert.False(Tensor.IsGradEnabled);
            Assert.False(Tensor.IsGradEnabled);
            var y = Ops.Sum(Ops.Relu(x));
            Assert.False(y.RequiresGrad);
            Assert.Throws<InvalidOperationException>(y.Backward);
        }
        Assert.True(Tensor.IsGradEnabled);
        Assert.True(Ops.Sum(x).RequiresGrad);
    }

    [Fact]
    public void Backward_needs_a_scalar_and_no_grad_goes_to_non_requiring_inputs()
    {
        var x = new Tensor([1f, 2f], 1, 2);
        var w = new Tensor([1f, 1f], 1, 2) { RequiresGrad = true };
        var y = Ops.Linear(x, w);
        Ops.Mul(y, 1f).Reshape(1, 1, 1).Flatten().Backward(); // one element of any rank counts as a scalar
        Assert.Equal([1f, 2f], w.Grad!.Data);
        w.Grad = null;
        Ops.Sum(y).Backward();
        Assert.Null(x.Grad);
        Assert.Equal([1f, 2f], w.Grad!.Data);
        var vector = Ops.Mul(w, 2f);
        Assert.Contains("scalar", Assert.Throws<InvalidOperationException>(vector.Backward).Message);
    }
}
