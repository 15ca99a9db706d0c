using Condense.Catalogue;
using Condense.Compression;

namespace Condense.Tests.Compression;

/// <summary>The catalogue's byte formulas against the agreed formats, worked out by hand; and its checks' messages.</summary>
public sealed class CatalogueFormatTests
{
    [Fact]
    public void Semi_structured_bytes_follow_the_format()
    {
        // 2:4 on [10, 100]: K = 50 kept per row; indices 10 x ceil(50 x 2 / 8) = 10 x 13; values fp32 10 x 50 x 4.
        Assert.Equal(10 * 13 + 10 * 50 * 4, KernelCatalogue.SemiStructuredSparseBytes(10, 100, 2, 4, 0, 0, true));
        // 2:8 on [3, 64]: K = 16, 3-bit indices: 3 x 6; int4 values g16: 3 x 8 + 3 x 1 x 2; asymmetric adds 3 zero points.
        Assert.Equal(3 * 6 + 3 * 8 + 3 * 2 + 3, KernelCatalogue.SemiStructuredSparseBytes(3, 64, 2, 8, 4, 16, false));
        // 1:4 on [2, 8]: K = 2, indices 2 x ceil(4 / 8) = 2, int8 per-row: 2 x 2 + 2 x 2.
        Assert.Equal(2 + 4 + 4, KernelCatalogue.SemiStructuredSparseBytes(2, 8, 1, 4, 8, 0, true));
    }

    [Fact]
    public void Csr_bytes_keep_exactly_the_floor_rule()
    {
        // [7, 9] = 63 weights, 0.5 removes floor(31.5) = 31: 32 kept; values 4, 16-bit columns, 8 row pointers.
        Assert.Equal(32, KernelCatalogue.UnstructuredKeptCount(7, 9, 0.5));
        Assert.Equal(32 * 4 + 32 * 2 + 8 * 4, KernelCatalogue.UnstructuredSparseBytes(7, 9, 0.5));
        // Past 65,536 columns the indices take 4 bytes.
        Assert.Equal(65537L * 4 + 65537L * 4 + 2 * 4, KernelCatalogue.UnstructuredSparseBytes(1, 65537, 0));
    }

    [Fact]
    public void Low_rank_and_correction_bytes()
    {
        Assert.Equal((100 * 16 + 16 * 100) * 4, KernelCatalogue.LowRankBytes(100, 100, 16));
        var settings = new LayerSettings { Quantize = true, Bits = 4, GroupSize = 64, LowRankCorrection = true, CorrectionRank = 8 };
        Assert.Equal(
            (KernelCatalogue.DenseBytes(128, 256) + 128 * 4, KernelCatalogue.GroupQuantizedBytes(128, 256, 4, 64, true) + (128 * 8 + 8 * 256) * 4 + 128 * 4),
            KernelCatalogue.LayerBytes(StorageTechnique.QuantizeWithLowRankCorrection, 128, 256, true, settings));
        Assert.Equal(49, KernelCatalogue.LargestSavingRank(100, 100));
    }

    [Fact]
    public void Checks_give_one_message_per_problem_and_skip_shape_checks_without_a_shape()
    {
        var settings = new LayerSettings { Quantize = true, Bits = 4, GroupSize = 64 };
        Assert.Empty(KernelCatalogue.CheckLayer("hidden", settings, 0, 0, true));
        var problem = Assert.Single(KernelCatalogue.CheckLayer("hidden", settings, 10, 48, true));
        Assert.True(problem.IsShapeDependent);
        Assert.Equal(16, problem.Suggested);
        Assert.Equal("Layer 'hidden' cannot be quantized: group size 64 does not divide the input size 48; valid group sizes for it are 0 (one group per row), 16", problem.Message);
    }

    [Fact]
    public void Plan_resolution_rejects_a_budget_overrun_with_the_build_message()
    {
        var plan = new CompressionPlan("Tiny",
            [new LayerPlan("hidden", LayerKind.Linear, 0, 0, 0, true, LayerTechnique.Quantize, 8, 0, true, 0, 0, ShapeKnown: false)],
            maxBytes: 100);
        var layers = new[] { new Condense.Nn.NamedLayer("hidden", new Condense.Nn.Linear(32, 8)) };
        var e = Assert.Throws<InvalidOperationException>(() => plan.WithShapesFrom(layers));
        Assert.Equal("Model 'Tiny' exceeds its budget: the plan needs 304 bytes, but MaxBytes allows 100 bytes; the largest layers are hidden (int8 per-row sym, 304 bytes). Quantize more layers, use fewer bits, or raise MaxBytes", e.Message);
    }
}
