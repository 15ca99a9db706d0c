using BenchmarkDotNet.Attributes;
using Condense.Nn;
using Condense.Optim;
using Condense.Subspace;

namespace Condense.Benchmarks.Training;

/// <summary>
/// One AdamW training step of the paper's 784-200-200-10 network (D = 199,210), plain against a Fastfood subspace
/// of d = 10,000 (BENCHMARKS.md target: the subspace step &lt;= 1.5x the plain one). Run with
/// <c>--filter '*SubspaceStep*'</c>; the ratio column is the number to read.
/// </summary>
[MemoryDiagnoser]
public class SubspaceStepBenchmarks
{
    private Fc _plain = null!, _inner = null!;
    private SubspaceModel<Fc> _subspace = null!;
    private Optimizer _plainOptimizer = null!, _subspaceOptimizer = null!;
    private Tensor _x = null!;
    private int[] _labels = null!;

    [Params(32, 100)]
    public int Batch { get; set; }

    [Params(SubspaceProjection.Fastfood, SubspaceProjection.Sparse)]
    public SubspaceProjection Projection { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Rng(1);
        _x = Tensor.Zeros(Batch, 784);
        rng.FillUniform(_x.Data, 0, 1);
        _labels = Enumerable.Range(0, Batch).Select(i => i % 10).ToArray();
        _plain = new Fc();
        _plain.Initialize(1);
        _plainOptimizer = new AdamW(_plain.Parameters(), 1e-3f);
        _inner = new Fc();
        _subspace = SubspaceModel.Create(_inner, _inner.Forward, new SubspaceSpec(10_000) { Projection = Projection, Seed = 1 },
            new SubspaceOptions { InitializationSeed = 1 });
        _subspaceOptimizer = new AdamW(_subspace.Parameters(), 1e-3f);
    }

    [Benchmark(Baseline = true)]
    public float PlainStep() => Step(_plain.Forward, _plainOptimizer);

    [Benchmark]
    public float SubspaceStep() => Step(_subspace.Forward, _subspaceOptimizer);

    private float Step(Func<Tensor, Tensor> forward, Optimizer optimizer)
    {
        var loss = Ops.SoftmaxCrossEntropy(forward(_x), _labels);
        optimizer.ZeroGrad();
        loss.Backward();
        optimizer.Step();
        return loss.Data[0];
    }

    /// <summary>The fully connected network of Li et al. 2018 (MNIST FC, hidden width 200, depth 2).</summary>
    public sealed class Fc : Module
    {
        private readonly Linear _a = new(784, 200), _b = new(200, 200), _c = new(200, 10);

        public override IReadOnlyList<NamedLayer> Layers => [new("a", _a), new("b", _b), new("c", _c)];

        public Tensor Forward(Tensor x) => _c.Forward(Ops.Relu(_b.Forward(Ops.Relu(_a.Forward(x)))));
    }
}
