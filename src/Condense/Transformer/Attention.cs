using Condense.Nn;

namespace Condense.Transformer;

/// <summary>Multi-head scaled dot-product self-attention (Vaswani et al.), composed of the transformer ops.</summary>
public static class Attention
{
    /// <summary>
    /// softmax(Q K^T / sqrt(D) + mask) V per head, heads concatenated: the context [B * T, C] before BERT's
    /// attention output dense. Q, K and V come from the three Linear layers, so a compressed (quantized or sparse)
    /// projection runs its own kernel unchanged.
    /// </summary>
    /// <param name="hidden">[B * T, C].</param>
    /// <param name="query">Linear(C, C).</param>
    /// <param name="key">Linear(C, C).</param>
    /// <param name="value">Linear(C, C).</param>
    /// <param name="batch">Batch shape and padding mask.</param>
    /// <param name="heads">Number of heads H; C must be a multiple of it.</param>
    /// <param name="causal">Whether position i attends only to positions &lt;= i (decoder style); BERT is bidirectional.</param>
    /// <param name="dropout">Dropout probability on the attention probabilities while training (needs <paramref name="dropoutRng"/>).</param>
    /// <param name="dropoutRng">The dropout stream while training; null at inference, which skips dropout.</param>
    public static Tensor SelfAttention(Tensor hidden, Linear query, Linear key, Linear value, SequenceBatch batch, int heads,
        bool causal = false, float dropout = 0f, Rng? dropoutRng = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(batch);
        if (hidden.Rank != 2 || hidden.Shape[0] != batch.Rows)
            throw new ArgumentException($"SelfAttention: hidden states must be [B * T, C] = [{batch.Rows}, C]; got {Tensor.FormatShape(hidden.Shape)}.", nameof(hidden));
        if (heads <= 0 || query.OutFeatures % heads != 0 || key.OutFeatures != query.OutFeatures || value.OutFeatures != query.OutFeatures)
            throw new ArgumentException($"SelfAttention: {heads} heads must divide the projections' width; query, key and value give {query.OutFeatures}, {key.OutFeatures} and {value.OutFeatures}.", nameof(heads));
        int headSize = query.OutFeatures / heads;
        long mark = TransformerProfiler.Start();
        var q = query.Forward(hidden);
        var k = key.Forward(hidden);
        var v = value.Forward(hidden);
        mark = TransformerProfiler.Stop(TransformerStage.QkvProjection, mark);
        Tensor context;
        if (!Tensor.IsGradEnabled && !(dropout > 0f && dropoutRng != null))
        {
            // Nothing is recorded (NoGrad): the fused kernel gives the same bits without the head-major copies,
            // the [B, H, T, T] tensors and the per-op dispatches.
            context = Ops.SelfAttentionInference(q, k, v, batch.BatchSize, heads, batch.AttentionMask, causal);
        }
        else
        {
            var qh = Ops.SplitHeads(q, batch.BatchSize, heads);
            var kh = Ops.SplitHeads(k, batch.BatchSize, heads);
            var vh = Ops.SplitHeads(v, batch.BatchSize, heads);
            var scores = Ops.BatchedMatMul(qh, kh, transposeB: true);
            var probabilities = Ops.AttentionSoftmax(scores, batch.AttentionMask, causal, 1f / MathF.Sqrt(headSize));
            if (dropout > 0f && dropoutRng != null) probabilities = Ops.Dropout(probabilities, dropout, dropoutRng);
            context = Ops.MergeHeads(Ops.BatchedMatMul(probabilities, vh));
        }
        TransformerProfiler.Stop(TransformerStage.Attention, mark);
        return context;
    }
}
