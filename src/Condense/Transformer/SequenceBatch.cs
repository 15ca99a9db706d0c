using System.Globalization;

namespace Condense.Transformer;

/// <summary>
/// The shape of a batch of token sequences whose hidden states are stored as rows [BatchSize * SequenceLength, C]
/// (sequence-major), with the padding mask attention uses.
/// </summary>
public sealed class SequenceBatch
{
    /// <param name="batchSize">Sequences in the batch.</param>
    /// <param name="sequenceLength">Positions per sequence (padded to the longest).</param>
    /// <param name="attentionMask">
    /// [BatchSize * SequenceLength]: 1 for a real token, 0 for padding (a Hugging Face <c>attention_mask</c>), or null
    /// when no sequence is padded. Padded keys get attention probability exactly 0.
    /// </param>
    /// <exception cref="ArgumentException">A size is not positive, or the mask has another length or a value other than 0 and 1.</exception>
    public SequenceBatch(int batchSize, int sequenceLength, int[]? attentionMask = null)
    {
        if (batchSize <= 0 || sequenceLength <= 0)
            throw new ArgumentOutOfRangeException(nameof(batchSize), string.Create(CultureInfo.InvariantCulture,
                $"SequenceBatch: batch size {batchSize} and sequence length {sequenceLength} must both be positive."));
        if (attentionMask != null)
        {
            if (attentionMask.Length != (long)batchSize * sequenceLength)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                    $"SequenceBatch: the attention mask has {attentionMask.Length} entries; {batchSize} sequences of {sequenceLength} need {batchSize * sequenceLength}."), nameof(attentionMask));
            for (int i = 0; i < attentionMask.Length; i++)
                if (attentionMask[i] is not (0 or 1))
                    throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                        $"SequenceBatch: attention mask entry {i} (sequence {i / sequenceLength}, position {i % sequenceLength}) is {attentionMask[i]}; use 1 for a token and 0 for padding."), nameof(attentionMask));
            attentionMask = (int[])attentionMask.Clone();
        }
        BatchSize = batchSize;
        SequenceLength = sequenceLength;
        AttentionMask = attentionMask;
    }

    /// <summary>Sequences in the batch.</summary>
    public int BatchSize { get; }

    /// <summary>Positions per sequence.</summary>
    public int SequenceLength { get; }

    /// <summary>Rows of the hidden states: BatchSize * SequenceLength.</summary>
    public int Rows => BatchSize * SequenceLength;

    /// <summary>1 for a token, 0 for padding, per row; null when nothing is padded.</summary>
    public int[]? AttentionMask { get; }
}
