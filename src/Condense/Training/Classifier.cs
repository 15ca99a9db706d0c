using Condense.Data;
using Condense.Nn;
using Condense.Optim;
using Condense.Sparsity;

namespace Condense.Training;

/// <summary>Settings of a classifier training run.</summary>
public sealed record TrainingOptions
{
    public int Epochs { get; init; } = 5;
    public int BatchSize { get; init; } = 128;
    public float LearningRate { get; init; } = 1e-3f;
    public float WeightDecay { get; init; } = 1e-4f;

    /// <summary>Seeds the per-epoch shuffles: same seed, same run.</summary>
    public ulong Seed { get; init; } = 1;
}

/// <summary>Training and evaluation of classifiers: minibatch AdamW on softmax cross-entropy, and accuracy.</summary>
public static class Classifier
{
    /// <summary>Trains <paramref name="model"/> in place; returns the mean loss of every epoch.</summary>
    /// <param name="forward">The model's forward pass, from a [batch, features] tensor to [batch, classes] logits.</param>
    /// <param name="onEpoch">Called after each epoch with its index and mean loss.</param>
    public static IReadOnlyList<double> Train(Module model, Func<Tensor, Tensor> forward, Dataset train, TrainingOptions options, Action<int, double>? onEpoch = null) =>
        Train(model, forward, train, options, pruning: null, onEpoch);

    /// <summary>
    /// Trains <paramref name="model"/> in place while <paramref name="pruning"/> prunes it: the schedule is called once
    /// after every optimizer step, so it recomputes its masks when due and sets the masked weights back to zero before
    /// the next forward pass. Returns the mean loss of every epoch.
    /// </summary>
    /// <param name="forward">The model's forward pass, from a [batch, features] tensor to [batch, classes] logits.</param>
    /// <param name="pruning">A pruning schedule, e.g. the model's generated <c>CreatePruningSchedule()</c>; null trains without pruning.</param>
    /// <param name="onEpoch">Called after each epoch with its index and mean loss.</param>
    public static IReadOnlyList<double> Train(Module model, Func<Tensor, Tensor> forward, Dataset train, TrainingOptions options, IPruningSchedule? pruning, Action<int, double>? onEpoch = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Epochs < 0) throw new ArgumentOutOfRangeException(nameof(options), $"Epochs must be >= 0, not {options.Epochs}.");
        if (options.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), $"BatchSize must be > 0, not {options.BatchSize}.");

        var optimizer = new AdamW(model.Parameters(), options.LearningRate, weightDecay: options.WeightDecay);
        var losses = new List<double>(options.Epochs);
        for (int epoch = 0; epoch < options.Epochs; epoch++)
        {
            double sum = 0;
            int batches = 0;
            ulong shuffle = Rng.Derive(options.Seed, "epoch " + epoch.ToString(System.Globalization.CultureInfo.InvariantCulture));
            foreach (var batch in train.Batches(options.BatchSize, shuffle))
            {
                var x = new Tensor(batch.Features, batch.Count, train.FeatureCount);
                var loss = Ops.SoftmaxCrossEntropy(forward(x), batch.Labels);
                optimizer.ZeroGrad();
                loss.Backward();
                optimizer.Step();
                pruning?.OnStep();
                sum += loss.Data[0];
                batches++;
            }
            double mean = batches == 0 ? 0 : sum / batches;
            losses.Add(mean);
            onEpoch?.Invoke(epoch, mean);
        }
        return losses;
    }

    /// <summary>The predicted class of every sample, without recording autograd history.</summary>
    public static int[] Predict(Func<Tensor, Tensor> forward, Dataset data, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(data);
        var predictions = new int[data.Count];
        int offset = 0;
        using (Tensor.NoGrad())
        {
            foreach (var batch in data.Batches(batchSize, shuffleSeed: null))
            {
                var logits = forward(new Tensor(batch.Features, batch.Count, data.FeatureCount));
                Ops.ArgMax(logits).CopyTo(predictions, offset);
                offset += batch.Count;
            }
        }
        return predictions;
    }

    /// <summary>Fraction of predictions equal to the labels.</summary>
    public static double Accuracy(ReadOnlySpan<int> predictions, ReadOnlySpan<int> labels)
    {
        if (predictions.Length != labels.Length)
            throw new ArgumentException($"{predictions.Length} predictions for {labels.Length} labels.", nameof(predictions));
        if (labels.Length == 0) return 0;
        int correct = 0;
        for (int i = 0; i < labels.Length; i++)
            if (predictions[i] == labels[i]) correct++;
        return (double)correct / labels.Length;
    }
}
