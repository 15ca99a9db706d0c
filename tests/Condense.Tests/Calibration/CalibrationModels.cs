using Condense.Nn;

namespace Condense.Tests.Calibration;

/// <summary>A digits MLP wide enough that g64 and per-row scales differ on its inner layers.</summary>
[Compressible]
public sealed partial class GptqMlp : Module
{
    [Quantize(4, GroupSize = 64)] private readonly Linear hidden = new(64, 256);
    [Quantize(4, GroupSize = 64)] private readonly Linear middle = new(256, 128);
    [Quantize(4, GroupSize = 64)] [LowRankCorrection(4)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(middle.Forward(Ops.Relu(hidden.Forward(x)))));
}

[Compressible]
public sealed partial class CalibrationCnn : Module
{
    [Quantize(8)] private readonly Conv2d conv = new(1, 4, 3, padding: 1);
    [Quantize(4, GroupSize = 16)] private readonly Linear output = new(4 * 4 * 4, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.Relu(conv.Forward(Ops.Reshape(x, x.Shape[0], 1, 8, 8)));
        return output.Forward(Ops.Flatten(Ops.MaxPool2d(h, 2, 2)));
    }
}
