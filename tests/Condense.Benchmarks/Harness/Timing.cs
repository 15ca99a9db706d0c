using System.Diagnostics;

namespace Condense.Benchmarks.Harness;

/// <summary>Per-call timing and the statistics the table uses.</summary>
internal static class Timing
{
    /// <summary>
    /// Times calls one at a time (seconds each): at least <paramref name="minCalls"/>, then more until
    /// <paramref name="budgetSeconds"/> have passed, at most <paramref name="maxCalls"/>.
    /// </summary>
    /// <param name="beforeCall">Untimed work before each call (a cache flush), or null.</param>
    public static List<double> Sample(Action call, Action? beforeCall, int minCalls, int maxCalls, double budgetSeconds)
    {
        var times = new List<double>();
        long start = Stopwatch.GetTimestamp();
        while (times.Count < maxCalls && (times.Count < minCalls || Stopwatch.GetElapsedTime(start).TotalSeconds < budgetSeconds))
        {
            beforeCall?.Invoke();
            long t0 = Stopwatch.GetTimestamp();
            call();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return times;
    }

    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToArray();
        if (sorted.Length == 0) return double.NaN;
        int mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>max / min of the per-round medians: how much the rounds disagree.</summary>
    public static double Spread(IReadOnlyList<double> roundMedians) =>
        roundMedians.Count == 0 ? double.NaN : roundMedians.Max() / roundMedians.Min();
}
