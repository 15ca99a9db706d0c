using Condense.Calibration;
using Condense.Compression;
using Condense.Data;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using Condense.Tests.Quantization;

namespace Condense.Tests.Calibration;

public sealed class CalibrationTests
{
    private static List<Tensor> Batches(ulong seed, int count, int rows, int width) =>
        Enumerable.Range(0, count).Select(b => new Tensor(QuantTestData.Gaussian(seed + (ulong)b, rows * width), rows, width)).ToList();

    /// <summary>sum_s x_s x_s^T in double, the definition.</summary>
    private static double[] DirectXtX(IEnumerable<float[]> rowsList, int width)
    {
        var xtx = new double[width * width];
        foreach (var rows in rowsList)
            for (int s = 0; s < rows.Length / width; s++)
                for (int i = 0; i < width; i++)
                    for (int j = 0; j < width; j++) xtx[i * width + j] += (double)rows[s * width + i] * rows[s * width + j];
        return xtx;
    }

    private static void AssertClose(double[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(Math.Abs);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 * scale, $"[{i}]: expected {expected[i]}, recorded {actual[i]}");
    }

    [Fact]
    public void Records_each_layers_input_second_moment_and_norms_from_the_models_own_forward()
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var batches = Batches(40, 3, 17, 64);
        var stats = CalibrationRecorder.Record(model.Layers, [0, 1, 2], model.Forward, new CalibrationData(batches));

        var hidden = (Linear)model.Layers[0].Layer;
        var middle = (Linear)model.Layers[1].Layer;
        var firstInputs = batches.Select(b => b.Data).ToList();
        var secondInputs = batches.Select(b => Ops.Relu(hidden.Forward(b)).Data).ToList();
        var thirdInputs = batches.Select(b => Ops.Relu(middle.Forward(Ops.Relu(hidden.Forward(b)))).Data).ToList();
        AssertClose(DirectXtX(firstInputs, 64), stats[0].XtX);
        AssertClose(DirectXtX(secondInputs, 256), stats[1].XtX);
        AssertClose(DirectXtX(thirdInputs, 128), stats[2].XtX);
        Assert.All(stats, s => Assert.Equal(3 * 17, s.SampleCount));
        Assert.Equal(model.Layers[1].Path, stats[1].Path);

        var norms = stats[1].ColumnNorms();
        for (int c = 0; c < 256; c++)
        {
            double direct = Math.Sqrt(secondInputs.Sum(rows => Enumerable.Range(0, 17).Sum(s => (double)rows[s * 256 + c] * rows[s * 256 + c])));
            Assert.True(Math.Abs(direct - norms[c]) <= 1e-4 * (1 + direct), $"norm of column {c}: {norms[c]} vs {direct}");
        }
        // Recording leaves no observer behind: Forward is plain again.
        Assert.All(model.Layers, l => Assert.Null(((WeightedLayer)l.Layer).InputObserver));
    }

    [Fact]
    public void A_convolution_records_its_im2col_rows()
    {
        var model = new CalibrationCnn();
        model.Initialize(seed: 4);
        var batches = Batches(50, 2, 5, 64);
        var stats = CalibrationRecorder.Record(model.Layers, [0], model.Forward, new CalibrationData(batches));
        var conv = (Conv2d)model.Layers[0].Layer;
        var rows = batches.Select(b => Ops.Im2Col(Ops.Reshape(b, 5, 1, 8, 8), conv.KernelSize, conv.Stride, conv.Padding, out _, out _).Data).ToList();
        Assert.Equal(conv.InFeatures, stats[0].InFeatures);
        Assert.Equal(2 * 5 * 8 * 8, stats[0].SampleCount);
        AssertClose(DirectXtX(rows, conv.InFeatures), stats[0].XtX);
    }

    [Fact]
    public void Layers_that_do_not_fit_together_are_recorded_in_more_passes_with_the_same_bits()
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var batches = Batches(60, 4, 9, 64);
        var reports = new List<CalibrationProgress>();
        var together = CalibrationRecorder.Record(model.Layers, [0, 1, 2], model.Forward, new CalibrationData(batches));
        // 256 x 256 floats alone exceed 100 KB: one layer per pass.
        var apart = CalibrationRecorder.Record(model.Layers, [0, 1, 2], model.Forward,
            new CalibrationData(() => batches) { MaxStatisticsBytes = 100_000, Progress = new SyncProgress(reports) });
        for (int t = 0; t < 3; t++) Assert.True(together[t].XtX.AsSpan().SequenceEqual(apart[t].XtX), $"layer {t}");
        // Progress: one report per layer and batch, passes numbered.
        Assert.Equal(3 * 4, reports.Count);
        Assert.Equal([0, 1, 2], reports.Select(r => r.Pass).Distinct().Order());
        Assert.Equal(Enumerable.Range(0, 4), reports.Where(r => r.LayerIndex == 1).Select(r => r.Batch));
        Assert.Equal(4 * 9, reports.Last().Samples);
    }

    /// <summary>
    /// Sequences of 1-9 rows (the unpadded calibration), and the same sequences padded to their batch's longest with
    /// NaN rows (garbage that must neither enter X^T X nor trip the NaN check), four sequences per batch, with the mask.
    /// </summary>
    private static (List<Tensor> Unpadded, List<Tensor> Padded, Dictionary<Tensor, int[]> Masks) PaddedSequences(ulong seed, int sequences, int width)
    {
        var unpadded = Enumerable.Range(0, sequences).Select(s => new Tensor(QuantTestData.Gaussian(seed + (ulong)s, (1 + s * 5 % 9) * width), 1 + s * 5 % 9, width)).ToList();
        var padded = new List<Tensor>();
        var masks = new Dictionary<Tensor, int[]>(ReferenceEqualityComparer.Instance);
        foreach (var chunk in unpadded.Chunk(4))
        {
            int length = chunk.Max(t => t.Shape[0]);
            var data = new float[chunk.Length * length * width];
            Array.Fill(data, float.NaN);
            var mask = new int[chunk.Length * length];
            for (int b = 0; b < chunk.Length; b++)
            {
                chunk[b].Data.CopyTo(data, b * length * width);
                mask.AsSpan(b * length, chunk[b].Shape[0]).Fill(1);
            }
            var batch = new Tensor(data, chunk.Length * length, width);
            padded.Add(batch);
            masks[batch] = mask;
        }
        return (unpadded, padded, masks);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Masked_padded_batches_give_the_same_statistics_as_the_unpadded_sequences_one_at_a_time(int threads)
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var (unpadded, padded, masks) = PaddedSequences(90, 13, 64);
        var one = CalibrationRecorder.Record(model.Layers, [0, 1, 2], model.Forward, new CalibrationData(unpadded));
        int saved = Gemm.MaxDegreeOfParallelism;
        Gemm.MaxDegreeOfParallelism = threads;
        try
        {
            var masked = CalibrationRecorder.Record(model.Layers, [0, 1, 2], model.Forward,
                new CalibrationData(padded) { RowMask = batch => masks[batch] });
            for (int t = 0; t < 3; t++)
            {
                Assert.Equal(one[t].SampleCount, masked[t].SampleCount);
                Assert.True(one[t].XtX.AsSpan().SequenceEqual(masked[t].XtX), $"layer {t}: masked X^T X differs from the unpadded one");
            }
        }
        finally { Gemm.MaxDegreeOfParallelism = saved; }
        Assert.Equal(unpadded.Sum(t => t.Shape[0]), one[0].SampleCount);
        // Without the mask the padding is data: the NaN rows are refused, naming the layer.
        var e = Assert.Throws<InvalidDataException>(() => CalibrationRecorder.Record(model.Layers, [0], model.Forward, new CalibrationData(padded)));
        Assert.Contains("NaN", e.Message);
    }

    [Fact]
    public void A_row_mask_of_the_wrong_length_or_values_names_the_layer_and_the_batch()
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var batches = Batches(95, 2, 5, 64);
        var e = Assert.Throws<InvalidDataException>(() => CalibrationRecorder.Record(model.Layers, [1], model.Forward,
            new CalibrationData(batches) { RowMask = b => ReferenceEquals(b, batches[1]) ? new int[4] : [1, 1, 1, 1, 1] }));
        Assert.Contains($"'{model.Layers[1].Path}'", e.Message);
        Assert.Contains("5 input rows in calibration batch 1", e.Message);
        Assert.Contains("4 entries", e.Message);
        var bad = Assert.Throws<InvalidDataException>(() => CalibrationRecorder.Record(model.Layers, [0], model.Forward,
            new CalibrationData(batches) { RowMask = _ => [1, 2, 1, 1, 1] }));
        Assert.Contains("gives 2 for row 1 of calibration batch 0", bad.Message);
        Assert.All(model.Layers, l => Assert.Null(((WeightedLayer)l.Layer).InputObserver));
    }

    [Fact]
    public void A_batch_of_the_wrong_width_names_the_layer_the_batch_and_both_widths()
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var batches = Batches(70, 2, 4, 64);
        batches.Add(new Tensor(new float[4 * 60], 4, 60));
        var e = Assert.Throws<InvalidDataException>(() => CalibrationRecorder.Record(model.Layers, [0, 1], model.Forward, new CalibrationData(batches)));
        Assert.Contains($"'{model.Layers[0].Path}'", e.Message);
        Assert.Contains("width 64", e.Message);
        Assert.Contains("width 60", e.Message);
        Assert.Contains("batch 2", e.Message);
        Assert.All(model.Layers, l => Assert.Null(((WeightedLayer)l.Layer).InputObserver));
    }

    [Fact]
    public void A_nan_activation_names_the_layer_batch_row_and_column()
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var batches = Batches(80, 2, 4, 64);
        batches[1].Data[2 * 64 + 7] = float.NaN;
        var e = Assert.Throws<InvalidDataException>(() => CalibrationRecorder.Record(model.Layers, [0], model.Forward, new CalibrationData(batches)));
        Assert.Contains($"'{model.Layers[0].Path}'", e.Message);
        Assert.Contains("batch 1", e.Message);
        Assert.Contains("row 2, column 7", e.Message);
        Assert.Contains("NaN", e.Message);
    }

    [Fact]
    public void Gptq_without_calibration_data_is_an_error_naming_the_layer()
    {
        var model = new GptqMlp();
        model.Initialize(seed: 3);
        var session = new CompressionSession(GptqMlp.Plan, new CompressionOptions(), null);
        var e = Assert.Throws<InvalidOperationException>(() => session.Calibrate(model.Layers, model.Forward, [1, 2]));
        Assert.Contains($"Layer '{model.Layers[1].Path}'", e.Message);
        Assert.Contains("Calibration", e.Message);
        var direct = Assert.Throws<InvalidOperationException>(() => session.QuantizeGptq<Bits4>((Linear)model.Layers[2].Layer, 2));
        Assert.Contains($"Layer '{model.Layers[2].Path}'", direct.Message);
    }

    [Fact]
    public void A_session_gptq_quantizes_a_convolution_from_its_im2col_statistics()
    {
        var model = new CalibrationCnn();
        model.Initialize(seed: 4);
        var batches = Batches(90, 3, 16, 64);
        Tensor dense;
        using (Tensor.NoGrad()) dense = model.Forward(batches[0]);
        var session = new CompressionSession(CalibrationCnn.Plan, new CompressionOptions { Calibration = new CalibrationData(batches) }, null);
        session.Calibrate(model.Layers, model.Forward, [0, 1]);
        session.QuantizeGptq<Bits8>((Conv2d)model.Layers[0].Layer, 0);
        session.QuantizeGptq<Bits4>((Linear)model.Layers[1].Layer, 1);
        var report = session.Complete();
        Assert.Equal(CalibrationCnn.Plan.Layers.Sum(l => l.BytesAfter), report.TotalBytesAfter);
        Assert.Equal("int8-row-sym", ((Conv2d)model.Layers[0].Layer).CompressedWeight!.Format);
        Tensor compressed;
        using (Tensor.NoGrad()) compressed = model.Forward(batches[0]);
        double diff = 0, norm = 0;
        for (int i = 0; i < dense.Data.Length; i++)
        {
            diff += Math.Pow(dense.Data[i] - compressed.Data[i], 2);
            norm += Math.Pow(dense.Data[i], 2);
        }
        Assert.True(Math.Sqrt(diff / norm) < 0.1, $"relative output change {Math.Sqrt(diff / norm)}");
    }

    private sealed class SyncProgress(List<CalibrationProgress> reports) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => reports.Add(value);
    }
}
