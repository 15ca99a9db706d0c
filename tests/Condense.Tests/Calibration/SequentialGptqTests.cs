using Condense.Calibration;
using Condense.Compression;
using Condense.Nn;
using Condense.Quantization;
using Condense.Tests.Quantization;

namespace Condense.Tests.Calibration;

/// <summary><see cref="GptqOptions.Sequential"/>: later blocks are calibrated on the output of the earlier, already quantized ones.</summary>
public sealed class SequentialGptqTests
{
    private static List<Tensor> Batches() =>
        Enumerable.Range(0, 2).Select(b => new Tensor(QuantTestData.Gaussian(70 + (ulong)b, 40 * 64), 40, 64)).ToList();

    private static byte[] Packed(DataAwareNet model, string path) =>
        ((GroupQuantizedWeight)((WeightedLayer)model.Layers.Single(l => l.Path == path).Layer).CompressedWeight!).Packed;

    private static Half[] Scales(DataAwareNet model, string path) =>
        ((GroupQuantizedWeight)((WeightedLayer)model.Layers.Single(l => l.Path == path).Layer).CompressedWeight!).Scales;

    [Fact]
    public void The_block_after_a_quantized_layer_is_calibrated_on_that_layers_dequantized_output()
    {
        var batches = Batches();
        var sequential = new DataAwareNet();
        sequential.Initialize(seed: 5);
        sequential.Compress(new CompressionOptions { Calibration = new CalibrationData(batches), Gptq = new GptqOptions { Sequential = true } });
        var plain = new DataAwareNet();
        plain.Initialize(seed: 5);
        plain.Compress(new CompressionOptions { Calibration = new CalibrationData(batches) });

        // By hand: 'input' (the model's own layer, the first group) from the dense model's statistics; then block.up from
        // statistics recorded with 'input' holding its dequantized GPTQ weight.
        var reference = new DataAwareNet();
        reference.Initialize(seed: 5);
        var layers = reference.Layers.Select(l => (WeightedLayer)l.Layer).ToList();
        int input = reference.Layers.ToList().FindIndex(l => l.Path == "input"), up = reference.Layers.ToList().FindIndex(l => l.Path == "block.up");
        var inputStats = CalibrationRecorder.Record(reference.Layers, [input], reference.Forward, new CalibrationData(batches))[0];
        var inputQuantized = Gptq.Quantize(layers[input].Weight.Data, 32, 64, new QuantizationScheme(8, 0, true), inputStats);
        var upWeight = layers[up].Weight.Data.ToArray();
        inputQuantized.Dequantize(layers[input].Weight.Data);
        var upStats = CalibrationRecorder.Record(reference.Layers, [up], reference.Forward, new CalibrationData(batches))[0];
        var upQuantized = Gptq.Quantize(upWeight, 64, 32, new QuantizationScheme(4, 16, true), upStats);

        Assert.Equal(inputQuantized.Packed, Packed(sequential, "input"));
        Assert.Equal(Packed(plain, "input"), Packed(sequential, "input"));
        Assert.Equal(upQuantized.Packed, Packed(sequential, "block.up"));
        Assert.Equal(upQuantized.Scales, Scales(sequential, "block.up"));
        // Other statistics, another weight: in its codes or (the scales being refit to the statistics) its scales.
        Assert.False(Packed(plain, "block.up").AsSpan().SequenceEqual(Packed(sequential, "block.up"))
            && Scales(plain, "block.up").AsSpan().SequenceEqual(Scales(sequential, "block.up")), "block.up came out as without sequential calibration");
    }

    [Fact]
    public void The_dense_weights_are_put_back_after_calibrating_even_when_compression_then_fails()
    {
        var model = new DataAwareNet();
        model.Initialize(seed: 6);
        var before = model.Layers.Select(l => ((WeightedLayer)l.Layer).Weight.Data.ToArray()).ToList();
        // The second pass (block's group, after 'input' was replaced) meets a NaN batch: a named error.
        var batches = Batches();
        int passes = 0;
        var error = Assert.Throws<InvalidDataException>(() => model.Compress(new CompressionOptions
        {
            Calibration = new CalibrationData(() => ++passes == 1 ? batches : CalibrationThenBad(batches)),
            Gptq = new GptqOptions { Sequential = true },
        }));
        Assert.Equal(2, passes);
        Assert.Contains("block.up", error.Message, StringComparison.Ordinal);
        var after = model.Layers.Select(l => ((WeightedLayer)l.Layer).Weight.Data.ToArray()).ToList();
        Assert.Equal(before, after);

        static IEnumerable<Tensor> CalibrationThenBad(List<Tensor> good)
        {
            foreach (var t in good) yield return t;
            yield return new Tensor(new float[3 * 64].Select(_ => float.NaN).ToArray(), 3, 64);
        }
    }

    private static WeightedLayer Layer(DataAwareNet model, string path) => (WeightedLayer)model.Layers.Single(l => l.Path == path).Layer;

    [Fact]
    public void The_full_precision_target_pairs_each_layers_inputs_with_the_dense_models()
    {
        var batches = Batches();
        var targeted = new DataAwareNet();
        targeted.Initialize(seed: 5);
        targeted.Compress(new CompressionOptions { Calibration = new CalibrationData(batches), Gptq = new GptqOptions { Sequential = true, FullPrecisionTarget = true } });
        var sequential = new DataAwareNet();
        sequential.Initialize(seed: 5);
        sequential.Compress(new CompressionOptions { Calibration = new CalibrationData(batches), Gptq = new GptqOptions { Sequential = true } });

        // By hand: block.up's dense-model inputs, then its inputs with 'input' quantized, paired row by row.
        var reference = new DataAwareNet();
        reference.Initialize(seed: 5);
        var layers = reference.Layers.Select(l => (WeightedLayer)l.Layer).ToList();
        int input = reference.Layers.ToList().FindIndex(l => l.Path == "input"), up = reference.Layers.ToList().FindIndex(l => l.Path == "block.up");
        var dense = CalibrationRecorder.CaptureInputs(reference.Layers, [up], reference.Forward, new CalibrationData(batches));
        var inputStats = CalibrationRecorder.Record(reference.Layers, [input], reference.Forward, new CalibrationData(batches))[0];
        var upWeight = layers[up].Weight.Data.ToArray();
        Gptq.Quantize(layers[input].Weight.Data, 32, 64, new QuantizationScheme(8, 0, true), inputStats).Dequantize(layers[input].Weight.Data);
        var upStats = CalibrationRecorder.Record(reference.Layers, [up], reference.Forward, new CalibrationData(batches), dense)[0];
        Assert.NotNull(upStats.ReferenceCross);
        var upQuantized = Gptq.Quantize(upWeight, 64, 32, new QuantizationScheme(4, 16, true), upStats);

        // The first group has no quantized layer before it: the same as without the target.
        Assert.Equal(Packed(sequential, "input"), Packed(targeted, "input"));
        Assert.Equal(upQuantized.Packed, Packed(targeted, "block.up"));
        Assert.Equal(upQuantized.Scales, Scales(targeted, "block.up"));
        Assert.False(Packed(sequential, "block.up").AsSpan().SequenceEqual(Packed(targeted, "block.up"))
            && Scales(sequential, "block.up").AsSpan().SequenceEqual(Scales(targeted, "block.up")), "block.up came out as without the full-precision target");
        // The dense weights and biases were put back before Compress stored anything.
        Assert.Equal(reference.Layers.Count, targeted.Layers.Count);
    }

    [Fact]
    public void Bias_correction_gives_the_first_layer_the_dense_models_mean_output_over_the_calibration_rows()
    {
        var batches = Batches();
        var model = new DataAwareNet();
        model.Initialize(seed: 7);
        var dense = new DataAwareNet();
        dense.Initialize(seed: 7);
        var plain = new DataAwareNet();
        plain.Initialize(seed: 7);
        model.Compress(new CompressionOptions { Calibration = new CalibrationData(batches), Gptq = new GptqOptions { BiasCorrection = true } });
        plain.Compress(new CompressionOptions { Calibration = new CalibrationData(batches) });
        // The dequantized weight and the stored bias against the dense layer (float64; the kernels' int8 activations left out).
        double MeanError(DataAwareNet compressed)
        {
            var layer = Layer(compressed, "input");
            var restored = new float[32 * 64];
            layer.CompressedWeight!.Dequantize(restored);
            var weight = Layer(dense, "input").Weight.Data;
            var sum = new double[32];
            int rows = 0;
            foreach (var batch in batches)
            {
                for (int r = 0; r < batch.Shape[0]; r++)
                    for (int o = 0; o < 32; o++)
                    {
                        double d = layer.Bias!.Data[o] - Layer(dense, "input").Bias!.Data[o];
                        for (int i = 0; i < 64; i++) d += ((double)restored[o * 64 + i] - weight[o * 64 + i]) * batch.Data[r * 64 + i];
                        sum[o] += d;
                    }
                rows += batch.Shape[0];
            }
            return sum.Max(v => Math.Abs(v / rows));
        }
        double before = MeanError(plain), after = MeanError(model);
        Assert.True(before > 1e-4, $"8-bit GPTQ did not move the mean output ({before})");
        Assert.True(after < 1e-5, $"mean output error {after} after bias correction (without: {before})");
        Assert.Equal(Packed(plain, "input"), Packed(model, "input"));
    }

    [Fact]
    public void Sequential_calibration_with_bias_correction_and_the_full_precision_target_gives_the_same_bits_at_one_and_two_threads()
    {
        var batches = Batches();
        (byte[][] Packed, float[][] Biases) Run(int threads)
        {
            int savedGemm = Condense.Kernels.Gemm.MaxDegreeOfParallelism, savedPool = Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism;
            Condense.Kernels.Gemm.MaxDegreeOfParallelism = threads;
            Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            try
            {
                var model = new DataAwareNet();
                model.Initialize(seed: 8);
                model.Compress(new CompressionOptions
                {
                    Calibration = new CalibrationData(batches),
                    Gptq = new GptqOptions { Sequential = true, FullPrecisionTarget = true, BiasCorrection = true },
                });
                string[] paths = ["input", "block.up"];
                return (paths.Select(p => Packed(model, p)).ToArray(), paths.Select(p => Layer(model, p).Bias!.Data.ToArray()).ToArray());
            }
            finally
            {
                Condense.Kernels.Gemm.MaxDegreeOfParallelism = savedGemm;
                Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            }
        }
        var one = Run(1);
        var two = Run(2);
        Assert.Equal(one.Packed, two.Packed);
        Assert.Equal(one.Biases, two.Biases);
    }
}
