using Condense.Generators.Tests.Infrastructure;

namespace Condense.Generators.Tests;

/// <summary>
/// The generated plan and Compress of data-aware models: GPTQ (alone, with a correction, on a Conv2d, at every bit
/// width and per-row) and activation-aware SVD, calibrated once by the outer model's Forward, nested layers included.
/// </summary>
public sealed class DataAwareSnapshotTests
{
    [Fact]
    public void GptqAndActivationAwareSvd() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Samples.DataAware;

        [Compressible]
        public partial class Block : Module
        {
            [Quantize(2, GroupSize = 64, Method = QuantizationMethod.Gptq)]
            readonly Linear up = new(64, 128);

            [Quantize(8, Method = QuantizationMethod.Gptq)]
            readonly Linear down = new(128, 64);
        }

        [Compressible]
        public partial class Cnn : Module
        {
            [Quantize(4, GroupSize = 16, Method = QuantizationMethod.Gptq)]
            readonly Conv2d conv = new(16, 8, 3, padding: 1);

            readonly Block block = new();

            [Quantize(3, GroupSize = 64, Method = QuantizationMethod.Gptq)]
            [LowRankCorrection(4)]
            readonly Linear hidden = new(128, 64);

            [LowRank(8, Method = LowRankMethod.ActivationAwareSvd)]
            readonly Linear head = new(64, 64);

            [Quantize(4)]
            readonly Linear output = new(64, 10);

            public Tensor Forward(Tensor x) => output.Forward(head.Forward(x));
        }
        """,
    ]);
}
