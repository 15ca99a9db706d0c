// The intrinsic dimension (Li et al. 2018) of fully connected classifiers and LeNet: train the network, then train it
// again in random d-dimensional subspaces, theta = theta0 + P d, over a log-spaced grid of d refined by bisection, and
// report the smallest d reaching 90% of the baseline's accuracy (d_int90), the compression ratio D / d_int90, the
// saved subspace file against the dense one, and an SVG figure of accuracy against d. Every subspace model comes from
// the generated API of a [Compressible, Subspace(...)] class: Reparameterize(change, seed) in the sweep, then the
// declared Reparameterize() / Save / LoadSubspace / Materialize() / Compress() as a user writes them.
//
//   dotnet run -c Release --project samples/Condense.IntrinsicDimension [-- intrinsic-dimension] [options]
//     --dataset auto|digits|fashion   auto: Fashion-MNIST when installed, else the bundled 8x8 digits
//     --network fc|lenet              the input-w-w-10 networks (default) or LeNet (28x28 images: Fashion-MNIST only)
//     --projection dense|sparse|fastfood|all   (default fastfood)
//     --widths 32,100,200,400         hidden widths of the input-w-w-10 network (default 200)
//     --seeds 1,2                     training seeds; every point is the mean over them
//     --epochs N                      epochs of every run (default 3 on Fashion-MNIST, 25 on digits)
//     --train-size N                  Fashion-MNIST training samples, a seeded subset (default 10000; 0: all 60000)
//     --min-d N --max-d N --grid N    the log-spaced grid (default 50..3200 in 7 points on Fashion, 10..2000 on digits)
//     --large-d N                     the quality check: train every projection at this d, print best accuracy vs baseline (0: skip)
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
const string Usage = "usage: Condense.IntrinsicDimension [intrinsic-dimension] [--dataset auto|digits|fashion] [--network fc|lenet] [--projection dense|sparse|fastfood|all] " +
    "[--widths 100,200,400] [--seeds 1,2] [--epochs N] [--train-size N] [--min-d N] [--max-d N] [--grid N] [--large-d N] [--out DIR] | --replot CSV [--title T] [--out DIR]";
string dataset = "auto", network = "fc", projectionArg = "fastfood", outDir = Path.Combine("out", "intrinsic-dimension");
int[] widths = [200];
ulong[] seeds = [1, 2];
int? epochs = null, minD = null, maxD = null, grid = null, largeD = null;
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
            case "--network": network = Next(); if (network is not ("fc" or "lenet")) throw new ArgumentException($"--network must be fc or lenet, not '{network}'"); break;
            case "--large-d": largeD = Positive("--large-d", Next()); break;
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
    if (widths.Any(w => w is not (32 or 100 or 200 or 400))) throw new ArgumentException($"--widths: the sample has networks of width 32, 100, 200 and 400, not {string.Join(",", widths)}");
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
if (network == "lenet" && !fashion)
{
    Console.Error.WriteLine("error: --network lenet needs 28x28 images: install Fashion-MNIST (apt-get install dataset-fashion-mnist) and use --dataset fashion or auto.");
    return 2;
}
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
    var checks = new List<QualityCheck>();
    var run = new SweepRun(train, test, baseline, subspace, sweep, largeD ?? 0, outDir, clock);
    if (network == "lenet")
    {
        foreach (var projection in projections) results.Add(run.Run<LeNet>(projection, checks));
        results.Add(run.Declared<LeNet>());
    }
    else
    {
        foreach (int width in widths)
        {
            foreach (var projection in projections)
            {
                results.Add((fashion, width) switch
                {
                    (true, 32) => run.Run<Fc784W32>(projection, checks),
                    (true, 100) => run.Run<Fc784W100>(projection, checks),
                    (true, 200) => run.Run<Fc784W200>(projection, checks),
                    (true, _) => run.Run<Fc784W400>(projection, checks),
                    (false, 32) => run.Run<Fc64W32>(projection, checks),
                    (false, 100) => run.Run<Fc64W100>(projection, checks),
                    (false, 200) => run.Run<Fc64W200>(projection, checks),
                    (false, _) => run.Run<Fc64W400>(projection, checks),
                });
            }
            results.Add((fashion, width) switch
            {
                (true, 32) => run.Declared<Fc784W32>(),
                (true, 100) => run.Declared<Fc784W100>(),
                (true, 200) => run.Declared<Fc784W200>(),
                (true, _) => run.Declared<Fc784W400>(),
                (false, 32) => run.Declared<Fc64W32>(),
                (false, 100) => run.Declared<Fc64W100>(),
                (false, 200) => run.Declared<Fc64W200>(),
                (false, _) => run.Declared<Fc64W400>(),
            });
        }
    }
    var declared = results.Where(r => r.Declared != null).ToList();
    results = [.. results.Where(r => r.Declared == null)];

    Console.WriteLine();
    Console.WriteLine("| network | projection | D | baseline | 90% target | d_int90 | D / d_int90 | subspace file | dense file | dense / subspace |");
    Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
    foreach (var r in results)
        Console.WriteLine($"| {r.Network} | {r.Projection} | {r.Result.FullDimension:N0} | {r.Result.Baseline:P2} | {r.Result.Target:P2} | " +
            $"{(r.Result.Dimension?.ToString("N0") ?? "not reached")} | {(r.Result.CompressionRatio is double c ? c.ToString("F0") + "x" : "-")} | " +
            $"{(r.SubspaceBytes is long s ? s.ToString("N0") + " B" : "-")} | {r.DenseBytes:N0} B | {(r.SubspaceBytes is long s2 ? ((double)r.DenseBytes / s2).ToString("F0") + "x" : "-")} |");

    if (checks.Count > 0)
    {
        Console.WriteLine();
        Console.WriteLine("Quality check: every projection at a large d against the baseline (same epochs, seed " + seeds[0] + "):");
        foreach (var c in checks)
            Console.WriteLine($"  {c.Network}, {c.Projection,-8} d = {c.Dimension:N0}: best accuracy {c.Best:P2} (epoch {c.BestEpoch}), last {c.Last:P2}, " +
                $"baseline {c.Baseline:P2}: {(c.Best - c.Baseline) * 100:+0.00;-0.00} points {(c.Baseline - c.Best <= 0.02 ? "(within 2)" : "(NOT within 2)")}; losses and d finite: {(c.Finite ? "yes" : "NO")}");
    }
    if (declared.Count > 0)
    {
        Console.WriteLine();
        Console.WriteLine("| declared model | d | planned coordinate bytes | subspace file | reloaded | materialized | int8 (Compress) | int8 file |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var r in declared)
        {
            var m = r.Declared!;
            Console.WriteLine($"| {r.Network} | {m.Dimension:N0} | {m.PlannedCoordinateBytes:N0} B | {m.SubspaceBytes:N0} B, {m.Accuracy:P2} | {m.Reloaded:P2} | {m.Materialized:P2} | {m.Compressed:P2} | {m.CompressedBytes:N0} B |");
        }
    }

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

/// <summary>One sweep's outcome with the file sizes, or (with <see cref="Declared"/>) the declared model's path.</summary>
internal sealed record SweepRow(string Network, string Projection, IntrinsicDimensionResult Result, long? SubspaceBytes, long DenseBytes, DeclaredRun? Declared = null);

/// <summary>The quality check of one projection: trained at a large d, best test accuracy over the epochs.</summary>
internal sealed record QualityCheck(string Network, string Projection, int Dimension, double Best, int BestEpoch, double Last, double Baseline, bool Finite);

/// <summary>The declared subspace model through the generated API: sizes and accuracies at each step.</summary>
internal sealed record DeclaredRun(int Dimension, long PlannedCoordinateBytes, long SubspaceBytes, double Accuracy, double Reloaded, double Materialized, double Compressed, long CompressedBytes);

/// <summary>The sweeps, the quality checks and the declared model's path, all through the generated subspace API.</summary>
internal sealed class SweepRun(Dataset train, Dataset test, TrainingOptions baseline, TrainingOptions subspace,
    IntrinsicDimensionOptions sweep, int largeD, string outDir, Stopwatch clock)
{
    private readonly Dictionary<string, double> _baselines = [];

    private double Accuracy(Func<Tensor, Tensor> forward) => Classifier.Accuracy(Classifier.Predict(forward, test), test.Labels);

    public SweepRow Run<TModel>(SubspaceProjection projection, List<QualityCheck> checks)
        where TModel : Module, ISubspaceClassifier<TModel>, new()
    {
        string network = typeof(TModel).Name;
        string name = projection.ToString();
        int runs = 0;
        int perPoint = sweep.Seeds.Count;
        Console.WriteLine($"\n== {network}, {name} projection ==");
        Console.Write($"  baseline ({perPoint} runs) ");
        // The sweep's subspace models: the generated Reparameterize with the declared spec changed to this d, seed
        // and projection (theta0 = Initialize(seed)). createModel is called once to count D, then once per training
        // run: a dot per run shows progress within a point.
        SubspaceSpec Change(SubspaceSpec s, int d, ulong seed) => s with { Dimension = d, Seed = seed, Projection = projection };
        var result = IntrinsicDimension.MeasureClassifier(
            () => { if (runs++ > 0) Console.Write("."); return new TModel(); },
            m => m.Forward,
            (m, d, seed) => m.Reparameterize(s => Change(s, d, seed), initializationSeed: seed),
            train, test, baseline, sweep, subspace,
            new LineProgress(p => Console.Write($" d = {p.Dimension,5}: {p.Mean:P2} ({clock.Elapsed.TotalSeconds:F0} s)\n  ")));
        _baselines[network] = result.Baseline;
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

        ulong first = sweep.Seeds[0];
        long? subspaceBytes = null;
        if (result.Dimension is int d)
        {
            // The subspace model at d_int90, trained with the first seed, saved as a seed plus d numbers, and reloaded
            // by the generated LoadSubspace with the same change (the file is checked against the changed spec).
            var sub = new TModel().Reparameterize(s => Change(s, d, first), initializationSeed: first);
            Classifier.Train(sub, sub.Forward, train, subspace with { Seed = first });
            double accuracy = Accuracy(sub.Forward);
            string path = Path.Combine(outDir, $"{network}.{name.ToLowerInvariant()}.d{d}.subspace.safetensors");
            sub.Save(path);
            subspaceBytes = new FileInfo(path).Length;
            var loaded = TModel.LoadSubspace(path, s => Change(s, d, first));
            double reloaded = Accuracy(loaded.Forward);
            Console.WriteLine($"  saved {path}: {subspaceBytes:N0} bytes (dense {denseBytes:N0} bytes, {(double)denseBytes / subspaceBytes.Value:F0}x smaller); " +
                $"accuracy {accuracy:P2}, after LoadSubspace {reloaded:P2}");
        }

        if (largeD > 0)
        {
            // The quality bar: at a large d the subspace model must train without NaN and come within 2 points of
            // the baseline. Same epochs and seed as the sweep; the test accuracy after every epoch, the best reported.
            int d2 = Math.Min(largeD, result.FullDimension - 1);
            var sub = new TModel().Reparameterize(s => Change(s, d2, first), initializationSeed: first);
            double best = 0, last = 0;
            int bestEpoch = 0;
            bool finite = true;
            Console.Write($"  quality check at d = {d2:N0}: ");
            Classifier.Train(sub, sub.Forward, train, subspace with { Seed = first }, (epoch, loss) =>
            {
                finite &= double.IsFinite(loss);
                last = Accuracy(sub.Forward);
                if (last > best) (best, bestEpoch) = (last, epoch + 1);
                Console.Write($"{last:P2} ");
            });
            finite &= sub.Coordinates.Data.All(float.IsFinite);
            Console.WriteLine($"(baseline {result.Baseline:P2}, {clock.Elapsed.TotalSeconds:F0} s)");
            checks.Add(new QualityCheck(network, name, d2, best, bestEpoch, last, result.Baseline, finite));
        }
        return new SweepRow(network, name, result, subspaceBytes, denseBytes);
    }

    /// <summary>
    /// The declared subspace, exactly as a user writes it: Reparameterize(), train, Save, LoadSubspace (checked against
    /// the compiled spec), Materialize() into an ordinary model, Compress() with the class's int8 plan, Save.
    /// </summary>
    public SweepRow Declared<TModel>() where TModel : Module, ISubspaceClassifier<TModel>, new()
    {
        string network = typeof(TModel).Name;
        ulong seed = sweep.Seeds[0];
        var spec = TModel.SubspaceSpecs[0];
        Console.WriteLine($"\n== {network}: the declared [Subspace({spec.Dimension}, Projection = {spec.Projection}, Seed = {spec.Seed})] ==");

        var model = new TModel();
        var subspaceModel = model.Reparameterize(initializationSeed: seed);
        Classifier.Train(subspaceModel, subspaceModel.Forward, train, subspace with { Seed = seed });
        double accuracy = Accuracy(subspaceModel.Forward);
        string path = Path.Combine(outDir, $"{network}.declared.subspace.safetensors");
        subspaceModel.Save(path);
        long bytes = new FileInfo(path).Length;

        var loaded = TModel.LoadSubspace(path);
        double reloaded = Accuracy(loaded.Forward);
        TModel dense = loaded.Materialize();
        double materialized = Accuracy(dense.Forward);
        var report = dense.Compress();
        double compressed = Accuracy(dense.Forward);
        string compressedPath = Path.Combine(outDir, $"{network}.declared.int8.safetensors");
        dense.Save(compressedPath);
        long compressedBytes = new FileInfo(compressedPath).Length;
        Console.WriteLine($"  Reparameterize(initializationSeed: {seed}), trained: {accuracy:P2}; Save: {bytes:N0} bytes ({TModel.Plan.SubspaceCoordinateBytes:N0} planned coordinate bytes + header)");
        Console.WriteLine($"  LoadSubspace: {reloaded:P2}; Materialize(): {materialized:P2}; Compress() ({report.TotalBytesBefore:N0} -> {report.TotalBytesAfter:N0} bytes): {compressed:P2}; Save: {compressedBytes:N0} bytes");
        _baselines.TryGetValue(network, out double b);
        var run = new DeclaredRun(spec.Dimension, TModel.Plan.SubspaceCoordinateBytes, bytes, accuracy, reloaded, materialized, compressed, compressedBytes);
        return new SweepRow(network, spec.Projection.ToString(), new IntrinsicDimensionResult(b, 0, spec.Dimension, 0, []), bytes, 0, run);
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
