using System.Buffers.Binary;
using System.IO.Compression;

namespace Condense.IO;

/// <summary>An unsigned-byte IDX array: <see cref="Data"/> holds product(<see cref="Dimensions"/>) bytes, row-major.</summary>
/// <param name="Data">The payload, row-major.</param>
/// <param name="Dimensions">Sizes, outermost first (e.g. [10000, 28, 28]).</param>
public sealed record IdxArray(byte[] Data, int[] Dimensions);

/// <summary>Reads IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed.</summary>
public static class Idx
{
    private const byte UnsignedByteType = 0x08;
    private const int MaxDimensions = 8;

    /// <summary>
    /// Reads an unsigned-byte IDX file of any rank (1..8). A file starting with the gzip magic (1F 8B) is
    /// decompressed transparently. Throws <see cref="InvalidDataException"/> naming the file and what was expected.
    /// </summary>
    public static IdxArray Read(string path) => Read(path, expectedRank: null);

    /// <summary>As <see cref="Read(string)"/>, and requires exactly <paramref name="expectedRank"/> dimensions (e.g. 3 for images, 1 for labels).</summary>
    public static IdxArray Read(string path, int? expectedRank)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"IDX file '{path}' does not exist.", path);

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        Span<byte> probe = stackalloc byte[2];
        var probed = file.ReadAtLeast(probe, 2, throwOnEndOfStream: false);
        file.Position = 0;
        var gzip = probed == 2 && probe[0] == 0x1F && probe[1] == 0x8B;
        using var stream = gzip ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
        try
        {
            return ReadFrom(stream, path, expectedRank);
        }
        catch (InvalidDataException e) when (gzip && !e.Message.Contains(path, StringComparison.Ordinal))
        {
            // GZipStream's own errors do not name the file.
            throw new InvalidDataException($"IDX file '{path}': the gzip stream is corrupt ({e.Message}).", e);
        }
    }

    private static IdxArray ReadFrom(Stream stream, string path, int? expectedRank)
    {
        Span<byte> magic = stackalloc byte[4];
        var got = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (got < 4)
            throw Error(path, $"the file is {got} bytes long; expected at least a 4-byte magic number (00 00 08 <rank>).");
        if (magic[0] != 0 || magic[1] != 0)
            throw Error(path, $"magic number {Hex(magic)} does not start with 00 00; expected 00 00 08 <rank> (e.g. 0x00000803 images, 0x00000801 labels).");
        if (magic[2] != UnsignedByteType)
            throw Error(path, $"magic number {Hex(magic)} has element type 0x{magic[2]:X2}; expected 0x08 (unsigned byte).");
        int rank = magic[3];
        if (rank is < 1 or > MaxDimensions)
            throw Error(path, $"magic number {Hex(magic)} declares {rank} dimensions; expected 1..{MaxDimensions}.");
        if (expectedRank is { } want && rank != want)
            throw Error(path, $"magic number {Hex(magic)} declares {rank} dimensions; expected {want} (0x{0x800 + want:X8}).");

        var dimensionBytes = new byte[4 * rank];
        got = stream.ReadAtLeast(dimensionBytes, dimensionBytes.Length, throwOnEndOfStream: false);
        if (got < dimensionBytes.Length)
            throw Error(path, $"the header ends after {4 + got} bytes; expected {rank} big-endian 32-bit dimension sizes.");
        var dimensions = new int[rank];
        long count = 1;
        for (var i = 0; i < rank; i++)
        {
            var size = BinaryPrimitives.ReadInt32BigEndian(dimensionBytes.AsSpan(4 * i));
            if (size < 0)
                throw Error(path, $"dimension {i} is {(uint)size}; expected a size below 2^31.");
            dimensions[i] = size;
            count *= size;
            if (count > Array.MaxLength)
                throw Error(path, $"dimensions [{string.Join(", ", dimensions[..(i + 1)])}...] hold more than {Array.MaxLength} bytes; expected a payload that fits in memory.");
        }

        var data = new byte[count];
        got = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
        if (got < data.Length)
            throw Error(path, $"the payload is {got} bytes; expected {count} = product of dimensions [{string.Join(", ", dimensions)}].");
        Span<byte> extra = stackalloc byte[1];
        if (stream.Read(extra) != 0)
            throw Error(path, $"there are bytes after the {count}-byte payload; expected exactly the product of dimensions [{string.Join(", ", dimensions)}].");
        return new IdxArray(data, dimensions);
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => "0x" + Convert.ToHexString(bytes);

    private static InvalidDataException Error(string path, string problem) => new($"IDX file '{path}': {problem}");
}
