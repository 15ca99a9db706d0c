namespace Condense.Tests.Core;

public class ShapeErrorTests
{
    private static void AssertMessage(Action act, params string[] parts)
    {
        var e = Assert.Throws<ArgumentException>(act);
        foreach (var p in parts) Assert.Contains(p, e.Message);
    }

    [Fact]
    public void Ops_name_themselves_and_both_shapes()
    {
        AssertMessage(() => Ops.Linear(Tensor.Zeros(2, 3), Tensor.Zeros(4, 5)), "Linear", "[2, 3]", "[4, 5]");
        AssertMessage(() => Ops.MatMul(Tensor.Zeros(2, 3), Tensor.Zeros(4, 5)), "MatMul", "[2, 3]", "[4, 5]");
        AssertMessage(() => Ops.Add(Tensor.Zeros(2, 3), Tensor.Zeros(3, 2)), "Add", "[2, 3]", "[3, 2]");
        AssertMessage(() => Ops.AddBias(Tensor.Zeros(2, 3), Tensor.Zeros(4)), "AddBias", "[2, 3]", "[4]");
        AssertMessage(() => Ops.Conv2d(Tensor.Zeros(1, 2, 5, 5), Tensor.Zeros(3, 1, 3, 3)), "Conv2d", "[1, 2, 5, 5]", "[3, 1, 3, 3]");
        AssertMessage(() => Ops.Reshape(Tensor.Zeros(2, 3), 4, 2), "Reshape", "[2, 3]", "[4, 2]");
        AssertMessage(() => Ops.MaxPool2d(Tensor.Zeros(1, 1, 2, 2), 3, 1), "MaxPool2d", "[1, 1, 2, 2]");
        AssertMessage(() => Ops.SoftmaxCrossEntropy(Tensor.Zeros(2, 3), [0, 3]), "SoftmaxCrossEntropy", "label 3", "[0, 3)");
        AssertMessage(() => Ops.SoftmaxCrossEntropy(Tensor.Zeros(2, 3), [0]), "SoftmaxCrossEntropy", "[2, 3]", "2 labels");
    }

    [Fact]
    public void Tensor_constructor_checks_length_against_shape()
    {
        AssertMessage(() => _ = new Tensor(new float[5], 2, 3), "5 elements", "[2, 3]", "6");
        Assert.Equal("Tensor[2, 1] [0, 0]", Tensor.Zeros(2, 1).ToString());
        var copy = Tensor.FromArray([1f, 2f], 2);
        Assert.Equal([2], copy.Shape);
    }

    [Fact]
    public void ArgMax_and_Accuracy()
    {
        var logits = new Tensor([0f, 3f, 1f, 5f, 2f, 2f], 2, 3);
        Assert.Equal([1, 0], Ops.ArgMax(logits));
        Assert.Equal(0.5f, Ops.Accuracy(logits, [1, 2]));
        Assert.Throws<ArgumentException>(() => Ops.Accuracy(logits, [1]));
    }
}
