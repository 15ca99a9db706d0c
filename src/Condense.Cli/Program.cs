using System.CommandLine;
using Condense.Cli.Commands;
using Spectre.Console;

namespace Condense.Cli;

/// <summary>The <c>condense</c> command line: inspect, scaffold, dry-run.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var console = AnsiConsole.Console;
        // Redirected output (a file, a pipe, CI logs) has no window: do not wrap tables at 80 columns.
        if (Console.IsOutputRedirected) console.Profile.Width = 240;
        return Run(args, console, Console.Error);
    }

    /// <summary>Parses and runs one command; user errors print one line on <paramref name="error"/> and return their exit code.</summary>
    public static int Run(string[] args, IAnsiConsole console, TextWriter error)
    {
        var root = new RootCommand("""
            Condense: inspect model files, scaffold an annotated model class, dry-run a compression plan.
            Exit codes: 0 success, 1 usage, 2 missing or malformed file, 3 invalid plan, 4 checksum failure, 5 output exists, 70 internal error.
            """);

        var file = new Argument<string>("file") { Description = "A .safetensors (PyTorch, Hugging Face or Condense) or .onnx file." };
        var verify = new Option<bool>("--no-verify") { Description = "Skip the checksum verification of Condense files." };
        var inspect = new Command("inspect", "List a file's tensors (name, dtype, shape, bytes) and totals; for a Condense file also its plan, per-layer storage and checksums.") { file, verify };
        inspect.SetAction(r => Guard(error, () => InspectCommand.Run(r.GetValue(file)!, !r.GetValue(verify), console)));

        var dryFile = new Argument<string>("file") { Description = "A .safetensors or .onnx file with Linear/Conv2d weights." };
        var bits = new Option<int>("--bits") { Description = "Bits per weight for every layer: 2, 3, 4 or 8.", DefaultValueFactory = _ => 4 };
        var group = new Option<int>("--group") { Description = "Weights per group along the input (16..256), 0 = one group per row.", DefaultValueFactory = _ => 64 };
        var asymmetric = new Option<bool>("--asymmetric") { Description = "Scale and zero point per group (default: symmetric)." };
        var overrides = new Option<string[]>("--override")
        {
            Description = "PATTERN=BITS, PATTERN=BITS:GROUP (GROUP a number or 'row') or PATTERN=dense; the glob of [Override] ('encoder.layer[0..1].**'). Repeatable; a later one wins.",
            AllowMultipleArgumentsPerToken = false,
        };
        var dryRun = new Command("dry-run", "The exact byte table of a uniform or patterned plan, as Compress would produce it, without compressing.") { dryFile, bits, group, asymmetric, overrides };
        dryRun.SetAction(r => Guard(error, () => DryRunCommand.Run(r.GetValue(dryFile)!, r.GetValue(bits), r.GetValue(group), r.GetValue(asymmetric), r.GetValue(overrides) ?? [], console)));

        var scaffoldFile = new Argument<string>("file") { Description = "A .safetensors or .onnx file with Linear/Conv2d weights." };
        var ns = new Option<string>("--namespace") { Description = "Namespace of the generated classes (default: Models)." };
        var cls = new Option<string>("--class") { Description = "Name of the model class (default: from the file name)." };
        var output = new Option<string>("--output", "-o") { Description = "File to write (default: CLASS.cs)." };
        var force = new Option<bool>("--force") { Description = "Replace the output file if it exists." };
        var scaffoldBits = new Option<int>("--bits") { Description = "Default bits of every layer's [Quantize]: 2, 3, 4 or 8.", DefaultValueFactory = _ => 4 };
        var scaffoldGroup = new Option<int>("--group") { Description = "Preferred group size; each layer gets the largest valid one not above it.", DefaultValueFactory = _ => 64 };
        var scaffold = new Command("scaffold", "Write an annotated C# model class for the file's Linear/Conv2d weights (repeated blocks as arrays, shapes as constants, a valid default plan).")
            { scaffoldFile, ns, cls, output, force, scaffoldBits, scaffoldGroup };
        scaffold.SetAction(r => Guard(error, () => ScaffoldCommand.Run(r.GetValue(scaffoldFile)!, r.GetValue(ns), r.GetValue(cls), r.GetValue(output), r.GetValue(force),
            r.GetValue(scaffoldBits), r.GetValue(scaffoldGroup), console)));

        root.Subcommands.Add(inspect);
        root.Subcommands.Add(scaffold);
        root.Subcommands.Add(dryRun);
        var parse = root.Parse(args);
        return parse.Invoke(new InvocationConfiguration { Output = console.Profile.Out.Writer, Error = error });
    }

    private static int Guard(TextWriter error, Func<int> command)
    {
        try
        {
            return command();
        }
        catch (CliException e)
        {
            error.WriteLine("condense: " + e.Message);
            return e.ExitCode;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug in the tool, not a user error: one line, and the trace only when asked for.
            error.WriteLine($"condense: internal error ({e.GetType().Name}): {e.Message}; please report it with the command line." +
                (Environment.GetEnvironmentVariable("CONDENSE_TRACE") == "1" ? Environment.NewLine + e : " Set CONDENSE_TRACE=1 for the stack trace."));
            return ExitCodes.Internal;
        }
    }
}
