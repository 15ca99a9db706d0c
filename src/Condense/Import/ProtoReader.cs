using System.Buffers.Binary;

namespace Condense.Import;

/// <summary>A protobuf wire-format field type (the low 3 bits of a tag).</summary>
internal enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

/// <summary>The bytes are not valid protobuf, or not the message expected; the message says where.</summary>
internal sealed class ProtoFormatException(string message) : Exception(message);

/// <summary>
/// Reads the protobuf wire format over one message's bytes, field by field: just enough for the ONNX messages
/// Condense needs (no reflection, no generated code, no dependency). Offsets are absolute within the buffer, so
/// large byte fields (an initializer's raw_data) are kept as ranges, never copied while parsing.
/// </summary>
internal ref struct ProtoReader
{
    private readonly ReadOnlySpan<byte> _buffer;
    private readonly int _end;
    private int _position;

    /// <summary>A reader over <paramref name="buffer"/>[<paramref name="start"/>..<paramref name="end"/>).</summary>
    public ProtoReader(ReadOnlySpan<byte> buffer, int start, int end)
    {
        _buffer = buffer;
        _position = start;
        _end = end;
    }

    /// <summary>Absolute offset of the next byte to read.</summary>
    public readonly int Position => _position;

    /// <summary>Absolute offset one past the message's last byte.</summary>
    public readonly int End => _end;

    /// <summary>Reads the next tag; false at the end of the message.</summary>
    public bool TryReadTag(out int field, out WireType wireType)
    {
        if (_position >= _end)
        {
            field = 0;
            wireType = default;
            return false;
        }
        ulong tag = ReadVarint();
        field = (int)(tag >> 3);
        wireType = (WireType)(tag & 7);
        if (field <= 0 || tag >> 3 > int.MaxValue)
            throw new ProtoFormatException($"invalid field number {tag >> 3} at byte {_position}");
        return true;
    }

    /// <summary>Reads a base-128 varint (at most 10 bytes).</summary>
    public ulong ReadVarint()
    {
        ulong value = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if (_position >= _end)
                throw new ProtoFormatException($"a varint runs past the end of its message at byte {_position}");
            byte b = _buffer[_position++];
            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new ProtoFormatException($"a varint is longer than 10 bytes at byte {_position}");
    }

    /// <summary>Reads a varint field as a signed 64-bit integer (two's complement, as int64 is encoded).</summary>
    public long ReadInt64() => (long)ReadVarint();

    /// <summary>Reads a varint field as a signed 32-bit integer (int32 and enums; negative values are 10-byte varints).</summary>
    public int ReadInt32() => (int)ReadVarint();

    /// <summary>Reads a 4-byte little-endian float.</summary>
    public float ReadFloat()
    {
        if (_end - _position < 4) throw new ProtoFormatException($"a fixed32 field runs past the end of its message at byte {_position}");
        float value = BinaryPrimitives.ReadSingleLittleEndian(_buffer.Slice(_position, 4));
        _position += 4;
        return value;
    }

    /// <summary>Reads a length-delimited field: returns its absolute [start, end) range and moves past it.</summary>
    public (int Start, int End) ReadLengthDelimited()
    {
        ulong length = ReadVarint();
        if (length > (ulong)(_end - _position))
            throw new ProtoFormatException($"a field of {length} bytes at byte {_position} runs past the end of its message ({_end - _position} bytes left); the file is truncated or corrupt");
        int start = _position;
        _position += (int)length;
        return (start, _position);
    }

    /// <summary>Reads a length-delimited field as UTF-8 text.</summary>
    public string ReadString()
    {
        var (start, end) = ReadLengthDelimited();
        return System.Text.Encoding.UTF8.GetString(_buffer[start..end]);
    }

    /// <summary>A reader over a nested message's bytes.</summary>
    public ProtoReader ReadMessage()
    {
        var (start, end) = ReadLengthDelimited();
        return new ProtoReader(_buffer, start, end);
    }

    /// <summary>Skips a field of the given wire type (unknown fields are skipped, as protobuf requires).</summary>
    public void Skip(WireType wireType)
    {
        switch (wireType)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Advance(8); break;
            case WireType.Fixed32: Advance(4); break;
            case WireType.LengthDelimited: ReadLengthDelimited(); break;
            default:
                throw new ProtoFormatException($"wire type {(int)wireType} (groups are not used by ONNX) at byte {_position}");
        }
    }

    private void Advance(int bytes)
    {
        if (_end - _position < bytes)
            throw new ProtoFormatException($"a {bytes}-byte field runs past the end of its message at byte {_position}");
        _position += bytes;
    }

    /// <summary>Throws unless <paramref name="actual"/> is <paramref name="expected"/>; names the field.</summary>
    public static void Expect(WireType actual, WireType expected, string field)
    {
        if (actual != expected)
            throw new ProtoFormatException($"field '{field}' has wire type {(int)actual}, expected {(int)expected}");
    }
}
