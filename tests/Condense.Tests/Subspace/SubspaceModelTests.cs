using Condense.Nn;
using Condense.Optim;
using Condense.Subspace;
using Condense.Tests.Core;

namespace Condense.Tests.Subspace;

/// <summary>A two-layer MLP with a hand-written layer registry (no generator needed).</summary>
internal sealed class SmallMlp : Module
{
    public SmallMlp(int input = 6, int hidden = 5, int classes = 3)
    {
        Hidden = new Linear(input, hidden);
        Output = new Linear(hidden, classes);
    }

    public Linear Hidden { get; }
    public Linear Output { get; }

    public override IReadOnlyList<NamedLayer> Layers => [new("hidden", Hidden), new("output", Output)];

    public Tensor Forward(Tensor x) => Output.Forward(Ops.Relu(Hidden.Forward(x)));
}

public class SubspaceModelTests
{
    private static (Tensor X, int[] Labels) Batch(int rows = 8, int features = 6, int classes = 3)
    {
        var rng = new Rng(3);
        var x = GradCheck.Random(rng, rows, features);
        var labels = Enumerable.Range(0, rows).Select(i => i % classes).ToArray();
        return (x, labels);
    }

    [Theory]
    [InlineData(SubspaceProjection.Dense)]
    [InlineData(SubspaceProjection.Sparse)]
    [InlineData(SubspaceProjection.Fastfood)]
    public void Gradient_of_the_coordinates_matches_finite_differences(SubspaceProjection kind)
    {
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(7) { Projection = kind, Seed = 4 }, new SubspaceOptions { InitializationSeed = 9 });
        var (x, labels) = Batch();
        // Away from 0, scaled so theta moves visibly: the ReLU kinks are then not crossed by the finite step.
        var rng = new Rng(5);
        for (int i = 0; i < 7; i++) subspace.Coordinates.Data[i] = rng.NextUniform(-0.5f, 0.5f);
        double error = GradCheck.MaxRelativeError(() => Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels), [subspace.Coordinates], step: 1e-2f);
        Assert.True(error < 2e-2, $"{kind}: worst relative gradient error {error}");
    }

    [Fact]
    public void Gradient_equals_P_transpose_of_the_dense_gradient()
    {
        var mlp = new SmallMlp();
        mlp.Initialize(2);
        var (x, labels) = Batch();
        // The plain model's gradient at theta0, flattened in parameter order.
        var dense = Ops.SoftmaxCrossEntropy(mlp.Forward(x), labels);
        dense.Backward();
        var g = mlp.Parameters().SelectMany(p => p.Grad!.Data).ToArray();
        foreach (var p in mlp.Parameters()) p.Grad = null;

        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(10) { Projection = SubspaceProjection.Sparse, Seed = 1 });
        Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels).Backward();
        var expected = new float[10];
        subspace.Groups[0].Projection.ProjectTranspose(g, expected);
        Assert.Equal(expected, subspace.Coordinates.Grad!.Data);
    }

    [Fact]
    public void Coordinates_start_at_zero_so_the_model_starts_at_theta0_and_are_the_only_parameter()
    {
        var mlp = new SmallMlp();
        mlp.Initialize(7);
        var before = mlp.Parameters().SelectMany(p => p.Data).ToArray();
        var (x, _) = Batch();
        var plain = mlp.Forward(x).Data;
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(12) { Projection = SubspaceProjection.Fastfood });
        Assert.All(subspace.Coordinates.Data, v => Assert.Equal(0f, v));
        Assert.Equal(plain, subspace.Forward(x).Data);
        Assert.Equal(before, mlp.Parameters().SelectMany(p => p.Data).ToArray());
        var parameter = Assert.Single(subspace.Parameters());
        Assert.Same(subspace.Coordinates, parameter);
        Assert.Equal("subspace.coordinates", Assert.Single(subspace.NamedParameters()).Path);
    }

    [Theory]
    [InlineData(SubspaceProjection.Dense)]
    [InlineData(SubspaceProjection.Sparse)]
    [InlineData(SubspaceProjection.Fastfood)] // written straight into the layers: must equal Project's bits
    public void The_model_follows_theta0_plus_P_d(SubspaceProjection kind)
    {
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(5) { Projection = kind, Seed = 3 }, new SubspaceOptions { InitializationSeed = 1 });
        var theta0 = mlp.Parameters().SelectMany(p => p.Data).ToArray();
        float[] d = [0.3f, -1, 0.5f, 2, -0.25f];
        subspace.SetCoordinates(d);
        subspace.Forward(Batch().X);
        var expected = (float[])theta0.Clone();
        subspace.Groups[0].Projection.Project(d, expected);
        Assert.Equal(expected, mlp.Parameters().SelectMany(p => p.Data).ToArray());
    }

    [Fact]
    public void An_optimizer_trains_the_coordinates_and_the_loss_falls()
    {
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(20) { Projection = SubspaceProjection.Fastfood, Seed = 2 }, new SubspaceOptions { InitializationSeed = 3 });
        var optimizer = new AdamW(subspace.Parameters(), 0.05f);
        var (x, labels) = Batch();
        float first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            var loss = Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
            if (step == 0) first = loss.Data[0];
            last = loss.Data[0];
        }
        Assert.True(last < first * 0.7, $"loss {first} -> {last}");
        // The layers' tensors are not leaves while the subspace drives them: they carry no optimizer state.
        Assert.All(mlp.Parameters(), p => Assert.True(p.RequiresGrad));
    }

    [Theory]
    [InlineData(SubspaceProjection.Dense, 300)]
    [InlineData(SubspaceProjection.Sparse, 300)]
    [InlineData(SubspaceProjection.Fastfood, 40_000)] // L = 2^16: the Fastfood passes split over the pool
    [InlineData(SubspaceProjection.Fastfood, 3000)] // L = 2^12, 17 blocks: whole blocks split over the pool
    public void Training_steps_give_the_same_bits_at_1_and_2_threads(SubspaceProjection kind, int d)
    {
        var rng = new Rng(8);
        var x = GradCheck.Random(rng, 16, 256);
        var labels = Enumerable.Range(0, 16).Select(i => i % 10).ToArray();
        float[] Run(int threads)
        {
            int pool = Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism, gemm = Condense.Kernels.Gemm.MaxDegreeOfParallelism;
            try
            {
                Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                Condense.Kernels.Gemm.MaxDegreeOfParallelism = threads;
                var mlp = new SmallMlp(256, 256, 10); // D = 68,362: three generation chunks
                var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(d) { Projection = kind, Seed = 6 }, new SubspaceOptions { InitializationSeed = 4 });
                var optimizer = new AdamW(subspace.Parameters(), 1e-2f);
                for (int step = 0; step < 3; step++)
                {
                    var loss = Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels);
                    optimizer.ZeroGrad();
                    loss.Backward();
                    optimizer.Step();
                }
                subspace.Forward(x);
                return [.. subspace.Coordinates.Data, .. mlp.Parameters().SelectMany(p => p.Data)];
            }
            finally
            {
                Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism = pool;
                Condense.Kernels.Gemm.MaxDegreeOfParallelism = gemm;
            }
        }
        var one = Run(1);
        Assert.Contains(one, v => v != 0);
        Assert.Equal(one, Run(2));
    }

    [Fact]
    public void Linked_parameters_keep_their_gradient_buffers_between_steps()
    {
        // A fresh weight-sized gradient per step would land on the large-object heap at real sizes (gen-2 collections).
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(9) { Projection = SubspaceProjection.Fastfood });
        var (x, labels) = Batch();
        Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels).Backward();
        var buffer = mlp.Hidden.Weight.Grad;
        var first = (float[])subspace.Coordinates.Grad!.Data.Clone();
        subspace.Coordinates.Grad = null;
        Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels).Backward();
        Assert.Same(buffer, mlp.Hidden.Weight.Grad);
        // Zeroed, not accumulated: the same input gives the same gradient again.
        Assert.Equal(first, subspace.Coordinates.Grad!.Data);
    }

    [Theory]
    [InlineData(SubspaceProjection.Sparse)]
    [InlineData(SubspaceProjection.Fastfood)]
    public void A_layer_left_out_of_a_later_forward_adds_nothing_from_its_old_gradient(SubspaceProjection kind)
    {
        // The gradient buffer is not cleared between steps; a layer whose backward does not run must count as zero.
        var spec = new SubspaceSpec(9) { Projection = kind, Seed = 2 };
        var options = new SubspaceOptions { InitializationSeed = 5 };
        var (x, labels) = Batch();
        bool full = true;
        var mlp = new SmallMlp(hidden: 5);
        var subspace = SubspaceModel.Create(mlp, t => full ? mlp.Forward(t) : mlp.Hidden.Forward(t), spec, options);
        Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels).Backward();
        Assert.Contains(mlp.Output.Weight.Grad!.Data, v => v != 0);
        full = false;
        subspace.Coordinates.Grad = null;
        Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels).Backward();

        var fresh = new SmallMlp(hidden: 5);
        var reference = SubspaceModel.Create(fresh, fresh.Hidden.Forward, spec, options);
        Ops.SoftmaxCrossEntropy(reference.Forward(x), labels).Backward();
        Assert.Equal(reference.Coordinates.Grad!.Data, subspace.Coordinates.Grad!.Data);
    }

    [Fact]
    public void Per_layer_subspace_freezes_or_trains_the_other_layers()
    {
        var (x, labels) = Batch();
        foreach (var mode in new[] { UncoveredLayers.Frozen, UncoveredLayers.Trained })
        {
            var mlp = new SmallMlp();
            var subspace = SubspaceModel.Create(mlp, mlp.Forward, [new SubspaceSpec(4) { Layers = ["hidden"], Projection = SubspaceProjection.Sparse }],
                new SubspaceOptions { UncoveredLayers = mode, InitializationSeed = 5 });
            Assert.Equal(UncoveredLayers.Frozen == mode ? 1 : 3, subspace.Parameters().Count);
            Assert.Equal(6 * 5 + 5, subspace.Groups[0].FullDimension);
            var outputBefore = (float[])mlp.Output.Weight.Data.Clone();
            var optimizer = new Sgd(subspace.Parameters(), 0.1f);
            for (int step = 0; step < 3; step++)
            {
                var loss = Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels);
                optimizer.ZeroGrad();
                loss.Backward();
                optimizer.Step();
            }
            Assert.Contains(subspace.Coordinates.Data, v => v != 0);
            if (mode == UncoveredLayers.Frozen)
            {
                Assert.Equal(outputBefore, mlp.Output.Weight.Data);
                Assert.Null(mlp.Output.Weight.Grad);
            }
            else
            {
                Assert.NotEqual(outputBefore, mlp.Output.Weight.Data);
            }
            // Materialize gives the layers back as trainable leaves.
            subspace.Materialize();
            Assert.True(mlp.Output.Weight.RequiresGrad);
            var plain = new Sgd(mlp.Parameters(), 0.1f);
            var hiddenBefore = (float[])mlp.Hidden.Weight.Data.Clone();
            Ops.SoftmaxCrossEntropy(mlp.Forward(x), labels).Backward();
            plain.Step();
            Assert.NotEqual(hiddenBefore, mlp.Hidden.Weight.Data);
            Assert.All(subspace.Coordinates.Data, v => Assert.True(float.IsFinite(v)));
        }
    }

    [Fact]
    public void Two_per_layer_subspaces_share_one_coordinate_tensor()
    {
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward,
            [new SubspaceSpec(4) { Layers = ["hidden"] }, new SubspaceSpec(3) { Layers = ["output"], Projection = SubspaceProjection.Fastfood }]);
        Assert.Equal(7, subspace.Coordinates.Length);
        Assert.Equal([0, 4], subspace.Groups.Select(g => g.Offset));
        var (x, labels) = Batch();
        Ops.SoftmaxCrossEntropy(subspace.Forward(x), labels).Backward();
        Assert.Contains(subspace.Coordinates.Grad!.Data[..4], v => v != 0);
        Assert.Contains(subspace.Coordinates.Grad!.Data[4..], v => v != 0);
    }

    [Fact]
    public void Materialize_writes_theta_for_good_and_ends_the_subspace_model()
    {
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(6) { Seed = 8 }, new SubspaceOptions { InitializationSeed = 2 });
        subspace.SetCoordinates([1, 2, 3, -1, -2, -3]);
        var (x, _) = Batch();
        var viaSubspace = subspace.Forward(x).Data;
        var model = subspace.Materialize();
        Assert.Same(mlp, model);
        Assert.Equal(viaSubspace, mlp.Forward(x).Data);
        Assert.All(mlp.Parameters(), p => Assert.Null(p.Grad));
        var e = Assert.Throws<InvalidOperationException>(() => subspace.Forward(x));
        Assert.Contains("materialized", e.Message);
    }

    [Fact]
    public void Bad_declarations_and_coordinates_are_named()
    {
        var mlp = new SmallMlp();
        var unknown = Assert.Throws<ArgumentException>(() => SubspaceModel.Create(mlp, mlp.Forward, [new SubspaceSpec(2) { Layers = ["hiden"] }]));
        Assert.Contains("'hiden'", unknown.Message);
        Assert.Contains("hidden, output", unknown.Message);
        var tooLarge = Assert.Throws<ArgumentOutOfRangeException>(() => SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(53)));
        Assert.Contains("d = 53 for D = 53", tooLarge.Message);
        var twice = Assert.Throws<ArgumentException>(() => SubspaceModel.Create(mlp, mlp.Forward,
            [new SubspaceSpec(2) { Layers = ["hidden"] }, new SubspaceSpec(2) { Layers = ["hidden", "output"] }]));
        Assert.Contains("'hidden' is in two subspaces", twice.Message);

        var subspace = SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(4));
        var length = Assert.Throws<ArgumentException>(() => subspace.SetCoordinates(new float[5]));
        Assert.Contains("5 values; expected d = 4", length.Message);
        var nan = Assert.Throws<InvalidOperationException>(() => subspace.SetCoordinates([0, float.NaN, 0, 0]));
        Assert.Contains("NaN at index 1", nan.Message);
        subspace.Coordinates.Data[2] = float.PositiveInfinity;
        var inf = Assert.Throws<InvalidOperationException>(() => subspace.Materialize());
        Assert.Contains("subspace 'model'", inf.Message);
    }

    [Fact]
    public void A_compressed_layer_cannot_be_reparameterized()
    {
        var mlp = new SmallMlp();
        var w = mlp.Hidden.Weight.Data;
        mlp.Hidden.SetCompressedWeight(Condense.Quantization.GroupQuantizedWeight.Quantize(w, 5, 6, new Condense.Quantization.QuantizationScheme(8, 0, true)));
        var e = Assert.Throws<ArgumentException>(() => SubspaceModel.Create(mlp, mlp.Forward, new SubspaceSpec(2)));
        Assert.Contains("'hidden'", e.Message);
        Assert.Contains("compressed", e.Message);
    }
}
