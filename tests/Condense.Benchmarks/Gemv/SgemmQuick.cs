using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Condense.Benchmarks.Harness;
using Condense.Kernels;
using Condense.Quantization;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// <c>--quick sgemm</c>: the batch >= 32 float32 GEMMs (fp32 <c>DenseMatMul</c> and the float32-activation panels, i.e.
/// ORT's MatMul and MatMulNBits accuracy_level 0 peers) on S1 (4096x4096) at batch 128, with the kernel variants
/// alternated in every round, so a loaded machine disturbs all alike. Default: 1 thread, thread CPU time, GFLOP per
/// CPU-second (compare with <c>--quick fp32-peak</c>); <c>--two</c>: 2 threads, wall time.
/// <c>--rounds n</c> (5), <c>--batch n</c> (128), <c>--shape OxI</c> (4096x4096), <c>--variants a,b</c> (names starting so).
/// Session 13: <c>--tile</c> times the micro-kernel alone (L1 and L2 operands); the <c>-packonly</c>
/// variants run a call without its tiles (x packing, W packing or decoding, prefetches: what a call spends around
/// them). Session 19: <c>--two --pool-trace n</c> ends with n traced calls per variant (WorkerPool's timeline: when each
/// thread starts, how far apart they end; see <c>Jit/PoolTrace</c>).
/// </summary>
public static class SgemmQuick
{
    private static readonly Assembly s_condense = typeof(KernelOptions).Assembly;

    private static void Set(string type, string name, object value) =>
        (s_condense.GetType(type, throwOnError: true)!.GetProperty(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
         ?? throw new InvalidOperationException($"{type}.{name} not found: the knob was renamed.")).SetValue(null, value);

    private static string? Option(string[] args, string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();

    public static int Run(string[] args)
    {
        int rounds = int.Parse(Option(args, "--rounds") ?? "5", CultureInfo.InvariantCulture);
        int batch = int.Parse(Option(args, "--batch") ?? "128", CultureInfo.InvariantCulture);
        var shape = (Option(args, "--shape") ?? "4096x4096").Split('x').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        int outF = shape[0], inF = shape[1];
        bool two = args.Contains("--two");
        // --two --cpu: process CPU time per call (both threads, their waits included) instead of wall time.
        bool processCpu = two && args.Contains("--cpu");
        string? only = Option(args, "--variants");
        if (!two) WorkerPool.Shared.MaxDegreeOfParallelism = 1;
        if (args.Contains("--tile")) return TileRates(rounds);
        Console.WriteLine($"sgemm {outF}x{inF} batch {batch}, {(processCpu ? "2 threads, process CPU time (GFLOP per CPU-second of both)" : two ? "2 threads, wall time" : "1 thread, thread CPU time")}; load {File.ReadAllText("/proc/loadavg").Trim()} at start");

        var random = new Random(1);
        var dense = new float[outF * inF];
        for (int i = 0; i < dense.Length; i++) dense[i] = (float)(random.NextDouble() - 0.5);
        var x = new float[batch * inF];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
        var y = new float[batch * outF];
        var fp32 = new DenseWeight(dense, outF, inF);
        var q4Lazy = new Lazy<GroupQuantizedWeight>(() => GroupQuantizedWeight.Quantize(dense, outF, inF, new QuantizationScheme(4, 64, false)));
        var q8Lazy = new Lazy<GroupQuantizedWeight>(() => GroupQuantizedWeight.Quantize(dense, outF, inF, new QuantizationScheme(8, 32, true)));

        const string Sgemm = "Condense.Kernels.PackedSgemm", F32 = "Condense.Quantization.Float32ActivationKernel";
        var q4g32Lazy = new Lazy<GroupQuantizedWeight>(() => GroupQuantizedWeight.Quantize(dense, outF, inF, new QuantizationScheme(4, 32, false)));
        void I4() { Set(F32, "PanelsOnPackedSgemm", true); S11(); }
        // Session 11 knob (same bits): chunks per pass; the k block at its default.
        void S11(int pass = 4) { Set(Sgemm, "KBlock", 128); Set(Sgemm, "ProbeSkipTiles", false); Set(Sgemm, "ChunksPerPass", pass); }
        var variants = new List<(string Name, Action Apply, Action Call)>
        {
            ("fp32-s11", () => { Set(Sgemm, "Enabled", true); S11(); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("fp32-kc256", () => { Set(Sgemm, "Enabled", true); S11(); Set(Sgemm, "KBlock", 256); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("fp32-kc512", () => { Set(Sgemm, "Enabled", true); S11(); Set(Sgemm, "KBlock", 512); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("fp32-p1", () => { Set(Sgemm, "Enabled", true); S11(1); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("fp32-p2", () => { Set(Sgemm, "Enabled", true); S11(2); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("i4g64-s11", () => { Set(F32, "PanelsOnPackedSgemm", true); S11(); }, () => q4Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("i4g32-s13", () => I4(), () => q4g32Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("fp32-packonly", () => { Set(Sgemm, "Enabled", true); S11(); Set(Sgemm, "ProbeSkipTiles", true); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("i4g64-packonly", () => { I4(); Set(Sgemm, "ProbeSkipTiles", true); }, () => q4Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("i4g32-packonly", () => { I4(); Set(Sgemm, "ProbeSkipTiles", true); }, () => q4g32Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("i4g64-kc256", () => { Set(F32, "PanelsOnPackedSgemm", true); S11(); Set(Sgemm, "KBlock", 256); }, () => q4Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("i4g64-kc512", () => { Set(F32, "PanelsOnPackedSgemm", true); S11(); Set(Sgemm, "KBlock", 512); }, () => q4Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("fp32-s7", () => { Set(Sgemm, "Enabled", false); }, () => fp32.MatMulTransposed(x, y, batch)),
            ("i4g64-old", () => Set(F32, "PanelsOnPackedSgemm", false), () => q4Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("i8g32-old", () => Set(F32, "PanelsOnPackedSgemm", false), () => q8Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
            ("i8g32-new", () => Set(F32, "PanelsOnPackedSgemm", true), () => q8Lazy.Value.MatMulTransposed(x, y, batch, ActivationPrecision.Float32)),
        };
        if (only is not null) variants = variants.Where(v => only.Split(',').Any(o => v.Name.StartsWith(o, StringComparison.Ordinal))).ToList();
        double flop = 2.0 * batch * outF * inF;
        var results = variants.ToDictionary(v => v.Name, _ => new List<double>());
        foreach (var v in variants) { Set(Sgemm, "ProbeSkipTiles", false); v.Apply(); for (int i = 0; i < 3; i++) v.Call(); }
        for (int round = 0; round < rounds; round++)
        {
            foreach (var v in (round % 2 == 0 ? variants : Enumerable.Reverse(variants)))
            {
                Set(Sgemm, "ProbeSkipTiles", false); v.Apply();
                var samples = new List<double>();
                var clock = Stopwatch.StartNew();
                while (samples.Count < 3 || clock.ElapsedMilliseconds < 400 && samples.Count < 40)
                {
                    double c0 = processCpu ? Timing.ProcessSeconds() : two ? 0 : Timing.ThreadSeconds();
                    long t0 = Stopwatch.GetTimestamp();
                    v.Call();
                    samples.Add(processCpu ? Timing.ProcessSeconds() - c0 : two ? Stopwatch.GetElapsedTime(t0).TotalSeconds : Timing.ThreadSeconds() - c0);
                }
                samples.Sort();
                results[v.Name].Add(samples[samples.Count / 2]);
            }
            Console.WriteLine($"round {round + 1}: " + string.Join("  ", variants.Select(v => $"{v.Name} {results[v.Name][^1] * 1e3:F2} ms")));
        }
        // --pool-trace n (with --two): n more calls per variant with WorkerPool's timeline marks on (Jit/PoolTrace);
        // every call is two pool jobs, x packing (short) and the chunks.
        if (two && Option(args, "--pool-trace") is { } traced)
        {
            int n = int.Parse(traced, CultureInfo.InvariantCulture);
            foreach (var v in variants)
            {
                Set(Sgemm, "ProbeSkipTiles", false); v.Apply();
                Jit.PoolTrace.Start(n * 400);
                for (int i = 0; i < n; i++) v.Call();
                Jit.PoolTrace.Print(v.Name);
            }
        }
        Set(Sgemm, "Enabled", true); S11();
        Set(F32, "PanelsOnPackedSgemm", true);
        foreach (var v in variants)
        {
            var r = results[v.Name].OrderBy(t => t).ToList();
            double med = r[r.Count / 2];
            Console.WriteLine($"{v.Name,-10} median {med * 1e3,8:F2} ms  {flop / med / 1e9,6:F1} GFLOP/{(two && !processCpu ? "s" : "CPU-s")}  (best {r[0] * 1e3:F2}, worst {r[^1] * 1e3:F2})");
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }

    /// <summary>
    /// <c>--tile</c>: the micro-kernel alone (<c>PackedSgemm.TileProbe</c>), 1 thread, GFLOP per CPU-second: the 8 x 48,
    /// 8 x 32 and 8 x 16 tiles with their operands in L1 (one 8 x 128 panel, a 128 x 48 x slice) and in L2 (8 panels of
    /// 512 features, a 512-feature x slice). Compare with <c>--quick fp32-peak</c>.
    /// </summary>
    private static int TileRates(int rounds)
    {
        var probe = s_condense.GetType("Condense.Kernels.PackedSgemm", throwOnError: true)!
            .GetMethod("TileProbe", BindingFlags.Static | BindingFlags.NonPublic)!;
        double Run(int vectors, int kc, int groups, int reps) => (double)probe.Invoke(null, new object[] { vectors, kc, groups, reps })!;
        foreach (int v in new[] { 3, 2, 1 }) { Run(v, 128, 1, 20000); Run(v, 512, 8, 500); }
        for (int round = 0; round < rounds; round++)
        {
            var parts = new List<string>();
            foreach (int v in new[] { 3, 2, 1 })
                foreach (var (kc, groups, reps, where) in new[] { (128, 1, 200000 / v, "L1"), (512, 8, 6000 / v, "L2") })
                {
                    double c0 = Timing.ThreadSeconds();
                    double flops = Run(v, kc, groups, reps);
                    parts.Add($"8x{16 * v} {where} {flops / (Timing.ThreadSeconds() - c0) / 1e9:F1}");
                }
            Console.WriteLine($"round {round + 1} (GFLOP/CPU-s): " + string.Join("  ", parts));
        }
        return 0;
    }
}
