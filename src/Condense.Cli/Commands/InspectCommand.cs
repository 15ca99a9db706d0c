using System.Globalization;
using Condense.Cli.Plans;
using Spectre.Console;

namespace Condense.Cli.Commands;

/// <summary><c>condense inspect FILE</c>: the file's tensors and totals; for a Condense file also its plan, per-layer storage and checksums.</summary>
public static class InspectCommand
{
    public static int Run(string path, bool verify, IAnsiConsole console)
    {
        var listing = ModelFileListing.Open(path);
        string kind = listing.Format switch
        {
            ModelFileFormat.Condense => "Condense model file",
            ModelFileFormat.Onnx => $"ONNX model (opset {listing.Metadata.GetValueOrDefault("opset")}, {listing.Metadata.GetValueOrDefault("nodes")} nodes, from {listing.Metadata.GetValueOrDefault("producer")})",
            _ => "safetensors",
        };
        console.MarkupLine($"[bold]{Markup.Escape(path)}[/]: {Markup.Escape(kind)}, {listing.Tensors.Count:N0} tensors");

        var table = new Table().Border(TableBorder.Simple)
            .AddColumn("tensor").AddColumn("dtype").AddColumn("shape").AddColumn(new TableColumn("bytes").RightAligned());
        bool onnx = listing.Format == ModelFileFormat.Onnx;
        if (onnx) table.AddColumn("note");
        foreach (var t in listing.Tensors)
        {
            if (!onnx) { Cells.AddRow(table, t.Name, t.DType, t.ShapeText, t.Bytes.ToString("N0", CultureInfo.InvariantCulture)); continue; }
            var notes = new List<string>();
            if (t.StoredName is not null) notes.Add($"stored as '{t.StoredName}'");
            if (t.LayerShape is not null) notes.Add($"MatMul weight [in, out]: a layer sees {FileTensor.Format(t.LayerShape)}");
            if (!t.IsFloat) notes.Add("graph constant");
            Cells.AddRow(table, t.Name, t.DType, t.ShapeText, t.Bytes.ToString("N0", CultureInfo.InvariantCulture), string.Join("; ", notes));
        }
        console.Write(table);
        long elements = listing.Tensors.Sum(t => t.Elements);
        long bytes = listing.Tensors.Sum(t => t.Bytes);
        console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"total: {listing.Tensors.Count:N0} tensors, {elements:N0} elements, {bytes:N0} bytes ({Size(bytes)})"));

        var layers = FileLayers.Find(listing.Tensors, out var others);
        if (listing.Format != ModelFileFormat.Condense)
        {
            long weights = layers.Sum(l => (long)l.OutFeatures * l.InFeatures);
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"layers: {layers.Count(l => l.Kind == Compression.LayerKind.Linear)} Linear, {layers.Count(l => l.Kind == Compression.LayerKind.Conv2d)} Conv2d ({weights:N0} weights); {others.Count} other tensors"));
            if (verify && listing.Format == ModelFileFormat.SafeTensors) console.WriteLine("checksums: none (only files written by Condense carry them)");
            return ExitCodes.Success;
        }
        return InspectCondense(listing, verify, console);
    }

    private static int InspectCondense(ModelFileListing listing, bool verify, IAnsiConsole console)
    {
        listing.Metadata.TryGetValue(CondenseFile.ModelKey, out var model);
        listing.Metadata.TryGetValue(CondenseFile.FormatKey, out var format);
        console.WriteLine($"model: {model ?? "(not recorded)"}, format version {format}");
        if (listing.Metadata.TryGetValue(CondenseFile.PlanKey, out var plan) && plan.Length > 0)
        {
            // Each line of the plan is "<path> <kind> <shape>[ bias] <technique>" (LayerPlan.Signature).
            var planTable = new Table().Border(TableBorder.Simple)
                .AddColumn("layer").AddColumn("kind").AddColumn("shape").AddColumn("bias").AddColumn("plan").AddColumn("stored as").AddColumn(new TableColumn("bytes").RightAligned());
            foreach (var line in plan.Split('\n', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = line.Split(' ');
                if (parts.Length < 4) { Cells.AddRow(planTable, line, "", "", "", "", "", ""); continue; }
                bool bias = parts.Length > 3 && parts[3] == "bias";
                string technique = string.Join(' ', parts.Skip(bias ? 4 : 3));
                var stored = listing.Tensors.Where(t => t.Name.StartsWith(parts[0] + ".", StringComparison.Ordinal)).ToList();
                string storage = string.Join(", ", stored.Select(t => t.Name[(parts[0].Length + 1)..] + " " + t.DType));
                Cells.AddRow(planTable, parts[0], parts[1], parts[2], bias ? "yes" : "no", technique, storage,
                    stored.Sum(t => t.Bytes).ToString("N0", CultureInfo.InvariantCulture));
            }
            console.Write(planTable);
        }
        if (!verify) return ExitCodes.Success;
        var failures = ModelFileListing.VerifyChecksums(listing.Path, out int verified);
        if (failures.Count == 0)
        {
            console.WriteLine($"checksums: {verified} of {listing.Tensors.Count} tensors verified (XXH3)");
            return ExitCodes.Success;
        }
        foreach (var (tensor, problem) in failures)
            console.MarkupLine($"[red]checksum failed[/]: {Markup.Escape(tensor)}: {Markup.Escape(problem)}");
        console.WriteLine($"checksums: {failures.Count} of {listing.Tensors.Count} tensors failed");
        return ExitCodes.ChecksumMismatch;
    }

    internal static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F2} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };
}
