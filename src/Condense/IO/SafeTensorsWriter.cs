using System.Buffers;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Condense.IO;

/// <summary>
/// Builds a safetensors file in memory and writes it atomically.
/// Tensors are written in insertion order (header entries and data alike), so a model's layer order
/// is kept; the header is padded with spaces so the data buffer starts 8-byte aligned in the file.
/// </summary>
public sealed class SafeTensorsWriter
{
    private readonly List<Entry> _entries = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);
    private readonly List<string> _metadataOrder = [];
    private static int s_tempCounter;

    private sealed record Entry(string Name, SafeTensorDType DType, long[] Shape, byte[] Data);

    /// <summary>Test seam: wraps the temp-file stream (e.g. to inject a failure mid-write).</summary>
    internal Func<Stream, Stream>? WrapStreamForTests { get; set; }

    /// <summary>Number of tensors added so far.</summary>
    public int Count => _entries.Count;

    /// <summary>Sets (or replaces) a <c>__metadata__</c> entry; values are strings, as the format requires.</summary>
    public void SetMetadata(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(key);
        ArgumentNullException.ThrowIfNull(value);
        if (!_metadata.ContainsKey(key))
            _metadataOrder.Add(key);
        _metadata[key] = value;
    }

    /// <summary>
    /// Adds a tensor, copying <paramref name="data"/> (little-endian element bytes).
    /// Its length must equal product(<paramref name="shape"/>) x the element size.
    /// </summary>
    public void Add(string name, SafeTensorDType dtype, long[] shape, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        if (name == "__metadata__")
            throw new ArgumentException("A tensor cannot be named '__metadata__': that header key holds the file's metadata.", nameof(name));
        if (!SafeTensorDTypes.All.Contains(dtype))
            throw new ArgumentOutOfRangeException(nameof(dtype), dtype, $"Tensor '{name}': not a safetensors dtype.");
        for (var i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0)
                throw new ArgumentException($"Tensor '{name}': dimension {i} of shape {SafeTensorInfo.FormatShape(shape)} is negative; expected sizes >= 0.", nameof(shape));
        }
        long expected;
        try
        {
            expected = SafeTensorDTypes.ByteLength(dtype, shape);
        }
        catch (OverflowException)
        {
            throw new ArgumentException($"Tensor '{name}': shape {SafeTensorInfo.FormatShape(shape)} of {dtype} needs more than {long.MaxValue} bytes.", nameof(shape));
        }
        if (data.Length != expected)
            throw new ArgumentException($"Tensor '{name}': shape {SafeTensorInfo.FormatShape(shape)} of {dtype} needs {expected} bytes but {data.Length} were given.", nameof(data));
        if (!_names.Add(name))
            throw new ArgumentException($"Tensor '{name}' was already added; names must be unique.", nameof(name));
        _entries.Add(new Entry(name, dtype, (long[])shape.Clone(), data.ToArray()));
    }

    /// <summary>Adds a float32 tensor; an empty <paramref name="shape"/> means a 0-d scalar.</summary>
    public void AddF32(string name, ReadOnlySpan<float> data, params long[] shape) =>
        AddTyped(name, SafeTensorDType.F32, data, shape);

    /// <summary>Adds a float16 tensor; an empty <paramref name="shape"/> means a 0-d scalar.</summary>
    public void AddF16(string name, ReadOnlySpan<Half> data, params long[] shape) =>
        AddTyped(name, SafeTensorDType.F16, data, shape);

    /// <summary>Adds an unsigned byte tensor (e.g. packed quantized values).</summary>
    public void AddU8(string name, ReadOnlySpan<byte> data, params long[] shape) =>
        Add(name, SafeTensorDType.U8, shape, data);

    /// <summary>Adds a signed 32-bit integer tensor.</summary>
    public void AddI32(string name, ReadOnlySpan<int> data, params long[] shape) =>
        AddTyped(name, SafeTensorDType.I32, data, shape);

    private void AddTyped<T>(string name, SafeTensorDType dtype, ReadOnlySpan<T> data, long[] shape)
        where T : unmanaged
    {
        if (BitConverter.IsLittleEndian)
        {
            Add(name, dtype, shape, MemoryMarshal.AsBytes(data));
            return;
        }
        // Big-endian hosts: the format is little-endian, so swap each element's bytes.
        var bytes = MemoryMarshal.AsBytes(data).ToArray();
        var size = SafeTensorDTypes.ElementSize(dtype);
        for (var i = 0; i < bytes.Length; i += size)
            bytes.AsSpan(i, size).Reverse();
        Add(name, dtype, shape, bytes);
    }

    /// <summary>The serialized header (JSON, space-padded to a multiple of 8 bytes).</summary>
    internal byte[] BuildHeader()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = false };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            if (_metadataOrder.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var key in _metadataOrder)
                    json.WriteString(key, _metadata[key]);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var entry in _entries)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", SafeTensorDTypes.Name(entry.DType));
                json.WriteStartArray("shape");
                foreach (var dim in entry.Shape)
                    json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += entry.Data.Length;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        var padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    /// <summary>
    /// Writes the file: streams to a temp file in the same directory, flushes it to disk, then renames it
    /// over <paramref name="path"/>, so a crash never leaves a half-written file. The temp file is deleted on failure.
    /// </summary>
    public void WriteTo(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath) ?? throw new ArgumentException($"'{path}' has no directory.", nameof(path));
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Cannot write safetensors file '{path}': directory '{directory}' does not exist.");

        var header = BuildHeader();
        // Unique per process and call, so concurrent writers never share a temp file.
        var tempPath = Path.Combine(directory,
            $".{Path.GetFileName(fullPath)}.{Environment.ProcessId}.{Interlocked.Increment(ref s_tempCounter)}.tmp");
        try
        {
            using (var file = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var stream = WrapStreamForTests?.Invoke(file) ?? file;
                Span<byte> size = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)header.Length);
                stream.Write(size);
                stream.Write(header);
                foreach (var entry in _entries)
                    stream.Write(entry.Data);
                stream.Flush();
                file.Flush(flushToDisk: true);
            }
            File.Move(tempPath, fullPath, overwrite: true);
        }
        catch
        {
            TryDelete(tempPath);
            throw;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: the original exception is the one worth reporting.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
