using Condense.Calibration;
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

/// <summary>The encoder layer with 2:4 semi-structured sparsity (two largest magnitudes of every four inputs kept), the kept values int8.</summary>
[Compressible]
public sealed partial class Sparse24Block : Module, IEncoderLayer
{
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear query = new(Block.Hidden, Block.Hidden);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear key = new(Block.Hidden, Block.Hidden);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear value = new(Block.Hidden, Block.Hidden);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear attentionOutput = new(Block.Hidden, Block.Hidden);
    private readonly LayerNorm attentionNorm = new(Block.Hidden);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear intermediate = new(Block.Hidden, Block.Intermediate);
    [Sparsify(N = 2, M = 4), Quantize(8)] private readonly Linear output = new(Block.Intermediate, Block.Hidden);
    private readonly LayerNorm outputNorm = new(Block.Hidden);

    /// <inheritdoc/>
    public Tensor Forward(Tensor hidden, SequenceBatch batch) =>
        Bert.EncoderLayer(hidden, new(query, key, value, attentionOutput, attentionNorm, intermediate, output, outputNorm), batch, Block.Heads);
}

/// <summary>The encoder layer at int4 g64 (round to nearest) with a rank-16 float32 correction U V fitted to each layer's quantization error (W ~ deq(Q) + U V).</summary>
[Compressible]
public sealed partial class LorcBlock : Module, IEncoderLayer
{
    [Quantize(4, GroupSize = 64), LowRankCorrection(16)] private readonly Linear query = new(Block.Hidden, Block.Hidden);
    [Quantize(4, GroupSize = 64), LowRankCorrection(16)] private readonly Linear key = new(Block.Hidden, Block.Hidden);
    [Quantize(4, GroupSize = 64), LowRankCorrection(16)] private readonly Linear value = new(Block.Hidden, Block.Hidden);
    [Quantize(4, GroupSize = 64), LowRankCorrection(16)] private readonly Linear attentionOutput = new(Block.Hidden, Block.Hidden);
    private readonly LayerNorm attentionNorm = new(Block.Hidden);
    [Quantize(4, GroupSize = 64), LowRankCorrection(16)] private readonly Linear intermediate = new(Block.Hidden, Block.Intermediate);
    [Quantize(4, GroupSize = 64), LowRankCorrection(16)] private readonly Linear output = new(Block.Intermediate, Block.Hidden);
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

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/>.</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 32, symmetric, round-to-nearest Linear layers.</summary>
[Compressible]
[Override("layers[*].*", Bits = 4, GroupSize = 32)]
public sealed partial class MiniLmInt4G32 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 64, symmetric, round-to-nearest Linear layers.</summary>
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

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 128, symmetric, round-to-nearest Linear layers.</summary>
[Compressible]
[Override("layers[*].*", Bits = 4, GroupSize = 128)]
public sealed partial class MiniLmInt4G128 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 64, asymmetric (scale and zero point), round-to-nearest.</summary>
[Compressible]
[Override("layers[*].*", Bits = 4, GroupSize = 64, Symmetric = false)]
public sealed partial class MiniLmInt4G64Asym : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 32, GPTQ Linear layers (<see cref="GptqBlock"/>; the override keeps the method).</summary>
[Compressible]
[Override("layers[*].*", GroupSize = 32)]
public sealed partial class MiniLmGptqInt4G32 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly GptqBlock[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 64, GPTQ Linear layers (<see cref="GptqBlock"/>; the override keeps the method).</summary>
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

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 64, asymmetric (scale and zero point per group), GPTQ Linear layers.</summary>
[Compressible]
[Override("layers[*].*", Bits = 4, GroupSize = 64, Symmetric = false)]
public sealed partial class MiniLmGptqInt4G64Asym : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly GptqBlock[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4, group 128, GPTQ Linear layers (<see cref="GptqBlock"/>; the override keeps the method).</summary>
[Compressible]
[Override("layers[*].*", GroupSize = 128)]
public sealed partial class MiniLmGptqInt4G128 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly GptqBlock[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>2:4 semi-structured sparsity (magnitude) with the kept values int8.</summary>
[Compressible]
public sealed partial class MiniLmSparse24Int8 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Sparse24Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>int4 g64 round-to-nearest plus a rank-16 float32 correction of the quantization error on every Linear layer.</summary>
[Compressible]
public sealed partial class MiniLmInt4G64Lorc : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly LorcBlock[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>uniform int3, one symmetric scale per row: the baseline of the mixed-precision plan at equal bytes.</summary>
[Compressible]
[Override("layers[*].*", Bits = 3)]
public sealed partial class MiniLmInt3 : Module, ISentenceEncoder
{
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Block[] layers = { new(), new(), new(), new(), new(), new() };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, layers);

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what calibration and sensitivity run).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));
}

/// <summary>
/// Q-BERT / HAWQ-style mixed precision: every encoder Linear layer gets 2, 3, 4 or 8 bits (one scale per row, the mixed
/// format) from its Hessian trace, under a byte budget the sample sets to the uniform int3 model's bytes. The Hessian is
/// the Gauss-Newton one of 1/2 ||e(x) - e_fp32(x)||^2, the squared distance between the unit-length embeddings and the
/// fp32 ones (= 1 - cosine), on calibration sentences. The layers are declared flat (arrays of six, one per encoder layer)
/// because <c>[MixedPrecision]</c> chooses for the model's own layers, not for those of nested blocks.
/// </summary>
[Compressible]
[MixedPrecision(2, 3, 4, 8, AverageBits = 3.05)]
public sealed partial class MiniLmMixed : Module, ISentenceEncoder
{
    private const int H = Block.Hidden, I = Block.Intermediate;
    private readonly Embedding words = new(MiniLm.Vocabulary, MiniLm.Hidden);
    private readonly Embedding positions = new(MiniLm.MaxPositions, MiniLm.Hidden);
    private readonly Embedding tokenTypes = new(MiniLm.TokenTypes, MiniLm.Hidden);
    private readonly LayerNorm embeddingsNorm = new(MiniLm.Hidden);
    private readonly Linear[] query = { new(H, H), new(H, H), new(H, H), new(H, H), new(H, H), new(H, H) };
    private readonly Linear[] key = { new(H, H), new(H, H), new(H, H), new(H, H), new(H, H), new(H, H) };
    private readonly Linear[] value = { new(H, H), new(H, H), new(H, H), new(H, H), new(H, H), new(H, H) };
    private readonly Linear[] attentionOutput = { new(H, H), new(H, H), new(H, H), new(H, H), new(H, H), new(H, H) };
    private readonly LayerNorm[] attentionNorm = { new(H), new(H), new(H), new(H), new(H), new(H) };
    private readonly Linear[] intermediate = { new(H, I), new(H, I), new(H, I), new(H, I), new(H, I), new(H, I) };
    private readonly Linear[] output = { new(I, H), new(I, H), new(I, H), new(I, H), new(I, H), new(I, H) };
    private readonly LayerNorm[] outputNorm = { new(H), new(H), new(H), new(H), new(H), new(H) };

    /// <summary>The ONNX names mapped to this model's flat ones: <c>encoder.layer.3.attention.self.query.weight</c> is <c>query[3].weight</c>.</summary>
    public static WeightImportOptions ImportOptions { get; } = new()
    {
        Map = name => FlatLayerRegex().Replace(MiniLmForward.MapName(name), "$2.$1.$3"),
        IgnoreExtras = ["pooler.*"],
    };

    /// <inheritdoc/>
    public Tensor Encode(TokenBatch tokens) =>
        MiniLmForward.Encode(tokens, words, positions, tokenTypes, embeddingsNorm, Enumerable.Range(0, 6).Select(b => new EncoderLayer((hidden, batch) =>
            Bert.EncoderLayer(hidden, new(query[b], key[b], value[b], attentionOutput[b], attentionNorm[b], intermediate[b], output[b], outputNorm[b]), batch, Block.Heads))));

    /// <summary>Embeddings of a token batch packed by <see cref="TokenBatch.ToTensor"/> (what the sensitivity measurement runs).</summary>
    public Tensor Forward(Tensor packedTokens) => Encode(TokenBatch.FromTensor(packedTokens));

    [System.Text.RegularExpressions.GeneratedRegex(@"^layers\.(\d+)\.(\w+)\.(weight|bias)$")]
    private static partial System.Text.RegularExpressions.Regex FlatLayerRegex();

    private sealed class EncoderLayer(Func<Tensor, SequenceBatch, Tensor> forward) : IEncoderLayer
    {
        public Tensor Forward(Tensor hidden, SequenceBatch batch) => forward(hidden, batch);
    }
}


/// <summary>
/// GPTQ calibration data for every plan's Compress: sentences tokenized in batches (sorted by length). The encoder
/// packs each batch's real tokens (<see cref="SequenceBatch.Pack"/>), so no padding row reaches a Linear layer and
/// the statistics equal those of the sentences one per batch, at a fraction of the forward passes. (A model that
/// does run padded rows through its layers leaves them out with <see cref="CalibrationData.RowMask"/>.)
/// </summary>
public static class MiniLmCalibration
{
    /// <summary>Calibration batches of <paramref name="batchSize"/> sentences (1: one sentence per batch).</summary>
    public static CalibrationData Batched(MiniLmTokenizer tokenizer, IReadOnlyList<string> sentences, int batchSize = 32)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var order = Enumerable.Range(0, sentences.Count).OrderBy(i => tokenizer.Encode(sentences[i]).Length).ThenBy(i => i);
        var batches = order.Chunk(batchSize).Select(c => tokenizer.EncodeBatch(c.Select(i => sentences[i]).ToArray()).ToTensor()).ToArray();
        return new CalibrationData(batches);
    }
}

/// <summary>The forward pass shared by the plans, and the import map from the ONNX file's names.</summary>
public static class MiniLmForward
{
    /// <summary>embeddings -> encoder layers -> mean pooling over the mask -> L2 normalization: [Count, Hidden].</summary>
    public static Tensor Encode(TokenBatch tokens, Embedding words, Embedding positions, Embedding tokenTypes, LayerNorm norm, IEnumerable<IEncoderLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        ArgumentNullException.ThrowIfNull(layers);
        // Packed: the encoder runs on the real tokens only (no padding rows); each sentence gets the bits it gets alone.
        var padded = new SequenceBatch(tokens.Count, tokens.Length, tokens.Mask);
        var batch = padded.Pack();
        using var noGrad = Tensor.NoGrad();
        var hidden = Bert.Embed(words, positions, tokenTypes, norm, padded.PackRows(tokens.Ids), null, batch);
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
