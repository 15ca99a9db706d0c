using Condense.Cli.Scaffolding;
using Spectre.Console;

namespace Condense.Cli.Commands;

/// <summary><c>condense scaffold FILE [--namespace N --class C --output F]</c>: writes an annotated model class for the file's weights.</summary>
public static class ScaffoldCommand
{
    public static int Run(string path, string? namespaceName, string? className, string? output, bool force, int bits, int group, IAnsiConsole console)
    {
        var listing = ModelFileListing.Open(path);
        className ??= DefaultClassName(path);
        namespaceName ??= "Models";
        var result = Scaffolder.Generate(listing.Tensors, namespaceName, className, bits, group, $"'{Path.GetFileName(path)}'");
        output ??= className + ".cs";
        if (File.Exists(output) && !force)
            throw new CliException(ExitCodes.OutputExists, $"'{output}' exists; give --force to replace it, or --output another file.");
        string? directory = Path.GetDirectoryName(Path.GetFullPath(output));
        if (directory is not null) Directory.CreateDirectory(directory);
        // Written beside the target, then moved over it: never a half-written source file.
        string temporary = output + ".tmp";
        File.WriteAllText(temporary, result.Source);
        File.Move(temporary, output, overwrite: true);

        console.WriteLine($"wrote {output}: {className} with {result.Layers.Count} layers in {result.Classes} classes ([Quantize({bits})] by default, group sizes valid for each layer)" +
            (result.ParameterLayers.Count > 0 ? $", {result.ParameterLayers.Count(p => p.Kind == "LayerNorm")} LayerNorm and {result.ParameterLayers.Count(p => p.Kind == "Embedding")} Embedding (kept dense)" : ""));
        if (result.NotDeclared.Count > 0)
            console.WriteLine($"not declared: {result.NotDeclared.Count} tensors (buffers, constants; listed in a comment and in WeightOptions.IgnoreExtras)");
        console.WriteLine($"load the file with: model.LoadWeights(\"{Path.GetFileName(path)}\", {className}.WeightOptions)");
        foreach (var (from, to) in result.SegmentRenames)
            console.WriteLine($"renamed: '{from}' is not a C# identifier; the field is '{to}'");
        console.WriteLine("next: add the file to a project that references Condense, write Forward, and build: the plan is checked against these shapes.");
        return ExitCodes.Success;
    }

    internal static string DefaultClassName(string path)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        var b = new System.Text.StringBuilder();
        bool upper = true;
        foreach (char c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c)) { upper = true; continue; }
            b.Append(upper ? char.ToUpperInvariant(c) : c);
            upper = false;
        }
        if (b.Length == 0 || char.IsAsciiDigit(b[0])) b.Insert(0, "Model");
        return b.ToString();
    }
}
