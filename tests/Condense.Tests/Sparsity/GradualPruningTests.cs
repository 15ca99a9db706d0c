using Condense.Catalogue;
using Condense.Compression;
using Condense.Nn;
using Condense.Optim;
using Condense.Sparsity;
using Condense.Tests.EndToEnd;
using Condense.Training;

namespace Condense.Tests.Sparsity;

/// <summary>The cubic schedule, the masks and their selection, without a data set.</summary>
public sealed class GradualPruningTests
{
    [Fact]
    public void Cubic_schedule_follows_Zhu_and_Gupta()
    {
        Assert.Equal(0, GradualSparsity.At(0, 100, 500, 0, 0.9));
        Assert.Equal(0, GradualSparsity.At(100, 100, 500, 0, 0.9));
        Assert.Equal(0.9, GradualSparsity.At(500, 100, 500, 0, 0.9));
        Assert.Equal(0.9, GradualSparsity.At(9000, 100, 500, 0, 0.9));
        // Half way: s_f + (s_i - s_f)(1/2)^3 = 0.9 * 7/8.
        Assert.Equal(0.9 * 7 / 8, GradualSparsity.At(300, 100, 500, 0, 0.9), 12);
        double previous = -1;
        for (int t = 0; t <= 600; t++)
        {
            double s = GradualSparsity.At(t, 100, 500, 0, 0.9);
            Assert.True(s >= previous, $"step {t}");
            previous = s;
        }
        Assert.True(GradualSparsity.IsUpdateStep(100, 100, 500, 30));
        Assert.True(GradualSparsity.IsUpdateStep(130, 100, 500, 30));
        Assert.False(GradualSparsity.IsUpdateStep(131, 100, 500, 30));
        Assert.True(GradualSparsity.IsUpdateStep(500, 100, 500, 30)); // the end step even off the grid
        Assert.False(GradualSparsity.IsUpdateStep(520, 100, 500, 30));
    }

    [Fact]
    public void Generated_schedule_lists_the_declared_layers()
    {
        var targets = DigitsGradual90.PruningSchedule.Targets;
        Assert.Equal(["hidden1", "hidden2"], targets.Select(t => t.Path));
        Assert.All(targets, t => Assert.Equal((0.9, 100, 700, 25, false), (t.Fraction, t.StartStep, t.EndStep, t.Frequency, t.Global)));
        Assert.Equal(700, DigitsGradual90.Plan.Layers[0].PruneEndStep);
        Assert.Equal(0, DigitsOneShot90.Plan.Layers[0].PruneEndStep);
    }

    [Fact]
    public void Schedule_ramps_the_masks_and_masked_weights_stay_zero_through_optimizer_steps()
    {
        var model = new DigitsGradual90();
        model.Initialize(seed: 3);
        var schedule = model.CreatePruningSchedule();
        var optimizer = new AdamW(model.Parameters(), 1e-2f);
        var rng = new Rng(4);
        var x = new float[16 * 64];
        var labels = new int[16];
        var hidden1 = (WeightedLayer)model.Layers[0].Layer;
        for (int step = 1; step <= 750; step++)
        {
            for (int i = 0; i < x.Length; i++) x[i] = rng.NextFloat();
            for (int i = 0; i < labels.Length; i++) labels[i] = i % 10;
            var loss = Ops.SoftmaxCrossEntropy(model.Forward(new Tensor(x, 16, 64)), labels);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
            schedule.OnStep();

            Assert.Equal(step, schedule.Step);
            var layer = schedule.Layers[0];
            double expected = step < 100 ? 0 : GradualSparsity.At(LastUpdate(step), 100, 700, 0, 0.9);
            Assert.Equal(PruningRules.KeptCount(64 * 128, expected), layer.Mask?.KeptCount ?? 64 * 128);
            if (layer.Mask is { } mask)
            {
                var w = hidden1.Weight.Data;
                for (int i = 0; i < w.Length; i++)
                    if (!mask.Kept[i]) Assert.Equal(0f, w[i]);
            }
        }
        Assert.Equal(0.9, schedule.Layers[0].Sparsity, 3);
        Assert.Equal(0.9, schedule.Find("hidden2")!.Sparsity, 3);

        static int LastUpdate(int step) => Math.Min(700, 100 + (step - 100) / 25 * 25);
    }

    [Fact]
    public void Pruning_only_grows_a_mask()
    {
        var rng = new Rng(9);
        var w = new float[500];
        for (int i = 0; i < w.Length; i++) w[i] = rng.NextFloat() - 0.5f;
        var first = new PruningMask(MagnitudePruning.SelectLayer(w, null, 300));
        // Make a removed weight the largest: it must stay removed.
        int removed = Array.IndexOf(first.Kept, false);
        w[removed] = 100;
        var second = MagnitudePruning.SelectLayer(w, first, 200);
        Assert.False(second[removed]);
        for (int i = 0; i < w.Length; i++) Assert.True(!second[i] || first.Kept[i]);
        Assert.Equal(200, second.Count(k => k));
    }

    [Fact]
    public void Global_threshold_gives_layers_of_different_scales_different_sparsities_within_their_floors()
    {
        var rng = new Rng(12);
        float[] Layer(int n, float scale)
        {
            var w = new float[n];
            for (int i = 0; i < n; i++) w[i] = (rng.NextFloat() - 0.5f) * scale;
            return w;
        }
        var big = Layer(4000, 10f);
        var mid = Layer(4000, 3f);
        var tiny = Layer(2000, 0.01f);
        long[] floors = [PruningRules.MinimumKeptCount(4000, 0.05), PruningRules.MinimumKeptCount(4000, 0.05), PruningRules.MinimumKeptCount(2000, 0.05)];
        long kept = PruningRules.KeptCount(4000, 0.5) * 2 + PruningRules.KeptCount(2000, 0.5);
        var selected = MagnitudePruning.SelectGlobal([big, mid, tiny], [null, null, null], floors, kept);
        long[] counts = [.. selected.Select(s => (long)s.Count(k => k))];

        Assert.Equal(kept, counts.Sum());
        Assert.True(counts[0] > counts[1], $"big {counts[0]} vs mid {counts[1]}");
        Assert.Equal(floors[2], counts[2]); // the tiny layer would lose everything; its floor holds
        Assert.True(counts[1] > floors[1], $"mid {counts[1]} should pass the threshold, not only its floor");
        // One threshold: every kept weight outside the floored layer is at least every removed one.
        float smallestKept = float.MaxValue, largestRemoved = 0;
        foreach (var (w, s) in new[] { (big, selected[0]), (mid, selected[1]) })
            for (int i = 0; i < w.Length; i++)
                if (s[i]) smallestKept = Math.Min(smallestKept, Math.Abs(w[i]));
                else largestRemoved = Math.Max(largestRemoved, Math.Abs(w[i]));
        Assert.True(smallestKept >= largestRemoved);
    }

    [Fact]
    public void Global_scope_compress_stores_the_global_selection_and_the_planned_total()
    {
        var model = new GlobalThree();
        model.Initialize(seed: 8);
        var layers = model.Layers.Select(l => (WeightedLayer)l.Layer).ToArray();
        // Very different scales: a global threshold must prune them to different sparsities.
        foreach (ref float w in layers[0].Weight.Data.AsSpan()) w *= 20;
        foreach (ref float w in layers[2].Weight.Data.AsSpan()) w *= 0.001f;
        var weights = layers.Select(l => (float[])l.Weight.Data.Clone()).ToArray();

        var report = model.Compress();

        var csr = layers.Select(l => Assert.IsType<CsrWeight>(l.CompressedWeight)).ToArray();
        long target = GlobalThree.Plan.Layers.Sum(l => PruningRules.KeptCount(l.WeightCount, 0.8));
        Assert.Equal(target, csr.Sum(c => (long)c.NonZeroCount));
        Assert.True(csr[0].NonZeroCount > csr[1].NonZeroCount);
        Assert.Equal(PruningRules.MinimumKeptCount(640, 0.05), csr[2].NonZeroCount);
        Assert.Equal(GlobalThree.PlannedBytes, report.TotalBytesAfter);
        Assert.NotEqual(GlobalThree.Plan.Layers[0].BytesAfter, report.Layers[0].BytesAfter);
        // What a per-layer (one-shot) selection would keep differs: layer-scope pruning would keep 20% of each.
        Assert.NotEqual(PruningRules.KeptCount(4096, 0.8), csr[0].NonZeroCount);
        var expected = MagnitudePruning.SelectGlobal(weights, [null, null, null],
            [.. GlobalThree.Plan.Layers.Select(l => PruningRules.MinimumKeptCount(l.WeightCount, 0.05))], target);
        for (int l = 0; l < 3; l++) AssertStoresExactly(csr[l], expected[l]);
        Assert.Equal("csr 0.8 sparse global", GlobalThree.Plan.Layers[0].TechniqueText);
    }

    [Fact]
    public void Global_scope_model_saves_and_reloads()
    {
        var model = new GlobalThree();
        model.Initialize(seed: 8);
        foreach (ref float w in ((WeightedLayer)model.Layers[0].Layer).Weight.Data.AsSpan()) w *= 20;
        model.Compress();
        string path = Path.Combine(Path.GetTempPath(), "condense-global-" + Guid.NewGuid().ToString("N") + ".safetensors");
        try
        {
            model.Save(path);
            var reloaded = GlobalThree.Load(path);
            var x = new Tensor(Enumerable.Range(0, 4 * 64).Select(i => (float)Math.Sin(i)).ToArray(), 4, 64);
            Assert.Equal(model.Forward(x).Data, reloaded.Forward(x).Data);
        }
        finally { File.Delete(path); }
    }

    internal static void AssertStoresExactly(CsrWeight csr, bool[] kept)
    {
        var stored = new bool[kept.Length];
        for (int r = 0; r < csr.OutFeatures; r++)
            for (int j = csr.RowPointers[r]; j < csr.RowPointers[r + 1]; j++)
                stored[r * csr.InFeatures + csr.ColumnIndices16![j]] = true;
        Assert.Equal(kept, stored);
    }
}
