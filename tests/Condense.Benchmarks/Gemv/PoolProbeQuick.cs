using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Condense.Benchmarks.Harness;
using Condense.Kernels;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// <c>--quick poolprobe</c>: what one <see cref="WorkerPool"/> call costs beyond its work, at 2 threads. Bodies: empty
/// (16 and 1,024 indices: the dispatch, the chunk claims and the final wait alone), and compute-only work w/4, w and
/// 4w per call split over 1,024 indices (w calibrated to ~100 us on one thread; the table prints the measured times) (a hot batch-1 GEMV's size), timed against the same work on 1 thread.
/// "overhead" = 2-thread call time - 1-thread call time / 2: what dispatch, claims, imbalance at the end of the call
/// and the wake-up cost on top of a perfect split. Reports medians over blocks of back-to-back calls (the workers spin
/// between calls, as between a model's layers).
/// </summary>
/// <remarks>Options: <c>--rounds n</c> (5). The machine is shared: read medians of several runs, and the load printed.</remarks>
internal static class PoolProbeQuick
{
    private static long s_sink;
    private static int s_caller;
    private static long s_chunks, s_workerChunks;

    private struct SpinBody : IRangeBody
    {
        public int StepsPerIndex;

        [MethodImpl(MethodImplOptions.NoInlining)]
        public readonly void Invoke(int start, int end)
        {
            // Dependent integer work: no memory traffic, so only the split and the pool's own costs differ.
            long h = start;
            for (long k = (long)start * StepsPerIndex, e = (long)end * StepsPerIndex; k < e; k++) h = h * 6364136223846793005L + k;
            Interlocked.Add(ref s_sink, h & 1);
            Interlocked.Increment(ref s_chunks);
            if (Environment.CurrentManagedThreadId != s_caller) Interlocked.Increment(ref s_workerChunks);
        }
    }

    public static int Run(string[] args)
    {
        int rounds = int.Parse(Option(args, "--rounds") ?? "5", CultureInfo.InvariantCulture);
        Console.WriteLine($"worker-pool probe: cost of one WorkerPool.For call at 2 threads beyond its work, {rounds} rounds, medians of blocks of calls");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);
        Console.WriteLine($"loadavg : {File.ReadAllText("/proc/loadavg").Trim()} (start)");
        using var two = new WorkerPool(2);
        using var one = new WorkerPool(1);

        // Calibrate steps per index so that 1,024 indices take ~100 us on one thread.
        var calib = new SpinBody { StepsPerIndex = 1000 };
        double perStep = Median(() => one.For(1024, ref calib), 200) / (1024.0 * 1000);
        int steps100 = Math.Max(1, (int)(100e-6 / 1024 / perStep));

        var cases = new (string Name, int Count, int Steps)[]
        {
            ("empty body, 16 indices", 16, 0),
            ("empty body, 1024 indices", 1024, 0),
            ("work w/4, 1024 indices", 1024, steps100 / 4),
            ("work w, 1024 indices", 1024, steps100),
            ("work 4w, 1024 indices", 1024, steps100 * 4),
        };
        s_caller = Environment.CurrentManagedThreadId;
        var twoTimes = cases.Select(_ => new List<double>()).ToList();
        var workerShare = new double[cases.Length];
        var oneTimes = cases.Select(_ => new List<double>()).ToList();
        for (int round = 0; round < rounds; round++)
            for (int c = 0; c < cases.Length; c++)
            {
                var body = new SpinBody { StepsPerIndex = cases[c].Steps };
                int calls = cases[c].Steps == 0 ? 2000 : 200;
                long c0 = Interlocked.Read(ref s_chunks), w0 = Interlocked.Read(ref s_workerChunks);
                twoTimes[c].Add(Median(() => two.For(cases[c].Count, ref body), calls));
                workerShare[c] += (double)(Interlocked.Read(ref s_workerChunks) - w0) / Math.Max(1, Interlocked.Read(ref s_chunks) - c0) / rounds;
                oneTimes[c].Add(Median(() => one.For(cases[c].Count, ref body), calls));
                Console.Error.Write($"\r  round {round + 1}/{rounds}: {cases[c].Name,-40}");
            }
        Console.Error.Write($"\r{new string(' ', 64)}\r");
        Console.WriteLine($"loadavg : {File.ReadAllText("/proc/loadavg").Trim()} (end)");
        var table = new TextTable("body", "1 thread us", "2 threads us", "per round (2 threads)", "overhead us", "overhead %", "worker's chunks");
        for (int c = 0; c < cases.Length; c++)
        {
            double t1 = Timing.Median(oneTimes[c]) * 1e6, t2 = Timing.Median(twoTimes[c]) * 1e6;
            double overhead = t2 - t1 / 2;
            table.Add(cases[c].Name, t1.ToString("0.00", CultureInfo.InvariantCulture), t2.ToString("0.00", CultureInfo.InvariantCulture),
                string.Join(" ", twoTimes[c].Select(t => (t * 1e6).ToString("0.00", CultureInfo.InvariantCulture))),
                overhead.ToString("0.00", CultureInfo.InvariantCulture),
                t2 > 0 ? (100 * overhead / t2).ToString("0.0", CultureInfo.InvariantCulture) : "-",
                (100 * workerShare[c]).ToString("0", CultureInfo.InvariantCulture) + "%");
        }
        Console.Write(table.Render(leftAligned: 1));
        Console.WriteLine("overhead = 2-thread time - 1-thread time / 2 (dispatch, chunk claims, the wait for the last chunk, wake-ups);");
        Console.WriteLine("worker's chunks = share of the 2-thread calls' chunks the worker ran (near 0%: the worker got no CPU within the calls, a loaded machine)");
        Console.WriteLine($"sink {s_sink & 1}");
        return 0;
    }

    /// <summary>Median seconds per call over blocks of 10 back-to-back calls.</summary>
    private static double Median(Action call, int calls)
    {
        for (int i = 0; i < 10; i++) call();
        var blocks = new List<double>();
        for (int b = 0; b < calls / 10; b++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < 10; i++) call();
            blocks.Add(Stopwatch.GetElapsedTime(t0).TotalSeconds / 10);
        }
        return Timing.Median(blocks);
    }
}
