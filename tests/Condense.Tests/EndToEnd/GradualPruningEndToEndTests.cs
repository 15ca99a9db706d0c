using Condense.Catalogue;
using Condense.Nn;
using Condense.Sparsity;
using Condense.Tests.Sparsity;
using Condense.Training;
using Xunit.Abstractions;

namespace Condense.Tests.EndToEnd;

[Collection(DigitsCollection.Name)]
public sealed class GradualPruningEndToEndTests(DigitsFixture digits, ITestOutputHelper output)
{
    private static readonly TrainingOptions Options = new() { Epochs = 25, BatchSize = 32, LearningRate = 2e-3f };

    private double Accuracy(Func<Tensor, Tensor> forward) =>
        Classifier.Accuracy(Classifier.Predict(forward, digits.Test), digits.Test.Labels);

    [Fact]
    public void Training_with_the_schedule_prunes_and_Compress_stores_exactly_the_trained_mask()
    {
        var model = new DigitsGradual90();
        model.Initialize(seed: 31);
        var schedule = model.CreatePruningSchedule();
        Classifier.Train(model, model.Forward, digits.Train, Options with { Seed = 31 }, schedule);

        Assert.True(schedule.Step > 700, $"only {schedule.Step} steps: the schedule never reached its end");
        var masks = schedule.Layers.Select(l => l.Mask!.Kept).ToArray();
        for (int l = 0; l < 2; l++)
        {
            var w = ((WeightedLayer)model.Layers[l].Layer).Weight.Data;
            long zeros = w.Count(v => v == 0);
            Assert.Equal(w.Length - PruningRules.KeptCount(w.Length, 0.9), zeros);
        }
        double trained = Accuracy(model.Forward);

        model.Compress();

        for (int l = 0; l < 2; l++)
            GradualPruningTests.AssertStoresExactly(Assert.IsType<CsrWeight>(((WeightedLayer)model.Layers[l].Layer).CompressedWeight), masks[l]);
        // The masked weights were already zero: compressing changes no prediction.
        Assert.Equal(trained, Accuracy(model.Forward));
    }

    [Theory]
    [InlineData(41UL)]
    [InlineData(42UL)]
    [InlineData(43UL)]
    public void Gradual_pruning_to_90_percent_keeps_more_accuracy_than_one_shot(ulong seed)
    {
        var dense = new DigitsOneShot90();
        dense.Initialize(seed);
        Classifier.Train(dense, dense.Forward, digits.Train, Options with { Seed = seed });
        double denseAccuracy = Accuracy(dense.Forward);
        dense.Compress();
        double oneShot = Accuracy(dense.Forward);

        var gradual = new DigitsGradual90();
        gradual.Initialize(seed);
        Classifier.Train(gradual, gradual.Forward, digits.Train, Options with { Seed = seed }, gradual.CreatePruningSchedule());
        gradual.Compress();
        double gradualAccuracy = Accuracy(gradual.Forward);

        output.WriteLine($"seed {seed}: dense {denseAccuracy:P1}, one-shot 90% {oneShot:P1}, gradual 90% {gradualAccuracy:P1}");
        Assert.True(gradualAccuracy > oneShot, $"gradual {gradualAccuracy:P1} vs one-shot {oneShot:P1} (dense {denseAccuracy:P1})");
    }

    [Fact]
    public void Global_schedule_keeps_floors_and_Compress_stores_the_trained_masks()
    {
        var model = new GlobalGradual();
        model.Initialize(seed: 5);
        var schedule = model.CreatePruningSchedule();
        Classifier.Train(model, model.Forward, digits.Train, Options with { Epochs = 12, Seed = 5 }, schedule);
        Assert.True(schedule.Step > 400);
        var masks = schedule.Layers.Select(l => l.Mask!).ToArray();
        long kept = masks.Sum(m => m.KeptCount);
        Assert.Equal(PruningRules.KeptCount(64 * 128, 0.9) + PruningRules.KeptCount(128 * 10, 0.9), kept);
        Assert.All(masks, m => Assert.True(m.KeptCount >= PruningRules.MinimumKeptCount(m.Kept.Length, 0.02)));

        var report = model.Compress();
        Assert.Equal(GlobalGradual.PlannedBytes, report.TotalBytesAfter);
        for (int l = 0; l < 2; l++)
            GradualPruningTests.AssertStoresExactly(Assert.IsType<CsrWeight>(((WeightedLayer)model.Layers[l].Layer).CompressedWeight), masks[l].Kept);
    }

    [Fact]
    public void An_array_of_layers_joins_the_global_schedule_and_its_elements_store_their_trained_masks()
    {
        var model = new GlobalGradualHeads();
        model.Initialize(seed: 6);
        var schedule = model.CreatePruningSchedule();
        Assert.Equal(["heads[0]", "heads[1]", "output"], schedule.Layers.Select(l => l.Target.Path));
        Classifier.Train(model, model.Forward, digits.Train, Options with { Epochs = 12, Seed = 6 }, schedule);
        var masks = schedule.Layers.Select(l => l.Mask!).ToArray();
        Assert.Equal(2 * PruningRules.KeptCount(64 * 64, 0.9) + PruningRules.KeptCount(64 * 10, 0.9), masks.Sum(m => m.KeptCount));

        var report = model.Compress();
        Assert.Equal(GlobalGradualHeads.PlannedBytes, report.TotalBytesAfter);
        for (int l = 0; l < 3; l++)
            GradualPruningTests.AssertStoresExactly(Assert.IsType<CsrWeight>(((WeightedLayer)model.Layers[l].Layer).CompressedWeight), masks[l].Kept);
    }
}
