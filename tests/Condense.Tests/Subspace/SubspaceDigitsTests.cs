using Condense.Nn;
using Condense.Subspace;
using Condense.Tests.EndToEnd;
using Condense.Training;
using Xunit.Abstractions;

namespace Condense.Tests.Subspace;

/// <summary>Subspace training of the digits MLP (64-64-10, D = 4810) against the fixture's dense baseline.</summary>
[Collection(DigitsCollection.Name)]
public sealed class SubspaceDigitsTests(DigitsFixture digits, ITestOutputHelper output)
{
    private static readonly TrainingOptions Options = new() { Epochs = 12, BatchSize = 32, LearningRate = 1e-2f, WeightDecay = 0, Seed = 5 };

    private double Accuracy(Func<Tensor, Tensor> forward) =>
        Classifier.Accuracy(Classifier.Predict(forward, digits.Test), digits.Test.Labels);

    private (SubspaceModel<DigitsInt8> Subspace, double Accuracy, IReadOnlyList<double> Losses) Train(SubspaceProjection kind, int d)
    {
        var model = new DigitsInt8();
        var subspace = SubspaceModel.Create(model, model.Forward, new SubspaceSpec(d) { Projection = kind, Seed = 3 }, new SubspaceOptions { InitializationSeed = 5 });
        var losses = Classifier.Train(subspace, subspace.Forward, digits.Train, Options);
        double accuracy = Accuracy(subspace.Forward);
        output.WriteLine($"{kind} d = {d}: accuracy {accuracy:P1} (dense {digits.DenseAccuracy:P1}), loss {losses[0]:F3} -> {losses[^1]:F3}");
        return (subspace, accuracy, losses);
    }

    [Theory]
    [InlineData(SubspaceProjection.Dense)]
    [InlineData(SubspaceProjection.Sparse)]
    [InlineData(SubspaceProjection.Fastfood)]
    public void Every_projection_trains_without_NaN_and_nears_the_baseline_at_large_d(SubspaceProjection kind)
    {
        var (subspace, accuracy, losses) = Train(kind, 1000);
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.All(subspace.Coordinates.Data, v => Assert.True(float.IsFinite(v)));
        Assert.True(losses[^1] < losses[0] * 0.5, $"{kind}: loss {losses[0]} -> {losses[^1]}");
        // Measured within ~2 points of the dense 25-epoch baseline; 5 points leave room for seeds, a broken op fails by far.
        Assert.True(accuracy >= digits.DenseAccuracy - 0.05, $"{kind} d = 1000: {accuracy:P1} vs dense {digits.DenseAccuracy:P1}");
    }

    [Fact]
    public void Accuracy_grows_with_d()
    {
        double small = Train(SubspaceProjection.Fastfood, 10).Accuracy;
        double large = Train(SubspaceProjection.Fastfood, 400).Accuracy;
        Assert.True(large > small + 0.1, $"d = 10: {small:P1}, d = 400: {large:P1}");
    }

    [Fact]
    public void MeasureClassifier_brackets_d_int90_of_the_digits_MLP()
    {
        var training = new TrainingOptions { Epochs = 4, BatchSize = 32, LearningRate = 1e-2f, WeightDecay = 0 };
        var result = IntrinsicDimension.MeasureClassifier(() => new DigitsInt8(), m => m.Forward, digits.Train, digits.Test, training,
            SubspaceProjection.Fastfood, new IntrinsicDimensionOptions { Seeds = [1], MinDimension = 8, MaxDimension = 512, GridPoints = 4, RelativeTolerance = 0.25 });
        output.WriteLine(result.ToTable());
        Assert.True(result.Baseline > 0.85, $"baseline {result.Baseline:P1}");
        Assert.NotNull(result.Dimension);
        var at = result.Curve.Single(p => p.Dimension == result.Dimension);
        Assert.True(at.Mean >= result.Target);
        Assert.Contains(result.Curve, p => p.Dimension < result.Dimension && p.Mean < result.Target);
        Assert.Equal(4810.0 / result.Dimension!.Value, result.CompressionRatio);
    }

    [Fact]
    public void Materialize_then_compress_keeps_the_subspace_models_accuracy_and_the_file_reloads_it()
    {
        var (subspace, accuracy, _) = Train(SubspaceProjection.Sparse, 600);
        string path = digits.TempFile("digits.subspace.safetensors");
        subspace.Save(path);
        long size = new FileInfo(path).Length;
        output.WriteLine($"subspace file {size} bytes (d = 600; dense weights 4 x 4810 = 19240 bytes)");
        Assert.InRange(size, 4 * 600, 4 * 600 + 4096);

        var reloadedModel = new DigitsInt8();
        var reloaded = SubspaceModel<DigitsInt8>.Load(path, reloadedModel, reloadedModel.Forward,
            [new SubspaceSpec(600) { Projection = SubspaceProjection.Sparse, Seed = 3 }]);
        Assert.Equal(Classifier.Predict(subspace.Forward, digits.Test), Classifier.Predict(reloaded.Forward, digits.Test));

        DigitsInt8 dense = reloaded.Materialize();
        Assert.Equal(accuracy, Accuracy(dense.Forward));
        var report = dense.Compress();
        Assert.Equal(DigitsInt8.PlannedBytes, report.TotalBytesAfter);
        Assert.All(dense.Layers, l => Assert.NotNull(((WeightedLayer)l.Layer).CompressedWeight));
        double compressed = Accuracy(dense.Forward);
        output.WriteLine($"materialized {accuracy:P1}, int8 {compressed:P1}");
        Assert.True(compressed >= accuracy - 0.02, $"int8 after Materialize {compressed:P1} vs subspace {accuracy:P1}");
    }
}
