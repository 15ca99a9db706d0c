// Gradual pruning (Zhu and Gupta 2017) against one-shot magnitude pruning, both to 90% of the hidden layers' weights.
// The one-shot model trains dense, then Compress prunes it; the gradual model trains with its generated
// PruningSchedule (same initialization, same batches), then Compress stores exactly the masks it trained.
//
//   dotnet run -c Release --project samples/Condense.Pruning [-- --dataset auto|digits|fashion] [--seed S]
//
// Fashion-MNIST is used when Debian's dataset-fashion-mnist is installed, else the bundled digits.
using System.Diagnostics;
using System.Globalization;
using Condense.Compression;
using Condense.Data;
using Condense.Nn;
using Condense.Pruning;
using Condense.Sparsity;
using Condense.Training;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
string dataset = "auto";
ulong seed = 7;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--dataset" && i + 1 < args.Length && args[i + 1] is "auto" or "digits" or "fashion") dataset = args[++i];
    else if (args[i] == "--seed" && i + 1 < args.Length && ulong.TryParse(args[i + 1], out var s)) { seed = s; i++; }
    else
    {
        Console.Error.WriteLine($"unknown or incomplete option '{args[i]}'");
        Console.Error.WriteLine("usage: Condense.Pruning [--dataset auto|digits|fashion] [--seed S]");
        return 2;
    }
}
bool fashion = dataset == "fashion" || (dataset == "auto" && Datasets.FashionMnistAvailable());
if (dataset == "auto" && !fashion)
    Console.WriteLine("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): using the bundled digits.");

try
{
    if (fashion)
        return Comparison.Run<FashionOneShot, FashionGradual>(Datasets.FashionMnist(train: true), Datasets.FashionMnist(train: false),
            new TrainingOptions { Epochs = 4, BatchSize = 128, Seed = seed }, seed, m => m.CreatePruningSchedule());
    var (train, test) = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 2024).Split(1400);
    return Comparison.Run<DigitsOneShot, DigitsGradual>(train, test, new TrainingOptions { Epochs = 40, BatchSize = 32, LearningRate = 2e-3f, Seed = seed }, seed, m => m.CreatePruningSchedule());
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

internal static class Comparison
{
    public static int Run<TOneShot, TGradual>(Dataset train, Dataset test, TrainingOptions options, ulong seed, Func<TGradual, GradualPruningSchedule> createSchedule)
        where TOneShot : Module, IClassifier, ICompressibleModel<TOneShot>, new()
        where TGradual : Module, IClassifier, ICompressibleModel<TGradual>, new()
    {
        Console.WriteLine($"{train.Name}: {train.Count:N0} training and {test.Count:N0} test samples; {options.Epochs} epochs at batch {options.BatchSize}.");
        var clock = Stopwatch.StartNew();

        var oneShot = new TOneShot();
        oneShot.Initialize(seed);
        Classifier.Train(oneShot, oneShot.Forward, train, options);
        double dense = Accuracy(oneShot, test);
        var oneShotReport = oneShot.Compress();
        double oneShotAccuracy = Accuracy(oneShot, test);
        Console.WriteLine($"dense training and one-shot pruning done ({clock.Elapsed.TotalSeconds:F0} s)");

        var gradual = new TGradual();
        gradual.Initialize(seed);
        var schedule = createSchedule(gradual);
        Classifier.Train(gradual, gradual.Forward, train, options, schedule,
            (epoch, loss) => Console.WriteLine($"  gradual epoch {epoch + 1}: loss {loss:F4}, sparsity " +
                string.Join(", ", schedule.Layers.Select(l => $"{l.Target.Path} {l.Sparsity:P1}")) + $" (step {schedule.Step})"));
        double trained = Accuracy(gradual, test);
        var gradualReport = gradual.Compress();
        double gradualAccuracy = Accuracy(gradual, test);
        Console.WriteLine($"gradual training done ({clock.Elapsed.TotalSeconds:F0} s)");
        Console.WriteLine();

        Console.WriteLine($"accuracy dense (fp32)            {dense:P2}");
        Console.WriteLine($"accuracy one-shot pruned to 90%  {oneShotAccuracy:P2}   ({(oneShotAccuracy - dense) * 100:+0.00;-0.00} points)");
        Console.WriteLine($"accuracy gradual pruned to 90%   {gradualAccuracy:P2}   ({(gradualAccuracy - dense) * 100:+0.00;-0.00} points; {trained:P2} before Compress: the stored mask is the trained one)");
        Console.WriteLine($"size                             {oneShotReport.TotalBytesBefore:N0} -> {gradualReport.TotalBytesAfter:N0} bytes (one-shot: {oneShotReport.TotalBytesAfter:N0})");
        return gradualAccuracy == trained ? 0 : 1;
    }

    private static double Accuracy<T>(T model, Dataset test) where T : IClassifier =>
        Classifier.Accuracy(Classifier.Predict(model.Forward, test), test.Labels);
}
