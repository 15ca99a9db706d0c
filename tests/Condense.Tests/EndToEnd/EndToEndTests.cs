using Condense.Compression;
using Condense.IO;
using Condense.Training;

namespace Condense.Tests.EndToEnd;

[Collection(DigitsCollection.Name)]
public sealed class EndToEndTests(DigitsFixture digits)
{
    private double Accuracy(Func<Tensor, Tensor> forward) =>
        Classifier.Accuracy(Classifier.Predict(forward, digits.Test), digits.Test.Labels);

    [Fact]
    public void Dense_training_reaches_a_useful_accuracy() =>
        Assert.True(digits.DenseAccuracy >= 0.93, $"dense accuracy {digits.DenseAccuracy:P2} on digits");

    [Fact]
    public void Int8_per_row_loses_at_most_half_a_point()
    {
        var model = DigitsInt8.Load(digits.DensePath);
        var report = model.Compress();
        double accuracy = Accuracy(model.Forward);
        Assert.True(accuracy >= digits.DenseAccuracy - 0.005, $"int8 {accuracy:P2} vs fp32 {digits.DenseAccuracy:P2}");
        Assert.All(report.Layers, l => Assert.InRange(l.RelativeError, 0, 0.01));
    }

    [Fact]
    public void Int4_group_wise_loses_at_most_two_points()
    {
        var model = DigitsInt4.Load(digits.DensePath);
        var report = model.Compress();
        double accuracy = Accuracy(model.Forward);
        Assert.True(accuracy >= digits.DenseAccuracy - 0.02, $"int4 {accuracy:P2} vs fp32 {digits.DenseAccuracy:P2}");
        Assert.All(report.Layers, l => Assert.InRange(l.RelativeError, 0.001, 0.15));
    }

    [Fact]
    public void Report_bytes_equal_the_plan_computed_at_build_time()
    {
        var model = DigitsInt4.Load(digits.DensePath);
        var report = model.Compress();
        Assert.Equal(DigitsInt4.PlannedBytes, report.TotalBytesAfter);
        Assert.Equal(DigitsInt4.Plan.TotalBytesAfter, report.TotalBytesAfter);
        Assert.True(DigitsInt4.Plan.TotalBytesAfter <= DigitsInt4.Plan.MaxBytes);
        // hidden: 64 rows x 32 packed bytes + 64 x 2 scales; output: 10 x 32 + 10 x 4 x (2 + 1); biases fp32.
        Assert.Equal(64 * 32 + 64 * 2 * 2 + 64 * 4, report.Layers[0].BytesAfter);
        Assert.Equal(10 * 32 + 10 * 4 * 3 + 10 * 4, report.Layers[1].BytesAfter);
        Assert.Equal((64 * 64 + 64 + 64 * 10 + 10) * 4L, report.TotalBytesBefore);
    }

    [Fact]
    public void KeepDense_layers_are_unchanged_and_3_bit_layers_compress()
    {
        var model = DigitsMixed.Load(digits.DensePath);
        var before = Classifier.Predict(model.Forward, digits.Test);
        var report = model.Compress();
        Assert.Equal("fp32", report.Layers[1].Technique);
        Assert.Equal(report.Layers[1].BytesBefore, report.Layers[1].BytesAfter);
        Assert.Equal(0, report.Layers[1].RelativeError);
        Assert.Equal("int3 g16 sym", report.Layers[0].Technique);
        double agreement = Classifier.Accuracy(Classifier.Predict(model.Forward, digits.Test), before);
        Assert.True(agreement > 0.9, $"3-bit model agrees with fp32 on {agreement:P1}");
    }

    [Fact]
    public void Compressed_model_saves_and_reloads_with_identical_predictions()
    {
        var model = DigitsInt4.Load(digits.DensePath);
        model.Compress();
        string path = digits.TempFile("int4.safetensors");
        model.Save(path);
        var reloaded = DigitsInt4.Load(path);
        Assert.Equal(Classifier.Predict(model.Forward, digits.Test), Classifier.Predict(reloaded.Forward, digits.Test));
        // A compressed file is much smaller than the dense one.
        Assert.True(new FileInfo(path).Length * 3 < new FileInfo(digits.DensePath).Length);
    }

    [Fact]
    public void Compress_twice_is_rejected_and_names_the_layer()
    {
        var model = DigitsInt8.Load(digits.DensePath);
        model.Compress();
        var e = Assert.Throws<InvalidOperationException>(() => model.Compress());
        Assert.Contains("'hidden'", e.Message);
        Assert.Contains("already compressed", e.Message);
    }

    [Fact]
    public void Compress_rejects_NaN_weights_naming_the_tensor_and_changes_nothing()
    {
        var model = DigitsInt4.Load(digits.DensePath);
        var output = model.Layers[1].Layer as Nn.Linear;
        output!.Weight.Data[3 * 64 + 5] = float.NaN;
        var e = Assert.Throws<InvalidDataException>(() => model.Compress());
        Assert.Contains("'output.weight'", e.Message);
        Assert.Contains("[3, 5]", e.Message);
        // The hidden layer came first and quantized fine, but nothing is swapped in until every layer succeeded.
        Assert.Null(((Nn.Linear)model.Layers[0].Layer).CompressedWeight);
    }

    [Fact]
    public void Load_of_a_file_from_a_different_plan_names_the_layer_and_both_plans()
    {
        var model = DigitsInt8.Load(digits.DensePath);
        model.Compress();
        string path = digits.TempFile("int8.safetensors");
        model.Save(path);

        var e = Assert.Throws<ModelFileException>(() => DigitsInt4.Load(path));
        Assert.Contains("layer 'hidden': the file stores it int8 per-row sym, the compiled plan has int4 g32 sym", e.Message);
        Assert.Equal(2, e.Problems.Count);

        var wide = Assert.Throws<ModelFileException>(() => DigitsWide.Load(digits.DensePath));
        Assert.Contains("layer 'hidden': the file was saved from 'hidden Linear 64x64 bias int8 per-row sym', the compiled plan has 'hidden Linear 96x64 bias int8 per-row sym'", wide.Message);
    }

    [Fact]
    public void Load_reports_every_missing_misshapen_and_unexpected_tensor_at_once()
    {
        using var source = SafeTensorsFile.Open(digits.DensePath);
        var writer = new SafeTensorsWriter();
        foreach (var (key, value) in source.Metadata) writer.SetMetadata(key, value);
        writer.AddF32("hidden.weight", source.ReadF32("hidden.weight"), 64, 64);
        writer.AddF32("hidden.bias", new float[63], 63);               // wrong shape
        writer.AddF32("output.bias", source.ReadF32("output.bias"), 10);
        writer.AddF32("extra.weight", new float[4], 2, 2);              // not in the plan
        string path = digits.TempFile("broken.safetensors");           // output.weight is missing
        writer.WriteTo(path);

        var e = Assert.Throws<ModelFileException>(() => DigitsInt8.Load(path));
        Assert.Equal(3, e.Problems.Count);
        Assert.Contains(e.Problems, p => p.Contains("tensor 'output.weight' is missing: expected F32 [10, 64]", StringComparison.Ordinal));
        Assert.Contains(e.Problems, p => p.Contains("tensor 'hidden.bias' is F32 [63]; the compiled plan expects F32 [64]", StringComparison.Ordinal));
        Assert.Contains(e.Problems, p => p.Contains("tensor 'extra.weight' is not part of the compiled plan", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_rejects_NaN_weights_naming_the_tensor_and_index()
    {
        using var source = SafeTensorsFile.Open(digits.DensePath);
        var writer = new SafeTensorsWriter();
        foreach (var (key, value) in source.Metadata) writer.SetMetadata(key, value);
        var weight = source.ReadF32("hidden.weight");
        weight[2 * 64 + 7] = float.PositiveInfinity;
        writer.AddF32("hidden.weight", weight, 64, 64);
        foreach (var name in new[] { "hidden.bias", "output.bias" }) writer.AddF32(name, source.ReadF32(name), source.Get(name).Shape);
        writer.AddF32("output.weight", source.ReadF32("output.weight"), 10, 64);
        string path = digits.TempFile("nan.safetensors");
        writer.WriteTo(path);

        var e = Assert.Throws<ModelFileException>(() => DigitsInt8.Load(path));
        Assert.Contains("'hidden.weight' contains ∞ at [2, 7]", e.Message.Replace("Infinity", "∞", StringComparison.Ordinal));
    }

    [Fact]
    public void Load_rejects_a_file_that_is_not_a_Condense_model()
    {
        var writer = new SafeTensorsWriter();
        writer.AddF32("hidden.weight", new float[64 * 64], 64, 64);
        string path = digits.TempFile("foreign.safetensors");
        writer.WriteTo(path);
        var e = Assert.Throws<ModelFileException>(() => DigitsInt8.Load(path));
        Assert.Contains("'condense.format' is missing", e.Message);
    }

    [Fact]
    public void Conv2d_layers_quantize_run_and_round_trip()
    {
        var model = new TinyCnn();
        model.Initialize(seed: 3);
        Classifier.Train(model, model.Forward, digits.Train, new TrainingOptions { Epochs = 3, BatchSize = 64, LearningRate = 3e-3f, Seed = 3 });
        double dense = Accuracy(model.Forward);
        var report = model.Compress();
        double compressed = Accuracy(model.Forward);
        Assert.True(dense > 0.6, $"CNN dense accuracy {dense:P1}");
        Assert.True(compressed >= dense - 0.05, $"CNN int8/int4 {compressed:P1} vs fp32 {dense:P1}");
        Assert.Equal(TinyCnn.PlannedBytes, report.TotalBytesAfter);

        string path = digits.TempFile("cnn.safetensors");
        model.Save(path);
        Assert.Equal(Classifier.Predict(model.Forward, digits.Test), Classifier.Predict(TinyCnn.Load(path).Forward, digits.Test));
    }

    [Fact]
    public void Plan_lists_layers_in_declaration_order_with_exact_bytes()
    {
        var plan = DigitsMixed.Plan;
        Assert.Equal(["hidden", "output"], plan.Layers.Select(l => l.Path));
        Assert.Equal(64 * 24 + 64 * 4 * 2 + 64 * 4, plan.Layers[0].BytesAfter);
        Assert.Equal(plan.Layers[1].BytesBefore, plan.Layers[1].BytesAfter);
        Assert.Contains("| hidden | Linear | 64x64 | int3 g16 sym |", plan.ToMarkdown());
    }
}
