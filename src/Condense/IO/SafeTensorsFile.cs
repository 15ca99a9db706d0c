using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Unicode;

namespace Condense.IO;

/// <summary>
/// A read-only, memory-mapped safetensors file. <see cref="Open"/> validates the whole header up front
/// (sizes, JSON, dtypes, shapes, offsets, overlaps and holes), so every later read is in bounds.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>Largest header accepted, in bytes (the reference implementation uses the same cap).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const int MaxListedNames = 5;

    private readonly MemoryMappedFile _mapping;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, SafeTensorInfo> _byName;
    private byte* _base;
    private readonly long _dataStart;

    private SafeTensorsFile(string path, MemoryMappedFile mapping, MemoryMappedViewAccessor view, byte* basePointer,
        long dataStart, IReadOnlyDictionary<string, string> metadata, List<SafeTensorInfo> tensors)
    {
        Path = path;
        _mapping = mapping;
        _view = view;
        _base = basePointer;
        _dataStart = dataStart;
        Metadata = metadata;
        Tensors = tensors;
        _byName = new Dictionary<string, SafeTensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (var tensor in tensors)
            _byName.Add(tensor.Name, tensor);
    }

    /// <summary>The path the file was opened from.</summary>
    public string Path { get; }

    /// <summary>The <c>__metadata__</c> string map (empty when the header has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors in header order.</summary>
    public IReadOnlyList<SafeTensorInfo> Tensors { get; }

    /// <summary>Opens and validates <paramref name="path"/>; throws <see cref="SafeTensorsFormatException"/> if it is malformed.</summary>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Safetensors file '{path}' does not exist.", path);

        // FileShare.Read: nobody may write the file while it is mapped (a rename over it is still fine).
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        long length;
        MemoryMappedFile mapping;
        try
        {
            length = stream.Length;
            if (length < 8)
                throw new SafeTensorsFormatException(path, null, $"the file is {length} bytes long; expected at least 8 bytes (the little-endian u64 header size).");
            // A zero-length file cannot be mapped, hence the size check above first.
            mapping = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read,
                HandleInheritability.None, leaveOpen: false);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        MemoryMappedViewAccessor? view = null;
        byte* pointer = null;
        try
        {
            view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            // The view starts at a page boundary; PointerOffset is the file offset 0 within it.
            var basePointer = pointer + view.PointerOffset;
            var (dataStart, metadata, tensors) = Parse(path, basePointer, length);
            return new SafeTensorsFile(path, mapping, view, basePointer, dataStart, metadata, tensors);
        }
        catch
        {
            if (pointer != null)
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            mapping.Dispose();
            throw;
        }
    }

    private static (long DataStart, IReadOnlyDictionary<string, string> Metadata, List<SafeTensorInfo> Tensors) Parse(
        string path, byte* file, long fileLength)
    {
        var headerSize = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(file, 8));
        if (headerSize > MaxHeaderBytes)
            throw new SafeTensorsFormatException(path, null, $"header size {headerSize} bytes exceeds the cap of {MaxHeaderBytes} bytes; the file is corrupt or not safetensors.");
        if (headerSize > (ulong)(fileLength - 8))
            throw new SafeTensorsFormatException(path, null, $"header size {headerSize} bytes is larger than the {fileLength - 8} bytes after the size prefix (file is {fileLength} bytes); the file is truncated or corrupt.");
        if (headerSize == 0)
            throw new SafeTensorsFormatException(path, null, "header size is 0; expected a JSON object.");

        var headerBytes = new ReadOnlySpan<byte>(file + 8, (int)headerSize);
        if (!Utf8.IsValid(headerBytes))
            throw new SafeTensorsFormatException(path, null, "the header is not valid UTF-8.");
        if (headerBytes[0] != (byte)'{')
            throw new SafeTensorsFormatException(path, null, $"the header must start with '{{' (a JSON object); found byte 0x{headerBytes[0]:X2}.");

        var dataStart = 8 + (long)headerSize;
        var dataLength = fileLength - dataStart;

        JsonDocument document;
        try
        {
            // The header is copied (it is capped) so the document does not outlive the mapping.
            document = JsonDocument.Parse(headerBytes.ToArray(), new JsonDocumentOptions { MaxDepth = 16 });
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

            CheckCoverage(path, tensors, dataLength);
            return (dataStart, (IReadOnlyDictionary<string, string>?)metadata ?? new Dictionary<string, string>(), tensors);
        }
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
    /// The tensor's raw little-endian bytes: a zero-copy view into the mapping, valid until <see cref="Dispose"/>.
    /// </summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = Get(name);
        return Bytes(info);
    }

    private ReadOnlySpan<byte> Bytes(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (info.ByteLength > int.MaxValue)
            throw new NotSupportedException($"Tensor '{info.Name}' in '{Path}' is {info.ByteLength} bytes; spans are limited to {int.MaxValue} bytes.");
        return new ReadOnlySpan<byte>(_base + _dataStart + info.Begin, (int)info.ByteLength);
    }

    /// <summary>Copies a float32 tensor out of the file.</summary>
    public float[] ReadF32(string name) => Read<float>(name, SafeTensorDType.F32);

    /// <summary>Copies a float16 tensor out of the file.</summary>
    public Half[] ReadF16(string name) => Read<Half>(name, SafeTensorDType.F16);

    /// <summary>Copies an unsigned byte tensor out of the file.</summary>
    public byte[] ReadU8(string name) => Read<byte>(name, SafeTensorDType.U8);

    /// <summary>Copies a signed 32-bit integer tensor out of the file.</summary>
    public int[] ReadI32(string name) => Read<int>(name, SafeTensorDType.I32);

    /// <summary>Reads an F32, F16 or BF16 tensor, widening to float32.</summary>
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
                var bytes = Bytes(info);
                var result = new float[bytes.Length / 2];
                for (var i = 0; i < result.Length; i++)
                    result[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]) << 16);
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
        var bytes = Bytes(info);
        var result = new T[bytes.Length / SafeTensorDTypes.ElementSize(expected)];
        bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        if (!BitConverter.IsLittleEndian && sizeof(T) > 1)
        {
            // The format is little-endian; swap each element on big-endian hosts.
            var raw = MemoryMarshal.AsBytes(result.AsSpan());
            for (var i = 0; i < raw.Length; i += sizeof(T))
                raw.Slice(i, sizeof(T)).Reverse();
        }
        return result;
    }

    /// <summary>Unmaps the file; spans from <see cref="GetBytes"/> must not be used afterwards.</summary>
    public void Dispose()
    {
        if (_base == null)
            return;
        _base = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mapping.Dispose();
    }
}
