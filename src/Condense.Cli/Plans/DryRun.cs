using System.Globalization;
using Condense.Catalogue;
using Condense.Generators.Parsing;

namespace Condense.Cli.Plans;

/// <summary>
/// One <c>--override PATTERN=VALUE</c>: layers whose path matches <see cref="Pattern"/> (the glob of
/// <c>[Override]</c>: <c>*</c> one segment, <c>**</c> any, <c>[0..3]</c> indices) get <see cref="Bits"/> (0 = kept
/// dense) and, when given, <see cref="GroupSize"/> (0 = one group per row).
/// </summary>
public sealed record PlanOverride(string Pattern, int Bits, int? GroupSize)
{
    /// <summary>Parses <c>PATTERN=BITS</c>, <c>PATTERN=BITS:GROUP</c> (GROUP a number or <c>row</c>) or <c>PATTERN=dense</c>.</summary>
    public static PlanOverride Parse(string text)
    {
        int eq = text.LastIndexOf('=');
        if (eq <= 0 || eq == text.Length - 1)
            throw new CliException(ExitCodes.Usage, $"--override '{text}' is not PATTERN=BITS, PATTERN=BITS:GROUP or PATTERN=dense (e.g. 'encoder.layer[0..1].**=8').");
        string pattern = text[..eq];
        string value = text[(eq + 1)..].Trim();
        if (PathPattern.Parse(pattern, out var problem) is null)
            throw new CliException(ExitCodes.Usage, $"--override '{text}': pattern '{pattern}' is not valid: {problem}.");
        if (value.Equals("dense", StringComparison.OrdinalIgnoreCase)) return new PlanOverride(pattern, 0, null);
        string[] parts = value.Split(':');
        if (parts.Length > 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int bits))
            throw new CliException(ExitCodes.Usage, $"--override '{text}': '{value}' is not BITS, BITS:GROUP or dense.");
        int? group = null;
        if (parts.Length == 2)
        {
            if (parts[1].Equals("row", StringComparison.OrdinalIgnoreCase)) group = 0;
            else if (int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int g)) group = g;
            else throw new CliException(ExitCodes.Usage, $"--override '{text}': group '{parts[1]}' is not a number or 'row'.");
        }
        return new PlanOverride(pattern, bits, group);
    }
}

/// <summary>A layer's resolved settings and exact bytes.</summary>
public sealed record PlannedLayer(FileLayer Layer, LayerSettings Settings, long BytesBefore, long BytesAfter, IReadOnlyList<LayerProblem> Problems)
{
    public long Weights => (long)Layer.OutFeatures * Layer.InFeatures;

    public string TechniqueText => Settings.KeepDense || !Settings.Quantize
        ? "fp32"
        : string.Create(CultureInfo.InvariantCulture, $"int{Settings.Bits} {(Settings.GroupSize == 0 ? "per-row" : "g" + Settings.GroupSize.ToString(CultureInfo.InvariantCulture))} {(Settings.Symmetric ? "sym" : "asym")}");
}

/// <summary>The byte table of a uniform or patterned quantization plan over a file's layers, without compressing.</summary>
public static class DryRun
{
    /// <summary>
    /// Plans every layer at <paramref name="bits"/>/<paramref name="groupSize"/>, then applies the overrides in order
    /// (a later one wins for the properties it sets). Bytes come from the kernel catalogue, the formulas the
    /// generator's Plan and Compress use.
    /// </summary>
    /// <exception cref="CliException">An override matches no layer.</exception>
    public static IReadOnlyList<PlannedLayer> Plan(IReadOnlyList<FileLayer> layers, int bits, int groupSize, bool symmetric, IReadOnlyList<PlanOverride> overrides)
    {
        var patterns = overrides.Select(o => (Override: o, Pattern: PathPattern.Parse(o.Pattern, out _)!)).ToList();
        foreach (var (o, pattern) in patterns)
        {
            if (!layers.Any(l => pattern.Matches(l.Path)))
            {
                string nearest = layers.Count == 0 ? "" : layers.MinBy(l => PathPattern.Distance(o.Pattern, l.Path))!.Path;
                throw new CliException(ExitCodes.InvalidPlan,
                    $"--override pattern '{o.Pattern}' matches no layer{(nearest.Length > 0 ? $" (closest layer: '{nearest}')" : "")}; layer paths use [i] for numbered segments, e.g. 'encoder.layer[0..1].**'.");
            }
        }

        var planned = new List<PlannedLayer>(layers.Count);
        foreach (var layer in layers)
        {
            int b = bits, g = groupSize;
            foreach (var (o, pattern) in patterns)
            {
                if (!pattern.Matches(layer.Path)) continue;
                b = o.Bits;
                if (o.GroupSize is int og) g = og;
            }
            var settings = b == 0
                ? new LayerSettings { KeepDense = true }
                : new LayerSettings { Quantize = true, Bits = b, GroupSize = g, Symmetric = symmetric };
            var problems = KernelCatalogue.CheckLayer(layer.Path, settings, layer.OutFeatures, layer.InFeatures, layer.HasBias)
                .Where(p => !p.IsWarning).ToList();
            var (before, after) = problems.Count > 0
                ? (KernelCatalogue.DenseBytes(layer.OutFeatures, layer.InFeatures) + (layer.HasBias ? 4L * layer.OutFeatures : 0), 0L)
                : KernelCatalogue.LayerBytes(settings.Technique, layer.OutFeatures, layer.InFeatures, layer.HasBias, settings);
            planned.Add(new PlannedLayer(layer, settings, before, after, problems));
        }
        return planned;
    }

    /// <summary>The group size scaffold and the tool suggest: <paramref name="preferred"/> when it divides the layer, else the largest supported one that does, else 0 (per row).</summary>
    public static int ValidGroupSize(int inFeatures, int preferred)
    {
        var valid = KernelCatalogue.ValidGroupSizes(inFeatures);
        if (preferred > 0 && valid.Contains(preferred)) return preferred;
        var below = valid.Where(g => g > 0 && (preferred == 0 || g <= preferred)).ToList();
        if (below.Count > 0) return below.Max();
        var any = valid.Where(g => g > 0).ToList();
        return any.Count > 0 ? any.Min() : 0;
    }
}
