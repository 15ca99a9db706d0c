using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Condense.MiniLM;

/// <summary>
/// The fp32 reference: the package's model.onnx in ONNX Runtime (CPU, a fixed number of intra-op threads), then the
/// same mean pooling and normalization as sentence-transformers (the graph ends at the last hidden state).
/// </summary>
public sealed class OrtReference : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string _output;
    private readonly bool _takesTokenTypes;

    /// <param name="onnxPath">model.onnx.</param>
    /// <param name="threads">Intra-op threads (the comparison uses 2, as Condense on this machine).</param>
    public OrtReference(string onnxPath, int threads)
    {
        using var options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        _session = new InferenceSession(onnxPath, options);
        _output = _session.OutputMetadata.Keys.First();
        _takesTokenTypes = _session.InputMetadata.ContainsKey("token_type_ids");
    }

    /// <summary>The graph's inputs and outputs, for the log.</summary>
    public string Describe() =>
        $"inputs {string.Join(", ", _session.InputMetadata.Keys)}; output '{_output}' {string.Join("x", _session.OutputMetadata[_output].Dimensions)}";

    /// <summary>Unit-length sentence embeddings [Count, 384] of a token batch.</summary>
    public Tensor Encode(TokenBatch tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        int[] shape = [tokens.Count, tokens.Length];
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(tokens.Ids.Select(i => (long)i).ToArray(), shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(tokens.Mask.Select(i => (long)i).ToArray(), shape)),
        };
        if (_takesTokenTypes) inputs.Add(NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(new long[tokens.Ids.Length], shape)));
        using var results = _session.Run(inputs, [_output]);
        var hidden = results[0].AsTensor<float>();
        int width = (int)hidden.Dimensions[^1];
        var y = Tensor.Zeros(tokens.Count, width);
        for (int b = 0; b < tokens.Count; b++)
        {
            int count = 0;
            for (int t = 0; t < tokens.Length; t++)
            {
                if (tokens.Mask[b * tokens.Length + t] == 0) continue;
                count++;
                for (int c = 0; c < width; c++) y.Data[b * width + c] += hidden[b, t, c];
            }
            for (int c = 0; c < width; c++) y.Data[b * width + c] /= Math.Max(count, 1);
        }
        MiniLmForward.Normalize(y);
        return y;
    }

    /// <inheritdoc/>
    public void Dispose() => _session.Dispose();
}
