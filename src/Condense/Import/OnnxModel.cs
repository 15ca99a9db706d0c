using System.Buffers.Binary;
using System.Globalization;

namespace Condense.Import;

/// <summary>Element types of ONNX tensors (<c>TensorProto.DataType</c>), with the numbers the format uses.</summary>
public enum OnnxDataType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>float32.</summary>
    Float = 1,
    /// <summary>uint8.</summary>
    UInt8 = 2,
    /// <summary>int8.</summary>
    Int8 = 3,
    /// <summary>uint16.</summary>
    UInt16 = 4,
    /// <summary>int16.</summary>
    Int16 = 5,
    /// <summary>int32.</summary>
    Int32 = 6,
    /// <summary>int64.</summary>
    Int64 = 7,
    /// <summary>Strings.</summary>
    String = 8,
    /// <summary>Booleans.</summary>
    Bool = 9,
    /// <summary>IEEE half precision.</summary>
    Float16 = 10,
    /// <summary>float64.</summary>
    Double = 11,
    /// <summary>uint32.</summary>
    UInt32 = 12,
    /// <summary>uint64.</summary>
    UInt64 = 13,
    /// <summary>Two float32.</summary>
    Complex64 = 14,
    /// <summary>Two float64.</summary>
    Complex128 = 15,
    /// <summary>bfloat16 (the upper half of a float32).</summary>
    BFloat16 = 16,
}

/// <summary>One initializer of an ONNX graph: a named constant tensor, usually a weight.</summary>
public sealed class OnnxInitializer
{
    internal OnnxInitializer(string name, OnnxDataType dataType, long[] dims)
    {
        Name = name;
        DataType = dataType;
        Dims = dims;
    }

    /// <summary>The initializer's name in the graph (exporters may use a number for weights they transformed).</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public OnnxDataType DataType { get; }

    /// <summary>Dimensions, as stored.</summary>
    public long[] Dims { get; }

    /// <summary>Number of elements (1 for a scalar).</summary>
    public long ElementCount => Dims.Aggregate(1L, (product, d) => checked(product * d));

    /// <summary>Whether the data lives in a side file (<c>data_location = EXTERNAL</c>); Condense does not read those.</summary>
    public bool IsExternal { get; internal set; }

    /// <summary>The side file named by <c>external_data</c>'s <c>location</c> key, when <see cref="IsExternal"/>.</summary>
    public string? ExternalLocation { get; internal set; }

    /// <summary>Whether the element type is a floating-point one that <see cref="OnnxModel.ReadAsF32"/> reads.</summary>
    public bool IsFloatingPoint => DataType is OnnxDataType.Float or OnnxDataType.Float16 or OnnxDataType.BFloat16 or OnnxDataType.Double;

    internal (int Start, int End)? RawData { get; set; }

    // Typed repeated fields as byte ranges of their encoded values (packed payloads and unpacked values encode alike).
    internal List<(int Start, int End)> FloatData { get; } = [];
    internal List<(int Start, int End)> Int32Data { get; } = [];
    internal List<(int Start, int End)> DoubleData { get; } = [];

    /// <summary>The shape as text, e.g. <c>[384, 1536]</c>.</summary>
    public string ShapeText => "[" + string.Join(", ", Dims.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}

/// <summary>One node of an ONNX graph: enough to see which initializers feed which operator.</summary>
/// <param name="Name">The node's name (may be empty).</param>
/// <param name="OpType">The operator, e.g. <c>MatMul</c> or <c>Gemm</c>.</param>
/// <param name="Domain">The operator set domain; empty for the default ONNX domain.</param>
/// <param name="Inputs">Input value names, in order (empty string for an omitted optional input).</param>
/// <param name="Outputs">Output value names, in order.</param>
/// <param name="IntAttributes">The node's integer attributes (e.g. Gemm's <c>transB</c>).</param>
public sealed record OnnxNode(string Name, string OpType, string Domain, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, long> IntAttributes);

/// <summary>
/// The parts of an ONNX model (<c>ModelProto</c> -&gt; <c>GraphProto</c>) that weight import needs: the initializers
/// with their names, types, shapes and data, and the nodes that consume them. A small hand-written protobuf reader,
/// no dependency: the whole file is read into memory (ONNX files are at most 2 GB) and tensor data is decoded only
/// when <see cref="ReadAsF32"/> asks for it.
/// </summary>
public sealed class OnnxModel
{
    private readonly byte[] _bytes;

    private OnnxModel(string path, byte[] bytes)
    {
        Path = path;
        _bytes = bytes;
    }

    /// <summary>The file read.</summary>
    public string Path { get; }

    /// <summary><c>ModelProto.ir_version</c>.</summary>
    public long IrVersion { get; private set; }

    /// <summary><c>ModelProto.producer_name</c>, e.g. <c>pytorch</c>.</summary>
    public string ProducerName { get; private set; } = "";

    /// <summary><c>ModelProto.producer_version</c>.</summary>
    public string ProducerVersion { get; private set; } = "";

    /// <summary>The opset version of the default ONNX domain, or 0 when the model does not say.</summary>
    public long OpsetVersion { get; private set; }

    /// <summary>The graph's initializers in file order.</summary>
    public IReadOnlyList<OnnxInitializer> Initializers => _initializers;

    /// <summary>The graph's nodes in file order (subgraphs of control-flow nodes are not read).</summary>
    public IReadOnlyList<OnnxNode> Nodes => _nodes;

    /// <summary>Names of the graph's inputs.</summary>
    public IReadOnlyList<string> GraphInputs => _inputs;

    /// <summary>Names of the graph's outputs.</summary>
    public IReadOnlyList<string> GraphOutputs => _outputs;

    /// <summary>Names of sparse initializers, which Condense does not read.</summary>
    public IReadOnlyList<string> SparseInitializers => _sparse;

    private readonly List<OnnxInitializer> _initializers = [];
    private readonly List<OnnxNode> _nodes = [];
    private readonly List<string> _inputs = [];
    private readonly List<string> _outputs = [];
    private readonly List<string> _sparse = [];

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="WeightFileFormatException">The file is not a valid ONNX model (the message says where it fails).</exception>
    public static OnnxModel Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX file '{path}' does not exist.", path);
        var length = new FileInfo(path).Length;
        if (length > Array.MaxLength)
            throw new WeightFileFormatException(path, null, $"the file is {length} bytes; an ONNX model file is at most 2 GB (larger models keep their weights as external data, which Condense does not read): export to safetensors instead.");
        return Parse(path, File.ReadAllBytes(path));
    }

    /// <summary>Parses an ONNX model held in memory; <paramref name="path"/> names it in messages.</summary>
    public static OnnxModel Parse(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var model = new OnnxModel(path, bytes);
        try
        {
            model.ParseModel();
        }
        catch (ProtoFormatException e)
        {
            throw new WeightFileFormatException(path, null, $"not a valid ONNX model: {e.Message}.", e);
        }
        catch (OverflowException e)
        {
            throw new WeightFileFormatException(path, null, $"not a valid ONNX model: a tensor's dimensions overflow ({e.Message}).", e);
        }
        return model;
    }

    private void ParseModel()
    {
        var reader = new ProtoReader(_bytes, 0, _bytes.Length);
        bool sawGraph = false;
        while (reader.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == WireType.Varint: IrVersion = reader.ReadInt64(); break;
                case 2 when wire == WireType.LengthDelimited: ProducerName = reader.ReadString(); break;
                case 3 when wire == WireType.LengthDelimited: ProducerVersion = reader.ReadString(); break;
                case 7:
                    ProtoReader.Expect(wire, WireType.LengthDelimited, "ModelProto.graph");
                    var graph = reader.ReadMessage();
                    ParseGraph(ref graph);
                    sawGraph = true;
                    break;
                case 8:
                    ProtoReader.Expect(wire, WireType.LengthDelimited, "ModelProto.opset_import");
                    var opset = reader.ReadMessage();
                    ParseOpset(ref opset);
                    break;
                default: reader.Skip(wire); break;
            }
        }
        if (!sawGraph)
            throw new ProtoFormatException("the ModelProto has no graph (field 7), so this is not an ONNX model");
    }

    private void ParseOpset(ref ProtoReader reader)
    {
        string domain = "";
        long version = 0;
        while (reader.TryReadTag(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) domain = reader.ReadString();
            else if (field == 2 && wire == WireType.Varint) version = reader.ReadInt64();
            else reader.Skip(wire);
        }
        if (domain is "" or "ai.onnx") OpsetVersion = version;
    }

    private void ParseGraph(ref ProtoReader reader)
    {
        while (reader.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1:
                {
                    ProtoReader.Expect(wire, WireType.LengthDelimited, "GraphProto.node");
                    var node = reader.ReadMessage();
                    _nodes.Add(ParseNode(ref node));
                    break;
                }
                case 5:
                {
                    ProtoReader.Expect(wire, WireType.LengthDelimited, "GraphProto.initializer");
                    var tensor = reader.ReadMessage();
                    _initializers.Add(ParseTensor(ref tensor, _initializers.Count));
                    break;
                }
                case 11 or 12:
                {
                    ProtoReader.Expect(wire, WireType.LengthDelimited, field == 11 ? "GraphProto.input" : "GraphProto.output");
                    var value = reader.ReadMessage();
                    (field == 11 ? _inputs : _outputs).Add(ReadNameField(ref value));
                    break;
                }
                case 15:
                {
                    ProtoReader.Expect(wire, WireType.LengthDelimited, "GraphProto.sparse_initializer");
                    var sparse = reader.ReadMessage();
                    _sparse.Add(ReadSparseName(ref sparse));
                    break;
                }
                default: reader.Skip(wire); break;
            }
        }
    }

    /// <summary>Field 1 (name) of a ValueInfoProto.</summary>
    private static string ReadNameField(ref ProtoReader reader)
    {
        string name = "";
        while (reader.TryReadTag(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) name = reader.ReadString();
            else reader.Skip(wire);
        }
        return name;
    }

    /// <summary>The name of a SparseTensorProto's values tensor (field 1).</summary>
    private static string ReadSparseName(ref ProtoReader reader)
    {
        string name = "";
        while (reader.TryReadTag(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited)
            {
                var values = reader.ReadMessage();
                while (values.TryReadTag(out int f, out var w))
                {
                    if (f == 8 && w == WireType.LengthDelimited) name = values.ReadString();
                    else values.Skip(w);
                }
            }
            else reader.Skip(wire);
        }
        return name;
    }

    private static OnnxNode ParseNode(ref ProtoReader reader)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        var attributes = new Dictionary<string, long>(StringComparer.Ordinal);
        string name = "", opType = "", domain = "";
        while (reader.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == WireType.LengthDelimited: inputs.Add(reader.ReadString()); break;
                case 2 when wire == WireType.LengthDelimited: outputs.Add(reader.ReadString()); break;
                case 3 when wire == WireType.LengthDelimited: name = reader.ReadString(); break;
                case 4 when wire == WireType.LengthDelimited: opType = reader.ReadString(); break;
                case 7 when wire == WireType.LengthDelimited: domain = reader.ReadString(); break;
                case 5 when wire == WireType.LengthDelimited:
                {
                    var attribute = reader.ReadMessage();
                    string attributeName = "";
                    long? value = null;
                    while (attribute.TryReadTag(out int f, out var w))
                    {
                        if (f == 1 && w == WireType.LengthDelimited) attributeName = attribute.ReadString();
                        else if (f == 3 && w == WireType.Varint) value = attribute.ReadInt64();
                        else attribute.Skip(w);
                    }
                    if (value is { } v && attributeName.Length > 0) attributes[attributeName] = v;
                    break;
                }
                default: reader.Skip(wire); break;
            }
        }
        return new OnnxNode(name, opType, domain, inputs, outputs, attributes);
    }

    private static OnnxInitializer ParseTensor(ref ProtoReader reader, int index)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        (int, int)? raw = null;
        var floats = new List<(int, int)>();
        var ints = new List<(int, int)>();
        var doubles = new List<(int, int)>();
        int dataLocation = 0;
        string? location = null;
        bool hasExternalEntries = false;
        while (reader.TryReadTag(out int field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == WireType.Varint: dims.Add(reader.ReadInt64()); break;
                case 1 when wire == WireType.LengthDelimited:
                {
                    var packed = reader.ReadMessage();
                    while (packed.Position < packed.End) dims.Add(packed.ReadInt64());
                    break;
                }
                case 2 when wire == WireType.Varint: dataType = reader.ReadInt32(); break;
                case 3:
                    throw new ProtoFormatException($"initializer #{index} is split into segments (TensorProto.segment), which Condense does not read");
                case 4 when wire == WireType.LengthDelimited: floats.Add(reader.ReadLengthDelimited()); break;
                case 4 when wire == WireType.Fixed32: { int start = reader.Position; reader.Skip(wire); floats.Add((start, reader.Position)); break; }
                case 5 when wire == WireType.LengthDelimited: ints.Add(reader.ReadLengthDelimited()); break;
                case 5 when wire == WireType.Varint: { int start = reader.Position; reader.Skip(wire); ints.Add((start, reader.Position)); break; }
                case 8 when wire == WireType.LengthDelimited: name = reader.ReadString(); break;
                case 9 when wire == WireType.LengthDelimited: raw = reader.ReadLengthDelimited(); break;
                case 10 when wire == WireType.LengthDelimited: doubles.Add(reader.ReadLengthDelimited()); break;
                case 10 when wire == WireType.Fixed64: { int start = reader.Position; reader.Skip(wire); doubles.Add((start, reader.Position)); break; }
                case 13 when wire == WireType.LengthDelimited:
                {
                    hasExternalEntries = true;
                    var entry = reader.ReadMessage();
                    string key = "", value = "";
                    while (entry.TryReadTag(out int f, out var w))
                    {
                        if (f == 1 && w == WireType.LengthDelimited) key = entry.ReadString();
                        else if (f == 2 && w == WireType.LengthDelimited) value = entry.ReadString();
                        else entry.Skip(w);
                    }
                    if (key == "location") location = value;
                    break;
                }
                case 14 when wire == WireType.Varint: dataLocation = reader.ReadInt32(); break;
                default: reader.Skip(wire); break;
            }
        }
        foreach (var d in dims)
            if (d < 0) throw new ProtoFormatException($"initializer '{name}' has a negative dimension {d}");
        var tensor = new OnnxInitializer(name, (OnnxDataType)dataType, dims.ToArray())
        {
            RawData = raw,
            IsExternal = dataLocation == 1 || hasExternalEntries,
            ExternalLocation = location,
        };
        _ = tensor.ElementCount; // dimensions whose product overflows fail here, while parsing
        tensor.FloatData.AddRange(floats);
        tensor.Int32Data.AddRange(ints);
        tensor.DoubleData.AddRange(doubles);
        return tensor;
    }

    /// <summary>
    /// Reads a floating-point initializer as float32 in its stored layout: <c>raw_data</c> (little-endian) or the
    /// typed field (<c>float_data</c>; <c>int32_data</c> for float16/bfloat16; <c>double_data</c>), widening float16
    /// and bfloat16 exactly and narrowing float64 to the nearest float32.
    /// </summary>
    /// <exception cref="WeightFileFormatException">The data is external, of a non-floating type, or does not match the shape.</exception>
    public float[] ReadAsF32(OnnxInitializer tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.IsExternal)
            throw new WeightFileFormatException(Path, tensor.Name, ExternalDataProblem(tensor));
        if (!tensor.IsFloatingPoint)
            throw new WeightFileFormatException(Path, tensor.Name, $"its data type is {tensor.DataType}; only Float, Float16, BFloat16 and Double initializers are weights Condense reads.");
        long count = tensor.ElementCount;
        if (count > Array.MaxLength)
            throw new WeightFileFormatException(Path, tensor.Name, $"it has {count} elements; .NET arrays hold at most {Array.MaxLength}.");
        var result = new float[count];
        var bytes = _bytes.AsSpan();
        int elementBytes = tensor.DataType switch { OnnxDataType.Float => 4, OnnxDataType.Double => 8, _ => 2 };
        if (tensor.RawData is { } raw)
        {
            var data = bytes[raw.Start..raw.End];
            if (data.Length != count * elementBytes)
                throw new WeightFileFormatException(Path, tensor.Name, $"raw_data holds {data.Length} bytes; {tensor.DataType} {tensor.ShapeText} needs {count * elementBytes}.");
            if (tensor.DataType == OnnxDataType.Float && BitConverter.IsLittleEndian)
            {
                // The common case (every PyTorch export): one copy, no per-element decoding.
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(data).CopyTo(result);
                return result;
            }
            for (int i = 0; i < result.Length; i++)
                result[i] = tensor.DataType switch
                {
                    OnnxDataType.Float => BinaryPrimitives.ReadSingleLittleEndian(data.Slice(i * 4, 4)),
                    OnnxDataType.Double => (float)BinaryPrimitives.ReadDoubleLittleEndian(data.Slice(i * 8, 8)),
                    OnnxDataType.Float16 => (float)BinaryPrimitives.ReadHalfLittleEndian(data.Slice(i * 2, 2)),
                    _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(data.Slice(i * 2, 2)) << 16),
                };
            return result;
        }
        // The typed fields: check the stored count first, then decode.
        (string Field, List<(int Start, int End)> Chunks) typed = tensor.DataType switch
        {
            OnnxDataType.Float => ("float_data", tensor.FloatData),
            OnnxDataType.Double => ("double_data", tensor.DoubleData),
            _ => ("int32_data", tensor.Int32Data),
        };
        long stored = tensor.DataType switch
        {
            OnnxDataType.Float or OnnxDataType.Double => typed.Chunks.Sum(c => (long)(c.End - c.Start)) / elementBytes,
            _ => typed.Chunks.Sum(c => CountVarints(_bytes.AsSpan(c.Start, c.End - c.Start))),
        };
        if (stored != count)
            throw new WeightFileFormatException(Path, tensor.Name, $"{typed.Field} holds {stored} values and there is no raw_data; {tensor.DataType} {tensor.ShapeText} needs {count}.");
        int filled = 0;
        foreach (var (start, end) in typed.Chunks)
        {
            if (tensor.DataType == OnnxDataType.Float)
                for (int p = start; p + 4 <= end; p += 4)
                    result[filled++] = BinaryPrimitives.ReadSingleLittleEndian(bytes.Slice(p, 4));
            else if (tensor.DataType == OnnxDataType.Double)
                for (int p = start; p + 8 <= end; p += 8)
                    result[filled++] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes.Slice(p, 8));
            else
            {
                // float16 and bfloat16 values are stored one per int32_data element, in its low 16 bits.
                var values = new ProtoReader(_bytes, start, end);
                while (values.Position < end)
                {
                    var bits = (ushort)(values.ReadVarint() & 0xFFFF);
                    result[filled++] = tensor.DataType == OnnxDataType.Float16
                        ? (float)BitConverter.UInt16BitsToHalf(bits)
                        : BitConverter.Int32BitsToSingle(bits << 16);
                }
            }
        }
        return result;
    }

    /// <summary>Varints in a packed run: bytes without the continuation bit end one value each.</summary>
    private static long CountVarints(ReadOnlySpan<byte> run)
    {
        long count = 0;
        foreach (var b in run)
            if ((b & 0x80) == 0) count++;
        return count;
    }

    /// <summary>The named error for an initializer kept in a side file.</summary>
    internal static string ExternalDataProblem(OnnxInitializer tensor) =>
        $"its data is stored outside the model file (ONNX external data{(tensor.ExternalLocation is null ? "" : $", in '{tensor.ExternalLocation}'")}), " +
        "which Condense does not read: save the model with its weights inside (onnx.save_model(model, path, save_as_external_data=False), possible below 2 GB) or export the weights to safetensors.";
}
