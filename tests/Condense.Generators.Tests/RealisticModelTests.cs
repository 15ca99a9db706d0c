using Condense.Generators.Tests.Infrastructure;

namespace Condense.Generators.Tests;

/// <summary>
/// Realistic models (DESIGN.md's MLP with every technique, a CNN, a 12-block transformer with nested blocks and
/// overrides): the valid ones build with zero Condense diagnostics and their generated code is snapshotted; the
/// broken variants' diagnostics are snapshotted, so every message is reviewed as the user reads it.
/// </summary>
public sealed class RealisticModelTests
{
    [Fact]
    public void DesignMlpGenerates() => Snapshot.VerifyGenerator([Sources.DesignMlp]);

    [Fact]
    public void VisionCnnGenerates() => Snapshot.VerifyGenerator([Sources.VisionCnn]);

    [Fact]
    public void TransformerGenerates()
    {
        var result = Snapshot.VerifyGenerator([Sources.Transformer]);
        var transformer = result.GeneratedSources().Single(s => s.HintName == "Samples.Text.Transformer.g.cs").SourceText.ToString();
        // 1 embed + 12 blocks x 6 layers + 1 head, flattened to full paths; overrides applied per block.
        Assert.Contains("new(Path: \"blocks[11].mlp.down\"", transformer, StringComparison.Ordinal);
        Assert.Contains("new(Path: \"blocks[1].mlp.up\", Kind: global::Condense.Compression.LayerKind.Linear, OutFeatures: 512, InFeatures: 128, KernelSize: 0, HasBias: true, Technique: global::Condense.Compression.LayerTechnique.Quantize, Bits: 8, GroupSize: 128", transformer, StringComparison.Ordinal);
        Assert.Contains("new(Path: \"blocks[2].mlp.up\", Kind: global::Condense.Compression.LayerKind.Linear, OutFeatures: 512, InFeatures: 128, KernelSize: 0, HasBias: true, Technique: global::Condense.Compression.LayerTechnique.Quantize, Bits: 4, GroupSize: 128", transformer, StringComparison.Ordinal);
        Assert.Contains("new(Path: \"blocks[11].attn.query\", Kind: global::Condense.Compression.LayerKind.Linear, OutFeatures: 128, InFeatures: 128, KernelSize: 0, HasBias: true, Technique: global::Condense.Compression.LayerTechnique.Quantize, Bits: 4, GroupSize: 32", transformer, StringComparison.Ordinal);
        Assert.Equal(74, System.Text.RegularExpressions.Regex.Matches(transformer, "new\\(Path: ").Count);
    }

    [Fact]
    public void DesignMlpOverItsOriginalBudget()
    {
        // DESIGN.md's example states MaxBytes = 96 KiB; its exact size is 182,512 bytes, and the build says so.
        var d = Snapshot.VerifyDiagnostics([Sources.DesignMlp.Replace("MaxBytes = 192 * 1024", "MaxBytes = 96 * 1024")]);
        Assert.Equal("CND0007", Assert.Single(d).Id);
    }

    [Fact]
    public void DesignMlpWithTypicalMistakes() => Snapshot.VerifyDiagnostics([Sources.DesignMlp
        .Replace("GroupSize = 16)]", "GroupSize = 64)]")
        .Replace("[Sparsify(N = 2, M = 4), Quantize(8)]", "[Sparsify(N = 2, M = 4), Quantize(3)]")
        .Replace("[LowRank(16)]", "[LowRank(100)]")
        .Replace("[KeepDense]", "[KeepDense, Quantize(4)]")]);

    [Fact]
    public void VisionCnnWithTypicalMistakes() => Snapshot.VerifyDiagnostics([Sources.VisionCnn
        .Replace("[Quantize(8)]\n    readonly Conv2d conv1", "[Sparsify(N = 2, M = 4)]\n    readonly Conv2d conv1")
        .Replace("GroupSize = 32)]", "GroupSize = 48)]")
        .Replace("[LowRank(32)]", "[LowRank(32), LowRankCorrection(4)]")]);

    [Fact]
    public void TransformerWithTypicalMistakes() => Snapshot.VerifyDiagnostics([Sources.Transformer
        .Replace("\"blocks[0..1].mlp.up\"", "\"block[0..1].mlp.up\"")
        .Replace("[Override(\"blocks[11].attn.*\", GroupSize = 32)]", "[Override(\"blocks[11].attn.*\", GroupSize = 32)]\n[Override(\"blocks[*].attn.query\", GroupSize = 16)]")
        .Replace("MaxBytes = 2 * 1024 * 1024", "MaxBytes = 512 * 1024")]);

    [Fact]
    public void TransformerWithUnknownDepth() => Snapshot.VerifyDiagnostics([Sources.Transformer
        .Replace("new TransformerBlock[Depth]", "new TransformerBlock[System.Environment.ProcessorCount]")]);
}

internal static class GeneratorRunResultExtensions
{
    public static IEnumerable<Microsoft.CodeAnalysis.GeneratedSourceResult> GeneratedSources(this Microsoft.CodeAnalysis.GeneratorDriverRunResult result) =>
        result.Results.SelectMany(r => r.GeneratedSources);
}
