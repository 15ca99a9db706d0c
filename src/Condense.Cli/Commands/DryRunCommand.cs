using System.Globalization;
using Condense.Cli.Plans;
using Spectre.Console;

namespace Condense.Cli.Commands;

/// <summary>
/// <c>condense dry-run FILE --bits 4 --group 64 [--override PATTERN=BITS[:GROUP]]</c>: the exact byte table of a plan
/// over the file's Linear/Conv2d layers, as Compress would produce it, without compressing anything.
/// </summary>
public static class DryRunCommand
{
    public static int Run(string path, int bits, int group, bool asymmetric, IReadOnlyList<string> overrideTexts, IAnsiConsole console)
    {
        var overrides = overrideTexts.Select(PlanOverride.Parse).ToList();
        var listing = ModelFileListing.Open(path);
        IReadOnlyList<FileTensor> others;
        IReadOnlyList<FileLayer> layers;
        if (listing.Format == ModelFileFormat.Condense && listing.Metadata.TryGetValue(CondenseFile.PlanKey, out var recorded))
        {
            layers = FileLayers.FromCondensePlan(recorded);
            others = [];
        }
        else layers = FileLayers.Find(listing.Tensors, out others);
        if (layers.Count == 0)
            throw new CliException(ExitCodes.BadFile, $"'{path}' has no Linear ([out, in]) or Conv2d ([out, in, k, k]) '.weight' tensors to plan.");
        var planned = DryRun.Plan(layers, bits, group, !asymmetric, overrides);

        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("layer").AddColumn("shape").AddColumn("plan")
            .AddColumn(new TableColumn("bytes before").RightAligned()).AddColumn(new TableColumn("bytes after").RightAligned())
            .AddColumn(new TableColumn("bits/weight").RightAligned());
        var inv = CultureInfo.InvariantCulture;
        foreach (var p in planned)
        {
            string bitsPerWeight = p.Problems.Count > 0 ? "" : ((p.BytesAfter - (p.Layer.HasBias ? 4L * p.Layer.OutFeatures : 0)) * 8.0 / p.Weights).ToString("F2", inv);
            Cells.AddRow(table, p.Layer.Path, p.Layer.ShapeText + (p.Layer.HasBias ? " +bias" : ""),
                p.Problems.Count > 0 ? "invalid" : p.TechniqueText,
                p.BytesBefore.ToString("N0", inv), p.Problems.Count > 0 ? "" : p.BytesAfter.ToString("N0", inv), bitsPerWeight);
        }
        console.Write(table);

        long before = planned.Sum(p => p.BytesBefore), after = planned.Sum(p => p.BytesAfter);
        long weights = planned.Sum(p => p.Weights);
        long biasBytes = planned.Where(p => p.Layer.HasBias).Sum(p => 4L * p.Layer.OutFeatures);
        var invalid = planned.Where(p => p.Problems.Count > 0).ToList();
        if (invalid.Count > 0)
        {
            foreach (var p in invalid)
                foreach (var problem in p.Problems)
                    console.MarkupLine($"[red]error[/]: {Markup.Escape(problem.Message)}");
            console.WriteLine($"{invalid.Count} of {planned.Count} layers cannot take this plan; fix them with --group or --override (e.g. --override '{invalid[0].Layer.Path}={bits}:{Group(DryRun.ValidGroupSize(invalid[0].Layer.InFeatures, group))}').");
            return ExitCodes.InvalidPlan;
        }
        console.WriteLine(string.Create(inv,
            $"layers: {planned.Count}, {weights:N0} weights: {before:N0} -> {after:N0} bytes ({(double)before / after:F2}x smaller, {(after - biasBytes) * 8.0 / weights:F2} bits/weight)"));
        if (others.Count > 0)
        {
            long otherElements = others.Sum(t => t.Elements), otherBytes = others.Sum(t => t.Bytes);
            console.WriteLine(string.Create(inv,
                $"not in the plan: {others.Count} other tensors ({otherElements:N0} elements, {otherBytes:N0} bytes as stored: embeddings, norms, buffers)"));
        }
        return ExitCodes.Success;
    }

    private static string Group(int group) => group == 0 ? "row" : group.ToString(CultureInfo.InvariantCulture);
}
