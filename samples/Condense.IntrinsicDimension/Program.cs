// The intrinsic dimension (Li et al. 2018) of fully connected classifiers: train the network, then train it again
// in random d-dimensional subspaces, theta = theta0 + P d, over a log-spaced grid of d refined by bisection, and
// report the smallest d reaching 90% of the baseline's accuracy (d_int90), the compression ratio D / d_int90, the
// saved subspace file against the dense one, and an SVG figure of accuracy against d.
//
//   dotnet run -c Release --project samples/Condense.IntrinsicDimension [-- options]
//     --dataset auto|digits|fashion   auto: Fashion-MNIST when installed, else the bundled 8x8 digits
//     --projection dense|sparse|fastfood|all   (default fastfood)
//     --widths 100,200,400            hidden widths of the input-w-w-10 network (default 200)
//     --seeds 1,2                     training seeds; every point is the mean over them
//     --epochs N                      epochs of every run (default 3 on Fashion-MNIST, 25 on digits)
//     --train-size N                  Fashion-MNIST training samples, a seeded subset (default 10000; 0: all 60000)
//     --min-d N --max-d N --grid N    the log-spaced grid (default 50..3200 in 7 points on Fashion, 10..2000 on digits)
//     --out DIR                       where the SVG, the curves (CSV) and the saved models go (default out/intrinsic-dimension)
//     --replot CSV [--title T]        only redraw the SVG (into --out) from a curves.csv this sample wrote
using System.Diagnostics;
using System.Globalization;
using Condense;
using Condense.Compression;
using Condense.Data;
using Condense.IntrinsicDimensionSample;
using Condense.Nn;
using Condense.Subspace;
using Condense.Training;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
const string Usage = "usage: Condense.IntrinsicDimension [--dataset auto|digits|fashion] [--projection dense|sparse|fastfood|all] " +
    "[--widths 100,200,400] [--seeds 1,2] [--epochs N] [--train-size N] [--min-d N] [--max-d N] [--grid N] [--out DIR] | --replot CSV [--title T] [--out DIR]";
string dataset = "auto", projectionArg = "fastfood", outDir = Path.Combine("out", "intrinsic-dimension");
int[] widths = [200];
ulong[] seeds = [1, 2];
int? epochs = null, minD = null, maxD = null, grid = null;
int trainSize = 10000;
string? replot = null, replotTitle = null;
try
{
    for (int i = 0; i < args.Length; i++)
    {
        string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"option '{args[i]}' needs a value");
        static int Positive(string name, string s) => int.TryParse(s, out var v) && v >= 0 ? v : throw new ArgumentException($"{name} must be a non-negative integer, not '{s}'");
        switch (args[i])
        {
            case "intrinsic-dimension": break;   // the command name of issue 9, accepted and ignored
            case "--dataset": dataset = Next(); if (dataset is not ("auto" or "digits" or "fashion")) throw new ArgumentException($"--dataset must be auto, digits or fashion, not '{dataset}'"); break;
            case "--projection": projectionArg = Next(); if (projectionArg is not ("dense" or "sparse" or "fastfood" or "all")) throw new ArgumentException($"--projection must be dense, sparse, fastfood or all, not '{projectionArg}'"); break;
            case "--widths": widths = [.. Next().Split(',').Select(s => Positive("--widths", s))]; break;
            case "--seeds": seeds = [.. Next().Split(',').Select(s => ulong.TryParse(s, out var v) ? v : throw new ArgumentException($"--seeds: '{s}' is not a seed"))]; break;
            case "--epochs": epochs = Positive("--epochs", Next()); break;
            case "--train-size": trainSize = Positive("--train-size", Next()); break;
            case "--min-d": minD = Positive("--min-d", Next()); break;
            case "--max-d": maxD = Positive("--max-d", Next()); break;
            case "--grid": grid = Positive("--grid", Next()); break;
            case "--out": outDir = Next(); break;
            case "--replot": replot = Next(); break;
            case "--title": replotTitle = Next(); break;
            default: throw new ArgumentException($"unknown option '{args[i]}'");
        }
    }
    if (widths.Any(w => w is not (100 or 200 or 400))) throw new ArgumentException($"--widths: the sample has networks of width 100, 200 and 400, not {string.Join(",", widths)}");
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine(Usage);
    return 2;
}

if (replot != null)
{
    try
    {
        Directory.CreateDirectory(outDir);
        var svg = Path.Combine(outDir, "intrinsic-dimension.svg");
        File.WriteAllText(svg, IntrinsicDimensionPlot.ToSvg(replotTitle ?? Path.GetFileName(replot), CurvesCsv.Read(replot)));
        Console.WriteLine($"figure: {svg}");
        return 0;
    }
    catch (Exception e) when (e is IOException or InvalidDataException or FormatException)
    {
        Console.Error.WriteLine($"error: {e.Message}");
        return 1;
    }
}

bool fashion = dataset == "fashion" || (dataset == "auto" && Datasets.FashionMnistAvailable());
if (dataset == "auto" && !fashion)
    Console.WriteLine("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): using the bundled digits.");
SubspaceProjection[] projections = projectionArg switch
{
    "all" => [SubspaceProjection.Fastfood, SubspaceProjection.Sparse, SubspaceProjection.Dense],   // fastest first
    "dense" => [SubspaceProjection.Dense],
    "sparse" => [SubspaceProjection.Sparse],
    _ => [SubspaceProjection.Fastfood],
};

try
{
    Dataset train, test;
    TrainingOptions baseline, subspace;
    IntrinsicDimensionOptions sweep;
    if (fashion)
    {
        // A seeded subset keeps the whole sweep (dozens of training runs) within minutes on a small machine.
        var full = Datasets.FashionMnist(train: true);
        train = trainSize == 0 || trainSize >= full.Count ? full : full.Shuffled(seed: 2024).Subset(0, trainSize);
        test = Datasets.FashionMnist(train: false);
        baseline = new TrainingOptions { Epochs = epochs ?? 3, BatchSize = 128, LearningRate = 1e-3f };
        sweep = new IntrinsicDimensionOptions { Seeds = seeds, MinDimension = minD ?? 50, MaxDimension = maxD ?? 3200, GridPoints = grid ?? 7, RelativeTolerance = 0.1 };
    }
    else
    {
        (train, test) = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 2024).Split(1400);
        baseline = new TrainingOptions { Epochs = epochs ?? 25, BatchSize = 32, LearningRate = 2e-3f };
        sweep = new IntrinsicDimensionOptions { Seeds = seeds, MinDimension = minD ?? 10, MaxDimension = maxD ?? 2000, GridPoints = grid ?? 7, RelativeTolerance = 0.05 };
    }
    // Subspace runs: d coordinates of about unit-length columns move slowly at the baseline's rate, and weight decay
    // would pull theta toward theta0 + 0 rather than toward 0, so a larger rate and no decay (as in docs/subspace.md).
    subspace = baseline with { LearningRate = 1e-2f, WeightDecay = 0 };

    Directory.CreateDirectory(outDir);
    Console.WriteLine($"{train.Name}: {train.Count:N0} training and {test.Count:N0} test samples; {baseline.Epochs} epochs at batch {baseline.BatchSize}; " +
        $"seeds {string.Join(",", seeds)}; grid {sweep.MinDimension}..{sweep.MaxDimension} in {sweep.GridPoints} log steps, bisection to {sweep.RelativeTolerance:P0}.");
    var clock = Stopwatch.StartNew();
    var results = new List<SweepRow>();
    foreach (int width in widths)
        foreach (var projection in projections)
        {
            var row = (fashion, width) switch
            {
                (true, 100) => Sweep.Run<Fc784W100>(train, test, baseline, subspace, sweep, projection, outDir, clock),
                (true, 200) => Sweep.Run<Fc784W200>(train, test, baseline, subspace, sweep, projection, outDir, clock),
                (true, _) => Sweep.Run<Fc784W400>(train, test, baseline, subspace, sweep, projection, outDir, clock),
                (false, 100) => Sweep.Run<Fc64W100>(train, test, baseline, subspace, sweep, projection, outDir, clock),
                (false, 200) => Sweep.Run<Fc64W200>(train, test, baseline, subspace, sweep, projection, outDir, clock),
                (false, _) => Sweep.Run<Fc64W400>(train, test, baseline, subspace, sweep, projection, outDir, clock),
            };
            results.Add(row);
        }

    Console.WriteLine();
    Console.WriteLine("| network | projection | D | baseline | 90% target | d_int90 | D / d_int90 | subspace file | dense file | dense / subspace |");
    Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
    foreach (var r in results)
        Console.WriteLine($"| {r.Network} | {r.Projection} | {r.Result.FullDimension:N0} | {r.Result.Baseline:P2} | {r.Result.Target:P2} | " +
            $"{(r.Result.Dimension?.ToString("N0") ?? "not reached")} | {(r.Result.CompressionRatio is double c ? c.ToString("F0") + "x" : "-")} | " +
            $"{(r.SubspaceBytes is long s ? s.ToString("N0") + " B" : "-")} | {r.DenseBytes:N0} B | {(r.SubspaceBytes is long s2 ? ((double)r.DenseBytes / s2).ToString("F0") + "x" : "-")} |");

    string title = $"{train.Name}: {train.Count:N0} train samples, {baseline.Epochs} epochs, seeds {string.Join(",", seeds)}";
    var svgPath = Path.Combine(outDir, "intrinsic-dimension.svg");
    File.WriteAllText(svgPath, IntrinsicDimensionPlot.ToSvg(title, [.. results.Select(r => new PlotSeries($"{r.Network}, {r.Projection}", r.Result))]));
    var csvPath = Path.Combine(outDir, "curves.csv");
    File.WriteAllLines(csvPath, new[] { "network,projection,D,baseline,target,d_int90,d,mean," + string.Join(",", seeds.Select(s => $"seed{s}")) }
        .Concat(results.SelectMany(r => r.Result.Curve.Select(p =>
            $"{r.Network},{r.Projection},{r.Result.FullDimension},{r.Result.Baseline:F4},{r.Result.Target:F4},{r.Result.Dimension?.ToString() ?? ""},{p.Dimension},{p.Mean:F4},{string.Join(",", p.Scores.Select(s => s.ToString("F4")))}"))));
    Console.WriteLine($"\nfigure: {svgPath}\ncurves: {csvPath}\ntotal {clock.Elapsed.TotalMinutes:F1} min");
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException or SubspaceFileException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

/// <summary>One sweep's outcome with the file sizes.</summary>
internal sealed record SweepRow(string Network, string Projection, IntrinsicDimensionResult Result, long? SubspaceBytes, long DenseBytes);

internal static class Sweep
{
    public static SweepRow Run<TModel>(Dataset train, Dataset test, TrainingOptions baseline, TrainingOptions subspace,
        IntrinsicDimensionOptions sweep, SubspaceProjection projection, string outDir, Stopwatch clock)
        where TModel : Module, IClassifier, ICompressibleModel<TModel>, new()
    {
        string network = typeof(TModel).Name;
        string name = projection.ToString();
        int runs = 0;
        int perPoint = sweep.Seeds.Count;
        Console.WriteLine($"\n== {network}, {name} projection ==");
        Console.Write($"  baseline ({perPoint} runs) ");
        // createModel is called once to count D, then once per training run: a dot per run shows progress within a point.
        var result = IntrinsicDimension.MeasureClassifier(
            () => { if (runs++ > 0) Console.Write("."); return new TModel(); },
            m => m.Forward, train, test, baseline, projection, sweep, subspace,
            new LineProgress(p => Console.Write($" d = {p.Dimension,5}: {p.Mean:P2} ({clock.Elapsed.TotalSeconds:F0} s)\n  ")));
        Console.WriteLine();
        Console.Write(result.ToTable());
        Console.WriteLine(result.Dimension is int dd
            ? $"  d_int90 = {dd}, D = {result.FullDimension:N0}, D / d_int90 = {result.CompressionRatio:F0}x (baseline {result.Baseline:P2}, target {result.Target:P2})"
            : $"  90% of the baseline ({result.Target:P2}) was not reached by d = {result.Curve[^1].Dimension}: raise --max-d.");

        // The dense file: the generated Save of the plain network.
        var dense = new TModel();
        dense.Initialize(sweep.Seeds[0]);
        string densePath = Path.Combine(outDir, $"{network}.dense.safetensors");
        dense.Save(densePath);
        long denseBytes = new FileInfo(densePath).Length;

        long? subspaceBytes = null;
        if (result.Dimension is int d)
        {
            // The subspace model at d_int90, trained with the first seed, saved as a seed plus d numbers, and reloaded.
            ulong seed = sweep.Seeds[0];
            var model = new TModel();
            var spec = new SubspaceSpec(d) { Projection = projection, Seed = seed };
            var sub = SubspaceModel.Create(model, model.Forward, spec, new SubspaceOptions { InitializationSeed = seed });
            Classifier.Train(sub, sub.Forward, train, subspace with { Seed = seed });
            double accuracy = Classifier.Accuracy(Classifier.Predict(sub.Forward, test), test.Labels);
            string path = Path.Combine(outDir, $"{network}.{name.ToLowerInvariant()}.d{d}.subspace.safetensors");
            sub.Save(path);
            subspaceBytes = new FileInfo(path).Length;
            var fresh = new TModel();
            var loaded = SubspaceModel<TModel>.Load(path, fresh, fresh.Forward, [spec]);
            double reloaded = Classifier.Accuracy(Classifier.Predict(loaded.Forward, test), test.Labels);
            Console.WriteLine($"  saved {path}: {subspaceBytes:N0} bytes (dense {denseBytes:N0} bytes, {(double)denseBytes / subspaceBytes.Value:F0}x smaller); " +
                $"accuracy {accuracy:P2}, after Load {reloaded:P2}");
        }
        return new SweepRow(network, name, result, subspaceBytes, denseBytes);
    }
}

/// <summary>Reports on the calling thread, in order (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class LineProgress(Action<IntrinsicDimensionPoint> report) : IProgress<IntrinsicDimensionPoint>
{
    public void Report(IntrinsicDimensionPoint value) => report(value);
}

/// <summary>Reads back the curves.csv the sample writes, for <c>--replot</c>.</summary>
internal static class CurvesCsv
{
    public static List<PlotSeries> Read(string path)
    {
        var lines = File.ReadAllLines(path);
        if (lines.Length < 2 || !lines[0].StartsWith("network,projection,D,baseline,target,d_int90,d,mean", StringComparison.Ordinal))
            throw new InvalidDataException($"{path}: not a curves.csv of this sample (expected the header 'network,projection,D,baseline,target,d_int90,d,mean,seed...').");
        var series = new List<PlotSeries>();
        foreach (var group in lines.Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).GroupBy(f => (f[0], f[1])))
        {
            var first = group.First();
            var curve = group.Select(f => new IntrinsicDimensionPoint(int.Parse(f[6], CultureInfo.InvariantCulture),
                [.. f.Skip(8).Select(v => double.Parse(v, CultureInfo.InvariantCulture))])).OrderBy(p => p.Dimension).ToList();
            var result = new IntrinsicDimensionResult(double.Parse(first[3], CultureInfo.InvariantCulture), double.Parse(first[4], CultureInfo.InvariantCulture),
                first[5].Length == 0 ? null : int.Parse(first[5], CultureInfo.InvariantCulture), int.Parse(first[2], CultureInfo.InvariantCulture), curve);
            series.Add(new PlotSeries($"{group.Key.Item1}, {group.Key.Item2}", result));
        }
        return series;
    }
}
