// The main Condense sample: train an MLP, compress it as its attributes say, compare accuracy and size,
// save the compressed model, load it back and check that the reloaded model predicts the same.
//
//   dotnet run -c Release --project samples/Condense.Sample [-- --dataset digits|fashion] [--epochs N] [--seed S] [--out DIR]
//
// Fashion-MNIST is used when Debian's dataset-fashion-mnist is installed, else the bundled digits.
using System.Diagnostics;
using System.Globalization;
using Condense;
using Condense.Compression;
using Condense.Data;
using Condense.Nn;
using Condense.Sample;
using Condense.Training;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var options = SampleOptions.Parse(args);
if (options is null) return 2;

bool fashion = options.Dataset switch
{
    "fashion" => true,
    "digits" => false,
    _ => Datasets.FashionMnistAvailable(),
};
if (options.Dataset == "auto")
    Console.WriteLine(fashion
        ? "Fashion-MNIST found: training on it (pass --dataset digits for the bundled digits)."
        : "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): using the bundled digits.");

try
{
    if (fashion)
    {
        var train = Datasets.FashionMnist(train: true);
        var test = Datasets.FashionMnist(train: false);
        return Demo.Run<FashionMlp, FashionMlpInt8>(train, test, options with { Epochs = options.Epochs ?? 10, BatchSize = 128 });
    }
    else
    {
        var all = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 2024);
        var (train, test) = all.Split(1400);
        return Demo.Run<DigitsMlp, DigitsMlpInt8>(train, test, options with { Epochs = options.Epochs ?? 40, BatchSize = 32 });
    }
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

internal sealed record SampleOptions(string Dataset, int? Epochs, ulong Seed, string OutDir, int BatchSize = 128)
{
    public static SampleOptions? Parse(string[] args)
    {
        var o = new SampleOptions("auto", null, 7, "out");
        for (int i = 0; i < args.Length; i++)
        {
            string? Next() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--dataset" when Next() is { } d && d is "digits" or "fashion" or "auto": o = o with { Dataset = d }; break;
                case "--epochs" when int.TryParse(Next(), out var e) && e >= 0: o = o with { Epochs = e }; break;
                case "--seed" when ulong.TryParse(Next(), out var s): o = o with { Seed = s }; break;
                case "--out" when Next() is { } dir: o = o with { OutDir = dir }; break;
                default:
                    Console.Error.WriteLine($"unknown or incomplete option '{args[i]}'");
                    Console.Error.WriteLine("usage: Condense.Sample [--dataset auto|digits|fashion] [--epochs N] [--seed S] [--out DIR]");
                    return null;
            }
        }
        return o;
    }
}

internal static class Demo
{
    public static int Run<TModel, TInt8>(Dataset train, Dataset test, SampleOptions o)
        where TModel : Module, IClassifier, ICompressibleModel<TModel>, new()
        where TInt8 : Module, IClassifier, ICompressibleModel<TInt8>
    {
        Console.WriteLine($"{train.Name}: {train.Count:N0} training and {test.Count:N0} test samples of {train.FeatureCount} features.");
        Console.WriteLine();
        Console.WriteLine(TModel.Plan.ToMarkdown());

        var model = new TModel();
        model.Initialize(o.Seed);
        var clock = Stopwatch.StartNew();
        Classifier.Train(model, model.Forward, train, new TrainingOptions { Epochs = o.Epochs ?? 5, BatchSize = o.BatchSize, Seed = o.Seed },
            (epoch, loss) => Console.WriteLine($"  epoch {epoch + 1,2}: loss {loss:F4}  ({clock.Elapsed.TotalSeconds:F1} s)"));

        double denseAccuracy = Accuracy(model, test);
        Directory.CreateDirectory(o.OutDir);
        string densePath = Path.Combine(o.OutDir, typeof(TModel).Name + ".dense.safetensors");
        model.Save(densePath);

        // The same trained weights under the all-8-bit plan: a dense file loads into any plan of the same shapes.
        var int8 = TInt8.Load(densePath);
        int8.Compress();
        double int8Accuracy = Accuracy(int8, test);

        var report = model.Compress();
        double accuracy = Accuracy(model, test);
        // Speed: the float32 model (reloaded from its file) and the compressed one, timed in alternation.
        var (denseMs, compressedMs) = TimeAlternately(TModel.Load(densePath), model, test);
        Console.WriteLine();
        Console.WriteLine(report);

        string path = Path.Combine(o.OutDir, typeof(TModel).Name + ".safetensors");
        model.Save(path);
        var reloaded = TModel.Load(path);
        var before = Classifier.Predict(model.Forward, test);
        var after = Classifier.Predict(reloaded.Forward, test);
        int same = before.Zip(after).Count(p => p.First == p.Second);

        Console.WriteLine($"accuracy fp32        {denseAccuracy:P2}   ({denseMs:F2} ms per batch of 256)");
        Console.WriteLine($"accuracy all-int8    {int8Accuracy:P2}   ({(int8Accuracy - denseAccuracy) * 100:+0.00;-0.00} points)");
        Console.WriteLine($"accuracy as planned  {accuracy:P2}   ({(accuracy - denseAccuracy) * 100:+0.00;-0.00} points, {compressedMs:F2} ms per batch of 256: {denseMs / compressedMs:F2}x fp32)");
        Console.WriteLine($"size                 {report.TotalBytesBefore:N0} -> {report.TotalBytesAfter:N0} bytes ({report.CompressionRatio:F2}x smaller, {TModel.Plan.BitsPerWeight:F2} bits/weight)");
        Console.WriteLine($"planned at build     {TModel.Plan.TotalBytesAfter:N0} bytes: {(TModel.Plan.TotalBytesAfter == report.TotalBytesAfter ? "matches" : "DIFFERS FROM")} the compressed model");
        Console.WriteLine($"saved                {path} ({new FileInfo(path).Length:N0} bytes on disk)");
        Console.WriteLine($"reloaded             {same:N0} of {test.Count:N0} predictions identical");
        return same == test.Count && TModel.Plan.TotalBytesAfter == report.TotalBytesAfter ? 0 : 1;
    }

    private const int TimedBatch = 256;

    private static double Accuracy<T>(T model, Dataset test) where T : IClassifier =>
        Classifier.Accuracy(Classifier.Predict(model.Forward, test, TimedBatch), test.Labels);

    /// <summary>Median ms per batch of each model over 7 passes over the test set, the two alternating so both see the same machine load.</summary>
    private static (double First, double Second) TimeAlternately<T1, T2>(T1 first, T2 second, Dataset test) where T1 : IClassifier where T2 : IClassifier
    {
        double batches = Math.Ceiling(test.Count / (double)TimedBatch);
        Classifier.Predict(first.Forward, test, TimedBatch); // warm-up
        Classifier.Predict(second.Forward, test, TimedBatch);
        var a = new List<double>();
        var b = new List<double>();
        for (int run = 0; run < 7; run++)
        {
            var clock = Stopwatch.StartNew();
            Classifier.Predict(first.Forward, test, TimedBatch);
            a.Add(clock.Elapsed.TotalMilliseconds / batches);
            clock.Restart();
            Classifier.Predict(second.Forward, test, TimedBatch);
            b.Add(clock.Elapsed.TotalMilliseconds / batches);
        }
        a.Sort();
        b.Sort();
        return (a[3], b[3]);
    }
}
