using Condense.Import;
using Condense.Tests.IO;
using Condense.Transformer;

namespace Condense.Tests.Transformer;

/// <summary>LoadWeights on a model with parameter layers: the LayerNorms and embeddings are import targets like the Linear layers.</summary>
public class BertImportTests
{
    private static readonly int[] Ids = [2, 7, 11, 29, 3, 4, 9, 1, 0, 0];
    private static readonly int[] Mask = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0];

    private static TinyBert RandomModel(ulong seed)
    {
        var model = new TinyBert();
        model.Initialize(seed);
        var rng = new Rng(seed ^ 0xB0B);
        // LayerNorms away from (1, 0), so a LayerNorm left unloaded changes the output.
        foreach (var (path, value) in model.NamedParameters())
            if (path.Contains("Norm", StringComparison.Ordinal))
                for (int i = 0; i < value.Length; i++) value.Data[i] = (path.EndsWith(".weight", StringComparison.Ordinal) ? 1f : 0f) + 0.3f * rng.NextGaussian();
        return model;
    }

    private static float[] Run(TinyBert model)
    {
        using (Tensor.NoGrad())
            return model.Forward(Ids, null, new SequenceBatch(2, 5, Mask)).Data;
    }

    [Fact]
    public void LoadWeights_fills_the_layer_norms_and_embeddings_too()
    {
        using var dir = new TempDirectory();
        var source = RandomModel(41);
        string path = Path.Combine(dir.Path, "bert.safetensors");
        source.Save(path);

        var target = new TinyBert();
        target.Initialize(99);
        var report = target.LoadWeights(path);
        Assert.Equal(source.NamedParameters().Count(), report.Imported.Count);
        Assert.Contains(report.Imported, t => t.ModelName == "embeddingsNorm.bias");
        Assert.Contains(report.Imported, t => t.ModelName == "blocks[1].outputNorm.weight");
        Assert.Contains(report.Imported, t => t.ModelName == "words.weight");
        Assert.Equal(Run(source), Run(target));
    }

    [Fact]
    public void LoadWeights_names_a_missing_layer_norm_tensor()
    {
        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "bert.safetensors");
        RandomModel(42).Save(path);
        var error = Assert.Throws<WeightImportException>(() => new TinyBert().LoadWeights(path,
            new WeightImportOptions { Map = name => name == "blocks[0].attentionNorm.bias" ? null : name }));
        Assert.Equal("blocks[0].attentionNorm.bias", Assert.Single(error.Missing).Name);
    }
}
