using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using Condense.Import;
using Condense.Tests.IO;

namespace Condense.Tests.Import;

/// <summary>The ONNX reader on a hand-built byte layout (every data field form) and on all-MiniLM-L6-v2's real file.</summary>
public sealed class OnnxReaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    // Protobuf encoding, written here from the wire-format spec, independently of the reader.
    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        do
        {
            byte b = (byte)(value & 0x7F);
            value >>= 7;
            bytes.Add(value != 0 ? (byte)(b | 0x80) : b);
        } while (value != 0);
        return bytes.ToArray();
    }

    private static byte[] Tag(int field, int wire) => Varint((ulong)(field << 3 | wire));
    private static byte[] VarintField(int field, long value) => [.. Tag(field, 0), .. Varint((ulong)value)];
    private static byte[] Bytes(int field, byte[] payload) => [.. Tag(field, 2), .. Varint((ulong)payload.Length), .. payload];
    private static byte[] Text(int field, string text) => Bytes(field, Encoding.UTF8.GetBytes(text));
    private static byte[] Fixed32(int field, float value)
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(payload, value);
        return [.. Tag(field, 5), .. payload];
    }
    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private string HandBuiltModel()
    {
        // "unpacked": dims and float_data one field per value.
        var unpacked = Concat(VarintField(1, 2), VarintField(1, 3), VarintField(2, 1), Text(8, "unpacked"),
            Fixed32(4, 1f), Fixed32(4, 2f), Fixed32(4, 3f), Fixed32(4, 4f), Fixed32(4, 5f), Fixed32(4, -6f));
        // "half": packed dims, float16 values in int32_data (low 16 bits each), as ONNX stores them without raw_data.
        var halves = Concat(Varint(BitConverter.HalfToUInt16Bits((Half)0.5f)), Varint(BitConverter.HalfToUInt16Bits((Half)(-2f))));
        var half = Concat(Bytes(1, Varint(2)), VarintField(2, 10), Text(8, "half"), Bytes(5, halves));
        // "brain": bfloat16 raw_data.
        var brain = Concat(VarintField(1, 2), VarintField(2, 16), Text(8, "brain"), Bytes(9, [0x80, 0x3F, 0x40, 0xC0]));  // 1.0, -3.0
        // "double": packed double_data.
        var doubles = new byte[16];
        BinaryPrimitives.WriteDoubleLittleEndian(doubles, 0.25);
        BinaryPrimitives.WriteDoubleLittleEndian(doubles.AsSpan(8), 8.0);
        var @double = Concat(VarintField(1, 2), VarintField(2, 11), Text(8, "double"), Bytes(10, doubles));
        // "shape": an int64 graph constant.
        var shape = Concat(VarintField(1, 1), VarintField(2, 7), Text(8, "shape"), Bytes(7, Varint(6)));
        // Gemm without transB reads "unpacked" as [in, out].
        var transB = Concat(Text(1, "transB"), VarintField(3, 0), VarintField(20, 2));
        var gemm = Concat(Text(1, "x"), Text(1, "unpacked"), Text(2, "y"), Text(3, "gemm"), Text(4, "Gemm"), Bytes(5, transB));
        var graph = Concat(Bytes(1, gemm), Text(2, "hand"), Bytes(5, unpacked), Bytes(5, half), Bytes(5, brain), Bytes(5, @double), Bytes(5, shape),
            Bytes(11, Text(1, "x")), Bytes(12, Text(1, "y")));
        var model = Concat(VarintField(1, 8), Text(2, "hand"), VarintField(99, 1), Bytes(7, graph), Bytes(8, Concat(Text(1, ""), VarintField(2, 17))));
        var path = _dir.File("hand.onnx");
        File.WriteAllBytes(path, model);
        return path;
    }

    [Fact]
    public void EveryDataFieldFormReadsAsFloat32()
    {
        var path = HandBuiltModel();
        var model = OnnxModel.Read(path);
        Assert.Equal(8, model.IrVersion);
        Assert.Equal(17, model.OpsetVersion);
        Assert.Equal("hand", model.ProducerName);
        Assert.Equal(["x"], model.GraphInputs);
        Assert.Equal(["y"], model.GraphOutputs);
        var gemm = Assert.Single(model.Nodes);
        Assert.Equal(0, gemm.IntAttributes["transB"]);

        using var file = WeightFile.Open(path);
        Assert.Equal(WeightFileFormat.Onnx, file.Format);
        var byName = file.Tensors.ToDictionary(t => t.Name);
        Assert.Equal([1f, 2f, 3f, 4f, 5f, -6f], file.ReadStored(byName["unpacked"]));
        Assert.Equal(StoredLayout.InOut, byName["unpacked"].Layout);
        Assert.Equal([3L, 2L], byName["unpacked"].ImportShape);
        Assert.Equal([1f, 4f, 2f, 5f, 3f, -6f], file.ReadForImport(byName["unpacked"]));
        Assert.Equal([0.5f, -2f], file.ReadStored(byName["half"]));
        Assert.Equal([1f, -3f], file.ReadStored(byName["brain"]));
        Assert.Equal([0.25f, 8f], file.ReadStored(byName["double"]));
        Assert.True(byName["shape"].IsGraphConstant);
        Assert.Equal("Int64", byName["shape"].DType);
    }

    [Fact]
    public void ShortOrOversizedDataIsANamedError()
    {
        var tensor = Concat(VarintField(1, 4), VarintField(2, 1), Text(8, "short"), Fixed32(4, 1f));
        var path = _dir.File("short.onnx");
        File.WriteAllBytes(path, Concat(VarintField(1, 8), Bytes(7, Bytes(5, tensor))));

        using var file = WeightFile.Open(path);
        var error = Assert.Throws<WeightFileFormatException>(() => file.ReadStored(file.Tensors[0]));
        Assert.Equal("short", error.TensorName);
        Assert.Contains("float_data holds 1 values and there is no raw_data; Float [4] needs 4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AProtobufWithoutAGraphIsNotAModel()
    {
        var path = _dir.File("nograph.onnx");
        File.WriteAllBytes(path, Concat(VarintField(1, 8), Text(2, "no graph")));
        var error = Assert.Throws<WeightFileFormatException>(() => WeightFile.Open(path));
        Assert.Contains("has no graph", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TruncatedOrCorruptedOnnxFilesGiveNamedErrorsNeverCrashes()
    {
        var original = File.ReadAllBytes(ImportFixtures.File("mlp.onnx"));
        var path = _dir.File("corrupt.onnx");
        var rng = new Random(20260311);
        int named = 0, loaded = 0;
        for (int trial = 0; trial < 400; trial++)
        {
            byte[] bytes;
            if (trial < 200)
                bytes = original[..(trial * original.Length / 200)];                 // cut anywhere, including 0 bytes
            else
            {
                bytes = (byte[])original.Clone();
                for (int flips = 0; flips < 1 + trial % 4; flips++) bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
            }
            File.WriteAllBytes(path, bytes);
            try
            {
                new ImportMlp().LoadWeights(path);
                loaded++;
            }
            catch (Exception e) when (e is WeightFileFormatException or WeightImportException)
            {
                Assert.Contains(path, e.Message, StringComparison.Ordinal);
                named++;
            }
        }
        // Every cut short of the whole graph fails by name; some flips land in doc strings or values and still load.
        Assert.True(named >= 200, $"{named} named errors, {loaded} loads");
    }

    private static readonly string[] s_bertLinears =
        ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense"];

    [Fact]
    public void MiniLmInitializersAreListedWithTheirNamesTypesAndLayouts()
    {
        Assert.NotNull(ImportFixtures.MiniLmDll());
        using var file = WeightFile.Open(ImportFixtures.MiniLmOnnx());
        var onnx = OnnxModel.Read(file.Path);
        Assert.Equal(13, onnx.OpsetVersion);
        Assert.Equal("pytorch", onnx.ProducerName);
        Assert.Equal(148, file.Tensors.Count);

        var byName = file.Tensors.ToDictionary(t => t.Name);
        // The 36 MatMul weights PyTorch numbered get their module's name back, and are [in, out].
        for (int layer = 0; layer < 6; layer++)
            foreach (var linear in s_bertLinears)
            {
                var weight = byName[$"encoder.layer.{layer}.{linear}.weight"];
                Assert.Equal(StoredLayout.InOut, weight.Layout);
                Assert.Matches(new Regex("^[0-9]+$"), weight.SourceName);
                long outFeatures = linear == "intermediate.dense" ? 1536 : 384, inFeatures = linear == "output.dense" ? 1536 : 384;
                Assert.Equal([outFeatures, inFeatures], weight.ImportShape);
                Assert.Equal("Float", weight.DType);
            }
        Assert.Equal([30522L, 384L], byName["embeddings.word_embeddings.weight"].Shape);
        Assert.Equal(StoredLayout.AsIs, byName["embeddings.word_embeddings.weight"].Layout);   // a Gather table, not a MatMul
        Assert.Equal(StoredLayout.AsIs, byName["pooler.dense.weight"].Layout);                // Gemm with transB = 1
        Assert.True(byName["embeddings.position_ids"].IsGraphConstant);
        Assert.Equal(37, file.Tensors.Count(t => t.Layout == StoredLayout.InOut || t.Name == "pooler.dense.weight"));
        Assert.Equal(22_713_216L, file.Tensors.Where(t => t.IsFloatingPoint).Sum(t => t.Shape.Aggregate(1L, (p, d) => p * d)));
    }

    [Fact]
    public void MiniLmLinearsLoadByAMapAndCompress()
    {
        var path = ImportFixtures.MiniLmOnnx();
        var model = new MiniLmLinears();
        var report = model.LoadWeights(path, new()
        {
            Map = name => name.Replace("encoder.layer.", "layers.", StringComparison.Ordinal)
                .Replace(".attention.self.", ".", StringComparison.Ordinal)
                .Replace(".attention.output.dense.", ".attentionOutput.", StringComparison.Ordinal)
                .Replace(".intermediate.dense.", ".intermediate.", StringComparison.Ordinal)
                .Replace(".output.dense.", ".output.", StringComparison.Ordinal),
            IgnoreExtras = ["embeddings.*", "*.LayerNorm.*", "pooler.*"],
        });

        Assert.Equal(72, report.Imported.Count);
        Assert.Equal(36, report.Imported.Count(t => t.Transposed));
        Assert.True(report.GraphConstants > 0);

        // The loaded query weight is the transpose of the initializer PyTorch stored for it.
        using var file = WeightFile.Open(path);
        var stored = file.Tensors.Single(t => t.Name == "encoder.layer.0.attention.self.query.weight");
        var inOut = file.ReadStored(stored);
        var query = model.FirstLayer().QueryLayer().Weight.Data;
        for (int o = 0; o < 384; o += 37)
            for (int i = 0; i < 384; i += 41)
                Assert.Equal(inOut[i * 384 + o], query[o * 384 + i]);

        var compression = model.Compress();
        Assert.Equal(MiniLmLinears.PlannedBytes, compression.TotalBytesAfter);
        Assert.All(compression.Layers, l => Assert.True(l.RelativeError < 0.2, $"{l.Path}: {l.RelativeError}"));
    }

    [Fact]
    public void MiniLmWithoutAMapSaysWhatIsMissingAndWhatItMeant()
    {
        var error = Assert.Throws<WeightImportException>(() => new MiniLmLinears().LoadWeights(ImportFixtures.MiniLmOnnx(),
            new() { StripPrefix = "encoder.", IgnoreExtras = ["embeddings.*", "pooler.*"] }));
        Assert.Equal(72, error.Missing.Count);
        var query = error.Missing.Single(m => m.Name == "layers[2].query.weight");
        Assert.Equal("encoder.layer.2.attention.self.query.weight", query.DidYouMean);
        Assert.Contains("missing 'layers[2].output.weight' [384, 1536]: did you mean 'encoder.layer.2.output.dense.weight'?", error.Message, StringComparison.Ordinal);
    }
}
