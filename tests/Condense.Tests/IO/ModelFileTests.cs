using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;
using Condense.IO;
using Condense.Nn;
using Xunit.Abstractions;

namespace Condense.Tests.IO;

/// <summary>A small dense model, large enough (about 0.5 MiB) that its data spans many pages.</summary>
[Compressible]
public sealed partial class IoDense : Module
{
    private readonly Linear first = new(512, 256);
    private readonly Linear second = new(256, 4, bias: false);

    public Tensor Forward(Tensor x) => second.Forward(Ops.Relu(first.Forward(x)));
}

/// <summary>A quantized layer with a low-rank correction: five tensors for one weight.</summary>
[Compressible]
public sealed partial class IoCorrected : Module
{
    [Quantize(4, GroupSize = 16), LowRankCorrection(2)] private readonly Linear layer = new(32, 8);

    public Tensor Forward(Tensor x) => layer.Forward(x);
}

/// <summary>256 MiB of float32 weights, for the load-memory bound.</summary>
[Compressible]
public sealed partial class IoQuarterGig : Module
{
    private readonly Linear big = new(8192, 8192);

    public Tensor Forward(Tensor x) => big.Forward(x);
}

/// <summary>One weight of exactly 2 GiB (2^29 floats), one byte past what a span of bytes can hold.</summary>
[Compressible]
public sealed partial class IoTwoGig : Module
{
    private readonly Linear huge = new(16384, 32768, bias: false);

    public Tensor Forward(Tensor x) => huge.Forward(x);
}

public sealed class ModelFileTests(ITestOutputHelper output) : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static WeightedLayer Layer(Module model, int index) => (WeightedLayer)model.Layers[index].Layer;

    private string SavedDense(string name = "dense.safetensors")
    {
        var model = new IoDense();
        model.Initialize(42);
        var path = _dir.File(name);
        model.Save(path);
        return path;
    }

    // ---- malformed headers ----

    [Theory]
    [InlineData("""{"\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""")]
    [InlineData("""{"w":{"dtype":"\ud800","shape":[1],"data_offsets":[0,1]}}""")]
    [InlineData("""{"__metadata__":{"\udc00x":"v"},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""")]
    [InlineData("""{"__metadata__":{"condense.format":"\ud800"},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""")]
    [InlineData("""{"w":{"\ud800":1,"dtype":"U8","shape":[1],"data_offsets":[0,1]}}""")]
    public void A_lone_surrogate_escape_in_the_header_is_a_format_error_naming_the_file(string header)
    {
        var path = _dir.File($"surrogate-{Guid.NewGuid():N}.safetensors");
        var bytes = Encoding.UTF8.GetBytes(header);
        var file = new byte[8 + bytes.Length + 1];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)bytes.Length);
        bytes.CopyTo(file, 8);
        File.WriteAllBytes(path, file);

        var open = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Equal(path, open.FilePath);
        Assert.Contains(path, open.Message);
        Assert.Contains("not valid Unicode", open.Message);
        var load = Assert.Throws<SafeTensorsFormatException>(() => IoDense.Load(path));
        Assert.Contains(path, load.Message);
    }

    [Fact]
    public void Random_header_mutations_give_only_the_library_file_exceptions()
    {
        var model = new IoCorrected();
        model.Initialize(9);
        model.Compress();
        var path = _dir.File("mutated-source.safetensors");
        model.Save(path);
        var original = File.ReadAllBytes(path);
        int headerSize = (int)BinaryPrimitives.ReadUInt64LittleEndian(original);
        var alphabet = Encoding.ASCII.GetBytes("\\\"{}[],:.-+eE0123456789uU dD8fF\u0000");
        var random = new Random(17);
        var mutated = _dir.File("mutated.safetensors");
        for (int trial = 0; trial < 1500; trial++)
        {
            var bytes = (byte[])original.Clone();
            for (int k = random.Next(1, 4); k > 0; k--)
                bytes[8 + random.Next(headerSize)] = random.Next(4) == 0 ? (byte)random.Next(256) : alphabet[random.Next(alphabet.Length)];
            File.WriteAllBytes(mutated, bytes);
            try
            {
                IoCorrected.Load(mutated);
            }
            catch (Exception e) when (e is SafeTensorsFormatException or ModelFileException)
            {
                Assert.Contains(mutated, e.Message);
            }
        }
    }

    // ---- problem listing ----

    [Fact]
    public void The_exception_message_lists_the_first_problems_and_counts_the_rest()
    {
        var problems = Enumerable.Range(0, 1000).Select(i => $"problem {i}").ToList();
        var e = new ModelFileException("m.safetensors", problems);
        Assert.Equal(1000, e.Problems.Count);
        Assert.Contains("(1000 problems)", e.Message);
        Assert.Contains("problem 19\n", e.Message);
        Assert.DoesNotContain("problem 20\n", e.Message);
        Assert.Contains("... and 980 more", e.Message);
        Assert.Equal("m.safetensors", e.FilePath);
    }

    [Fact]
    public void A_file_with_200000_unexpected_tensors_gives_a_short_report()
    {
        var path = SavedDense();
        var crowded = _dir.File("crowded.safetensors");
        const int extra = 200_000;
        using (var source = SafeTensorsFile.Open(path))
        {
            var writer = new SafeTensorsWriter();
            foreach (var (key, value) in source.Metadata) writer.SetMetadata(key, value);
            foreach (var t in source.Tensors) writer.Add(t.Name, t.DType, t.Shape, source.GetBytes(t.Name));
            for (int i = 0; i < extra; i++) writer.Add($"stray.{i}", SafeTensorDType.U8, [0], []);
            writer.WriteTo(crowded);
        }

        var e = Assert.Throws<ModelFileException>(() => IoDense.Load(crowded));
        Assert.Equal(ModelFile.MaxListedUnexpectedTensors + 1, e.Problems.Count);
        Assert.Equal("tensor 'stray.0' is not part of the compiled plan of IoDense", e.Problems[0]);
        Assert.Equal($"{extra - ModelFile.MaxListedUnexpectedTensors} more tensors are not part of the compiled plan of IoDense ({extra} in all)", e.Problems[^1]);
        Assert.True(e.Message.Length < 4000, $"message is {e.Message.Length} characters");
    }

    [Fact]
    public void An_invalid_quantized_part_of_a_corrected_layer_is_the_only_problem_reported()
    {
        var model = new IoCorrected();
        model.Initialize(3);
        model.Compress();
        var path = _dir.File("corrected.safetensors");
        model.Save(path);

        var damaged = _dir.File("corrected-damaged.safetensors");
        using (var source = SafeTensorsFile.Open(path))
        {
            var writer = new SafeTensorsWriter();
            foreach (var (key, value) in source.Metadata) writer.SetMetadata(key, value);
            foreach (var t in source.Tensors)
            {
                if (t.Name == "layer.weight.qscale")
                {
                    var scales = source.ReadF16(t.Name);
                    scales[0] = Half.NaN;                      // non-finite scale: FromParts rejects it
                    writer.AddF16(t.Name, scales, t.Shape);
                }
                else
                {
                    writer.Add(t.Name, t.DType, t.Shape, source.GetBytes(t.Name));
                }
            }
            writer.WriteTo(damaged);
        }

        var e = Assert.Throws<ModelFileException>(() => IoCorrected.Load(damaged));
        var problem = Assert.Single(e.Problems);
        Assert.StartsWith("layer 'layer':", problem, StringComparison.Ordinal);
        Assert.Contains("scales[0]", problem);
    }

    // ---- format version ----

    /// <summary>Copies a saved file with its <c>condense.format</c> metadata replaced.</summary>
    private string WithFormat(string path, string version)
    {
        var copy = _dir.File($"format-{version}.safetensors");
        using var source = SafeTensorsFile.Open(path);
        var writer = new SafeTensorsWriter();
        foreach (var (key, value) in source.Metadata) writer.SetMetadata(key, key == "condense.format" ? version : value);
        foreach (var t in source.Tensors) writer.Add(t.Name, t.DType, t.Shape, source.GetBytes(t.Name));
        writer.WriteTo(copy);
        return copy;
    }

    [Fact]
    public void Save_writes_format_2_and_load_reads_format_1_files_and_rejects_others_by_version()
    {
        var model = new IoCorrected();
        model.Initialize(3);
        model.Compress();
        var path = _dir.File("versioned.safetensors");
        model.Save(path);
        using (var saved = SafeTensorsFile.Open(path)) Assert.Equal("2", saved.Metadata["condense.format"]);

        // Format 1 (positive symmetric scales, codes 1..2^b - 1) decodes with the same formula: it loads.
        var old = IoCorrected.Load(WithFormat(path, "1"));
        Assert.NotNull(old);

        var e = Assert.Throws<ModelFileException>(() => IoCorrected.Load(WithFormat(path, "3")));
        Assert.Contains("format version 3 is not supported; this version of Condense reads formats 1 and 2", e.Message);
    }

    // ---- checksums ----

    [Fact]
    public void A_flipped_bit_in_any_tensor_fails_its_checksum_naming_file_and_tensor()
    {
        var path = SavedDense();
        var original = File.ReadAllBytes(path);
        long dataStart;
        List<SafeTensorInfo> tensors;
        using (var file = SafeTensorsFile.Open(path))
        {
            Assert.True(file.HasChecksums);
            tensors = file.Tensors.ToList();
            dataStart = original.Length - tensors.Sum(t => t.ByteLength);
        }

        var random = new Random(5);
        foreach (var tensor in tensors)
        {
            for (int trial = 0; trial < 3; trial++)
            {
                var bytes = (byte[])original.Clone();
                long at = dataStart + tensor.Begin + random.NextInt64(tensor.ByteLength);
                bytes[at] ^= (byte)(1 << random.Next(8));
                var damaged = _dir.File($"flipped-{tensor.Name}-{trial}.safetensors");
                File.WriteAllBytes(damaged, bytes);

                var e = Assert.Throws<SafeTensorsFormatException>(() => IoDense.Load(damaged));
                Assert.Equal(tensor.Name, e.TensorName);
                Assert.Equal(damaged, e.FilePath);
                Assert.Contains("checksum", e.Message);

                using var raw = SafeTensorsFile.Open(damaged);
                Assert.Equal(tensor.Name, Assert.Throws<SafeTensorsFormatException>(() => raw.ReadF32(tensor.Name)).TensorName);
                Assert.Equal(tensor.Name, Assert.Throws<SafeTensorsFormatException>(() => raw.GetBytes(tensor.Name).Length).TensorName);
            }
        }
    }

    [Fact]
    public void A_file_without_checksums_still_loads()
    {
        var path = SavedDense();
        var stripped = _dir.File("no-checksums.safetensors");
        RewriteHeader(path, stripped, metadata =>
        {
            foreach (var key in metadata.Select(p => p.Key).Where(k => k.StartsWith(SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal)).ToList())
                metadata.Remove(key);
        });

        using (var file = SafeTensorsFile.Open(stripped))
            Assert.False(file.HasChecksums);
        var loaded = IoDense.Load(stripped);
        var expected = IoDense.Load(path);
        Assert.Equal(Layer(expected, 0).Weight.Data, Layer(loaded, 0).Weight.Data);
        Assert.Equal(Layer(expected, 1).Weight.Data, Layer(loaded, 1).Weight.Data);
    }

    [Fact]
    public void Checksums_for_some_tensors_only_or_for_a_tensor_not_in_the_file_are_rejected()
    {
        var path = SavedDense();
        var partial = _dir.File("partial.safetensors");
        RewriteHeader(path, partial, metadata => metadata.Remove(SafeTensorsFile.ChecksumKeyPrefix + "first.bias"));
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(partial).Dispose());
        Assert.Equal("first.bias", e.TensorName);

        var ghost = _dir.File("ghost.safetensors");
        RewriteHeader(path, ghost, metadata => metadata[SafeTensorsFile.ChecksumKeyPrefix + "ghost"] = "0123456789abcdef");
        Assert.Contains("'ghost'", Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(ghost).Dispose()).Message);
    }

    /// <summary>Copies a file with its metadata edited (the header is re-padded; the data is unchanged).</summary>
    private static void RewriteHeader(string from, string to, Action<JsonObject> edit)
    {
        var bytes = File.ReadAllBytes(from);
        int headerSize = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonNode.Parse(Encoding.UTF8.GetString(bytes, 8, headerSize))!.AsObject();
        edit(header["__metadata__"]!.AsObject());
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

    // ---- memory ----

    [Fact]
    public void Loading_a_256_MiB_model_allocates_at_most_1_2x_the_file_and_initializes_nothing()
    {
        var source = new IoQuarterGig();
        source.Initialize(11);
        var path = _dir.File("quarter.safetensors");
        source.Save(path);
        long fileBytes = new FileInfo(path).Length;

        long before = GC.GetAllocatedBytesForCurrentThread();
        var constructed = new IoQuarterGig();
        long construction = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(construction < 1 << 20, $"constructing the model allocated {construction} bytes: its weights were allocated before being loaded");
        Assert.True(Layer(constructed, 0).InitializationPending);

        before = GC.GetAllocatedBytesForCurrentThread();
        var loaded = IoQuarterGig.Load(path);
        long load = GC.GetAllocatedBytesForCurrentThread() - before;
        double ratio = (double)load / fileBytes;
        output.WriteLine($"Load allocated {load:N0} bytes for a {fileBytes:N0}-byte file: {ratio:0.000}x");
        Assert.True(ratio <= 1.2, $"Load allocated {ratio:0.000}x the file size");

        Assert.False(Layer(loaded, 0).InitializationPending);
        Assert.True(Layer(source, 0).Weight.Data.AsSpan().SequenceEqual(Layer(loaded, 0).Weight.Data));
        Assert.Equal(Layer(source, 0).Bias!.Data, Layer(loaded, 0).Bias!.Data);
    }

    // ---- 2 GiB tensors ----

    [Fact]
    public void A_2_GiB_weight_saves_and_loads()
    {
        // Linear(16384, 32768): 2^29 floats = 2^31 bytes, one more byte than a span can count. The file is written
        // and read once (about 4 GiB of memory for the two models) and deleted at the end.
        // Memory-backed /dev/shm when it has room: on this machine's virtual disk the page cache does not keep the
        // file, and reading 2 GiB back from the disk took over 10 s.
        var path = _dir.File("two-gig.safetensors");
        if (Directory.Exists("/dev/shm") && new DriveInfo("/dev/shm").AvailableFreeSpace > (4L << 30))
            path = Path.Combine("/dev/shm", $"condense-two-gig-{Environment.ProcessId}.safetensors");
        try
        {
            var clock = Stopwatch.StartNew();
            var model = new IoTwoGig();
            var weight = new float[1 << 29];     // zeros: a random initialization of 2^29 floats would take seconds
            Layer(model, 0).AdoptLoaded(null, weight, null);
            Assert.Same(weight, Layer(model, 0).Weight.Data);
            output.WriteLine($"init {clock.ElapsedMilliseconds} ms");
            Assert.Equal(1 << 29, weight.Length);
            weight[0] = 1.5f;
            weight[(1 << 28) + 3] = -2.5f;
            weight[^1] = 3.25f;
            clock.Restart();
            long before = GC.GetAllocatedBytesForCurrentThread();
            model.Save(path);
            long saveAllocated = GC.GetAllocatedBytesForCurrentThread() - before;
            output.WriteLine($"save {clock.ElapsedMilliseconds} ms, allocated {saveAllocated:N0} bytes");
            Assert.True(saveAllocated < 16 << 20, $"Save allocated {saveAllocated} bytes: it copied the weight");
            Assert.Equal((1L << 31) + 8, new FileInfo(path).Length - HeaderBytes(path));

            clock.Restart();
            before = GC.GetAllocatedBytesForCurrentThread();
            var loaded = IoTwoGig.Load(path);
            double ratio = (double)(GC.GetAllocatedBytesForCurrentThread() - before) / new FileInfo(path).Length;
            output.WriteLine($"load {clock.ElapsedMilliseconds} ms, allocated {ratio:0.0000}x the file size");
            Assert.True(ratio <= 1.2, $"Load allocated {ratio:0.000}x the file size");
            var read = Layer(loaded, 0).Weight.Data;
            Assert.Equal(1.5f, read[0]);
            Assert.Equal(-2.5f, read[(1 << 28) + 3]);
            Assert.Equal(3.25f, read[^1]);
            Assert.True(weight.AsSpan().SequenceEqual(read));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static long HeaderBytes(string path)
    {
        using var stream = File.OpenRead(path);
        Span<byte> size = stackalloc byte[8];
        stream.ReadExactly(size);
        return (long)BinaryPrimitives.ReadUInt64LittleEndian(size);
    }

    // ---- truncation by another process ----

    private static void TruncateFromAnotherHandle(string path, long length)
    {
        // What `cp new.safetensors model.safetensors` does to a file being read: truncate it in place.
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        RandomAccess.SetLength(handle, length);
    }

    [Fact]
    public void A_file_truncated_while_open_gives_a_format_error_naming_it_not_a_crash()
    {
        var path = SavedDense();
        using var file = SafeTensorsFile.Open(path);
        var weight = file.Get("first.weight");
        long dataStart = new FileInfo(path).Length - file.Tensors.Sum(t => t.ByteLength);
        TruncateFromAnotherHandle(path, dataStart + 4096);

        var read = Assert.Throws<SafeTensorsFormatException>(() => file.ReadF32(weight.Name));
        Assert.Equal(path, read.FilePath);
        Assert.Contains("truncated", read.Message);
        var mapped = Assert.Throws<SafeTensorsFormatException>(() => file.GetBytes(weight.Name).Length);
        Assert.Equal(path, mapped.FilePath);
    }

    [Fact]
    public void A_file_truncated_during_Load_gives_a_format_error_naming_it_not_a_crash()
    {
        var path = SavedDense("truncated-during-load.safetensors");
        ModelFile.OpenedForTests = opened =>
        {
            if (opened == path) TruncateFromAnotherHandle(path, 8192);
        };
        try
        {
            var e = Assert.Throws<SafeTensorsFormatException>(() => IoDense.Load(path));
            Assert.Equal(path, e.FilePath);
            Assert.Contains("truncated or replaced", e.Message);
        }
        finally
        {
            ModelFile.OpenedForTests = null;
        }
    }

    [Fact]
    public void GetBytes_after_the_file_was_replaced_by_a_shorter_copy_refuses()
    {
        var path = SavedDense("copied-over.safetensors");
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(file.Get("second.weight").ByteLength, file.GetBytes("second.weight").Length);  // maps the file
        TruncateFromAnotherHandle(path, 4096);
        Assert.Equal(path, Assert.Throws<SafeTensorsFormatException>(() => file.GetBytes("first.weight").Length).FilePath);
    }

    // ---- temp files ----

    private static int DeadProcessId()
    {
        using var process = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        process.WaitForExit();
        return process.Id;
    }

    [Fact]
    public void Save_reclaims_temp_files_of_killed_writers_of_the_same_target_only()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return;
        var path = _dir.File("model.safetensors");
        int dead = DeadProcessId();
        using var live = Process.Start(new ProcessStartInfo("sleep", "60") { UseShellExecute = false })!;
        try
        {
            string Temp(string target, int pid, int n)
            {
                var temp = _dir.File($".{target}.{pid}.{n}.tmp");
                File.WriteAllBytes(temp, new byte[4096]);
                return temp;
            }

            var stale1 = Temp("model.safetensors", dead, 1);
            var stale2 = Temp("model.safetensors", dead, 7);
            var liveWriter = Temp("model.safetensors", live.Id, 1);
            var otherTarget = Temp("other.safetensors", dead, 1);
            var held = Temp("model.safetensors", dead, 9);
            using (new FileStream(held, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            {
                var writer = new SafeTensorsWriter();
                writer.AddF32("w", [1f, 2f], 2);
                writer.WriteTo(path);
            }

            Assert.False(File.Exists(stale1));
            Assert.False(File.Exists(stale2));
            Assert.True(File.Exists(liveWriter), "the temp file of a live writer was removed");
            Assert.True(File.Exists(otherTarget), "a temp file of another target was removed");
            Assert.True(File.Exists(held), "a temp file held open by a writer was removed");
            using var file = SafeTensorsFile.Open(path);
            Assert.Equal([1f, 2f], file.ReadF32("w"));
        }
        finally
        {
            live.Kill();
            live.WaitForExit();
        }
    }

    [Fact]
    public void Save_flushes_the_directory_after_the_rename()
    {
        var path = _dir.File("flushed.safetensors");
        var flushed = new List<string>();
        SafeTensorsWriter.DirectoryFlushedForTests = d =>
        {
            if (d == _dir.Path) lock (flushed) flushed.Add(d);
        };
        try
        {
            new IoDense().Save(path);
        }
        finally
        {
            SafeTensorsWriter.DirectoryFlushedForTests = null;
        }
        Assert.Single(flushed);
        Assert.Equal(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), DirectoryFlush.Flush(_dir.Path));
    }
}
