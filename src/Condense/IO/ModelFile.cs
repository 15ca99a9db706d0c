using System.Globalization;
using Condense.Catalogue;
using Condense.Compression;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.IO;

/// <summary>A model file that does not agree with the compiled plan; the message lists every problem found.</summary>
public sealed class ModelFileException : IOException
{
    public ModelFileException(string path, IReadOnlyList<string> problems)
        : base($"{path} does not fit the compiled plan ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):\n  - " + string.Join("\n  - ", problems))
    {
        Problems = problems;
    }

    /// <summary>One line per problem, each naming the tensor or layer and what was expected.</summary>
    public IReadOnlyList<string> Problems { get; }
}

/// <summary>
/// Saves and loads a model's layers as safetensors (layout in docs/format.md). Every layer is stored dense
/// (<c>.weight</c>, F32) or group-quantized (<c>.weight.qdata</c>, <c>.weight.qscale</c>, <c>.weight.qzero</c>),
/// biases as F32. Load checks every tensor's name, dtype and shape against the compiled plan and reports all
/// mismatches at once; the model is changed only when everything checks out.
/// </summary>
public static class ModelFile
{
    /// <summary>Value of the <c>condense.format</c> metadata key.</summary>
    public const string FormatVersion = "1";

    private const string FormatKey = "condense.format";
    private const string ModelKey = "condense.model";
    private const string PlanKey = "condense.plan";

    /// <summary>Every tensor name a layer can own, after its path.</summary>
    private static readonly string[] LayerTensorSuffixes = [".weight", ".weight.qdata", ".weight.qscale", ".weight.qzero", ".bias"];

    public static void Save(string path, CompressionPlan plan, IReadOnlyList<NamedLayer> layers)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layers);
        CheckRegistry(plan, layers);

        var writer = new SafeTensorsWriter();
        writer.SetMetadata(FormatKey, FormatVersion);
        writer.SetMetadata(ModelKey, plan.ModelName);
        writer.SetMetadata(PlanKey, plan.Signature);
        for (int i = 0; i < layers.Count; i++)
        {
            var lp = plan.Layers[i];
            var (storage, dense, bias) = Parts(layers[i].Layer);
            switch (storage)
            {
                case null:
                    TensorChecks.ThrowIfNotFinite(dense!.Data, lp.Path + ".weight", lp.WeightShape);
                    writer.AddF32(lp.Path + ".weight", dense.Data, Longs(lp.WeightShape));
                    break;
                case GroupQuantizedWeight q:
                    int groups = KernelCatalogue.GroupsPerRow(lp.InFeatures, q.Scheme.GroupSize);
                    writer.Add(lp.Path + ".weight.qdata", SafeTensorDType.U8, [lp.OutFeatures, KernelCatalogue.PackedRowBytes(lp.InFeatures, q.Scheme.Bits)], q.Packed);
                    writer.AddF16(lp.Path + ".weight.qscale", q.Scales, lp.OutFeatures, groups);
                    if (q.ZeroPoints is { } zeros)
                        writer.Add(lp.Path + ".weight.qzero", SafeTensorDType.U8, [lp.OutFeatures, groups], zeros);
                    break;
                default:
                    throw new NotSupportedException($"Layer '{lp.Path}' stores its weight as {storage.Format}, which this version of Condense cannot save.");
            }
            if (bias is not null)
            {
                TensorChecks.ThrowIfNotFinite(bias.Data, lp.Path + ".bias", [lp.OutFeatures]);
                writer.AddF32(lp.Path + ".bias", bias.Data, lp.OutFeatures);
            }
        }
        writer.WriteTo(path);
    }

    public static void Load(string path, CompressionPlan plan, IReadOnlyList<NamedLayer> layers)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(layers);
        CheckRegistry(plan, layers);
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file {path} does not exist.", path);

        using var file = SafeTensorsFile.Open(path);
        var problems = new List<string>();
        if (!file.Metadata.TryGetValue(FormatKey, out var version))
            problems.Add($"metadata key '{FormatKey}' is missing: this is not a Condense model file (expected format {FormatVersion})");
        else if (version != FormatVersion)
            problems.Add($"format version {version} is not supported; this version of Condense reads format {FormatVersion}");

        var filePlan = ParseSignature(file.Metadata.GetValueOrDefault(PlanKey));
        var used = new HashSet<string>(StringComparer.Ordinal);
        var assignments = new List<Action>();
        for (int i = 0; i < plan.Layers.Count; i++)
        {
            var lp = plan.Layers[i];
            string? fileLine = null;
            if (filePlan is not null && filePlan.TryGetValue(lp.Path, out fileLine) && !SameShape(fileLine, lp))
            {
                problems.Add($"layer '{lp.Path}': the file was saved from '{fileLine}', the compiled plan has '{lp.Signature}'");
                MarkUsed(file, lp.Path, used);
                continue;
            }
            var action = LoadLayer(file, lp, fileLine, layers[i].Layer, used, problems);
            if (action is not null) assignments.Add(action);
        }
        foreach (var t in file.Tensors)
            if (!used.Contains(t.Name))
                problems.Add($"tensor '{t.Name}' is not part of the compiled plan of {plan.ModelName}");

        if (problems.Count > 0) throw new ModelFileException(path, problems);
        foreach (var assign in assignments) assign();
    }

    private static Action? LoadLayer(SafeTensorsFile file, LayerPlan lp, string? fileLine, Layer layer, HashSet<string> used, List<string> problems)
    {
        int before = problems.Count;
        string w = lp.Path + ".weight";
        float[]? dense = null;
        GroupQuantizedWeight? quantized = null;
        if (file.TryGet(w, out _))
        {
            dense = ReadF32(file, w, lp.WeightShape, used, problems);
        }
        else if (file.TryGet(w + ".qdata", out _))
        {
            string saved = fileLine is null ? "quantized" : fileLine[(lp.ShapeSignature.Length + 1)..];
            if (lp.Technique != LayerTechnique.Quantize || (fileLine is not null && fileLine != lp.Signature))
            {
                problems.Add($"layer '{lp.Path}': the file stores it {saved}, the compiled plan has {lp.TechniqueText}; load the dense weights saved before Compress, or rebuild with the plan that saved this file");
                MarkUsed(file, lp.Path, used);
            }
            else
                quantized = ReadQuantized(file, lp, used, problems);
        }
        else
        {
            problems.Add($"tensor '{w}' is missing: expected F32 {ShapeText(lp.WeightShape)}" +
                         (lp.Technique == LayerTechnique.Quantize ? $" or its {lp.TechniqueText} parts '{w}.qdata', '{w}.qscale'" : ""));
        }

        float[]? bias = null;
        if (lp.HasBias) bias = ReadF32(file, lp.Path + ".bias", [lp.OutFeatures], used, problems);
        if (problems.Count > before) return null;

        var weighted = (WeightedLayer)layer;
        return () =>
        {
            if (quantized is not null) weighted.SetCompressedWeight(quantized);
            else weighted.LoadWeight(dense);
            if (bias is not null) weighted.LoadBias(bias);
        };
    }

    /// <summary>Marks a layer's tensors as seen, so a layer reported once is not reported again tensor by tensor.</summary>
    private static void MarkUsed(SafeTensorsFile file, string path, HashSet<string> used)
    {
        foreach (var suffix in LayerTensorSuffixes) used.Add(path + suffix);
    }

    private static float[]? ReadF32(SafeTensorsFile file, string name, int[] shape, HashSet<string> used, List<string> problems)
    {
        if (!file.TryGet(name, out var info))
        {
            problems.Add($"tensor '{name}' is missing: expected F32 {ShapeText(shape)}");
            return null;
        }
        used.Add(name);
        if (!Check(info, SafeTensorDType.F32, Longs(shape), problems)) return null;
        var data = file.ReadF32(name);
        int bad = IndexOfNonFinite(data);
        if (bad >= 0)
        {
            try { TensorChecks.ThrowIfNotFinite(data, name, shape); }
            catch (InvalidDataException e) { problems.Add(e.Message); }
            return null;
        }
        return data;
    }

    private static GroupQuantizedWeight? ReadQuantized(SafeTensorsFile file, LayerPlan lp, HashSet<string> used, List<string> problems)
    {
        string w = lp.Path + ".weight";
        long groups = KernelCatalogue.GroupsPerRow(lp.InFeatures, lp.GroupSize);
        bool ok = true;
        byte[]? packed = null, zeros = null;
        Half[]? scales = null;
        if (Expect(file, w + ".qdata", SafeTensorDType.U8, [lp.OutFeatures, KernelCatalogue.PackedRowBytes(lp.InFeatures, lp.Bits)], used, problems, out _))
            packed = file.ReadU8(w + ".qdata");
        else ok = false;
        if (Expect(file, w + ".qscale", SafeTensorDType.F16, [lp.OutFeatures, groups], used, problems, out _))
            scales = file.ReadF16(w + ".qscale");
        else ok = false;
        if (lp.Symmetric)
        {
            if (file.TryGet(w + ".qzero", out _))
            {
                used.Add(w + ".qzero");
                problems.Add($"tensor '{w}.qzero': layer '{lp.Path}' is planned symmetric ({lp.TechniqueText}) and has no zero points");
                ok = false;
            }
        }
        else if (Expect(file, w + ".qzero", SafeTensorDType.U8, [lp.OutFeatures, groups], used, problems, out _))
            zeros = file.ReadU8(w + ".qzero");
        else ok = false;
        if (!ok) return null;
        try
        {
            return GroupQuantizedWeight.FromParts(lp.OutFeatures, lp.InFeatures, new QuantizationScheme(lp.Bits, lp.GroupSize, lp.Symmetric), packed!, scales!, zeros);
        }
        catch (ArgumentException e)
        {
            problems.Add($"layer '{lp.Path}': {e.Message}");
            return null;
        }
    }

    private static bool Expect(SafeTensorsFile file, string name, SafeTensorDType dtype, long[] shape, HashSet<string> used, List<string> problems, out SafeTensorInfo? info)
    {
        if (!file.TryGet(name, out var found))
        {
            problems.Add($"tensor '{name}' is missing: expected {dtype} {ShapeText(shape)}");
            info = null;
            return false;
        }
        used.Add(name);
        info = found;
        return Check(found, dtype, shape, problems);
    }

    private static bool Check(SafeTensorInfo info, SafeTensorDType dtype, long[] shape, List<string> problems)
    {
        if (info.DType != dtype || !info.Shape.AsSpan().SequenceEqual(shape))
        {
            problems.Add($"tensor '{info.Name}' is {info.DType} {ShapeText(info.Shape)}; the compiled plan expects {dtype} {ShapeText(shape)}");
            return false;
        }
        return true;
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

    private static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }

    private static long[] Longs(int[] shape) => Array.ConvertAll(shape, d => (long)d);

    private static string ShapeText(int[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    private static string ShapeText(long[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
