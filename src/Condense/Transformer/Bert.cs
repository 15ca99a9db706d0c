using System.Globalization;
using Condense.Nn;

namespace Condense.Transformer;

/// <summary>The layers of one BERT encoder layer (Hugging Face names in brackets).</summary>
/// <param name="Query">[attention.self.query] Linear(C, C).</param>
/// <param name="Key">[attention.self.key] Linear(C, C).</param>
/// <param name="Value">[attention.self.value] Linear(C, C).</param>
/// <param name="AttentionOutput">[attention.output.dense] Linear(C, C).</param>
/// <param name="AttentionNorm">[attention.output.LayerNorm] LayerNorm(C).</param>
/// <param name="Intermediate">[intermediate.dense] Linear(C, I).</param>
/// <param name="Output">[output.dense] Linear(I, C).</param>
/// <param name="OutputNorm">[output.LayerNorm] LayerNorm(C).</param>
public readonly record struct EncoderLayerParts(
    Linear Query, Linear Key, Linear Value, Linear AttentionOutput, LayerNorm AttentionNorm,
    Linear Intermediate, Linear Output, LayerNorm OutputNorm);

/// <summary>BERT's building blocks (Devlin et al.), post-layer-norm as in the original model and its descendants (MiniLM).</summary>
public static class Bert
{
    /// <summary>
    /// Token + position + token-type embeddings, then LayerNorm (and dropout while training): hidden states
    /// [B * T, C]. Positions count 0..T-1 in every sequence.
    /// </summary>
    /// <param name="tokenIds">[B * T] vocabulary ids (padding included), or one per row of a packed batch (<see cref="SequenceBatch.PackRows"/>).</param>
    /// <param name="tokenTypeIds">One segment id per row, or null for all 0 (a single-segment input).</param>
    /// <exception cref="ArgumentException">
    /// A sequence is longer than the position table (no truncation happens here: truncate before), or an id is out of range.
    /// </exception>
    public static Tensor Embed(Embedding word, Embedding position, Embedding? tokenType, LayerNorm norm, int[] tokenIds, int[]? tokenTypeIds,
        SequenceBatch batch, float dropout = 0f, Rng? dropoutRng = null)
    {
        ArgumentNullException.ThrowIfNull(word);
        ArgumentNullException.ThrowIfNull(position);
        ArgumentNullException.ThrowIfNull(norm);
        ArgumentNullException.ThrowIfNull(tokenIds);
        ArgumentNullException.ThrowIfNull(batch);
        if (tokenIds.Length != batch.Rows)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"Bert.Embed: {tokenIds.Length} token ids for {batch.BatchSize} {(batch.IsPacked ? "packed sequences" : $"sequences of {batch.SequenceLength}")} (expected {batch.Rows})."), nameof(tokenIds));
        if (batch.SequenceLength > position.Count)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"Bert.Embed: sequences of {batch.SequenceLength} tokens are longer than the {position.Count} position embeddings; truncate them to {position.Count} tokens."), nameof(batch));
        if (tokenTypeIds != null && tokenTypeIds.Length != batch.Rows)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"Bert.Embed: {tokenTypeIds.Length} token type ids for {batch.Rows} tokens."), nameof(tokenTypeIds));
        long mark = TransformerProfiler.Start();
        var positions = new int[batch.Rows];
        for (int i = 0; i < positions.Length; i++) positions[i] = batch.Position(i);
        var sum = Ops.Add(word.Forward(tokenIds), position.Forward(positions));
        if (tokenType != null) sum = Ops.Add(sum, tokenType.Forward(tokenTypeIds ?? new int[batch.Rows]));
        var hidden = norm.Forward(sum);
        if (dropout > 0f && dropoutRng != null) hidden = Ops.Dropout(hidden, dropout, dropoutRng);
        TransformerProfiler.Stop(TransformerStage.Embeddings, mark);
        return hidden;
    }

    /// <summary>
    /// One encoder layer: h = LayerNorm(x + Dense(SelfAttention(x))); out = LayerNorm(h + Output(GELU(Intermediate(h)))).
    /// GELU is the exact (erf) form BERT uses.
    /// </summary>
    /// <param name="hidden">[B * T, C].</param>
    /// <param name="parts">The layer's Linear and LayerNorm layers.</param>
    /// <param name="batch">Batch shape and padding mask.</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="causal">Causal attention instead of BERT's bidirectional one.</param>
    /// <param name="dropout">Dropout probability while training (attention probabilities and both residual branches).</param>
    /// <param name="dropoutRng">The dropout stream while training; null at inference, which skips dropout.</param>
    public static Tensor EncoderLayer(Tensor hidden, EncoderLayerParts parts, SequenceBatch batch, int heads,
        bool causal = false, float dropout = 0f, Rng? dropoutRng = null)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(batch);
        bool drop = dropout > 0f && dropoutRng != null;
        // Under NoGrad nothing is recorded, so the residual adds, LayerNorms and GELU may overwrite the fresh Linear
        // outputs in place (same arithmetic, same bits) instead of allocating a tensor per op.
        bool inference = !Tensor.IsGradEnabled && !drop;
        // Pooled buffers (session 12: the layer's fresh output arrays were never in cache; pooling the context and the
        // intermediate activations cut 14-16% of the processor time per MiniLM sentence, the hidden state 4.7% more):
        // with every Linear compressed, only the layer's output is a new array; the same kernels and operations, the
        // same bits as the recorded path.
        if (inference && PooledEncoderLayer(hidden, parts, batch, heads, causal) is { } pooled) return pooled;
        // Inference with a compressed layer: its product without the bias, which the next pass (residual +
        // LayerNorm, GELU) adds first, row by row as Ops.StorageLinear would: the same bits, one pass fewer.
        Tensor? attendedBias = null, intermediateBias = null, outputBias = null;
        Tensor attended;
        long mark;
        if (inference && parts.AttentionOutput.InputObserver == null &&
            parts.AttentionOutput.CompressedWeight != null && parts.AttentionOutput.InFeatures == parts.Query.OutFeatures &&
            Attention.PooledSelfAttention(hidden, parts.Query, parts.Key, parts.Value, batch, heads, causal) is { } pooledContext)
        {
            // The context in a pooled buffer too (no fresh zeroed [rows, C] array per layer): the same bits.
            mark = TransformerProfiler.Start();
            try
            {
                attended = InferenceLinear.ProductOfRowsWithoutBias(parts.AttentionOutput, pooledContext, hidden.Shape[0])!;
                attendedBias = parts.AttentionOutput.Bias;
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(pooledContext);
            }
        }
        else
        {
            var context = Attention.SelfAttention(hidden, parts.Query, parts.Key, parts.Value, batch, heads, causal, dropout, dropoutRng);
            mark = TransformerProfiler.Start();
            attended = Product(parts.AttentionOutput, context, ref attendedBias);
        }
        mark = TransformerProfiler.Stop(TransformerStage.AttentionOutput, mark);
        if (drop) attended = Ops.Dropout(attended, dropout, dropoutRng!);
        var h = inference
            ? Ops.ResidualLayerNormInPlace(attended, hidden, parts.AttentionNorm.Weight, parts.AttentionNorm.Bias, parts.AttentionNorm.Epsilon, attendedBias)
            : parts.AttentionNorm.Forward(Ops.Add(attended, hidden));
        mark = TransformerProfiler.Stop(TransformerStage.LayerNorm, mark);
        Tensor output;
        if (inference && parts.Output.InputObserver == null && parts.Output.CompressedWeight != null &&
            parts.Output.InFeatures == parts.Intermediate.OutFeatures && InferenceLinear.PooledProductWithoutBias(parts.Intermediate, h) is { } inner)
        {
            // Both compressed: the intermediate activations in a pooled buffer (no fresh [rows, I] array per layer),
            // the same products, bias adds and GELU as below.
            try
            {
                int rows = h.Shape[0];
                mark = TransformerProfiler.Stop(TransformerStage.Intermediate, mark);
                Ops.GeluErfRowsInPlace(inner, rows, parts.Intermediate.OutFeatures, parts.Intermediate.Bias?.Data);
                mark = TransformerProfiler.Stop(TransformerStage.Gelu, mark);
                output = InferenceLinear.ProductOfRowsWithoutBias(parts.Output, inner, rows)!;
                outputBias = parts.Output.Bias;
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(inner);
            }
        }
        else
        {
            var intermediate = Product(parts.Intermediate, h, ref intermediateBias);
            mark = TransformerProfiler.Stop(TransformerStage.Intermediate, mark);
            intermediate = inference ? Ops.GeluErfInPlace(intermediate, intermediateBias) : Ops.GeluErf(intermediate);
            mark = TransformerProfiler.Stop(TransformerStage.Gelu, mark);
            output = Product(parts.Output, intermediate, ref outputBias);
        }
        mark = TransformerProfiler.Stop(TransformerStage.Output, mark);
        if (drop) output = Ops.Dropout(output, dropout, dropoutRng!);
        var result = inference
            ? Ops.ResidualLayerNormInPlace(output, h, parts.OutputNorm.Weight, parts.OutputNorm.Bias, parts.OutputNorm.Epsilon, outputBias)
            : parts.OutputNorm.Forward(Ops.Add(output, h));
        TransformerProfiler.Stop(TransformerStage.LayerNorm, mark);
        return result;

        // layer.Forward(x), or under inference its compressed product with the bias left to the caller (bias set).
        Tensor Product(Linear layer, Tensor x, ref Tensor? bias)
        {
            if (inference && InferenceLinear.ProductWithoutBias(layer, x) is { } y)
            {
                bias = layer.Bias;
                return y;
            }
            return layer.Forward(x);
        }
    }

    /// <summary>
    /// The NoGrad layer with every Linear compressed (Q, K and V stacked): the context, the hidden state after the first
    /// LayerNorm and the intermediate activations all in <see cref="System.Buffers.ArrayPool{T}.Shared"/> buffers, only
    /// the layer's output a new tensor. The same products, bias adds, LayerNorms and GELU as the general path (the same
    /// bits); null (nothing done) where it does not apply, including every shape the general path rejects.
    /// </summary>
    private static Tensor? PooledEncoderLayer(Tensor hidden, EncoderLayerParts parts, SequenceBatch batch, int heads, bool causal)
    {
        Linear ao = parts.AttentionOutput, im = parts.Intermediate, op = parts.Output;
        if (ao.InputObserver != null || im.InputObserver != null || op.InputObserver != null) return null;
        if (ao.CompressedWeight is not { } aoW || im.CompressedWeight is not { } imW || op.CompressedWeight is not { } opW) return null;
        if (hidden.Rank != 2) return null;
        int rows = hidden.Shape[0], channels = hidden.Shape[1], inner = imW.OutFeatures;
        if (aoW.InFeatures != parts.Query.OutFeatures || aoW.OutFeatures != channels || imW.InFeatures != channels ||
            opW.InFeatures != inner || opW.OutFeatures != channels)
            return null;
        LayerNorm first = parts.AttentionNorm, second = parts.OutputNorm;
        if (first.Weight.Length != channels || first.Bias.Length != channels || second.Weight.Length != channels ||
            second.Bias.Length != channels || (ao.Bias != null && ao.Bias.Length != channels) ||
            (im.Bias != null && im.Bias.Length != inner) || (op.Bias != null && op.Bias.Length != channels))
            return null;
        if (Attention.PooledSelfAttention(hidden, parts.Query, parts.Key, parts.Value, batch, heads, causal) is not { } context) return null;
        var pool = System.Buffers.ArrayPool<float>.Shared;
        float[]? h = null, activations = null;
        try
        {
            long mark = TransformerProfiler.Start();
            h = pool.Rent(Math.Max(1, rows * channels));
            if (rows > 0) aoW.MatMulTransposed(context.AsSpan(0, rows * aoW.InFeatures), h.AsSpan(0, rows * channels), rows);
            mark = TransformerProfiler.Stop(TransformerStage.AttentionOutput, mark);
            Ops.ResidualLayerNormRowsInPlace(h, hidden.Data, rows, channels, first.Weight.Data, first.Bias.Data, first.Epsilon, ao.Bias?.Data);
            mark = TransformerProfiler.Stop(TransformerStage.LayerNorm, mark);
            activations = pool.Rent(Math.Max(1, rows * inner));
            if (rows > 0) imW.MatMulTransposed(h.AsSpan(0, rows * channels), activations.AsSpan(0, rows * inner), rows);
            mark = TransformerProfiler.Stop(TransformerStage.Intermediate, mark);
            Ops.GeluErfRowsInPlace(activations, rows, inner, im.Bias?.Data);
            mark = TransformerProfiler.Stop(TransformerStage.Gelu, mark);
            var output = new Tensor(GC.AllocateUninitializedArray<float>(rows * channels), rows, channels);   // overwritten
            if (rows > 0) opW.MatMulTransposed(activations.AsSpan(0, rows * inner), output.Data, rows);
            mark = TransformerProfiler.Stop(TransformerStage.Output, mark);
            Ops.ResidualLayerNormRowsInPlace(output.Data, h, rows, channels, second.Weight.Data, second.Bias.Data, second.Epsilon, op.Bias?.Data);
            TransformerProfiler.Stop(TransformerStage.LayerNorm, mark);
            return output;
        }
        finally
        {
            pool.Return(context);
            if (h != null) pool.Return(h);
            if (activations != null) pool.Return(activations);
        }
    }

    /// <summary>
    /// Mean of each sequence's hidden states over its real tokens (padding excluded): [B, C], the pooling of
    /// sentence-transformers models such as all-MiniLM-L6-v2. A sequence without tokens gets zeros.
    /// </summary>
    public static Tensor MeanPool(Tensor hidden, SequenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        ArgumentNullException.ThrowIfNull(batch);
        if (hidden.Rank != 2 || hidden.Shape[0] != batch.Rows)
            throw new ArgumentException($"Bert.MeanPool: hidden states must be one row per token, [{batch.Rows}, C]; got {Tensor.FormatShape(hidden.Shape)}.", nameof(hidden));
        long mark = TransformerProfiler.Start();
        int channels = hidden.Shape[1];
        var weights = new float[batch.Rows];
        var sequenceOf = new int[batch.Rows];
        for (int b = 0; b < batch.BatchSize; b++)
        {
            int start = batch.SequenceStart(b), rows = batch.SequenceRows(b), count = 0;
            for (int t = 0; t < rows; t++) count += batch.AttentionMask?[start + t] ?? 1;
            for (int t = 0; t < rows; t++)
            {
                // A packed batch has no padding rows: the same weights its real rows get padded, in the same row order.
                weights[start + t] = count == 0 ? 0f : (batch.AttentionMask?[start + t] ?? 1) / (float)count;
                sequenceOf[start + t] = b;
            }
        }
        var y = Tensor.Zeros(batch.BatchSize, channels);
        for (int r = 0; r < batch.Rows; r++)
            System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(hidden.Data.AsSpan(r * channels, channels), weights[r],
                y.Data.AsSpan(sequenceOf[r] * channels, channels), y.Data.AsSpan(sequenceOf[r] * channels, channels));
        TransformerProfiler.Stop(TransformerStage.Pooling, mark);
        return Tensor.Record(y, () =>
        {
            var g = hidden.GradSpan();
            var dy = y.Grad!.Data;
            for (int r = 0; r < batch.Rows; r++)
            {
                var row = g.Slice(r * channels, channels);
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(dy.AsSpan(sequenceOf[r] * channels, channels), weights[r], row, row);
            }
        }, hidden);
    }
}
