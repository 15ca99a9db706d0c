using Condense.Nn;

namespace Condense.Tests.MixedPrecision;

/// <summary>Digits MLP whose two hidden layers get their bits from [MixedPrecision]; the output layer is fixed at int8.</summary>
[Compressible]
[MixedPrecision(2, 4, 8, AverageBits = 4.5)]
public sealed partial class MixedDigits : Module
{
    private readonly Linear hidden1 = new(64, 64);
    private readonly Linear hidden2 = new(64, 32);
    [Quantize(8)] private readonly Linear output = new(32, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}

/// <summary>The same MLP under a whole-model MaxBytes budget instead.</summary>
[Compressible(MaxBytes = 6000)]
[MixedPrecision(2, 3, 4, 8)]
public sealed partial class MixedDigitsBytes : Module
{
    private readonly Linear hidden1 = new(64, 64);
    private readonly Linear hidden2 = new(64, 32);
    [Quantize(8)] private readonly Linear output = new(32, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(hidden2.Forward(Ops.Relu(hidden1.Forward(x)))));
}
