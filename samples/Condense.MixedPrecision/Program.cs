// Mixed precision against uniform 3-bit and random bit allocations at equal bytes, with four sensitivities: the Hessian
// quadratic form 1/2 dW^T H dW along each format's error (the library default), the measured KL, the Hutchinson trace
// (HAWQ-V2) and the top eigenvalue (Q-BERT), all on 1,024 labelled training rows. The model trains dense once per seed;
// Compress chooses each layer's bits under [MixedPrecision(AverageBits = ..)]. The same measurements are re-solved at
// other budgets for the accuracy-vs-bytes figure, and random allocations are drawn at the same bytes.
//
// --model cnn runs the same comparison on a LeNet-style CNN (FashionCnn, Models.cs).
//
//   dotnet run -c Release --project samples/Condense.MixedPrecision [-- --dataset auto|digits|fashion] [--seeds 1,2,3]
//       [--model mlp|cnn] [--quick] [--method trace|measured|quadratic|eigen] [--group-sizes 0,16,32] [--proxy-rows N] [--power-iterations N] [--dense-from DIR] [--random N] [--samples N] [--epochs N] [--train-size N] [--out DIR]
using System.Diagnostics;
using System.Globalization;
using Condense;
using Condense.Calibration;
using Condense.Compression;
using Condense.Data;
using Condense.MixedPrecision;
using Condense.MixedPrecisionSample;
using Condense.Nn;
using Condense.Quantization;
using Condense.Training;

CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
var settings = new Settings();
for (int i = 0; i < args.Length; i++)
{
    string? Next() => i + 1 < args.Length ? args[++i] : null;
    bool ok = args[i] switch
    {
        "--dataset" => (settings.Dataset = Next() ?? "") is "auto" or "digits" or "fashion",
        "--seeds" => (settings.Seeds = ParseList(Next())) is { Length: > 0 },
        "--random" => int.TryParse(Next(), out settings.Random) && settings.Random >= 0,
        "--samples" => int.TryParse(Next(), out settings.Samples) && settings.Samples > 0,
        "--epochs" => int.TryParse(Next(), out settings.Epochs) && settings.Epochs > 0,
        "--train-size" => int.TryParse(Next(), out settings.TrainSize) && settings.TrainSize >= 0,
        "--out" => (settings.Out = Next() ?? "") != "",
        "--model" => (settings.Model = Next() ?? "") is "mlp" or "cnn",
        "--dense-from" => (settings.DenseFrom = Next() ?? "") != "",
        "--quick" => settings.Quick = true,
        "--method" => (settings.Method = Next() ?? "") is "trace" or "measured" or "quadratic" or "eigen",
        "--power-iterations" => int.TryParse(Next(), out settings.PowerIterations) && settings.PowerIterations >= 0,
        "--proxy-rows" => int.TryParse(Next(), out settings.ProxyRows) && settings.ProxyRows >= 0,
        "--group-sizes" => (settings.GroupSizes = ParseList(Next()).Select(v => (int)v).ToArray()) is { Length: > 0 },
        _ => false,
    };
    if (!ok)
    {
        Console.Error.WriteLine($"unknown or invalid option '{args[i]}'");
        Console.Error.WriteLine("usage: Condense.MixedPrecision [--dataset auto|digits|fashion] [--seeds 1,2,3] [--model mlp|cnn] [--quick] [--method trace|measured|quadratic|eigen] [--group-sizes 0,16,32] [--proxy-rows N] [--power-iterations N] [--dense-from DIR] [--random N] [--samples N] [--epochs N] [--train-size N] [--out DIR]");
        return 2;
    }
}
bool fashion = settings.Dataset == "fashion" || (settings.Dataset == "auto" && Datasets.FashionMnistAvailable());
if (settings.Dataset == "auto" && !fashion)
    Console.WriteLine("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist): using the bundled digits.");

try
{
    Directory.CreateDirectory(settings.Out);
    if (fashion)
    {
        var train = Datasets.FashionMnist(train: true);
        if (settings.TrainSize > 0 && settings.TrainSize < train.Count) train = train.Shuffled(seed: 2024).Subset(0, settings.TrainSize);
        if (settings.Model == "cnn")
            return Experiment.Run<FashionCnn>(train, Datasets.FashionMnist(train: false), settings,
                new TrainingOptions { Epochs = settings.Epochs > 0 ? settings.Epochs : 2, BatchSize = 128 });
        return Experiment.Run<FashionDeep>(train, Datasets.FashionMnist(train: false), settings,
            new TrainingOptions { Epochs = settings.Epochs > 0 ? settings.Epochs : 4, BatchSize = 128 });
    }
    if (settings.Model == "cnn")
    {
        Console.Error.WriteLine("error: the CNN takes 28x28 images: install Fashion-MNIST (apt-get install dataset-fashion-mnist) or use --dataset fashion.");
        return 1;
    }
    var (digitsTrain, digitsTest) = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 2024).Split(1400);
    return Experiment.Run<DigitsDeep>(digitsTrain, digitsTest, settings,
        new TrainingOptions { Epochs = settings.Epochs > 0 ? settings.Epochs : 40, BatchSize = 32, LearningRate = 2e-3f });
}
catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or InvalidOperationException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}

static ulong[] ParseList(string? text) =>
    text is null ? [] : text.Split(',').Select(s => ulong.TryParse(s, out var v) ? v : ulong.MaxValue).Where(v => v != ulong.MaxValue).ToArray();

internal sealed class Settings
{
    public string Dataset = "auto";
    public string Model = "mlp";
    public string? DenseFrom;
    public bool Quick;
    public string Method = "quadratic";
    public int[]? GroupSizes;
    public int ProxyRows;
    public int PowerIterations = 30;
    public ulong[] Seeds = [1, 2, 3];
    public int Random = 24;
    public int Samples = 32;
    public int Epochs;
    public int TrainSize = 20000;
    public string Out = "out/mixed-precision";
}

/// <summary>One compressed model: how its bits were chosen, its exact bytes and its test accuracy.</summary>
/// <param name="Loss">Mean test cross-entropy: the quantity the Hessian's second-order model predicts, less noisy than accuracy.</param>
internal sealed record PlanResult(ulong Seed, string Kind, string Bits, long Bytes, double AverageBits, double Accuracy, double Loss);

internal static class Experiment
{
    public static int Run<TModel>(Dataset train, Dataset test, Settings settings, TrainingOptions training)
        where TModel : Module, IMixedModel, ICompressibleModel<TModel>, new()
    {
        Console.WriteLine($"{train.Name}: {train.Count:N0} training and {test.Count:N0} test samples; {typeof(TModel).Name}, {training.Epochs} epochs at batch {training.BatchSize}; seeds {string.Join(", ", settings.Seeds)}.");
        var clock = Stopwatch.StartNew();
        var results = new List<PlanResult>();
        var summaries = new List<string>();
        var rankings = new List<string>();
        var singles = new List<string>();
        var proxies = new List<string>();
        foreach (ulong seed in settings.Seeds)
        {
            // --dense-from: the dense model a previous run of the same seed saved (Train is deterministic: same seed, same bits).
            string? kept = settings.DenseFrom is null ? null : Path.Combine(settings.DenseFrom, $"{typeof(TModel).Name}.seed{seed}.dense.safetensors");
            TModel dense;
            if (kept is not null && File.Exists(kept)) dense = TModel.Load(kept);
            else
            {
                dense = new TModel();
                dense.Initialize(seed);
                Classifier.Train(dense, dense.Forward, train, training with { Seed = seed });
            }
            double denseAccuracy = Accuracy(dense, test);
            string densePath = Path.Combine(settings.Out, $"{typeof(TModel).Name}.seed{seed}.dense.safetensors");
            dense.Save(densePath);
            Console.WriteLine($"\n== seed {seed}: dense {denseAccuracy:P2} ({clock.Elapsed.TotalSeconds:F0} s) ==");

            // The calibration rows: 1,024 labelled training images, seeded and shared by every plan of this seed.
            var calibration = CalibrationData.FromDataset(train.Shuffled(seed: seed + 100), rows: 1024, batchSize: 256);
            // Both measurements choose among the same formats: the library's default group sizes unless --group-sizes says otherwise.
            var groupSizes = settings.GroupSizes ?? new MixedPrecisionOptions().GroupSizes;
            var mixed = new MixedPrecisionOptions { Samples = settings.Samples, Seed = seed, Method = SensitivityMethod.HessianTrace, GroupSizes = groupSizes };
            var measuredOptions = new MixedPrecisionOptions { Seed = seed, Method = SensitivityMethod.MeasuredLoss, GroupSizes = groupSizes };
            // The direction-aware second-order term 1/2 dW^T H dW (Gauss-Newton of the output KL), and Q-BERT's top eigenvalue.
            var quadraticOptions = new MixedPrecisionOptions { Seed = seed, Method = SensitivityMethod.HessianQuadratic, GroupSizes = groupSizes };
            var eigenOptions = new MixedPrecisionOptions { Seed = seed, Method = SensitivityMethod.HessianTrace, Weighting = SensitivityWeighting.TopEigenvalue, GroupSizes = groupSizes,
                PowerIterations = Math.Max(1, settings.PowerIterations) };
            var libraryOptions = settings.Method switch { "measured" => measuredOptions, "quadratic" => quadraticOptions, "eigen" => eigenOptions, _ => mixed };

            // The library path: Compress chooses the bits under the attribute's AverageBits and reports them.
            var model = TModel.Load(densePath);
            // --quick measures once (below) and gives Compress that allocation, instead of Compress measuring again.
            var probe = TModel.Load(densePath);
            var sensitivity = MixedPrecisionSensitivity.Measure(TModel.Plan, probe.Layers, probe.Forward, calibration, mixed);
            // The measured loss increase of each layer alone at each width (KL to the float32 outputs on the same rows).
            var measured = MixedPrecisionSensitivity.Measure(TModel.Plan, probe.Layers, probe.Forward, calibration, measuredOptions);
            var measureClock = Stopwatch.StartNew();
            var quadratic = MixedPrecisionSensitivity.Measure(TModel.Plan, probe.Layers, probe.Forward, calibration, quadraticOptions);
            double quadraticSeconds = measureClock.Elapsed.TotalSeconds;
            measureClock.Restart();
            // --power-iterations 0: no top-eigenvalue allocation (its power iteration is the costliest measurement on the CNN).
            var eigen = settings.PowerIterations == 0 && settings.Method != "eigen" ? null : MixedPrecisionSensitivity.Measure(TModel.Plan, probe.Layers, probe.Forward, calibration, eigenOptions);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"quadratic form {quadraticSeconds:F1} s, top eigenvalues {measureClock.Elapsed.TotalSeconds:F1} s: ")
                + (eigen is null ? "not measured" : string.Join(", ", eigen.Layers.Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Path} {l.TopEigenvalue:G3}")))));
            var primary = settings.Method switch { "measured" => measured, "quadratic" => quadratic, "eigen" => eigen!, _ => sensitivity };
            var report = model.Compress(new CompressionOptions { Calibration = calibration,
                MixedPrecision = settings.Quick ? new MixedPrecisionOptions { Allocation = primary.Allocate().BitsByPath, AllocationGroupSizes = primary.Allocate().GroupSizesByPath } : libraryOptions });
            var chosen = report.MixedPrecision!;
            double hessianAccuracy = Accuracy(model, test);
            Console.Write(report);
            Console.Write(chosen);
            string written = Path.Combine(settings.Out, $"{typeof(TModel).Name}.MixedPrecision.seed{seed}.cs");
            chosen.WritePartialClass(typeof(TModel), written);
            Console.WriteLine($"wrote {written} (add it to the project to fix these bits)");

            // One measurement, re-solved at other budgets (the Pareto sweep) and used to cost the baselines.
            var sameBits = primary.Allocate();
            if (!sameBits.BitsByPath.OrderBy(p => p.Key).SequenceEqual(chosen.BitsByPath.OrderBy(p => p.Key))
                || !sameBits.GroupSizesByPath.OrderBy(p => p.Key).SequenceEqual(chosen.GroupSizesByPath.OrderBy(p => p.Key)))
                throw new InvalidOperationException("The same seed and calibration data gave different bits: determinism is broken.");

            var paths = sensitivity.Layers.Select(l => l.Path).ToArray();
            var cache = new Dictionary<string, PlanResult>(StringComparer.Ordinal);
            // A plan is one token per layer: the bits, with the group size when there is one ("3", "3g32").
            PlanResult Evaluate(string kind, string[] bits)
            {
                string key = string.Join("/", bits);
                if (cache.TryGetValue(key, out var known)) return known with { Kind = kind };
                var allocation = paths.Select((p, i) => (p, ParseFormat(bits[i]).Bits)).ToDictionary(x => x.p, x => x.Item2);
                var groups = paths.Select((p, i) => (p, ParseFormat(bits[i]).GroupSize)).ToDictionary(x => x.p, x => x.Item2);
                var compressed = TModel.Load(densePath);
                // Any size: the sweep lifts the declared budget for this call (MaxBytes far above the dense model, no AverageBits).
                var r = compressed.Compress(new CompressionOptions { MixedPrecision = new MixedPrecisionOptions { Allocation = allocation, AllocationGroupSizes = groups, MaxBytes = long.MaxValue / 2, AverageBits = 0 } });
                var (accuracy, loss) = Score(compressed, test);
                var result = new PlanResult(seed, kind, key, r.TotalBytesAfter, r.MixedPrecision!.AverageBits, accuracy, loss);
                cache[key] = result;
                return result;
            }
            var seedResults = new List<PlanResult>();
            void Add(PlanResult r) { seedResults.Add(r); results.Add(r); }

            var uniform = sensitivity.Bits.Select(b => Evaluate("uniform", Enumerable.Repeat(b.ToString(CultureInfo.InvariantCulture), paths.Length).ToArray())).ToList();
            uniform.ForEach(Add);
            var uniform3 = uniform.Single(u => u.Bits.StartsWith("3/", StringComparison.Ordinal));
            long budget = uniform3.Bytes;
            var hessian = Evaluate(settings.Method switch { "measured" => "measured", "quadratic" => "quadratic", "eigen" => "eigen", _ => "hessian" }, Bits(paths, chosen));
            if (Math.Abs(hessian.Accuracy - hessianAccuracy) > 1e-12) throw new InvalidOperationException("The allocation replayed differs from Compress's own.");
            Add(hessian);
            // At the uniform 3-bit bytes exactly (the attribute's AverageBits is a little above them).
            var hessianEqual = Evaluate("hessian", Bits(paths, sensitivity.Allocate(maxBytes: budget, averageBits: 0)));
            Add(hessianEqual);
            var measuredEqual = Evaluate("measured", Bits(paths, measured.Allocate(maxBytes: budget, averageBits: 0)));
            Add(measuredEqual);
            var quadraticEqual = Evaluate("quadratic", Bits(paths, quadratic.Allocate(maxBytes: budget, averageBits: 0)));
            Add(quadraticEqual);
            var eigenEqual = eigen is null ? null : Evaluate("eigen", Bits(paths, eigen.Allocate(maxBytes: budget, averageBits: 0)));
            if (eigenEqual is not null) Add(eigenEqual);
            // --quick: the Hessian curve only for the first seed (the figure's).
            foreach (double fraction in settings.Quick && seed != settings.Seeds[0] ? [] : new[] { 0.7, 0.8, 0.9, 1.1, 1.25, 1.5, 2.0 })
            {
                try { Add(Evaluate("hessian", Bits(paths, sensitivity.Allocate(maxBytes: (long)(budget * fraction), averageBits: 0)))); }
                catch (MixedPrecisionBudgetException) { }
                try { Add(Evaluate("measured", Bits(paths, measured.Allocate(maxBytes: (long)(budget * fraction), averageBits: 0)))); }
                catch (MixedPrecisionBudgetException) { }
                try { Add(Evaluate("quadratic", Bits(paths, quadratic.Allocate(maxBytes: (long)(budget * fraction), averageBits: 0)))); }
                catch (MixedPrecisionBudgetException) { }
            }

            // Random allocations at equal bytes: uniform draws of each layer's bits, kept when within 5% under the budget.
            var rng = new Rng(Rng.Derive(seed, "random allocations"));
            // Each layer's format drawn uniformly from its candidates (the widths, times the group sizes that fit it).
            string[] Draw() => sensitivity.Layers.Select(l => { int k = (int)(rng.NextUInt64() % (ulong)l.Bits.Count); return FormatToken(l.Bits[k], l.GroupSizeAt(k)); }).ToArray();
            List<PlanResult> RandomAt(long bytes, string kind)
            {
                var drawn = new List<PlanResult>();
                int tries = 0;
                while (drawn.Count < settings.Random && tries++ < 200_000)
                {
                    var bits = Draw();
                    var cost = Cost(sensitivity, bits);
                    if (cost.PredictedBytes > bytes || cost.PredictedBytes < 0.95 * bytes) continue;
                    if (drawn.Any(e => e.Bits == string.Join("/", bits))) continue;
                    var r = Evaluate(kind, bits);
                    drawn.Add(r);
                    Add(r);
                }
                return drawn;
            }
            var equal = RandomAt(budget, "random");
            // A second budget, halfway between uniform 2- and 3-bit, where the choice matters more.
            long lower = (uniform[0].Bytes + budget) / 2;
            var hessianLower = Evaluate("hessian", Bits(paths, sensitivity.Allocate(maxBytes: lower, averageBits: 0)));
            Add(hessianLower);
            var measuredLower = Evaluate("measured", Bits(paths, measured.Allocate(maxBytes: lower, averageBits: 0)));
            Add(measuredLower);
            var quadraticLower = Evaluate("quadratic", Bits(paths, quadratic.Allocate(maxBytes: lower, averageBits: 0)));
            Add(quadraticLower);
            var eigenLower = eigen is null ? null : Evaluate("eigen", Bits(paths, eigen.Allocate(maxBytes: lower, averageBits: 0)));
            if (eigenLower is not null) Add(eigenLower);
            var equalLower = RandomAt(lower, "random (lower budget)");

            if (!settings.Quick)
            {
            // The per-weight (diagonal) weighting from the same Rademacher vectors: its allocations at both budgets, and
            // how well each Omega ranks the test cross-entropy of every plan tried (Spearman over the plans of this seed).
            var diagonalSensitivity = MixedPrecisionSensitivity.Measure(TModel.Plan, probe.Layers, probe.Forward, calibration,
                new MixedPrecisionOptions { Samples = settings.Samples, Seed = seed, Method = SensitivityMethod.HessianTrace, Weighting = SensitivityWeighting.Diagonal, GroupSizes = groupSizes });
            var diagonalEqual = Evaluate("hessian (diagonal)", Bits(paths, diagonalSensitivity.Allocate(maxBytes: budget, averageBits: 0)));
            Add(diagonalEqual);
            var diagonalLower = Evaluate("hessian (diagonal)", Bits(paths, diagonalSensitivity.Allocate(maxBytes: lower, averageBits: 0)));
            Add(diagonalLower);
            double Omega(MixedPrecisionSensitivity s, PlanResult r) => Cost(s, r.Bits.Split('/')).TotalOmega;
            var ranked = seedResults.GroupBy(r => r.Bits).Select(g => g.First()).ToList();
            double rhoTrace = Spearman(ranked.Select(r => Omega(sensitivity, r)).ToArray(), ranked.Select(r => r.Loss).ToArray());
            double rhoDiagonal = Spearman(ranked.Select(r => Omega(diagonalSensitivity, r)).ToArray(), ranked.Select(r => r.Loss).ToArray());
            var nearBudget = ranked.Where(r => r.Bytes <= budget && r.Bytes >= 0.95 * budget).ToList();
            double rhoTraceNear = Spearman(nearBudget.Select(r => Omega(sensitivity, r)).ToArray(), nearBudget.Select(r => r.Loss).ToArray());
            double rhoDiagonalNear = Spearman(nearBudget.Select(r => Omega(diagonalSensitivity, r)).ToArray(), nearBudget.Select(r => r.Loss).ToArray());
            rankings.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {seed} | {ranked.Count} | {rhoTrace:F3} | {rhoDiagonal:F3} | {nearBudget.Count} | {rhoTraceNear:F3} | {rhoDiagonalNear:F3} |"));
            summaries.Add(Row(seed, denseAccuracy, "3-bit, diagonal", null, [diagonalEqual, null, null, null], equal));
            summaries.Add(Row(seed, denseAccuracy, "2.5-bit, diagonal", null, [diagonalLower, null, null, null], equalLower));
            }
            // A cloud of random allocations at any size, for the figure's Pareto front (the figure shows the first seed only).
            for (int k = 0; k < (seed == settings.Seeds[0] && !settings.Quick ? settings.Random : 0); k++)
                Add(Evaluate("random (any size)", Draw()));

            Console.WriteLine($"\n{"plan",-22} {"bits (" + string.Join("/", paths) + ")",-44} {"bytes",9} {"bits/w",7} {"accuracy",9}");
            Console.WriteLine($"{"dense fp32",-22} {"",-44} {TModel.Plan.TotalBytesBefore,9:N0} {32,7:F2} {denseAccuracy,9:P2}");
            foreach (var r in seedResults.Where(r => r.Kind != "random (any size)").OrderBy(r => r.Kind).ThenBy(r => r.Bytes))
                Console.WriteLine($"{r.Kind,-22} {r.Bits,-44} {r.Bytes,9:N0} {r.AverageBits,7:F3} {r.Accuracy,9:P2}");
            summaries.Add(Row(seed, denseAccuracy, "3-bit", uniform3, [hessianEqual, measuredEqual, quadraticEqual, eigenEqual], equal));
            summaries.Add(Row(seed, denseAccuracy, "2.5-bit", null, [hessianLower, measuredLower, quadraticLower, eigenLower], equalLower));

            // How well each proxy predicts what it stands for: every layer alone at every width, the test cross-entropy
            // increase, against the trace model's Omega and the measured calibration KL (Spearman over layers x widths).
            // --proxy-rows: the first N test images only, to keep the CNN's 20 extra evaluations affordable on a loaded machine.
            var proxyTest = settings.ProxyRows > 0 && settings.ProxyRows < test.Count ? test.Subset(0, settings.ProxyRows) : test;
            var denseScore = Score(dense, proxyTest);
            var single = new List<(double Trace, double Measured, double Quadratic, double Eigen, double Delta, string Text)>();
            for (int t = 0; t < paths.Length; t++)
                for (int b = 0; b < sensitivity.Bits.Count; b++)
                {
                    // Per-row formats only: the table is about the widths.
                    int k = sensitivity.Layers[t].IndexOf(sensitivity.Bits[b]), km = measured.Layers[t].IndexOf(sensitivity.Bits[b]);
                    double q = quadratic.Layers[t].Omega[quadratic.Layers[t].IndexOf(sensitivity.Bits[b])], ev = eigen is null ? double.NaN : eigen.Layers[t].Omega[eigen.Layers[t].IndexOf(sensitivity.Bits[b])];
                    var one = TModel.Load(densePath);
                    var layer = (WeightedLayer)one.Layers[sensitivity.Layers[t].LayerIndex].Layer;
                    var lp = TModel.Plan.Layers[sensitivity.Layers[t].LayerIndex];
                    var original = (float[])layer.Weight.Data.Clone();
                    GroupQuantizedWeight.Quantize(original, lp.OutFeatures, lp.InFeatures, MixedPrecisionSensitivity.Scheme(sensitivity.Bits[b]), QuantizationRounding.MseClip).Dequantize(layer.Weight.Data);
                    var (a, l) = Score(one, proxyTest);
                    // Why the direction matters: how far the error points along -W (at 2 bits most weights round to 0 or
                    // are clipped, so dW follows W, and W follows the stiff input directions), and the curvature along dW
                    // relative to the layer's average, (dW^T H dW / ||dW||^2) / (Tr H / n) = 2 x quadratic / trace Omega.
                    double dot = 0, dd = 0, ww = 0;
                    for (int j = 0; j < original.Length; j++)
                    {
                        double d = (double)layer.Weight.Data[j] - original[j];
                        dot -= d * original[j];
                        dd += d * d;
                        ww += (double)original[j] * original[j];
                    }
                    double cosine = dot / Math.Sqrt(dd * ww), stiffness = 2 * q / sensitivity.Layers[t].Omega[k];
                    single.Add((sensitivity.Layers[t].Omega[k], measured.Layers[t].Omega[km], q, ev, l - denseScore.Loss,
                        string.Create(CultureInfo.InvariantCulture, $"| {seed} | {paths[t]} | {sensitivity.Bits[b]} | {sensitivity.Layers[t].Omega[k]:G3} | {q:G3} | {ev:G3} | {measured.Layers[t].Omega[km]:G3} | {measured.Layers[t].Omega[km] / q:F2} | {stiffness:F2} | {cosine:F2} | {l - denseScore.Loss:G3} | {(a - denseScore.Accuracy) * 100:+0.00;-0.00} |")));
                }
            singles.AddRange(single.Select(x => x.Text));
            double Objective(MixedPrecisionSensitivity s, string bits) => Cost(s, bits.Split('/')).TotalOmega;
            var planRanked = seedResults.GroupBy(r => r.Bits).Select(g => g.First()).ToList();
            var planNear = planRanked.Where(r => r.Bytes <= budget && r.Bytes >= 0.95 * budget).ToList();
            double SingleRho(Func<(double Trace, double Measured, double Quadratic, double Eigen, double Delta, string Text), double> proxy) =>
                Spearman(single.Select(proxy).ToArray(), single.Select(x => x.Delta).ToArray());
            double PlanRho(MixedPrecisionSensitivity? s) => s is null ? double.NaN : Spearman(planNear.Select(r => Objective(s, r.Bits)).ToArray(), planNear.Select(r => r.Loss).ToArray());
            proxies.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {seed} | {SingleRho(x => x.Trace):F3} | {SingleRho(x => x.Quadratic):F3} | {SingleRho(x => x.Eigen):F3} | {SingleRho(x => x.Measured):F3} | " +
                $"{PlanRho(sensitivity):F3} | {PlanRho(quadratic):F3} | {PlanRho(eigen):F3} | {PlanRho(measured):F3} ({planNear.Count}) | " +
                $"{Objective(sensitivity, uniform3.Bits):G4} vs {Objective(sensitivity, hessianEqual.Bits):G4} | {Objective(quadratic, uniform3.Bits):G4} vs {Objective(quadratic, quadraticEqual.Bits):G4} | {Objective(measured, uniform3.Bits):G4} vs {Objective(measured, measuredEqual.Bits):G4} |"));
            Console.WriteLine("traces (+- standard error): " + string.Join(", ", sensitivity.Layers.Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Path} {l.Trace:G3} +- {l.TraceStandardError:G2}"))));
            Console.WriteLine($"seed {seed} done ({clock.Elapsed.TotalSeconds:F0} s)");
        }

        Console.WriteLine("\nAccuracy (test cross-entropy) at equal bytes; random: mean +- sd over the draws, and how many reach the Hessian's accuracy.");
        Console.WriteLine("| seed | budget | dense | uniform | Hessian trace (bits) | measured KL (bits) | Hessian quadratic form (bits) | top eigenvalue (bits) | random at equal bytes |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        summaries.ForEach(Console.WriteLine);
        Console.WriteLine("\nSpearman rank correlation of the predicted total Omega with the test cross-entropy, over every distinct plan of the seed, and over those within 5% under the uniform 3-bit bytes.");
        Console.WriteLine("| seed | plans | trace | diagonal | plans at 3-bit bytes | trace | diagonal |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        rankings.ForEach(Console.WriteLine);
        Console.WriteLine("\nEach layer alone at each width: the trace model's Omega, the quadratic form 1/2 dW^T H dW, the top-eigenvalue bound, the measured calibration KL (and its ratio to the quadratic form), and the test cross-entropy and accuracy change.");
        Console.WriteLine("| seed | layer | bits | trace Omega | quadratic form | top eigenvalue | measured KL | KL / quadratic | curvature along dW / mean | cos(dW, -W) | test CE delta | test acc. delta (points) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        singles.ForEach(Console.WriteLine);
        Console.WriteLine("\nSpearman of each proxy with the test cross-entropy: over layers x widths (one layer quantized), and over the plans within 5% under the uniform 3-bit bytes (sum of Omega); the knapsack objective at uniform 3-bit vs at its optimum (3-bit bytes).");
        Console.WriteLine("| seed | single: trace | quadratic | eigenvalue | measured | plans: trace | quadratic | eigenvalue | measured (n) | trace objective uniform vs chosen | quadratic objective uniform vs chosen | measured objective uniform vs chosen |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
        proxies.ForEach(Console.WriteLine);

        string csv = Path.Combine(settings.Out, "plans.csv");
        File.WriteAllLines(csv, new[] { "seed,kind,bits,bytes,average_bits,accuracy,loss" }.Concat(results.Select(r =>
            string.Create(CultureInfo.InvariantCulture, $"{r.Seed},{r.Kind},{r.Bits},{r.Bytes},{r.AverageBits:R},{r.Accuracy:R},{r.Loss:R}"))));
        string svg = Path.Combine(settings.Out, "pareto.svg");
        File.WriteAllText(svg, ParetoPlot.ToSvg($"{typeof(TModel).Name} on {train.Name}: test accuracy vs exact bytes (seed {settings.Seeds[0]})", results));
        Console.WriteLine($"\n{csv}\n{svg}\n({clock.Elapsed.TotalSeconds:F0} s)");
        return 0;
    }

    /// <summary>Spearman's rank correlation (average ranks for ties); NaN with fewer than three values.</summary>
    private static double Spearman(double[] x, double[] y)
    {
        if (x.Length < 3) return double.NaN;
        double[] Ranks(double[] v)
        {
            var order = Enumerable.Range(0, v.Length).OrderBy(i => v[i]).ToArray();
            var ranks = new double[v.Length];
            for (int i = 0; i < order.Length;)
            {
                int j = i;
                while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
                for (int k = i; k <= j; k++) ranks[order[k]] = (i + j) / 2.0;
                i = j + 1;
            }
            return ranks;
        }
        var rx = Ranks(x);
        var ry = Ranks(y);
        double mx = rx.Average(), my = ry.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < rx.Length; i++)
        {
            sxy += (rx[i] - mx) * (ry[i] - my);
            sxx += (rx[i] - mx) * (rx[i] - mx);
            syy += (ry[i] - my) * (ry[i] - my);
        }
        return sxy / Math.Sqrt(sxx * syy);
    }

    private static string[] Bits(string[] paths, MixedPrecisionSolution solution) =>
        paths.Select(p => FormatToken(solution.BitsByPath[p], solution.GroupSizesByPath[p])).ToArray();

    private static string FormatToken(int bits, int groupSize) =>
        groupSize == 0 ? bits.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{bits}g{groupSize}");

    private static (int Bits, int GroupSize) ParseFormat(string token)
    {
        var parts = token.Split('g');
        return (int.Parse(parts[0], CultureInfo.InvariantCulture), parts.Length > 1 ? int.Parse(parts[1], CultureInfo.InvariantCulture) : 0);
    }

    /// <summary>A plan (one token per layer, in the sensitivity's layer order) costed by a measurement, without a budget.</summary>
    private static MixedPrecisionSolution Cost(MixedPrecisionSensitivity s, string[] tokens)
    {
        var formats = tokens.Select(ParseFormat).ToArray();
        return s.Evaluate(s.Layers.Select((l, i) => (l.Path, formats[i].Bits)).ToDictionary(x => x.Path, x => x.Bits),
            maxBytes: long.MaxValue / 2, averageBits: 0, groupSizes: s.Layers.Select((l, i) => (l.Path, formats[i].GroupSize)).ToDictionary(x => x.Path, x => x.GroupSize));
    }

    private static double Accuracy<TModel>(TModel model, Dataset test) where TModel : IMixedModel => Score(model, test).Accuracy;

    /// <summary>Test accuracy and mean cross-entropy, in batches, without the tape.</summary>
    private static (double Accuracy, double Loss) Score<TModel>(TModel model, Dataset test) where TModel : IMixedModel
    {
        long correct = 0;
        double loss = 0;
        using (Tensor.NoGrad())
            foreach (var batch in test.Batches(500, shuffleSeed: null))
            {
                var logits = model.Forward(new Tensor(batch.Features, batch.Count, test.FeatureCount));
                var predicted = Ops.ArgMax(logits);
                for (int i = 0; i < batch.Count; i++) if (predicted[i] == batch.Labels[i]) correct++;
                loss += Ops.SoftmaxCrossEntropy(logits, batch.Labels).Data[0] * (double)batch.Count;
            }
        return ((double)correct / test.Count, loss / test.Count);
    }

    /// <summary>One summary row: uniform, then each method's plan (trace, measured, quadratic form, top eigenvalue; null = not run), then the random draws and how many reach each method.</summary>
    private static string Row(ulong seed, double dense, string budget, PlanResult? uniform, PlanResult?[] methods, List<PlanResult> random)
    {
        var inv = CultureInfo.InvariantCulture;
        string Cell(PlanResult r) => string.Create(inv, $"{r.Accuracy:P2} ({r.Loss:F4}), {r.Bytes:N0} B");
        double mean = random.Count == 0 ? double.NaN : random.Average(r => r.Accuracy);
        double sd = random.Count < 2 ? 0 : Math.Sqrt(random.Sum(r => (r.Accuracy - mean) * (r.Accuracy - mean)) / (random.Count - 1));
        double meanLoss = random.Count == 0 ? double.NaN : random.Average(r => r.Loss);
        string cells = string.Join(" | ", methods.Select(m => m is null ? "" : Cell(m) + " (" + m.Bits + ")"));
        string reach = string.Join(", ", methods.Select(m => m is null ? "-" : random.Count(r => r.Accuracy >= m.Accuracy).ToString(inv)));
        return string.Create(inv, $"| {seed} | {budget} | {dense:P2} | {(uniform is null ? "" : Cell(uniform))} | {cells} | {mean:P2} +- {sd * 100:F2} ({meanLoss:F4}; n = {random.Count}; >= each: {reach}) |");
    }
}
