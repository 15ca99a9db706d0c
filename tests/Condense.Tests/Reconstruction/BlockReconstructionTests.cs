using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using Condense.Reconstruction;
using Condense.Tests.Core;
using Condense.Tests.Kernels;
using Condense.Tests.Transformer;
using Condense.Transformer;

namespace Condense.Tests.Reconstruction;

public class BlockReconstructionTests
{
    private const int Batches = 4, Sequences = 2, Length = 6;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_scale_gradient_equals_finite_differences(bool symmetric)
    {
        var rng = new Rng(3);
        var linear = new Linear(48, 8);
        var w = GradCheck.Random(rng, 8, 48).Data;
        linear.LoadWeight(w);
        linear.SetCompressedWeight(GroupQuantizedWeight.Quantize(w, 8, 48, new QuantizationScheme(4, 16, symmetric)));
        var x = GradCheck.Random(rng, 5, 48);
        var target = GradCheck.Random(rng, 5, 8);
        var tunable = new TunableLinear("layer", linear) { RoundScales = false };
        // Away from the starting point, so the gradient is not zero by symmetry of anything.
        for (int g = 0; g < tunable.Factors.Length; g++) tunable.Factors.Data[g] = 0.1f * rng.NextGaussian();
        tunable.Install();

        var loss = BlockReconstruction.Loss(linear.Forward(x), target, ReconstructionLoss.MeanSquaredError, 0);
        loss.Backward();
        tunable.ScaleGradient(1);
        var analytic = tunable.Factors.Grad!.Data.ToArray();

        double Loss()
        {
            tunable.Install();
            using var _ = Tensor.NoGrad();
            return BlockReconstruction.Loss(linear.Forward(x), target, ReconstructionLoss.MeanSquaredError, 0).Data[0];
        }
        double largest = analytic.Max(Math.Abs);
        Assert.True(largest > 1e-3, $"the gradient is {largest}: nothing to compare");
        for (int g = 0; g < analytic.Length; g++)
        {
            // The loss is quadratic in each scale, so a central difference is exact up to float32 rounding.
            const float h = 0.05f;
            float saved = tunable.Factors.Data[g];
            tunable.Factors.Data[g] = saved + h;
            double up = Loss();
            tunable.Factors.Data[g] = saved - h;
            double down = Loss();
            tunable.Factors.Data[g] = saved;
            double numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic[g]) <= 2e-3 * largest, $"group {g}: analytic {analytic[g]}, finite differences {numeric}");
        }
    }

    [Fact]
    public void The_cosine_loss_gradient_equals_finite_differences()
    {
        var rng = new Rng(5);
        var y = GradCheck.Random(rng, 3, 7);
        y.RequiresGrad = true;
        var t = GradCheck.Random(rng, 3, 7);
        double error = GradCheck.MaxRelativeError(() => BlockReconstruction.Loss(y, t, ReconstructionLoss.Cosine, 0), [y]);
        Assert.True(error < 1e-2, $"relative error {error}");
    }

    [Fact]
    public void Tuning_lowers_a_random_bert_blocks_error_and_keeps_codes_format_and_bytes()
    {
        var (quantized, fp32, inputs, batch) = RandomBlocks(11);
        var targets = Targets(fp32, inputs, batch);
        var storages = Storages(quantized);
        double before = KernelError(quantized, inputs, targets, batch);

        var report = BlockReconstruction.Run(Parameters(quantized), i => quantized.Forward(inputs[i], batch), targets,
            new ReconstructionOptions { Steps = 150, LearningRate = 5e-3f, ParameterLearningRate = 2e-3f, Parameters = ReconstructionParameters.All });

        Assert.True(report.Kept);
        Assert.True(report.LossAfter < 0.7 * report.LossBefore, $"loss {report.LossBefore} -> {report.LossAfter}");
        // Measured again through the quantized kernels (float32 activations): the stored float16 scales give the same gain.
        double after = KernelError(quantized, inputs, targets, batch);
        Assert.True(after < 0.7 * before, $"block error through the kernels {before} -> {after}");
        Assert.Equal(before, report.LossBefore, 1e-4 * before);
        Assert.Equal(after, report.LossAfter, 1e-3 * after);
        var tuned = Storages(quantized);
        for (int i = 0; i < tuned.Length; i++)
        {
            Assert.Equal(storages[i].Format, tuned[i].Format);
            Assert.Equal(storages[i].ByteCount, tuned[i].ByteCount);
            Assert.Equal(storages[i].Packed, tuned[i].Packed);
            Assert.Equal(storages[i].ZeroPoints, tuned[i].ZeroPoints);
        }
        Assert.Contains(Enumerable.Range(0, tuned.Length), i => !storages[i].Scales.SequenceEqual(tuned[i].Scales));
    }

    [Fact]
    public void The_same_seed_gives_the_same_bits_at_one_and_two_threads()
    {
        (Half[][] Scales, float[][] Others) Run(int threads)
        {
            int savedGemm = Gemm.MaxDegreeOfParallelism, savedPool = WorkerPool.Shared.MaxDegreeOfParallelism;
            try
            {
                Gemm.MaxDegreeOfParallelism = threads;
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var (quantized, fp32, inputs, batch) = RandomBlocks(12);
                var targets = Targets(fp32, inputs, batch);
                BlockReconstruction.Run(Parameters(quantized), i => quantized.Forward(inputs[i], batch), targets,
                    new ReconstructionOptions { Steps = 20, Seed = 9, Parameters = ReconstructionParameters.All, KeepOnlyIfBetter = false });
                return (Storages(quantized).Select(s => s.Scales.ToArray()).ToArray(),
                    quantized.NamedParameters().Where(p => !p.Path.EndsWith(".weight", StringComparison.Ordinal) || p.Path.Contains("Norm", StringComparison.Ordinal))
                        .Select(p => p.Value.Data.ToArray()).ToArray());
            }
            finally
            {
                Gemm.MaxDegreeOfParallelism = savedGemm;
                WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            }
        }
        var one = Run(1);
        var two = Run(2);
        Assert.Equal(one.Scales, two.Scales);
        Assert.Equal(one.Others, two.Others);
        Assert.NotEmpty(one.Others);
    }

    [Fact]
    public void Bad_options_are_named()
    {
        var (quantized, fp32, inputs, batch) = RandomBlocks(13);
        var targets = Targets(fp32, inputs, batch);
        void Run(ReconstructionOptions o) => BlockReconstruction.Run(Parameters(quantized), i => quantized.Forward(inputs[i], batch), targets, o);
        Assert.Equal("Steps", Assert.Throws<ArgumentOutOfRangeException>(() => Run(new() { Steps = -1 })).ParamName);
        Assert.Equal("LearningRate", Assert.Throws<ArgumentOutOfRangeException>(() => Run(new() { LearningRate = 0f })).ParamName);
        Assert.Equal("LearningRate", Assert.Throws<ArgumentOutOfRangeException>(() => Run(new() { LearningRate = float.NaN })).ParamName);
        Assert.Equal("ParameterLearningRate", Assert.Throws<ArgumentOutOfRangeException>(() => Run(new() { ParameterLearningRate = float.PositiveInfinity })).ParamName);
        Assert.Equal("Parameters", Assert.Throws<ArgumentOutOfRangeException>(() => Run(new() { Parameters = (ReconstructionParameters)64 })).ParamName);
        // A dense Linear is named with its path.
        var e = Assert.Throws<ArgumentException>(() => BlockReconstruction.Run(Parameters(fp32), i => fp32.Forward(inputs[i], batch), targets));
        Assert.Contains("'query'", e.Message, StringComparison.Ordinal);
        Assert.Contains("dense", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_non_finite_loss_is_named_and_leaves_the_weights_untouched()
    {
        var (quantized, fp32, inputs, batch) = RandomBlocks(14);
        var targets = Targets(fp32, inputs, batch);
        var storages = Storages(quantized);
        var values = quantized.NamedParameters().Select(p => p.Value.Data.ToArray()).ToArray();
        int recorded = 0;
        Tensor Forward(int i)
        {
            var y = quantized.Forward(inputs[i], batch);
            // The third recorded step's output turns NaN, as a diverging run would.
            return Tensor.IsGradEnabled && ++recorded == 3 ? Ops.Mul(y, float.NaN) : y;
        }
        var e = Assert.Throws<ReconstructionException>(() => BlockReconstruction.Run(Parameters(quantized), Forward, targets,
            new ReconstructionOptions { Parameters = ReconstructionParameters.All }));
        Assert.Contains("NaN at step 3", e.Message, StringComparison.Ordinal);
        Assert.Contains("LearningRate", e.Message, StringComparison.Ordinal);
        var after = Storages(quantized);
        for (int i = 0; i < after.Length; i++) Assert.Same(storages[i], after[i]);
        Assert.Equal(values, quantized.NamedParameters().Select(p => p.Value.Data.ToArray()).ToArray());
    }

    // An fp32 TinyBertBlock and the same block compressed by its plan (int4 g16 attention, int8 per-row feed-forward), random inputs.
    private static (TinyBertBlock Quantized, TinyBertBlock Fp32, Tensor[] Inputs, SequenceBatch Batch) RandomBlocks(ulong seed)
    {
        var fp32 = new TinyBertBlock();
        fp32.Initialize(seed);
        var quantized = new TinyBertBlock();
        quantized.Initialize(seed);
        quantized.Compress();
        var rng = new Rng(seed + 100);
        var inputs = Enumerable.Range(0, Batches).Select(_ => GradCheck.Random(rng, Sequences * Length, TinyBertBlock.Hidden)).ToArray();
        return (quantized, fp32, inputs, new SequenceBatch(Sequences, Length));
    }

    private static Tensor[] Targets(TinyBertBlock fp32, Tensor[] inputs, SequenceBatch batch)
    {
        using var _ = Tensor.NoGrad();
        return inputs.Select(x => fp32.Forward(x, batch)).ToArray();
    }

    private static NamedLayer[] Parameters(TinyBertBlock block) => [.. block.Layers, .. block.ParameterLayers];

    private static GroupQuantizedWeight[] Storages(TinyBertBlock block) =>
        block.Layers.Select(l => (GroupQuantizedWeight)((Linear)l.Layer).CompressedWeight!).ToArray();

    private static double KernelError(TinyBertBlock block, Tensor[] inputs, Tensor[] targets, SequenceBatch batch)
    {
        using var knobs = KernelKnobs.Save();
        KernelOptions.QuantizedActivations = ActivationPrecision.Float32;
        using var _ = Tensor.NoGrad();
        double sum = 0;
        for (int i = 0; i < inputs.Length; i++)
        {
            var y = block.Forward(inputs[i], batch);
            double s = 0;
            for (int j = 0; j < y.Length; j++) { double d = (double)y.Data[j] - targets[i].Data[j]; s += d * d; }
            sum += s / y.Length;
        }
        return sum / inputs.Length;
    }
}
