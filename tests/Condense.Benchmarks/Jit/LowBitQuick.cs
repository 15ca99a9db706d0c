using System.Diagnostics;
using System.Reflection;
using Condense.Kernels;
using Condense.Quantization;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>--quick lowbit</c>: batch 1 of int3-g128-asym and int2-g64-asym on S2 (11008x4096), the managed loop against the
/// generated 2/3-bit loop (VnniGemvLowBit) and its variants, alternated within every round; cold (a rotation over
/// about 300 MB of copies) and hot (one copy), one thread with each call timed in the thread's CPU time (a loaded
/// machine moves it far less than wall time); <c>--two</c>: 2 threads, wall time.
/// </summary>
/// <remarks>
/// <c>--variants</c> lists the cases: "m" the managed loop, "g" the generated loop with its defaults, "gR/P1/P2" the
/// generated loop with R rows per kernel call, prefetcht0 P1 bytes and prefetcht1 P2 bytes ahead (0 = none).
/// <c>--dump DIR</c> writes the S2 kernels' bytes for objdump. <c>--rounds n</c> (default 7).
/// </remarks>
public static class LowBitQuick
{
    public static int Run(string[] args)
    {
        if (args.SkipWhile(a => a != "--dump").Skip(1).FirstOrDefault() is { } dump)
        {
            // --dump DIR: the S2 kernels' machine code (int3-g128, int2-g64) for objdump -b binary -m i386:x86-64 -D.
            var type = typeof(KernelOptions).Assembly.GetType("Condense.Kernels.Jit.VnniGemvLowBit", throwOnError: true)!;
            var layoutFor = type.GetMethod("LayoutFor", BindingFlags.Static | BindingFlags.NonPublic)!;
            var emit = type.GetMethod("Emit", BindingFlags.Static | BindingFlags.NonPublic)!;
            foreach (var (bits, group) in new[] { (3, 128), (2, 64) })
            {
                object? layout = layoutFor.Invoke(null, [bits, group, 4096 / group, 4096, 4096 * bits / 8, (4096 / group + 15) & ~15]);
                File.WriteAllBytes(Path.Combine(dump, $"lowbit-int{bits}-g{group}.bin"), (byte[])emit.Invoke(null, [layout])!);
            }
            return 0;
        }
        int rounds = args.SkipWhile(a => a != "--rounds").Skip(1).Select(int.Parse).FirstOrDefault(7);
        string[] variants = (args.SkipWhile(a => a != "--variants").Skip(1).FirstOrDefault() ?? "m,g").Split(',');
        var kernel = typeof(KernelOptions).Assembly.GetType("Condense.Kernels.Jit.VnniGemvLowBit", throwOnError: true)!;
        PropertyInfo Knob(string name) => kernel.GetProperty(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)!;
        var enabled = Knob("Enabled");
        var rowsPerCall = Knob("RowsPerCall");
        var l1 = Knob("L1Prefetch");
        var l2 = Knob("L2Prefetch");
        int savedRows = (int)rowsPerCall.GetValue(null)!;
        int savedL1 = (int)l1.GetValue(null)!, savedL2 = (int)l2.GetValue(null)!;
        bool two = args.Contains("--two");
        WorkerPool.Shared.MaxDegreeOfParallelism = two ? 2 : 1;
        Console.WriteLine($"generated 2/3-bit loop supported: {Knob("IsSupported").GetValue(null)}; load {File.ReadAllText("/proc/loadavg").Trim()} at start");
        // --out n: another row count (e.g. 256: an L2-resident weight, the loops' compute cost alone).
        int outF = args.SkipWhile(a => a != "--out").Skip(1).Select(int.Parse).FirstOrDefault(11008);
        const int inF = 4096;
        var random = new Random(1);
        var x = new float[inF];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
        var y = new float[outF];
        foreach (var scheme in new[] { new QuantizationScheme(3, 128, false), new QuantizationScheme(2, 64, false) })
        {
            var w = new float[outF * inF];
            for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
            var first = GroupQuantizedWeight.Quantize(w, outF, inF, scheme);
            w = null;
            int copies = (int)Math.Min(2000, Math.Max(4, (300L << 20) / first.Packed.Length));
            var weights = new GroupQuantizedWeight[copies];
            for (int c = 0; c < copies; c++)
                weights[c] = GroupQuantizedWeight.FromParts(outF, inF, first.Scheme, (byte[])first.Packed.Clone(), (Half[])first.Scales.Clone(), (byte[]?)first.ZeroPoints?.Clone());
            int next = 0;
            double Time(string variant, bool hot)
            {
                enabled.SetValue(null, variant != "m");
                if (variant.StartsWith('g') && variant.Length > 1)
                {
                    var parts = variant[1..].Split('/');
                    rowsPerCall.SetValue(null, int.Parse(parts[0]));
                    l1.SetValue(null, parts.Length > 1 ? int.Parse(parts[1]) : savedL1);
                    l2.SetValue(null, parts.Length > 2 ? int.Parse(parts[2]) : savedL2);
                }
                else
                {
                    rowsPerCall.SetValue(null, savedRows);
                    l1.SetValue(null, savedL1);
                    l2.SetValue(null, savedL2);
                }
                try
                {
                    var samples = new List<double>();
                    var clock = Stopwatch.StartNew();
                    while (samples.Count < 5 || clock.ElapsedMilliseconds < 150 && samples.Count < 60)
                    {
                        var q = hot ? weights[0] : weights[next++ % copies];
                        long t0 = Stopwatch.GetTimestamp();
                        double c0 = two ? 0 : Harness.Timing.ThreadSeconds();
                        q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                        samples.Add(two ? Stopwatch.GetElapsedTime(t0).TotalMilliseconds : (Harness.Timing.ThreadSeconds() - c0) * 1e3);
                    }
                    return Median(samples);
                }
                finally
                {
                    enabled.SetValue(null, true);
                    rowsPerCall.SetValue(null, savedRows);
                    l1.SetValue(null, savedL1);
                    l2.SetValue(null, savedL2);
                }
            }
            var cases = variants.SelectMany(v => new[] { (V: v, Hot: false), (V: v, Hot: true) }).ToList();
            foreach (var c in cases) Time(c.V, c.Hot); // warm-up: JIT, kernels, scratch
            var times = cases.ToDictionary(c => c, _ => new List<double>());
            var ratios = cases.ToDictionary(c => c, _ => new List<double>());
            for (int round = 0; round < rounds; round++)
            {
                var now = cases.ToDictionary(c => c, c => Time(c.V, c.Hot));
                foreach (var c in cases)
                {
                    times[c].Add(now[c]);
                    ratios[c].Add(now[(variants[0], c.Hot)] / now[c]);
                }
                Console.Error.Write($"\r  {scheme.FormatName} round {round + 1} of {rounds}");
            }
            Console.Error.WriteLine();
            Console.WriteLine($"{scheme.FormatName} {outF}x{inF} batch 1, {(two ? "2 threads, wall" : "1 thread, thread CPU")} ms per call (median of {rounds} rounds), speed-up over '{variants[0]}' in the same round (median, min-max):");
            foreach (var c in cases)
            {
                var r = ratios[c];
                Console.WriteLine($"  {c.V,-8} {(c.Hot ? "hot " : "cold")} {Median(times[c]),8:F3} ms   {Median(r),5:F2}x  ({r.Min():F2}-{r.Max():F2})");
            }
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }
}
