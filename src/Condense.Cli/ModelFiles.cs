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
}

/// <summary>One tensor of a file: its name, element type, shape and stored bytes.</summary>
public sealed record FileTensor(string Name, string DType, long[] Shape, long Bytes)
{
    public long Elements => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => "[" + string.Join(", ", Shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
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
