using Condense.Calibration;
using Condense.MixedPrecision;
using Condense.Nn;

namespace Condense.Tests.MixedPrecision;

/// <summary>The finite-difference Hessian-vector products against a Hessian computed exactly, in double, in the test.</summary>
public sealed class LayerHessianTests
{
    private const int In = 4, Hidden = 6, Classes = 3, Rows = 16;

    /// <summary>x -> ReLU(W1 x + b1) -> W2 h + b2, with its layers listed by hand (no generator).</summary>
    private sealed class TwoLayer : Module
    {
        public readonly Linear First = new(In, Hidden);
        public readonly Linear Second = new(Hidden, Classes);

        public override IReadOnlyList<NamedLayer> Layers => [new("first", First), new("second", Second)];

        public Tensor Forward(Tensor x) => Second.Forward(Ops.Relu(First.Forward(x)));
    }

    private static (TwoLayer Model, float[] X, int[] Labels) Setup()
    {
        var model = new TwoLayer();
        model.Initialize(seed: 13);
        var rng = new Rng(17);
        var x = new float[Rows * In];
        rng.FillUniform(x, -2, 2);
        var labels = Enumerable.Range(0, Rows).Select(i => (int)(rng.NextUInt64() % Classes)).ToArray();
        return (model, x, labels);
    }

    /// <summary>
    /// The exact Hessian blocks of the mean cross-entropy (or, at the float32 weights, of the KL to the float32 outputs:
    /// the same matrix). The logits are linear in W2 and piecewise linear in W1 (ReLU), so each diagonal block is
    /// J^T (diag p - p p^T) J averaged over rows, with J the Jacobian of the logits with respect to that block.
    /// </summary>
    private static double[][,] ExactBlocks(TwoLayer model, float[] x)
    {
        return ExactGaussNewton.TwoLayerBlocks(model.First.Weight.Data, model.First.Bias!.Data, model.Second.Weight.Data,
            model.Second.Bias!.Data, x, Rows, In, Hidden, Classes);
    }



    private static double[] Times(double[,] h, float[] v)
    {
        var result = new double[v.Length];
        for (int u = 0; u < v.Length; u++)
            for (int w = 0; w < v.Length; w++) result[u] += h[u, w] * v[w];
        return result;
    }

    [Theory]
    [InlineData(SensitivityLoss.CrossEntropy)]
    [InlineData(SensitivityLoss.OutputKl)]
    public void ProductsMatchTheExactHessianBlocks(SensitivityLoss loss)
    {
        var (model, x, labels) = Setup();
        var exact = ExactBlocks(model, x);
        var weightsBefore = model.Parameters().Select(p => (float[])p.Data.Clone()).ToList();
        var data = new CalibrationData([new Tensor(x, Rows, In)], [labels]);
        var hessian = new LayerHessian(model.Layers, [0, 1], model.Forward, data, loss);
        Assert.Equal(loss, hessian.Loss);

        for (int block = 0; block < 2; block++)
        {
            // One block at a time: the other is zero, so block i of the product is exactly H_ii v_i.
            var v = new[] { new float[Hidden * In], new float[Classes * Hidden] };
            HutchinsonTrace.FillRademacher(v[block], (ulong)(100 + block));
            var product = new[] { new double[Hidden * In], new double[Classes * Hidden] };
            hessian.Multiply(v, product);
            var expected = Times(exact[block], v[block]);
            double difference = 0, norm = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                difference += (product[block][i] - expected[i]) * (product[block][i] - expected[i]);
                norm += expected[i] * expected[i];
            }
            Assert.True(norm > 1e-6, "the exact product is zero: the test checks nothing");
            Assert.True(Math.Sqrt(difference / norm) < 2e-3, $"{loss}, block {block}: relative error {Math.Sqrt(difference / norm):E2}");
        }
        // The weights are restored bit for bit and no gradient is left behind.
        var weightsAfter = model.Parameters().Select(p => p.Data).ToList();
        for (int i = 0; i < weightsBefore.Count; i++) Assert.Equal(weightsBefore[i], weightsAfter[i]);
        Assert.All(model.Parameters(), p => Assert.Null(p.Grad));
    }

    /// <summary>Hutchinson over the finite-difference products converges to the exact block traces of the small model.</summary>
    [Fact]
    public void TracesOnTheSmallModelMatchTheExactHessian()
    {
        var (model, x, labels) = Setup();
        var exact = ExactBlocks(model, x);
        var hessian = new LayerHessian(model.Layers, [0, 1], model.Forward, new CalibrationData([new Tensor(x, Rows, In)], [labels]));
        var traces = HutchinsonTrace.Estimate(hessian.BlockSizes, hessian.Multiply, samples: 300, seed: 3);
        for (int block = 0; block < 2; block++)
        {
            double trace = 0;
            for (int i = 0; i < exact[block].GetLength(0); i++) trace += exact[block][i, i];
            Assert.True(Math.Abs(traces[block].Trace - trace) <= 4.5 * traces[block].StandardError + 1e-3 * trace,
                $"block {block}: estimate {traces[block].Trace} +- {traces[block].StandardError}, exact {trace}");
        }
    }

    /// <summary>The Gauss-Newton quadratic forms equal v^T H_ii v of the exact blocks, and their traces converge to the exact ones.</summary>
    [Theory]
    [InlineData(SensitivityLoss.CrossEntropy)]
    [InlineData(SensitivityLoss.OutputKl)]
    public void GaussNewtonFormsMatchTheExactHessianBlocks(SensitivityLoss loss)
    {
        var (model, x, labels) = Setup();
        var exact = ExactBlocks(model, x);
        var hessian = new LayerHessian(model.Layers, [0, 1], model.Forward, new CalibrationData([new Tensor(x, Rows, In)], [labels]), loss);
        for (int block = 0; block < 2; block++)
        {
            var v = new float[exact[block].GetLength(0)];
            HutchinsonTrace.FillRademacher(v, (ulong)(200 + block));
            double expected = Times(exact[block], v).Select((h, i) => h * v[i]).Sum();
            double actual = hessian.GaussNewtonQuadraticForm(block, v);
            Assert.True(Math.Abs(actual - expected) <= 2e-3 * Math.Abs(expected), $"{loss}, block {block}: {actual} vs exact {expected}");
        }
        var traces = HutchinsonTrace.Estimate(hessian.BlockSizes, hessian.GaussNewtonQuadraticForm, samples: 300, seed: 3);
        for (int block = 0; block < 2; block++)
        {
            double trace = 0;
            for (int i = 0; i < exact[block].GetLength(0); i++) trace += exact[block][i, i];
            Assert.True(Math.Abs(traces[block].Trace - trace) <= 4.5 * traces[block].StandardError + 1e-3 * trace,
                $"block {block}: estimate {traces[block].Trace} +- {traces[block].StandardError}, exact {trace}");
        }
    }

    /// <summary>
    /// The Gauss-Newton product G_ii v (three passes) equals the exact block times v, its return value is v^T G_ii v, and
    /// the diagonal estimate E[v ⊙ G v] converges to the exact diagonal; the Hessian block product agrees with it.
    /// </summary>
    [Theory]
    [InlineData(SensitivityLoss.CrossEntropy)]
    [InlineData(SensitivityLoss.OutputKl)]
    public void GaussNewtonProductsAndDiagonalsMatchTheExactHessianBlocks(SensitivityLoss loss)
    {
        var (model, x, labels) = Setup();
        var exact = ExactBlocks(model, x);
        var weightsBefore = model.Parameters().Select(p => (float[])p.Data.Clone()).ToList();
        var hessian = new LayerHessian(model.Layers, [0, 1], model.Forward, new CalibrationData([new Tensor(x, Rows, In)], [labels]), loss);
        for (int block = 0; block < 2; block++)
        {
            var v = new float[exact[block].GetLength(0)];
            HutchinsonTrace.FillRademacher(v, (ulong)(300 + block));
            var expected = Times(exact[block], v);
            foreach (bool gaussNewton in new[] { true, false })
            {
                var product = new double[v.Length];
                double q = gaussNewton ? hessian.GaussNewtonProduct(block, v, product) : hessian.BlockProduct(block, v, product);
                double difference = 0, norm = 0, form = 0;
                for (int i = 0; i < v.Length; i++)
                {
                    difference += (product[i] - expected[i]) * (product[i] - expected[i]);
                    norm += expected[i] * expected[i];
                    form += v[i] * expected[i];
                }
                Assert.True(norm > 1e-6, "the exact product is zero: the test checks nothing");
                Assert.True(Math.Sqrt(difference / norm) < 2e-3, $"{loss}, block {block}, Gauss-Newton {gaussNewton}: relative error {Math.Sqrt(difference / norm):E2}");
                Assert.True(Math.Abs(q - form) <= 2e-3 * Math.Abs(form), $"{loss}, block {block}: v^T G v {q} vs exact {form}");
            }
        }
        var weightsAfter = model.Parameters().Select(p => p.Data).ToList();
        for (int i = 0; i < weightsBefore.Count; i++) Assert.Equal(weightsBefore[i], weightsAfter[i]);
        Assert.All(model.Parameters(), p => Assert.Null(p.Grad));

        // Diagonal: each entry's estimate has variance sum_{k != j} H_jk^2 / samples; allow 4.5 standard errors.
        const int samples = 400;
        var (traces, diagonals) = HutchinsonTrace.EstimateWithDiagonal(hessian.BlockSizes, hessian.GaussNewtonProduct, samples, seed: 5);
        for (int block = 0; block < 2; block++)
        {
            var h = exact[block];
            int n = h.GetLength(0);
            double trace = 0;
            for (int j = 0; j < n; j++)
            {
                trace += h[j, j];
                double offDiagonal = 0;
                for (int k = 0; k < n; k++) if (k != j) offDiagonal += h[j, k] * h[j, k];
                double tolerance = 4.5 * Math.Sqrt(offDiagonal / samples) + 2e-3 * Math.Abs(h[j, j]) + 1e-9;
                Assert.True(Math.Abs(diagonals[block][j] - h[j, j]) <= tolerance, $"{loss}, block {block}, weight {j}: diagonal {diagonals[block][j]} vs exact {h[j, j]} (tolerance {tolerance})");
            }
            Assert.True(Math.Abs(traces[block].Trace - trace) <= 4.5 * traces[block].StandardError + 1e-3 * trace,
                $"block {block}: estimate {traces[block].Trace} +- {traces[block].StandardError}, exact {trace}");
        }
    }

    [Fact]
    public void CrossEntropyWithoutLabelsAndGradientsDisabledAreNamedErrors()
    {
        var (model, x, _) = Setup();
        var unlabelled = new CalibrationData([new Tensor(x, Rows, In)]);
        var e = Assert.Throws<InvalidOperationException>(() => new LayerHessian(model.Layers, [0, 1], model.Forward, unlabelled, SensitivityLoss.CrossEntropy));
        Assert.Contains("labelled calibration data", e.Message, StringComparison.Ordinal);
        Assert.Equal(SensitivityLoss.OutputKl, new LayerHessian(model.Layers, [0, 1], model.Forward, unlabelled).Loss);
        using (Tensor.NoGrad())
        {
            var noGrad = Assert.Throws<InvalidOperationException>(() => new LayerHessian(model.Layers, [0, 1], model.Forward, unlabelled));
            Assert.Contains("NoGrad", noGrad.Message, StringComparison.Ordinal);
        }
        var mismatched = new CalibrationData([new Tensor(x, Rows, In)], [new int[Rows - 1]]);
        var rows = Assert.Throws<InvalidDataException>(() => new LayerHessian(model.Layers, [0, 1], model.Forward, mismatched));
        Assert.Contains("batch 0 has 16 rows but 15 labels", rows.Message, StringComparison.Ordinal);
    }
}
