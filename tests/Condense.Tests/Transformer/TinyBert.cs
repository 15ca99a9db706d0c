using Condense.Nn;
using Condense.Transformer;

namespace Condense.Tests.Transformer;

/// <summary>
/// One BERT encoder layer as the MiniLM sample declares it: six Linear layers (the attention projections int4 g16 and the
/// feed-forward int8, so Compress has work to do) and two LayerNorms, which the generator registers dense.
/// </summary>
[Compressible]
public partial class TinyBertBlock : Module
{
    public const int Hidden = 32, Intermediate = 48, Heads = 4;

    [Quantize(4, GroupSize = 16)] readonly Linear query = new(Hidden, Hidden);
    [Quantize(4, GroupSize = 16)] readonly Linear key = new(Hidden, Hidden);
    [Quantize(4, GroupSize = 16)] readonly Linear value = new(Hidden, Hidden);
    [Quantize(4, GroupSize = 16)] readonly Linear attentionOutput = new(Hidden, Hidden);
    readonly LayerNorm attentionNorm = new(Hidden);
    [Quantize(8)] readonly Linear intermediate = new(Hidden, Intermediate);
    [Quantize(8)] readonly Linear output = new(Intermediate, Hidden);
    readonly LayerNorm outputNorm = new(Hidden);

    /// <summary>The layer's parts for <see cref="Bert.EncoderLayer"/>.</summary>
    public EncoderLayerParts Parts() => new(query, key, value, attentionOutput, attentionNorm, intermediate, output, outputNorm);

    public Tensor Forward(Tensor hidden, SequenceBatch batch, float dropout = 0f, Rng? dropoutRng = null) =>
        Bert.EncoderLayer(hidden, Parts(), batch, Heads, dropout: dropout, dropoutRng: dropoutRng);
}

/// <summary>A 2-layer BERT: token, position and token-type embeddings, their LayerNorm, and an array of blocks (MiniLM's shape).</summary>
[Compressible]
public partial class TinyBert : Module
{
    public const int Vocabulary = 30, MaxPositions = 8, TokenTypes = 2, Hidden = TinyBertBlock.Hidden;

    readonly Embedding words = new(Vocabulary, Hidden);
    readonly Embedding positions = new(MaxPositions, Hidden);
    readonly Embedding tokenTypes = new(TokenTypes, Hidden);
    readonly LayerNorm embeddingsNorm = new(Hidden);
    readonly TinyBertBlock[] blocks = { new(), new() };

    /// <summary>Hidden states [B * T, Hidden] of the last layer.</summary>
    public Tensor Forward(int[] ids, int[]? tokenTypeIds, SequenceBatch batch, float dropout = 0f, Rng? dropoutRng = null)
    {
        var hidden = Bert.Embed(words, positions, tokenTypes, embeddingsNorm, ids, tokenTypeIds, batch, dropout, dropoutRng);
        foreach (var block in blocks) hidden = block.Forward(hidden, batch, dropout, dropoutRng);
        return hidden;
    }
}

/// <summary>An encoder layer whose attention projections are 2:4 sparse and whose feed-forward is CSR at 50%.</summary>
[Compressible]
public partial class SparseBertBlock : Module
{
    public const int Hidden = 32, Intermediate = 48, Heads = 4;

    [Sparsify(N = 2, M = 4)] readonly Linear query = new(Hidden, Hidden);
    [Sparsify(N = 2, M = 4)] readonly Linear key = new(Hidden, Hidden);
    [Sparsify(N = 2, M = 4)] readonly Linear value = new(Hidden, Hidden);
    [Sparsify(N = 2, M = 4), Quantize(8)] readonly Linear attentionOutput = new(Hidden, Hidden);
    readonly LayerNorm attentionNorm = new(Hidden);
    [Sparsify(0.5)] readonly Linear intermediate = new(Hidden, Intermediate);
    [Sparsify(0.5)] readonly Linear output = new(Intermediate, Hidden);
    readonly LayerNorm outputNorm = new(Hidden);

    public Tensor Forward(Tensor hidden, SequenceBatch batch) =>
        Bert.EncoderLayer(hidden, new(query, key, value, attentionOutput, attentionNorm, intermediate, output, outputNorm), batch, Heads);
}
