namespace Condense.Nn;

// OWNER: core. Skeleton only: the surface the generator and compression code against.
/// <summary>y = x W^T + b, with W [OutFeatures, InFeatures]. The weight storage is swappable.</summary>
public sealed class Linear : Layer
{
    public Linear(int inFeatures, int outFeatures, bool bias = true) => throw new NotImplementedException();

    public int InFeatures { get; }
    public int OutFeatures { get; }

    /// <summary>Dense trainable weight [OutFeatures, InFeatures].</summary>
    public Tensor Weight => throw new NotImplementedException();

    /// <summary>Bias [OutFeatures], or null.</summary>
    public Tensor? Bias => throw new NotImplementedException();

    /// <summary>The compressed weight once <see cref="SetCompressedWeight"/> was called, else null.</summary>
    public IWeightStorage? CompressedWeight => throw new NotImplementedException();

    /// <summary>Swaps the weight for a compressed storage of the same shape; the dense weight is released.</summary>
    public void SetCompressedWeight(IWeightStorage storage) => throw new NotImplementedException();

    public Tensor Forward(Tensor x) => throw new NotImplementedException();

    public override IReadOnlyList<Parameter> Parameters => throw new NotImplementedException();

    public override void ResetParameters(Rng rng) => throw new NotImplementedException();
}
