using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Hashing;
using System.Text;
using System.Text.Json.Nodes;
using Condense.Benchmarks.Harness;
using Condense.Compression;
using Condense.IO;
using Condense.Nn;

namespace Condense.Benchmarks.Files;

/// <summary>
/// `--quick load`: ModelFile.Load of a 256 MiB dense model with its per-tensor XXH3 checksums verified, against the
/// same file with the checksum keys removed (which Load reads unverified), interleaved round by round; plus bytes
/// allocated by one Load per byte of file and the hash alone. The checksum's cost is the ratio of the two medians.
/// </summary>
internal static class LoadQuick
{
    private const int Layers = 4;
    private const int Size = 4096;          // 4 x 4096 x 4096 floats = 256 MiB
    private const int Rounds = 9;

    public static int Run()
    {
        Console.WriteLine($"Condense load benchmark: ModelFile.Load of {Layers} Linear({Size}, {Size}) layers with biases (dense F32), from the page cache");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);
        var directory = Path.Combine(Path.GetTempPath(), $"condense-load-bench-{Environment.ProcessId}");
        Directory.CreateDirectory(directory);
        try
        {
            var plan = new CompressionPlan("LoadBench", Enumerable.Range(0, Layers).Select(i => new LayerPlan(
                $"l{i}", LayerKind.Linear, Size, Size, 0, true, LayerTechnique.Dense, 0, 0, true, (long)Size * Size * 4 + Size * 4, (long)Size * Size * 4 + Size * 4)).ToArray());
            var source = Fresh();
            for (int i = 0; i < Layers; i++) source[i].Layer.ResetParameters(new Rng((ulong)i + 1));
            var withSums = Path.Combine(directory, "with.safetensors");
            var withoutSums = Path.Combine(directory, "without.safetensors");
            ModelFile.Save(withSums, plan, source);
            StripChecksums(withSums, withoutSums);
            long fileBytes = new FileInfo(withSums).Length;
            var data = ((WeightedLayer)source[0].Layer).Weight.Data;

            // Warm-up: JIT and page cache.
            ModelFile.Load(withSums, plan, Fresh());
            ModelFile.Load(withoutSums, plan, Fresh());

            long before = GC.GetAllocatedBytesForCurrentThread();
            ModelFile.Load(withSums, plan, Fresh());
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

            var verified = new List<double>();
            var unverified = new List<double>();
            var hashOnly = new List<double>();
            for (int round = 0; round < Rounds; round++)
            {
                verified.Add(Time(() => ModelFile.Load(withSums, plan, Fresh())));
                unverified.Add(Time(() => ModelFile.Load(withoutSums, plan, Fresh())));
                hashOnly.Add(Time(() => { for (int i = 0; i < Layers; i++) XxHash3.HashToUInt64(System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan())); }));
            }
            double v = Timing.Median(verified), u = Timing.Median(unverified), h = Timing.Median(hashOnly);
            var table = new TextTable("row", "median", "GB/s", "vs unverified");
            table.Add("Load, checksums verified", Format.Time(v), Format.Number(fileBytes / v / 1e9, "0.00"), Format.Number(v / u, "0.000") + "x");
            table.Add("Load, file without checksums", Format.Time(u), Format.Number(fileBytes / u / 1e9, "0.00"), "1.000x");
            table.Add("XXH3 of the same bytes (in memory)", Format.Time(h), Format.Number(fileBytes / h / 1e9, "0.00"), Format.Number(h / u, "0.000") + "x");
            Console.WriteLine();
            Console.Write(table.Render(leftAligned: 1));
            Console.WriteLine();
            Console.WriteLine($"file {Format.Bytes(fileBytes)}; checksum cost = {Format.Number((v / u - 1) * 100, "0.0")}% of load time (medians of {Rounds} interleaved rounds)");
            Console.WriteLine($"one Load allocated {Format.Bytes(allocated)} = {Format.Number((double)allocated / fileBytes, "0.000")}x the file size (layers freshly constructed: no weights before Load)");
            return 0;
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        static NamedLayer[] Fresh() => Enumerable.Range(0, Layers).Select(i => new NamedLayer($"l{i}", new Linear(Size, Size))).ToArray();
    }

    private static double Time(Action action)
    {
        GC.Collect();
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }

    /// <summary>Copies the file with the <c>xxh3:</c> metadata keys removed (header re-padded, data unchanged).</summary>
    private static void StripChecksums(string from, string to)
    {
        var bytes = File.ReadAllBytes(from);
        int headerSize = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerSize))!.AsObject();
        var metadata = header["__metadata__"]!.AsObject();
        foreach (var key in metadata.Select(p => p.Key).Where(k => k.StartsWith(SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal)).ToList())
            metadata.Remove(key);
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        int padded = (json.Length + 7) / 8 * 8;
        using var output = File.Create(to);
        Span<byte> size = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(size, (ulong)padded);
        output.Write(size);
        output.Write(json);
        for (int i = json.Length; i < padded; i++) output.WriteByte((byte)' ');
        output.Write(bytes.AsSpan(8 + headerSize));
    }
}
