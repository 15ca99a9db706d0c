using System.Diagnostics;

namespace Condense.Benchmarks.Harness;

/// <summary>The small helpers every <c>--quick</c> mode shares: an option's value, the process's CPU seconds, a median.</summary>
public static class QuickArgs
{
    /// <summary>The argument after <paramref name="name"/>, or null when the option is absent or has no value.</summary>
    public static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>CPU seconds this process has used so far (all threads).</summary>
    public static double Cpu() => Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;

    /// <summary>The upper median (the middle value, or the higher of the two middle ones); the list is not changed.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted[sorted.Count / 2];
    }
}
