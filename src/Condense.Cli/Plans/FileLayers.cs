using System.Globalization;
using System.Text;
using Condense.Compression;

namespace Condense.Cli.Plans;

/// <summary>A Linear or Conv2d layer found in a file: a weight tensor of rank 2 or 4 and its optional bias.</summary>
/// <param name="FilePrefix">The tensors' common name before <c>.weight</c>, as the file spells it.</param>
/// <param name="Path">The same name as a Condense layer path: numeric segments become indices (<c>layer.0.query</c> -> <c>layer[0].query</c>).</param>
/// <param name="InFeatures">Inputs per output row: in for Linear, in channels x kh x kw for Conv2d.</param>
public sealed record FileLayer(string FilePrefix, string Path, LayerKind Kind, int OutFeatures, int InFeatures, int InChannels, int KernelSize, bool HasBias)
{
    public string ShapeText => Kind == LayerKind.Conv2d
        ? string.Create(CultureInfo.InvariantCulture, $"Conv2d {OutFeatures}x{InChannels}x{KernelSize}x{KernelSize}")
        : string.Create(CultureInfo.InvariantCulture, $"Linear {OutFeatures}x{InFeatures}");
}

/// <summary>Finds the layers a Condense model would declare for a file's tensors.</summary>
public static class FileLayers
{
    /// <summary>
    /// Every <c>X.weight</c> of rank 2 ([out, in], PyTorch's Linear layout) or rank 4 with a square kernel
    /// ([out, in, k, k], Conv2d) is a layer; <c>X.bias</c> of shape [out] is its bias. Everything else (embeddings,
    /// norms, buffers) is returned in <paramref name="others"/>.
    /// </summary>
    public static IReadOnlyList<FileLayer> Find(IReadOnlyList<FileTensor> tensors, out IReadOnlyList<FileTensor> others)
    {
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var layers = new List<FileLayer>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!t.Name.EndsWith(".weight", StringComparison.Ordinal) || !t.IsFloat) continue;
            string prefix = t.Name[..^".weight".Length];
            var shape = t.ModelShape;
            bool linear = shape.Length == 2 && !IsEmbeddingName(prefix);
            bool conv = shape.Length == 4 && shape[2] == shape[3];
            if (!linear && !conv) continue;
            if (shape.Any(d => d <= 0 || d > int.MaxValue)) continue;
            int outFeatures = (int)shape[0];
            int inChannels = (int)shape[1];
            int kernel = conv ? (int)shape[2] : 0;
            long inFeatures = conv ? (long)inChannels * kernel * kernel : inChannels;
            if (inFeatures > int.MaxValue) continue;
            bool hasBias = byName.TryGetValue(prefix + ".bias", out var bias) && bias.IsFloat && bias.Shape.Length == 1 && bias.Shape[0] == outFeatures;
            layers.Add(new FileLayer(prefix, ToLayerPath(prefix), conv ? LayerKind.Conv2d : LayerKind.Linear, outFeatures, (int)inFeatures, inChannels, kernel, hasBias));
            used.Add(t.Name);
            if (hasBias) used.Add(prefix + ".bias");
        }
        others = tensors.Where(t => !used.Contains(t.Name)).ToList();
        return layers;
    }

    /// <summary>
    /// The layers of a Condense model file, from its recorded plan (<c>condense.plan</c>: one
    /// <c>path kind shape[ bias] technique</c> line per layer): a compressed file has no <c>.weight</c> tensor to read
    /// shapes from.
    /// </summary>
    public static IReadOnlyList<FileLayer> FromCondensePlan(string plan)
    {
        var layers = new List<FileLayer>();
        foreach (var line in plan.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ');
            if (parts.Length < 3 || !Enum.TryParse<LayerKind>(parts[1], out var kind)) continue;
            var dims = parts[2].Split('x').Select(d => int.TryParse(d, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v : -1).ToArray();
            if (dims.Any(d => d <= 0)) continue;
            bool bias = parts.Length > 3 && parts[3] == "bias";
            if (kind == LayerKind.Conv2d && dims.Length == 4)
                layers.Add(new FileLayer(parts[0], parts[0], kind, dims[0], dims[1] * dims[2] * dims[3], dims[1], dims[2], bias));
            else if (dims.Length == 2)
                layers.Add(new FileLayer(parts[0], parts[0], kind, dims[0], dims[1], dims[1], 0, bias));
        }
        return layers;
    }

    /// <summary><c>encoder.layer.0.attention.self.query</c> -> <c>encoder.layer[0].attention.self.query</c>.</summary>
    public static string ToLayerPath(string filePrefix)
    {
        var path = new StringBuilder();
        foreach (var segment in filePrefix.Split('.'))
        {
            if (segment.Length > 0 && segment.All(char.IsAsciiDigit) && path.Length > 0) path.Append('[').Append(segment).Append(']');
            else
            {
                if (path.Length > 0) path.Append('.');
                path.Append(segment);
            }
        }
        return path.ToString();
    }

    // A [vocab, hidden] table is not a Linear layer: it is looked up, not multiplied.
    private static bool IsEmbeddingName(string prefix)
    {
        string last = prefix[(prefix.LastIndexOf('.') + 1)..];
        return last.Contains("embed", StringComparison.OrdinalIgnoreCase) || last.Equals("wte", StringComparison.Ordinal) || last.Equals("wpe", StringComparison.Ordinal);
    }
}
