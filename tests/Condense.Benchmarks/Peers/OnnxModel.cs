using System.Text;

namespace Condense.Benchmarks.Peers;

/// <summary>ONNX TensorProto.DataType values the peer models use.</summary>
internal enum OnnxType
{
    Float = 1,
    UInt8 = 2,
    Int8 = 3,
}

/// <summary>A constant tensor of the model (weights, scales, zero points): raw little-endian bytes.</summary>
internal sealed record OnnxInitializer(string Name, OnnxType Type, long[] Dims, byte[] RawData);

/// <summary>An int attribute of the node, e.g. <c>bits</c> or <c>accuracy_level</c>.</summary>
internal sealed record OnnxIntAttribute(string Name, long Value);

/// <summary>
/// The ModelProto bytes of a one-node graph <c>Y[batch, N] = Op(A[batch, K], initializers...)</c>, written by hand so no
/// model file is checked in and no protobuf package is needed. Only the fields ONNX Runtime needs are written; the
/// field numbers are those of onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto).
/// </summary>
internal static class OnnxModel
{
    // IR version 8 (ONNX 1.13): older than anything ONNX Runtime 1.32 loads, newer than every feature used here.
    private const long IrVersion = 8;
    private const long DefaultOpset = 17;
    private const long MicrosoftOpset = 1;

    /// <param name="domain">"" for standard ops (MatMul), "com.microsoft" for contrib ops (MatMulNBits, DynamicQuantizeMatMul).</param>
    /// <param name="inputs">The node's inputs in order: "A" first, then initializer names ("" for a skipped optional input).</param>
    /// <param name="k">A's second dimension; the first is the symbolic "batch", so one session serves every batch.</param>
    /// <param name="n">Y's second dimension.</param>
    public static byte[] Build(string opType, string domain, IReadOnlyList<string> inputs, IReadOnlyList<OnnxInitializer> initializers,
        IReadOnlyList<OnnxIntAttribute> attributes, int k, int n)
    {
        var node = new ProtoWriter();
        foreach (var input in inputs) node.String(1, input);
        node.String(2, "Y");
        node.String(3, "peer");
        node.String(4, opType);
        foreach (var attribute in attributes)
        {
            var a = new ProtoWriter();
            a.String(1, attribute.Name);
            a.Int(3, attribute.Value);      // i
            a.Int(20, 2);                   // type = INT
            node.Message(5, a);
        }
        if (domain.Length > 0) node.String(7, domain);

        var graph = new ProtoWriter();
        graph.Message(1, node);
        graph.String(2, "condense_peer");
        foreach (var init in initializers)
        {
            var t = new ProtoWriter();
            foreach (var d in init.Dims) t.Int(1, d);
            t.Int(2, (long)init.Type);
            t.String(8, init.Name);
            t.Bytes(9, init.RawData);       // raw_data
            graph.Message(5, t);
        }
        graph.Message(11, ValueInfo("A", OnnxType.Float, k));
        graph.Message(12, ValueInfo("Y", OnnxType.Float, n));

        var model = new ProtoWriter();
        model.Int(1, IrVersion);
        model.String(2, "Condense.Benchmarks");
        model.Message(7, graph);
        model.Message(8, Opset("", DefaultOpset));
        model.Message(8, Opset("com.microsoft", MicrosoftOpset));
        return model.ToArray();
    }

    private static ProtoWriter Opset(string domain, long version)
    {
        var o = new ProtoWriter();
        o.String(1, domain);
        o.Int(2, version);
        return o;
    }

    // ValueInfoProto { name, type: TypeProto { tensor_type: { elem_type, shape: [dim_param "batch", dim_value columns] } } }
    private static ProtoWriter ValueInfo(string name, OnnxType type, long columns)
    {
        var batch = new ProtoWriter();
        batch.String(2, "batch");
        var cols = new ProtoWriter();
        cols.Int(1, columns);
        var shape = new ProtoWriter();
        shape.Message(1, batch);
        shape.Message(1, cols);
        var tensor = new ProtoWriter();
        tensor.Int(1, (long)type);
        tensor.Message(2, shape);
        var typeProto = new ProtoWriter();
        typeProto.Message(1, tensor);
        var info = new ProtoWriter();
        info.String(1, name);
        info.Message(2, typeProto);
        return info;
    }
}

/// <summary>
/// The protobuf wire format, as much as the models need: varints (wire type 0) and length-delimited fields
/// (wire type 2). Nested messages are written into their own buffer first, since the length prefix comes first.
/// </summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _out = new();

    public void Int(int field, long value)
    {
        Tag(field, 0);
        Varint((ulong)value);   // negative int64 is a 10-byte varint of its two's complement, as protobuf does
    }

    public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public void Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, 2);
        Varint((ulong)value.Length);
        _out.Write(value);
    }

    public void Message(int field, ProtoWriter message) => Bytes(field, message._out.GetBuffer().AsSpan(0, (int)message._out.Length));

    public byte[] ToArray() => _out.ToArray();

    private void Tag(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

    private void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            _out.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _out.WriteByte((byte)value);
    }
}
