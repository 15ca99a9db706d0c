using Condense.Nn;
using Condense.Subspace;
using Condense.Tests.EndToEnd;
using Condense.Training;
using Xunit.Abstractions;

namespace Condense.Tests.Subspace;

/// <summary>
/// The generated subspace members end to end: <c>[Subspace]</c> on a model becomes <c>Reparameterize()</c>, a file of
/// the planned payload, <c>LoadSubspace</c> checked against the compiled specs, and <c>Materialize()</c> then <c>Compress()</c>.
/// </summary>
[Collection(DigitsCollection.Name)]
public sealed class GeneratedSubspaceTests(DigitsFixture digits, ITestOutputHelper output)
{
    private static readonly TrainingOptions Options = new() { Epochs = 8, BatchSize = 32, LearningRate = 1e-2f, WeightDecay = 0, Seed = 5 };

    private double Accuracy(Func<Tensor, Tensor> forward) =>
        Classifier.Accuracy(Classifier.Predict(forward, digits.Test), digits.Test.Labels);

    [Fact]
    public void Global_subspace_trains_saves_the_planned_payload_reloads_and_compresses()
    {
        // The compiled specs and the planned payload come from the attribute.
        var spec = Assert.Single(DigitsSubspace.SubspaceSpecs);
        Assert.Equal((200, SubspaceProjection.Fastfood, 3UL), (spec.Dimension, spec.Projection, spec.Seed));
        Assert.Null(spec.Layers);
        Assert.Equal(200, DigitsSubspace.Plan.SubspaceDimension);
        Assert.Equal(4 * 200, DigitsSubspace.Plan.SubspaceCoordinateBytes);

        var model = new DigitsSubspace();
        var subspace = model.Reparameterize(initializationSeed: 5);
        Assert.Same(model, subspace.Model);
        Assert.Equal(4810, Assert.Single(subspace.Groups).FullDimension);
        Assert.Equal(200, subspace.Coordinates.Length);
        Assert.All(subspace.Coordinates.Data, v => Assert.Equal(0f, v));
        Assert.Equal([SubspaceModel.CoordinatesPath], subspace.Layers.Select(l => l.Path));

        var losses = Classifier.Train(subspace, subspace.Forward, digits.Train, Options);
        double accuracy = Accuracy(subspace.Forward);
        output.WriteLine($"Fastfood d = 200: accuracy {accuracy:P1} (dense {digits.DenseAccuracy:P1}), loss {losses[0]:F3} -> {losses[^1]:F3}");
        Assert.True(losses[^1] < losses[0] * 0.5, $"loss {losses[0]} -> {losses[^1]}");
        // Chance is 10%; the runtime tests measure about 90% at this d (d_int90 of this MLP is ~140).
        Assert.True(accuracy > 0.75, $"accuracy {accuracy:P1}");

        string path = digits.TempFile("generated.subspace.safetensors");
        subspace.Save(path);
        long size = new FileInfo(path).Length;
        output.WriteLine($"file {size} bytes = {DigitsSubspace.Plan.SubspaceCoordinateBytes} planned coordinate bytes + {size - DigitsSubspace.Plan.SubspaceCoordinateBytes} header");
        Assert.InRange(size, DigitsSubspace.Plan.SubspaceCoordinateBytes, DigitsSubspace.Plan.SubspaceCoordinateBytes + 2048);

        var loaded = DigitsSubspace.LoadSubspace(path);
        var predictions = Classifier.Predict(subspace.Forward, digits.Test);
        Assert.Equal(predictions, Classifier.Predict(loaded.Forward, digits.Test));
        Assert.Equal(subspace.Coordinates.Data, loaded.Coordinates.Data);

        // Another projection seed regenerates another P: the file is refused, naming the subspace and both seeds.
        var wrongSeed = Assert.Throws<SubspaceFileException>(() => DigitsSubspaceOtherSeed.LoadSubspace(path));
        Assert.Contains("subspace 'model': the file was trained with seed 3; the model declares seed 4", wrongSeed.Message, StringComparison.Ordinal);

        DigitsSubspace dense = loaded.Materialize();
        Assert.Equal(predictions, Classifier.Predict(dense.Forward, digits.Test));
        var report = dense.Compress();
        Assert.Equal(DigitsSubspace.PlannedBytes, report.TotalBytesAfter);
        Assert.All(dense.Layers, l => Assert.NotNull(((WeightedLayer)l.Layer).CompressedWeight));
        double compressed = Accuracy(dense.Forward);
        output.WriteLine($"materialized {accuracy:P1}, int8 {compressed:P1}");
        Assert.True(compressed >= accuracy - 0.02, $"int8 after Materialize {compressed:P1} vs subspace {accuracy:P1}");
    }

    [Fact]
    public void Per_layer_subspace_trains_the_other_layers_as_declared_and_reloads()
    {
        var spec = Assert.Single(DigitsHiddenSubspace.SubspaceSpecs);
        Assert.Equal(["hidden"], spec.Layers!);
        Assert.Equal(UncoveredLayers.Trained, DigitsHiddenSubspace.SubspaceOtherLayers);
        Assert.Equal(4 * 300, DigitsHiddenSubspace.Plan.SubspaceCoordinateBytes);

        var model = new DigitsHiddenSubspace();
        var subspace = model.Reparameterize(initializationSeed: 7);
        Assert.Equal(UncoveredLayers.Trained, subspace.UncoveredLayers);
        // d, then the output layer (trained normally): its parameters are part of what the optimizer sees.
        Assert.Equal([SubspaceModel.CoordinatesPath, "output"], subspace.Layers.Select(l => l.Path));
        Assert.Equal(64 * 64 + 64, Assert.Single(subspace.Groups).FullDimension);

        Classifier.Train(subspace, subspace.Forward, digits.Train, Options with { Epochs = 4 });
        string path = digits.TempFile("generated.hidden.subspace.safetensors");
        subspace.Save(path);
        var loaded = DigitsHiddenSubspace.LoadSubspace(path);
        Assert.Equal(Classifier.Predict(subspace.Forward, digits.Test), Classifier.Predict(loaded.Forward, digits.Test));
        Assert.True(Accuracy(loaded.Forward) > 0.75);
    }

    [Fact]
    public void Compress_while_the_subspace_model_lives_is_a_named_error_and_dense_Save_writes_its_current_weights()
    {
        var model = new DigitsSubspace();
        var subspace = model.Reparameterize(initializationSeed: 5);
        Classifier.Train(subspace, subspace.Forward, digits.Train, Options with { Epochs = 1 });

        // The optimizer stepped d after the last forward, so the layers hold the previous theta; compressing them
        // would also swap the tensors the subspace model writes into. Nothing is compressed.
        var compress = Assert.Throws<InvalidOperationException>(() => model.Compress());
        Assert.Contains("Layer 'hidden' of DigitsSubspace is driven by a live subspace model (Reparameterize, d = 200); call Materialize() on it first", compress.Message, StringComparison.Ordinal);
        Assert.All(model.Layers, l => Assert.Null(((WeightedLayer)l.Layer).CompressedWeight));

        // A dense Save meanwhile stores theta0 + P d of the current d: the weights Materialize() then writes.
        string path = digits.TempFile("live.dense.safetensors");
        model.Save(path);
        var saved = DigitsSubspace.Load(path);

        // A second subspace model over the same layers is refused too.
        var twice = Assert.Throws<InvalidOperationException>(() => model.Reparameterize(initializationSeed: 6));
        Assert.Contains("layer 'hidden' is already reparameterized by a live subspace model (d = 200); Materialize() that one first", twice.Message, StringComparison.Ordinal);

        DigitsSubspace dense = subspace.Materialize();
        Assert.Equal(dense.Parameters().SelectMany(p => p.Data), saved.Parameters().SelectMany(p => p.Data));
        // Materialize ended the subspace: the same model compresses now.
        var report = dense.Compress();
        Assert.Equal(DigitsSubspace.PlannedBytes, report.TotalBytesAfter);
    }

    [Fact]
    public void Reparameterize_with_a_change_sweeps_d_seed_and_projection_and_loads_only_with_the_same_change()
    {
        static SubspaceSpec Change(SubspaceSpec s) => s with { Dimension = 120, Seed = 9, Projection = SubspaceProjection.Sparse };
        var model = new DigitsSubspace();
        var subspace = model.Reparameterize(Change, initializationSeed: 5);
        var group = Assert.Single(subspace.Groups);
        Assert.Equal((120, "sparse", 9UL), (group.Dimension, group.Projection.Name, group.Spec.Seed));
        Assert.Equal(UncoveredLayers.Frozen, subspace.UncoveredLayers);
        Classifier.Train(subspace, subspace.Forward, digits.Train, Options with { Epochs = 2 });

        string path = digits.TempFile("changed.subspace.safetensors");
        subspace.Save(path);
        // The declared spec (Fastfood, d = 200, seed 3) is not what the file holds: every difference is named.
        var declared = Assert.Throws<SubspaceFileException>(() => DigitsSubspace.LoadSubspace(path));
        Assert.Contains("the file was trained with seed 9; the model declares seed 3", declared.Message, StringComparison.Ordinal);
        Assert.Contains("the file has d = 120; the model declares d = 200", declared.Message, StringComparison.Ordinal);
        Assert.Contains("the file uses the sparse projection; the model declares fastfood", declared.Message, StringComparison.Ordinal);
        var loaded = DigitsSubspace.LoadSubspace(path, Change);
        Assert.Equal(subspace.Coordinates.Data, loaded.Coordinates.Data);
        Assert.Equal(Classifier.Predict(subspace.Forward, digits.Test), Classifier.Predict(loaded.Forward, digits.Test));

        // A change the runtime cannot honour is named as the declared one would be.
        var tooLarge = Assert.Throws<ArgumentOutOfRangeException>(() => new DigitsSubspace().Reparameterize(s => s with { Dimension = 4810 }, initializationSeed: 1));
        Assert.Contains("d = 4810 for D = 4810", tooLarge.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(SubspaceProjection.Fastfood, ProjectionStorage.Cached)]   // the declared projection: Fastfood always keeps O(D)
    [InlineData(SubspaceProjection.Sparse, ProjectionStorage.Streamed)]
    [InlineData(SubspaceProjection.Dense, ProjectionStorage.Streamed)]
    public void The_generated_subspace_model_keeps_O_of_D_plus_d_memory(SubspaceProjection kind, ProjectionStorage storage)
    {
        // d = 2,400 of D = 4,810: P as D x d floats would be 46 MB, far above the bound of 32 bytes per D + 2 d (theta0,
        // theta and the gradient buffer are 12 bytes per D; Fastfood's diagonals about 16 bytes per padded row, and its
        // blocks of L <= 2 d rows pad D by less than L).
        const int d = 2400;
        var warm = new DigitsSubspace().Reparameterize(s => s with { Dimension = d, Projection = kind, Storage = storage }, initializationSeed: 2);
        Ops.SoftmaxCrossEntropy(warm.Forward(new Tensor(new float[64], 1, 64)), [3]).Backward();
        // GC.GetTotalMemory counts the whole process: the runtime's own threads (tiered JIT, the thread pool, the test
        // host's output) allocate at the same time and only ever add to a reading. The least of a few readings is the
        // model's own share.
        long retained = long.MaxValue;
        int fullDimension = 0;
        for (int trial = 0; trial < 4; trial++)
        {
            var model = new DigitsSubspace();
            long before = GC.GetTotalMemory(forceFullCollection: true);
            var subspace = model.Reparameterize(s => s with { Dimension = d, Projection = kind, Storage = storage }, initializationSeed: 1);
            var loss = Ops.SoftmaxCrossEntropy(subspace.Forward(new Tensor(new float[64], 1, 64)), [3]);
            loss.Backward();
            retained = Math.Min(retained, GC.GetTotalMemory(forceFullCollection: true) - before);
            fullDimension = subspace.Groups[0].FullDimension;
            GC.KeepAlive(subspace);
            GC.KeepAlive(loss);
        }
        output.WriteLine($"{kind} ({storage}): {retained} bytes retained for D = {fullDimension}, d = {d}");
        Assert.True(retained < 32L * (fullDimension + 2 * d), $"{kind} ({storage}) keeps {retained} bytes for D = {fullDimension}, d = {d}");
        GC.KeepAlive(warm);
    }

    [Fact]
    public void The_sweep_over_the_generated_Reparameterize_matches_the_runtime_sweep_bit_for_bit()
    {
        // The sample's path: every subspace model of the sweep from the generated Reparameterize(change, seed).
        var training = new TrainingOptions { Epochs = 2, BatchSize = 32, LearningRate = 1e-2f, WeightDecay = 0 };
        var options = new IntrinsicDimensionOptions { Seeds = [1, 2], MinDimension = 8, MaxDimension = 256, GridPoints = 3, RelativeTolerance = 0.5 };
        var generated = IntrinsicDimension.MeasureClassifier(() => new DigitsSubspace(), m => m.Forward,
            (m, d, seed) => m.Reparameterize(s => s with { Dimension = d, Seed = seed, Projection = SubspaceProjection.Sparse }, initializationSeed: seed),
            digits.Train, digits.Test, training, options);
        // The runtime overload builds the same specs over the same 64-64-10 layers (DigitsInt8): the same curve, bit for bit.
        var runtime = IntrinsicDimension.MeasureClassifier(() => new DigitsInt8(), m => m.Forward, digits.Train, digits.Test, training,
            SubspaceProjection.Sparse, options);
        output.WriteLine(generated.ToTable());
        Assert.Equal(runtime.Dimension, generated.Dimension);
        Assert.Equal(runtime.Curve.Select(p => (p.Dimension, p.Scores.ToArray())), generated.Curve.Select(p => (p.Dimension, p.Scores.ToArray())));
        Assert.True(generated.Curve[^1].Mean > generated.Curve[0].Mean + 0.2, generated.ToTable());

        // A delegate that ignores d is named, not silently measured.
        var wrong = Assert.Throws<InvalidOperationException>(() => IntrinsicDimension.MeasureClassifier(() => new DigitsSubspace(), m => m.Forward,
            (m, d, seed) => m.Reparameterize(initializationSeed: seed), digits.Train, digits.Test, training, options));
        Assert.Contains("the subspace model of DigitsSubspace for d = 8 has 200 coordinates", wrong.Message, StringComparison.Ordinal);
    }
}
