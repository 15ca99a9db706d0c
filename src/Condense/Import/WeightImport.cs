using System.Globalization;
using System.Text;
using Condense.Compression;
using Condense.Nn;

namespace Condense.Import;

/// <summary>A tensor a model expects from a weight file: its name (Condense's convention, <c>blocks[2].up.weight</c>) and shape.</summary>
/// <param name="Name">The model's name for the tensor.</param>
/// <param name="Shape">Its shape (Linear [out, in], Conv2d [out, in, kh, kw], bias [out]), or null when only the running model knows it.</param>
public sealed record ExpectedTensor(string Name, int[]? Shape)
{
    /// <summary>The name as PyTorch writes it: <c>blocks.2.up.weight</c>. Import accepts either.</summary>
    public string PyTorchName => NamePattern.Canonical(Name);

    /// <inheritdoc/>
    public bool Equals(ExpectedTensor? other) =>
        other is not null && Name == other.Name && (Shape is null ? other.Shape is null : other.Shape is not null && Shape.AsSpan().SequenceEqual(other.Shape));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Shape?.Length ?? -1);
}

/// <summary>One tensor loaded by <see cref="WeightImport"/>.</summary>
/// <param name="ModelName">The model's name for it.</param>
/// <param name="FileName">The file's name for it (as recovered from an ONNX graph when the exporter numbered it; <see cref="SourceName"/> is what is stored).</param>
/// <param name="SourceName">The name stored in the file.</param>
/// <param name="DType">The stored element type, widened to float32.</param>
/// <param name="StoredShape">The shape as stored.</param>
/// <param name="Transposed">Whether it was stored [in, out] and transposed.</param>
public sealed record ImportedTensor(string ModelName, string FileName, string SourceName, string DType, long[] StoredShape, bool Transposed);

/// <summary>A model tensor the file lacks.</summary>
/// <param name="Name">The model's name for it.</param>
/// <param name="Shape">Its expected shape.</param>
/// <param name="DidYouMean">The closest file tensor left unmatched (by edit distance over names), or null.</param>
public sealed record MissingTensor(string Name, int[] Shape, string? DidYouMean);

/// <summary>A file tensor that matches no model tensor.</summary>
/// <param name="Name">The file's name.</param>
/// <param name="MappedName">The name after the options' StripPrefix, Renames and Map.</param>
/// <param name="DType">Its element type.</param>
/// <param name="Shape">Its stored shape.</param>
public sealed record UnexpectedTensor(string Name, string MappedName, string DType, long[] Shape);

/// <summary>A file tensor that matches a model tensor by name but cannot be loaded into it.</summary>
/// <param name="Name">The model's name.</param>
/// <param name="FileName">The file's name.</param>
/// <param name="Problem">What is wrong: shape (expected vs actual), element type, a second file tensor for the same name, or a NaN/infinity.</param>
public sealed record MismatchedTensor(string Name, string FileName, string Problem);

/// <summary>What <see cref="WeightImport.Load(string, IReadOnlyList{NamedLayer}, WeightImportOptions?, string?)"/> did.</summary>
public sealed class WeightImportReport
{
    internal WeightImportReport(string filePath, WeightFileFormat format, IReadOnlyList<ImportedTensor> imported, IReadOnlyList<string> ignoredExtras,
        IReadOnlyList<string> skippedByMap, int graphConstants, IReadOnlyList<string> keptMissing)
    {
        FilePath = filePath;
        Format = format;
        Imported = imported;
        IgnoredExtras = ignoredExtras;
        SkippedByMap = skippedByMap;
        GraphConstants = graphConstants;
        KeptMissing = keptMissing;
    }

    /// <summary>The file read.</summary>
    public string FilePath { get; }

    /// <summary>Its format.</summary>
    public WeightFileFormat Format { get; }

    /// <summary>Every tensor loaded, in the model's order.</summary>
    public IReadOnlyList<ImportedTensor> Imported { get; }

    /// <summary>File tensors left over and ignored (IgnoreExtras, IgnoreExtra, IgnoreAllExtras).</summary>
    public IReadOnlyList<string> IgnoredExtras { get; }

    /// <summary>File tensors the Map function skipped (returned null for).</summary>
    public IReadOnlyList<string> SkippedByMap { get; }

    /// <summary>ONNX integer or boolean initializers (shapes, indices), which are graph plumbing and never weights.</summary>
    public int GraphConstants { get; }

    /// <summary>Model tensors absent from the file and allowed by AllowMissing: they keep their values.</summary>
    public IReadOnlyList<string> KeptMissing { get; }

    /// <summary>Number of float32 values loaded.</summary>
    public long Values => Imported.Sum(t => t.StoredShape.Aggregate(1L, (p, d) => p * d));

    /// <inheritdoc/>
    public override string ToString()
    {
        int transposed = Imported.Count(t => t.Transposed);
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $"Loaded {Imported.Count} tensors ({Values:N0} values) from {Format} file '{FilePath}'");
        if (transposed > 0) text.Append(CultureInfo.InvariantCulture, $", {transposed} transposed from [in, out]");
        if (IgnoredExtras.Count > 0) text.Append(CultureInfo.InvariantCulture, $"; ignored {IgnoredExtras.Count} extra ({string.Join(", ", IgnoredExtras.Take(5))}{(IgnoredExtras.Count > 5 ? ", ..." : "")})");
        if (SkippedByMap.Count > 0) text.Append(CultureInfo.InvariantCulture, $"; {SkippedByMap.Count} skipped by Map");
        if (GraphConstants > 0) text.Append(CultureInfo.InvariantCulture, $"; {GraphConstants} integer graph constants skipped");
        if (KeptMissing.Count > 0) text.Append(CultureInfo.InvariantCulture, $"; kept {KeptMissing.Count} missing as they were ({string.Join(", ", KeptMissing.Take(5))})");
        return text.Append('.').ToString();
    }
}

/// <summary>
/// A weight file does not fit the model. Like PyTorch's <c>load_state_dict</c> report, every problem is listed at
/// once: <see cref="Missing"/> (with the closest unmatched file name), <see cref="Unexpected"/> and
/// <see cref="Mismatched"/>. Nothing was loaded.
/// </summary>
public sealed class WeightImportException : IOException
{
    /// <summary>Lines past this many are counted, not spelled out, in the message (every one is in the lists).</summary>
    public const int MaxListedProblems = 100;

    internal WeightImportException(string filePath, string modelName, IReadOnlyList<MissingTensor> missing, IReadOnlyList<UnexpectedTensor> unexpected,
        IReadOnlyList<MismatchedTensor> mismatched)
        : base(BuildMessage(filePath, modelName, missing, unexpected, mismatched))
    {
        FilePath = filePath;
        ModelName = modelName;
        Missing = missing;
        Unexpected = unexpected;
        Mismatched = mismatched;
    }

    /// <summary>The weight file.</summary>
    public string FilePath { get; }

    /// <summary>The model it was loaded into.</summary>
    public string ModelName { get; }

    /// <summary>Model tensors the file lacks.</summary>
    public IReadOnlyList<MissingTensor> Missing { get; }

    /// <summary>File tensors that match no model tensor.</summary>
    public IReadOnlyList<UnexpectedTensor> Unexpected { get; }

    /// <summary>Tensors matched by name that cannot be loaded (shape, type, duplicate, NaN or infinity).</summary>
    public IReadOnlyList<MismatchedTensor> Mismatched { get; }

    /// <summary>One line per problem, as in the message.</summary>
    public IReadOnlyList<string> Problems => Lines(Missing, Unexpected, Mismatched);

    private static List<string> Lines(IReadOnlyList<MissingTensor> missing, IReadOnlyList<UnexpectedTensor> unexpected, IReadOnlyList<MismatchedTensor> mismatched)
    {
        var lines = new List<string>();
        foreach (var m in missing)
            lines.Add($"missing '{m.Name}' {WeightImport.ShapeText(m.Shape)}" + (m.DidYouMean is null ? "" : $": did you mean '{m.DidYouMean}'?"));
        foreach (var u in unexpected)
            lines.Add($"unexpected '{u.Name}' {u.DType} {WeightImport.ShapeText(u.Shape)}" + (u.MappedName == u.Name ? "" : $" (mapped to '{u.MappedName}')"));
        foreach (var m in mismatched)
            lines.Add($"'{m.Name}'{(m.FileName == m.Name || NamePattern.Canonical(m.Name) == m.FileName ? "" : $" (file '{m.FileName}')")}: {m.Problem}");
        return lines;
    }

    private static string BuildMessage(string filePath, string modelName, IReadOnlyList<MissingTensor> missing, IReadOnlyList<UnexpectedTensor> unexpected,
        IReadOnlyList<MismatchedTensor> mismatched)
    {
        var counts = new List<string>();
        if (missing.Count > 0) counts.Add($"{missing.Count} missing");
        if (unexpected.Count > 0) counts.Add($"{unexpected.Count} unexpected");
        if (mismatched.Count > 0) counts.Add($"{mismatched.Count} that cannot be loaded");
        var text = new StringBuilder($"'{filePath}' does not fit {modelName} ({string.Join(", ", counts)}); nothing was loaded:");
        var lines = Lines(missing, unexpected, mismatched);
        foreach (var line in lines.Take(MaxListedProblems)) text.Append("\n  - ").Append(line);
        if (lines.Count > MaxListedProblems) text.Append(CultureInfo.InvariantCulture, $"\n  ... and {lines.Count - MaxListedProblems} more (see Missing, Unexpected, Mismatched)");
        text.Append("\nMatch names with WeightImportOptions (StripPrefix, Renames, Map), leave extras with IgnoreExtras, keep absent tensors with AllowMissing (docs/import.md).");
        return text.ToString();
    }
}

/// <summary>
/// Loads pretrained dense weights by name from a safetensors file (PyTorch / Hugging Face conventions: Linear [out, in],
/// Conv2d [out, in, kh, kw], F32/F16/BF16 widened to float32) or an ONNX model's initializers (MatMul weights stored
/// [in, out] are transposed) into a model's registered layers. Every layer's every parameter is a target: Linear and
/// Conv2d weights and biases, and the parameters of any other registered <see cref="Layer"/>.
/// </summary>
/// <remarks>
/// Everything is checked before anything is written: names (all missing, unexpected and misshapen tensors are reported
/// in one <see cref="WeightImportException"/>, with the closest name for each missing one), element types, shapes, then
/// every value (NaN or infinity is an error naming the tensor and index). Only then are the layers assigned; a
/// compressed layer becomes dense again, so <c>Compress</c> runs on the imported weights as on trained ones.
/// </remarks>
public static class WeightImport
{
    /// <summary>Loads <paramref name="path"/> into <paramref name="model"/>'s generated layer registry: its planned layers and its parameter layers (LayerNorm, Embedding).</summary>
    public static WeightImportReport Load(string path, Module model, WeightImportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Load(path, [.. model.Layers, .. model.ParameterLayers], options, model.GetType().Name);
    }

    /// <summary>Loads <paramref name="path"/> into <paramref name="layers"/> (a model's <c>Layers</c>).</summary>
    /// <param name="path">A safetensors or ONNX file.</param>
    /// <param name="layers">The layers, with their paths.</param>
    /// <param name="options">Name matching and leniency, or null for exact names (either index convention) and no extras.</param>
    /// <param name="modelName">The model's name, for messages.</param>
    /// <returns>What was loaded, ignored and kept.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="WeightFileFormatException">The file is neither safetensors nor ONNX, or is an ONNX model with external data.</exception>
    /// <exception cref="IO.SafeTensorsFormatException">A safetensors file is malformed.</exception>
    /// <exception cref="WeightImportException">The file does not fit the model; nothing was loaded.</exception>
    public static WeightImportReport Load(string path, IReadOnlyList<NamedLayer> layers, WeightImportOptions? options = null, string? modelName = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(layers);
        options ??= new WeightImportOptions();
        modelName ??= "the model";
        var targets = TargetsOf(layers);
        var byCanonical = new Dictionary<string, Target>(StringComparer.Ordinal);
        foreach (var target in targets) byCanonical.TryAdd(NamePattern.Canonical(target.Name), target);

        using var file = WeightFile.Open(path, options.Format, options.TransposeWhere);
        var unexpected = new List<UnexpectedTensor>();
        var leftOver = new List<(WeightTensorInfo Tensor, string Mapped)>();
        var mismatched = new List<MismatchedTensor>();
        var ignored = new List<string>();
        var skipped = new List<string>();
        int graphConstants = 0;
        foreach (var tensor in file.Tensors)
        {
            string mapped = options.MapName(tensor.Name);
            if (options.Map is { } map)
            {
                if (map(mapped) is not { } result)
                {
                    skipped.Add(tensor.Name);
                    continue;
                }
                mapped = result;
            }
            if (byCanonical.TryGetValue(NamePattern.Canonical(mapped), out var target))
            {
                if (target.Source is { } first)
                    mismatched.Add(new(target.Name, tensor.Name, $"the file has it twice: '{first.Name}' and '{tensor.Name}' both map to it"));
                else
                    target.Source = tensor;
                continue;
            }
            if (tensor.IsGraphConstant) graphConstants++;
            else if (options.IsIgnoredExtra(tensor.SourceName, mapped) || (tensor.Name != tensor.SourceName && options.IsIgnoredExtra(tensor.Name, mapped)))
                ignored.Add(tensor.Name);
            else
            {
                unexpected.Add(new(tensor.Name, mapped, tensor.DType, tensor.Shape));
                leftOver.Add((tensor, mapped));
            }
        }

        var missing = new List<MissingTensor>();
        var kept = new List<string>();
        foreach (var target in targets)
        {
            if (target.Source is not { } source)
            {
                if (options.IsAllowedMissing(target.Name)) kept.Add(target.Name);
                else missing.Add(new(target.Name, target.Shape, null));
                continue;
            }
            if (!source.IsFloatingPoint)
                mismatched.Add(new(target.Name, source.Name, $"the file stores it as {source.DType} {ShapeText(source.Shape)}; weights must be floating point (F32, F16, BF16, F64)"));
            else if (!SameShape(source.ImportShape, target.Shape))
                mismatched.Add(new(target.Name, source.Name, ShapeProblem(target, source, file.Format)));
        }
        // Suggestions come from the file tensors nothing claimed, so a typo in a name points at its counterpart.
        if (missing.Count > 0)
        {
            var pool = leftOver.Count > 0 ? leftOver
                : file.Tensors.Where(t => !t.IsGraphConstant && targets.All(x => !ReferenceEquals(x.Source, t))).Select(t => (t, options.MapName(t.Name))).ToList();
            for (int i = 0; i < missing.Count; i++)
                missing[i] = missing[i] with { DidYouMean = Closest(missing[i], pool) };
        }
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
            throw new WeightImportException(path, modelName, missing, unexpected, mismatched);

        // Read and check every value before the first assignment, so a bad tensor leaves the model as it was.
        var values = new Dictionary<Target, float[]>();
        foreach (var target in targets)
        {
            if (target.Source is not { } source) continue;
            var data = file.ReadForImport(source);
            try
            {
                TensorChecks.ThrowIfNotFinite(data, target.Name, target.Shape);
                values[target] = data;
            }
            catch (InvalidDataException e)
            {
                mismatched.Add(new(target.Name, source.Name, e.Message));
            }
        }
        if (mismatched.Count > 0)
            throw new WeightImportException(path, modelName, missing, unexpected, mismatched);

        Assign(targets, values);
        var imported = targets.Where(t => t.Source is not null)
            .Select(t => new ImportedTensor(t.Name, t.Source!.Name, t.Source.SourceName, t.Source.DType, t.Source.Shape, t.Source.Layout == StoredLayout.InOut))
            .ToList();
        return new WeightImportReport(path, file.Format, imported, ignored, skipped, graphConstants, kept);
    }

    /// <summary>
    /// The tensors <see cref="Load(string, IReadOnlyList{NamedLayer}, WeightImportOptions?, string?)"/> fills, in order: for
    /// Linear and Conv2d <c>path.weight</c> (natural shape, also when compressed) and <c>path.bias</c>; for any other
    /// layer, its parameters.
    /// </summary>
    public static IReadOnlyList<ExpectedTensor> ExpectedTensorsOf(IReadOnlyList<NamedLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        return TargetsOf(layers).Select(t => new ExpectedTensor(t.Name, (int[])t.Shape.Clone())).ToList();
    }

    private sealed class Target(string name, int[] shape, WeightedLayer? layer, bool isBias, Tensor? tensor)
    {
        public string Name { get; } = name;
        public int[] Shape { get; } = shape;
        public WeightedLayer? Layer { get; } = layer;
        public bool IsBias { get; } = isBias;
        public Tensor? Tensor { get; } = tensor;
        public WeightTensorInfo? Source { get; set; }
    }

    private static List<Target> TargetsOf(IReadOnlyList<NamedLayer> layers)
    {
        var targets = new List<Target>();
        foreach (var (path, layer) in layers)
        {
            ArgumentNullException.ThrowIfNull(layer);
            if (layer is WeightedLayer weighted)
            {
                // From the layer's declared shape, not its Parameters: a compressed layer has no dense weight to list.
                targets.Add(new(path + ".weight", weighted.WeightShape, weighted, false, null));
                if (weighted.HasBias) targets.Add(new(path + ".bias", [weighted.OutFeatures], weighted, true, null));
                continue;
            }
            foreach (var parameter in layer.Parameters)
                targets.Add(new(path + "." + parameter.Name, (int[])parameter.Value.Shape.Clone(), null, false, parameter.Value));
        }
        return targets;
    }

    private static void Assign(List<Target> targets, Dictionary<Target, float[]> values)
    {
        var weightedDone = new HashSet<WeightedLayer>();
        foreach (var target in targets)
        {
            if (target.Layer is { } layer)
            {
                if (!weightedDone.Add(layer)) continue;
                var weight = targets.FirstOrDefault(t => t.Layer == layer && !t.IsBias);
                var bias = targets.FirstOrDefault(t => t.Layer == layer && t.IsBias);
                float[]? dense = weight is not null ? values.GetValueOrDefault(weight) : null;
                float[]? biasValues = bias is not null ? values.GetValueOrDefault(bias) : null;
                if (dense is not null) layer.AdoptLoaded(null, dense, biasValues);
                else if (biasValues is not null) layer.LoadBias(biasValues);
            }
            else if (target.Tensor is { } tensor && values.TryGetValue(target, out var data))
            {
                data.CopyTo(tensor.Data, 0);
            }
        }
    }

    /// <summary>
    /// The left-over file tensor most like a missing one: same array indices first (<c>layer.2</c> for <c>layers[2]</c>),
    /// then the most trailing segments in common (<c>query.weight</c>), then the same shape, then the smallest edit distance.
    /// </summary>
    private static string? Closest(MissingTensor missing, List<(WeightTensorInfo Tensor, string Mapped)> pool)
    {
        string wanted = NamePattern.Canonical(missing.Name);
        var wantedSegments = wanted.Split('.');
        string wantedIndices = Indices(wantedSegments);
        string? best = null;
        (int Indices, int Suffix, int Shape, int Distance) bestKey = default;
        foreach (var (tensor, mapped) in pool)
        {
            var segments = NamePattern.Canonical(mapped).Split('.');
            int suffix = 0;
            while (suffix < Math.Min(segments.Length, wantedSegments.Length)
                   && segments[^(suffix + 1)] == wantedSegments[^(suffix + 1)]) suffix++;
            var key = (Indices(segments) == wantedIndices ? 1 : 0, suffix, SameShape(tensor.ImportShape, missing.Shape) ? 1 : 0,
                -EditDistance(wanted, string.Join('.', segments)));
            if (best is null || key.CompareTo(bestKey) > 0)
            {
                best = tensor.Name;
                bestKey = key;
            }
        }
        // A candidate with other indices and nothing in common at the end is noise unless it is a near-typo.
        bool related = bestKey.Indices == 1 && bestKey.Suffix > 0;
        return best is not null && (related || -bestKey.Distance <= Math.Max(3, wanted.Length / 2)) ? best : null;
    }

    private static string Indices(string[] segments) => string.Join(".", segments.Where(s => s.Length > 0 && s.All(char.IsAsciiDigit)));

    /// <summary>Levenshtein distance (insertions, deletions and substitutions cost 1), two rows.</summary>
    internal static int EditDistance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    private static string ShapeProblem(Target target, WeightTensorInfo source, WeightFileFormat format)
    {
        string actual = source.Layout == StoredLayout.InOut
            ? $"{ShapeText(source.ImportShape)} (stored [in, out] as {ShapeText(source.Shape)} and transposed)"
            : ShapeText(source.Shape);
        string text = $"expected {ShapeText(target.Shape)}, the file has {actual}";
        if (source.Layout == StoredLayout.AsIs && target.Shape.Length == 2 && source.Shape.Length == 2
            && source.Shape[0] == target.Shape[1] && source.Shape[1] == target.Shape[0])
            text += format == WeightFileFormat.SafeTensors
                ? "; it looks stored [in, out]: set WeightImportOptions.TransposeWhere for it"
                : "; it looks stored [in, out]";
        else if (source.Shape.Aggregate(1L, (p, d) => p * d) == target.Shape.Aggregate(1L, (p, d) => p * d))
            text += " (same number of values: declare the layer with the file's shape)";
        else
            text += ": declare the layer with the file's shape, or map this tensor to another layer";
        return text;
    }

    private static bool SameShape(long[] actual, int[] expected)
    {
        if (actual.Length != expected.Length) return false;
        for (int i = 0; i < actual.Length; i++)
            if (actual[i] != expected[i]) return false;
        return true;
    }

    internal static string ShapeText(int[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";

    internal static string ShapeText(long[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
