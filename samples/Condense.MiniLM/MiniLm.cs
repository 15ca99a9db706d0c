using Condense.Import;
using Condense.Nn;
using Condense.Transformer;

namespace Condense.MiniLM;

/// <summary>
/// One BERT encoder layer of all-MiniLM-L6-v2 (hidden 384, 12 heads, intermediate 1536). The default plan is int8
/// per row on the six Linear layers; the two LayerNorms stay dense (the generator registers them as parameter layers).
/// </summary>
[Compressible]
public sealed partial class Block : Module, IEncoderLayer
{
    /// <summary>Hidden size, feed-forward size and attention heads of all-MiniLM-L6-v2.</summary>
    public const int Hidden = 384, Intermediate = 1536, Heads = 12;

    [Quantize(8)] private readonly Linear query = new(Hidden, Hidden);
    [Quantize(8)] private readonly Linear key = new(Hidden, Hidden);
    [Quantize(8)] private readonly Linear value = new(Hidden, Hidden);
    [Quantize(8)] private readonly Linear attentionOutput = new(Hidden, Hidden);
    private readonly LayerNorm attentionNorm = new(Hidden);
    [Quantize(8)] private readonly Linear intermediate = new(Hidden, Intermediate);
    [Quantize(8)] private readonly Linear output = new(Intermediate, Hidden);
    private readonly LayerNorm outputNorm = new(Hidden);

    /// <summary>The post-LN encoder layer (erf GELU, LayerNorm eps 1e-12, as the exported graph computes).</summary>
    public Tensor Forward(Tensor hidden, SequenceBatch batch) =>
        Bert.EncoderLayer(hidden, new(query, key, value, attentionOutput, attentionNorm, intermediate, output, outputNorm), batch, Heads);
}

/// <summary>
/// The same encoder layer with int4, group 64, GPTQ Linear layers: Compress records each layer's inputs over
/// <c>CompressionOptions.Calibration</c> (token batches packed by <see cref="TokenBatch.ToTensor"/>) first.
/// </summary>
[Compressible]
public sealed partial class GptqBlock : Module, IEncoderLayer
{
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear query = new(Block.Hidden, Block.Hidden);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear key = new(Block.Hidden, Block.Hidden);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear value = new(Block.Hidden, Block.Hidden);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear attentionOutput = new(Block.Hidden, Block.Hidden);
    private readonly LayerNorm attentionNorm = new(Block.Hidden);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear intermediate = new(Block.Hidden, Block.Intermediate);
    [Quantize(4, GroupSize = 64, Method = QuantizationMethod.Gptq)] private readonly Linear output = new(Block.Intermediate, Block.Hidden);
    private readonly LayerNorm outputNorm = new(Block.Hidden);

    /// <inheritdoc/>
    public Tensor Forward(Tensor hidden, SequenceBatch batch) =>
        Bert.EncoderLayer(hidden, new(query, key, value, attentionOutput, attentionNorm, intermediate, output, outputNorm), batch, Block.Heads);
}

/// <summary>An encoder layer of any plan.</summary>
public interface IEncoderLayer
{
    /// <summary>Hidden states [B * T, 384] after the layer.</summary>
    Tensor Forward(Tensor hidden, SequenceBatch batch);
}

/// <summary>What every plan of the model can do: sentence embeddings from a token batch.</summary>
public interface ISentenceEncoder
{
    /// <summary>Unit-length sentence embeddings [Count, 384].</summary>
    Tensor Encode(TokenBatch tokens);
}

/// <summary>
/// all-MiniLM-L6-v2 (sentence-transformers, MIT): BERT embeddings (30,522 words, 512 positions, 2 token types) and
/// LayerNorm, 6 encoder layers, mean pooling over the attention mask, L2 normalization. Declared plan: the
/// <see cref="Block"/>'s int8 per row; the embedding table (47 MB of the 90) stays dense.
/// </summary>
[Compressible]
public sealed partial class MiniLm : Module, ISentenceEncoder
{
    /// <summary>Vocabulary, position table and token types of the checkpoint.</summary>
    public const int Vocabulary = 30522, MaxPositions = 512, TokenTypes = 2, Hidden = Block.Hidden;

    private readonly Embedding words = new(Vocabulary, Hidden);
    private readonly Embedding positions = new(MaxPositions, Hidden);
    private readonly Embedding tokenTypes = new(TokenTypes, Hidden);
    private readonly LayerNorm embeddingsNorm = new(Hidden);
    private readonly Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);
}

/// <summary>The same model with int4, group 64, round-to-nearest Linear layers.</summary>
[Compressible]
[Override("layers[*].*", Bits = 4, GroupSize = 64)]
public sealed partial class MiniLmInt4G64 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);
}

/// <summary>The model with GPTQ int4 g64 encoder layers; its Forward takes packed token batches so Compress can calibrate.</summary>
[Compressible]
public sealed partial class MiniLmGptqInt4G64 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly GptqBlock[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (the calibration pass runs this).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>The forward pass shared by the plans, and the import map from the ONNX file's names.</summary>
public static class MiniLmForward
{
    /// <summary>embeddings -> encoder layers -> mean pooling over the mask -> L2 normalization: [Count, Hidden].</summary>
    public static Tensor Encode(TokenBatch tokens, Embedding words, Embedding positions, Embedding tokenTypes, LayerNorm norm, IEnumerable<IEncoderLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(layers);
        var batch = new SequenceBatch(tokens.Count, tokens.Length, tokens.Mask);
        using var noGrad = Tensor.NoGrad();
        var hidden = Bert.Embed(words, positions, tokenTypes, norm, tokens.Ids, null, batch);
        foreach (var layer in layers) hidden = layer.Forward(hidden, batch);
        var pooled = Bert.MeanPool(hidden, batch);
        Normalize(pooled);
        return pooled;
    }

    /// <summary>Each row scaled to unit length (sentence-transformers' Normalize: x / max(||x||, 1e-12)).</summary>
    public static void Normalize(Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int width = rows.Shape[^1];
        for (int r = 0; r < rows.Length / width; r++)
        {
            var row = rows.Data.AsSpan(r * width, width);
            float norm = System.Numerics.Tensors.TensorPrimitives.Norm(row);
            System.Numerics.Tensors.TensorPrimitives.Multiply(row, 1f / MathF.Max(norm, 1e-12f), row);
        }
    }

    /// <summary>
    /// The ONNX file's (Hugging Face BertModel) names to the model's: <c>encoder.layer.3.attention.self.query.weight</c>
    /// is <c>layers[3].query.weight</c>, <c>embeddings.LayerNorm.bias</c> is <c>embeddingsNorm.bias</c>. The pooler
    /// (a dense + tanh head sentence-transformers does not use) is left out.
    /// </summary>
    public static WeightImportOptions ImportOptions { get; } = new()
    {
        Map = MapName,
        IgnoreExtras = ["pooler.*"],
    };

    /// <summary>One file name to the model's name (see <see cref="ImportOptions"/>).</summary>
    public static string MapName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name
            .Replace("embeddings.word_embeddings.", "words.", StringComparison.Ordinal)
            .Replace("embeddings.position_embeddings.", "positions.", StringComparison.Ordinal)
            .Replace("embeddings.token_type_embeddings.", "tokenTypes.", StringComparison.Ordinal)
            .Replace("embeddings.LayerNorm.", "embeddingsNorm.", StringComparison.Ordinal)
            .Replace("encoder.layer.", "layers.", StringComparison.Ordinal)
            .Replace(".attention.self.", ".", StringComparison.Ordinal)
            .Replace(".attention.output.dense.", ".attentionOutput.", StringComparison.Ordinal)
            .Replace(".attention.output.LayerNorm.", ".attentionNorm.", StringComparison.Ordinal)
            .Replace(".intermediate.dense.", ".intermediate.", StringComparison.Ordinal)
            .Replace(".output.dense.", ".output.", StringComparison.Ordinal)
            .Replace(".output.LayerNorm.", ".outputNorm.", StringComparison.Ordinal);
    }
}
