using Condense.Data;
using Condense.IO;
using Condense.Training;

namespace Condense.Tests.EndToEnd;

/// <summary>Trains the dense digits MLP once for all end-to-end tests and saves it.</summary>
public sealed class DigitsFixture : IDisposable
{
    public DigitsFixture()
    {
        var all = Datasets.Digits(Datasets.DigitsDefaultPath).Shuffled(seed: 11);
        (Train, Test) = all.Split(1400);
        Directory = Path.Combine(Path.GetTempPath(), "condense-e2e-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);

        var model = new DigitsInt8();
        model.Initialize(seed: 5);
        Classifier.Train(model, model.Forward, Train, new TrainingOptions { Epochs = 25, BatchSize = 32, LearningRate = 2e-3f, Seed = 5 });
        DenseAccuracy = Classifier.Accuracy(Classifier.Predict(model.Forward, Test), Test.Labels);
        DensePath = Path.Combine(Directory, "digits.dense.safetensors");
        model.Save(DensePath);
    }

    public Dataset Train { get; }
    public Dataset Test { get; }
    public string Directory { get; }
    public string DensePath { get; }
    public double DenseAccuracy { get; }

    public string TempFile(string name) => Path.Combine(Directory, name);

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { }
    }
}

[CollectionDefinition(Name)]
public sealed class DigitsCollection : ICollectionFixture<DigitsFixture>
{
    public const string Name = "digits";
}
