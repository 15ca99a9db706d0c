using System.Diagnostics;
using System.Reflection;
using Condense.Benchmarks.Harness;
using Condense.Kernels;
using Condense.Quantization;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// <c>--quick f32act</c>: the batch-1 float32-activation kernel (<see cref="ActivationPrecision.Float32"/>) on S2
/// (11008x4096, int4-g64-asym and int8-g32-sym), cold (a rotation over about 300 MB of copies), 2 threads, with its
/// loop variants (prefetch distance, 8-bit planes or decode-to-weights tiles) alternated in every round next to
/// the 1 GiB read probe, so a loaded machine disturbs all alike: "% BW" per round, then the median and range.
/// <c>--hot</c>: 256 rows (L2), 1 thread, thread CPU time: the loops' compute cost per 64 weight bytes. <c>--l3</c>: S1
/// (4096x4096), one copy, 2 threads: the peers' hot rows.
/// <c>--rounds n</c> (7); <c>--variants a,b</c>: only the variants whose names start so.
/// </summary>
public static class Float32ActQuick
{
    private static readonly Type s_kernel = typeof(KernelOptions).Assembly.GetType("Condense.Quantization.Float32ActivationKernel", throwOnError: true)!;

    private static void Set(string name, object value) =>
        (s_kernel.GetProperty(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
         ?? throw new InvalidOperationException($"Float32ActivationKernel.{name} not found: the knob was renamed.")).SetValue(null, value);

    public static int Run(string[] args)
    {
        int rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(7);
        bool hot = args.Contains("--hot");
        // --one: cold, 1 thread, thread CPU time: the stream's cost per core, little moved by other processes' CPU use.
        bool one = args.Contains("--one");
        bool cpuTime = hot || one;
        // --l3: S1 (4096x4096), one copy called again and again (weights in L2/L3, like the peers' hot S1 rows), 2 threads, wall time.
        bool l3 = args.Contains("--l3");
        string? only = args.SkipWhile(a => a != "--variants").Skip(1).FirstOrDefault();
        Console.WriteLine($"float32-activation batch 1, {(hot ? "hot (256 rows, 1 thread, thread CPU time)" : l3 ? "S1 hot (one copy, 2 threads)" : one ? "S2 cold, 1 thread, thread CPU time (% BW: of the 1-thread probe)" : "S2 cold, 2 threads")}; load {File.ReadAllText("/proc/loadavg").Trim()} at start");
        if (cpuTime) WorkerPool.Shared.MaxDegreeOfParallelism = 1;
        int outF = hot ? 256 : l3 ? 4096 : 11008;
        const int inF = 4096;
        var random = new Random(1);
        var dense = new float[outF * inF];
        for (int i = 0; i < dense.Length; i++) dense[i] = (float)(random.NextDouble() - 0.5);
        var x = new float[inF];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
        var y = new float[outF];

        var formats = new (string Name, QuantizationScheme Scheme)[] { ("int4-g64-asym", new(4, 64, false)), ("int8-g32-sym", new(8, 32, true)) };
        var weights = new Dictionary<string, GroupQuantizedWeight[]>();
        foreach (var (name, scheme) in formats)
        {
            var first = GroupQuantizedWeight.Quantize(dense, outF, inF, scheme);
            int copies = hot || l3 ? 1 : (int)Math.Max(4, (300L << 20) / first.ByteCount);
            weights[name] = Enumerable.Range(0, copies).Select(_ => GroupQuantizedWeight.FromParts(outF, inF, scheme,
                (byte[])first.Packed.Clone(), (Half[])first.Scales.Clone(), (byte[]?)first.ZeroPoints?.Clone())).ToArray();
        }
        dense = null!;

        // Variant: name, formats it applies to, knob settings (bit planes or the decode-to-weights tiles, prefetch tiles
        // ahead); planes-1t is the default. BitPlanes is the calling thread's switch, and the path is chosen on it.
        var variants = new List<(string Name, bool For4, bool For8, Action Apply)>();
        void Add(string name, bool for4, bool for8, bool planes, int tiles) =>
            variants.Add((name, for4, for8, () => { Set("BitPlanes", planes); Set("PlanePrefetchTiles", tiles); }));
        Add("tiles", false, true, false, 1);
        foreach (int tiles in new[] { 1, 2, 4 }) Add($"planes-{tiles}t", true, true, true, tiles);
        if (only is not null) variants = variants.Where(v => only.Split(',').Any(o => v.Name.StartsWith(o, StringComparison.Ordinal))).ToList();
        var cases = new List<(string Format, string Variant, Action Apply)>();
        foreach (var (name, scheme) in formats)
            foreach (var v in variants)
                if (scheme.Bits == 4 ? v.For4 : v.For8) cases.Add((name, v.Name, v.Apply));

        var times = cases.ToDictionary(c => c.Format + " " + c.Variant, _ => new List<double>());
        var shares = cases.ToDictionary(c => c.Format + " " + c.Variant, _ => new List<double>());
        var probeRates = new List<double>();
        int next = 0;
        double Time(string format)
        {
            var set = weights[format];
            var samples = new List<double>();
            var clock = Stopwatch.StartNew();
            while (samples.Count < 5 || clock.ElapsedMilliseconds < 150 && samples.Count < 80)
            {
                var q = set[next++ % set.Length];
                double t0 = cpuTime ? Timing.ThreadSeconds() : Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
                q.MatMulTransposed(x, y, 1, ActivationPrecision.Float32);
                samples.Add(((cpuTime ? Timing.ThreadSeconds() : Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency) - t0) * 1e3);
            }
            return Timing.Median(samples);
        }
        foreach (var c in cases) { c.Apply(); Time(c.Format); }
        using var probe = hot || l3 ? null : new BandwidthProbe();
        for (int round = 0; round < rounds; round++)
        {
            double rate = 0;
            if (probe is not null)
            {
                int threads = one ? 1 : 2;
                probe.Read(threads);
                double c0 = Timing.ThreadSeconds();
                var t = Stopwatch.StartNew();
                probe.Read(threads);
                rate = BandwidthProbe.Bytes / (one ? Timing.ThreadSeconds() - c0 : t.Elapsed.TotalSeconds) / 1e9;
                probeRates.Add(rate);
            }
            foreach (var c in (round % 2 == 0 ? cases : Enumerable.Reverse(cases)))
            {
                c.Apply();
                double ms = Time(c.Format);
                string key = c.Format + " " + c.Variant;
                times[key].Add(ms);
                long bytes = weights[c.Format][0].ByteCount + inF * 4L;
                if (rate > 0) shares[key].Add(bytes / (ms * 1e-3) / 1e9 / rate * 100);
            }
            Console.Error.Write($"\r  round {round + 1} of {rounds}");
        }
        Set("BitPlanes", true); Set("PlanePrefetchTiles", 1);
        Console.Error.WriteLine();
        if (probeRates.Count > 0) Console.WriteLine($"probe {(one ? "1 thread, CPU time" : "2 threads")}: {Timing.Median(probeRates):F1} GB/s median ({probeRates.Min():F1}-{probeRates.Max():F1})");
        foreach (var c in cases)
        {
            string key = c.Format + " " + c.Variant;
            long bytes = weights[c.Format][0].ByteCount;
            double ms = Timing.Median(times[key]);
            string share = shares[key].Count > 0 ? $"  {Timing.Median(shares[key]),5:F1}% BW ({shares[key].Min():F0}-{shares[key].Max():F0})" : "";
            Console.WriteLine($"  {key,-28} {ms,8:F3} ms ({times[key].Min():F3}-{times[key].Max():F3})  {ms * 1e6 / (bytes / 64.0),6:F2} ns/64B (best {times[key].Min() * 1e6 / (bytes / 64.0):F2}){share}");
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }
}
