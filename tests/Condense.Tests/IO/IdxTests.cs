using System.IO.Compression;
using Condense.IO;

namespace Condense.Tests.IO;

public sealed class IdxTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] IdxBytes(byte type, int[] dims, byte[] payload)
    {
        var bytes = new List<byte> { 0, 0, type, (byte)dims.Length };
        foreach (var d in dims)
            bytes.AddRange([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        bytes.AddRange(payload);
        return [.. bytes];
    }

    private string Write(string name, byte[] bytes, bool gzip = false)
    {
        var path = _dir.File(name);
        if (!gzip)
        {
            File.WriteAllBytes(path, bytes);
            return path;
        }
        using var file = File.Create(path);
        using var zip = new GZipStream(file, CompressionLevel.Fastest);
        zip.Write(bytes);
        return path;
    }

    private static readonly byte[] Payload = [.. Enumerable.Range(0, 2 * 3 * 4).Select(i => (byte)(i * 10))];

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Reads_images_with_big_endian_dimensions(bool gzip)
    {
        var path = Write("images", IdxBytes(0x08, [2, 3, 4], Payload), gzip);
        var array = Idx.Read(path);
        Assert.Equal([2, 3, 4], array.Dimensions);
        Assert.Equal(Payload, array.Data);
    }

    [Fact]
    public void Reads_labels_and_dimensions_above_255()
    {
        var labels = Enumerable.Range(0, 300).Select(i => (byte)(i % 10)).ToArray();
        var array = Idx.Read(Write("labels.gz", IdxBytes(0x08, [300], labels), gzip: true), expectedRank: 1);
        Assert.Equal([300], array.Dimensions);
        Assert.Equal(labels, array.Data);
    }

    [Fact]
    public void Rejects_a_magic_with_the_wrong_element_type()
    {
        var path = Write("floats", IdxBytes(0x0D, [2], new byte[8]));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("0x0D", error.Message);
        Assert.Contains("expected 0x08", error.Message);
    }

    [Fact]
    public void Rejects_a_magic_not_starting_with_zeros()
    {
        var bytes = IdxBytes(0x08, [1], [5]);
        bytes[0] = 0x12;
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(Write("bad", bytes)));
        Assert.Contains("0x12000801", error.Message);
    }

    [Fact]
    public void Rejects_an_unexpected_rank()
    {
        var path = Write("labels", IdxBytes(0x08, [4], new byte[4]));
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(path, expectedRank: 3));
        Assert.Contains("declares 1 dimensions; expected 3", error.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Rejects_a_short_payload(bool gzip)
    {
        var path = Write("short", IdxBytes(0x08, [2, 3, 4], Payload[..20]), gzip);
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(path));
        Assert.Contains(path, error.Message);
        Assert.Contains("payload is 20 bytes; expected 24", error.Message);
    }

    [Fact]
    public void Rejects_trailing_bytes_after_the_payload()
    {
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(Write("long", IdxBytes(0x08, [2], [1, 2, 3]))));
        Assert.Contains("after the 2-byte payload", error.Message);
    }

    [Fact]
    public void Rejects_a_truncated_header()
    {
        var error = Assert.Throws<InvalidDataException>(() => Idx.Read(Write("trunc", [0, 0, 8, 3, 0, 0])));
        Assert.Contains("3 big-endian 32-bit dimension sizes", error.Message);
        var tiny = Assert.Throws<InvalidDataException>(() => Idx.Read(Write("tiny", [0, 0])));
        Assert.Contains("2 bytes long", tiny.Message);
    }

    [Fact]
    public void Reports_a_missing_file_by_name()
    {
        var path = _dir.File("absent");
        Assert.Contains(path, Assert.Throws<FileNotFoundException>(() => Idx.Read(path)).Message);
    }
}
