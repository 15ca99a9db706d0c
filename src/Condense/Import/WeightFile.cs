using System.Buffers.Binary;
using Condense.IO;

namespace Condense.Import;

/// <summary>The formats <see cref="WeightFile.Open"/> reads.</summary>
public enum WeightFileFormat
{
    /// <summary>Detect from the file's first bytes (and its extension when they say nothing).</summary>
    Auto = 0,
    /// <summary>safetensors (PyTorch / Hugging Face, or a Condense model file's dense tensors).</summary>
    SafeTensors = 1,
    /// <summary>An ONNX model's initializers.</summary>
    Onnx = 2,
}

/// <summary>How a 2-D tensor is laid out in the file, relative to Condense's [out, in].</summary>
public enum StoredLayout
{
    /// <summary>As Condense and PyTorch store it: Linear [out, in], Conv2d [out, in, kh, kw], vectors as they are.</summary>
    AsIs = 0,
    /// <summary>[in, out]: the B input of an ONNX MatMul (or of a Gemm without transB); import transposes it.</summary>
    InOut = 1,
}

/// <summary>One tensor a weight file offers.</summary>
/// <param name="Name">The name import matches: the file's own name, or for an ONNX weight the exporter left unnamed, the name recovered from the graph (see <see cref="SourceName"/>).</param>
/// <param name="SourceName">The name stored in the file.</param>
/// <param name="DType">The element type as the format spells it (<c>F32</c>, <c>BF16</c>, <c>Float16</c>, <c>Int64</c>...).</param>
/// <param name="Shape">Dimensions as stored.</param>
/// <param name="IsFloatingPoint">Whether the values can be read as float32 (F32, F16, BF16, F64).</param>
/// <param name="Layout">Whether the file stores the matrix transposed ([in, out]).</param>
/// <param name="IsGraphConstant">An ONNX integer or boolean initializer (shapes, indices, position ids): graph plumbing, never a weight.</param>
public sealed record WeightTensorInfo(string Name, string SourceName, string DType, long[] Shape, bool IsFloatingPoint, StoredLayout Layout, bool IsGraphConstant = false)
{
    /// <summary>The shape as Condense sees it: reversed for an [in, out] matrix.</summary>
    public long[] ImportShape => Layout == StoredLayout.InOut && Shape.Length == 2 ? [Shape[1], Shape[0]] : Shape;

    /// <summary>How the name is written in messages: the recovered name with the stored one when they differ.</summary>
    public string Display => Name == SourceName ? $"'{Name}'" : $"'{Name}' (stored as '{SourceName}')";
}

/// <summary>A file's tensors is malformed or in a form Condense does not read (not safetensors or ONNX, ONNX external data...).</summary>
public sealed class WeightFileFormatException : IOException
{
    /// <summary>Creates the exception; the message names the file, the tensor when there is one, and the problem.</summary>
    public WeightFileFormatException(string filePath, string? tensorName, string problem, Exception? inner = null)
        : base(tensorName is null ? $"'{filePath}': {problem}" : $"'{filePath}', tensor '{tensorName}': {problem}", inner)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>The tensor at fault, or null.</summary>
    public string? TensorName { get; }
}

/// <summary>
/// The named tensors of a safetensors file or an ONNX model, read as float32 in Condense's layout. This is what
/// <see cref="WeightImport"/> matches against a model; it is also a way to list a file's tensors.
/// </summary>
public abstract class WeightFile : IDisposable
{
    private protected WeightFile(string path, WeightFileFormat format)
    {
        Path = path;
        Format = format;
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>Its format.</summary>
    public WeightFileFormat Format { get; }

    /// <summary>The tensors, in file order.</summary>
    public abstract IReadOnlyList<WeightTensorInfo> Tensors { get; }

    /// <summary>Reads a floating-point tensor widened to float32, transposed to [out, in] when <see cref="WeightTensorInfo.Layout"/> is InOut.</summary>
    public float[] ReadForImport(WeightTensorInfo tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var values = ReadStored(tensor);
        if (tensor.Layout != StoredLayout.InOut || tensor.Shape.Length != 2) return values;
        int rows = (int)tensor.Shape[0], columns = (int)tensor.Shape[1];
        var transposed = new float[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++)
                transposed[c * rows + r] = values[r * columns + c];
        return transposed;
    }

    /// <summary>Reads a floating-point tensor widened to float32, in its stored layout.</summary>
    public abstract float[] ReadStored(WeightTensorInfo tensor);

    /// <summary>Releases the file.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>The ONNX model behind an ONNX file's tensors (opset, producer, nodes); null for safetensors.</summary>
    public virtual OnnxModel? Onnx => null;

    /// <summary>
    /// Opens <paramref name="path"/> as safetensors or ONNX. <see cref="WeightFileFormat.Auto"/> looks at the first bytes
    /// (an 8-byte header size then <c>{</c> is safetensors; a protobuf ModelProto is ONNX) and at the extension.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="format">The format, or Auto.</param>
    /// <param name="transposeWhere">Marks safetensors tensors stored [in, out] (e.g. GPT-2's Conv1D); ONNX layouts come from the graph.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="SafeTensorsFormatException">A safetensors file is malformed.</exception>
    /// <exception cref="WeightFileFormatException">The file is neither format, an invalid ONNX model, or an ONNX model with external data.</exception>
    public static WeightFile Open(string path, WeightFileFormat format = WeightFileFormat.Auto, Func<string, bool>? transposeWhere = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Weight file '{path}' does not exist.", path);
        if (format == WeightFileFormat.Auto) format = DetectFormat(path);
        return format == WeightFileFormat.Onnx
            ? new OnnxWeightFile(path, OnnxModel.Read(path))
            : new SafeTensorsWeightFile(path, SafeTensorsFile.Open(path), transposeWhere);
    }

    /// <summary>The format <see cref="Open"/> reads <paramref name="path"/> as with <see cref="WeightFileFormat.Auto"/>.</summary>
    /// <exception cref="WeightFileFormatException">The file is neither format (what it starts with is said).</exception>
    public static WeightFileFormat DetectFormat(string path)
    {
        Span<byte> head = stackalloc byte[9];
        int read;
        long length;
        using (var stream = File.OpenRead(path))
        {
            length = stream.Length;
            read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        }
        if (read == 9 && head[8] == (byte)'{' && BinaryPrimitives.ReadUInt64LittleEndian(head) <= (ulong)(length - 8))
            return WeightFileFormat.SafeTensors;
        string extension = System.IO.Path.GetExtension(path);
        if (extension.Equals(".safetensors", StringComparison.OrdinalIgnoreCase)) return WeightFileFormat.SafeTensors; // its reader names what is wrong
        // A ModelProto starts with one of its fields; exporters write ir_version (field 1, varint: byte 0x08) first.
        if (extension.Equals(".onnx", StringComparison.OrdinalIgnoreCase) || (read > 0 && head[0] == 0x08))
            return WeightFileFormat.Onnx;
        string first = read == 0 ? "the file is empty" : "it starts with bytes " + Convert.ToHexString(head[..read]);
        throw new WeightFileFormatException(path, null,
            $"this is neither a safetensors file nor an ONNX model ({first}): safetensors starts with an 8-byte little-endian header size and '{{', an ONNX model with its ir_version field (byte 0x08). " +
            "Save PyTorch weights with safetensors.torch.save_file(model.state_dict(), path) or export with torch.onnx.export.");
    }
}

/// <summary>A safetensors file as a weight source.</summary>
internal sealed class SafeTensorsWeightFile : WeightFile
{
    private readonly SafeTensorsFile _file;
    private readonly List<WeightTensorInfo> _tensors;

    public SafeTensorsWeightFile(string path, SafeTensorsFile file, Func<string, bool>? transposeWhere)
        : base(path, WeightFileFormat.SafeTensors)
    {
        _file = file;
        _tensors = file.Tensors.Select(t => new WeightTensorInfo(t.Name, t.Name, SafeTensorDTypes.Name(t.DType), t.Shape,
            t.DType is SafeTensorDType.F32 or SafeTensorDType.F16 or SafeTensorDType.BF16 or SafeTensorDType.F64,
            transposeWhere?.Invoke(t.Name) == true && t.Shape.Length == 2 ? StoredLayout.InOut : StoredLayout.AsIs)).ToList();
    }

    public override IReadOnlyList<WeightTensorInfo> Tensors => _tensors;

    public override float[] ReadStored(WeightTensorInfo tensor)
    {
        var info = _file.Get(tensor.SourceName);
        if (info.DType == SafeTensorDType.F64)
        {
            var bytes = _file.GetBytes(tensor.SourceName);
            var result = new float[info.ElementCount];
            for (int i = 0; i < result.Length; i++) result[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.Slice(i * 8, 8));
            return result;
        }
        return _file.ReadAsF32(tensor.SourceName);
    }

    public override void Dispose()
    {
        _file.Dispose();
        base.Dispose();
    }
}

/// <summary>
/// An ONNX model's initializers as a weight source. Layouts come from the graph: the B input of MatMul (and of Gemm
/// without transB) is [in, out]. Weights an exporter renamed to a number (PyTorch writes <c>onnx::MatMul_24</c> or
/// <c>927</c> for the transposed copy of <c>encoder.layer.0.attention.self.query.weight</c>) get their name back from
/// the graph: from the bias the MatMul's output is added to (<c>P.bias</c> gives <c>P.weight</c>), else from a scoped node
/// name (<c>/blocks.0/MatMul</c> gives <c>blocks.0.weight</c>).
/// </summary>
internal sealed class OnnxWeightFile : WeightFile
{
    private readonly OnnxModel _model;
    private readonly List<WeightTensorInfo> _tensors = [];
    private readonly Dictionary<string, OnnxInitializer> _bySource = new(StringComparer.Ordinal);

    public OnnxWeightFile(string path, OnnxModel model) : base(path, WeightFileFormat.Onnx)
    {
        _model = model;
        var external = model.Initializers.Where(t => t.IsExternal).ToList();
        if (external.Count > 0)
            throw new WeightFileFormatException(path, external[0].Name,
                $"{external.Count} of the model's {model.Initializers.Count} initializers are stored outside it; " + OnnxModel.ExternalDataProblem(external[0]));
        if (model.SparseInitializers.Count > 0)
            throw new WeightFileFormatException(path, model.SparseInitializers[0],
                $"the graph has {model.SparseInitializers.Count} sparse initializer(s), which Condense does not read; export with dense weights.");

        var names = new HashSet<string>(model.Initializers.Select(t => t.Name), StringComparer.Ordinal);
        var producerOf = new Dictionary<string, OnnxNode>(StringComparer.Ordinal);
        var consumersOf = new Dictionary<string, List<OnnxNode>>(StringComparer.Ordinal);
        var uses = new Dictionary<string, List<(OnnxNode Node, int Input)>>(StringComparer.Ordinal);
        foreach (var node in model.Nodes)
        {
            foreach (var output in node.Outputs) producerOf.TryAdd(output, node);
            for (int i = 0; i < node.Inputs.Count; i++)
            {
                var input = node.Inputs[i];
                if (!consumersOf.TryGetValue(input, out var list)) consumersOf[input] = list = [];
                list.Add(node);
                if (!names.Contains(input)) continue;
                if (!uses.TryGetValue(input, out var used)) uses[input] = used = [];
                used.Add((node, i));
            }
        }

        var taken = new HashSet<string>(names, StringComparer.Ordinal);
        foreach (var initializer in model.Initializers)
        {
            _bySource.TryAdd(initializer.Name, initializer);
            var used = uses.GetValueOrDefault(initializer.Name) ?? [];
            bool inOut = initializer.Dims.Length == 2 && used.Count > 0 && used.All(u => u.Input == 1 &&
                (u.Node.OpType == "MatMul" || (u.Node.OpType == "Gemm" && u.Node.IntAttributes.GetValueOrDefault("transB") == 0)));
            string name = initializer.Name;
            if (inOut && used.Count == 1 && used[0].Node.OpType == "MatMul" && !LooksNamed(name)
                && RecoverName(used[0].Node, consumersOf, names) is { } recovered && taken.Add(recovered))
                name = recovered;
            _tensors.Add(new WeightTensorInfo(name, initializer.Name, initializer.DataType.ToString(), initializer.Dims,
                initializer.IsFloatingPoint, inOut ? StoredLayout.InOut : StoredLayout.AsIs, IsGraphConstant: !initializer.IsFloatingPoint));
        }
    }

    /// <summary>The ONNX model behind the tensors (nodes, opset, producer).</summary>
    public OnnxModel Model => _model;

    public override OnnxModel? Onnx => _model;

    public override IReadOnlyList<WeightTensorInfo> Tensors => _tensors;

    public override float[] ReadStored(WeightTensorInfo tensor) => _model.ReadAsF32(_bySource[tensor.SourceName]);

    /// <summary>A name a person gave (<c>fc.weight</c>), as opposed to an exporter's number or <c>onnx::MatMul_24</c>.</summary>
    private static bool LooksNamed(string name) =>
        name.EndsWith("weight", StringComparison.Ordinal) && !name.Contains("::", StringComparison.Ordinal);

    private static string? RecoverName(OnnxNode matMul, Dictionary<string, List<OnnxNode>> consumersOf, HashSet<string> initializers)
    {
        // MatMul then Add(bias): the bias kept its parameter name.
        if (matMul.Outputs.Count == 1 && consumersOf.TryGetValue(matMul.Outputs[0], out var consumers) && consumers.Count == 1
            && consumers[0] is { OpType: "Add", Inputs.Count: 2 } add)
        {
            string other = add.Inputs[0] == matMul.Outputs[0] ? add.Inputs[1] : add.Inputs[0];
            if (initializers.Contains(other) && other.EndsWith("bias", StringComparison.Ordinal))
                return other[..^"bias".Length] + "weight";
        }
        // PyTorch 1.13+ scopes node names by module: "/blocks.0/MatMul" belongs to module "blocks.0".
        var scope = matMul.Name.Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (matMul.Name.StartsWith('/') && scope.Length >= 2)
            return string.Join(".", scope[..^1]) + ".weight";
        return null;
    }
}
