namespace Condense;

public sealed partial class Tensor
{
    /// <summary>Element-wise sum; see <see cref="Ops.Add"/>.</summary>
    public static Tensor operator +(Tensor a, Tensor b) => Ops.Add(a, b);

    /// <summary>Scales by a scalar; see <see cref="Ops.Mul(Tensor, float)"/>.</summary>
    public static Tensor operator *(Tensor a, float scalar) => Ops.Mul(a, scalar);

    /// <summary>Element-wise product; see <see cref="Ops.Mul(Tensor, Tensor)"/>.</summary>
    public static Tensor operator *(Tensor a, Tensor b) => Ops.Mul(a, b);

    /// <summary>See <see cref="Ops.MatMul"/>.</summary>
    public Tensor MatMul(Tensor other) => Ops.MatMul(this, other);

    /// <summary>See <see cref="Ops.Relu"/>.</summary>
    public Tensor Relu() => Ops.Relu(this);

    /// <summary>See <see cref="Ops.Gelu"/>.</summary>
    public Tensor Gelu() => Ops.Gelu(this);

    /// <summary>See <see cref="Ops.Reshape"/>.</summary>
    public Tensor Reshape(params int[] shape) => Ops.Reshape(this, shape);

    /// <summary>See <see cref="Ops.Flatten"/>.</summary>
    public Tensor Flatten() => Ops.Flatten(this);

    /// <summary>See <see cref="Ops.Sum"/>.</summary>
    public Tensor Sum() => Ops.Sum(this);

    /// <summary>See <see cref="Ops.Mean"/>.</summary>
    public Tensor Mean() => Ops.Mean(this);
}
