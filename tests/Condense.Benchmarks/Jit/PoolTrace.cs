using System.Diagnostics;
using System.Reflection;
using Condense.Kernels;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>gemv-ab --two --pool-trace n</c>: n hot calls per side with <see cref="WorkerPool"/>'s timeline marks on, then per
/// call (times from the caller publishing the job, in us; p10 / p50 / p90 over the calls): when the caller and the worker
/// start their first chunk, how many chunks each runs, their spans, how far apart their last chunks end (worker - caller),
/// how long the caller takes to notice the end, the call inside the pool and the gap between calls (the serial work
/// outside the pool: quantization, Run's set-up before For), and the call in the pool over the calls in which both
/// threads kept their cores ("both": the worker started within 5 us and the two ended within 5 us of each other).
/// </summary>
internal static class PoolTrace
{
    private static readonly Type Pool = typeof(WorkerPool);

    public static void Start(int marks) => Pool.GetMethod("StartTrace", BindingFlags.Static | BindingFlags.NonPublic)!.Invoke(null, [marks]);

    public static void Print(string label)
    {
        var marks = (long[])Pool.GetMethod("TraceMarks", BindingFlags.Static | BindingFlags.NonPublic)!.Invoke(null, null)!;
        Start(0);
        double us = 1e6 / Stopwatch.Frequency;
        var calls = new SortedDictionary<long, List<(long T, int Kind, bool Worker, int Chunk)>>();
        for (int i = 0; i + 1 < marks.Length; i += 2)
        {
            long code = marks[i + 1];
            long gen = code >> 32;
            if (!calls.TryGetValue(gen, out var list)) calls[gen] = list = [];
            list.Add((marks[i], (int)(code & 15), ((code >> 4) & 1) != 0, (int)((code >> 8) & 0xFFFFFF)));
        }
        var cols = new Dictionary<string, List<double>>();
        void Add(string name, double v) { if (!cols.TryGetValue(name, out var l)) cols[name] = l = []; l.Add(v); }
        long prevWaited = 0;
        foreach (var (_, ev) in calls)
        {
            long enter = Find(ev, 0, false), pub = Find(ev, 1, false), waited = Find(ev, 5, false);
            if (enter == 0 || pub == 0 || waited == 0) { prevWaited = 0; continue; }
            var caller = ev.Where(e => e.Kind == 3 && !e.Worker).Select(e => e.T).ToList();
            var worker = ev.Where(e => e.Kind == 3 && e.Worker).Select(e => e.T).ToList();
            var callerEnd = ev.Where(e => e.Kind == 4 && !e.Worker).Select(e => e.T).DefaultIfEmpty(pub).Max();
            var workerEnd = ev.Where(e => e.Kind == 4 && e.Worker).Select(e => e.T).DefaultIfEmpty(pub).Max();
            long seen = Find(ev, 2, true);
            if (prevWaited != 0) Add("gap", (enter - prevWaited) * us);
            Add("enter>pub", (pub - enter) * us);
            if (seen != 0) Add("worker seen", (seen - pub) * us);
            if (caller.Count > 0) Add("caller 1st", (caller.Min() - pub) * us);
            if (worker.Count > 0) Add("worker 1st", (worker.Min() - pub) * us);
            Add("caller chunks", caller.Count);
            Add("worker chunks", worker.Count);
            if (caller.Count > 0) Add("caller span", (callerEnd - caller.Min()) * us);
            if (worker.Count > 0) Add("worker span", (workerEnd - worker.Min()) * us);
            if (worker.Count > 0) Add("end skew w-c", (workerEnd - callerEnd) * us);
            Add("notice", (waited - Math.Max(callerEnd, workerEnd)) * us);
            Add("in pool", (waited - enter) * us);
            // The calls in which the worker had its core: it started within 5 us of the job and ended within 5 us of the caller.
            if (worker.Count > 0 && (worker.Min() - pub) * us < 5 && Math.Abs(workerEnd - callerEnd) * us < 5)
            {
                Add("both: in pool", (waited - enter) * us);
                Add("both: c chunks", caller.Count);
            }
            prevWaited = waited;
        }
        Console.WriteLine($"pool trace {label}: {calls.Count} calls; per call p10 / p50 / p90 (us, chunks)");
        foreach (var (name, v) in cols)
        {
            v.Sort();
            Console.WriteLine($"  {name,-14} {Q(v, 0.1),8:F2} {Q(v, 0.5),8:F2} {Q(v, 0.9),8:F2}  (n {v.Count})");
        }
    }

    private static long Find(List<(long T, int Kind, bool Worker, int Chunk)> ev, int kind, bool worker) =>
        ev.FirstOrDefault(e => e.Kind == kind && e.Worker == worker).T;

    private static double Q(List<double> s, double q) => s[(int)Math.Round(q * (s.Count - 1))];
}
