using System.Globalization;
using Condense.IO;

namespace Condense.Cli;

/// <summary>What kind of file a path holds.</summary>
public enum ModelFileFormat
{
    /// <summary>A safetensors file written by PyTorch, Hugging Face or any other writer.</summary>
    SafeTensors,
    /// <summary>A safetensors file written by Condense's Save: it carries the plan and per-tensor checksums.</summary>
    Condense,
    /// <summary>An ONNX model: its initializers (MatMul weights stored [in, out] are seen as [out, in]).</summary>
    Onnx,
}

/// <summary>One tensor of a file: its name, element type, shape as stored and stored bytes.</summary>
/// <param name="Name">The name layers and imports use: the file's own, or for an ONNX weight the exporter left numbered, the name recovered from the graph.</param>
/// <param name="IsFloat">Whether it holds real numbers (a weight can be read from it); integer tensors are buffers or graph constants.</param>
/// <param name="LayerShape">The shape as Condense sees it ([out, in] for an ONNX MatMul weight stored [in, out]); null = as stored.</param>
/// <param name="StoredName">The name in the file when it differs from <paramref name="Name"/>.</param>
public sealed record FileTensor(string Name, string DType, long[] Shape, long Bytes, bool IsFloat = true, long[]? LayerShape = null, string? StoredName = null)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => Format(Shape);
    /// <summary>What the layers of a model see: <see cref="LayerShape"/> or the stored shape.</summary>
    public long[] ModelShape => LayerShape ?? Shape;
    internal static string Format(long[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}

/// <summary>A model file's tensors and metadata, read from its header only.</summary>
public sealed class ModelFileListing
{
    private ModelFileListing(string path, ModelFileFormat format, IReadOnlyList<FileTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Path = path;
        Format = format;
        Tensors = tensors;
        Metadata = metadata;
    }

    public string Path { get; }
    public ModelFileFormat Format { get; }
    public IReadOnlyList<FileTensor> Tensors { get; }
    /// <summary>The header's metadata (safetensors <c>__metadata__</c>), checksum keys left out.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Reads a file's header.</summary>
    /// <exception cref="CliException">Missing, unreadable or malformed file (exit code <see cref="ExitCodes.BadFile"/>).</exception>
    public static ModelFileListing Open(string path)
    {
        if (Directory.Exists(path)) throw new CliException(ExitCodes.BadFile, $"'{path}' is a directory; give a model file (.safetensors).");
        if (!File.Exists(path)) throw new CliException(ExitCodes.BadFile, $"'{path}' does not exist.");
        // One detection for the tool and LoadWeights: the import reader's (content first, then extension).
        Import.WeightFileFormat detected;
        try { detected = Import.WeightFile.DetectFormat(path); }
        catch (Import.WeightFileFormatException e) { throw new CliException(ExitCodes.BadFile, $"'{path}' is not a model file: {e.Message}"); }
        if (detected == Import.WeightFileFormat.Onnx) return OpenOnnx(path);
        try
        {
            using var file = SafeTensorsFile.Open(path);
            var tensors = file.Tensors
                .Select(t => new FileTensor(t.Name, SafeTensorDTypes.Name(t.DType), t.Shape, t.ByteLength))
                .ToList();
            var metadata = file.Metadata
                .Where(kv => !kv.Key.StartsWith(SafeTensorsFile.ChecksumKeyPrefix, StringComparison.Ordinal))
                .ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
            var format = metadata.ContainsKey(CondenseFile.FormatKey) ? ModelFileFormat.Condense : ModelFileFormat.SafeTensors;
            return new ModelFileListing(path, format, tensors, metadata);
        }
        catch (SafeTensorsFormatException e)
        {
            throw new CliException(ExitCodes.BadFile, $"'{path}' is not a readable safetensors file: {e.Message}");
        }
        catch (IOException e)
        {
            throw new CliException(ExitCodes.BadFile, $"'{path}' cannot be read: {e.Message}");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new CliException(ExitCodes.BadFile, $"'{path}' cannot be read: {e.Message}");
        }
    }

    private static ModelFileListing OpenOnnx(string path)
    {
        try
        {
            using var file = Import.WeightFile.Open(path, Import.WeightFileFormat.Onnx);
            var tensors = file.Tensors.Select(t => new FileTensor(t.Name, t.DType, t.Shape, OnnxBytes(t.DType, t.Shape), t.IsFloatingPoint,
                t.Layout == Import.StoredLayout.InOut ? t.ImportShape : null, t.Name == t.SourceName ? null : t.SourceName)).ToList();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var model = file.Onnx!;
            metadata["producer"] = (model.ProducerName + " " + model.ProducerVersion).Trim();
            metadata["opset"] = model.OpsetVersion.ToString(CultureInfo.InvariantCulture);
            metadata["nodes"] = model.Nodes.Count.ToString(CultureInfo.InvariantCulture);
            return new ModelFileListing(path, ModelFileFormat.Onnx, tensors, metadata);
        }
        catch (Import.WeightFileFormatException e)
        {
            throw new CliException(ExitCodes.BadFile, $"'{path}' is not a readable ONNX model: {e.Message}");
        }
        catch (Import.WeightImportException e)
        {
            throw new CliException(ExitCodes.BadFile, $"'{path}' is not a readable ONNX model: {e.Message}");
        }
        catch (IOException e)
        {
            throw new CliException(ExitCodes.BadFile, $"'{path}' cannot be read: {e.Message}");
        }
    }

    private static long OnnxBytes(string dtype, long[] shape)
    {
        int size = dtype switch
        {
            "Double" or "Int64" or "UInt64" or "Complex64" => 8,
            "Complex128" => 16,
            "Float" or "Int32" or "UInt32" => 4,
            "Float16" or "BFloat16" or "Int16" or "UInt16" => 2,
            _ => 1,
        };
        return shape.Aggregate(1L, (a, b) => a * b) * size;
    }

    /// <summary>Checks every tensor against its recorded checksum; returns the failures (tensor, message).</summary>
    public static IReadOnlyList<(string Tensor, string Problem)> VerifyChecksums(string path, out int verified)
    {
        var failures = new List<(string, string)>();
        verified = 0;
        using var file = SafeTensorsFile.Open(path);
        foreach (var tensor in file.Tensors)
        {
            try
            {
                if (tensor.ByteLength > int.MaxValue)
                {
                    failures.Add((tensor.Name, $"{tensor.ByteLength} bytes: too large to verify in one span (limit {int.MaxValue})"));
                    continue;
                }
                _ = file.GetBytes(tensor.Name);
                verified++;
            }
            catch (SafeTensorsFormatException e)
            {
                failures.Add((tensor.Name, e.Message));
            }
        }
        return failures;
    }
}

/// <summary>The metadata keys Condense's Save writes (docs/format.md).</summary>
internal static class CondenseFile
{
    public const string FormatKey = "condense.format";
    public const string ModelKey = "condense.model";
    public const string PlanKey = "condense.plan";
}
