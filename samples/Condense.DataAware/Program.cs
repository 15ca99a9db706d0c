// Data-aware compression against its data-free counterpart, on an MLP and a CNN: GPTQ against round-to-nearest at
// int3 and int4 (grouped and per-row), and activation-aware SVD (SVD-LLM whitening) against plain SVD at equal rank.
// Each model is trained once; every plan then loads the same dense weights and compresses them with the same
// calibration rows. Reported per plan: each layer's output error on held-out inputs, ||X (W - W')^T|| / ||X W^T||
// (X: the dense model's inputs to that layer on test images), and test accuracy.
//
//   dotnet run -c Release --project samples/Condense.DataAware [-- --dataset auto|digits|fashion] [--seed S]
//       [--calibration ROWS] [--act-order] [--damping FRACTION] [--full-test]
//
// Fashion-MNIST is used when Debian's dataset-fashion-mnist is installed, else the bundled digits (8x8, centred
// on a 28x28 canvas so both data sets share the models).
using System.Diagnostics;
using System.Globalization;
using Condense;
using Condense.Calibration;
using Condense.Compression;
using Condense.Data;
using Condense.DataAware;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using Condense.Training;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
string dataset = "auto";
ulong seed = 7;
int calibrationRows = 1024;
bool fullTest = false;
var gptq = new GptqOptions();
for (int i = 0; i < args.Length; i++)
{
    string? Next() => i + 1 < args.Length ? args[++i] : null;
    switch (args[i])
    {
        case "--dataset" when Next() is { } d && d is "auto" or "digits" or "fashion": dataset = d; break;
        case "--seed" when ulong.TryParse(Next(), out var s): seed = s; break;
        case "--calibration" when int.TryParse(Next(), out var rows) && rows > 0: calibrationRows = rows; break;
        case "--act-order": gptq = gptq with { ActOrder = true }; break;
        case "--full-test": fullTest = true; break;
        case "--damping" when double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var damp) && damp >= 0: gptq = gptq with { DampingPercent = damp }; break;
        default:
            Console.Error.WriteLine($"unknown or incomplete option '{args[i]}'");
            Console.Error.WriteLine("usage: Condense.DataAware [--dataset auto|digits|fashion] [--seed S] [--calibration ROWS] [--act-order] [--damping FRACTION] [--full-test]");
            return 2;
    }
}
bool fashion = dataset == "fashion" || (dataset == "auto" && Datasets.FashionMnistAvailable());
if (dataset == "auto" && !fashion)
    Console.WriteLine("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): using the bundled digits.");

try
{
    Dataset train, test;
    TrainingOptions mlpTraining, cnnTraining;
    if (fashion)
    {
        // 20,000 training and the first 5,000 test images keep the run near two minutes of CPU on two cores
        // (the CNN's 20 evaluations dominate); --full-test evaluates on all 10,000.
        train = Datasets.FashionMnist(train: true).Shuffled(seed).Subset(0, 20000);
        test = Datasets.FashionMnist(train: false);
        if (!fullTest) test = test.Subset(0, 5000);
        mlpTraining = new TrainingOptions { Epochs = 3, BatchSize = 128, Seed = seed };
        cnnTraining = new TrainingOptions { Epochs = 1, BatchSize = 64, LearningRate = 2e-3f, Seed = seed };
    }
    else
    {
        (train, test) = Canvas28(Datasets.Digits(Datasets.DigitsDefaultPath)).Shuffled(2024).Split(1400);
        mlpTraining = new TrainingOptions { Epochs = 30, BatchSize = 32, LearningRate = 2e-3f, Seed = seed };
        cnnTraining = new TrainingOptions { Epochs = 20, BatchSize = 32, LearningRate = 2e-3f, Seed = seed };
    }
    var setup = new Setup(train, test, Math.Min(calibrationRows, train.Count), gptq, seed);
    Console.WriteLine($"{train.Name}: {train.Count:N0} training and {test.Count:N0} test images; {setup.CalibrationRows:N0} calibration rows " +
                      $"(the first training images); GPTQ damping {gptq.DampingPercent}, act-order {(gptq.ActOrder ? "on" : "off")}.");
    var clock = Stopwatch.StartNew();

    int failures = 0;
    var mlp = setup.Train<MlpRtnInt4G64>("mlp", mlpTraining);
    Console.WriteLine($"MLP trained: {mlp.Accuracy:P2} dense ({clock.Elapsed.TotalSeconds:F0} s)");
    failures += setup.Quantization(mlp, "MLP 784-256-128-10",
    [
        ("int3 g64", setup.Evaluate<MlpRtnInt3G64>, setup.Evaluate<MlpGptqInt3G64>),
        ("int3 per-row", setup.Evaluate<MlpRtnInt3Row>, setup.Evaluate<MlpGptqInt3Row>),
        ("int4 g64", setup.Evaluate<MlpRtnInt4G64>, setup.Evaluate<MlpGptqInt4G64>),
        ("int4 per-row", setup.Evaluate<MlpRtnInt4Row>, setup.Evaluate<MlpGptqInt4Row>),
    ]);
    failures += setup.LowRank(mlp, "MLP, hidden1 r24 and hidden2 r16", setup.Evaluate<MlpSvd>, setup.Evaluate<MlpAsvd>);
    File.Delete(mlp.Path);
    Console.WriteLine($"({clock.Elapsed.TotalSeconds:F0} s)");

    var cnn = setup.Train<CnnRtnInt4G64>("cnn", cnnTraining);
    Console.WriteLine($"CNN trained: {cnn.Accuracy:P2} dense ({clock.Elapsed.TotalSeconds:F0} s)");
    failures += setup.Quantization(cnn, "CNN conv(1-16) conv(16-16) 784-128-10",
    [
        ("int3 grouped", setup.Evaluate<CnnRtnInt3G64>, setup.Evaluate<CnnGptqInt3G64>),
        ("int3 per-row", setup.Evaluate<CnnRtnInt3Row>, setup.Evaluate<CnnGptqInt3Row>),
        ("int4 grouped", setup.Evaluate<CnnRtnInt4G64>, setup.Evaluate<CnnGptqInt4G64>),
        ("int4 per-row", setup.Evaluate<CnnRtnInt4Row>, setup.Evaluate<CnnGptqInt4Row>),
    ]);
    failures += setup.LowRank(cnn, "CNN, conv2 r8 and fc1 r16", setup.Evaluate<CnnSvd>, setup.Evaluate<CnnAsvd>);
    File.Delete(cnn.Path);
    Console.WriteLine($"total {clock.Elapsed.TotalSeconds:F0} s; {(failures == 0 ? "the data-aware method had the lower mean layer output error in every row" : $"{failures} row(s) where the data-aware method did not have the lower mean layer output error")}");
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

/// <summary>The 8x8 digits centred on a 28x28 canvas (zeros around), so the Fashion-MNIST models take them unchanged.</summary>
static Dataset Canvas28(Dataset digits)
{
    var features = new float[digits.Count * 784];
    for (int n = 0; n < digits.Count; n++)
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 8; c++)
                features[n * 784 + (r + 10) * 28 + c + 10] = digits.Features[n * 64 + r * 8 + c];
    return new Dataset(digits.Name + " on 28x28", features, digits.Labels, [1, 28, 28], digits.ClassCount);
}

/// <summary>A trained dense model: its file (every plan loads it), its layers' weights and held-out input statistics.</summary>
internal sealed record Trained(string Path, double Accuracy, int[] Predictions, IReadOnlyList<string> Layers, IReadOnlyList<float[]> Weights, IReadOnlyList<LayerStatistics> HeldOut);

/// <summary>One compressed plan: accuracy, bytes and each layer's held-out output error (NaN for a layer left dense).</summary>
/// <param name="Agreement">Share of test images on which the compressed model predicts what the dense one does: fidelity, less noisy than accuracy.</param>
internal sealed record Result(double Accuracy, double Agreement, long Bytes, double[] LayerErrors)
{
    /// <summary>Mean over the compressed layers.</summary>
    public double MeanError => LayerErrors.Where(double.IsFinite).DefaultIfEmpty(0).Average();
}

internal sealed class Setup(Dataset train, Dataset test, int calibrationRows, GptqOptions gptq, ulong seed)
{
    public int CalibrationRows => calibrationRows;

    private static List<Tensor> Batches(Dataset data, int rows, int batch) =>
        [.. Enumerable.Range(0, (rows + batch - 1) / batch).Select(b =>
        {
            int start = b * batch, count = Math.Min(batch, rows - start);
            return new Tensor(data.Features.AsSpan(start * data.FeatureCount, count * data.FeatureCount).ToArray(), count, data.FeatureCount);
        })];

    private readonly CalibrationData calibration = new(Batches(train, calibrationRows, 256));

    public Trained Train<T>(string name, TrainingOptions options) where T : Module, IClassifier, ICompressibleModel<T>, new()
    {
        var model = new T();
        model.Initialize(seed);
        Classifier.Train(model, model.Forward, train, options);
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"condense-dataaware-{name}-{Environment.ProcessId}.safetensors");
        model.Save(path);
        var layers = model.Layers;
        var indices = Enumerable.Range(0, layers.Count).ToArray();
        // Held-out statistics: X^T X of every layer's input over (up to) 2,000 test images, through the dense model.
        var heldOut = CalibrationRecorder.Record(layers, indices, model.Forward, new CalibrationData(Batches(test, Math.Min(2000, test.Count), 250)));
        var predictions = Classifier.Predict(model.Forward, test);
        return new Trained(path, Classifier.Accuracy(predictions, test.Labels), predictions, [.. layers.Select(l => l.Path)],
            [.. layers.Select(l => ((WeightedLayer)l.Layer).Weight.Data.ToArray())], heldOut);
    }

    public Result Evaluate<T>(Trained dense) where T : Module, IClassifier, ICompressibleModel<T>
    {
        var model = T.Load(dense.Path);
        var report = model.Compress(new CompressionOptions { Calibration = calibration, Gptq = gptq });
        var errors = new double[dense.Layers.Count];
        for (int i = 0; i < errors.Length; i++)
        {
            var layer = (WeightedLayer)model.Layers[i].Layer;
            if (layer.CompressedWeight is not { } storage) { errors[i] = double.NaN; continue; }
            var restored = new float[dense.Weights[i].Length];
            storage.Dequantize(restored);
            errors[i] = OutputError(dense.Weights[i], restored, dense.HeldOut[i], layer.OutFeatures);
        }
        var predictions = Classifier.Predict(model.Forward, test);
        double agreement = predictions.Zip(dense.Predictions).Count(p => p.First == p.Second) / (double)predictions.Length;
        return new Result(Classifier.Accuracy(predictions, test.Labels), agreement, report.TotalBytesAfter, errors);
    }

    /// <summary>||X (W - W')^T|| / ||X W^T|| from H = X^T X: sum over rows of d^T H d against w^T H w.</summary>
    private static double OutputError(float[] weight, float[] restored, LayerStatistics statistics, int outFeatures)
    {
        int n = statistics.InFeatures;
        var delta = new float[weight.Length];
        for (int i = 0; i < delta.Length; i++) delta[i] = weight[i] - restored[i];
        var deltaH = new float[weight.Length];
        var weightH = new float[weight.Length];
        Gemm.MatMul(delta, statistics.XtX, deltaH, outFeatures, n, n);
        Gemm.MatMul(weight, statistics.XtX, weightH, outFeatures, n, n);
        double error = 0, norm = 0;
        for (int i = 0; i < weight.Length; i++)
        {
            error += (double)delta[i] * deltaH[i];
            norm += (double)weight[i] * weightH[i];
        }
        return Math.Sqrt(Math.Max(0, error) / norm);
    }

    /// <summary>Prints RTN against GPTQ per scheme; returns the rows where GPTQ's mean layer error is not lower.</summary>
    public int Quantization(Trained dense, string title, (string Scheme, Func<Trained, Result> Rtn, Func<Trained, Result> Gptq)[] rows)
    {
        Console.WriteLine();
        Console.WriteLine($"### {title}: GPTQ against round-to-nearest (held-out layer output error; accuracy, dense {dense.Accuracy:P2})");
        Console.WriteLine();
        Console.WriteLine($"| scheme | method | {string.Join(" | ", dense.Layers)} | mean | accuracy | agrees with dense | bytes |");
        Console.WriteLine($"|---|---|{string.Concat(dense.Layers.Select(_ => "---:|"))}---:|---:|---:|---:|");
        int worse = 0;
        foreach (var (scheme, rtn, gptqPlan) in rows)
        {
            var a = rtn(dense);
            var b = gptqPlan(dense);
            Print(scheme, "RTN", a);
            Print(scheme, "GPTQ", b);
            if (!(b.MeanError < a.MeanError)) worse++;
        }
        return worse;
    }

    /// <summary>Prints plain SVD against activation-aware SVD at equal rank; returns 1 when ASVD's mean layer error is not lower.</summary>
    public int LowRank(Trained dense, string title, Func<Trained, Result> svd, Func<Trained, Result> asvd)
    {
        Console.WriteLine();
        Console.WriteLine($"### {title}: activation-aware SVD against SVD at equal rank (dense {dense.Accuracy:P2})");
        Console.WriteLine();
        Console.WriteLine($"| ranks | method | {string.Join(" | ", dense.Layers)} | mean | accuracy | agrees with dense | bytes |");
        Console.WriteLine($"|---|---|{string.Concat(dense.Layers.Select(_ => "---:|"))}---:|---:|---:|---:|");
        var a = svd(dense);
        var b = asvd(dense);
        Print("same", "SVD", a);
        Print("same", "ASVD", b);
        return b.MeanError < a.MeanError ? 0 : 1;
    }

    private static void Print(string scheme, string method, Result r) =>
        Console.WriteLine($"| {scheme} | {method} | {string.Join(" | ", r.LayerErrors.Select(e => double.IsFinite(e) ? $"{e:P2}" : "dense"))} | {r.MeanError:P2} | {r.Accuracy:P2} | {r.Agreement:P2} | {r.Bytes:N0} |");
}
