namespace Condense.Nn;

// OWNER: core. Skeleton only.
/// <summary>2-D convolution over [N, C, H, W]; the weight [Out, In, K, K] is a matrix Out x (In*K*K) for storage.</summary>
public sealed class Conv2d : Layer
{
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, bool bias = true) =>
        throw new NotImplementedException();

    public int InChannels { get; }
    public int OutChannels { get; }
    public int KernelSize { get; }
    public int Stride { get; }
    public int Padding { get; }

    /// <summary>Dense trainable weight [OutChannels, InChannels, KernelSize, KernelSize].</summary>
    public Tensor Weight => throw new NotImplementedException();
    public Tensor? Bias => throw new NotImplementedException();
    public IWeightStorage? CompressedWeight => throw new NotImplementedException();
    public void SetCompressedWeight(IWeightStorage storage) => throw new NotImplementedException();
    public Tensor Forward(Tensor x) => throw new NotImplementedException();
    public override IReadOnlyList<Parameter> Parameters => throw new NotImplementedException();
    public override void ResetParameters(Rng rng) => throw new NotImplementedException();
}
