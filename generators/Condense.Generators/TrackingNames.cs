namespace Condense.Generators;

/// <summary>Names of the incremental pipeline's steps, so tests can find each step's run reasons.</summary>
internal static class TrackingNames
{
    public const string Models = nameof(Models);
    public const string Diagnostics = nameof(Diagnostics);
    public const string Output = nameof(Output);
}
