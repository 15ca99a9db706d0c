using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Condense.Benchmarks.Harness;

/// <summary>Per-call timing and the statistics the table uses.</summary>
internal static partial class Timing
{
    /// <summary>
    /// True: calls are timed in the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not wall time. Used by
    /// <c>--peers --cpu-time</c>, where both sides run on the calling thread only: a loaded machine then slows the
    /// wall clock but not the time the call spent computing.
    /// </summary>
    public static bool ThreadCpuTime { get; set; }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds, Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);

    internal static double ThreadSeconds()
    {
        const int ThreadCpuClock = 3; // CLOCK_THREAD_CPUTIME_ID on Linux
        if (ClockGetTime(ThreadCpuClock, out var t) != 0) throw new InvalidOperationException("clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed: --cpu-time needs Linux");
        return t.Seconds + t.Nanoseconds * 1e-9;
    }

    /// <summary>CPU seconds of the whole process, every thread (CLOCK_PROCESS_CPUTIME_ID).</summary>
    internal static double ProcessSeconds()
    {
        const int ProcessCpuClock = 2; // CLOCK_PROCESS_CPUTIME_ID on Linux
        if (ClockGetTime(ProcessCpuClock, out var t) != 0) throw new InvalidOperationException("clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed: needs Linux");
        return t.Seconds + t.Nanoseconds * 1e-9;
    }

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
            if (ThreadCpuTime)
            {
                double c0 = ThreadSeconds();
                call();
                times.Add(ThreadSeconds() - c0);
                continue;
            }
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
