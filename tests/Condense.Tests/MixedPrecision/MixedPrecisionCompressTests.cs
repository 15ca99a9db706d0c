using Condense.Calibration;
using Condense.Compression;
using Condense.Data;
using Condense.Kernels;
using Condense.MixedPrecision;
using Condense.Quantization;
using Condense.Training;

namespace Condense.Tests.MixedPrecision;

/// <summary>Trains the digits MLP once and keeps its dense weights for every test to start from.</summary>
public sealed class MixedDigitsFixture : IDisposable
{
    public MixedDigitsFixture()
    {
        (Train, Test) = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 3).Split(1400);
        Directory = Path.Combine(Path.GetTempPath(), "condense-mixed-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
        var model = new MixedDigits();
        model.Initialize(seed: 8);
        Classifier.Train(model, model.Forward, Train, new TrainingOptions { Epochs = 12, BatchSize = 32, LearningRate = 2e-3f, Seed = 8 });
        DensePath = Path.Combine(Directory, "dense.safetensors");
        model.Save(DensePath);
    }

    public Dataset Train { get; }
    public Dataset Test { get; }
    public string Directory { get; }
    public string DensePath { get; }

    public MixedDigits Fresh() => MixedDigits.Load(DensePath);

    public CalibrationData Calibration(bool labels = true) => labels
        ? CalibrationData.FromDataset(Train, rows: 512, batchSize: 128)
        : new CalibrationData(CalibrationData.FromDataset(Train, rows: 512, batchSize: 128).LabelledBatches().Select(b => b.Input).ToList());

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { }
    }
}

public sealed class MixedPrecisionCompressTests(MixedDigitsFixture fixture) : IClassFixture<MixedDigitsFixture>
{
    private static CompressionOptions Options(CalibrationData? data, MixedPrecisionOptions? mixed = null) =>
        new() { Calibration = data, MixedPrecision = mixed ?? new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 16 } };

    [Fact]
    public void CompressReportsTheChosenBitsAndPredictsTheExactBytes()
    {
        var model = fixture.Fresh();
        var report = model.Compress(Options(fixture.Calibration()));
        var solution = Assert.IsType<MixedPrecisionSolution>(report.MixedPrecision);
        Assert.Equal(SensitivityLoss.CrossEntropy, solution.Loss);
        Assert.Equal(["hidden1", "hidden2"], solution.Layers.Select(l => l.Path));
        // Predicted = what the compressed model stores, layer by layer and in total.
        Assert.Equal(report.TotalBytesAfter, solution.PredictedBytes);
        foreach (var choice in solution.Layers)
        {
            var layer = report.Layers.Single(l => l.Path == choice.Path);
            Assert.Equal(choice.BytesAfter, layer.BytesAfter);
            Assert.Equal($"int{choice.Bits} per-row sym", layer.Technique);
            var stored = (GroupQuantizedWeight)((Condense.Nn.WeightedLayer)model.Layers.Single(l => l.Path == choice.Path).Layer).CompressedWeight!;
            Assert.Equal(choice.Bits, stored.Scheme.Bits);
            Assert.True(choice.Trace > 0, $"{choice.Path}: trace {choice.Trace}");
        }
        Assert.True(solution.AverageBits <= 4.5, $"average {solution.AverageBits}");
        Assert.Contains("[MixedPrecision] chose hidden1", report.ToString(), StringComparison.Ordinal);
        Assert.Contains($"[global::Condense.Override(\"hidden1\", Bits = {solution.Layers[0].Bits})]", solution.OverrideAttributes, StringComparison.Ordinal);
    }

    /// <summary>The solution minimizes the summed Omega over every allocation that meets the budget (brute force over 4 x 4).</summary>
    [Fact]
    public void AllocationIsOptimalForTheMeasuredSensitivity()
    {
        var model = new MixedDigitsBytes();
        var dense = fixture.Fresh();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var source = (Condense.Nn.WeightedLayer)dense.Layers[i].Layer;
            var target = (Condense.Nn.WeightedLayer)model.Layers[i].Layer;
            target.LoadWeight(source.Weight.Data);
            target.LoadBias(source.Bias!.Data);
        }
        var sensitivity = MixedPrecisionSensitivity.Measure(MixedDigitsBytes.Plan, model.Layers, model.Forward, fixture.Calibration(), new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 16 });
        var best = sensitivity.Allocate();
        Assert.True(best.PredictedBytes <= 6000);
        int[] bits = [2, 3, 4, 8];
        double bestOmega = double.PositiveInfinity;
        foreach (int a in bits)
            foreach (int b in bits)
            {
                MixedPrecisionSolution candidate;
                try { candidate = sensitivity.Evaluate(new Dictionary<string, int> { ["hidden1"] = a, ["hidden2"] = b }); }
                catch (MixedPrecisionBudgetException) { continue; }
                bestOmega = Math.Min(bestOmega, candidate.TotalOmega);
            }
        Assert.Equal(bestOmega, best.TotalOmega, 12);
        // Under this budget the answer mixes widths: uniform 8 does not fit, uniform 4 leaves bytes unused for a better mix.
        Assert.NotEqual(best.Layers[0].Bits, best.Layers[1].Bits);

        var report = model.Compress(Options(fixture.Calibration(), new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 16 }));
        Assert.Equal(best.BitsByPath, report.MixedPrecision!.BitsByPath);
        Assert.Equal(report.TotalBytesAfter, best.PredictedBytes);
    }

    /// <summary>
    /// The diagonal weighting measures Omega_i(b) = sum_j diag(H)_j e_j^2: not proportional to ||e||^2 as the trace form
    /// is, so the ratio of Omega between bit widths differs from the trace form's; the traces come from the same vectors
    /// and agree within their errors; the allocation is still the exact optimum, and Compress applies it.
    /// </summary>
    [Fact]
    public void DiagonalWeightingWeighsEachWeightsErrorByItsOwnCurvature()
    {
        var model = new MixedDigitsBytes();
        var dense = fixture.Fresh();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            var source = (Condense.Nn.WeightedLayer)dense.Layers[i].Layer;
            var target = (Condense.Nn.WeightedLayer)model.Layers[i].Layer;
            target.LoadWeight(source.Weight.Data);
            target.LoadBias(source.Bias!.Data);
        }
        var traceOptions = new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 16 };
        var diagonalOptions = new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 16, Weighting = SensitivityWeighting.Diagonal };
        var byTrace = MixedPrecisionSensitivity.Measure(MixedDigitsBytes.Plan, model.Layers, model.Forward, fixture.Calibration(), traceOptions);
        var byDiagonal = MixedPrecisionSensitivity.Measure(MixedDigitsBytes.Plan, model.Layers, model.Forward, fixture.Calibration(), diagonalOptions);
        for (int t = 0; t < byTrace.Layers.Count; t++)
        {
            var a = byTrace.Layers[t];
            var b = byDiagonal.Layers[t];
            Assert.Equal(a.SquaredError, b.SquaredError);
            Assert.True(Math.Abs(a.Trace - b.Trace) <= 4.5 * Math.Sqrt(a.TraceStandardError * a.TraceStandardError + b.TraceStandardError * b.TraceStandardError),
                $"{a.Path}: trace {a.Trace} +- {a.TraceStandardError} vs {b.Trace} +- {b.TraceStandardError}");
            Assert.All(b.Omega, o => Assert.True(o > 0));
            // The trace form's Omega(2)/Omega(8) is exactly the error ratio; the diagonal's weighs where the errors fall.
            double traceRatio = a.Omega[0] / a.Omega[^1], diagonalRatio = b.Omega[0] / b.Omega[^1];
            Assert.Equal(a.SquaredError[0] / a.SquaredError[^1], traceRatio, 6);
            Assert.True(Math.Abs(diagonalRatio / traceRatio - 1) > 1e-3, $"{a.Path}: the diagonal weighting gave the trace form's ratio {traceRatio}");
        }
        var best = byDiagonal.Allocate();
        double bestOmega = double.PositiveInfinity;
        foreach (int h1 in byDiagonal.Bits)
            foreach (int h2 in byDiagonal.Bits)
            {
                try { bestOmega = Math.Min(bestOmega, byDiagonal.Evaluate(new Dictionary<string, int> { ["hidden1"] = h1, ["hidden2"] = h2 }).TotalOmega); }
                catch (MixedPrecisionBudgetException) { }
            }
        Assert.Equal(bestOmega, best.TotalOmega, 12);
        var report = model.Compress(Options(fixture.Calibration(), diagonalOptions));
        Assert.Equal(best.BitsByPath, report.MixedPrecision!.BitsByPath);
    }

    /// <summary>
    /// The defaults are the Hessian quadratic form over widths x group sizes (docs/mixed-precision.md has the
    /// measurements behind them): Compress with default options reports such an allocation over those formats, exact in
    /// bytes, and the allocation is the knapsack optimum of the same measurement.
    /// </summary>
    [Fact]
    public void DefaultsUseTheHessianQuadraticFormOverWidthsAndGroupSizes()
    {
        var defaults = new MixedPrecisionOptions();
        Assert.Equal(SensitivityMethod.HessianQuadratic, defaults.Method);
        Assert.Equal([0, 16, 32, 64, 128, 256], defaults.GroupSizes);
        var model = fixture.Fresh();
        var report = model.Compress(new CompressionOptions { Calibration = fixture.Calibration() });
        var solution = report.MixedPrecision!;
        Assert.Equal(SensitivityMethod.HessianQuadratic, solution.Method);
        Assert.Equal(SensitivityLoss.OutputKl, solution.Loss);
        Assert.Equal(report.TotalBytesAfter, solution.PredictedBytes);
        var probe = fixture.Fresh();
        var measured = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, probe.Layers, probe.Forward, fixture.Calibration());
        Assert.Equal(SensitivityMethod.HessianQuadratic, measured.Method);
        Assert.All(measured.Layers, l => Assert.Equal([0, 32, 16], Enumerable.Range(0, l.Bits.Count).Select(l.GroupSizeAt).Distinct()));
        var best = measured.Allocate();
        Assert.Equal(best.BitsByPath, solution.BitsByPath);
        Assert.Equal(best.GroupSizesByPath, solution.GroupSizesByPath);
    }

    /// <summary>Same seed and same calibration data give the same traces and bits, at one thread and at two.</summary>
    [Fact]
    public void SameSeedSameCalibrationSameBitsAtAnyThreadCount()
    {
        int savedPool = WorkerPool.Shared.MaxDegreeOfParallelism, savedGemm = Gemm.MaxDegreeOfParallelism;
        var results = new List<MixedPrecisionSolution>();
        try
        {
            foreach (int threads in new[] { 1, 2, 2 })
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                Gemm.MaxDegreeOfParallelism = threads;
                results.Add(fixture.Fresh().Compress(Options(fixture.Calibration(labels: false))).MixedPrecision!);
            }
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            Gemm.MaxDegreeOfParallelism = savedGemm;
        }
        Assert.Equal(SensitivityLoss.OutputKl, results[0].Loss);
        foreach (var other in results.Skip(1))
        {
            Assert.Equal(results[0].BitsByPath, other.BitsByPath);
            Assert.Equal(results[0].Layers.Select(l => l.Trace), other.Layers.Select(l => l.Trace));
        }
        var reseeded = fixture.Fresh().Compress(Options(fixture.Calibration(labels: false), new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 16, Seed = 99 })).MixedPrecision!;
        Assert.NotEqual(results[0].Layers[0].Trace, reseeded.Layers[0].Trace);
    }

    [Fact]
    public void GivenAllocationIsAppliedAndCheckedAgainstTheBudget()
    {
        var model = fixture.Fresh();
        var report = model.Compress(Options(null, new MixedPrecisionOptions { Allocation = new Dictionary<string, int> { ["hidden1"] = 2, ["hidden2"] = 8 } }));
        Assert.Equal(2, report.MixedPrecision!.BitsByPath["hidden1"]);
        Assert.Equal(8, report.MixedPrecision.BitsByPath["hidden2"]);
        Assert.Equal(report.TotalBytesAfter, report.MixedPrecision.PredictedBytes);

        // 8 + 8 bits: (64x64 + 32x64) bytes + (64 + 32) scales = 6,336 bytes > floor(4.5 x 6,144 / 8) = 3,456: 2,880 over.
        var over = Assert.Throws<MixedPrecisionBudgetException>(() => fixture.Fresh().Compress(
            Options(null, new MixedPrecisionOptions { Allocation = new Dictionary<string, int> { ["hidden1"] = 8, ["hidden2"] = 8 } })));
        Assert.Equal(6336 - 3456, over.ShortfallBytes);
        Assert.Contains("2,880 bytes over the budget (AverageBits = 4.5 over 6,144 weights)", over.Message, StringComparison.Ordinal);

        // A sweep may lift the declared budget for one call.
        var lifted = fixture.Fresh().Compress(Options(null, new MixedPrecisionOptions
        {
            Allocation = new Dictionary<string, int> { ["hidden1"] = 8, ["hidden2"] = 8 }, AverageBits = 0, MaxBytes = 1 << 20,
        }));
        Assert.Equal(lifted.TotalBytesAfter, lifted.MixedPrecision!.PredictedBytes);
        Assert.Contains("8.26 b/w", lifted.ToString(), StringComparison.Ordinal);

        var unknown = Assert.Throws<ArgumentException>(() => fixture.Fresh().Compress(
            Options(null, new MixedPrecisionOptions { Allocation = new Dictionary<string, int> { ["hidden1"] = 3, ["hidden2"] = 8 } })));
        Assert.Contains("gives layer 'hidden1' 3 bits, which is not a candidate (2, 4, 8)", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingCalibrationAndUnreachableBudgetAreNamedErrors()
    {
        var missing = Assert.Throws<InvalidOperationException>(() => fixture.Fresh().Compress());
        Assert.Contains("Layer 'hidden1' gets its bits from [MixedPrecision] on MixedDigits", missing.Message, StringComparison.Ordinal);

        var model = fixture.Fresh();
        var sensitivity = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(), new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, GroupSizes = [0], Samples = 4 });
        // At 2 bits the hidden layers take 64x16 + 32x16 bytes + 96 scales x 2 = 1,728; the rest (int8 output, biases) 764.
        var e = Assert.Throws<MixedPrecisionBudgetException>(() => sensitivity.Allocate(maxBytes: 2000, averageBits: 0));
        Assert.Equal(1728 + 764 - 2000, e.ShortfallBytes);
        Assert.Contains("cannot be met", e.Message, StringComparison.Ordinal);
        Assert.Contains("492 bytes over", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadBeforeTheBitsAreWrittenBackSaysHowToFixIt()
    {
        var model = fixture.Fresh();
        model.Compress(Options(null, new MixedPrecisionOptions { Allocation = new Dictionary<string, int> { ["hidden1"] = 4, ["hidden2"] = 2 } }));
        string path = Path.Combine(fixture.Directory, "mixed.safetensors");
        model.Save(path);
        var e = Assert.Throws<Condense.IO.ModelFileException>(() => MixedDigits.Load(path));
        Assert.Contains("layer 'hidden1' gets its bits from [MixedPrecision] at Compress", e.Message, StringComparison.Ordinal);
        Assert.Contains("WritePartialClass", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PartialClassCarriesTheOverridesInTheModelsNamespace()
    {
        var solution = fixture.Fresh().Compress(Options(null, new MixedPrecisionOptions { Allocation = new Dictionary<string, int> { ["hidden1"] = 4, ["hidden2"] = 2 } })).MixedPrecision!;
        string file = solution.ToPartialClass(typeof(MixedDigits));
        Assert.Contains("namespace Condense.Tests.MixedPrecision\n{", file, StringComparison.Ordinal);
        Assert.Contains("    [global::Condense.Override(\"hidden1\", Bits = 4)]\n    [global::Condense.Override(\"hidden2\", Bits = 2)]\n    partial class MixedDigits\n", file, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => solution.ToPartialClass(typeof(MixedDigitsBytes)));
    }
}
