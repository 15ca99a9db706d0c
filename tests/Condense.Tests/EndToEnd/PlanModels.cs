using Condense.Nn;

namespace Condense.Tests.EndToEnd;

// Models for the nested-model, unknown-shape and not-yet-implemented tests; the Condense generator runs on them.

[Compressible]
public sealed partial class PlanMlp : Module
{
    [Quantize(4, GroupSize = 16)] private readonly Linear up = new(16, 32);
    [Quantize(8)] private readonly Linear down = new(32, 16);
}

[Compressible]
public sealed partial class PlanBlock : Module
{
    [KeepDense] private readonly Linear norm = new(16, 16, bias: false);
    private readonly PlanMlp mlp = new();
}

[Compressible(MaxBytes = 16 * 1024)]
[Override("blocks[0].mlp.*", Bits = 8)]
public sealed partial class PlanStack : Module
{
    public const int Depth = 3;

    private readonly PlanBlock[] blocks = new PlanBlock[Depth];
    [Quantize(4, GroupSize = 16)] private readonly Linear head = new(16, 10);

    public PlanStack()
    {
        for (int i = 0; i < Depth; i++) blocks[i] = new PlanBlock();
    }

    /// <summary>Breaks the array the way user code could, for the registry's run-time checks.</summary>
    public void ReplaceBlocks(PlanBlock[] replacement) => Array.Copy(replacement, blocks, Math.Min(replacement.Length, Depth));

    public void ClearBlock(int index) => blocks[index] = null!;
}

#pragma warning disable CND0006 // the point of these models: shapes only known at run time
[Compressible]
public sealed partial class RuntimeWidth : Module
{
    private static int width = 64;

    [Quantize(4, GroupSize = 64)] private readonly Linear hidden = new(width, 10);

    public static RuntimeWidth Create(int inputs)
    {
        width = inputs;
        return new RuntimeWidth();
    }
}

[Compressible(OnIncompatible = IncompatiblePolicy.Adjust)]
public sealed partial class RuntimeWidthAdjusted : Module
{
    private static int width = 64;

    [Quantize(4, GroupSize = 64)] private readonly Linear hidden = new(width, 10);

    public static RuntimeWidthAdjusted Create(int inputs)
    {
        width = inputs;
        return new RuntimeWidthAdjusted();
    }
}
#pragma warning restore CND0006

[Compressible]
public sealed partial class LaterTechniques : Module
{
    [Quantize(8)] private readonly Linear first = new(16, 16);
    [LowRank(4)] private readonly Linear hidden = new(32, 16);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear sparse = new(16, 16);
}
