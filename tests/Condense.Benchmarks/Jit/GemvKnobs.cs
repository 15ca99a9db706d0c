using System.Reflection;
using Condense.Kernels;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// Measurement knobs of the batch-1 generated GEMV (internal settings of VnniGemv, reached by reflection so the
/// library exposes no tuning API): <c>--gemv-rows n</c> (rows per pass, 1..4), <c>--gemv-call-rows n</c> (rows per kernel call, 1..16) and <c>--gemv-gate-mib n</c> (largest
/// 4-bit / 8-bit g32 weight the generated loop takes), for A/B runs of the same build, cold and hot side by side.
/// </summary>
public static class GemvKnobs
{
    private static readonly Type s_vnniGemv =
        typeof(KernelOptions).Assembly.GetType("Condense.Kernels.Jit.VnniGemv", throwOnError: true)!;

    /// <summary>Rows per pass of the generated loop.</summary>
    public static int Rows
    {
        get => (int)Property("RowsPerPass").GetValue(null)!;
        set => Property("RowsPerPass").SetValue(null, value);
    }

    /// <summary>Rows per kernel call (scales converted, then the kernel, then the sums reduced).</summary>
    public static int RowsPerCall
    {
        get => (int)Property("RowsPerCall").GetValue(null)!;
        set => Property("RowsPerCall").SetValue(null, value);
    }

    /// <summary>Largest 4-bit weight (bytes) the generated loop takes.</summary>
    public static long GateBytes
    {
        get => (long)Property("CacheResidentBytes").GetValue(null)!;
        set => Property("CacheResidentBytes").SetValue(null, value);
    }

    /// <summary>Applies <c>--gemv-rows</c> and <c>--gemv-gate-mib</c> when given; prints what runs.</summary>
    public static void Apply(string[] args)
    {
        int i = Array.IndexOf(args, "--gemv-rows");
        if (i >= 0) Rows = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-call-rows");
        if (i >= 0) RowsPerCall = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-gate-mib");
        if (i >= 0) GateBytes = long.Parse(args[i + 1]) << 20;
        Console.WriteLine($"generated batch-1 GEMV: {Rows} row(s) per pass, {RowsPerCall} per call, taken by 4-bit weights up to {GateBytes >> 20} MiB");
    }

    private static PropertyInfo Property(string name) =>
        s_vnniGemv.GetProperty(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
        ?? throw new InvalidOperationException($"VnniGemv.{name} not found: the knob was renamed.");
}
