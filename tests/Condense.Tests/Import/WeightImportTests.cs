using Condense.Import;
using Condense.IO;
using Condense.Nn;
using Condense.Tests.IO;

namespace Condense.Tests.Import;

/// <summary>
/// LoadWeights against files torch wrote (tests/fixtures/make_import_fixtures.py): logits equal torch's within 1e-5, and
/// every way a file can fail to fit gives one error naming all of it.
/// </summary>
public sealed class WeightImportTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const float Tolerance = 1e-5f;
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Tensor MlpLogits(ImportMlp model)
    {
        using var _ = Tensor.NoGrad();
        return model.Forward(ImportFixtures.Read("mlp_io.safetensors", "input"));
    }

    [Theory]
    [InlineData("mlp.safetensors", "logits")]
    [InlineData("mlp_f16.safetensors", "logits_f16")]
    [InlineData("mlp_bf16.safetensors", "logits_bf16")]
    [InlineData("mlp.onnx", "logits")]
    [InlineData("mlp_float_data.onnx", "logits")]
    [InlineData("mlp_matmul.onnx", "logits")]
    public void MlpLogitsEqualTorchsAfterLoadWeights(string file, string expected)
    {
        var model = new ImportMlp();
        var report = model.LoadWeights(ImportFixtures.File(file));

        Assert.Equal(8, report.Imported.Count);
        Assert.Equal(ImportMlp.ExpectedTensors.Select(t => t.Name), report.Imported.Select(t => t.ModelName));
        float difference = ImportFixtures.MaxAbsDifference(ImportFixtures.Read("mlp_io.safetensors", expected), MlpLogits(model));
        output.WriteLine($"{file}: max |Condense - torch| = {difference:G3}");
        Assert.True(difference <= Tolerance, $"{file}: max |Condense - torch| = {difference}");
    }

    [Fact]
    public void TorchsNumberedMatMulWeightsAreNamedFromTheirBiasAndTransposed()
    {
        var model = new ImportMlp();
        var report = model.LoadWeights(ImportFixtures.File("mlp_matmul.onnx"));

        var weights = report.Imported.Where(t => t.ModelName.EndsWith(".weight", StringComparison.Ordinal)).ToList();
        Assert.All(weights, t => Assert.True(t.Transposed, t.ModelName));
        Assert.All(weights, t => Assert.StartsWith("onnx::MatMul_", t.SourceName, StringComparison.Ordinal));
        var hidden1 = weights.Single(t => t.ModelName == "hidden1.weight");
        Assert.Equal("hidden1.weight", hidden1.FileName);
        Assert.Equal([64L, 32L], hidden1.StoredShape);
        Assert.Contains("4 transposed from [in, out]", report.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("cnn.safetensors")]
    [InlineData("cnn.onnx")]
    public void CnnLogitsEqualTorchsAfterLoadWeights(string file)
    {
        var model = new ImportCnn();
        model.LoadWeights(ImportFixtures.File(file));

        Tensor logits;
        using (Tensor.NoGrad()) logits = model.Forward(ImportFixtures.Read("cnn_io.safetensors", "input"));
        float difference = ImportFixtures.MaxAbsDifference(ImportFixtures.Read("cnn_io.safetensors", "logits"), logits);
        output.WriteLine($"{file}: max |Condense - torch| = {difference:G3}");
        Assert.True(difference <= Tolerance, $"{file}: max |Condense - torch| = {difference}");
    }

    [Fact]
    public void ExpectedTensorsAreTheConstantsOfTheBuildAndMatchTheRunningModel()
    {
        Assert.Equal(WeightImport.ExpectedTensorsOf(new ImportMlp().Layers), ImportMlp.ExpectedTensors);
        Assert.Equal(WeightImport.ExpectedTensorsOf(new ImportCnn().Layers), ImportCnn.ExpectedTensors);
        Assert.Equal(WeightImport.ExpectedTensorsOf(new MiniLmLinears().Layers), MiniLmLinears.ExpectedTensors);
        var block = ImportMlp.ExpectedTensors.Single(t => t.Name == "blocks[1].weight");
        Assert.Equal([32, 32], block.Shape!);
        Assert.Equal("blocks.1.weight", block.PyTorchName);
        Assert.Equal([8, 4, 3, 3], ImportCnn.ExpectedTensors.Single(t => t.Name == "conv2.weight").Shape!);
    }

    [Fact]
    public void BatchNormBuffersAreUnexpectedUntilIgnored()
    {
        var path = ImportFixtures.File("mlp_extras.safetensors");
        var error = Assert.Throws<WeightImportException>(() => new ImportMlp().LoadWeights(path));
        Assert.Empty(error.Missing);
        Assert.Empty(error.Mismatched);
        Assert.Equal(["norm.bias", "norm.num_batches_tracked", "norm.running_mean", "norm.running_var", "norm.weight"],
            error.Unexpected.Select(u => u.Name).Order(StringComparer.Ordinal));
        Assert.Contains("unexpected 'norm.num_batches_tracked' I64 []", error.Message, StringComparison.Ordinal);

        // Ignoring only the counter leaves the other buffers reported.
        var partly = Assert.Throws<WeightImportException>(() => new ImportMlp().LoadWeights(path, new() { IgnoreExtras = ["*.num_batches_tracked"] }));
        Assert.Equal(4, partly.Unexpected.Count);

        var model = new ImportMlp();
        var report = model.LoadWeights(path, new() { IgnoreExtras = ["norm.*"] });
        Assert.Equal(5, report.IgnoredExtras.Count);
        Assert.True(ImportFixtures.MaxAbsDifference(ImportFixtures.Read("mlp_io.safetensors", "logits"), MlpLogits(model)) <= Tolerance);
    }

    /// <summary>The torch weights by name, read from the fixture (to build broken variants of the file).</summary>
    private static Dictionary<string, (float[] Data, long[] Shape)> TorchMlpWeights()
    {
        using var file = SafeTensorsFile.Open(ImportFixtures.File("mlp.safetensors"));
        return file.Tensors.ToDictionary(t => t.Name, t => (file.ReadF32(t.Name), t.Shape));
    }

    private string Write(string name, IEnumerable<(string Name, float[] Data, long[] Shape)> tensors)
    {
        var writer = new SafeTensorsWriter();
        foreach (var (tensorName, data, shape) in tensors) writer.AddF32(tensorName, data, shape);
        var path = _dir.File(name);
        writer.WriteTo(path);
        return path;
    }

    [Fact]
    public void WrongNamesShapesAndMissingTensorsAreOneErrorListingAllWithDidYouMean()
    {
        var weights = TorchMlpWeights();
        var tensors = weights.Select(kv => (kv.Key, kv.Value.Data, kv.Value.Shape)).ToList();
        tensors.RemoveAll(t => t.Key is "hidden1.weight" or "blocks.1.bias" or "output.weight");
        tensors.Add(("hiden1.weight", weights["hidden1.weight"].Data, weights["hidden1.weight"].Shape));  // a typo
        tensors.Add(("output.weight", new float[10 * 16], [10, 16]));                                   // a wrong shape
        tensors.Add(("classifier.weight", new float[4], [2, 2]));                                        // something else
        var path = Write("broken.safetensors", tensors);

        var model = new ImportMlp();
        model.Initialize(3);
        var before = model.NamedParameters().Select(p => p.Value.Data.ToArray()).ToList();
        var error = Assert.Throws<WeightImportException>(() => model.LoadWeights(path));

        Assert.Equal(["hidden1.weight", "blocks[1].bias"], error.Missing.Select(m => m.Name));
        Assert.Equal("hiden1.weight", error.Missing[0].DidYouMean);
        Assert.Equal(["hiden1.weight", "classifier.weight"], error.Unexpected.Select(u => u.Name));
        var shape = Assert.Single(error.Mismatched);
        Assert.Equal("output.weight", shape.Name);
        Assert.Contains("expected [10, 32], the file has [10, 16]", shape.Problem, StringComparison.Ordinal);
        Assert.Contains("missing 'hidden1.weight' [32, 64]: did you mean 'hiden1.weight'?", error.Message, StringComparison.Ordinal);
        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        Assert.Contains("ImportMlp", error.Message, StringComparison.Ordinal);
        Assert.Contains("(2 missing, 2 unexpected, 1 that cannot be loaded)", error.Message, StringComparison.Ordinal);
        // Nothing was written.
        Assert.Equal(before, model.NamedParameters().Select(p => p.Value.Data.ToArray()).ToList());
    }

    [Fact]
    public void DidYouMeanPointsAtTheClosestLeftOverName()
    {
        var weights = TorchMlpWeights();
        // PyTorch's "block" instead of "blocks": each missing block tensor points at its own counterpart.
        var path = Write("renamed.safetensors", weights.Select(kv => (kv.Key.Replace("blocks.", "block.", StringComparison.Ordinal), kv.Value.Data, kv.Value.Shape)));

        var error = Assert.Throws<WeightImportException>(() => new ImportMlp().LoadWeights(path));
        Assert.Equal(4, error.Missing.Count);
        Assert.All(error.Missing, m => Assert.Equal(NamePatternCanonical(m.Name).Replace("blocks.", "block.", StringComparison.Ordinal), m.DidYouMean));

        // The rename table fixes it.
        var model = new ImportMlp();
        model.LoadWeights(path, new() { Renames = new Dictionary<string, string> { ["block"] = "blocks" } });
        Assert.True(ImportFixtures.MaxAbsDifference(ImportFixtures.Read("mlp_io.safetensors", "logits"), MlpLogits(model)) <= Tolerance);
    }

    private static string NamePatternCanonical(string name) => name.Replace("[", ".", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal);

    [Fact]
    public void PrefixMapAndAllowMissingCompose()
    {
        var weights = TorchMlpWeights();
        var path = Write("prefixed.safetensors",
            weights.Where(kv => kv.Key != "output.bias").Select(kv => ("model." + kv.Key, kv.Value.Data, kv.Value.Shape))
                .Append(("model.pooler.weight", new float[4], [2, 2])));

        var model = new ImportMlp();
        model.Initialize(5);
        var outputBias = model.NamedParameters().Single(p => p.Path == "output.bias").Value.Data.ToArray();
        var report = model.LoadWeights(path, new()
        {
            StripPrefix = "model.",
            Map = name => name.StartsWith("pooler.", StringComparison.Ordinal) ? null : name,
            AllowMissing = ["output.bias"],
        });

        Assert.Equal(7, report.Imported.Count);
        Assert.Equal(["model.pooler.weight"], report.SkippedByMap);
        Assert.Equal(["output.bias"], report.KeptMissing);
        Assert.Equal(outputBias, model.NamedParameters().Single(p => p.Path == "output.bias").Value.Data);
        Assert.Equal(weights["output.weight"].Data, model.NamedParameters().Single(p => p.Path == "output.weight").Value.Data);
    }

    [Fact]
    public void Float64IsNarrowedAndIntegersAreRefusedByName()
    {
        var weights = TorchMlpWeights();
        var writer = new SafeTensorsWriter();
        foreach (var (name, (data, shape)) in weights)
        {
            if (name == "output.bias")
            {
                var doubles = data.Select(v => (double)v).ToArray();
                writer.Add(name, SafeTensorDType.F64, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(doubles.AsSpan()));
            }
            else if (name != "hidden1.bias") writer.AddF32(name, data, shape);
        }
        writer.AddI32("hidden1.bias", new int[32], 32);
        var path = _dir.File("types.safetensors");
        writer.WriteTo(path);

        var error = Assert.Throws<WeightImportException>(() => new ImportMlp().LoadWeights(path));
        var integers = Assert.Single(error.Mismatched);
        Assert.Equal("hidden1.bias", integers.Name);
        Assert.Contains("the file stores it as I32 [32]; weights must be floating point", integers.Problem, StringComparison.Ordinal);

        var model = new ImportMlp();
        model.LoadWeights(path, new() { AllowMissing = ["hidden1.bias"], Map = name => name == "hidden1.bias" ? null : name });
        Assert.Equal(weights["output.bias"].Data, model.NamedParameters().Single(p => p.Path == "output.bias").Value.Data);
    }

    [Fact]
    public void TwoFileTensorsForOneModelTensorAreReported()
    {
        var weights = TorchMlpWeights();
        var path = Write("twice.safetensors",
            weights.Select(kv => (kv.Key, kv.Value.Data, kv.Value.Shape)).Append(("blocks[0].weight", weights["blocks.0.weight"].Data, weights["blocks.0.weight"].Shape)));

        var error = Assert.Throws<WeightImportException>(() => new ImportMlp().LoadWeights(path));
        var twice = Assert.Single(error.Mismatched);
        Assert.Equal("blocks[0].weight", twice.Name);
        Assert.Contains("the file has it twice: 'blocks.0.weight' and 'blocks[0].weight'", twice.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void MatricesStoredInOutAreNamedAndTransposedOnRequest()
    {
        var weights = TorchMlpWeights();
        var path = Write("conv1d.safetensors", weights.Select(kv => kv.Value.Shape.Length == 2
            ? (kv.Key, Transpose(kv.Value.Data, (int)kv.Value.Shape[0], (int)kv.Value.Shape[1]), new[] { kv.Value.Shape[1], kv.Value.Shape[0] })
            : (kv.Key, kv.Value.Data, kv.Value.Shape)));

        var error = Assert.Throws<WeightImportException>(() => new ImportMlp().LoadWeights(path));
        // hidden1 and output; the square blocks' shapes cannot tell (only TransposeWhere can).
        Assert.Equal(["hidden1.weight", "output.weight"], error.Mismatched.Select(m => m.Name));
        Assert.Contains("'output.weight': expected [10, 32], the file has [32, 10]; it looks stored [in, out]: set WeightImportOptions.TransposeWhere for it",
            error.Message, StringComparison.Ordinal);

        var model = new ImportMlp();
        model.LoadWeights(path, new() { TransposeWhere = name => name.EndsWith(".weight", StringComparison.Ordinal) });
        Assert.True(ImportFixtures.MaxAbsDifference(ImportFixtures.Read("mlp_io.safetensors", "logits"), MlpLogits(model)) <= Tolerance);
    }

    private static float[] Transpose(float[] data, int rows, int columns)
    {
        var result = new float[data.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                result[c * rows + r] = data[r * columns + c];
        return result;
    }

    [Fact]
    public void NaNOrInfinityIsANamedErrorAndNothingIsWritten()
    {
        var weights = TorchMlpWeights();
        var poisoned = weights["blocks.0.weight"].Data.ToArray();
        poisoned[3 * 32 + 7] = float.NaN;
        var bias = weights["output.bias"].Data.ToArray();
        bias[2] = float.PositiveInfinity;
        var path = Write("nan.safetensors", weights.Select(kv => (kv.Key,
            kv.Key == "blocks.0.weight" ? poisoned : kv.Key == "output.bias" ? bias : kv.Value.Data, kv.Value.Shape)));

        var model = new ImportMlp();
        model.Initialize(9);
        var before = model.NamedParameters().Select(p => p.Value.Data.ToArray()).ToList();
        var error = Assert.Throws<WeightImportException>(() => model.LoadWeights(path));

        Assert.Equal(["blocks[0].weight", "output.bias"], error.Mismatched.Select(m => m.Name));
        Assert.Contains("NaN at [3, 7]", error.Mismatched[0].Problem, StringComparison.Ordinal);
        Assert.Contains("at [2]", error.Mismatched[1].Problem, StringComparison.Ordinal);
        Assert.Equal(before, model.NamedParameters().Select(p => p.Value.Data.ToArray()).ToList());
    }

    [Fact]
    public void MissingFileNotWeightsAndExternalDataAreNamedErrors()
    {
        var missing = _dir.File("nowhere.safetensors");
        var notFound = Assert.Throws<FileNotFoundException>(() => new ImportMlp().LoadWeights(missing));
        Assert.Contains(missing, notFound.Message, StringComparison.Ordinal);

        var text = _dir.File("notes.bin");
        File.WriteAllText(text, "these are not weights");
        var neither = Assert.Throws<WeightFileFormatException>(() => new ImportMlp().LoadWeights(text));
        Assert.Contains("neither a safetensors file nor an ONNX model", neither.Message, StringComparison.Ordinal);
        Assert.Contains(text, neither.Message, StringComparison.Ordinal);

        var fake = _dir.File("fake.safetensors");
        File.WriteAllText(fake, "these are not weights either");
        var invalid = Assert.Throws<SafeTensorsFormatException>(() => new ImportMlp().LoadWeights(fake));
        Assert.Contains(fake, invalid.Message, StringComparison.Ordinal);

        var fakeOnnx = _dir.File("fake.onnx");
        File.WriteAllBytes(fakeOnnx, [0x08, 0x07, 0x3A, 0x7F, 0x01]);   // ir_version 7, then a graph field longer than the file
        var corrupt = Assert.Throws<WeightFileFormatException>(() => new ImportMlp().LoadWeights(fakeOnnx));
        Assert.Contains("not a valid ONNX model", corrupt.Message, StringComparison.Ordinal);

        var external = Assert.Throws<WeightFileFormatException>(() => new ImportMlp().LoadWeights(ImportFixtures.File("mlp_external.onnx")));
        Assert.Contains("external data, in 'mlp_external.onnx.data'", external.Message, StringComparison.Ordinal);
        Assert.Contains("8 of the model's 8 initializers", external.Message, StringComparison.Ordinal);
        Assert.Equal("hidden1.weight", external.TensorName);
    }

    [Fact]
    public void CompressAfterImportWorksAsOnATrainedModel()
    {
        // The same weights reach one model through LoadWeights and the other through the layers' own LoadWeight.
        var imported = new ImportMlp();
        imported.LoadWeights(ImportFixtures.File("mlp.onnx"));
        var byHand = new ImportMlp();
        var weights = TorchMlpWeights();
        foreach (var (path, layer) in byHand.Layers)
        {
            var weighted = (WeightedLayer)layer;
            string file = path.Replace("[", ".", StringComparison.Ordinal).Replace("]", "", StringComparison.Ordinal);
            weighted.LoadWeight(weights[file + ".weight"].Data);
            weighted.LoadBias(weights[file + ".bias"].Data);
        }

        var report = imported.Compress();
        var reference = byHand.Compress();
        Assert.Equal(ImportMlp.PlannedBytes, report.TotalBytesAfter);
        Assert.Equal(reference.ToString(), report.ToString());
        var logits = MlpLogits(imported);
        Assert.Equal(MlpLogits(byHand).Data, logits.Data);
        // 4- and 8-bit weights stay close to torch's logits.
        var torch = ImportFixtures.Read("mlp_io.safetensors", "logits");
        float scale = torch.Data.Max(MathF.Abs);
        Assert.True(ImportFixtures.MaxAbsDifference(torch, logits) < 0.1f * scale);

        // The compressed model saves and loads like any other.
        var file2 = _dir.File("imported.safetensors");
        imported.Save(file2);
        Assert.Equal(logits.Data, MlpLogits(ImportMlp.Load(file2)).Data);
    }

    [Fact]
    public void LoadWeightsIntoACompressedModelMakesItDenseAgain()
    {
        var model = new ImportMlp();
        model.Initialize(1);
        model.Compress();
        Assert.NotNull(((WeightedLayer)model.Layers[0].Layer).CompressedWeight);

        model.LoadWeights(ImportFixtures.File("mlp.safetensors"));
        Assert.All(model.Layers, l => Assert.Null(((WeightedLayer)l.Layer).CompressedWeight));
        Assert.True(ImportFixtures.MaxAbsDifference(ImportFixtures.Read("mlp_io.safetensors", "logits"), MlpLogits(model)) <= Tolerance);
    }

    [Fact]
    public void ACondenseFileLoadsByTheSameNames()
    {
        var source = new ImportMlp();
        source.LoadWeights(ImportFixtures.File("mlp.safetensors"));
        var path = _dir.File("dense.safetensors");
        source.Save(path);

        var model = new ImportMlp();
        model.LoadWeights(path);
        Assert.Equal(MlpLogits(source).Data, MlpLogits(model).Data);
    }
}

/// <summary>A layer Condense does not know, with its own parameters: import fills whatever a registered layer lists.</summary>
internal sealed class ScaleLayer : Layer
{
    private readonly Tensor _scale = new(new float[32], 32);
    private readonly Tensor _shift = new(new float[32], 32);

    public override IReadOnlyList<Parameter> Parameters => [new("weight", _scale), new("bias", _shift)];

    public override void ResetParameters(Rng rng) => rng.FillUniform(_scale.Data, 0.5f, 1.5f);

    public float[] Scale => _scale.Data;
}

public sealed class CustomLayerImportTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void ParametersOfAnyRegisteredLayerAreTargets()
    {
        var scale = new ScaleLayer();
        var linear = new Linear(64, 32);
        NamedLayer[] layers = [new("hidden1", linear), new("norm", scale)];
        var expected = WeightImport.ExpectedTensorsOf(layers);
        Assert.Equal(["hidden1.weight", "hidden1.bias", "norm.weight", "norm.bias"], expected.Select(t => t.Name));

        var values = Enumerable.Range(0, 32).Select(i => i * 0.25f).ToArray();
        using (var torch = SafeTensorsFile.Open(ImportFixtures.File("mlp.safetensors")))
        {
            var writer = new SafeTensorsWriter();
            writer.AddF32("hidden1.weight", torch.ReadF32("hidden1.weight"), 32, 64);
            writer.AddF32("hidden1.bias", torch.ReadF32("hidden1.bias"), 32);
            writer.AddF32("norm.weight", values, 32);
            writer.WriteTo(_dir.File("custom.safetensors"));
        }

        var error = Assert.Throws<WeightImportException>(() => WeightImport.Load(_dir.File("custom.safetensors"), layers, modelName: "Custom"));
        Assert.Equal("norm.bias", Assert.Single(error.Missing).Name);

        var report = WeightImport.Load(_dir.File("custom.safetensors"), layers, new() { AllowMissing = ["norm.bias"] });
        Assert.Equal(3, report.Imported.Count);
        Assert.Equal(values, scale.Scale);
    }
}
