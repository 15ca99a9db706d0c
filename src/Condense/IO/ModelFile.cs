using System.Globalization;
using Condense.Catalogue;
using Condense.Compression;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.IO;

/// <summary>
/// A model file that does not agree with the compiled plan. <see cref="Problems"/> has every problem found; the
/// message lists the first <see cref="MaxListedProblems"/> and counts the rest.
/// </summary>
public sealed class ModelFileException : IOException
{
    /// <summary>How many problems the message spells out; the rest are counted (all are in <see cref="Problems"/>).</summary>
    public const int MaxListedProblems = 20;

    public ModelFileException(string path, IReadOnlyList<string> problems)
        : base(BuildMessage(path, problems))
    {
        FilePath = path;
        Problems = problems;
    }

    /// <summary>The model file.</summary>
    public string FilePath { get; }

    /// <summary>One line per problem, each naming the tensor or layer and what was expected.</summary>
    public IReadOnlyList<string> Problems { get; }

    private static string BuildMessage(string path, IReadOnlyList<string> problems)
    {
        var text = new System.Text.StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"{path} does not fit the compiled plan ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):");
        for (int i = 0; i < Math.Min(problems.Count, MaxListedProblems); i++)
            text.Append("\n  - ").Append(problems[i]);
        if (problems.Count > MaxListedProblems)
            text.Append(CultureInfo.InvariantCulture, $"\n  ... and {problems.Count - MaxListedProblems} more (see Problems)");
        return text.ToString();
    }
}

/// <summary>
/// Saves and loads a model's layers as safetensors (layout in docs/format.md). Every layer is stored dense
/// (<c>.weight</c>, F32) or group-quantized (<c>.weight.qdata</c>, <c>.weight.qscale</c>, <c>.weight.qzero</c>),
/// biases as F32. Load checks every tensor's name, dtype and shape against the compiled plan and reports all
/// mismatches at once; the model is changed only when everything checks out.
/// </summary>
public static class ModelFile
{
    /// <summary>
    /// Value of the <c>condense.format</c> metadata key that Save writes. Format 2 lets symmetric groups use all 2^b
    /// codes with a signed scale; format 1 files (positive scales, codes 1..2^b - 1) decode identically under the
    /// same formula and are read too. A reader of format 1 rejects format 2 by its version, not by a negative scale.
    /// </summary>
    public const string FormatVersion = "2";

    /// <summary>Versions Load accepts: the current one and format 1, whose layout and decoding are a subset of it.</summary>
    private static readonly string[] ReadableVersions = ["1", FormatVersion];

    private const string FormatKey = "condense.format";
    private const string ModelKey = "condense.model";
    private const string PlanKey = "condense.plan";

    /// <summary>Test seam: called with the path once Load has opened (and validated the header of) a file.</summary>
    internal static Action<string>? OpenedForTests { get; set; }

    /// <summary>Unexpected tensors named one by one; past this many they are counted in one line.</summary>
    internal const int MaxListedUnexpectedTensors = 50;


    /// <summary>
    /// Writes the layers to <paramref name="path"/> through <see cref="SafeTensorsWriter"/> (atomic, with per-tensor
    /// checksums). The layers' arrays are written as they are, not copied first.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="plan">The compiled plan.</param>
    /// <param name="layers">The planned layers, in the plan's order.</param>
    /// <param name="parameterLayers">
    /// The layers outside the plan (<see cref="Module.ParameterLayers"/>: LayerNorm, Embedding, user layers), or null
    /// for none: each parameter is written as a dense F32 tensor named <c>{path}.{parameter}</c>
    /// (<c>blocks[0].attentionNorm.weight</c>), as Linear weights are named.
    /// </param>
    public static void Save(string path, CompressionPlan plan, IReadOnlyList<NamedLayer> layers, IReadOnlyList<NamedLayer>? parameterLayers = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layers);
        parameterLayers ??= [];
        CheckRegistry(plan, layers);
        // A live subspace model may not have written its latest d into the layers yet (the optimizer steps d after the
        // forward): write theta0 + P d now, so the file holds the weights the subspace model computes.
        foreach (var live in layers.Select(l => l.Layer.LiveSubspace).OfType<Subspace.SubspaceModel>().Distinct())
            live.WriteCurrentParameters();

        var writer = new SafeTensorsWriter();
        writer.SetMetadata(FormatKey, FormatVersion);
        writer.SetMetadata(ModelKey, plan.ModelName);
        writer.SetMetadata(PlanKey, plan.Signature);
        for (int i = 0; i < layers.Count; i++)
        {
            var lp = plan.Layers[i];
            var (storage, dense, bias) = Parts(layers[i].Layer);
            if (storage is null)
            {
                TensorChecks.ThrowIfNotFinite(dense!.Data, lp.Path + ".weight", lp.WeightShape);
                writer.AddBorrowed(lp.Path + ".weight", SafeTensorDType.F32, dense.Data, Longs(lp.WeightShape));
            }
            else
            {
                StoredWeights.Write(writer, lp.Path + ".weight", storage, lp);
            }
            if (bias is not null)
            {
                TensorChecks.ThrowIfNotFinite(bias.Data, lp.Path + ".bias", [lp.OutFeatures]);
                writer.AddBorrowed(lp.Path + ".bias", SafeTensorDType.F32, bias.Data, [lp.OutFeatures]);
            }
        }
        foreach (var (name, tensor) in DenseParameters(parameterLayers))
        {
            TensorChecks.ThrowIfNotFinite(tensor.Data, name, tensor.Shape);
            writer.AddBorrowed(name, SafeTensorDType.F32, tensor.Data, Longs(tensor.Shape));
        }
        writer.WriteTo(path);
    }

    /// <summary>
    /// Checks <paramref name="path"/> against <paramref name="plan"/> and loads it into <paramref name="layers"/>.
    /// The file is read through its handle, never mapped (a file truncated or replaced meanwhile gives a
    /// <see cref="SafeTensorsFormatException"/> naming it), each tensor straight into the array the layer keeps,
    /// and verified against its checksum when the file has them. Layers whose weights were never used (a freshly
    /// constructed model) adopt the arrays read, so they are neither initialized nor copied: a load allocates
    /// little more than the file's size.
    /// </summary>
    /// <exception cref="ModelFileException">The file does not fit the plan (every problem is listed); nothing was changed.</exception>
    /// <exception cref="SafeTensorsFormatException">The file is malformed, fails a checksum, or shrank while being read.</exception>
    /// <param name="path">The file to read.</param>
    /// <param name="plan">The compiled plan.</param>
    /// <param name="layers">The planned layers, in the plan's order.</param>
    /// <param name="parameterLayers">
    /// The layers outside the plan (<see cref="Module.ParameterLayers"/>), or null for none: each parameter is read from
    /// its dense F32 tensor <c>{path}.{parameter}</c>, checked against the tensor's shape in the model, and copied into it.
    /// </param>
    public static void Load(string path, CompressionPlan plan, IReadOnlyList<NamedLayer> layers, IReadOnlyList<NamedLayer>? parameterLayers = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layers);
        parameterLayers ??= [];
        CheckRegistry(plan, layers);
        var parameters = DenseParameters(parameterLayers);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file {path} does not exist.", path);

        using var file = SafeTensorsFile.Open(path);
        OpenedForTests?.Invoke(path);
        var problems = new List<string>();
        if (!file.Metadata.TryGetValue(FormatKey, out var version))
            problems.Add($"metadata key '{FormatKey}' is missing: this is not a Condense model file (expected format {FormatVersion})");
        else if (Array.IndexOf(ReadableVersions, version) < 0)
            problems.Add($"format version {version} is not supported; this version of Condense reads formats {string.Join(" and ", ReadableVersions)}: save the model again with a Condense that writes one of them");

        var filePlan = ParseSignature(file.Metadata.GetValueOrDefault(PlanKey));
        var used = new HashSet<string>(StringComparer.Ordinal);
        var reader = new StoredWeights(file, used, problems);
        var assignments = new List<Action>();
        for (int i = 0; i < plan.Layers.Count; i++)
        {
            var lp = plan.Layers[i];
            string? fileLine = null;
            if (filePlan is not null && filePlan.TryGetValue(lp.Path, out fileLine) && !SameShape(fileLine, lp))
            {
                problems.Add($"layer '{lp.Path}': the file was saved from '{fileLine}', the compiled plan has '{lp.Signature}'");
                MarkUsed(lp.Path, used);
                continue;
            }
            var action = LoadLayer(file, reader, lp, fileLine, layers[i].Layer, used, problems);
            if (action is not null) assignments.Add(action);
        }
        foreach (var (name, tensor) in parameters)
        {
            used.Add(name);
            if (reader.DenseF32(name, tensor.Shape) is { } values)
                assignments.Add(() => values.CopyTo(tensor.Data, 0));
        }
        int unexpected = 0;
        foreach (var t in file.Tensors)
        {
            if (used.Contains(t.Name)) continue;
            if (++unexpected <= MaxListedUnexpectedTensors)
                problems.Add($"tensor '{t.Name}' is not part of the compiled plan of {plan.ModelName}");
        }
        if (unexpected > MaxListedUnexpectedTensors)
            problems.Add($"{unexpected - MaxListedUnexpectedTensors} more tensors are not part of the compiled plan of {plan.ModelName} ({unexpected} in all)");

        if (problems.Count > 0) throw new ModelFileException(path, problems);
        foreach (var assign in assignments) assign();
    }

    private static Action? LoadLayer(SafeTensorsFile file, StoredWeights reader, LayerPlan lp, string? fileLine, Layer layer, HashSet<string> used, List<string> problems)
    {
        int before = problems.Count;
        string w = lp.Path + ".weight";
        float[]? dense = null;
        IWeightStorage? compressed = null;
        if (file.TryGet(w, out _))
        {
            dense = reader.DenseF32(w, lp.WeightShape);
        }
        else if (StoredWeights.CompressedSuffixes.Any(suffix => file.TryGet(w + suffix, out _)))
        {
            string saved = fileLine is null ? "compressed" : fileLine[(lp.ShapeSignature.Length + 1)..];
            if (lp.Technique == LayerTechnique.Dense || (fileLine is not null && fileLine != lp.Signature))
            {
                problems.Add($"layer '{lp.Path}': the file stores it {saved}, the compiled plan has {lp.TechniqueText}; load the dense weights saved before Compress, or rebuild with the plan that saved this file");
                MarkUsed(lp.Path, used);
            }
            else
            {
                compressed = reader.Read(lp);
            }
        }
        else
        {
            problems.Add($"tensor '{w}' is missing: expected F32 {ShapeText(lp.WeightShape)}" +
                         (lp.Technique == LayerTechnique.Dense ? "" : $" or the parts of its {lp.TechniqueText} weight"));
        }

        float[]? bias = lp.HasBias ? reader.DenseF32(lp.Path + ".bias", [lp.OutFeatures]) : null;
        if (problems.Count > before) return null;

        var weighted = (WeightedLayer)layer;
        return () => weighted.AdoptLoaded(compressed, dense, bias);
    }

    /// <summary>Marks a layer's tensors as seen, so a layer reported once is not reported again tensor by tensor.</summary>
    private static void MarkUsed(string path, HashSet<string> used)
    {
        used.Add(path + ".weight");
        used.Add(path + ".bias");
        foreach (var suffix in StoredWeights.CompressedSuffixes) used.Add(path + ".weight" + suffix);
    }

    /// <summary>The parameters of the layers outside the plan by full name; two with one name are refused (the file could hold only one).</summary>
    private static List<(string Name, Tensor Tensor)> DenseParameters(IReadOnlyList<NamedLayer> parameterLayers)
    {
        var list = new List<(string, Tensor)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (path, layer) in parameterLayers)
            foreach (var p in layer.Parameters)
            {
                string name = path + "." + p.Name;
                if (!names.Add(name))
                    throw new ArgumentException($"Two parameters are named '{name}' ({layer.GetType().Name} at '{path}'); give each parameter of a layer its own name.", nameof(parameterLayers));
                list.Add((name, p.Value));
            }
        return list;
    }

    private static void CheckRegistry(CompressionPlan plan, IReadOnlyList<NamedLayer> layers)
    {
        bool same = layers.Count == plan.Layers.Count;
        for (int i = 0; same && i < layers.Count; i++)
            same = string.Equals(layers[i].Path, plan.Layers[i].Path, StringComparison.Ordinal);
        if (!same)
            throw new ArgumentException(
                $"The layers given ({string.Join(", ", layers.Select(l => l.Path))}) are not the layers of the plan of {plan.ModelName} ({string.Join(", ", plan.Layers.Select(l => l.Path))}).",
                nameof(layers));
    }

    private static (IWeightStorage? Storage, Tensor? Dense, Tensor? Bias) Parts(Layer layer) => layer is WeightedLayer w
        ? (w.CompressedWeight, w.CompressedWeight is null ? w.Weight : null, w.Bias)
        : throw new NotSupportedException($"{layer.GetType().Name} layers cannot be saved by this version of Condense.");

    /// <summary>The plan lines of a saved file, by layer path (null when the file has none).</summary>
    private static Dictionary<string, string>? ParseSignature(string? signature)
    {
        if (signature is null) return null;
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in signature.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0) result[line[..space]] = line;
        }
        return result;
    }

    /// <summary>Whether a saved plan line has the same kind, shape and bias as the compiled layer (the technique may differ).</summary>
    private static bool SameShape(string fileLine, LayerPlan lp)
    {
        string prefix = lp.ShapeSignature + " ";
        return fileLine.StartsWith(prefix, StringComparison.Ordinal)
               && !fileLine.AsSpan(prefix.Length).StartsWith("bias", StringComparison.Ordinal);
    }

    private static long[] Longs(int[] shape) => Array.ConvertAll(shape, d => (long)d);

    private static string ShapeText(int[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

}
