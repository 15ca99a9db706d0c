using Condense.Catalogue;
using Condense.Compression;
using Condense.MixedPrecision;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Tests.MixedPrecision;

/// <summary><see cref="MixedPrecisionOptions.GroupSizes"/>: the allocation chooses among widths x group sizes.</summary>
public sealed class MixedPrecisionGroupSizeTests(MixedDigitsFixture fixture) : IClassFixture<MixedDigitsFixture>
{
    [Theory]
    [InlineData(SensitivityMethod.MeasuredLoss)]
    [InlineData(SensitivityMethod.HessianTrace)]
    [InlineData(SensitivityMethod.HessianQuadratic)]
    public void CandidatesAreEveryWidthTimesEveryFittingGroupSizeAndTheKnapsackIsOptimalOverThem(SensitivityMethod method)
    {
        var model = fixture.Fresh();
        // 48 has no kernel, 64 is the whole row (the per-row format, listed once) and 128 does not divide the 64
        // inputs: only 0, 32 and 16 are candidates.
        Assert.Throws<ArgumentException>(() => MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(),
            new MixedPrecisionOptions { Method = method, Samples = 4, GroupSizes = [0, 48] }));
        var grouped = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(),
            new MixedPrecisionOptions { Method = method, Samples = 8, GroupSizes = [16, 32, 64, 128] });
        var perRow = MixedPrecisionSensitivity.Measure(MixedDigits.Plan, model.Layers, model.Forward, fixture.Calibration(),
            new MixedPrecisionOptions { Method = method, Samples = 8, GroupSizes = [0] });
        foreach (var layer in grouped.Layers)
        {
            var plan = MixedDigits.Plan.Layers[layer.LayerIndex];
            Assert.Equal([2, 2, 2, 4, 4, 4, 8, 8, 8], layer.Bits);
            Assert.Equal([0, 32, 16, 0, 32, 16, 0, 32, 16], Enumerable.Range(0, layer.Bits.Count).Select(layer.GroupSizeAt));
            for (int k = 0; k < layer.Bits.Count; k++)
                Assert.Equal(KernelCatalogue.GroupQuantizedBytes(plan.OutFeatures, plan.InFeatures, layer.Bits[k], layer.GroupSizeAt(k), true), layer.WeightBytes[k]);
            // Smaller groups cost scales and buy a smaller error at 2 bits.
            Assert.True(layer.SquaredError[2] < layer.SquaredError[1] && layer.SquaredError[1] < layer.SquaredError[0], $"{layer.Path}: {string.Join(", ", layer.SquaredError)}");
            // The per-row candidates are the per-row-only measurement's, number for number.
            var same = perRow.Layers.Single(l => l.Path == layer.Path);
            for (int b = 0; b < same.Bits.Count; b++) Assert.Equal(same.Omega[b], layer.Omega[layer.IndexOf(same.Bits[b])]);
        }

        // Brute force over 9 x 9 formats at several budgets: the knapsack's optimum, never worse than per row only.
        foreach (long maxBytes in new long[] { 3000, 3200, 3600, 4400, 6000 })
        {
            MixedPrecisionSolution best;
            try { best = grouped.Allocate(maxBytes: maxBytes, averageBits: 0); }
            catch (MixedPrecisionBudgetException) { continue; }
            double bestOmega = double.PositiveInfinity;
            var a = grouped.Layers[0];
            var b2 = grouped.Layers[1];
            for (int i = 0; i < a.Bits.Count; i++)
                for (int j = 0; j < b2.Bits.Count; j++)
                {
                    try
                    {
                        var candidate = grouped.Evaluate(new Dictionary<string, int> { [a.Path] = a.Bits[i], [b2.Path] = b2.Bits[j] }, maxBytes, 0,
                            new Dictionary<string, int> { [a.Path] = a.GroupSizeAt(i), [b2.Path] = b2.GroupSizeAt(j) });
                        bestOmega = Math.Min(bestOmega, candidate.TotalOmega);
                    }
                    catch (MixedPrecisionBudgetException) { }
                }
            Assert.Equal(bestOmega, best.TotalOmega, 15);
            Assert.True(best.TotalOmega <= perRow.Allocate(maxBytes: maxBytes, averageBits: 0).TotalOmega);
        }
    }

    /// <summary>Compress stores the chosen group size, its bytes are the predicted ones, and the write-back carries it.</summary>
    [Fact]
    public void CompressStoresTheChosenGroupSizeAndTheOverrideCarriesIt()
    {
        var model = fixture.Fresh();
        var report = model.Compress(new CompressionOptions
        {
            MixedPrecision = new MixedPrecisionOptions
            {
                Allocation = new Dictionary<string, int> { ["hidden1"] = 2, ["hidden2"] = 4 },
                AllocationGroupSizes = new Dictionary<string, int> { ["hidden1"] = 16 },
            },
        });
        var solution = report.MixedPrecision!;
        Assert.Equal(report.TotalBytesAfter, solution.PredictedBytes);
        var stored = (GroupQuantizedWeight)((WeightedLayer)model.Layers.Single(l => l.Path == "hidden1").Layer).CompressedWeight!;
        Assert.Equal(new QuantizationScheme(2, 16, true), stored.Scheme);
        Assert.Equal(0, ((GroupQuantizedWeight)((WeightedLayer)model.Layers.Single(l => l.Path == "hidden2").Layer).CompressedWeight!).Scheme.GroupSize);
        // 64 rows x (64 x 2 / 8 code bytes + 4 groups x 2 scale bytes) + 64 x 4 bias bytes.
        Assert.Equal(64 * (16 + 8) + 64 * 4, report.Layers.Single(l => l.Path == "hidden1").BytesAfter);
        Assert.Contains("[global::Condense.Override(\"hidden1\", Bits = 2, GroupSize = 16)]\n[global::Condense.Override(\"hidden2\", Bits = 4)]", solution.OverrideAttributes, StringComparison.Ordinal);
        Assert.Contains("hidden1 2 g16, hidden2 4 bits", report.ToString(), StringComparison.Ordinal);

        var bad = Assert.Throws<ArgumentException>(() => fixture.Fresh().Compress(new CompressionOptions
        {
            MixedPrecision = new MixedPrecisionOptions
            {
                Allocation = new Dictionary<string, int> { ["hidden1"] = 2, ["hidden2"] = 4 },
                AllocationGroupSizes = new Dictionary<string, int> { ["hidden2"] = 128 },
            },
        }));
        Assert.Contains("layer 'hidden2' 4 bits with group size 128", bad.Message, StringComparison.Ordinal);
    }
}
