using System.Globalization;
using System.Numerics.Tensors;
using Condense.Calibration;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.MiniLM;

/// <summary>Mean over sentences of the fraction of each sentence's top-k neighbours (itself excluded) that two embeddings agree on.</summary>
public static class NeighbourOverlap
{
    /// <summary>
    /// |top-k(a, i) ∩ top-k(b, i)| / k averaged over i, neighbours by dot product (the embeddings are unit length), ties
    /// broken by the lower index.
    /// </summary>
    public static double TopK(float[][] a, float[][] b, int k)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Length != b.Length) throw new ArgumentException($"the two sets have {a.Length} and {b.Length} embeddings; expected the same sentences", nameof(b));
        if (a.Length <= k) throw new ArgumentException($"{a.Length} embeddings; top-{k} neighbours need more than {k}", nameof(a));
        double total = 0;
        var scores = new float[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            var na = Neighbours(a, i, k, scores);
            var nb = Neighbours(b, i, k, scores);
            total += na.Intersect(nb).Count() / (double)k;
        }
        return total / a.Length;
    }

    /// <summary>
    /// Median over sentences of the cosine gap between the k-th and (k+1)-th nearest neighbour: how far an embedding must
    /// move before its top-k list changes. Small gaps (a corpus of near-paraphrases) make top-k overlap fragile.
    /// </summary>
    public static double MedianGap(float[][] e, int k)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (e.Length <= k + 1) throw new ArgumentException($"{e.Length} embeddings; the gap after the top-{k} needs more than {k + 1}", nameof(e));
        var gaps = new double[e.Length];
        var scores = new float[e.Length - 1];
        for (int i = 0; i < e.Length; i++)
        {
            int n = 0;
            for (int j = 0; j < e.Length; j++) if (j != i) scores[n++] = TensorPrimitives.Dot(e[i], e[j]);
            Array.Sort(scores);
            gaps[i] = scores[^k] - scores[^(k + 1)];
        }
        Array.Sort(gaps);
        return gaps[gaps.Length / 2];
    }

    private static int[] Neighbours(float[][] e, int i, int k, float[] scores)
    {
        for (int j = 0; j < e.Length; j++) scores[j] = j == i ? float.NegativeInfinity : TensorPrimitives.Dot(e[i], e[j]);
        var best = new List<int>(k + 1);
        for (int j = 0; j < e.Length; j++)
        {
            if (j == i) continue;
            if (best.Count == k && scores[j] <= scores[best[^1]]) continue;
            int at = best.Count;
            while (at > 0 && scores[best[at - 1]] < scores[j]) at--;
            best.Insert(at, j);
            if (best.Count > k) best.RemoveAt(k);
        }
        return best.ToArray();
    }
}

/// <summary>
/// Where the int4 error comes from (<c>--analyze</c>): the fp32 model with the weights of one layer type (or one block)
/// replaced by their int4 g64 dequantized values, round-to-nearest or GPTQ, everything else float32 (weights and
/// activations), compared with the fp32 embeddings; then GPTQ's settings (damping, act-order, calibration size,
/// inputs recorded from the fp32 model or sequentially from the already quantized blocks).
/// </summary>
public static class ErrorAnalysis
{
    private static readonly string[] s_types = ["query", "key", "value", "attentionOutput", "intermediate", "output"];

    /// <summary>Prints the analysis tables.</summary>
    public static void Run(string onnx, string[] sentences, float[][] fp32, MiniLmTokenizer tokenizer, string[] calibrationSentences, int calibrationBatch, GptqOptions gptq, QuantizationRounding rounding)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(calibrationSentences);
        var calibration = MiniLmCalibration.Batched(tokenizer, calibrationSentences, calibrationBatch);
        var model = new MiniLm();
        model.LoadWeights(onnx, MiniLmForward.ImportOptions);
        var linears = model.Layers.Select((l, i) => (l.Path, Layer: l.Layer as WeightedLayer, Index: i)).Where(l => l.Layer is Linear).ToArray();
        var original = linears.ToDictionary(l => l.Path, l => l.Layer!.Weight.Data.ToArray(), StringComparer.Ordinal);
        var scheme = new QuantizationScheme(4, 64, true);
        var asym = new QuantizationScheme(4, 64, false);

        float[] Rtn(string path, QuantizationScheme s)
        {
            var l = linears.Single(x => x.Path == path).Layer!;
            var q = GroupQuantizedWeight.Quantize(original[path], l.OutFeatures, l.InFeatures, s, rounding);
            var w = new float[original[path].Length];
            q.Dequantize(w);
            return w;
        }
        var statistics = Record(model, linears.Select(l => l.Index).ToArray(), calibration);
        float[] Gptq(string path, LayerStatistics stats, GptqOptions options)
        {
            var l = linears.Single(x => x.Path == path).Layer!;
            var q = Condense.Quantization.Gptq.Quantize(original[path], l.OutFeatures, l.InFeatures, scheme, stats, options);
            var w = new float[original[path].Length];
            q.Dequantize(w);
            return w;
        }

        var rtn = linears.ToDictionary(l => l.Path, l => Rtn(l.Path, scheme), StringComparer.Ordinal);
        var rtnAsym = linears.ToDictionary(l => l.Path, l => Rtn(l.Path, asym), StringComparer.Ordinal);
        var gptqW = linears.ToDictionary(l => l.Path, l => Gptq(l.Path, statistics[l.Path], gptq), StringComparer.Ordinal);

        Console.WriteLine();
        Console.WriteLine($"error analysis: int4 g64 weights of some layers (dequantized into the fp32 model), all activations float32; {sentences.Length} sentences");
        Console.WriteLine($"{"layers quantized",-34} | {"RTN mean",9} | {"RTN min",9} | {"RTN top10",9} | {"GPTQ mean",9} | {"GPTQ min",9} | {"GPTQ top10",10} | rel. W err RTN/GPTQ | rel. output err RTN/GPTQ");
        var groups = s_types.Select(t => ($"every block's {t}", (Func<string, bool>)(p => p.EndsWith("." + t, StringComparison.Ordinal))))
            .Concat(Enumerable.Range(0, 6).Select(b => ($"block {b} (all six)", (Func<string, bool>)(p => p.StartsWith($"layers[{b}].", StringComparison.Ordinal)))))
            .Append(("all 36", (Func<string, bool>)(_ => true)));
        foreach (var (name, select) in groups)
        {
            var paths = linears.Select(l => l.Path).Where(select).ToArray();
            var a = Measure(model, linears, original, paths, rtn, sentences, fp32, tokenizer);
            var g = Measure(model, linears, original, paths, gptqW, sentences, fp32, tokenizer);
            double wr = paths.Average(p => RelativeError(original[p], rtn[p])), wg = paths.Average(p => RelativeError(original[p], gptqW[p]));
            double or = paths.Average(p => OutputError(original[p], rtn[p], statistics[p])), og = paths.Average(p => OutputError(original[p], gptqW[p], statistics[p]));
            Console.WriteLine($"{name,-34} | {a.Mean,9:F6} | {a.Min,9:F6} | {a.Overlap,9:F3} | {g.Mean,9:F6} | {g.Min,9:F6} | {g.Overlap,10:F3} | {wr:F4} / {wg:F4}     | {or:F4} / {og:F4}");
        }

        var all = linears.Select(l => l.Path).ToArray();
        Console.WriteLine();
        Console.WriteLine("all 36 layers at int4 g64, variants:");
        void Variant(string name, Dictionary<string, float[]> weights)
        {
            var m = Measure(model, linears, original, all, weights, sentences, fp32, tokenizer);
            double oe = all.Average(p => OutputError(original[p], weights[p], statistics[p]));
            Console.WriteLine($"  {name,-58} mean {m.Mean:F6}  min {m.Min:F6}  top-10 {m.Overlap:F3}  rel. output err {oe:F4}");
        }
        Variant($"RTN symmetric ({rounding})", rtn);
        Variant($"RTN asymmetric ({rounding})", rtnAsym);
        var other = rounding == QuantizationRounding.MseClip ? QuantizationRounding.MinMax : QuantizationRounding.MseClip;
        Variant($"RTN symmetric ({other})", linears.ToDictionary(l => l.Path, l =>
        {
            var q = GroupQuantizedWeight.Quantize(original[l.Path], l.Layer!.OutFeatures, l.Layer.InFeatures, scheme, other);
            var w = new float[original[l.Path].Length];
            q.Dequantize(w);
            return w;
        }, StringComparer.Ordinal));
        Variant($"GPTQ damping {gptq.DampingPercent}, act-order {gptq.ActOrder}", gptqW);
        foreach (var options in new[] { gptq with { DampingPercent = 0.1 }, gptq with { DampingPercent = 0.001 }, gptq with { ActOrder = !gptq.ActOrder } })
            Variant($"GPTQ damping {options.DampingPercent}, act-order {options.ActOrder}", linears.ToDictionary(l => l.Path, l => Gptq(l.Path, statistics[l.Path], options), StringComparer.Ordinal));
        int fewer = Math.Max(1, calibrationSentences.Length / 8);
        var small = Record(model, linears.Select(l => l.Index).ToArray(), MiniLmCalibration.Batched(tokenizer, calibrationSentences.Take(fewer).ToArray(), calibrationBatch));
        Variant($"GPTQ, {fewer} calibration sentences instead of {calibrationSentences.Length}", linears.ToDictionary(l => l.Path, l => Gptq(l.Path, small[l.Path], gptq), StringComparer.Ordinal));

        // Sequential GPTQ: block b's inputs recorded with blocks 0..b-1 already quantized (the model the later layers will see).
        var sequential = new Dictionary<string, float[]>(StringComparer.Ordinal);
        for (int b = 0; b < 6; b++)
        {
            var indices = linears.Where(l => l.Path.StartsWith($"layers[{b}].", StringComparison.Ordinal)).Select(l => l.Index).ToArray();
            var stats = Record(model, indices, calibration);
            foreach (var l in linears.Where(l => l.Path.StartsWith($"layers[{b}].", StringComparison.Ordinal)))
            {
                sequential[l.Path] = Gptq(l.Path, stats[l.Path], gptq);
                sequential[l.Path].CopyTo(l.Layer!.Weight.Data, 0);
            }
        }
        Restore(linears, original);
        Variant("GPTQ sequential (inputs from the quantized earlier blocks)", sequential);
    }

    private static Dictionary<string, LayerStatistics> Record(MiniLm model, int[] indices, CalibrationData data)
    {
        var recorded = CalibrationRecorder.Record(model.Layers, indices, model.Forward, data);
        return recorded.ToDictionary(s => s.Path, s => s, StringComparer.Ordinal);
    }

    private static (double Mean, double Min, double Overlap) Measure(MiniLm model, (string Path, WeightedLayer? Layer, int Index)[] linears,
        Dictionary<string, float[]> original, string[] paths, Dictionary<string, float[]> quantized, string[] sentences, float[][] fp32, MiniLmTokenizer tokenizer)
    {
        foreach (var l in linears) (paths.Contains(l.Path) ? quantized[l.Path] : original[l.Path]).CopyTo(l.Layer!.Weight.Data, 0);
        var order = Enumerable.Range(0, sentences.Length).OrderBy(i => tokenizer.Encode(sentences[i]).Length).ThenBy(i => i).ToArray();
        var result = new float[sentences.Length][];
        foreach (var chunk in order.Chunk(32))
        {
            var y = model.Encode(tokenizer.EncodeBatch(chunk.Select(i => sentences[i]).ToArray()));
            for (int b = 0; b < chunk.Length; b++) result[chunk[b]] = y.Data.AsSpan(b * 384, 384).ToArray();
        }
        Restore(linears, original);
        var cos = result.Select((e, i) => (double)TensorPrimitives.CosineSimilarity(e, fp32[i])).ToArray();
        return (cos.Average(), cos.Min(), NeighbourOverlap.TopK(result, fp32, 10));
    }

    private static void Restore((string Path, WeightedLayer? Layer, int Index)[] linears, Dictionary<string, float[]> original)
    {
        foreach (var l in linears) original[l.Path].CopyTo(l.Layer!.Weight.Data, 0);
    }

    private static double RelativeError(float[] w, float[] q)
    {
        double num = 0, den = 0;
        for (int i = 0; i < w.Length; i++) { double d = w[i] - q[i]; num += d * d; den += (double)w[i] * w[i]; }
        return Math.Sqrt(num / den);
    }

    // sqrt(tr(D X^T X D^T) / tr(W X^T X W^T)) with D = W - Q: the layer's relative output error over the calibration inputs.
    private static double OutputError(float[] w, float[] q, LayerStatistics stats)
    {
        int n = stats.InFeatures, rows = w.Length / n;
        var h = stats.XtX;
        double num = 0, den = 0;
        var d = new float[n];
        for (int r = 0; r < rows; r++)
        {
            var x = w.AsSpan(r * n, n);
            TensorPrimitives.Subtract(x, q.AsSpan(r * n, n), d);
            for (int i = 0; i < n; i++)
            {
                var hi = h.AsSpan(i * n, n);
                num += d[i] * (double)TensorPrimitives.Dot(hi, d);
                den += x[i] * (double)TensorPrimitives.Dot(hi, x);
            }
        }
        return Math.Sqrt(num / den);
    }
}
