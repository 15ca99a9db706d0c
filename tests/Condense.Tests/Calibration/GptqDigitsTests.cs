using Condense.Calibration;
using Condense.Compression;
using Condense.Data;
using Condense.Nn;
using Condense.Quantization;
using Condense.Training;
using Xunit.Abstractions;

namespace Condense.Tests.Calibration;

/// <summary>Trains <see cref="GptqMlp"/> on the digits once for the GPTQ evidence tests.</summary>
public sealed class GptqDigitsFixture
{
    public GptqDigitsFixture()
    {
        var all = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 11);
        (Train, Test) = all.Split(1400);
        Model = new GptqMlp();
        Model.Initialize(seed: 5);
        Classifier.Train(Model, Model.Forward, Train, new TrainingOptions { Epochs = 20, BatchSize = 32, LearningRate = 2e-3f, Seed = 5 });
        DenseAccuracy = Classifier.Accuracy(Classifier.Predict(Model.Forward, Test), Test.Labels);
    }

    public Dataset Train { get; }
    public Dataset Test { get; }
    public GptqMlp Model { get; }
    public double DenseAccuracy { get; }

    /// <summary>The first <paramref name="rows"/> training samples as batches of 128: the calibration set.</summary>
    public CalibrationData Calibration(int rows) => new(() => Enumerable.Range(0, (rows + 127) / 128).Select(b =>
    {
        int start = b * 128, count = Math.Min(128, rows - start);
        return new Tensor(Train.Features.AsSpan(start * 64, count * 64).ToArray(), count, 64);
    }));
}

public sealed class GptqDigitsTests(GptqDigitsFixture fixture, ITestOutputHelper output) : IClassFixture<GptqDigitsFixture>
{
    /// <summary>Each layer's input on the held-out digits (the dense model's activations).</summary>
    private List<float[]> HeldOutInputs()
    {
        var layers = fixture.Model.Layers.Select(l => (Linear)l.Layer).ToList();
        var x = new Tensor(fixture.Test.Features.ToArray(), fixture.Test.Count, 64);
        var inputs = new List<float[]>();
        using (Tensor.NoGrad())
        {
            for (int i = 0; i < layers.Count; i++)
            {
                inputs.Add(x.Data);
                if (i + 1 < layers.Count) x = Ops.Relu(layers[i].Forward(x));
            }
        }
        return inputs;
    }

    /// <summary>||X W^T - X Q^T|| / ||X W^T|| over the held-out rows.</summary>
    private static double OutputError(float[] weight, IWeightStorage quantized, float[] inputs, int outFeatures, int inFeatures)
    {
        var restored = new float[weight.Length];
        quantized.Dequantize(restored);
        int samples = inputs.Length / inFeatures;
        double diff = 0, norm = 0;
        for (int s = 0; s < samples; s++)
            for (int o = 0; o < outFeatures; o++)
            {
                double y = 0, yq = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    y += (double)inputs[s * inFeatures + i] * weight[o * inFeatures + i];
                    yq += (double)inputs[s * inFeatures + i] * restored[o * inFeatures + i];
                }
                diff += (y - yq) * (y - yq);
                norm += y * y;
            }
        return Math.Sqrt(diff / norm);
    }

    [Fact]
    public void Gptq_has_lower_held_out_layer_output_error_than_round_to_nearest_at_int3_and_int4()
    {
        var stats = CalibrationRecorder.Record(fixture.Model.Layers, [0, 1, 2], fixture.Model.Forward, fixture.Calibration(512));
        var heldOut = HeldOutInputs();
        output.WriteLine($"dense accuracy {fixture.DenseAccuracy:P1}; calibration 512 training rows, held-out {fixture.Test.Count} test rows");
        output.WriteLine("layer    in   scheme          RTN err   GPTQ err  GPTQ+act  ratio");
        for (int l = 0; l < 3; l++)
        {
            var layer = (Linear)fixture.Model.Layers[l].Layer;
            var w = layer.Weight.Data;
            foreach (int bits in new[] { 3, 4 })
                foreach (int groupSize in new[] { 64, 0 })
                {
                    var scheme = new QuantizationScheme(bits, groupSize, Symmetric: true);
                    double rtn = OutputError(w, GroupQuantizedWeight.Quantize(w, layer.OutFeatures, layer.InFeatures, scheme), heldOut[l], layer.OutFeatures, layer.InFeatures);
                    double gptq = OutputError(w, Gptq.Quantize(w, layer.OutFeatures, layer.InFeatures, scheme, stats[l]), heldOut[l], layer.OutFeatures, layer.InFeatures);
                    double act = OutputError(w, Gptq.Quantize(w, layer.OutFeatures, layer.InFeatures, scheme, stats[l], new GptqOptions { ActOrder = true }), heldOut[l], layer.OutFeatures, layer.InFeatures);
                    output.WriteLine($"{fixture.Model.Layers[l].Path,-7} {layer.InFeatures,4}  {scheme.FormatName,-14} {rtn,8:P2}  {gptq,8:P2}  {act,8:P2}  {gptq / rtn,5:F2}");
                    Assert.True(gptq < rtn, $"{fixture.Model.Layers[l].Path} {scheme.FormatName}: GPTQ {gptq:P2} should be below RTN {rtn:P2} on held-out inputs");
                    Assert.True(act < rtn, $"{fixture.Model.Layers[l].Path} {scheme.FormatName}: GPTQ act-order {act:P2} should be below RTN {rtn:P2}");
                }
        }
    }

    [Fact]
    public void A_session_compresses_the_model_with_gptq_and_a_low_rank_correction_fitted_after_it()
    {
        // Two copies of the trained model: one through RTN, one through GPTQ, same plan (int4 g64, output + rank 4).
        GptqMlp Copy()
        {
            var copy = new GptqMlp();
            for (int l = 0; l < 3; l++)
            {
                var source = (Linear)fixture.Model.Layers[l].Layer;
                var target = (Linear)copy.Layers[l].Layer;
                target.LoadWeight(source.Weight.Data);
                target.LoadBias(source.Bias!.Data);
            }
            return copy;
        }
        var rtnModel = Copy();
        var rtnSession = new CompressionSession(GptqMlp.Plan, null, null);
        rtnSession.Quantize<Bits4>((Linear)rtnModel.Layers[0].Layer, 0);
        rtnSession.Quantize<Bits4>((Linear)rtnModel.Layers[1].Layer, 1);
        rtnSession.QuantizeWithLowRankCorrection<Bits4>((Linear)rtnModel.Layers[2].Layer, 2);
        var rtnReport = rtnSession.Complete();

        var gptqModel = Copy();
        var progress = new List<CalibrationProgress>();
        var calibration = fixture.Calibration(512);
        var options = new CompressionOptions { Calibration = new CalibrationData(() => CalibrationBatches(calibration)) { Progress = new ListProgress(progress) } };
        var session = new CompressionSession(GptqMlp.Plan, options, null);
        session.Calibrate(gptqModel.Layers, gptqModel.Forward, [0, 1, 2]);
        session.QuantizeGptq<Bits4>((Linear)gptqModel.Layers[0].Layer, 0);
        session.QuantizeGptq<Bits4>((Linear)gptqModel.Layers[1].Layer, 1);
        session.QuantizeGptqWithLowRankCorrection<Bits4>((Linear)gptqModel.Layers[2].Layer, 2);
        var report = session.Complete();

        Assert.Equal(3 * 4, progress.Count);
        Assert.IsType<GroupQuantizedWeight>(((Linear)gptqModel.Layers[0].Layer).CompressedWeight);
        var corrected = Assert.IsType<Condense.LowRank.LowRankCorrectedWeight>(((Linear)gptqModel.Layers[2].Layer).CompressedWeight);
        // The correction is fitted to what GPTQ left: quantized part + correction is closer to W than the quantized part.
        var w = ((Linear)fixture.Model.Layers[2].Layer).Weight.Data;
        var q = new float[w.Length];
        var full = new float[w.Length];
        corrected.Quantized.Dequantize(q);
        corrected.Dequantize(full);
        double QErr(float[] r) => Math.Sqrt(w.Select((v, i) => (double)(v - r[i]) * (v - r[i])).Sum());
        Assert.True(QErr(full) < QErr(q), $"correction should reduce the residual: {QErr(full)} vs {QErr(q)}");
        Assert.Equal(rtnReport.TotalBytesAfter, report.TotalBytesAfter);

        double rtnAccuracy = Classifier.Accuracy(Classifier.Predict(rtnModel.Forward, fixture.Test), fixture.Test.Labels);
        double gptqAccuracy = Classifier.Accuracy(Classifier.Predict(gptqModel.Forward, fixture.Test), fixture.Test.Labels);
        output.WriteLine($"accuracy: dense {fixture.DenseAccuracy:P2}, RTN int4-g64 {rtnAccuracy:P2}, GPTQ int4-g64 {gptqAccuracy:P2}");
        output.WriteLine(report.ToString());
        Assert.True(gptqAccuracy >= fixture.DenseAccuracy - 0.03, $"GPTQ int4 accuracy {gptqAccuracy:P2} vs dense {fixture.DenseAccuracy:P2}");
    }

    private static IEnumerable<Tensor> CalibrationBatches(CalibrationData data) => data.Batches();

    private sealed class ListProgress(List<CalibrationProgress> reports) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => reports.Add(value);
    }
}
