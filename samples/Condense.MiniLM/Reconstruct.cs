using System.Globalization;
using Condense.Compression;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using Condense.Reconstruction;
using Condense.Transformer;

namespace Condense.MiniLM;

// The plan row "int4 g64 (GPTQ + reconstruction)": GPTQ's int4 g64 model (the same codes, format and bytes), then
// each encoder block's group scales, Linear biases (and, with --recon-params all, LayerNorms) tuned by Adam so that
// the block reproduces the fp32 block's output on calibration sentences (BlockReconstruction; docs/reconstruction.md).

/// <summary>Access to the GPTQ model's parts for block-by-block reconstruction (the generator reads the fields only).</summary>
public sealed partial class MiniLmGptqInt4G64
{
    internal GptqBlock[] EncoderBlocks() => layers;

    internal Tensor Embed(TokenBatch tokens, SequenceBatch padded, SequenceBatch packed)
    {
        using var noGrad = Tensor.NoGrad();
        return Bert.Embed(words, positions, tokenTypes, embeddingsNorm, padded.PackRows(tokens.Ids), null, packed);
    }
}

/// <summary>Access to the fp32 model's blocks: the reconstruction's targets.</summary>
public sealed partial class MiniLm
{
    internal Block[] EncoderBlocks() => layers;
}

/// <summary>The sample's reconstruction settings (<c>--recon-*</c> options) and the plan that uses them.</summary>
public sealed class ReconstructPlan
{
    /// <summary>Calibration sentences used for the reconstruction (the first N of the calibration set, disjoint from the evaluation sentences).</summary>
    public int Sentences { get; private set; } = 1024;

    /// <summary>Sentences per Adam step.</summary>
    public int BatchSize { get; private set; } = 32;

    /// <summary>The library's options (steps per block, learning rates, parameters, seed).</summary>
    public ReconstructionOptions Options { get; private set; } = new() { Steps = 128, LearningRate = 2e-3f, ParameterLearningRate = 2e-4f, Parameters = ReconstructionParameters.All };

    /// <summary>
    /// true: each block's target is the fp32 model's own hidden state after that block (so a block also makes up for
    /// the error of the blocks before it); false: the fp32 block applied to the quantized model's input (BRECQ's form).
    /// </summary>
    public bool ModelTarget { get; private set; } = true;

    /// <summary>Takes the <c>--recon-*</c> options out of the command line; the rest is returned for Program's parser.</summary>
    /// <exception cref="ArgumentException">A <c>--recon-*</c> option without a valid value.</exception>
    public static (ReconstructPlan Plan, string[] Remaining) TakeOptions(string[] args)
    {
        var plan = new ReconstructPlan();
        var rest = new List<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            static float Float(string text) => float.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--recon-steps": plan.Options = plan.Options with { Steps = int.Parse(Value(), CultureInfo.InvariantCulture) }; break;
                case "--recon-lr": plan.Options = plan.Options with { LearningRate = Float(Value()) }; break;
                case "--recon-param-lr": plan.Options = plan.Options with { ParameterLearningRate = Float(Value()) }; break;
                case "--recon-seed": plan.Options = plan.Options with { Seed = ulong.Parse(Value(), CultureInfo.InvariantCulture) }; break;
                case "--recon-params": plan.Options = plan.Options with { Parameters = Enum.Parse<ReconstructionParameters>(Value(), ignoreCase: true) }; break;
                case "--recon-sentences": plan.Sentences = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--recon-batch": plan.BatchSize = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--recon-target":
                    string target = Value();
                    plan.ModelTarget = target switch { "model" => true, "block" => false, _ => throw new ArgumentException($"--recon-target {target}: expected model or block") };
                    break;
                default: rest.Add(args[i]); break;
            }
        }
        plan.Options.Validate();
        if (plan.Sentences <= 0 || plan.BatchSize <= 0) throw new ArgumentException("--recon-sentences and --recon-batch must be positive");
        return (plan, rest.ToArray());
    }

    /// <summary>The last <see cref="Build"/>'s report per encoder block, in order.</summary>
    public IReadOnlyList<ReconstructionReport> BlockReports { get; private set; } = [];

    /// <summary>One line describing the settings.</summary>
    public string Describe(int available) => string.Create(CultureInfo.InvariantCulture,
        $"reconstruction: {Math.Min(Sentences, available)} calibration sentences in batches of {BatchSize}, {Options.Steps} Adam steps per block, lr {Options.LearningRate} (scales, relative) / {Options.ParameterLearningRate} (biases, LayerNorms), tuning {Options.Parameters}, target {(ModelTarget ? "the fp32 model's hidden state" : "the fp32 block on the quantized input")}, seed {Options.Seed}");

    /// <summary>
    /// GPTQ int4 g64, then block-by-block reconstruction: block b is tuned on the quantized model's input to it (the
    /// blocks before it already tuned), with float32 activations.
    /// </summary>
    public (ISentenceEncoder Model, CompressionReport Report) Build(string onnx, CompressionOptions gptq, MiniLmTokenizer tokenizer, IReadOnlyList<string> calibrationSentences)
    {
        // Its own fp32 model: the sample's default run compresses its fp32 model in place (the int8 plan).
        var fp32 = new MiniLm();
        fp32.LoadWeights(onnx, MiniLmForward.ImportOptions);
        var model = new MiniLmGptqInt4G64();
        model.LoadWeights(onnx, MiniLmForward.ImportOptions);
        var report = model.Compress(gptq);
        var saved = KernelOptions.QuantizedActivations;
        KernelOptions.QuantizedActivations = ActivationPrecision.Float32;
        try
        {
            // Batches of similar length, packed (no padding rows), as the encoder runs them.
            var sentences = calibrationSentences.Take(Sentences).ToArray();
            var order = Enumerable.Range(0, sentences.Length).OrderBy(i => tokenizer.Encode(sentences[i]).Length).ThenBy(i => i);
            var batches = new List<SequenceBatch>();
            var quantized = new List<Tensor>();
            foreach (var chunk in order.Chunk(BatchSize))
            {
                var tokens = tokenizer.EncodeBatch(chunk.Select(i => sentences[i]).ToArray());
                var padded = new SequenceBatch(tokens.Count, tokens.Length, tokens.Mask);
                var packed = padded.Pack();
                batches.Add(packed);
                quantized.Add(model.Embed(tokens, padded, packed));
            }
            var reference = quantized.ToList();    // the embeddings are not quantized: the same input to block 0
            var blocks = model.EncoderBlocks();
            var reports = new List<ReconstructionReport>();
            BlockReports = reports;
            for (int b = 0; b < blocks.Length; b++)
            {
                var block = blocks[b];
                var fp32Block = fp32.EncoderBlocks()[b];
                var inputs = quantized.ToArray();
                Tensor[] targets;
                using (Tensor.NoGrad())
                {
                    reference = reference.Select((x, i) => fp32Block.Forward(x, batches[i])).ToList();
                    targets = ModelTarget ? reference.ToArray() : inputs.Select((x, i) => fp32Block.Forward(x, batches[i])).ToArray();
                }
                var layers = block.Layers.Concat(block.ParameterLayers).ToArray();
                var result = BlockReconstruction.Run(layers, i => block.Forward(inputs[i], batches[i]), targets, Options with { Seed = Options.Seed + (ulong)b });
                reports.Add(result);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  reconstruction block {b}: loss {result.LossBefore:E4} -> {result.LossAfter:E4} ({(result.Kept ? "kept" : "restored")}), {result.Steps} steps, {result.TunedScales:N0} scales + {result.TunedParameters:N0} biases/norms, {result.Seconds:F1} s"));
                using (Tensor.NoGrad())
                    quantized = inputs.Select((x, i) => block.Forward(x, batches[i])).ToList();
            }
        }
        finally
        {
            KernelOptions.QuantizedActivations = saved;
        }
        return (model, report);
    }
}
