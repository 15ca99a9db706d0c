using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Condense.IO;

namespace Condense.Tests.IO;

public sealed class SafeTensorsTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Round_trip_keeps_every_dtype_shape_value_and_metadata()
    {
        var path = _dir.File("model.safetensors");
        var weights = new float[] { 1.5f, -2.25f, float.MaxValue, float.Epsilon, 0f, -0f };
        var halves = new[] { (Half)0.5f, (Half)(-3f), Half.MaxValue };
        var bytes = new byte[] { 0, 1, 2, 255 };
        var ints = new[] { int.MinValue, -1, 0, int.MaxValue };
        var doubles = new[] { Math.PI, -1e300 };
        var bf16 = new byte[] { 0x80, 0x3F, 0x00, 0xC0 }; // 1.0 and -2.0 as bfloat16

        var writer = new SafeTensorsWriter();
        writer.SetMetadata("format", "pt");
        writer.SetMetadata("plan", "{\"layers\": [\"fc1\"]} ünïcode");
        writer.AddF32("layer.weight", weights, 2, 3);
        writer.AddF16("layer.scales", halves, 3);
        writer.AddU8("packed", bytes, 2, 2);
        writer.AddI32("ints", ints, 4);
        writer.Add("doubles", SafeTensorDType.F64, [2], MemoryMarshal.AsBytes(doubles.AsSpan()));
        writer.Add("bf16", SafeTensorDType.BF16, [2], bf16);
        writer.Add("flags", SafeTensorDType.BOOL, [3], [1, 0, 1]);
        writer.AddF32("empty", ReadOnlySpan<float>.Empty, 0, 5);
        writer.AddF32("scalar", [42f]);
        writer.WriteTo(path);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(2, file.Metadata.Keys.Count(k => !k.StartsWith(SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal)));
        Assert.Equal(9, file.Metadata.Keys.Count(k => k.StartsWith(SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal)));
        Assert.True(file.HasChecksums);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("{\"layers\": [\"fc1\"]} ünïcode", file.Metadata["plan"]);
        Assert.Equal(["layer.weight", "layer.scales", "packed", "ints", "doubles", "bf16", "flags", "empty", "scalar"],
            file.Tensors.Select(t => t.Name));

        Assert.Equal(weights, file.ReadF32("layer.weight"));
        Assert.Equal([2L, 3L], file.Get("layer.weight").Shape);
        Assert.Equal(6, file.Get("layer.weight").ElementCount);
        Assert.Equal(halves, file.ReadF16("layer.scales"));
        Assert.Equal(bytes, file.ReadU8("packed"));
        Assert.Equal(ints, file.ReadI32("ints"));
        Assert.Equal(doubles, MemoryMarshal.Cast<byte, double>(file.GetBytes("doubles")).ToArray());
        Assert.Equal([1f, -2f], file.ReadAsF32("bf16"));
        Assert.Equal([0.5f, -3f, 65504f], file.ReadAsF32("layer.scales"));
        Assert.Equal(SafeTensorDType.BOOL, file.Get("flags").DType);
        Assert.Equal(new byte[] { 1, 0, 1 }, file.GetBytes("flags").ToArray());

        var empty = file.Get("empty");
        Assert.Equal([0L, 5L], empty.Shape);
        Assert.Equal(0, empty.ElementCount);
        Assert.Empty(file.ReadF32("empty"));

        var scalar = file.Get("scalar");
        Assert.Empty(scalar.Shape);
        Assert.Equal(1, scalar.ElementCount);
        Assert.Equal([42f], file.ReadF32("scalar"));
    }

    [Fact]
    public void Written_header_is_padded_so_data_starts_8_byte_aligned_and_offsets_follow_insertion_order()
    {
        var path = _dir.File("aligned.safetensors");
        var writer = new SafeTensorsWriter();
        writer.AddF32("b", [1f, 2f, 3f], 3);
        writer.AddU8("a", [7], 1);
        writer.WriteTo(path);

        var raw = File.ReadAllBytes(path);
        var headerSize = (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.Equal(0, (8 + headerSize) % 8);
        Assert.Equal(8 + headerSize + 13, raw.Length);
        var header = Encoding.UTF8.GetString(raw, 8, (int)headerSize);
        Assert.Contains("\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}", header);
        Assert.Contains("\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[12,13]}", header);
        Assert.Equal(7, raw[^1]);
    }

    [Fact]
    public void A_file_without_tensors_or_metadata_round_trips()
    {
        var path = _dir.File("nothing.safetensors");
        new SafeTensorsWriter().WriteTo(path);
        using var file = SafeTensorsFile.Open(path);
        Assert.Empty(file.Tensors);
        Assert.Empty(file.Metadata);
    }

    [Fact]
    public void Failing_write_leaves_the_existing_file_untouched_and_no_temp_file()
    {
        var path = _dir.File("model.safetensors");
        var original = new SafeTensorsWriter();
        original.AddF32("w", [1f, 2f], 2);
        original.WriteTo(path);
        var before = File.ReadAllBytes(path);

        var failing = new SafeTensorsWriter { WrapStreamForTests = s => new FailAfterStream(s, 20) };
        failing.AddF32("w", new float[1000], 1000);
        var error = Assert.Throws<IOException>(() => failing.WriteTo(path));
        Assert.Contains("injected", error.Message);

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([path], Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void Successful_write_replaces_the_existing_file()
    {
        var path = _dir.File("model.safetensors");
        var first = new SafeTensorsWriter();
        first.AddF32("old", [1f], 1);
        first.WriteTo(path);
        var second = new SafeTensorsWriter();
        second.AddF32("new", [2f, 3f], 2);
        second.WriteTo(path);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(["new"], file.Tensors.Select(t => t.Name));
        Assert.Equal([2f, 3f], file.ReadF32("new"));
        Assert.Equal([path], Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void Writer_rejects_wrong_byte_length_duplicates_reserved_name_and_negative_dims()
    {
        var writer = new SafeTensorsWriter();
        var wrongLength = Assert.Throws<ArgumentException>(() => writer.AddF32("w", [1f, 2f, 3f], 2, 2));
        Assert.Contains("'w'", wrongLength.Message);
        Assert.Contains("needs 16 bytes but 12", wrongLength.Message);

        writer.AddF32("w", [1f], 1);
        Assert.Contains("already added", Assert.Throws<ArgumentException>(() => writer.AddF32("w", [1f], 1)).Message);
        Assert.Contains("__metadata__", Assert.Throws<ArgumentException>(() => writer.AddU8("__metadata__", [1], 1)).Message);
        Assert.Contains("negative", Assert.Throws<ArgumentException>(() => writer.Add("n", SafeTensorDType.U8, [-1], [])).Message);
        Assert.Equal(1, writer.Count);
    }

    [Fact]
    public void Get_of_a_missing_tensor_names_it_and_lists_some_that_exist()
    {
        var path = _dir.File("m.safetensors");
        var writer = new SafeTensorsWriter();
        writer.AddF32("fc1.weight", [1f], 1);
        writer.AddF32("fc2.weight", [1f], 1);
        writer.WriteTo(path);
        using var file = SafeTensorsFile.Open(path);

        var error = Assert.Throws<KeyNotFoundException>(() => file.Get("fc3.weight"));
        Assert.Contains("'fc3.weight'", error.Message);
        Assert.Contains("'fc1.weight'", error.Message);
        Assert.Contains(path, error.Message);
        Assert.False(file.TryGet("fc3.weight", out _));
        Assert.True(file.TryGet("fc2.weight", out var info));
        Assert.Equal(new SafeTensorInfo("fc2.weight", SafeTensorDType.F32, [1], 4, 8).ToString(), info.ToString());
    }

    [Fact]
    public void Typed_read_of_the_wrong_dtype_names_tensor_and_both_dtypes()
    {
        var path = _dir.File("m.safetensors");
        var writer = new SafeTensorsWriter();
        writer.AddU8("packed", [1, 2], 2);
        writer.WriteTo(path);
        using var file = SafeTensorsFile.Open(path);
        var error = Assert.Throws<InvalidOperationException>(() => file.ReadF32("packed"));
        Assert.Contains("'packed'", error.Message);
        Assert.Contains("U8", error.Message);
        Assert.Contains("F32", error.Message);
    }

    [Fact]
    public void Views_are_unusable_after_dispose()
    {
        var path = _dir.File("m.safetensors");
        var writer = new SafeTensorsWriter();
        writer.AddU8("x", [1], 1);
        writer.WriteTo(path);
        var file = SafeTensorsFile.Open(path);
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.GetBytes("x").Length);
        file.Dispose(); // idempotent
    }

    // ---- Malformed files, crafted by hand ----

    private string Craft(string headerJson, byte[] data, ulong? declaredHeaderSize = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        return CraftRaw(header, data, declaredHeaderSize ?? (ulong)header.Length);
    }

    private string CraftRaw(byte[] header, byte[] data, ulong declaredHeaderSize)
    {
        var path = _dir.File($"bad-{Guid.NewGuid():N}.safetensors");
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredHeaderSize);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static SafeTensorsFormatException Rejects(string path, params string[] fragments)
    {
        var error = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, error.Message);
        Assert.Equal(path, error.FilePath);
        foreach (var fragment in fragments)
            Assert.Contains(fragment, error.Message);
        return error;
    }

    [Fact]
    public void Rejects_a_file_shorter_than_the_size_prefix()
    {
        var path = _dir.File("short.safetensors");
        File.WriteAllBytes(path, [1, 0, 0]);
        Rejects(path, "3 bytes", "at least 8");
        var empty = _dir.File("empty.safetensors");
        File.WriteAllBytes(empty, []);
        Rejects(empty, "0 bytes");
    }

    [Fact]
    public void Rejects_a_header_size_beyond_the_file() =>
        Rejects(Craft("{}", [], declaredHeaderSize: 500), "header size 500", "larger than");

    [Fact]
    public void Rejects_a_header_size_beyond_the_cap() =>
        Rejects(Craft("{}", [], declaredHeaderSize: ulong.MaxValue), "exceeds the cap");

    [Fact]
    public void Rejects_offsets_beyond_the_data_buffer()
    {
        var error = Rejects(Craft("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", new byte[4]),
            "data_offsets [0, 8]", "past the end of the 4-byte data buffer");
        Assert.Equal("w", error.TensorName);
        Assert.Contains("tensor 'w'", error.Message);
    }

    [Fact]
    public void Rejects_overlapping_tensors()
    {
        var path = Craft("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]);
        var error = Rejects(path, "overlap", "'a'");
        Assert.Equal("b", error.TensorName);
    }

    [Fact]
    public void Rejects_a_hole_between_tensors()
    {
        var path = Craft("""{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}""", new byte[6]);
        var error = Rejects(path, "hole", "[2, 4)");
        Assert.Equal("b", error.TensorName);
    }

    [Fact]
    public void Rejects_uncovered_bytes_after_the_last_tensor() =>
        Rejects(Craft("""{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}""", new byte[5]), "[2, 5)", "belong to no tensor");

    [Fact]
    public void Rejects_an_unknown_dtype()
    {
        var error = Rejects(Craft("""{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}""", new byte[1]),
            "unknown dtype 'F8_E4M3'", "F32");
        Assert.Equal("w", error.TensorName);
    }

    [Fact]
    public void Rejects_a_shape_that_does_not_match_the_byte_range() =>
        Rejects(Craft("""{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}""", new byte[12]),
            "tensor 'w'", "needs 16 bytes", "span 12 bytes", "size mismatch");

    [Fact]
    public void Rejects_begin_after_end() =>
        Rejects(Craft("""{"w":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}}""", new byte[4]), "begin after end");

    [Theory]
    [InlineData("""{"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}""", "dimension 0 is -1")]
    [InlineData("""{"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,0]}}""", "dimension 0 is 1.5")]
    [InlineData("""{"w":{"dtype":"U8","shape":["2"],"data_offsets":[0,0]}}""", "non-negative integer")]
    [InlineData("""{"w":{"dtype":"U8","shape":[0],"data_offsets":[0]}}""", "expected [begin, end]")]
    [InlineData("""{"w":{"dtype":"U8","shape":[0]}}""", "missing field 'data_offsets'")]
    [InlineData("""{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0],"extra":1}}""", "unexpected field 'extra'")]
    [InlineData("""{"w":[1,2]}""", "must be an object")]
    public void Rejects_malformed_tensor_entries(string header, string expected)
    {
        var error = Rejects(Craft(header, []), expected);
        Assert.Equal("w", error.TensorName);
    }

    [Theory]
    [InlineData("""{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]""", "not valid JSON")]
    [InlineData("""{"w": nope}""", "not valid JSON")]
    [InlineData("""[1, 2]""", "must start with '{'")]
    [InlineData("""{} {}""", "not valid JSON")]
    public void Rejects_bad_json(string header, string expected) =>
        Rejects(Craft(header, []), expected);

    [Fact]
    public void Rejects_invalid_utf8_in_the_header() =>
        Rejects(CraftRaw([(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}'], [], 8), "UTF-8");

    [Fact]
    public void Rejects_duplicate_tensor_names()
    {
        var path = Craft("""{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""", new byte[2]);
        var error = Rejects(path, "more than once", "unique");
        Assert.Equal("w", error.TensorName);
    }

    [Fact]
    public void Rejects_metadata_values_that_are_not_strings() =>
        Rejects(Craft("""{"__metadata__":{"epochs":3}}""", []), "metadata value 'epochs'", "must be a string");

    [Fact]
    public void Accepts_space_padded_header_and_empty_tensor_inside_the_buffer()
    {
        var path = Craft("""{"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"e":{"dtype":"F32","shape":[0,4],"data_offsets":[2,2]},"b":{"dtype":"U8","shape":[],"data_offsets":[2,3]}}     """, [9, 8, 7]);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("v", file.Metadata["k"]);
        Assert.Equal(new byte[] { 9, 8 }, file.ReadU8("a"));
        Assert.Empty(file.ReadF32("e"));
        Assert.Equal(new byte[] { 7 }, file.ReadU8("b"));
    }

    private sealed class FailAfterStream(Stream inner, long limit) : Stream
    {
        private long _written;

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > limit)
            {
                inner.Write(buffer[..(int)(limit - _written)]);
                inner.Flush();
                throw new IOException("injected failure (disk full)");
            }
            inner.Write(buffer);
            _written += buffer.Length;
        }
    }
}
