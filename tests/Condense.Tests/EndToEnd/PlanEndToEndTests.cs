using Condense.Compression;
using Condense.IO;
using Condense.Tests.IO;

namespace Condense.Tests.EndToEnd;

/// <summary>Nested models, overrides, unknown shapes and the later techniques, through the generated code.</summary>
public sealed class PlanEndToEndTests
{
    [Fact]
    public void Nested_blocks_are_flattened_to_full_paths_with_overrides_applied()
    {
        var plan = PlanStack.Plan;
        Assert.Equal(
            ["blocks[0].norm", "blocks[0].mlp.up", "blocks[0].mlp.down", "blocks[1].norm", "blocks[1].mlp.up", "blocks[1].mlp.down", "blocks[2].norm", "blocks[2].mlp.up", "blocks[2].mlp.down", "head"],
            plan.Layers.Select(l => l.Path));
        // Bits = 8 keeps the layer's own group size.
        Assert.Equal("int8 g16 sym", plan.Find("blocks[0].mlp.up")!.TechniqueText);
        Assert.Equal("int4 g16 sym", plan.Find("blocks[1].mlp.up")!.TechniqueText);
        var model = new PlanStack();
        Assert.Equal(plan.Layers.Select(l => l.Path), model.Layers.Select(l => l.Path));
    }

    [Fact]
    public void Nested_model_compresses_saves_and_loads_by_path()
    {
        var model = new PlanStack();
        model.Initialize(7);
        var report = model.Compress();
        Assert.Equal(PlanStack.PlannedBytes, report.TotalBytesAfter);
        Assert.Equal("int8 g16 sym", report.Layers[1].Technique);
        Assert.Equal("int4 g16 sym", report.Layers[4].Technique);

        using var directory = new TempDirectory();
        string path = Path.Combine(directory.Path, "stack.safetensors");
        model.Save(path);
        var loaded = PlanStack.Load(path);
        Assert.All(loaded.Layers.Zip(model.Layers), pair => Assert.Equal(
            ((Condense.Nn.WeightedLayer)pair.Second.Layer).CompressedWeight?.ByteCount,
            ((Condense.Nn.WeightedLayer)pair.First.Layer).CompressedWeight?.ByteCount));
    }

    [Fact]
    public void Array_of_blocks_is_checked_at_run_time_naming_the_field()
    {
        var model = new PlanStack();
        model.ClearBlock(1);
        var e = Assert.Throws<InvalidOperationException>(() => model.Layers);
        Assert.Equal("Model 'PlanStack': block 'blocks[1]' is null; assign every element of 'blocks' in the constructor.", e.Message);
        Assert.Throws<InvalidOperationException>(() => model.Compress());
    }

    [Fact]
    public void Unknown_shape_is_checked_at_Compress_with_the_analyzer_message()
    {
        Assert.True(RuntimeWidth.Plan.HasUnknownShapes);
        Assert.Contains("| hidden | Linear | unknown | int4 g64 sym |", RuntimeWidth.Plan.ToMarkdown(), StringComparison.Ordinal);
        var model = RuntimeWidth.Create(48);
        var e = Assert.Throws<InvalidOperationException>(() => model.Compress());
        // Word for word what CND0004 says at build time for a constant 48.
        Assert.Equal("Layer 'hidden' cannot be quantized: group size 64 does not divide the input size 48; valid group sizes for it are 0 (one group per row), 16", e.Message);
        Assert.Null(((Condense.Nn.WeightedLayer)model.Layers[0].Layer).CompressedWeight);

        var fine = RuntimeWidth.Create(128);
        var report = fine.Compress();
        Assert.Equal(Catalogue.KernelCatalogue.GroupQuantizedBytes(10, 128, 4, 64, true) + 40, report.TotalBytesAfter);
    }

    [Fact]
    public void Unknown_shape_with_Adjust_uses_the_nearest_group_size_at_Compress()
    {
        var model = RuntimeWidthAdjusted.Create(48);
        var report = model.Compress();
        Assert.Equal("int4 g16 sym", report.Layers[0].Technique);
        Assert.Equal(Catalogue.KernelCatalogue.GroupQuantizedBytes(10, 48, 4, 16, true) + 40, report.TotalBytesAfter);
    }

    [Fact]
    public void Later_techniques_are_planned_sized_and_compressed_to_the_planned_bytes()
    {
        var plan = LaterTechniques.Plan;
        Assert.Equal(LayerTechnique.LowRank, plan.Layers[1].Technique);
        Assert.Equal((16 * 4 + 4 * 32) * 4 + 16 * 4, plan.Layers[1].BytesAfter);
        // 2:4 of 16 inputs keeps 8 per row: indices 16 x ceil(8 x 2 / 8) = 32 bytes, values 16 x 8 + 16 x 2 = 160, bias 64.
        Assert.Equal(32 + 160 + 64, plan.Layers[2].BytesAfter);
        string markdown = plan.ToMarkdown();
        Assert.Contains("| hidden | Linear | 16x32 | low-rank r4 |  |  | 4 |  |", markdown, StringComparison.Ordinal);
        Assert.Contains("| sparse | Linear | 16x16 | 2:4 sparse int8 per-row sym | 8 | row |  | 2:4 |", markdown, StringComparison.Ordinal);

        var model = new LaterTechniques();
        model.Initialize(3);
        var report = model.Compress();
        Assert.Equal(plan.TotalBytesAfter, report.TotalBytesAfter);
        Assert.All(model.Layers, l => Assert.NotNull(((Condense.Nn.WeightedLayer)l.Layer).CompressedWeight));
    }
}
