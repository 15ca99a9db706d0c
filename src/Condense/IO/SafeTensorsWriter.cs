using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Condense.IO;

/// <summary>
/// Builds a safetensors file in memory and writes it atomically.
/// Tensors are written in insertion order (header entries and data alike), so a model's layer order
/// is kept; the header is padded with spaces so the data buffer starts 8-byte aligned in the file.
/// Every tensor's XXH3-64 is stored in the metadata as <c>xxh3:&lt;name&gt;</c> (docs/format.md), which
/// <see cref="SafeTensorsFile"/> and <see cref="ModelFile.Load"/> verify; metadata keys with that prefix are
/// reserved and any set by the caller are replaced. Tensors may be 2 GiB or larger (add them typed, e.g.
/// <see cref="AddF32"/>).
/// </summary>
public sealed class SafeTensorsWriter
{
    private readonly List<Entry> _entries = [];
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);
    private readonly List<string> _metadataOrder = [];
    private static int s_tempCounter;

    // Temp files being written by this process right now, so a save never reclaims a concurrent one's.
    private static readonly ConcurrentDictionary<string, byte> s_activeTemps = new(StringComparer.Ordinal);

    /// <summary>A tensor: <paramref name="Data"/> is an array whose raw memory is the little-endian bytes, <paramref name="ByteLength"/> long.</summary>
    private sealed record Entry(string Name, SafeTensorDType DType, long[] Shape, Array Data, long ByteLength);

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
        CheckLength(name, dtype, shape, data.Length);
        AddEntry(name, dtype, shape, data.ToArray(), data.Length);
    }

    private void CheckLength(string name, SafeTensorDType dtype, long[] shape, long given)
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
        if (given != expected)
            throw new ArgumentException($"Tensor '{name}': shape {SafeTensorInfo.FormatShape(shape)} of {dtype} needs {expected} bytes but {given} were given.", "data");
    }

    private void AddEntry(string name, SafeTensorDType dtype, long[] shape, Array data, long byteLength)
    {
        if (!_names.Add(name))
            throw new ArgumentException($"Tensor '{name}' was already added; names must be unique.", nameof(name));
        _entries.Add(new Entry(name, dtype, (long[])shape.Clone(), data, byteLength));
    }

    /// <summary>
    /// Adds a tensor without copying <paramref name="data"/>: the array is read when <see cref="WriteTo"/> runs and
    /// must not change before then (the model saver uses this so a save does not duplicate the model in memory).
    /// </summary>
    internal unsafe void AddBorrowed<T>(string name, SafeTensorDType dtype, T[] data, long[] shape)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(data);
        if (sizeof(T) != SafeTensorDTypes.ElementSize(dtype))
            throw new ArgumentException($"Tensor '{name}': {typeof(T).Name} elements are not {dtype}.", nameof(data));
        CheckLength(name, dtype, shape, data.LongLength * sizeof(T));
        if (!BitConverter.IsLittleEndian && sizeof(T) > 1)
        {
            AddTyped(name, dtype, data, shape);
            return;
        }
        AddEntry(name, dtype, shape, data, data.LongLength * sizeof(T));
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

    private unsafe void AddTyped<T>(string name, SafeTensorDType dtype, ReadOnlySpan<T> data, long[] shape)
        where T : unmanaged
    {
        // Lengths in elements, not bytes: a tensor of 2 GiB or more has more bytes than a span can count.
        CheckLength(name, dtype, shape, (long)data.Length * sizeof(T));
        var copy = data.ToArray();
        if (!BitConverter.IsLittleEndian && sizeof(T) > 1)
        {
            // Big-endian hosts: the format is little-endian, so swap each element's bytes.
            for (var i = 0; i < copy.Length; i++)
                MemoryMarshal.AsBytes(copy.AsSpan(i, 1)).Reverse();
        }
        AddEntry(name, dtype, shape, copy, (long)copy.Length * sizeof(T));
    }

    /// <summary>The entry's bytes from <paramref name="offset"/>, at most <paramref name="count"/> of them.</summary>
    private static ReadOnlySpan<byte> Slice(Entry entry, long offset, int count)
    {
        ref byte start = ref MemoryMarshal.GetArrayDataReference(entry.Data);
        return MemoryMarshal.CreateReadOnlySpan(ref Unsafe.Add(ref start, (nint)offset), count);
    }

    private static ulong Checksum(Entry entry)
    {
        var hash = new XxHash3();
        for (long offset = 0; offset < entry.ByteLength; offset += SafeTensorsFile.ChunkBytes)
            hash.Append(Slice(entry, offset, (int)Math.Min(SafeTensorsFile.ChunkBytes, entry.ByteLength - offset)));
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>The serialized header (JSON, space-padded to a multiple of 8 bytes).</summary>
    internal byte[] BuildHeader()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, SkipValidation = false };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            if (_metadataOrder.Count > 0 || _entries.Count > 0)
            {
                json.WriteStartObject("__metadata__");
                foreach (var key in _metadataOrder)
                {
                    if (!key.StartsWith(SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal))
                        json.WriteString(key, _metadata[key]);
                }
                foreach (var entry in _entries)
                    json.WriteString(SafeTensorsFile.ChecksumKeyPrefix + entry.Name, Checksum(entry).ToString("x16", CultureInfo.InvariantCulture));
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
                offset += entry.ByteLength;
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
    /// Writes the file: streams to a temp file <c>.&lt;name&gt;.&lt;pid&gt;.&lt;n&gt;.tmp</c> in the same directory, flushes
    /// it to disk, renames it over <paramref name="path"/> and flushes the directory, so a crash never leaves a
    /// half-written file. The temp file is deleted on failure; temp files of the same target left by writers that
    /// were killed are deleted by the next write (see <see cref="ReclaimStaleTemps"/>).
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
        s_activeTemps.TryAdd(tempPath, 0);
        try
        {
            ReclaimStaleTemps(fullPath);
            using (var file = new FileStream(tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                var stream = WrapStreamForTests?.Invoke(file) ?? file;
                Span<byte> size = stackalloc byte[8];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)header.Length);
                stream.Write(size);
                stream.Write(header);
                foreach (var entry in _entries)
                {
                    for (long offset = 0; offset < entry.ByteLength; offset += SafeTensorsFile.ChunkBytes)
                        stream.Write(Slice(entry, offset, (int)Math.Min(SafeTensorsFile.ChunkBytes, entry.ByteLength - offset)));
                }
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
        finally
        {
            s_activeTemps.TryRemove(tempPath, out _);
        }
        // The rename is durable only once the directory entry is on disk.
        DirectoryFlush.Flush(directory);
        DirectoryFlushedForTests?.Invoke(directory);
    }

    /// <summary>Test seam: called with the directory after each successful write flushed it.</summary>
    internal static Action<string>? DirectoryFlushedForTests { get; set; }

    /// <summary>
    /// Deletes the temp files <c>.&lt;name&gt;.&lt;pid&gt;.&lt;n&gt;.tmp</c> of <paramref name="fullPath"/> that no live writer owns:
    /// the writer process <c>pid</c> is gone (or it is this process and not writing it now), and nobody holds the file
    /// open exclusively (a live writer does). Returns how many were deleted. Best effort: errors are ignored.
    /// </summary>
    internal static int ReclaimStaleTemps(string fullPath)
    {
        var directory = Path.GetDirectoryName(fullPath)!;
        var prefix = "." + Path.GetFileName(fullPath) + ".";
        int reclaimed = 0;
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateFiles(directory, prefix + "*.tmp");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
        foreach (var candidate in candidates)
        {
            var fileName = Path.GetFileName(candidate.AsSpan());
            if (fileName.Length < prefix.Length + ".tmp".Length || !fileName.StartsWith(prefix, StringComparison.Ordinal)
                || !fileName.EndsWith(".tmp", StringComparison.Ordinal))
                continue;
            var middle = fileName[prefix.Length..^".tmp".Length];
            int dot = middle.IndexOf('.');
            if (dot <= 0 || !int.TryParse(middle[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || !long.TryParse(middle[(dot + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out _))
                continue;
            if (pid == Environment.ProcessId ? s_activeTemps.ContainsKey(candidate) : IsAlive(pid))
                continue;
            try
            {
                // A live writer holds its temp file with FileShare.None, so this open fails for it even when its pid
                // is not visible here (another container sharing the directory).
                using (new FileStream(candidate, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
                {
                }
                File.Delete(candidate);
                reclaimed++;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return reclaimed;
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;          // no such process
        }
        catch (InvalidOperationException)
        {
            return false;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or NotSupportedException or PlatformNotSupportedException)
        {
            return true;           // cannot tell: keep the file
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
