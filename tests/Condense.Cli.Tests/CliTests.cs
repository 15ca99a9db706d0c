using System.Globalization;
using System.Text.RegularExpressions;
using Condense.Compression;

namespace Condense.Cli.Tests;

public sealed partial class InspectTests
{
    [Fact]
    public void ListsEveryTensorWithDtypeShapeBytesAndTotals()
    {
        using var dir = new TempFolder();
        Fixtures.WriteBertLike(dir.File("bert.safetensors"));
        var r = CliRunner.Run("inspect", dir.File("bert.safetensors"));
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Matches(@"encoder\.layer\.2\.intermediate\.dense\.weight\s+F32\s+\[64, 32\]\s+8,192", r.Output);
        Assert.Matches(@"embeddings\.position_ids\s+I32\s+\[1, 64\]\s+256", r.Output);
        // 3 x (12 linear tensors + 4 norm tensors) + 4 embedding tensors + 2 pooler + 1 buffer.
        Assert.Contains("total: 55 tensors", r.Output, StringComparison.Ordinal);
        Assert.Contains("layers: 19 Linear, 0 Conv2d", r.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void CondenseFileShowsItsPlanStorageAndVerifiesChecksums()
    {
        using var dir = new TempFolder();
        var model = new DryRunMlp();
        model.Initialize(3);
        model.Compress();
        model.Save(dir.File("m.safetensors"));

        var r = CliRunner.Run("inspect", dir.File("m.safetensors"));
        Assert.True(r.ExitCode == 0, r.Error);
        Assert.Contains("model: DryRunMlp, format version 2", r.Output, StringComparison.Ordinal);
        Assert.Matches(@"middle\s+Linear\s+64x96\s+yes\s+int4 g32 sym\s+weight\.qdata U8, weight\.qscale F16, bias F32", r.Output);
        Assert.Contains("checksums: 9 of 9 tensors verified", r.Output, StringComparison.Ordinal);

        // Flip one byte of the last tensor's data: the check names it and the exit code says so.
        var bytes = File.ReadAllBytes(dir.File("m.safetensors"));
        bytes[^1] ^= 0x5A;
        File.WriteAllBytes(dir.File("m.safetensors"), bytes);
        var bad = CliRunner.Run("inspect", dir.File("m.safetensors"));
        Assert.Equal(ExitCodes.ChecksumMismatch, bad.ExitCode);
        Assert.Matches(@"checksum failed: output\.bias", bad.Output);
        Assert.Contains("checksums: 1 of 9 tensors failed", bad.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingDirectoryAndForeignFilesAreOneLineErrors()
    {
        using var dir = new TempFolder();
        File.WriteAllText(dir.File("notes.txt"), "this is not a model file at all, just some text that is long enough");
        File.WriteAllBytes(dir.File("empty.safetensors"), []);
        foreach (var path in new[] { dir.File("missing.safetensors"), dir.Path, dir.File("notes.txt"), dir.File("empty.safetensors") })
        {
            foreach (var command in new[] { "inspect", "dry-run", "scaffold" })
            {
                var r = command == "scaffold" ? CliRunner.Run(command, path, "--output", dir.File("out.cs")) : CliRunner.Run(command, path);
                Assert.Equal(ExitCodes.BadFile, r.ExitCode);
                Assert.StartsWith("condense: '" + path + "'", r.Error, StringComparison.Ordinal);
                Assert.Single(r.Error.TrimEnd().Split('\n'));
                Assert.DoesNotContain("   at ", r.Error, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void UnknownCommandsAndOptionsAreUsageErrors()
    {
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("frobnicate").ExitCode);
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("inspect").ExitCode);
        Assert.Equal(ExitCodes.Usage, CliRunner.Run("dry-run", "x.safetensors", "--bits", "four").ExitCode);
    }
}

public sealed partial class DryRunTests
{
    [Fact]
    public void BytesEqualWhatTheGeneratedPlanAndCompressProduce()
    {
        using var dir = new TempFolder();
        var dense = new DenseMlp();
        dense.Initialize(11);
        dense.Save(dir.File("dense.safetensors"));

        var r = CliRunner.Run("dry-run", dir.File("dense.safetensors"), "--bits", "4", "--group", "64", "--override", "middle=4:32", "--override", "output=8:row");
        Assert.True(r.ExitCode == 0, r.Output + r.Error);
        var total = Total().Match(r.Output);
        Assert.True(total.Success, r.Output);
        long dryRunBytes = long.Parse(total.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);

        var model = new DryRunMlp();
        model.Initialize(11);
        var report = model.Compress();
        Assert.Equal(DryRunMlp.Plan.TotalBytesAfter, dryRunBytes);
        Assert.Equal(report.TotalBytesAfter, dryRunBytes);
        Assert.Matches(@"middle\s+Linear 64x96 \+bias\s+int4 g32 sym", r.Output);
        Assert.Matches(@"output\s+Linear 10x64 \+bias\s+int8 per-row sym", r.Output);

        // A compressed Condense file is planned from the plan it records.
        model.Save(dir.File("compressed.safetensors"));
        var again = CliRunner.Run("dry-run", dir.File("compressed.safetensors"), "--bits", "4", "--group", "64", "--override", "middle=4:32", "--override", "output=8:row");
        Assert.Equal(dryRunBytes, long.Parse(Total().Match(again.Output).Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture));
    }

    [Fact]
    public void PatternsUseTheOverrideGlobOnIndexedPaths()
    {
        using var dir = new TempFolder();
        Fixtures.WriteBertLike(dir.File("bert.safetensors"));
        var r = CliRunner.Run("dry-run", dir.File("bert.safetensors"), "--bits", "4", "--group", "32", "--override", "encoder.layer[0..1].intermediate.*=8", "--override", "pooler.**=dense");
        Assert.True(r.ExitCode == 0, r.Output + r.Error);
        Assert.Matches(@"encoder\.layer\[1\]\.intermediate\.dense\s+Linear 64x32 \+bias\s+int8 g32 sym", r.Output);
        Assert.Matches(@"encoder\.layer\[2\]\.intermediate\.dense\s+Linear 64x32 \+bias\s+int4 g32 sym", r.Output);
        Assert.Matches(@"pooler\.dense\s+Linear 32x32 \+bias\s+fp32", r.Output);
        Assert.Contains("not in the plan: 17 other tensors", r.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void LayersThePlanCannotTakeAreListedWithTheFix()
    {
        using var dir = new TempFolder();
        Fixtures.WriteBertLike(dir.File("bert.safetensors"));
        // 128 divides 64? no: the intermediate->output layer has 64 inputs, the others 32.
        var r = CliRunner.Run("dry-run", dir.File("bert.safetensors"), "--bits", "4", "--group", "64");
        Assert.Equal(ExitCodes.InvalidPlan, r.ExitCode);
        Assert.Contains("error: Layer 'encoder.layer[0].attention.self.query' cannot be quantized", r.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("error: Layer 'encoder.layer[0].output.dense'", r.Output, StringComparison.Ordinal);
        Assert.Contains("--override 'encoder.layer[0].attention.self.query=4:32'", r.Output, StringComparison.Ordinal);

        var nothing = CliRunner.Run("dry-run", dir.File("bert.safetensors"), "--group", "32", "--override", "encoder.layers[0].**=8");
        Assert.Equal(ExitCodes.InvalidPlan, nothing.ExitCode);
        Assert.Contains("matches no layer", nothing.Error, StringComparison.Ordinal);

        var malformed = CliRunner.Run("dry-run", dir.File("bert.safetensors"), "--override", "pooler.dense");
        Assert.Equal(ExitCodes.Usage, malformed.ExitCode);
        Assert.Contains("is not PATTERN=BITS", malformed.Error, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"-> ([0-9,]+) bytes")]
    private static partial Regex Total();
}
