using System.Globalization;
using System.Text;
using System.Text.Json;
using Condense.IO;
using Condense.Nn;

namespace Condense.Subspace;

/// <summary>A subspace file that cannot be loaded as asked; the message lists every problem found.</summary>
public sealed class SubspaceFileException : IOException
{
    public SubspaceFileException(string path, IReadOnlyList<string> problems)
        : base($"{path} cannot be loaded as this subspace model ({problems.Count} problem{(problems.Count == 1 ? "" : "s")}):\n  - " + string.Join("\n  - ", problems))
    {
        FilePath = path;
        Problems = problems;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>One line per problem, each naming the group, tensor or setting, the value found and the one expected.</summary>
    public IReadOnlyList<string> Problems { get; }
}

/// <summary>
/// Saves a <see cref="SubspaceModel"/> as safetensors: the coordinates d (F32, 4 d bytes) plus, in the metadata,
/// what regenerates theta0 and P (layout in docs/subspace.md). With theta0 from <c>Initialize(seed)</c> the file is
/// about 4 d bytes plus a header of a few hundred bytes per group; with theta0 = arbitrary weights it also carries
/// them (4 D bytes). Load regenerates theta0 and P and checks them, and the file, before setting d.
/// </summary>
public static class SubspaceFile
{
    /// <summary>Value of the <see cref="FormatKey"/> metadata entry.</summary>
    public const string FormatVersion = "1";

    /// <summary>Metadata key marking a subspace file (its value is the format version).</summary>
    public const string FormatKey = "condense.subspace";

    /// <summary>The tensor holding the coordinates of every group, concatenated.</summary>
    public const string CoordinatesTensor = "subspace.coordinates";

    /// <summary>Prefix of the tensors that carry theta0 when it is not a seeded initialization.</summary>
    public const string Theta0Prefix = "theta0.";

    private const string ModelKey = "condense.subspace.model";
    private const string Theta0Key = "condense.subspace.theta0";
    private const string Theta0ChecksumKey = "condense.subspace.theta0_checksum";
    private const string UncoveredKey = "condense.subspace.uncovered";
    private const string GroupsKey = "condense.subspace.groups";
    private const int ProbeRows = 8;

    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> (atomically).</summary>
    /// <exception cref="InvalidOperationException">The model was materialized, or d holds NaN or infinity (named).</exception>
    public static void Save(SubspaceModel model, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (model.IsMaterialized)
            throw new InvalidOperationException($"The subspace model of {model.BaseModel.GetType().Name} was materialized; save the dense model instead, or save before Materialize.");
        model.CheckFinite(model.Coordinates.Data, "the coordinates");

        var writer = new SafeTensorsWriter();
        writer.SetMetadata(FormatKey, FormatVersion);
        writer.SetMetadata(ModelKey, model.BaseModel.GetType().FullName ?? model.BaseModel.GetType().Name);
        writer.SetMetadata(Theta0Key, model.InitializationSeed is ulong seed ? "initialization:" + seed.ToString(CultureInfo.InvariantCulture) : "stored");
        writer.SetMetadata(Theta0ChecksumKey, Theta0Checksum(model).ToString("x16", CultureInfo.InvariantCulture));
        writer.SetMetadata(UncoveredKey, model.UncoveredLayers == UncoveredLayers.Trained ? "trained" : "frozen");
        writer.SetMetadata(GroupsKey, GroupsJson(model));
        writer.AddF32(CoordinatesTensor, model.Coordinates.Data, model.Coordinates.Length);
        if (model.InitializationSeed == null)
        {
            foreach (var group in model.Groups)
            {
                int at = 0;
                foreach (var p in group.Parameters)
                {
                    writer.AddF32(Theta0Prefix + p.Path, group.Theta0.AsSpan(at, p.Value.Length), Longs(p.Value.Shape));
                    at += p.Value.Length;
                }
            }
            foreach (var p in model.FrozenParameters)
                writer.AddF32(Theta0Prefix + p.Path, p.Value.Data, Longs(p.Value.Shape));
        }
        foreach (var p in model.NamedParameters())
            if (!ReferenceEquals(p.Value, model.Coordinates))
                writer.AddF32(p.Path, p.Value.Data, Longs(p.Value.Shape));
        writer.WriteTo(path);
    }

    internal static SubspaceModel<TModel> Load<TModel>(string path, TModel model, Func<Tensor, Tensor> forward, IReadOnlyList<SubspaceSpec>? expected)
        where TModel : Module
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(forward);
        using var file = SafeTensorsFile.Open(path);
        var problems = new List<string>();
        if (!file.Metadata.TryGetValue(FormatKey, out var version))
            throw new SubspaceFileException(path, [$"metadata has no '{FormatKey}' entry: this is not a subspace file (a dense or compressed model file loads with the model's own Load)."]);
        if (version != FormatVersion)
            throw new SubspaceFileException(path, [$"subspace format version '{version}'; this build reads version '{FormatVersion}'."]);
        var groups = ReadGroups(file, path);

        // 1. The subspaces: the file's, checked against the compiled ones when given.
        var specs = new List<SubspaceSpec>(groups.Count);
        if (expected != null && expected.Count != groups.Count)
            problems.Add($"the file has {groups.Count} subspace(s) ({string.Join(", ", groups.Select(g => g.Name))}); the model declares {expected.Count} ({string.Join(", ", expected.Select(s => s.GroupName))}).");
        for (int i = 0; i < groups.Count; i++)
        {
            var g = groups[i];
            var spec = expected != null && i < expected.Count ? expected[i] : null;
            if (spec != null)
            {
                if (spec.GroupName != g.Name)
                    problems.Add($"subspace {i} is '{g.Name}' in the file; the model declares '{spec.GroupName}'.");
                if (spec.Seed != g.Seed)
                    problems.Add($"subspace '{g.Name}': the file was trained with seed {g.Seed}; the model declares seed {spec.Seed} (P would differ, so d is meaningless here): load it with Seed = {g.Seed}.");
                if (spec.Dimension != g.Dimension)
                    problems.Add($"subspace '{g.Name}': the file has d = {g.Dimension}; the model declares d = {spec.Dimension}.");
                if (spec.CustomProjection == null && SubspaceProjections.NameOf(spec.Projection) != g.Projection)
                    problems.Add($"subspace '{g.Name}': the file uses the {g.Projection} projection; the model declares {SubspaceProjections.NameOf(spec.Projection)}.");
                specs.Add(spec);
            }
            else if (SubspaceProjections.TryParse(g.Projection, out var kind))
            {
                specs.Add(new SubspaceSpec(g.Dimension) { Projection = kind, Seed = g.Seed, Layers = g.Layers });
            }
            else
            {
                problems.Add($"subspace '{g.Name}' uses the projection '{g.Projection}', which is not built in (dense, sparse, fastfood): pass its SubspaceSpec with CustomProjection to Load.");
            }
        }

        // 2. The parameters the file covers must exist with the same shapes before anything is regenerated.
        var parameters = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var p in model.NamedParameters()) parameters[p.Path] = p.Value;
        foreach (var g in groups)
            foreach (var (name, shape) in g.Parameters)
            {
                if (!parameters.TryGetValue(name, out var t))
                    problems.Add($"subspace '{g.Name}' covers parameter '{name}' {Tensor.FormatShape(shape)}, which {model.GetType().Name} does not have.");
                else if (!t.Shape.AsSpan().SequenceEqual(shape))
                    problems.Add($"subspace '{g.Name}': parameter '{name}' is {Tensor.FormatShape(shape)} in the file and {Tensor.FormatShape(t.Shape)} in {model.GetType().Name}.");
            }

        var theta0 = file.Metadata.GetValueOrDefault(Theta0Key, "");
        ulong? initializationSeed = null;
        if (theta0.StartsWith("initialization:", StringComparison.Ordinal)
            && ulong.TryParse(theta0.AsSpan("initialization:".Length), NumberStyles.None, CultureInfo.InvariantCulture, out ulong initSeed))
            initializationSeed = initSeed;
        else if (theta0 != "stored")
            problems.Add($"metadata '{Theta0Key}' is '{theta0}'; expected 'initialization:<seed>' or 'stored'.");
        var uncovered = file.Metadata.GetValueOrDefault(UncoveredKey, "") switch
        {
            "frozen" => UncoveredLayers.Frozen,
            "trained" => UncoveredLayers.Trained,
            var other => AddProblem(problems, $"metadata '{UncoveredKey}' is '{other}'; expected 'frozen' or 'trained'.", UncoveredLayers.Frozen),
        };
        if (problems.Count > 0) throw new SubspaceFileException(path, problems);

        // 3. Regenerate theta0 (seeded initialization, or the stored weights), then P.
        if (initializationSeed is ulong s)
        {
            model.Initialize(s);
        }
        else
        {
            foreach (var (name, t) in parameters)
            {
                if (!file.TryGet(Theta0Prefix + name, out var info)) continue; // trained uncovered layers carry no theta0
                if (info.DType != SafeTensorDType.F32 || !info.Shape.SequenceEqual(t.Shape.Select(x => (long)x)))
                    problems.Add($"tensor '{info.Name}' is {info.DType} {info.ShapeText}; expected F32 {Tensor.FormatShape(t.Shape)}.");
                else
                    file.ReadF32(info.Name).CopyTo(t.Data, 0);
            }
            if (problems.Count > 0) throw new SubspaceFileException(path, problems);
        }
        var options = new SubspaceOptions { UncoveredLayers = uncovered, InitializationSeed = initializationSeed };
        SubspaceModel<TModel> result;
        try
        {
            result = new SubspaceModel<TModel>(model, forward, specs, options, initialize: false);
        }
        catch (ArgumentException e)
        {
            throw new SubspaceFileException(path, [e.Message]);
        }

        // 4. What was regenerated must be what the file was trained with.
        for (int i = 0; i < groups.Count; i++)
        {
            var g = groups[i];
            var group = result.Groups[i];
            if (group.FullDimension != g.FullDimension || group.Offset != g.Offset)
                problems.Add($"subspace '{g.Name}' covers D = {g.FullDimension} parameters in the file (offset {g.Offset}) and D = {group.FullDimension} (offset {group.Offset}) in the model.");
            if (group.Projection.Name != g.Projection)
                problems.Add($"subspace '{g.Name}': the file uses the {g.Projection} projection; the given one is {group.Projection.Name}.");
            else if (group.FullDimension == g.FullDimension)
            {
                var probe = Probe(group.Projection);
                double scale = Math.Sqrt(g.Probe.Sum(v => (double)v * v) / Math.Max(1, g.Probe.Length)) + 1e-12;
                if (probe.Length != g.Probe.Length || probe.Zip(g.Probe).Any(p => Math.Abs(p.First - p.Second) > 1e-3 * scale))
                    problems.Add($"subspace '{g.Name}': the {g.Projection} projection regenerated from seed {g.Seed} differs from the one the file was saved with (probe {Format(probe)} vs {Format(g.Probe)}): the file comes from another projection implementation or build; it cannot be loaded here.");
            }
        }
        var checksum = Theta0Checksum(result).ToString("x16", CultureInfo.InvariantCulture);
        var stored = file.Metadata.GetValueOrDefault(Theta0ChecksumKey, "");
        if (checksum != stored)
            problems.Add($"theta0 regenerated here has checksum {checksum}; the file was trained from {stored}: {(initializationSeed != null ? $"Initialize({initializationSeed}) of {model.GetType().Name} gives other weights than when the file was saved (the model's layers or initialization changed)" : "the stored theta0 tensors are inconsistent")}.");

        // 5. The coordinates, and the trained uncovered layers.
        float[]? coordinates = null;
        if (!file.TryGet(CoordinatesTensor, out var ci))
            problems.Add($"tensor '{CoordinatesTensor}' is missing.");
        else if (ci.DType != SafeTensorDType.F32 || ci.Shape.Length != 1 || ci.Shape[0] != result.Coordinates.Length)
            problems.Add($"tensor '{CoordinatesTensor}' is {ci.DType} {ci.ShapeText}; expected F32 [{result.Coordinates.Length}] (d of {result.DescribeGroups()}).");
        else
        {
            coordinates = file.ReadF32(CoordinatesTensor);
            for (int i = 0; i < coordinates.Length; i++)
            {
                if (float.IsFinite(coordinates[i])) continue;
                var group = result.Groups.Last(g => g.Offset <= i);
                problems.Add($"tensor '{CoordinatesTensor}' holds {coordinates[i].ToString(CultureInfo.InvariantCulture)} at index {i - group.Offset} of subspace '{group.Name}'; the file is corrupt or was saved from a diverged run.");
                break;
            }
        }
        var trained = new List<(Tensor Target, float[] Values)>();
        foreach (var p in result.NamedParameters())
        {
            if (ReferenceEquals(p.Value, result.Coordinates)) continue;
            if (!file.TryGet(p.Path, out var info))
                problems.Add($"tensor '{p.Path}' (a trained uncovered layer) is missing.");
            else if (info.DType != SafeTensorDType.F32 || !info.Shape.SequenceEqual(p.Value.Shape.Select(x => (long)x)))
                problems.Add($"tensor '{p.Path}' is {info.DType} {info.ShapeText}; expected F32 {Tensor.FormatShape(p.Value.Shape)}.");
            else
                trained.Add((p.Value, file.ReadF32(p.Path)));
        }
        if (problems.Count > 0) throw new SubspaceFileException(path, problems);

        foreach (var (target, values) in trained) values.CopyTo(target.Data, 0);
        result.SetCoordinates(coordinates);
        return result;
    }

    /// <summary>FNV-1a 64 over the bits of theta0: every covered parameter (group order), then the frozen ones.</summary>
    internal static ulong Theta0Checksum(SubspaceModel model)
    {
        ulong hash = 0xCBF29CE484222325UL;
        foreach (var group in model.Groups) hash = Fnv(hash, group.Theta0);
        foreach (var p in model.FrozenParameters) hash = Fnv(hash, p.Value.Data);
        return hash;
    }

    private static ulong Fnv(ulong hash, ReadOnlySpan<float> values)
    {
        foreach (float v in values)
        {
            uint bits = BitConverter.SingleToUInt32Bits(v);
            for (int b = 0; b < 32; b += 8)
            {
                hash ^= (bits >> b) & 0xFF;
                hash *= 0x100000001B3UL;
            }
        }
        return hash;
    }

    /// <summary>P u at 8 rows for a fixed u: a fingerprint of P that survives last-bit differences between machines.</summary>
    internal static float[] Probe(ISubspaceProjection projection)
    {
        var u = new float[projection.Dimension];
        for (int j = 0; j < u.Length; j++) u[j] = (j * 7919 % 101) / 101f - 0.5f;
        var theta = new float[projection.FullDimension];
        projection.Project(u, theta);
        var probe = new float[ProbeRows];
        for (int k = 0; k < ProbeRows; k++) probe[k] = theta[(int)((long)k * (theta.Length - 1) / (ProbeRows - 1))];
        return probe;
    }

    private static string GroupsJson(SubspaceModel model)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream))
        {
            json.WriteStartArray();
            foreach (var group in model.Groups)
            {
                json.WriteStartObject();
                json.WriteString("name", group.Name);
                if (group.Spec.Layers is { } layers)
                {
                    json.WriteStartArray("layers");
                    foreach (var l in layers) json.WriteStringValue(l);
                    json.WriteEndArray();
                }
                json.WriteString("projection", group.Projection.Name);
                json.WriteString("seed", group.Spec.Seed.ToString(CultureInfo.InvariantCulture));
                json.WriteNumber("fullDimension", group.FullDimension);
                json.WriteNumber("dimension", group.Dimension);
                json.WriteNumber("offset", group.Offset);
                json.WriteStartArray("probe");
                foreach (float v in Probe(group.Projection)) json.WriteNumberValue(v);
                json.WriteEndArray();
                json.WriteStartArray("parameters");
                foreach (var p in group.Parameters)
                {
                    json.WriteStartObject();
                    json.WriteString("name", p.Path);
                    json.WriteStartArray("shape");
                    foreach (int d in p.Value.Shape) json.WriteNumberValue(d);
                    json.WriteEndArray();
                    json.WriteEndObject();
                }
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private sealed record FileGroup(string Name, IReadOnlyList<string>? Layers, string Projection, ulong Seed, int FullDimension, int Dimension, int Offset, float[] Probe, IReadOnlyList<(string Name, int[] Shape)> Parameters);

    private static List<FileGroup> ReadGroups(SafeTensorsFile file, string path)
    {
        if (!file.Metadata.TryGetValue(GroupsKey, out var text))
            throw new SubspaceFileException(path, [$"metadata has no '{GroupsKey}' entry (the subspaces the file was trained with)."]);
        try
        {
            using var doc = JsonDocument.Parse(text);
            var groups = new List<FileGroup>();
            foreach (var g in doc.RootElement.EnumerateArray())
            {
                var layers = g.TryGetProperty("layers", out var l) ? l.EnumerateArray().Select(x => x.GetString()!).ToArray() : null;
                var parameters = g.GetProperty("parameters").EnumerateArray()
                    .Select(p => (p.GetProperty("name").GetString()!, p.GetProperty("shape").EnumerateArray().Select(x => x.GetInt32()).ToArray()))
                    .ToArray();
                groups.Add(new FileGroup(
                    g.GetProperty("name").GetString()!, layers, g.GetProperty("projection").GetString()!,
                    ulong.Parse(g.GetProperty("seed").GetString()!, NumberStyles.None, CultureInfo.InvariantCulture),
                    g.GetProperty("fullDimension").GetInt32(), g.GetProperty("dimension").GetInt32(), g.GetProperty("offset").GetInt32(),
                    g.GetProperty("probe").EnumerateArray().Select(x => x.GetSingle()).ToArray(), parameters));
            }
            return groups;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or KeyNotFoundException or OverflowException)
        {
            throw new SubspaceFileException(path, [$"metadata '{GroupsKey}' is not a valid list of subspaces ({e.Message})."]);
        }
    }

    private static T AddProblem<T>(List<string> problems, string problem, T fallback)
    {
        problems.Add(problem);
        return fallback;
    }

    private static string Format(float[] values) => "[" + string.Join(", ", values.Select(v => v.ToString("G4", CultureInfo.InvariantCulture))) + "]";

    private static long[] Longs(int[] shape) => shape.Select(x => (long)x).ToArray();
}
