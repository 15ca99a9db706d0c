namespace Condense;

// OWNER: core (tensor + autograd). Skeleton only: the surface others code against.
/// <summary>A contiguous, row-major float32 tensor with an optional autograd tape.</summary>
public sealed partial class Tensor
{
    public Tensor(float[] data, params int[] shape)
    {
        Data = data;
        Shape = shape;
    }

    /// <summary>The values, row-major.</summary>
    public float[] Data { get; }

    /// <summary>The dimensions.</summary>
    public int[] Shape { get; }

    /// <summary>Number of elements.</summary>
    public int Length => Data.Length;

    /// <summary>Whether gradients flow to this tensor.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>The gradient accumulated by <c>Backward</c>, same shape as this tensor.</summary>
    public Tensor? Grad { get; set; }
}
