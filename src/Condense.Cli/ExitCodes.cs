namespace Condense.Cli;

/// <summary>The tool's exit codes (also listed by <c>condense --help</c> and in docs/cli.md).</summary>
public static class ExitCodes
{
    /// <summary>Success.</summary>
    public const int Success = 0;
    /// <summary>The command line was not understood (unknown option, missing argument, bad value).</summary>
    public const int Usage = 1;
    /// <summary>The input file is missing, unreadable, or not a well-formed safetensors, ONNX or Condense file.</summary>
    public const int BadFile = 2;
    /// <summary>dry-run or scaffold: the plan is not valid for some layer (each one is listed with the fix).</summary>
    public const int InvalidPlan = 3;
    /// <summary>inspect: a tensor of a Condense file fails its checksum.</summary>
    public const int ChecksumMismatch = 4;
    /// <summary>scaffold: the output file exists and --force was not given.</summary>
    public const int OutputExists = 5;
    /// <summary>A bug in the tool (reported in one line; CONDENSE_TRACE=1 adds the stack trace).</summary>
    public const int Internal = 70;
}

/// <summary>A user error: printed as one message (no stack trace) and turned into <see cref="ExitCode"/>.</summary>
public sealed class CliException(int exitCode, string message) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}
