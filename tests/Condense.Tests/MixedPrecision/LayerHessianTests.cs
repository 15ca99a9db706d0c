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
        var w1 = model.First.Weight.Data;
        var b1 = model.First.Bias!.Data;
        var w2 = model.Second.Weight.Data;
        var b2 = model.Second.Bias!.Data;
        var h1 = new double[Hidden * In, Hidden * In];
        var h2 = new double[Classes * Hidden, Classes * Hidden];
        for (int n = 0; n < Rows; n++)
        {
            var a = new double[Hidden];
            var h = new double[Hidden];
            for (int i = 0; i < Hidden; i++)
            {
                a[i] = b1[i];
                for (int m = 0; m < In; m++) a[i] += (double)w1[i * In + m] * x[n * In + m];
                h[i] = Math.Max(a[i], 0);
            }
            var z = new double[Classes];
            for (int k = 0; k < Classes; k++)
            {
                z[k] = b2[k];
                for (int i = 0; i < Hidden; i++) z[k] += (double)w2[k * Hidden + i] * h[i];
            }
            double max = z.Max();
            var p = z.Select(v => Math.Exp(v - max)).ToArray();
            double sum = p.Sum();
            for (int k = 0; k < Classes; k++) p[k] /= sum;
            var s = new double[Classes, Classes];
            for (int k = 0; k < Classes; k++)
                for (int l = 0; l < Classes; l++) s[k, l] = (k == l ? p[k] : 0) - p[k] * p[l];

            // J2[k, (k', j)] = delta(k, k') h_j ; J1[k, (i, m)] = W2[k, i] 1[a_i > 0] x_m.
            var j2 = new double[Classes, Classes * Hidden];
            for (int k = 0; k < Classes; k++)
                for (int j = 0; j < Hidden; j++) j2[k, k * Hidden + j] = h[j];
            var j1 = new double[Classes, Hidden * In];
            for (int k = 0; k < Classes; k++)
                for (int i = 0; i < Hidden; i++)
                    for (int m = 0; m < In; m++)
                        j1[k, i * In + m] = a[i] > 0 ? w2[k * Hidden + i] * x[n * In + m] : 0;
            Accumulate(h1, j1, s);
            Accumulate(h2, j2, s);
        }
        Scale(h1, 1.0 / Rows);
        Scale(h2, 1.0 / Rows);
        return [h1, h2];
    }

    private static void Accumulate(double[,] h, double[,] j, double[,] s)
    {
        int n = h.GetLength(0), c = s.GetLength(0);
        for (int u = 0; u < n; u++)
            for (int v = 0; v < n; v++)
            {
                double sum = 0;
                for (int k = 0; k < c; k++)
                    for (int l = 0; l < c; l++) sum += j[k, u] * s[k, l] * j[l, v];
                h[u, v] += sum;
            }
    }

    private static void Scale(double[,] h, double factor)
    {
        for (int u = 0; u < h.GetLength(0); u++)
            for (int v = 0; v < h.GetLength(1); v++) h[u, v] *= factor;
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
