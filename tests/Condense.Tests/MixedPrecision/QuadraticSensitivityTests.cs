using Condense.Calibration;
using Condense.Compression;
using Condense.Kernels;
using Condense.MixedPrecision;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Tests.MixedPrecision;

/// <summary>A model small enough for an exact Hessian: 32 -> ReLU 8 -> 3, both layers left to [MixedPrecision].</summary>
[Compressible]
[MixedPrecision(2, 3, 4, 8, AverageBits = 4)]
public sealed partial class TinyMixed : Module
{
    private readonly Linear first = new(32, 8);
    private readonly Linear second = new(8, 3);

    public Tensor Forward(Tensor x) => second.Forward(Ops.Relu(first.Forward(x)));
}

/// <summary>
/// <see cref="SensitivityMethod.HessianQuadratic"/> (Omega = 1/2 dW^T H dW along the format's quantization error) and
/// <see cref="SensitivityWeighting.TopEigenvalue"/> against a Hessian computed exactly, in double, in the test.
/// </summary>
public sealed class QuadraticSensitivityTests(MixedDigitsFixture fixture) : IClassFixture<MixedDigitsFixture>
{
    private const int In = 32, Hidden = 8, Classes = 3, Rows = 16;

    private static (TinyMixed Model, CalibrationData Data, float[] X) Setup()
    {
        var model = new TinyMixed();
        model.Initialize(seed: 21);
        var rng = new Rng(5);
        var x = new float[Rows * In];
        rng.FillUniform(x, -2, 2);
        return (model, new CalibrationData([new Tensor(x, Rows, In)]), x);
    }

    /// <summary>
    /// The exact Hessian blocks of the mean KL(softmax(f_fp32) || softmax(f)) at the float32 weights: there its gradient
    /// with respect to the logits is zero, so each block is J^T (diag p - p p^T) J averaged over rows (J the Jacobian of
    /// the logits with respect to that block; the logits are linear in the second layer and piecewise linear in the first).
    /// </summary>
    private static double[][,] ExactBlocks(TinyMixed model, float[] x)
    {
        var firstLayer = (Linear)model.Layers[0].Layer;
        var secondLayer = (Linear)model.Layers[1].Layer;
        return ExactGaussNewton.TwoLayerBlocks(firstLayer.Weight.Data, firstLayer.Bias!.Data, secondLayer.Weight.Data,
            secondLayer.Bias!.Data, x, Rows, In, Hidden, Classes);
    }



    private static double Form(double[,] h, double[] d)
    {
        double total = 0;
        for (int u = 0; u < d.Length; u++)
        {
            double row = 0;
            for (int v = 0; v < d.Length; v++) row += h[u, v] * d[v];
            total += d[u] * row;
        }
        return total;
    }

    /// <summary>The largest eigenvalue of a symmetric positive semidefinite matrix: power iteration in double until the Rayleigh quotient settles.</summary>
    private static double LargestEigenvalue(double[,] h)
    {
        int n = h.GetLength(0);
        var v = Enumerable.Range(0, n).Select(i => 1.0 + 0.01 * i).ToArray();
        double lambda = 0;
        for (int iteration = 0; iteration < 20000; iteration++)
        {
            var w = new double[n];
            for (int u = 0; u < n; u++)
                for (int c = 0; c < n; c++) w[u] += h[u, c] * v[c];
            double next = w.Select((x, i) => x * v[i]).Sum() / v.Select(x => x * x).Sum();
            double norm = Math.Sqrt(w.Select(x => x * x).Sum());
            for (int u = 0; u < n; u++) v[u] = w[u] / norm;
            if (Math.Abs(next - lambda) <= 1e-12 * next) return next;
            lambda = next;
        }
        return lambda;
    }

    /// <summary>dW = Q(W) - W of the format Compress stores, in double.</summary>
    private static double[] Error(TinyMixed model, int layer, int bits, int groupSize)
    {
        var plan = TinyMixed.Plan.Layers[layer];
        var weight = ((WeightedLayer)model.Layers[layer].Layer).Weight.Data;
        var restored = new float[weight.Length];
        GroupQuantizedWeight.Quantize(weight, plan.OutFeatures, plan.InFeatures, MixedPrecisionSensitivity.Scheme(bits, groupSize), QuantizationRounding.MseClip).Dequantize(restored);
        return restored.Select((r, j) => (double)r - weight[j]).ToArray();
    }

    [Theory]
    [InlineData(SensitivityCurvature.GaussNewton)]
    [InlineData(SensitivityCurvature.Hessian)]
    public void OmegaIsHalfTheExactQuadraticFormAlongTheQuantizationError(SensitivityCurvature curvature)
    {
        var (model, data, x) = Setup();
        var exact = ExactBlocks(model, x);
        var before = model.Parameters().Select(p => (float[])p.Data.Clone()).ToList();
        var sensitivity = MixedPrecisionSensitivity.Measure(TinyMixed.Plan, model.Layers, model.Forward, data,
            new MixedPrecisionOptions { Method = SensitivityMethod.HessianQuadratic, Curvature = curvature });
        Assert.Equal(SensitivityMethod.HessianQuadratic, sensitivity.Method);
        Assert.Equal(SensitivityLoss.OutputKl, sensitivity.Loss);
        // The first layer (32 inputs) also has groups of 16: the direction differs from the per-row format's.
        Assert.Contains(16, Enumerable.Range(0, sensitivity.Layers[0].Bits.Count).Select(sensitivity.Layers[0].GroupSizeAt));
        foreach (var layer in sensitivity.Layers)
            for (int k = 0; k < layer.Bits.Count; k++)
            {
                var d = Error(model, layer.LayerIndex, layer.Bits[k], layer.GroupSizeAt(k));
                double expected = 0.5 * Form(exact[layer.LayerIndex], d);
                Assert.True(expected > 0, "the exact form is zero: the test checks nothing");
                Assert.True(Math.Abs(layer.Omega[k] - expected) <= 3e-3 * expected,
                    $"{curvature}, {layer.Path} at {layer.Bits[k]} bits, group {layer.GroupSizeAt(k)}: Omega {layer.Omega[k]:G6}, exact 1/2 dW^T H dW {expected:G6}");
                Assert.Equal(d.Sum(v => v * v), layer.SquaredError[k], 9);
            }
        // Not the trace model: along the actual error the curvature is not the block's average (here the 2-bit first
        // layer's effective curvature differs from Tr(H)/n by more than the tolerance above).
        var first = sensitivity.Layers[0];
        double trace = 0;
        for (int j = 0; j < exact[0].GetLength(0); j++) trace += exact[0][j, j];
        double traceModel = 0.5 * trace / first.WeightCount * first.SquaredError[0];
        Assert.True(Math.Abs(first.Omega[0] / traceModel - 1) > 0.05, $"2-bit first layer: Omega {first.Omega[0]:G4}, trace model {traceModel:G4}");
        for (int i = 0; i < before.Count; i++) Assert.Equal(before[i], model.Parameters().ElementAt(i).Data);
        Assert.All(model.Parameters(), p => Assert.Null(p.Grad));
    }

    [Theory]
    [InlineData(SensitivityCurvature.GaussNewton)]
    [InlineData(SensitivityCurvature.Hessian)]
    public void TopEigenvalueMatchesTheExactBlockAndBoundsTheQuadraticForm(SensitivityCurvature curvature)
    {
        var (model, data, x) = Setup();
        var exact = ExactBlocks(model, x);
        var options = new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, Weighting = SensitivityWeighting.TopEigenvalue, Curvature = curvature, PowerIterations = 300, Seed = 9 };
        var eigen = MixedPrecisionSensitivity.Measure(TinyMixed.Plan, model.Layers, model.Forward, data, options);
        var quadratic = MixedPrecisionSensitivity.Measure(TinyMixed.Plan, model.Layers, model.Forward, data,
            new MixedPrecisionOptions { Method = SensitivityMethod.HessianQuadratic, Curvature = curvature });
        foreach (var layer in eigen.Layers)
        {
            double expected = LargestEigenvalue(exact[layer.LayerIndex]);
            Assert.True(Math.Abs(layer.TopEigenvalue - expected) <= 5e-3 * expected, $"{curvature}, {layer.Path}: lambda_max {layer.TopEigenvalue:G6}, exact {expected:G6}");
            for (int k = 0; k < layer.Bits.Count; k++)
            {
                Assert.Equal(0.5 * layer.TopEigenvalue * layer.SquaredError[k], layer.Omega[k], 12);
                // An upper bound of the quadratic form along the actual error (up to the estimates' tolerance).
                Assert.True(layer.Omega[k] >= quadratic.Layers[layer.LayerIndex].Omega[k] * (1 - 1e-2), $"{layer.Path}, format {k}: {layer.Omega[k]:G4} < {quadratic.Layers[layer.LayerIndex].Omega[k]:G4}");
            }
        }
        // Same seed, same eigenvalues, to the bit.
        var again = MixedPrecisionSensitivity.Measure(TinyMixed.Plan, model.Layers, model.Forward, data, options);
        Assert.Equal(eigen.Layers.Select(l => l.TopEigenvalue), again.Layers.Select(l => l.TopEigenvalue));
    }

    /// <summary>Through Compress: the quadratic allocation is applied, costed exactly, written back as such, and the same bits at one and two threads.</summary>
    [Fact]
    public void CompressAppliesTheQuadraticAllocationTheSameAtAnyThreadCount()
    {
        var quadratic = new MixedPrecisionOptions { Method = SensitivityMethod.HessianQuadratic };
        int savedPool = WorkerPool.Shared.MaxDegreeOfParallelism, savedGemm = Gemm.MaxDegreeOfParallelism;
        var results = new List<(MixedPrecisionSolution Solution, CompressionReport Report)>();
        try
        {
            foreach (int threads in new[] { 1, 2 })
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                Gemm.MaxDegreeOfParallelism = threads;
                var report = fixture.Fresh().Compress(new CompressionOptions { Calibration = fixture.Calibration(), MixedPrecision = quadratic });
                results.Add((report.MixedPrecision!, report));
            }
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = savedPool;
            Gemm.MaxDegreeOfParallelism = savedGemm;
        }
        var (first, firstReport) = results[0];
        Assert.Equal(SensitivityMethod.HessianQuadratic, first.Method);
        Assert.Equal(first.BitsByPath, results[1].Solution.BitsByPath);
        Assert.Equal(first.GroupSizesByPath, results[1].Solution.GroupSizesByPath);
        Assert.Equal(first.Layers.Select(l => l.Omega), results[1].Solution.Layers.Select(l => l.Omega));
        Assert.Equal(firstReport.TotalBytesAfter, first.PredictedBytes);
        Assert.Contains("1/2 dW^T H dW", first.ToPartialClass(typeof(MixedDigits)), StringComparison.Ordinal);

        // The Gauss-Newton form needs forward passes only: inside NoGrad it gives the same numbers; the Hessian curvature needs gradients.
        var model = fixture.Fresh();
        var outside = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(), quadratic);
        using (Tensor.NoGrad())
        {
            var inside = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(), quadratic);
            Assert.Equal(outside.Layers.SelectMany(l => l.Omega), inside.Layers.SelectMany(l => l.Omega));
            var e = Assert.Throws<InvalidOperationException>(() => MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(),
                new MixedPrecisionOptions { Method = SensitivityMethod.HessianQuadratic, Curvature = SensitivityCurvature.Hessian }));
            Assert.Contains("NoGrad", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void BadOptionsAndNonFiniteOutputsAreNamedErrors()
    {
        var (model, data, _) = Setup();
        MixedPrecisionSensitivity Measure(MixedPrecisionOptions options) => MixedPrecisionSensitivity.Measure(TinyMixed.Plan, model.Layers, model.Forward, data, options);

        var method = Assert.Throws<ArgumentException>(() => Measure(new MixedPrecisionOptions { Method = (SensitivityMethod)9 }));
        Assert.Contains("Method is 9", method.Message, StringComparison.Ordinal);
        var weighting = Assert.Throws<ArgumentException>(() => Measure(new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, Weighting = (SensitivityWeighting)7 }));
        Assert.Contains("Weighting is 7", weighting.Message, StringComparison.Ordinal);
        var curvature = Assert.Throws<ArgumentException>(() => Measure(new MixedPrecisionOptions { Method = SensitivityMethod.HessianQuadratic, Curvature = (SensitivityCurvature)4 }));
        Assert.Contains("Curvature is 4", curvature.Message, StringComparison.Ordinal);
        var iterations = Assert.Throws<ArgumentOutOfRangeException>(() => Measure(new MixedPrecisionOptions { Method = SensitivityMethod.HessianTrace, Weighting = SensitivityWeighting.TopEigenvalue, PowerIterations = 0 }));
        Assert.Contains("PowerIterations", iterations.Message, StringComparison.Ordinal);

        // A weight that makes the outputs non-finite: the batch and the value are named, and the model is left as it was.
        var weight = ((WeightedLayer)model.Layers[1].Layer).Weight.Data;
        weight[4] = float.PositiveInfinity;
        var nonFinite = Assert.Throws<InvalidDataException>(() => Measure(new MixedPrecisionOptions { Method = SensitivityMethod.HessianQuadratic }));
        Assert.Contains("calibration batch 0", nonFinite.Message, StringComparison.Ordinal);
        Assert.Equal(float.PositiveInfinity, weight[4]);
    }
}
