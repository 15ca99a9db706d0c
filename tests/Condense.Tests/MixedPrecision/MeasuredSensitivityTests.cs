using Condense.Calibration;
using Condense.Compression;
using Condense.Kernels;
using Condense.MixedPrecision;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Tests.MixedPrecision;

/// <summary><see cref="SensitivityMethod.MeasuredLoss"/>: Omega is the loss increase with one layer alone quantized.</summary>
public sealed class MeasuredSensitivityTests(MixedDigitsFixture fixture) : IClassFixture<MixedDigitsFixture>
{
    private static readonly MixedPrecisionOptions Measured = new() { Method = SensitivityMethod.MeasuredLoss };

    /// <summary>
    /// Each Omega equals the mean KL(float32 outputs || outputs with that layer alone at b bits) over the calibration rows,
    /// computed here from the model's outputs with a separate KL; the model's weights are left bit for bit.
    /// </summary>
    [Fact]
    public void OmegaIsTheKlIncreaseWithThatLayerAloneQuantized()
    {
        var model = fixture.Fresh();
        var calibration = fixture.Calibration();
        var before = model.Layers.Select(l => (float[])((WeightedLayer)l.Layer).Weight.Data.Clone()).ToList();
        var sensitivity = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, calibration, Measured);

        // Labelled data, Auto loss: the measured method still uses KL to the float32 outputs (labels only add noise to an increase).
        Assert.Equal(SensitivityLoss.OutputKl, sensitivity.Loss);
        Assert.Equal(SensitivityMethod.MeasuredLoss, sensitivity.Method);
        for (int i = 0; i < before.Count; i++) Assert.Equal(before[i], ((WeightedLayer)model.Layers[i].Layer).Weight.Data);

        var inputs = calibration.LabelledBatches().Select(b => b.Input).ToList();
        var reference = Outputs(fixture.Fresh(), inputs);
        foreach (var layer in sensitivity.Layers)
        {
            Assert.True(double.IsNaN(layer.Trace), $"{layer.Path}: no trace is estimated, got {layer.Trace}");
            for (int k = 0; k < layer.Bits.Count; k++)
            {
                var quantized = fixture.Fresh();
                var weight = ((WeightedLayer)quantized.Layers[layer.LayerIndex].Layer).Weight.Data;
                var plan = MixedDigits.Plan.Layers[layer.LayerIndex];
                GroupQuantizedWeight.Quantize((float[])weight.Clone(), plan.OutFeatures, plan.InFeatures, MixedPrecisionSensitivity.Scheme(layer.Bits[k], layer.GroupSizeAt(k)), QuantizationRounding.MseClip)
                    .Dequantize(weight);
                double expected = MeanKl(reference, Outputs(quantized, inputs));
                Assert.True(Math.Abs(layer.Omega[k] - expected) <= 1e-6 * expected + 1e-12, $"{layer.Path} at {layer.Bits[k]} bits, group {layer.GroupSizeAt(k)}: Omega {layer.Omega[k]}, KL {expected}");
            }
            // Fewer bits, larger output change: the 2-bit layer moves the outputs far more than the 8-bit one.
            Assert.True(layer.Omega[0] > 10 * layer.Omega[^1], $"{layer.Path}: Omega {string.Join(", ", layer.Omega)}");
            Assert.All(layer.Omega, o => Assert.True(o >= 0));
        }
        var best = sensitivity.Allocate();
        double bestOmega = double.PositiveInfinity;
        var (first, second) = (sensitivity.Layers[0], sensitivity.Layers[1]);
        for (int i = 0; i < first.Bits.Count; i++)
            for (int j = 0; j < second.Bits.Count; j++)
            {
                try
                {
                    bestOmega = Math.Min(bestOmega, sensitivity.Evaluate(new Dictionary<string, int> { [first.Path] = first.Bits[i], [second.Path] = second.Bits[j] }, groupSizes:
                        new Dictionary<string, int> { [first.Path] = first.GroupSizeAt(i), [second.Path] = second.GroupSizeAt(j) }).TotalOmega);
                }
                catch (MixedPrecisionBudgetException) { }
            }
        Assert.Equal(bestOmega, best.TotalOmega, 15);
    }

    /// <summary>With an explicit cross-entropy loss, Omega is the increase of the labelled cross-entropy over float32 (it can be of either sign).</summary>
    [Fact]
    public void CrossEntropyOmegaIsTheLabelledLossIncrease()
    {
        var model = fixture.Fresh();
        var calibration = fixture.Calibration();
        var sensitivity = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, calibration,
            new MixedPrecisionOptions { Method = SensitivityMethod.MeasuredLoss, Loss = SensitivityLoss.CrossEntropy });
        Assert.Equal(SensitivityLoss.CrossEntropy, sensitivity.Loss);
        var batches = calibration.LabelledBatches().ToList();
        double dense = MeanCrossEntropy(Outputs(fixture.Fresh(), batches.Select(b => b.Input).ToList()), batches.Select(b => b.Labels!).ToList());
        var layer = sensitivity.Layers[0];
        var quantized = fixture.Fresh();
        var weight = ((WeightedLayer)quantized.Layers[layer.LayerIndex].Layer).Weight.Data;
        var plan = MixedDigits.Plan.Layers[layer.LayerIndex];
        GroupQuantizedWeight.Quantize((float[])weight.Clone(), plan.OutFeatures, plan.InFeatures, MixedPrecisionSensitivity.Scheme(layer.Bits[0]), QuantizationRounding.MseClip).Dequantize(weight);
        double expected = MeanCrossEntropy(Outputs(quantized, batches.Select(b => b.Input).ToList()), batches.Select(b => b.Labels!).ToList()) - dense;
        Assert.Equal(expected, layer.Omega[0], 9);
    }

    /// <summary>Through Compress: the measured allocation is applied, reported as measured, written back as such, and the same at one and two threads.</summary>
    [Fact]
    public void CompressAppliesTheMeasuredAllocationTheSameAtAnyThreadCount()
    {
        int savedPool = WorkerPool.Shared.MaxDegreeOfParallelism, savedGemm = Gemm.MaxDegreeOfParallelism;
        var results = new List<(MixedPrecisionSolution Solution, CompressionReport Report)>();
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                Gemm.MaxDegreeOfParallelism = threads;
                var report = fixture.Fresh().Compress(new CompressionOptions { Calibration = fixture.Calibration(), MixedPrecision = Measured });
                results.Add((report.MixedPrecision!, report));
            }
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            Gemm.MaxDegreeOfParallelism = savedGemm;
        }
        var (first, firstReport) = results[0];
        Assert.Equal(SensitivityMethod.MeasuredLoss, first.Method);
        Assert.Equal(first.BitsByPath, results[1].Solution.BitsByPath);
        Assert.Equal(first.Layers.Select(l => l.Omega), results[1].Solution.Layers.Select(l => l.Omega));
        Assert.Equal(firstReport.TotalBytesAfter, first.PredictedBytes);

        var probe = fixture.Fresh();
        var expected = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, probe.Layers, probe.Forward, fixture.Calibration(), Measured).Allocate();
        Assert.Equal(expected.BitsByPath, first.BitsByPath);
        Assert.Contains("measured increase of the KL divergence", first.ToPartialClass(typeof(MixedDigits)), StringComparison.Ordinal);
    }

    /// <summary>The measured loss needs forward passes only: inside Tensor.NoGrad() it gives the same numbers.</summary>
    [Fact]
    public void MeasuredLossWorksWithoutGradients()
    {
        var model = fixture.Fresh();
        var outside = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(), Measured);
        MixedPrecisionSensitivity inside;
        using (Tensor.NoGrad())
            inside = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(), Measured);
        Assert.Equal(outside.Layers.SelectMany(l => l.Omega), inside.Layers.SelectMany(l => l.Omega));
        using (Tensor.NoGrad())
            Assert.Throws<InvalidOperationException>(() => MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(),
                new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, Samples = 2 }));
    }

    /// <summary>A label outside the model's outputs is a named error, not an index exception.</summary>
    [Fact]
    public void LabelOutsideTheOutputsIsANamedError()
    {
        var model = fixture.Fresh();
        var good = fixture.Calibration().LabelledBatches().First();
        var labels = (int[])good.Labels!.Clone();
        labels[3] = 10;
        var data = new CalibrationData([good.Input], [labels]);
        var e = Assert.Throws<InvalidDataException>(() => MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, data,
            new MixedPrecisionOptions { Method = SensitivityMethod.MeasuredLoss, Loss = SensitivityLoss.CrossEntropy }));
        Assert.Contains("row 3 has label 10", e.Message, StringComparison.Ordinal);
    }

    private static List<float[]> Outputs(MixedDigits model, List<Tensor> inputs)
    {
        using (Tensor.NoGrad())
            return inputs.Select(x => (float[])model.Forward(x).Data.Clone()).ToList();
    }

    private static double[] Softmax(float[] logits, int offset, int classes)
    {
        double max = double.NegativeInfinity;
        for (int c = 0; c < classes; c++) max = Math.Max(max, logits[offset + c]);
        var p = new double[classes];
        double sum = 0;
        for (int c = 0; c < classes; c++) sum += p[c] = Math.Exp(logits[offset + c] - max);
        for (int c = 0; c < classes; c++) p[c] /= sum;
        return p;
    }

    private static double MeanKl(List<float[]> reference, List<float[]> outputs)
    {
        double total = 0;
        long rows = 0;
        for (int b = 0; b < reference.Count; b++)
            for (int o = 0; o < reference[b].Length; o += 10, rows++)
            {
                var p = Softmax(reference[b], o, 10);
                var q = Softmax(outputs[b], o, 10);
                for (int c = 0; c < 10; c++) total += p[c] * Math.Log(p[c] / q[c]);
            }
        return total / rows;
    }

    private static double MeanCrossEntropy(List<float[]> outputs, List<int[]> labels)
    {
        double total = 0;
        long rows = 0;
        for (int b = 0; b < outputs.Count; b++)
            for (int r = 0; r < labels[b].Length; r++, rows++)
                total -= Math.Log(Softmax(outputs[b], r * 10, 10)[labels[b][r]]);
        return total / rows;
    }
}
