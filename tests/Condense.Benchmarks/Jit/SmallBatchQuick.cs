using System.Diagnostics;
using System.Reflection;
using Condense.Kernels;
using Condense.Quantization;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>--quick smallbatch</c>: int4 g64 (asymmetric) S2 11008x4096 at batch 1, 2, 4 and 8, cold (a rotation over 12
/// copies, 300 MB), 2 threads: each batch's time over batch 1's in the same round (the quick table's own targets
/// 1.3x / 1.6x / 2.5x), with the generated small-batch kernel (VnniSmallBatch4) and with it off (the managed batched
/// kernels), every case alternated in each round so that a loaded machine disturbs both sides alike.
/// </summary>
public static class SmallBatchQuick
{
    public static int Run(string[] args)
    {
        int rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(7);
        bool hot = args.Contains("--hot"); // 2,048 rows (above the 4 Mi-code GEMM rule), one copy, one thread: the kernels' compute cost, not the stream
        int outF = hot ? 2048 : 11008, copies = hot ? 1 : 12;
        const int inF = 4096;
        // --one: cold, one thread, each call timed in the thread's CPU time: the stream's cost per core, little moved by
        // other processes on a loaded machine (wall time counts their slices, process CPU time the pool's spinning).
        bool one = args.Contains("--one");
        if (hot || one) WorkerPool.Shared.MaxDegreeOfParallelism = 1;
        var random = new Random(1);
        var w = new float[outF * inF];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
        // --bits 8 --group 0|32|64|128: other formats' batch 2/4/8 over their own batch 1 (8 bits: VnniSmallBatch8 on
        // and off; other widths have no generated small-batch kernel, so "generated" and "managed" run the same code).
        int bits = args.SkipWhile(a => a != "--bits").Skip(1).Select(int.Parse).FirstOrDefault(4);
        int group = args.SkipWhile(a => a != "--group").Skip(1).Select(int.Parse).FirstOrDefault(64);
        // The generated kernel of this width (VnniSmallBatch4 or VnniSmallBatch8) on ("generated") and off ("managed").
        string kernelName = bits == 8 ? "Condense.Kernels.Jit.VnniSmallBatch8" : "Condense.Kernels.Jit.VnniSmallBatch4";
        var kernel = typeof(KernelOptions).Assembly.GetType(kernelName)
                     ?? throw new InvalidOperationException($"{kernelName} not found in the Condense assembly.");
        var off = kernel.GetProperty("DisabledOverride", BindingFlags.Static | BindingFlags.NonPublic)!;
        bool available = (bool)kernel.GetProperty("IsAvailable", BindingFlags.Static | BindingFlags.Public)!.GetValue(null)!;
        Console.WriteLine($"small-batch {bits}-bit kernel available: {available}; load {File.ReadAllText("/proc/loadavg").Trim()} at start");
        var first = GroupQuantizedWeight.Quantize(w, outF, inF, new QuantizationScheme(bits, group, false));
        w = null;
        if (!hot) copies = (int)Math.Max(4, (300L << 20) / first.Packed.Length); // about 300 MB of copies, far above L3
        var weights = new GroupQuantizedWeight[copies];
        for (int c = 0; c < copies; c++)
            weights[c] = GroupQuantizedWeight.FromParts(outF, inF, first.Scheme, (byte[])first.Packed.Clone(), (Half[])first.Scales.Clone(), (byte[]?)first.ZeroPoints?.Clone());
        var x = new float[8 * inF];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
        var y = new float[8 * outF];

        // --variants: the 4-bit kernel's experiment knobs too (PrefetchVariant 1 = no software prefetch, RowsCap = rows per
        // call); the 8-bit kernel has none (its PrefetchVariant was retired in session 15).
        var pfKnob = kernel.GetProperty("PrefetchVariant", BindingFlags.Static | BindingFlags.NonPublic);
        var capKnob = kernel.GetProperty("RowsCap", BindingFlags.Static | BindingFlags.NonPublic);
        bool variants = args.Contains("--variants") && pfKnob is not null; // the 8-bit kernel has no RowsCap: its variants' cap is ignored
        int pfDefault = pfKnob is null ? 0 : (int)pfKnob.GetValue(null)!; // "generated" rows run the kernel's default
        int[] batches = args.SkipWhile(a => a != "--batches").Skip(1).FirstOrDefault() is { } list ? list.Split(',').Select(int.Parse).ToArray() : [2, 4, 8];
        var cases = new List<(string Name, int Batch, bool Generated, int Pf, int Cap)> { ("b1", 1, true, pfDefault, 0) };
        foreach (int b in batches)
        {
            cases.Add(($"b{b} generated", b, true, pfDefault, 0));
            if (variants)
            {
                foreach (var v in (Environment.GetEnvironmentVariable("SB4_VARIANTS") ?? "1:0,0:1,2:0,2:1").Split(','))
                {
                    int pf = int.Parse(v.Split(':')[0]), cap = int.Parse(v.Split(':')[1]);
                    cases.Add(($"b{b} pf{pf} r{cap}", b, true, pf, cap));
                }
            }
            cases.Add(($"b{b} managed", b, false, pfDefault, 0));
        }
        var times = cases.ToDictionary(c => c.Name, _ => new List<double>());
        var ratios = cases.ToDictionary(c => c.Name, _ => new List<double>());
        var cpu = cases.ToDictionary(c => c.Name, _ => new List<double>());
        int next = 0;
        double Time(int batch, bool generated, List<double>? cpuPerCall = null, int pf = 0, int cap = 0)
        {
            off.SetValue(null, !generated);
            pfKnob?.SetValue(null, pf);
            capKnob?.SetValue(null, cap);
            try
            {
                var samples = new List<double>();
                var clock = Stopwatch.StartNew();
                double cpu0 = Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
                while (samples.Count < 5 || clock.ElapsedMilliseconds < 150 && samples.Count < 60)
                {
                    var q = weights[next++ % copies];
                    long t0 = Stopwatch.GetTimestamp();
                    double c0 = one ? Harness.Timing.ThreadSeconds() : 0;
                    q.MatMulTransposed(x.AsSpan(0, batch * inF), y.AsSpan(0, batch * outF), batch, ActivationPrecision.Int8);
                    samples.Add(one ? (Harness.Timing.ThreadSeconds() - c0) * 1e3 : Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
                cpuPerCall?.Add((Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds - cpu0) / samples.Count);
                return Median(samples);
            }
            finally { off.SetValue(null, false); pfKnob?.SetValue(null, pfDefault); capKnob?.SetValue(null, 0); }
        }
        foreach (var c in cases) Time(c.Batch, c.Generated, null, c.Pf, c.Cap); // warm-up: JIT, tile buffers
        if (args.SkipWhile(a => a != "--profile").Skip(1).FirstOrDefault() is { } only)
        {
            // For perf record: one case only, for about 20 s of calls.
            var c = cases.First(k => k.Name.Replace(" ", "-") == only);
            var clock = Stopwatch.StartNew();
            while (clock.ElapsedMilliseconds < 20000) Time(c.Batch, c.Generated, null, c.Pf, c.Cap);
            return 0;
        }
        for (int round = 0; round < rounds; round++)
        {
            var now = cases.ToDictionary(c => c.Name, c => Time(c.Batch, c.Generated, cpu[c.Name], c.Pf, c.Cap));
            foreach (var c in cases) { times[c.Name].Add(now[c.Name]); ratios[c.Name].Add(now[c.Name] / now["b1"]); }
            Console.Error.Write($"\r  round {round + 1} of {rounds}");
        }
        Console.Error.WriteLine();
        Console.WriteLine($"int{bits}-{(group == 0 ? "row" : $"g{group}")}-asym {outF}x{inF} {(hot ? "hot, 1 thread" : one ? "cold, 1 thread, thread CPU time" : "cold, 2 threads")}, {rounds} rounds; time / batch-1 time in the same round (median, min-max):");
        foreach (var c in cases)
        {
            var r = ratios[c.Name];
            Console.WriteLine($"  {c.Name,-14} {Median(times[c.Name]),8:F3} ms   {Median(r),5:F2}x b1  ({r.Min():F2}-{r.Max():F2})   CPU {Median(cpu[c.Name]),7:F3} ms/call");
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }
}
