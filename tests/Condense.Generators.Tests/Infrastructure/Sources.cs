namespace Condense.Generators.Tests.Infrastructure;

/// <summary>Representative model sources shared by the snapshot, incrementality and robustness tests.</summary>
internal static class Sources
{
    /// <summary>DESIGN.md section 3's FashionMlp reduced to the v1 attributes (Quantize and KeepDense).</summary>
    public const string FashionMlp = """
        using Condense;
        using Condense.Nn;

        namespace Samples.Fashion;

        [Compressible(MaxBytes = 192 * 1024)]
        public sealed partial class FashionMlp : Module
        {
            [Quantize(4, GroupSize = 16)]                 // 784 = 16 x 49: 64 would not divide it
            readonly Linear hidden1 = new(784, 256);

            [Quantize(4, GroupSize = 64)]
            readonly Linear hidden2 = new(256, 128);

            [Quantize(8)]
            readonly Linear hidden3 = new(128, 100);

            [Quantize(4)]
            readonly Linear hidden4 = new(100, 100);

            [KeepDense]
            readonly Linear output = new(100, 10);
        }
        """;

    /// <summary>A small CNN: Conv2d shapes with named and defaulted arguments, a bias-free head.</summary>
    public const string SmallCnn = """
        using Condense;
        using Condense.Nn;

        namespace Samples.Vision;

        [Compressible]
        public partial class SmallCnn : Module
        {
            [Quantize(8)]
            readonly Conv2d conv1 = new(1, 16, 3);

            [Quantize(4, GroupSize = 16)]                 // 16 x 3 x 3 = 144 = 16 x 9
            readonly Conv2d conv2 = new Conv2d(16, 32, kernelSize: 3, stride: 2, padding: 1);

            readonly Linear head = new(inFeatures: 32 * 5 * 5, outFeatures: 10, bias: false);
        }
        """;

    /// <summary>Shapes from const fields and constant expressions, layers as properties, no parameterless constructor.</summary>
    public const string ConstShapes = """
        using Condense;
        using Condense.Nn;

        namespace Samples.Text;

        [Compressible(MaxBitsPerWeight = 6)]
        internal partial class ConstMlp : Module
        {
            private const int Hidden = 64;
            public const int Input = Hidden * 4;
            private readonly int unrelated = 3;

            public ConstMlp(ulong seed) => Initialize(seed + (ulong)unrelated);

            [Quantize(4, GroupSize = 32)]
            public Linear Up { get; } = new(Input, Hidden * 2);

            [Quantize(4, GroupSize = Hidden, Symmetric = true)]
            public Linear Down { get; } = new Linear(outFeatures: Hidden, inFeatures: Hidden * 2, bias: false);

            public Linear? Head { get; set; } = new(Hidden, 10);
        }
        """;

    /// <summary>A model nested in a static class and a struct, in a file-scoped namespace.</summary>
    public const string Nested = """
        using Condense;
        using Condense.Nn;

        namespace Zoo.Models;

        public static partial class Registry
        {
            internal partial struct Holder
            {
                [Compressible]
                internal sealed partial class Tiny : Module
                {
                    [Quantize(2, GroupSize = 32)]
                    internal Linear @in = new(64, 32);

                    [KeepDense]
                    internal Linear @out = new(32, 2);
                }
            }
        }
        """;

    /// <summary>Asymmetric grids and per-row groups, in the global namespace.</summary>
    public const string Asymmetric = """
        using Condense;
        using Condense.Nn;

        [Compressible(MaxBitsPerWeight = 4.5, MaxBytes = 8000)]
        public partial class AsymmetricModel : Module
        {
            [Quantize(3, Symmetric = false)]              // per-row: 100 is not a multiple of 16
            readonly Linear rows = new(100, 30);

            [Quantize(2, GroupSize = 128, Symmetric = false)]
            readonly Linear groups = new(256, 16);
        }
        """;

    /// <summary>A block with an attention projection and a nested MLP, for nested-model tests (no namespace).</summary>
    public const string Block = """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [Quantize(4, GroupSize = 64)] readonly Linear up = new(64, 256);
            [Quantize(4, GroupSize = 64)] readonly Linear down = new(256, 64);
        }

        [Compressible]
        public partial class Block : Module
        {
            [Quantize(8)] readonly Linear attn = new(64, 64);
            readonly Mlp mlp = new();
        }
        """;

    /// <summary>DESIGN.md section 3's model with every technique (budget raised so the valid plan fits).</summary>
    public const string DesignMlp = """
        using Condense;
        using Condense.Nn;

        namespace Samples.Design;

        [Compressible(MaxBytes = 192 * 1024)]
        public sealed partial class FashionMlp : Module
        {
            [Quantize(4, GroupSize = 16)]                      // 784 = 16 x 49: 64 would not divide it
            readonly Linear hidden1 = new(784, 256);

            [Quantize(4, GroupSize = 64), LowRankCorrection(8)] // quantized + low-rank error fix
            readonly Linear hidden2 = new(256, 128);

            [Sparsify(N = 2, M = 4), Quantize(8)]              // 2:4 semi-structured + int8 values
            readonly Linear hidden3 = new(128, 100);

            [LowRank(16)]
            readonly Linear hidden4 = new(100, 100);

            [KeepDense]
            readonly Linear output = new(100, 10);
        }
        """;

    /// <summary>A CNN with quantized, N:M, low-rank and dense layers.</summary>
    public const string VisionCnn = """
        using Condense;
        using Condense.Nn;

        namespace Samples.Vision;

        [Compressible(MaxBitsPerWeight = 12)]
        public partial class VisionCnn : Module
        {
            const int Width = 16;

            [Quantize(8)]
            readonly Conv2d conv1 = new(1, Width, 3, padding: 1);

            [Sparsify(N = 2, M = 4), Quantize(8, GroupSize = 0)]   // 16 x 3 x 3 = 144 inputs, 72 kept per row
            readonly Conv2d conv2 = new(Width, Width * 2, kernelSize: 3, padding: 1);

            [Quantize(4, GroupSize = 32)]                          // 32 x 9 = 288 = 32 x 9
            readonly Conv2d conv3 = new(Width * 2, Width * 4, kernelSize: 3, padding: 1);

            [LowRank(32)]
            readonly Linear fc = new(Width * 4 * 4 * 4, 128);

            [KeepDense]
            readonly Linear head = new(128, 10);
        }
        """;

    /// <summary>A 12-block transformer: nested attention and MLP models, an array of blocks, overrides on the parent.</summary>
    public const string Transformer = """
        using Condense;
        using Condense.Nn;

        namespace Samples.Text;

        static class Dims
        {
            public const int Model = 128;
            public const int Vocab = 512;
        }

        [Compressible]
        public partial class Attention : Module
        {
            [Quantize(4, GroupSize = 64)] readonly Linear query = new(Dims.Model, Dims.Model);
            [Quantize(4, GroupSize = 64)] readonly Linear key = new(Dims.Model, Dims.Model);
            [Quantize(4, GroupSize = 64)] readonly Linear value = new(Dims.Model, Dims.Model);
            [Quantize(4, GroupSize = 64), LowRankCorrection(8)] readonly Linear output = new(Dims.Model, Dims.Model);
        }

        [Compressible]
        public partial class FeedForward : Module
        {
            [Quantize(4, GroupSize = 128)] readonly Linear up = new(Dims.Model, Dims.Model * 4);
            [Sparsify(N = 2, M = 4), Quantize(4, GroupSize = 64)] readonly Linear down = new(Dims.Model * 4, Dims.Model);
        }

        [Compressible]
        public partial class TransformerBlock : Module
        {
            readonly Attention attn = new();
            readonly FeedForward mlp = new();
        }

        [Compressible(MaxBytes = 2 * 1024 * 1024)]
        [Override("blocks[0..1].mlp.up", Bits = 8)]
        [Override("blocks[11].attn.*", GroupSize = 32)]
        public partial class Transformer : Module
        {
            public const int Depth = 12;

            [KeepDense] readonly Linear embed = new(Dims.Vocab, Dims.Model);
            readonly TransformerBlock[] blocks = new TransformerBlock[Depth];
            [Quantize(8)] readonly Linear head = new(Dims.Model, Dims.Vocab);

            public Transformer()
            {
                for (int i = 0; i < Depth; i++) blocks[i] = new TransformerBlock();
            }
        }
        """;
}
