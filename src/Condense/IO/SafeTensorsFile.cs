using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using System.Text.Json;
using System.Text.Unicode;

namespace Condense.IO;

/// <summary>
/// A read-only safetensors file. <see cref="Open"/> validates the whole header up front (sizes, JSON, dtypes,
/// shapes, offsets, overlaps, holes and the checksum keys), so every later read is in bounds.
/// </summary>
/// <remarks>
/// <para>Reads go through the file handle (<see cref="RandomAccess"/>): <see cref="Open"/>, the typed
/// <c>Read*</c> methods and <see cref="ModelFile.Load"/> never map the file, so a file truncated or replaced
/// by another process while it is being read gives a <see cref="SafeTensorsFormatException"/> naming it,
/// never a crash. Only <see cref="GetBytes"/> maps the file (on its first call), to hand out zero-copy spans:
/// it checks the file's length first, but a file truncated by another process while such a span is in use
/// can still take the process down (the operating system's SIGBUS / access violation), so use the
/// <c>Read*</c> methods when other processes may rewrite the file.</para>
/// <para>Checksums: when the header's metadata has <c>xxh3:&lt;tensor&gt;</c> keys (written by
/// <see cref="SafeTensorsWriter"/>, docs/format.md), every read of a tensor's data (<c>Read*</c>, and the
/// first <see cref="GetBytes"/> of it) verifies the tensor's XXH3-64 and throws naming the file and tensor on a
/// mismatch. Files without these keys (written by other tools) are read unverified.</para>
/// </remarks>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Largest header accepted, in bytes (the reference implementation uses the same cap).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Prefix of the metadata keys that hold a tensor's checksum: <c>xxh3:&lt;tensor name&gt;</c>.</summary>
    public const string ChecksumKeyPrefix = "xxh3:";

    private const int MaxListedNames = 5;

    // Reads are done in chunks this large, each hashed while it is still in cache.
    internal const int ChunkBytes = 1 << 18;

    private readonly SafeFileHandle _handle;
    private readonly long _length;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private readonly Dictionary<string, ulong> _checksums;
    private readonly HashSet<string> _verifiedMapped = new(StringComparer.Ordinal);
    private readonly Lock _mapLock = new();
    private readonly long _dataStart;
    private MemoryMappedFile? _mapping;
    private MemoryMappedViewAccessor? _view;
    private byte* _base;
    private bool _disposed;

    private SafeTensorsFile(string path, SafeFileHandle handle, long length, long dataStart,
        IReadOnlyDictionary<string, string> metadata, List<SafeTensorInfo> tensors, Dictionary<string, ulong> checksums)
    {
        Path = path;
        _handle = handle;
        _length = length;
        _dataStart = dataStart;
        Metadata = metadata;
        Tensors = tensors;
        _checksums = checksums;
        _byName = new Dictionary<string, SafeTensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var tensor in tensors)
            _byName.Add(tensor.Name, tensor);
    }

    /// <summary>The path the file was opened from.</summary>
    public string Path { get; }

    /// <summary>The <c>__metadata__</c> string map (empty when the header has none), checksum keys (<see cref="ChecksumKeyPrefix"/>) included.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>Whether the header stores a checksum for every tensor (files written by <see cref="SafeTensorsWriter"/>).</summary>
    public bool HasChecksums => _checksums.Count > 0 || Tensors.Count == 0;

    /// <summary>
    /// Opens and validates <paramref name="path"/> by reading its header through the file handle (no mapping);
    /// throws <see cref="SafeTensorsFormatException"/> if it is malformed.
    /// </summary>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);

        // FileShare.Read: no other .NET writer may open the file meanwhile (a rename over it is still fine).
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            var length = RandomAccess.GetLength(handle);
            if (length < 8)
                throw new SafeTensorsFormatException(path, null, $"the file is {length} bytes long; expected at least 8 bytes (the little-endian u64 header size).");
            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(path, handle, prefix, 0, null);
            var headerSize = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerSize > MaxHeaderBytes)
                throw new SafeTensorsFormatException(path, null, $"header size {headerSize} bytes exceeds the cap of {MaxHeaderBytes} bytes; the file is corrupt or not safetensors.");
            if (headerSize > (ulong)(length - 8))
                throw new SafeTensorsFormatException(path, null, $"header size {headerSize} bytes is larger than the {length - 8} bytes after the size prefix (file is {length} bytes); the file is truncated or corrupt.");
            if (headerSize == 0)
                throw new SafeTensorsFormatException(path, null, "header size is 0; expected a JSON object.");
            var header = new byte[(int)headerSize];
            ReadExactly(path, handle, header, 8, null);
            var (dataStart, metadata, tensors, checksums) = Parse(path, header, length);
            return new SafeTensorsFile(path, handle, length, dataStart, metadata, tensors, checksums);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>; a short read means the file shrank.</summary>
    private static void ReadExactly(string path, SafeFileHandle handle, Span<byte> buffer, long offset, string? tensor)
    {
        while (!buffer.IsEmpty)
        {
            int read = RandomAccess.Read(handle, buffer, offset);
            if (read <= 0)
                throw new SafeTensorsFormatException(path, tensor,
                    $"the file ends at byte {offset}, before the bytes its header describes; it was truncated or replaced by another process while being read.");
            buffer = buffer[read..];
            offset += read;
        }
    }

    private static (long DataStart, IReadOnlyDictionary<string, string> Metadata, List<SafeTensorInfo> Tensors, Dictionary<string, ulong> Checksums) Parse(
        string path, byte[] header, long fileLength)
    {
        if (!Utf8.IsValid(header))
            throw new SafeTensorsFormatException(path, null, "the header is not valid UTF-8.");
        if (header[0] != (byte)'{')
            throw new SafeTensorsFormatException(path, null, $"the header must start with '{{' (a JSON object); found byte 0x{header[0]:X2}.");

        var dataStart = 8 + (long)header.Length;
        var dataLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException(path, null, $"the header is not valid JSON ({e.Message}).", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new SafeTensorsFormatException(path, null, $"the header must be a JSON object; found {root.ValueKind}.");

            Dictionary<string, string>? metadata = null;
            var tensors = new List<SafeTensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                foreach (var property in root.EnumerateObject())
                {
                    if (!seen.Add(property.Name))
                    {
                        throw property.Name == "__metadata__"
                            ? new SafeTensorsFormatException(path, null, "'__metadata__' appears more than once; expected at most one.")
                            : new SafeTensorsFormatException(path, property.Name, "the name appears more than once in the header; tensor names must be unique.");
                    }
                    if (property.Name == "__metadata__")
                        metadata = ParseMetadata(path, property.Value);
                    else
                        tensors.Add(ParseTensor(path, property.Name, property.Value, dataLength));
                }
            }
            catch (InvalidOperationException e)
            {
                // System.Text.Json accepts an escaped lone surrogate ("\ud800") while parsing but cannot turn it into
                // a .NET string; such a name, dtype, key or value is not valid Unicode.
                throw new SafeTensorsFormatException(path, null,
                    $"the header holds a string that is not valid Unicode (e.g. a lone surrogate escape such as \\ud800) as a name, dtype, key or value ({e.Message}).", e);
            }

            CheckCoverage(path, tensors, dataLength);
            var map = (IReadOnlyDictionary<string, string>?)metadata ?? new Dictionary<string, string>();
            return (dataStart, map, tensors, ParseChecksums(path, map, tensors));
        }
    }

    /// <summary>The <c>xxh3:&lt;name&gt;</c> keys: each names a tensor and holds 16 hex digits; all tensors have one or none do.</summary>
    private static Dictionary<string, ulong> ParseChecksums(string path, IReadOnlyDictionary<string, string> metadata, List<SafeTensorInfo> tensors)
    {
        var checksums = new Dictionary<string, ulong>(StringComparer.Ordinal);
        HashSet<string>? names = null;
        foreach (var (key, value) in metadata)
        {
            if (!key.StartsWith(ChecksumKeyPrefix, StringComparison.Ordinal))
                continue;
            names ??= new HashSet<string>(tensors.Select(t => t.Name), StringComparer.Ordinal);
            var name = key[ChecksumKeyPrefix.Length..];
            if (!names.Contains(name))
                throw new SafeTensorsFormatException(path, null, $"metadata key '{key}' holds the checksum of tensor '{name}', which is not in the file.");
            if (value.Length != 16 || !ulong.TryParse(value, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var hash))
                throw new SafeTensorsFormatException(path, name, $"checksum '{value}' (metadata key '{key}') is not 16 hexadecimal digits.");
            checksums.Add(name, hash);
        }
        if (checksums.Count > 0 && checksums.Count != tensors.Count)
        {
            var missing = tensors.First(t => !checksums.ContainsKey(t.Name));
            throw new SafeTensorsFormatException(path, missing.Name,
                $"the header has checksums for {checksums.Count} of its {tensors.Count} tensors but none for this one; a file with checksums has one per tensor.");
        }
        return checksums;
    }

    private static Dictionary<string, string> ParseMetadata(string path, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(path, null, $"'__metadata__' must be an object of strings; found {value.ValueKind}.");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw new SafeTensorsFormatException(path, null, $"metadata value '{entry.Name}' must be a string; found {entry.Value.ValueKind}.");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw new SafeTensorsFormatException(path, null, $"metadata key '{entry.Name}' appears more than once.");
        }
        return metadata;
    }

    private static SafeTensorInfo ParseTensor(string path, string name, JsonElement value, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw new SafeTensorsFormatException(path, name, $"the entry must be an object with dtype, shape and data_offsets; found {value.ValueKind}.");

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (var field in value.EnumerateObject())
        {
            switch (field.Name)
            {
                case "dtype" when dtypeElement is null: dtypeElement = field.Value; break;
                case "shape" when shapeElement is null: shapeElement = field.Value; break;
                case "data_offsets" when offsetsElement is null: offsetsElement = field.Value; break;
                case "dtype" or "shape" or "data_offsets":
                    throw new SafeTensorsFormatException(path, name, $"field '{field.Name}' appears more than once.");
                default:
                    throw new SafeTensorsFormatException(path, name, $"unexpected field '{field.Name}'; expected only dtype, shape and data_offsets.");
            }
        }
        if (dtypeElement is not { } dtypeValue)
            throw new SafeTensorsFormatException(path, name, "missing field 'dtype'.");
        if (shapeElement is not { } shapeValue)
            throw new SafeTensorsFormatException(path, name, "missing field 'shape'.");
        if (offsetsElement is not { } offsetsValue)
            throw new SafeTensorsFormatException(path, name, "missing field 'data_offsets'.");

        if (dtypeValue.ValueKind != JsonValueKind.String || !SafeTensorDTypes.TryParse(dtypeValue.GetString()!, out var dtype))
        {
            var found = dtypeValue.ValueKind == JsonValueKind.String ? $"'{dtypeValue.GetString()}'" : dtypeValue.ValueKind.ToString();
            throw new SafeTensorsFormatException(path, name,
                $"unknown dtype {found}; expected one of {string.Join(", ", SafeTensorDTypes.All.Select(SafeTensorDTypes.Name))}.");
        }

        if (shapeValue.ValueKind != JsonValueKind.Array)
            throw new SafeTensorsFormatException(path, name, $"'shape' must be an array of non-negative integers; found {shapeValue.ValueKind}.");
        var shape = new long[shapeValue.GetArrayLength()];
        var index = 0;
        foreach (var dim in shapeValue.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var size) || size < 0)
                throw new SafeTensorsFormatException(path, name, $"shape dimension {index} is {dim.GetRawText()}; expected a non-negative integer.");
            shape[index++] = size;
        }

        if (offsetsValue.ValueKind != JsonValueKind.Array || offsetsValue.GetArrayLength() != 2)
            throw new SafeTensorsFormatException(path, name, $"'data_offsets' is {offsetsValue.GetRawText()}; expected [begin, end].");
        var begin = ReadOffset(path, name, offsetsValue[0], "begin");
        var end = ReadOffset(path, name, offsetsValue[1], "end");
        if (begin > end)
            throw new SafeTensorsFormatException(path, name, $"data_offsets [{begin}, {end}] has begin after end; expected begin <= end.");
        if (end > dataLength)
            throw new SafeTensorsFormatException(path, name, $"data_offsets [{begin}, {end}] run past the end of the {dataLength}-byte data buffer; the file is truncated or the offsets are out of range.");

        long expected;
        try
        {
            expected = SafeTensorDTypes.ByteLength(dtype, shape);
        }
        catch (OverflowException)
        {
            throw new SafeTensorsFormatException(path, name, $"shape {SafeTensorInfo.FormatShape(shape)} of {dtype} overflows a 64-bit byte count.");
        }
        if (expected != end - begin)
            throw new SafeTensorsFormatException(path, name,
                $"shape {SafeTensorInfo.FormatShape(shape)} of {dtype} needs {expected} bytes but data_offsets [{begin}, {end}] span {end - begin} bytes (size mismatch).");

        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static long ReadOffset(string path, string name, JsonElement element, string which)
    {
        if (element.ValueKind != JsonValueKind.Number || !element.TryGetInt64(out var offset) || offset < 0)
            throw new SafeTensorsFormatException(path, name, $"data_offsets {which} is {element.GetRawText()}; expected a non-negative integer.");
        return offset;
    }

    // The reference implementation requires the tensors to tile the data buffer exactly: no overlap, no gap.
    private static void CheckCoverage(string path, List<SafeTensorInfo> tensors, long dataLength)
    {
        var ordered = tensors.ToArray();
        Array.Sort(ordered, static (a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
        long covered = 0;
        SafeTensorInfo? previous = null;
        foreach (var tensor in ordered)
        {
            if (tensor.Begin < covered)
                throw new SafeTensorsFormatException(path, tensor.Name,
                    $"data_offsets [{tensor.Begin}, {tensor.End}] overlap tensor '{previous!.Name}' at [{previous.Begin}, {previous.End}]; expected tensors not to overlap.");
            if (tensor.Begin > covered)
                throw new SafeTensorsFormatException(path, tensor.Name,
                    $"data_offsets [{tensor.Begin}, {tensor.End}] leave a hole: bytes [{covered}, {tensor.Begin}) of the data buffer belong to no tensor; expected the tensors to cover the buffer contiguously.");
            covered = tensor.End;
            previous = tensor;
        }
        if (covered != dataLength)
            throw new SafeTensorsFormatException(path, null,
                $"bytes [{covered}, {dataLength}) at the end of the data buffer belong to no tensor (a hole); expected the tensors to cover all {dataLength} bytes.");
    }

    /// <summary>Looks up a tensor by name.</summary>
    public bool TryGet(string name, out SafeTensorInfo info) => _byName.TryGetValue(name, out info!);

    /// <summary>Whether a tensor named <paramref name="name"/> exists.</summary>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Looks up a tensor by name; throws <see cref="KeyNotFoundException"/> naming it and listing some that exist.</summary>
    public SafeTensorInfo Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (_byName.TryGetValue(name, out var info))
            return info;
        var some = Tensors.Take(MaxListedNames).Select(t => $"'{t.Name}'");
        var listing = Tensors.Count == 0
            ? "the file has no tensors"
            : $"it has {Tensors.Count} tensor(s), e.g. {string.Join(", ", some)}{(Tensors.Count > MaxListedNames ? ", ..." : "")}";
        throw new KeyNotFoundException($"Safetensors file '{Path}' has no tensor '{name}'; {listing}.");
    }

    /// <summary>
    /// The tensor's raw little-endian bytes: a zero-copy view into a memory mapping of the file, valid until
    /// <see cref="Dispose"/>. This is the only API that maps the file (on first use). It checks that the file is
    /// still long enough and verifies the tensor's checksum (if the file has one) the first time each tensor is
    /// handed out; a file truncated by another process while the span is in use can still crash the process,
    /// so prefer the <c>Read*</c> methods for files other processes may rewrite. Tensors of 2 GiB or more do
    /// not fit a span: read them with <see cref="ReadF32"/> and the like.
    /// </summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = Get(name);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (info.ByteLength > int.MaxValue)
            throw new NotSupportedException($"Tensor '{info.Name}' in '{Path}' is {info.ByteLength} bytes; spans are limited to {int.MaxValue} bytes: use the Read methods, which copy into arrays of any size.");
        lock (_mapLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var now = RandomAccess.GetLength(_handle);
            if (now < _dataStart + info.End)
                throw new SafeTensorsFormatException(Path, info.Name,
                    $"the file is now {now} bytes but was {_length} when opened; it was truncated or replaced by another process.");
            if (_base == null)
                Map();
            var span = new ReadOnlySpan<byte>(_base + _dataStart + info.Begin, (int)info.ByteLength);
            if (_checksums.TryGetValue(info.Name, out var expected) && !_verifiedMapped.Contains(info.Name))
            {
                VerifyChecksum(info, XxHash3.HashToUInt64(span), expected);
                _verifiedMapped.Add(info.Name);
            }
            return span;
        }
    }

    private void Map()
    {
        var mapping = MemoryMappedFile.CreateFromFile(_handle, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
            HandleInheritability.None, leaveOpen: true);
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            view = mapping.CreateViewAccessor(0, _length, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        }
        catch
        {
            view?.Dispose();
            mapping.Dispose();
            throw;
        }
        _mapping = mapping;
        _view = view;
        // The view starts at a page boundary; PointerOffset is the file offset 0 within it.
        _base = pointer + view.PointerOffset;
    }

    private void VerifyChecksum(SafeTensorInfo info, ulong actual, ulong expected)
    {
        if (actual != expected)
            throw new SafeTensorsFormatException(Path, info.Name,
                $"the data fails its checksum: XXH3 {actual:x16}, the header records {expected:x16} (metadata key '{ChecksumKeyPrefix}{info.Name}'); the file is corrupt, or was changed while being read.");
    }

    /// <summary>Copies a float32 tensor out of the file (through the file handle; verified against its checksum).</summary>
    public float[] ReadF32(string name) => Read<float>(name, SafeTensorDType.F32);

    /// <summary>Copies a float16 tensor out of the file (through the file handle; verified against its checksum).</summary>
    public Half[] ReadF16(string name) => Read<Half>(name, SafeTensorDType.F16);

    /// <summary>Copies an unsigned byte tensor out of the file (through the file handle; verified against its checksum).</summary>
    public byte[] ReadU8(string name) => Read<byte>(name, SafeTensorDType.U8);

    /// <summary>Copies a signed 32-bit integer tensor out of the file (through the file handle; verified against its checksum).</summary>
    public int[] ReadI32(string name) => Read<int>(name, SafeTensorDType.I32);

    /// <summary>Copies an unsigned 16-bit integer tensor out of the file (through the file handle; verified against its checksum).</summary>
    public ushort[] ReadU16(string name) => Read<ushort>(name, SafeTensorDType.U16);

    /// <summary>Copies an unsigned 32-bit integer tensor out of the file (through the file handle; verified against its checksum).</summary>
    public uint[] ReadU32(string name) => Read<uint>(name, SafeTensorDType.U32);

    /// <summary>Reads an F32, F16 or BF16 tensor, widening to float32 (through the file handle; verified against its checksum).</summary>
    public float[] ReadAsF32(string name)
    {
        var info = Get(name);
        switch (info.DType)
        {
            case SafeTensorDType.F32:
                return ReadF32(name);
            case SafeTensorDType.F16:
            {
                var halves = ReadF16(name);
                var result = new float[halves.Length];
                for (var i = 0; i < halves.Length; i++)
                    result[i] = (float)halves[i];
                return result;
            }
            case SafeTensorDType.BF16:
            {
                var raw = Read<ushort>(name, SafeTensorDType.BF16);
                var result = new float[raw.Length];
                for (var i = 0; i < result.Length; i++)
                    result[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                return result;
            }
            default:
                throw new InvalidOperationException($"Tensor '{name}' in '{Path}' is {info.DType}; expected F32, F16 or BF16.");
        }
    }

    private T[] Read<T>(string name, SafeTensorDType expected)
        where T : unmanaged
    {
        var info = Get(name);
        if (info.DType != expected)
            throw new InvalidOperationException($"Tensor '{name}' in '{Path}' is {info.DType} with shape {info.ShapeText}; expected {expected}.");
        long count = info.ByteLength / SafeTensorDTypes.ElementSize(expected);
        if (count > Array.MaxLength)
            throw new NotSupportedException($"Tensor '{name}' in '{Path}' has {count} elements; .NET arrays hold at most {Array.MaxLength}.");
        var result = new T[count];
        ReadInto(info, ref Unsafe.As<T, byte>(ref MemoryMarshal.GetArrayDataReference(result)));
        if (!BitConverter.IsLittleEndian && sizeof(T) > 1)
        {
            // The format is little-endian; swap each element on big-endian hosts.
            for (long i = 0; i < count; i++)
                MemoryMarshal.AsBytes(result.AsSpan((int)i, 1)).Reverse();
        }
        return result;
    }

    /// <summary>
    /// Reads the tensor's bytes into <paramref name="destination"/> (which holds at least <see cref="SafeTensorInfo.ByteLength"/>
    /// bytes) in chunks through the file handle, hashing each chunk while it is in cache, then checks the checksum.
    /// </summary>
    private void ReadInto(SafeTensorInfo info, ref byte destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool verify = _checksums.TryGetValue(info.Name, out var expected);
        XxHash3? hash = verify ? new XxHash3() : null;
        long offset = 0;
        while (offset < info.ByteLength)
        {
            int chunk = (int)Math.Min(ChunkBytes, info.ByteLength - offset);
            var span = MemoryMarshal.CreateSpan(ref Unsafe.Add(ref destination, (nint)offset), chunk);
            ReadExactly(Path, _handle, span, _dataStart + info.Begin + offset, info.Name);
            hash?.Append(span);
            offset += chunk;
        }
        if (hash is not null)
            VerifyChecksum(info, hash.GetCurrentHashAsUInt64(), expected);
    }

    /// <summary>Closes the file and unmaps it if <see cref="GetBytes"/> mapped it; spans from <see cref="GetBytes"/> must not be used afterwards.</summary>
    public void Dispose()
    {
        lock (_mapLock)
        {
            if (_disposed)
                return;
            _disposed = true;
            if (_base != null)
            {
                _base = null;
                _view!.SafeMemoryMappedViewHandle.ReleasePointer();
                _view.Dispose();
                _mapping!.Dispose();
            }
            _handle.Dispose();
        }
    }
}
