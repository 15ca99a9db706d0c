using Condense.Nn;

namespace Condense.Tests.EndToEnd;

/// <summary>Every technique with a runtime, one per layer, on the 8x8 digits.</summary>
[Compressible]
public sealed partial class DigitsAllTechniques : Module
{
    [LowRank(24)] private readonly Linear hidden = new(64, 64);
    [Sparsify(N = 2, M = 4)] private readonly Linear semi = new(64, 64);
    [Sparsify(0.5)] private readonly Linear unstructured = new(64, 64);
    [Quantize(4, GroupSize = 16), LowRankCorrection(4)] private readonly Linear corrected = new(64, 64);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.Relu(hidden.Forward(x));
        h = Ops.Relu(semi.Forward(h));
        h = Ops.Relu(unstructured.Forward(h));
        h = Ops.Relu(corrected.Forward(h));
        return output.Forward(h);
    }
}
