using Condense.Nn;

namespace Condense.Tests.Import;

/// <summary>The Condense twin of the fixture script's torch Mlp: same names (blocks[i] for PyTorch's blocks.i), same shapes.</summary>
[Compressible]
public sealed partial class ImportMlp : Module
{
    [Quantize(4, GroupSize = 16)] private readonly Linear hidden1 = new(64, 32);

    [Quantize(8)] private readonly Linear[] blocks = { new(32, 32), new(32, 32) };

    private readonly Linear output = new(32, 10);

    public Tensor Forward(Tensor x)
    {
        var h = Ops.Relu(hidden1.Forward(x));
        foreach (var block in blocks) h = Ops.Relu(block.Forward(h));
        return output.Forward(h);
    }
}

/// <summary>The Condense twin of the fixture script's torch Cnn.</summary>
[Compressible]
public sealed partial class ImportCnn : Module
{
    private readonly Conv2d conv1 = new(1, 4, 3, padding: 1);
    private readonly Conv2d conv2 = new(4, 8, 3, stride: 2, padding: 1);
    [Quantize(4, GroupSize = 32)] private readonly Linear output = new(128, 10);

    public Tensor Forward(Tensor x) =>
        output.Forward(Ops.Flatten(Ops.Relu(conv2.Forward(Ops.Relu(conv1.Forward(x))))));
}

/// <summary>One BERT layer's six Linear layers, named after all-MiniLM-L6-v2's modules.</summary>
[Compressible]
public sealed partial class MiniLmLayer : Module
{
    [Quantize(4, GroupSize = 64)] private readonly Linear query = new(384, 384);
    [Quantize(4, GroupSize = 64)] private readonly Linear key = new(384, 384);
    [Quantize(4, GroupSize = 64)] private readonly Linear value = new(384, 384);
    [Quantize(4, GroupSize = 64)] private readonly Linear attentionOutput = new(384, 384);
    [Quantize(4, GroupSize = 64)] private readonly Linear intermediate = new(384, 1536);
    [Quantize(4, GroupSize = 64)] private readonly Linear output = new(1536, 384);

    public Linear QueryLayer() => query;
}

/// <summary>The Linear layers of all-MiniLM-L6-v2 (embeddings and LayerNorms are not layers Condense has yet).</summary>
[Compressible]
public sealed partial class MiniLmLinears : Module
{
    private readonly MiniLmLayer[] layers = { new(), new(), new(), new(), new(), new() };

    public MiniLmLayer FirstLayer() => layers[0];
}
