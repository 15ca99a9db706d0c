using System.Globalization;

namespace Condense.Transformer;

/// <summary>
/// The shape of a batch of token sequences whose hidden states are stored as rows [BatchSize * SequenceLength, C]
/// (sequence-major), with the padding mask attention uses; or, packed (<see cref="Pack"/>), the real tokens only.
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
        Rows = batchSize * sequenceLength;
    }

    private SequenceBatch(int[] starts, int[] lengths, int[] positions)
    {
        BatchSize = lengths.Length;
        SequenceLength = lengths.Max();
        _starts = starts;
        _lengths = lengths;
        _positions = positions;
        Rows = positions.Length;
    }

    // Packed batches only: where each sequence's rows start, how many there are, and each row's position.
    private readonly int[]? _starts, _lengths, _positions;

    /// <summary>
    /// The same sequences without their padding: the real tokens of every sequence back to back, rows
    /// [sum of lengths, C] instead of [BatchSize * SequenceLength, C]. Linear layers, LayerNorm and GELU then do no
    /// work on padding, and attention runs within each sequence over its own tokens: each sequence is computed as in a
    /// batch of itself alone, unpadded, whatever the batch around it (the same bits wherever the Linear kernels give
    /// a row the same bits at any row count, as the float32 ones do; the padded layout's softmax over the padded
    /// length rounds differently). A token keeps its position in the padded sequence.
    /// Select the rows of per-token inputs (token ids) with <see cref="PackRows"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">This batch is packed already.</exception>
    public SequenceBatch Pack()
    {
        if (IsPacked) throw new InvalidOperationException("SequenceBatch.Pack: the batch is packed already.");
        var starts = new int[BatchSize];
        var lengths = new int[BatchSize];
        var positions = new List<int>(Rows);
        for (int b = 0; b < BatchSize; b++)
        {
            starts[b] = positions.Count;
            for (int t = 0; t < SequenceLength; t++)
                if (AttentionMask is null || AttentionMask[b * SequenceLength + t] == 1) positions.Add(t);
            lengths[b] = positions.Count - starts[b];   // 0 for an all-padding sequence: no rows, a mean pool of zeros
        }
        return new SequenceBatch(starts, lengths, positions.ToArray());
    }

    /// <summary>
    /// The entries of a per-position array of this (padded) batch, [BatchSize * SequenceLength], at its real tokens,
    /// in the row order of <see cref="Pack"/>: e.g. the token ids of the packed batch.
    /// </summary>
    /// <exception cref="ArgumentException">The array does not have one entry per padded position.</exception>
    /// <exception cref="InvalidOperationException">This batch is packed already.</exception>
    public int[] PackRows(ReadOnlySpan<int> padded)
    {
        if (IsPacked) throw new InvalidOperationException("SequenceBatch.PackRows: the batch is packed already; its rows are the packed ones.");
        if (padded.Length != Rows)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"SequenceBatch.PackRows: {padded.Length} entries for {BatchSize} sequences of {SequenceLength} (expected {Rows})."), nameof(padded));
        if (AttentionMask is null) return padded.ToArray();
        var rows = new List<int>(Rows);
        for (int i = 0; i < padded.Length; i++)
            if (AttentionMask[i] == 1) rows.Add(padded[i]);
        return rows.ToArray();
    }

    /// <summary>Whether rows hold only real tokens, sequence after sequence (<see cref="Pack"/>), rather than [BatchSize * SequenceLength].</summary>
    public bool IsPacked => _positions is not null;

    /// <summary>The first row of sequence <paramref name="sequence"/>.</summary>
    public int SequenceStart(int sequence) => _starts is null ? sequence * SequenceLength : _starts[sequence];

    /// <summary>The rows of sequence <paramref name="sequence"/>: its tokens when packed, else <see cref="SequenceLength"/>.</summary>
    public int SequenceRows(int sequence) => _lengths is null ? SequenceLength : _lengths[sequence];

    /// <summary>The position (index in its padded sequence) of the token in row <paramref name="row"/>.</summary>
    public int Position(int row) => _positions is null ? row % SequenceLength : _positions[row];

    /// <summary>Sequences in the batch.</summary>
    public int BatchSize { get; }

    /// <summary>Positions per sequence (the longest sequence when packed).</summary>
    public int SequenceLength { get; }

    /// <summary>Rows of the hidden states: BatchSize * SequenceLength, or the tokens of all sequences when packed.</summary>
    public int Rows { get; }

    /// <summary>1 for a token, 0 for padding, per row; null when nothing is padded (and when packed: no row is padding).</summary>
    public int[]? AttentionMask { get; }
}
