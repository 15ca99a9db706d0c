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

/// <summary>Every data-aware combination the generator emits: GPTQ, GPTQ + correction, activation-aware SVD, and a round-to-nearest layer beside them.</summary>
[Compressible]
public sealed partial class DataAwareMlp : Module
{
    [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Linear hidden = new(64, 64);
    [LowRank(8, Method = LowRankMethod.ActivationAwareSvd)] private readonly Linear middle = new(64, 48);
    [Quantize(3, Method = QuantizationMethod.Gptq)] [LowRankCorrection(2)] private readonly Linear output = new(48, 10);
    [Quantize(4, GroupSize = 16)] private readonly Linear unused = new(16, 4);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(middle.Forward(Ops.Relu(hidden.Forward(x)))));
}

/// <summary>A block without Forward(Tensor): its data-aware layers are calibrated by the model that contains it.</summary>
[Compressible]
public sealed partial class DataAwareBlock : Module
{
    [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)] private readonly Linear up = new(32, 64);
    [LowRank(4, Method = LowRankMethod.ActivationAwareSvd)] private readonly Linear down = new(64, 32);

    public Tensor Run(Tensor x, bool relu) => down.Forward(relu ? Ops.Relu(up.Forward(x)) : up.Forward(x));
}

[Compressible]
public sealed partial class DataAwareNet : Module
{
    [Quantize(8, Method = QuantizationMethod.Gptq)] private readonly Linear input = new(64, 32);
    private readonly DataAwareBlock block = new();

    public Tensor Forward(Tensor x) => block.Run(Ops.Relu(input.Forward(x)), relu: true);
}

/// <summary>Only an activation-aware SVD layer: the missing-calibration error must name it.</summary>
[Compressible]
public sealed partial class AsvdOnly : Module
{
    [LowRank(4, Method = LowRankMethod.ActivationAwareSvd)] private readonly Linear layer = new(32, 32);

    public Tensor Forward(Tensor x) => layer.Forward(x);
}
