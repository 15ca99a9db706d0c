using Condense.Calibration;
using Condense.Compression;
using Condense.Kernels;
using Condense.LowRank;
using Condense.Nn;
using Condense.Quantization;
using Condense.Tests.Quantization;

namespace Condense.Tests.Calibration;

/// <summary>The generated Compress of data-aware plans: calibrates first, then GPTQ / activation-aware SVD per layer.</summary>
public sealed class DataAwareCompressTests
{
    private static List<Tensor> Batches(ulong seed, int count, int rows, int width) =>
        Enumerable.Range(0, count).Select(b => new Tensor(QuantTestData.Gaussian(seed + (ulong)b, rows * width), rows, width)).ToList();

    private static float[] Dequantized(WeightedLayer layer)
    {
        var storage = layer.CompressedWeight!;
        var values = new float[(long)layer.OutFeatures * layer.InFeatures];
        storage.Dequantize(values);
        return values;
    }

    [Fact]
    public void The_plan_names_its_data_aware_layers()
    {
        Assert.True(DataAwareMlp.Plan.NeedsCalibration);
        Assert.Equal(["hidden", "middle", "output"], DataAwareMlp.Plan.CalibratedLayers);
        Assert.Equal(["input", "block.up", "block.down"], DataAwareNet.Plan.CalibratedLayers);
        Assert.False(GptqMlp.Plan.NeedsCalibration);
        Assert.Contains("hidden (GPTQ), middle (activation-aware SVD), output (GPTQ)", DataAwareMlp.Plan.ToMarkdown(), StringComparison.Ordinal);
    }

    [Fact]
    public void Compress_gives_each_layer_exactly_what_its_method_computes_from_the_recorded_statistics()
    {
        var model = new DataAwareMlp();
        model.Initialize(seed: 4);
        var reference = new DataAwareMlp();
        reference.Initialize(seed: 4);
        var batches = Batches(40, 3, 50, 64);
        var progress = new List<CalibrationProgress>();
        var report = model.Compress(new CompressionOptions { Calibration = new CalibrationData(batches) { Progress = new SyncProgress(progress) } });

        // What each method gives on the statistics of the dense model's own Forward.
        var layers = reference.Layers.Select(l => (WeightedLayer)l.Layer).ToList();
        var stats = CalibrationRecorder.Record(reference.Layers, [0, 1, 2], reference.Forward, new CalibrationData(batches));
        var gptq = Gptq.Quantize(layers[0].Weight.Data, 64, 64, new QuantizationScheme(4, 16, true), stats[0]);
        var asvd = ActivationAwareSvd.Factor(layers[1].Weight.Data, 48, 64, 8, stats[1], Rng.Derive(LowRankWeight.DefaultSeed, "middle"));
        var corrected = LowRankCorrectedWeight.FitCorrection(layers[2].Weight.Data,
            Gptq.Quantize(layers[2].Weight.Data, 10, 48, new QuantizationScheme(3, 0, true), stats[2]), 2, Rng.Derive(LowRankWeight.DefaultSeed, "output"));

        var compressed = model.Layers.Select(l => (WeightedLayer)l.Layer).ToList();
        Assert.Equal(gptq.Packed, ((GroupQuantizedWeight)compressed[0].CompressedWeight!).Packed);
        Assert.Equal(asvd.U, ((LowRankWeight)compressed[1].CompressedWeight!).U);
        Assert.Equal(asvd.V, ((LowRankWeight)compressed[1].CompressedWeight!).V);
        var stored = (LowRankCorrectedWeight)compressed[2].CompressedWeight!;
        Assert.Equal(corrected.Quantized.Packed, stored.Quantized.Packed);
        Assert.Equal(corrected.Correction.U, stored.Correction.U);
        Assert.IsType<GroupQuantizedWeight>(compressed[3].CompressedWeight);
        Assert.Equal(DataAwareMlp.PlannedBytes, report.TotalBytesAfter);
        // One report per calibrated layer and batch (the unused layer is not recorded).
        Assert.Equal(3 * 3, progress.Count);
        Assert.DoesNotContain(progress, p => p.Path == "unused");
    }

    [Fact]
    public void Same_seed_and_calibration_give_the_same_bits_at_one_and_two_threads()
    {
        var batches = Batches(50, 2, 64, 64);
        List<float[]> Run(int threads)
        {
            int saved = Gemm.MaxDegreeOfParallelism, savedPool = WorkerPool.Shared.MaxDegreeOfParallelism;
            Gemm.MaxDegreeOfParallelism = threads;
            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            try
            {
                var model = new DataAwareMlp();
                model.Initialize(seed: 9);
                model.Compress(new CompressionOptions { Calibration = new CalibrationData(batches), Gptq = new GptqOptions { ActOrder = true } });
                return model.Layers.Select(l => Dequantized((WeightedLayer)l.Layer)).ToList();
            }
            finally
            {
                Gemm.MaxDegreeOfParallelism = saved;
                WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            }
        }
        var one = Run(1);
        var two = Run(2);
        for (int i = 0; i < one.Count; i++) Assert.Equal(one[i], two[i]);
    }

    [Fact]
    public void Without_calibration_data_compress_names_the_activation_aware_layer_and_changes_nothing()
    {
        var model = new AsvdOnly();
        model.Initialize(seed: 1);
        var options = new CompressionOptions();   // through a variable: the build cannot know (CND0034 covers literals)
        var e = Assert.Throws<InvalidOperationException>(() => model.Compress(options));
        Assert.Contains("Layer 'layer'", e.Message, StringComparison.Ordinal);
        Assert.Contains("ActivationAwareSvd", e.Message, StringComparison.Ordinal);
        Assert.Contains("Calibration = new CalibrationData(batches)", e.Message, StringComparison.Ordinal);
        Assert.Null(((WeightedLayer)model.Layers[0].Layer).CompressedWeight);
    }

    [Fact]
    public void A_nested_block_without_forward_is_calibrated_by_its_container()
    {
        var net = new DataAwareNet();
        net.Initialize(seed: 2);
        var batches = Batches(60, 2, 40, 64);
        Tensor dense;
        using (Tensor.NoGrad()) dense = net.Forward(batches[0]);
        var report = net.Compress(new CompressionOptions { Calibration = new CalibrationData(batches) });
        Assert.Equal(DataAwareNet.PlannedBytes, report.TotalBytesAfter);
        Assert.IsType<LowRankWeight>(((WeightedLayer)net.Layers[2].Layer).CompressedWeight);
        Tensor compressed;
        using (Tensor.NoGrad()) compressed = net.Forward(batches[0]);
        Assert.All(compressed.Data, v => Assert.True(float.IsFinite(v)));

        // Its own Compress cannot calibrate: no Forward(Tensor) to run. The build reports the call (CND0035); the
        // run-time error is checked here with the diagnostic suppressed.
        var block = new DataAwareBlock();
        block.Initialize(seed: 2);
        var options = new CompressionOptions { Calibration = new CalibrationData(batches) };
#pragma warning disable CND0035
        var e = Assert.Throws<InvalidOperationException>(() => block.Compress(options));
#pragma warning restore CND0035
        Assert.Contains("Layer 'up'", e.Message, StringComparison.Ordinal);
        Assert.Contains("declares no 'public Tensor Forward(Tensor x)'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_calibration_batch_of_the_wrong_width_names_the_layer_through_compress()
    {
        var model = new DataAwareMlp();
        model.Initialize(seed: 3);
        var batches = Batches(70, 1, 4, 60);
        var e = Assert.Throws<InvalidDataException>(() => model.Compress(new CompressionOptions { Calibration = new CalibrationData(batches) }));
        Assert.Contains("'hidden'", e.Message, StringComparison.Ordinal);
        Assert.Contains("width 64", e.Message, StringComparison.Ordinal);
        Assert.Contains("width 60", e.Message, StringComparison.Ordinal);
    }

    private sealed class SyncProgress(List<CalibrationProgress> reports) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => reports.Add(value);
    }
}
