using Condense.IO;

namespace Condense.Cli.Tests;

/// <summary>Files shaped like PyTorch / Hugging Face checkpoints (names, layouts), written with Condense's writer.</summary>
internal static class Fixtures
{
    /// <summary>A 3-layer BERT-like encoder: embeddings, per-layer attention and MLP, LayerNorms, a pooler, one buffer.</summary>
    public static void WriteBertLike(string path, int layers = 3, int hidden = 32, int intermediate = 64, int vocab = 100)
    {
        var writer = new SafeTensorsWriter();
        var rng = new Random(5);
        void Tensor(string name, params long[] shape)
        {
            var data = new float[shape.Aggregate(1L, (a, b) => a * b)];
            for (int i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() - 0.5);
            writer.AddF32(name, data, shape);
        }
        void Linear(string prefix, int output, int input) { Tensor(prefix + ".weight", output, input); Tensor(prefix + ".bias", output); }
        void Norm(string prefix) { Tensor(prefix + ".weight", hidden); Tensor(prefix + ".bias", hidden); }

        Tensor("embeddings.word_embeddings.weight", vocab, hidden);
        Tensor("embeddings.position_embeddings.weight", 64, hidden);
        Norm("embeddings.LayerNorm");
        for (int l = 0; l < layers; l++)
        {
            string p = $"encoder.layer.{l}.";
            Linear(p + "attention.self.query", hidden, hidden);
            Linear(p + "attention.self.key", hidden, hidden);
            Linear(p + "attention.self.value", hidden, hidden);
            Linear(p + "attention.output.dense", hidden, hidden);
            Norm(p + "attention.output.LayerNorm");
            Linear(p + "intermediate.dense", intermediate, hidden);
            Linear(p + "output.dense", hidden, intermediate);
            Norm(p + "output.LayerNorm");
        }
        Linear("pooler.dense", hidden, hidden);
        writer.AddI32("embeddings.position_ids", Enumerable.Range(0, 64).ToArray(), 1, 64);
        writer.WriteTo(path);
    }

    /// <summary>A small convolutional net with a C# keyword as a module name and an input width no group size divides.</summary>
    public static void WriteConvNet(string path)
    {
        var writer = new SafeTensorsWriter();
        writer.AddF32("features.0.weight", new float[8 * 1 * 3 * 3], 8, 1, 3, 3);
        writer.AddF32("features.0.bias", new float[8], 8);
        writer.AddF32("features.3.weight", new float[16 * 8 * 3 * 3], 16, 8, 3, 3);
        writer.AddF32("features.3.bias", new float[16], 16);
        writer.AddF32("head.out.weight", new float[10 * 30], 10, 30);
        writer.AddF32("head.out.bias", new float[10], 10);
        writer.WriteTo(path);
    }
}
