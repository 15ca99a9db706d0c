using System.Diagnostics;
using System.Globalization;
using Condense.Benchmarks.Cases;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>--quick gemv-ab --format int4-g32-asym --a "--gemv-stream-hint 0" --b "--gemv-stream-hint 3"</c>: two
/// knob settings of the batch-1 int8-activation product, interleaved in one process every few calls (order swapped
/// each round), hot (one copy, repeated) and cold (a rotation over <c>--cold-mib</c> MiB of copies), so a loaded
/// machine or a VM whose memory speed drifts disturbs both sides alike. Prints per side the median time per call
/// (process CPU time with one thread; wall time with <c>--two</c>, the 2-thread pool) and the median of the paired
/// per-round ratios A/B (&gt; 1: B faster). Options: <c>--shape OUTxIN</c> (4096x4096), <c>--rounds n</c> (40),
/// <c>--calls n</c> (calls per side per round, 8), <c>--modes hot,cold</c>, <c>--pool-trace n</c> (then n traced hot calls per side, see PoolTrace).
/// </summary>
public static class GemvAbQuick
{
    public static int Run(string[] args)
    {
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at start");
        string formatName = Option(args, "--format") ?? "int4-g32-asym";
        var formats = QuantizedFormats.All.Concat([QuantizedFormats.Of(8, 64, symmetric: true), QuantizedFormats.Of(8, 128, symmetric: true)]).ToList();
        var format = formats.FirstOrDefault(f => f.Name == formatName);
        if (format is null)
        {
            Console.Error.WriteLine($"--format {formatName}: no such format; names are {string.Join(", ", formats.Select(f => f.Name))}");
            return 2;
        }
        var dims = (Option(args, "--shape") ?? "4096x4096").Split('x').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray();
        var shape = new Shape("ab", dims[0], dims[1]);
        string[] a = (Option(args, "--a") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string[] b = (Option(args, "--b") ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        int rounds = int.Parse(Option(args, "--rounds") ?? "40", CultureInfo.InvariantCulture);
        int calls = int.Parse(Option(args, "--calls") ?? "8", CultureInfo.InvariantCulture);
        long coldBytes = long.Parse(Option(args, "--cold-mib") ?? "512", CultureInfo.InvariantCulture) << 20;
        bool two = args.Contains("--two");
        var pool = WorkerPool.Shared;
        int savedDegree = pool.MaxDegreeOfParallelism;
        pool.MaxDegreeOfParallelism = two ? 2 : 1;
        try
        {
            var dense = RandomData.Weights(shape, seed: 1);
            var set = new WeightSet(format, shape, dense, coldBytes);
            // --batch n: n activation rows (batch 2-15 runs VnniSmallBatch4 / 8; knobs --gemv-sb4-*).
            int batch = int.Parse(Option(args, "--batch") ?? "1", CultureInfo.InvariantCulture);
            var x = RandomData.Activations(batch, shape.In);
            var y = new float[batch * shape.Out];
            Console.WriteLine($"{format.Name} {shape.Out}x{shape.In}, batch {batch}, {set.Copies.Length} cold copies, {(two ? "2 threads, wall" : "1 thread, CPU")} time per call; A: {string.Join(' ', a)}; B: {string.Join(' ', b)}");
            var sides = new[] { a, b };
            // Warm both sides on every copy (tier-1 code, the per-weight kernels made).
            foreach (var side in sides)
            {
                Quiet(() => GemvKnobs.Apply(side));
                foreach (var c in set.Copies) Call(c);
                for (int i = 0; i < 50; i++) Call(set.Copies[0]);
            }
            string modes = Option(args, "--modes") ?? "hot,cold";
            foreach (bool cold in new[] { false, true }.Where(c => modes.Contains(c ? "cold" : "hot")))
            {
                var times = new[] { new List<double>(), new List<double>() };
                var ratios = new List<double>();
                int next = 0;
                for (int r = 0; r < rounds; r++)
                {
                    var t = new double[2];
                    for (int k = 0; k < 2; k++)
                    {
                        int s = (r & 1) == 0 ? k : 1 - k;
                        Quiet(() => GemvKnobs.Apply(sides[s]));
                        Call(cold ? set.Copies[next++ % set.Copies.Length] : set.Copies[0]);
                        double cpu0 = Cpu();
                        long w0 = Stopwatch.GetTimestamp();
                        for (int i = 0; i < calls; i++) Call(cold ? set.Copies[next++ % set.Copies.Length] : set.Copies[0]);
                        double per = two ? Stopwatch.GetElapsedTime(w0).TotalSeconds / calls : (Cpu() - cpu0) / calls;
                        t[s] = per;
                        times[s].Add(per);
                    }
                    ratios.Add(t[0] / t[1]);
                }
                Console.WriteLine($"{(cold ? "cold" : "hot "),-5} A {Median(times[0]) * 1e6,8:F1} us  B {Median(times[1]) * 1e6,8:F1} us  "
                    + $"A/B paired median {Median(ratios):F3} (quartiles {Quantile(ratios, 0.25):F3}-{Quantile(ratios, 0.75):F3})");
            }

            // --pool-trace n: n hot calls per side with the pool's timeline marks on (PoolTrace).
            if (Option(args, "--pool-trace") is { } traceCalls)
            {
                for (int s = 0; s < 2; s++)
                {
                    Quiet(() => GemvKnobs.Apply(sides[s]));
                    for (int i = 0; i < 20; i++) Call(set.Copies[0]);
                    int n = int.Parse(traceCalls, CultureInfo.InvariantCulture);
                    PoolTrace.Start(n * 200);
                    for (int i = 0; i < n; i++) Call(set.Copies[0]);
                    PoolTrace.Print(s == 0 ? "A" : "B");
                }
            }

            void Call(IWeightStorage w) => ((GroupQuantizedWeight)w).MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
        }
        finally
        {
            pool.MaxDegreeOfParallelism = savedDegree;
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }

    private static void Quiet(Action apply)
    {
        var saved = Console.Out;
        Console.SetOut(TextWriter.Null);
        try { apply(); }
        finally { Console.SetOut(saved); }
    }

    private static double Median(List<double> v) => Quantile(v, 0.5);

    private static double Quantile(List<double> v, double q)
    {
        var s = v.OrderBy(t => t).ToArray();
        double at = q * (s.Length - 1);
        int lo = (int)Math.Floor(at), hi = (int)Math.Ceiling(at);
        return s[lo] + (s[hi] - s[lo]) * (at - lo);
    }
}
