using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using Condense.Tests.Core;
using Condense.Tests.Kernels;
using Condense.Tests.IO;
using Condense.Transformer;

namespace Condense.Tests.Transformer;

/// <summary>A 2-layer random BERT against a forward written independently here (plain loops, float64), and its life cycle.</summary>
public class BertTests
{
    private const int Batch = 2, Sequence = 5;
    private static readonly int[] Ids = [2, 7, 11, 29, 3, /* padded: */ 4, 9, 1, 0, 0];
    private static readonly int[] Types = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0];
    private static readonly int[] Mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];

    /// <summary>A model whose LayerNorms are not the identity, so the reference checks their weights and biases too.</summary>
    private static TinyBert RandomModel(ulong seed)
    {
        var model = new TinyBert();
        model.Initialize(seed);
        var rng = new Rng(seed ^ 0x5EED);
        foreach (var (path, value) in model.NamedParameters())
            if (path.Contains("Norm", StringComparison.Ordinal))
                for (int i = 0; i < value.Length; i++)
                    value.Data[i] = path.EndsWith(".weight", StringComparison.Ordinal) ? 1f + 0.3f * rng.NextGaussian() : 0.2f * rng.NextGaussian();
        return model;
    }

    private static Tensor Run(TinyBert model, int[]? ids = null, int[]? mask = null, int batch = Batch, int sequence = Sequence, int[]? types = null)
    {
        using (Tensor.NoGrad())
            return model.Forward(ids ?? Ids, types ?? Types, new SequenceBatch(batch, sequence, mask ?? Mask));
    }

    [Fact]
    public void Two_layer_bert_matches_an_independent_float64_forward_with_padding()
    {
        var model = RandomModel(21);
        var actual = Run(model);
        var expected = ReferenceBert(model.NamedParameters().ToDictionary(p => p.Path, p => p.Value), Ids, Types, Mask, Batch, Sequence);
        double worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual.Data[i]));
        Assert.True(worst < 2e-4, $"largest difference {worst}");
        // The reference is sensitive enough to catch a LayerNorm bias left out.
        var parameters = model.NamedParameters().ToDictionary(p => p.Path, p => p.Value);
        parameters["blocks[1].outputNorm.bias"].Data[3] += 0.01f;
        var moved = ReferenceBert(parameters, Ids, Types, Mask, Batch, Sequence);
        Assert.True(Math.Abs(moved[3] - actual.Data[3]) > 5e-3);
    }

    [Fact]
    public void Padding_leaves_the_real_tokens_of_a_sequence_unchanged()
    {
        var model = RandomModel(22);
        var padded = Run(model);
        // The second sequence alone, unpadded: its three tokens must come out the same.
        var alone = Run(model, ids: [4, 9, 1], mask: [1, 1, 1], batch: 1, sequence: 3, types: [0, 1, 1]);
        int c = TinyBert.Hidden;
        for (int t = 0; t < 3; t++)
            for (int j = 0; j < c; j++)
                Assert.Equal(alone.Data[t * c + j], padded.Data[(Sequence + t) * c + j], 1e-5);
        // What sits in the padded positions' ids does not matter either.
        var otherPadding = Run(model, ids: [2, 7, 11, 29, 3, 4, 9, 1, 17, 5]);
        for (int r = 0; r < Batch * Sequence; r++)
            if (Mask[r] == 1)
                for (int j = 0; j < c; j++) Assert.Equal(padded.Data[r * c + j], otherPadding.Data[r * c + j], 1e-5);
    }

    [Fact]
    public void A_sequence_longer_than_the_position_table_is_a_named_error()
    {
        var model = RandomModel(31);
        int[] ids = Enumerable.Range(1, TinyBert.MaxPositions + 1).ToArray();
        var ex = Assert.Throws<ArgumentException>(() => model.Forward(ids, null, new SequenceBatch(1, ids.Length)));
        Assert.Contains($"sequences of {ids.Length} tokens are longer than the {TinyBert.MaxPositions} position embeddings; truncate them", ex.Message);
        Assert.Contains("id 30 at position 0", Assert.Throws<ArgumentException>(() => model.Forward([30], null, new SequenceBatch(1, 1))).Message);
    }

    [Fact]
    public void Causal_attention_ignores_later_tokens_and_bidirectional_does_not()
    {
        var rng = new Rng(23);
        var q = new Linear(8, 8);
        var k = new Linear(8, 8);
        var v = new Linear(8, 8);
        var x = GradCheck.Random(rng, 4, 8);
        var changed = Tensor.FromArray(x.Data, 4, 8);
        for (int j = 0; j < 8; j++) changed.Data[3 * 8 + j] += 1f;
        var batch = new SequenceBatch(1, 4);
        using var _ = Tensor.NoGrad();
        var causal = Attention.SelfAttention(x, q, k, v, batch, heads: 2, causal: true);
        var causalChanged = Attention.SelfAttention(changed, q, k, v, batch, heads: 2, causal: true);
        Assert.Equal(causal.Data.AsSpan(0, 24).ToArray(), causalChanged.Data.AsSpan(0, 24).ToArray());
        Assert.NotEqual(causal.Data[24], causalChanged.Data[24]);
        var full = Attention.SelfAttention(x, q, k, v, batch, heads: 2);
        var fullChanged = Attention.SelfAttention(changed, q, k, v, batch, heads: 2);
        Assert.NotEqual(full.Data[0], fullChanged.Data[0]);
        // The first query sees only itself under the causal mask: its context is its own value row.
        var ownValue = v.Forward(x);
        for (int j = 0; j < 8; j++) Assert.Equal(ownValue.Data[j], causal.Data[j], 1e-6);
    }

    [Fact]
    public void Encoder_layer_gradients_match_finite_differences_with_a_mask()
    {
        var block = new TinyBertBlock();
        block.Initialize(24);
        var rng = new Rng(24);
        var parts = block.Parts();
        // Sharper attention than the default initialization gives: the query and key gradients then stand well above
        // the float32 noise of the finite differences.
        foreach (var w in new[] { parts.Query.Weight, parts.Key.Weight })
            for (int i = 0; i < w.Length; i++) w.Data[i] *= 4f;
        var x = GradCheck.Random(rng, 2 * 3, TinyBertBlock.Hidden);
        var r = GradCheck.Random(rng, 2 * 3, TinyBertBlock.Hidden);
        var batch = new SequenceBatch(2, 3, [1, 1, 1, 1, 1, 0]);
        Tensor Loss() => Ops.Sum(Ops.Mul(block.Forward(x, batch), r));
        // Element by element for the input and the LayerNorm parameters; the weight matrices, whose single entries move
        // the loss by less than float32 resolves, along random directions (a directional derivative sums them all).
        foreach (var t in new[] { x, parts.Value.Bias!, parts.AttentionNorm.Weight, parts.OutputNorm.Bias })
        {
            double error = GradCheck.MaxRelativeError(Loss, [t]);
            Assert.True(error < 3e-2, $"{Tensor.FormatShape(t.Shape)}: {error}");
        }
        foreach (var w in new[] { parts.Query.Weight, parts.Key.Weight, parts.Value.Weight, parts.AttentionOutput.Weight, parts.Intermediate.Weight, parts.Output.Weight })
        {
            double error = DirectionalError(Loss, w, new Rng(7));
            Assert.True(error < 1e-2, $"{Tensor.FormatShape(w.Shape)}: {error}");
            Assert.True(DirectionalError(Loss, w, new Rng(7), tamper: 1.05f) > 2e-2, "a 5% error in the gradient must be caught");
        }
        // The padded row's input influences nothing but its own output row.
        x.Grad = null;
        var loss = Ops.Sum(Ops.Mul(block.Forward(x, batch), Masked(r, 5)));
        loss.Backward();
        Assert.All(x.Grad!.Data.AsSpan(5 * TinyBertBlock.Hidden).ToArray(), g => Assert.Equal(0f, g));
    }

    /// <summary>
    /// |d/dh L(w + h v) - grad . v| / |grad . v| along random directions v, by central differences in float32; the
    /// worst over three directions. <paramref name="tamper"/> scales the analytic gradient (to show the check can fail).
    /// </summary>
    private static double DirectionalError(Func<Tensor> loss, Tensor w, Rng rng, float tamper = 1f)
    {
        w.RequiresGrad = true;
        w.Grad = null;
        loss().Backward();
        var gradient = w.Grad!.Data.Select(g => (double)g * tamper).ToArray();
        double worst = 0;
        for (int direction = 0; direction < 3; direction++)
        {
            var v = new float[w.Length];
            for (int i = 0; i < v.Length; i++) v[i] = rng.NextGaussian();
            double analytic = 0;
            for (int i = 0; i < v.Length; i++) analytic += gradient[i] * v[i];
            var saved = (float[])w.Data.Clone();
            const float H = 1e-2f;
            double plus, minus;
            using (Tensor.NoGrad())
            {
                for (int i = 0; i < v.Length; i++) w.Data[i] = saved[i] + H * v[i];
                plus = loss().Data[0];
                for (int i = 0; i < v.Length; i++) w.Data[i] = saved[i] - H * v[i];
                minus = loss().Data[0];
            }
            saved.CopyTo(w.Data, 0);
            double numeric = (plus - minus) / (2 * H);
            worst = Math.Max(worst, Math.Abs(numeric - analytic) / Math.Max(Math.Abs(analytic), 1e-3));
        }
        return worst;
    }

    private static Tensor Masked(Tensor r, int row)
    {
        var copy = Tensor.FromArray(r.Data, r.Shape);
        copy.Data.AsSpan(row * r.Shape[1], r.Shape[1]).Clear();
        return copy;
    }

    [Fact]
    public void Training_reaches_the_layer_norms_and_embeddings_and_same_seed_dropout_gives_the_same_bits()
    {
        var model = RandomModel(25);
        var names = model.NamedParameters().Select(p => p.Path).ToList();
        Assert.Contains("words.weight", names);
        Assert.Contains("embeddingsNorm.bias", names);
        Assert.Contains("blocks[1].attentionNorm.weight", names);
        Assert.Contains("blocks[0].query.weight", names);
        Assert.Equal(names.Count, names.Distinct().Count());

        var before = model.NamedParameters().ToDictionary(p => p.Path, p => (float[])p.Value.Data.Clone());
        var target = GradCheck.Random(new Rng(5), Batch * Sequence, TinyBert.Hidden);
        var optimizer = new Optim.Sgd(model.Parameters(), 0.05f);
        float first = 0, last = 0;
        for (int step = 0; step < 15; step++)
        {
            var y = model.Forward(Ids, Types, new SequenceBatch(Batch, Sequence, Mask), dropout: 0.1f, dropoutRng: new Rng(100 + (ulong)step));
            var diff = Ops.Add(y, Ops.Mul(target, -1f));
            var loss = Ops.Mean(Ops.Mul(diff, diff));
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
            if (step == 0) first = loss.Data[0];
            last = loss.Data[0];
        }
        Assert.True(last < first, $"loss {first} -> {last}");
        foreach (var name in new[] { "words.weight", "embeddingsNorm.weight", "blocks[0].attentionNorm.bias", "blocks[1].outputNorm.weight", "blocks[0].query.weight" })
            Assert.NotEqual(before[name], model.NamedParameters().Single(p => p.Path == name).Value.Data);

        // Dropout: the same seed gives the same bits, another seed other bits.
        var a = model.Forward(Ids, Types, new SequenceBatch(Batch, Sequence, Mask), 0.1f, new Rng(9));
        var b = model.Forward(Ids, Types, new SequenceBatch(Batch, Sequence, Mask), 0.1f, new Rng(9));
        var c = model.Forward(Ids, Types, new SequenceBatch(Batch, Sequence, Mask), 0.1f, new Rng(10));
        Assert.Equal(a.Data, b.Data);
        Assert.NotEqual(a.Data, c.Data);
    }

    [Fact]
    public void Forward_and_backward_give_the_same_bits_on_one_thread_and_on_all()
    {
        // Large enough that every op takes its parallel path at the default degree.
        var rng = new Rng(26);
        var x = GradCheck.Random(rng, 4 * 64, 128);
        var w = GradCheck.Random(rng, 128);
        var b = GradCheck.Random(rng, 128);
        var r = GradCheck.Random(rng, 4 * 64, 128);
        float[][] RunAll()
        {
            foreach (var t in new[] { x, w, b }) { t.RequiresGrad = true; t.Grad = null; }
            var batch = new SequenceBatch(4, 64, Enumerable.Range(0, 256).Select(i => i % 64 < 50 ? 1 : 0).ToArray());
            var normed = Ops.LayerNorm(x, w, b);
            var heads = Ops.SplitHeads(Ops.GeluErf(normed), 4, 4);
            var p = Ops.AttentionSoftmax(Ops.BatchedMatMul(heads, heads, transposeB: true), batch.AttentionMask, causal: false, 0.17f);
            var y = Ops.MergeHeads(Ops.BatchedMatMul(p, heads));
            Ops.Sum(Ops.Mul(Ops.Softmax(y), r)).Backward();
            return [y.Data, x.Grad!.Data, w.Grad!.Data, b.Grad!.Data];
        }
        int saved = Gemm.MaxDegreeOfParallelism;
        try
        {
            Gemm.MaxDegreeOfParallelism = 1;
            var one = RunAll();
            Gemm.MaxDegreeOfParallelism = Math.Max(2, Environment.ProcessorCount);
            var all = RunAll();
            for (int i = 0; i < one.Length; i++) Assert.Equal(one[i], all[i]);
        }
        finally
        {
            Gemm.MaxDegreeOfParallelism = saved;
        }
    }

    [Fact]
    public void Save_and_load_round_trip_the_layer_norms_and_embeddings_by_name()
    {
        using var dir = new TempDirectory();
        var model = RandomModel(27);
        var expected = Run(model);
        string path = Path.Combine(dir.Path, "bert.safetensors");
        model.Save(path);
        using (var file = Condense.IO.SafeTensorsFile.Open(path))
        {
            var names = file.Tensors.Select(t => t.Name).ToHashSet();
            Assert.Contains("words.weight", names);
            Assert.Contains("positions.weight", names);
            Assert.Contains("embeddingsNorm.weight", names);
            Assert.Contains("blocks[1].outputNorm.bias", names);
            Assert.Contains("blocks[0].query.weight", names);
            Assert.Equal(model.NamedParameters().Select(p => p.Path).ToHashSet(), names);
        }
        var loaded = TinyBert.Load(path);
        Assert.Equal(expected.Data, Run(loaded).Data);

        // Compressed: the LayerNorms and embeddings stay dense and load back; the Linear layers load their codes.
        model.Compress();
        var compressedOut = Run(model);
        model.Save(path);
        var reloaded = TinyBert.Load(path);
        Assert.Equal(compressedOut.Data, Run(reloaded).Data);
        Assert.All(reloaded.Layers, l => Assert.NotNull(((WeightedLayer)l.Layer).CompressedWeight));
    }

    [Fact]
    public void Load_names_a_missing_or_misshapen_layer_norm_tensor()
    {
        using var dir = new TempDirectory();
        var model = RandomModel(28);
        string path = Path.Combine(dir.Path, "bert.safetensors");
        model.Save(path);
        // Rewrite the file without one LayerNorm bias and with a wrong-sized one.
        var writer = new Condense.IO.SafeTensorsWriter();
        using (var file = Condense.IO.SafeTensorsFile.Open(path))
        {
            foreach (var (key, value) in file.Metadata)
                if (!key.StartsWith(Condense.IO.SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal)) writer.SetMetadata(key, value);
            foreach (var t in file.Tensors)
            {
                if (t.Name == "blocks[0].attentionNorm.bias") continue;
                var data = file.ReadF32(t.Name);
                if (t.Name == "embeddingsNorm.weight") writer.AddF32(t.Name, data.AsSpan(0, 8), 8);
                else writer.AddF32(t.Name, data, t.Shape);
            }
        }
        string broken = Path.Combine(dir.Path, "broken.safetensors");
        writer.WriteTo(broken);
        var ex = Assert.Throws<Condense.IO.ModelFileException>(() => TinyBert.Load(broken));
        Assert.Contains(ex.Problems, p => p.Contains("'blocks[0].attentionNorm.bias' is missing", StringComparison.Ordinal));
        Assert.Contains(ex.Problems, p => p.Contains("embeddingsNorm.weight", StringComparison.Ordinal));
        Assert.Equal(2, ex.Problems.Count);
    }

    [Fact]
    public void A_compressed_block_runs_its_quantized_kernels_and_matches_the_dequantized_dense_model()
    {
        var model = RandomModel(29);
        var dense = Run(model);
        model.Compress();
        Assert.All(model.Layers, l => Assert.IsType<GroupQuantizedWeight>(((WeightedLayer)l.Layer).CompressedWeight));

        // The same model with every compressed weight dequantized into a dense Linear.
        var reference = new TinyBert();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var source = (WeightedLayer)model.Layers[i].Layer;
            var target = (WeightedLayer)reference.Layers[i].Layer;
            var w = new float[source.OutFeatures * source.InFeatures];
            source.CompressedWeight!.Dequantize(w);
            target.LoadWeight(w);
            target.LoadBias(source.Bias!.Data);
        }
        var sourceParameters = model.ParameterLayers.SelectMany(l => l.Layer.Parameters).ToList();
        var targetParameters = reference.ParameterLayers.SelectMany(l => l.Layer.Parameters).ToList();
        for (int i = 0; i < sourceParameters.Count; i++) sourceParameters[i].Value.Data.CopyTo(targetParameters[i].Value.Data, 0);
        var dequantized = Run(reference);

        using var knobs = KernelKnobs.Save();
        // Float32 activations: the quantized kernel computes exactly the dequantized product, up to summation order.
        KernelOptions.QuantizedActivations = ActivationPrecision.Float32;
        var exact = Run(model);
        double worst = exact.Data.Zip(dequantized.Data, (p, q) => Math.Abs(p - q)).Max();
        Assert.True(worst < 1e-4, $"float32 activations differ by {worst}");
        // Compression changed the model: the comparison above is not against the original weights.
        Assert.True(exact.Data.Zip(dense.Data, (p, q) => Math.Abs(p - q)).Max() > 1e-3);

        // The default int8 activations add their own rounding; each token's vector stays aligned.
        KernelOptions.QuantizedActivations = ActivationPrecision.Int8;
        var fast = Run(model);
        int c = TinyBert.Hidden;
        for (int row = 0; row < Batch * Sequence; row++)
            Assert.True(Cosine(fast.Data.AsSpan(row * c, c), dequantized.Data.AsSpan(row * c, c)) > 0.999, $"row {row}");
    }

    [Fact]
    public void A_sparse_block_runs_its_sparse_kernels_and_matches_the_dense_model_of_its_kept_weights()
    {
        var block = new SparseBertBlock();
        block.Initialize(30);
        var x = GradCheck.Random(new Rng(30), Batch * Sequence, SparseBertBlock.Hidden);
        var batch = new SequenceBatch(Batch, Sequence, Mask);
        block.Compress();
        Assert.All(block.Layers, l => Assert.NotNull(((WeightedLayer)l.Layer).CompressedWeight));
        var reference = new SparseBertBlock();
        for (int i = 0; i < block.Layers.Count; i++)
        {
            var source = (WeightedLayer)block.Layers[i].Layer;
            var target = (WeightedLayer)reference.Layers[i].Layer;
            var w = new float[source.OutFeatures * source.InFeatures];
            source.CompressedWeight!.Dequantize(w);
            Assert.True(w.Count(v => v == 0f) >= w.Length / 2, $"{block.Layers[i].Path} keeps at most half its weights");
            target.LoadWeight(w);
            target.LoadBias(source.Bias!.Data);
        }
        using var knobs = KernelKnobs.Save();
        KernelOptions.QuantizedActivations = ActivationPrecision.Float32;
        using var _ = Tensor.NoGrad();
        var sparse = block.Forward(x, batch);
        var dense = reference.Forward(x, batch);
        double worst = sparse.Data.Zip(dense.Data, (p, q) => Math.Abs(p - q)).Max();
        Assert.True(worst < 1e-4, $"sparse kernels differ from the dense product of the kept weights by {worst}");
    }

    private static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++) { dot += a[i] * (double)b[i]; na += a[i] * (double)a[i]; nb += b[i] * (double)b[i]; }
        return dot / Math.Sqrt(na * nb);
    }

    // ---- The reference: BERT written out with plain loops in float64, from the parameters by name. ----

    private static double[] ReferenceBert(Dictionary<string, Tensor> p, int[] ids, int[] types, int[] mask, int batch, int seq)
    {
        int c = TinyBert.Hidden, rows = batch * seq;
        var x = new double[rows * c];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < c; j++)
                x[r * c + j] = p["words.weight"].Data[ids[r] * c + j] + p["positions.weight"].Data[r % seq * c + j] + p["tokenTypes.weight"].Data[types[r] * c + j];
        x = ReferenceLayerNorm(x, p["embeddingsNorm.weight"], p["embeddingsNorm.bias"], c);
        for (int l = 0; l < 2; l++)
        {
            string pre = $"blocks[{l}].";
            var q = ReferenceLinear(x, p, pre + "query", c);
            var k = ReferenceLinear(x, p, pre + "key", c);
            var v = ReferenceLinear(x, p, pre + "value", c);
            int heads = TinyBertBlock.Heads, d = c / heads;
            var context = new double[rows * c];
            for (int b = 0; b < batch; b++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < seq; i++)
                    {
                        var scores = new double[seq];
                        double max = double.NegativeInfinity;
                        for (int j = 0; j < seq; j++)
                        {
                            if (mask[b * seq + j] == 0) continue;
                            double s = 0;
                            for (int e = 0; e < d; e++) s += q[(b * seq + i) * c + h * d + e] * k[(b * seq + j) * c + h * d + e];
                            scores[j] = s / Math.Sqrt(d);
                            max = Math.Max(max, scores[j]);
                        }
                        double sum = 0;
                        for (int j = 0; j < seq; j++) sum += mask[b * seq + j] == 0 ? 0 : Math.Exp(scores[j] - max);
                        for (int j = 0; j < seq; j++)
                        {
                            if (mask[b * seq + j] == 0) continue;
                            double weight = Math.Exp(scores[j] - max) / sum;
                            for (int e = 0; e < d; e++) context[(b * seq + i) * c + h * d + e] += weight * v[(b * seq + j) * c + h * d + e];
                        }
                    }
            var attended = ReferenceLinear(context, p, pre + "attentionOutput", c);
            for (int i = 0; i < attended.Length; i++) attended[i] += x[i];
            var h1 = ReferenceLayerNorm(attended, p[pre + "attentionNorm.weight"], p[pre + "attentionNorm.bias"], c);
            var inner = ReferenceLinear(h1, p, pre + "intermediate", c);
            for (int i = 0; i < inner.Length; i++) inner[i] = TransformerOpTests.ReferenceGelu(inner[i]);
            var output = ReferenceLinear(inner, p, pre + "output", TinyBertBlock.Intermediate);
            for (int i = 0; i < output.Length; i++) output[i] += h1[i];
            x = ReferenceLayerNorm(output, p[pre + "outputNorm.weight"], p[pre + "outputNorm.bias"], c);
        }
        return x;
    }

    private static double[] ReferenceLinear(double[] x, Dictionary<string, Tensor> p, string name, int inFeatures)
    {
        var w = p[name + ".weight"];
        var bias = p[name + ".bias"];
        int outFeatures = w.Shape[0], rows = x.Length / inFeatures;
        var y = new double[rows * outFeatures];
        for (int r = 0; r < rows; r++)
            for (int o = 0; o < outFeatures; o++)
            {
                double s = bias.Data[o];
                for (int i = 0; i < inFeatures; i++) s += x[r * inFeatures + i] * w.Data[o * inFeatures + i];
                y[r * outFeatures + o] = s;
            }
        return y;
    }

    private static double[] ReferenceLayerNorm(double[] x, Tensor weight, Tensor bias, int c)
    {
        var y = new double[x.Length];
        for (int r = 0; r < x.Length / c; r++)
        {
            double mean = 0, variance = 0;
            for (int j = 0; j < c; j++) mean += x[r * c + j];
            mean /= c;
            for (int j = 0; j < c; j++) variance += (x[r * c + j] - mean) * (x[r * c + j] - mean);
            variance /= c;
            for (int j = 0; j < c; j++) y[r * c + j] = (x[r * c + j] - mean) / Math.Sqrt(variance + 1e-12) * weight.Data[j] + bias.Data[j];
        }
        return y;
    }
}
