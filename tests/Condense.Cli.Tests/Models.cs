using Condense;
using Condense.Nn;

namespace Condense.Cli.Tests;

/// <summary>The plan <c>condense dry-run --bits 4 --group 64 --override output=8:row</c> describes for its own file.</summary>
[Compressible]
public sealed partial class DryRunMlp : Module
{
    [Quantize(4, GroupSize = 64)] private readonly Linear hidden = new(128, 96);
    [Quantize(4, GroupSize = 32)] private readonly Linear middle = new(96, 64);
    [Quantize(8)] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(middle.Forward(Ops.Relu(hidden.Forward(x)))));
}

/// <summary>The same shapes, kept dense: its saved file is what dry-run reads.</summary>
[Compressible]
public sealed partial class DenseMlp : Module
{
    [KeepDense] private readonly Linear hidden = new(128, 96);
    [KeepDense] private readonly Linear middle = new(96, 64);
    [KeepDense] private readonly Linear output = new(64, 10);

    public Tensor Forward(Tensor x) => output.Forward(Ops.Relu(middle.Forward(Ops.Relu(hidden.Forward(x)))));
}
