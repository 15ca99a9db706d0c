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
}
