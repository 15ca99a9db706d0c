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
            throw new ArgumentException($"SelfAttention: hidden states must be one row per token, [{batch.Rows}, C]; got {Tensor.FormatShape(hidden.Shape)}.", nameof(hidden));
        if (heads <= 0 || query.OutFeatures % heads != 0 || key.OutFeatures != query.OutFeatures || value.OutFeatures != query.OutFeatures)
            throw new ArgumentException($"SelfAttention: {heads} heads must divide the projections' width; query, key and value give {query.OutFeatures}, {key.OutFeatures} and {value.OutFeatures}.", nameof(heads));
        int headSize = query.OutFeatures / heads;
        long mark = TransformerProfiler.Start();
        if (!Tensor.IsGradEnabled && !(dropout > 0f && dropoutRng != null) &&
            InferenceLinear.ProjectQkv(hidden, query, key, value) is { } stacked)
        {
            // NoGrad, compressed alike: Q, K and V from one product [rows, 3C] (one activation quantization and one
            // dispatch instead of three), attention reading its thirds in place. The bits of the three Forward calls.
            mark = TransformerProfiler.Stop(TransformerStage.QkvProjection, mark);
            int width = query.OutFeatures;
            try
            {
                var fused = Ops.SelfAttentionInference(stacked, 0, stacked, width, stacked, 2 * width, 3 * width, width, batch, heads, causal);
                TransformerProfiler.Stop(TransformerStage.Attention, mark);
                return fused;
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(stacked);
            }
        }
        var q = query.Forward(hidden);
        var k = key.Forward(hidden);
        var v = value.Forward(hidden);
        mark = TransformerProfiler.Stop(TransformerStage.QkvProjection, mark);
        Tensor context;
        if (!Tensor.IsGradEnabled && !(dropout > 0f && dropoutRng != null))
        {
            // Nothing is recorded (NoGrad): the fused kernel gives the same bits without the head-major copies,
            // the [B, H, T, T] tensors and the per-op dispatches.
            context = Ops.SelfAttentionInference(q, k, v, batch, heads, causal);
        }
        else if (batch.IsPacked)
        {
            // Recorded, packed: each sequence's rows through the composed ops alone (no padding, no mask), so the
            // gradients flow through the same taped ops as in a batch of one.
            var contexts = new List<Tensor>();
            for (int b = 0; b < batch.BatchSize; b++)
            {
                if (batch.SequenceRows(b) == 0) continue;
                var rows = Enumerable.Range(batch.SequenceStart(b), batch.SequenceRows(b)).ToArray();
                contexts.Add(Composed(Ops.Embedding(q, rows), Ops.Embedding(k, rows), Ops.Embedding(v, rows), 1, heads, null, causal, headSize, dropout, dropoutRng));
            }
            context = contexts.Count > 0 ? Ops.ConcatRows(contexts) : Tensor.Zeros(0, query.OutFeatures);
        }
        else
        {
            context = Composed(q, k, v, batch.BatchSize, heads, batch.AttentionMask, causal, headSize, dropout, dropoutRng);
        }
        TransformerProfiler.Stop(TransformerStage.Attention, mark);
        return context;
    }

    /// <summary>
    /// Inference (NoGrad) with Q, K and V from one stacked compressed product (<see cref="InferenceLinear.ProjectQkv"/>):
    /// the context [rows, C] into an array from <see cref="System.Buffers.ArrayPool{T}.Shared"/> (its first rows x C
    /// values; the caller returns it), the bits of <see cref="SelfAttention"/>; null where that path does not apply.
    /// </summary>
    internal static float[]? PooledSelfAttention(Tensor hidden, Linear query, Linear key, Linear value, SequenceBatch batch, int heads, bool causal)
    {
        if (Tensor.IsGradEnabled || hidden.Rank != 2 || hidden.Shape[0] != batch.Rows || heads <= 0 || query.OutFeatures % heads != 0 ||
            key.OutFeatures != query.OutFeatures || value.OutFeatures != query.OutFeatures)
            return null;
        long mark = TransformerProfiler.Start();
        if (InferenceLinear.ProjectQkv(hidden, query, key, value) is not { } stacked) return null;
        mark = TransformerProfiler.Stop(TransformerStage.QkvProjection, mark);
        int width = query.OutFeatures, rows = batch.Rows;
        float[]? context = null;
        try
        {
            context = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, rows * width));
            context.AsSpan(0, rows * width).Clear();
            Ops.SelfAttentionInferenceInto(stacked, 0, stacked, width, stacked, 2 * width, 3 * width, width, batch, heads, causal, context);
            TransformerProfiler.Stop(TransformerStage.Attention, mark);
            var done = context;
            context = null;
            return done;
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(stacked);
            if (context != null) System.Buffers.ArrayPool<float>.Shared.Return(context);
        }
    }

    /// <summary>The recorded attention: split heads, Q K^T, masked softmax, dropout, P V, merge heads.</summary>
    private static Tensor Composed(Tensor q, Tensor k, Tensor v, int batchSize, int heads, int[]? mask, bool causal, int headSize,
        float dropout, Rng? dropoutRng)
    {
        {
            var qh = Ops.SplitHeads(q, batchSize, heads);
            var kh = Ops.SplitHeads(k, batchSize, heads);
            var vh = Ops.SplitHeads(v, batchSize, heads);
            var scores = Ops.BatchedMatMul(qh, kh, transposeB: true);
            var probabilities = Ops.AttentionSoftmax(scores, mask, causal, 1f / MathF.Sqrt(headSize));
            if (dropout > 0f && dropoutRng != null) probabilities = Ops.Dropout(probabilities, dropout, dropoutRng);
            return Ops.MergeHeads(Ops.BatchedMatMul(probabilities, vh));
        }
    }
}
