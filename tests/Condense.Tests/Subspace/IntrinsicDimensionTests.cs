using Condense.Nn;
using Condense.Subspace;
using Xunit.Abstractions;

namespace Condense.Tests.Subspace;

/// <summary>A raw parameter vector as a layer.</summary>
internal sealed class VectorLayer : Layer
{
    public VectorLayer(int length) => Value = new Tensor(new float[length], length) { RequiresGrad = true };

    public Tensor Value { get; }

    public override IReadOnlyList<Parameter> Parameters => [new Parameter("value", Value)];

    public override void ResetParameters(Rng rng) => rng.FillUniform(Value.Data, -1, 1);
}

/// <summary>
/// Loss ||A theta - b||^2 with A k x D: it depends on theta only through k directions, so its solutions form an
/// affine subspace of codimension k. A random d-dimensional subspace through theta0 meets it when d &gt;= k (almost
/// surely) and misses it when d &lt; k: the intrinsic dimension is k by construction.
/// </summary>
internal sealed class PlantedProblem : Module
{
    private readonly VectorLayer _theta;
    private readonly Tensor _a, _minusB;
    private readonly int _size;

    public PlantedProblem(int k, int size)
    {
        _size = size;
        _theta = new VectorLayer(size);
        var rng = new Rng(Rng.Derive(99, "planted"));
        _a = Tensor.Zeros(k, size);
        for (int i = 0; i < _a.Length; i++) _a.Data[i] = rng.NextGaussian() / MathF.Sqrt(size);
        _minusB = Tensor.Zeros(k, 1);
        for (int i = 0; i < k; i++) _minusB.Data[i] = -rng.NextGaussian();
    }

    public override IReadOnlyList<NamedLayer> Layers => [new("theta", _theta)];

    public Tensor Loss()
    {
        var r = Ops.Add(Ops.MatMul(_a, Ops.Reshape(_theta.Value, _size, 1)), _minusB);
        return Ops.Sum(Ops.Mul(r, r));
    }
}

public sealed class IntrinsicDimensionTests(ITestOutputHelper output)
{
    private const int Size = 120;

    /// <summary>
    /// The fraction of the loss removed by training: 1 when the solution set is reached. The loss is quadratic in the
    /// trained tensor, so conjugate gradients (gradients from Backward, Hessian products as gradient differences) reach
    /// the exact optimum in at most its length of steps, where Adam stalls when the projected problem is
    /// ill-conditioned (d = k: a random square system).
    /// </summary>
    private static double Train(Func<Tensor> loss, Tensor x)
    {
        double[] Gradient()
        {
            x.Grad = null;
            loss().Backward();
            return x.Grad!.Data.Select(v => (double)v).ToArray();
        }
        static double Dot(double[] a, double[] b) => a.Zip(b, (p, q) => p * q).Sum();
        double initial;
        using (Tensor.NoGrad()) initial = loss().Data[0];
        var g = Gradient();
        var direction = g.Select(v => -v).ToArray();
        double g0 = Dot(g, g);
        for (int iteration = 0; iteration < 2 * x.Length && Dot(g, g) > 1e-12 * g0; iteration++)
        {
            var saved = (float[])x.Data.Clone();
            for (int i = 0; i < x.Length; i++) x.Data[i] = (float)(saved[i] + direction[i]);
            var shifted = Gradient();
            saved.CopyTo(x.Data, 0);
            var hessianTimesDirection = shifted.Zip(g, (a, b) => a - b).ToArray();
            double curvature = Dot(direction, hessianTimesDirection);
            if (!(curvature > 0)) break;
            double alpha = Dot(g, g) / curvature;
            for (int i = 0; i < x.Length; i++) x.Data[i] = (float)(x.Data[i] + alpha * direction[i]);
            var next = Gradient();
            double beta = Dot(next, next) / Dot(g, g);
            for (int i = 0; i < x.Length; i++) direction[i] = -next[i] + beta * direction[i];
            g = next;
        }
        double final;
        using (Tensor.NoGrad()) final = loss().Data[0];
        return Math.Max(0, 1 - final / initial);
    }

    private IntrinsicDimensionResult Sweep(int k, SubspaceProjection projection)
    {
        var dummy = Tensor.Zeros(1, 1);
        var result = IntrinsicDimension.Measure(Size,
            seed =>
            {
                var problem = new PlantedProblem(k, Size);
                problem.Initialize(seed);
                return Train(problem.Loss, problem.Parameters()[0]);
            },
            (d, seed) =>
            {
                var problem = new PlantedProblem(k, Size);
                var subspace = SubspaceModel.Create(problem, _ => problem.Loss(), new SubspaceSpec(d) { Projection = projection, Seed = seed },
                    new SubspaceOptions { InitializationSeed = seed });
                return Train(() => subspace.Forward(dummy), subspace.Coordinates);
            },
            new IntrinsicDimensionOptions { Threshold = 0.99, MinDimension = 2, MaxDimension = 60, GridPoints = 5, Seeds = [1, 2, 3] });
        output.WriteLine($"k = {k}, {projection}:\n{result.ToTable()}");
        return result;
    }

    [Theory]
    [InlineData(8, SubspaceProjection.Dense)]
    [InlineData(20, SubspaceProjection.Fastfood)]
    [InlineData(20, SubspaceProjection.Sparse)]
    public void The_sweep_finds_a_planted_intrinsic_dimension(int k, SubspaceProjection projection)
    {
        var result = Sweep(k, projection);
        Assert.True(result.Baseline > 0.999, $"baseline {result.Baseline}");
        // Below k a random subspace misses the solution set: at d = k - j the best reachable loss keeps a
        // Beta(j/2, (k-j)/2) fraction of the initial one (mean j/k), so the 99% threshold sits at k, give or take a
        // couple of d when the seeds' residuals happen to fall almost inside the span.
        Assert.NotNull(result.Dimension);
        Assert.InRange(result.Dimension!.Value, k - 2, k + 2);
        Assert.Contains(result.Curve, p => p.Dimension < k - 2 && p.Mean < result.Target);
        // The bisection closed the bracket: the d just below failed.
        Assert.Contains(result.Curve, p => p.Dimension == result.Dimension - 1 && p.Mean < result.Target);
        Assert.Equal((double)Size / result.Dimension.Value, result.CompressionRatio);
    }

    [Fact]
    public void The_same_seeds_give_the_same_curve()
    {
        var a = Sweep(8, SubspaceProjection.Fastfood);
        var b = Sweep(8, SubspaceProjection.Fastfood);
        Assert.Equal(a.Dimension, b.Dimension);
        Assert.Equal(a.Curve.Select(p => p.Scores.ToArray()), b.Curve.Select(p => p.Scores.ToArray()));
    }

    [Fact]
    public void Bad_grids_are_named()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => IntrinsicDimension.Measure(100, _ => 1, (_, _) => 1, new IntrinsicDimensionOptions { MinDimension = 50, MaxDimension = 20 }));
        Assert.Contains("[50, 20]", e.Message);
        Assert.Throws<ArgumentException>(() => IntrinsicDimension.Measure(100, _ => 1, (_, _) => 1, new IntrinsicDimensionOptions { Seeds = [] }));
    }
}
