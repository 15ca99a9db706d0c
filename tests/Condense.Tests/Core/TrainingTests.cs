using Condense.Nn;
using Condense.Optim;

namespace Condense.Tests.Core;

public class TrainingTests
{
    // Four Gaussian blobs in 8 dimensions, labels by blob; seeded.
    private static (float[] X, int[] Y) Blobs(int count, ulong seed)
    {
        var rng = new Rng(seed);
        var centers = new float[4 * 8];
        var centerRng = new Rng(99);
        for (int i = 0; i < centers.Length; i++) centers[i] = 2f * centerRng.NextGaussian();
        var x = new float[count * 8];
        var y = new int[count];
        for (int n = 0; n < count; n++)
        {
            y[n] = rng.NextInt(4);
            for (int d = 0; d < 8; d++) x[n * 8 + d] = centers[y[n] * 8 + d] + 0.7f * rng.NextGaussian();
        }
        return (x, y);
    }

    private static (float[] Losses, float Accuracy) Train(ulong seed)
    {
        var (x, y) = Blobs(512, seed);
        var l1 = new Linear(8, 32);
        var l2 = new Linear(32, 4);
        l1.ResetParameters(new Rng(Rng.Derive(seed, "l1")));
        l2.ResetParameters(new Rng(Rng.Derive(seed, "l2")));
        var parameters = l1.Parameters.Concat(l2.Parameters).Select(p => p.Value).ToList();
        var opt = new AdamW(parameters, 0.01f);
        var order = Enumerable.Range(0, 512).ToArray();
        var rng = new Rng(seed);
        var losses = new List<float>();
        const int Batch = 32;
        for (int step = 0; step < 300; step++)
        {
            if (step % 16 == 0) rng.Shuffle(order.AsSpan());
            int start = step % 16 * Batch;
            var bx = new float[Batch * 8];
            var by = new int[Batch];
            for (int i = 0; i < Batch; i++)
            {
                Array.Copy(x, order[start + i] * 8, bx, i * 8, 8);
                by[i] = y[order[start + i]];
            }
            var loss = Ops.SoftmaxCrossEntropy(l2.Forward(l1.Forward(new Tensor(bx, Batch, 8)).Gelu()), by);
            opt.ZeroGrad();
            loss.Backward();
            opt.Step();
            losses.Add(loss.Data[0]);
        }
        var (testX, testY) = Blobs(256, seed + 1000);
        using (Tensor.NoGrad())
        {
            var logits = l2.Forward(l1.Forward(new Tensor(testX, 256, 8)).Gelu());
            Assert.False(logits.RequiresGrad);
            return (losses.ToArray(), Ops.Accuracy(logits, testY));
        }
    }

    [Fact]
    public void Mlp_learns_a_seeded_task_and_the_same_seed_gives_identical_losses()
    {
        var (losses, accuracy) = Train(5);
        Assert.True(accuracy > 0.95f, $"accuracy {accuracy}");
        Assert.True(losses[^10..].Average() < 0.3f * losses[..10].Average(), $"loss {losses[0]} -> {losses[^1]}");
        var (again, _) = Train(5);
        Assert.Equal(losses, again);
    }

    [Fact]
    public void Small_cnn_trains_on_a_seeded_pattern_task()
    {
        // Class 0: a vertical bar, class 1: a horizontal bar, at random positions with noise.
        var rng = new Rng(21);
        const int N = 64;
        var x = new float[N * 36];
        var y = new int[N];
        for (int n = 0; n < N; n++)
        {
            y[n] = n % 2;
            int pos = rng.NextInt(6);
            for (int i = 0; i < 36; i++) x[n * 36 + i] = 0.1f * rng.NextGaussian();
            for (int t = 0; t < 6; t++) x[n * 36 + (y[n] == 0 ? t * 6 + pos : pos * 6 + t)] += 1f;
        }
        var conv = new Conv2d(1, 4, 3, padding: 1);
        var head = new Linear(4 * 3 * 3, 2);
        var opt = new Sgd(conv.Parameters.Concat(head.Parameters).Select(p => p.Value).ToList(), 0.1f, momentum: 0.9f);
        float first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            var h = Ops.MaxPool2d(conv.Forward(new Tensor(x, N, 1, 6, 6)).Relu(), 2, 2);
            var loss = Ops.SoftmaxCrossEntropy(head.Forward(h.Flatten()), y);
            if (step == 0) first = loss.Data[0];
            last = loss.Data[0];
            opt.ZeroGrad();
            loss.Backward();
            opt.Step();
        }
        Assert.True(last < 0.2f * first, $"loss {first} -> {last}");
    }
}
