using System.Diagnostics;
using Condense.Kernels;
using Condense.Quantization;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>--quick gemv1</c>: the batch-1 int8-activation GEMV, managed and generated (VnniGemv, 1, 2 and 4 rows per pass), on one thread,
/// in weight bytes per CPU-second (a per-core figure a loaded machine disturbs far less than wall time): 4096x4096
/// (S1, repeated calls: the "hot" rows) and 512x4096 (L2-resident), alternating rounds, median of 5.
/// </summary>
public static class GemvQuick
{
    public static int Run(string[] args)
    {
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at start");
        var pool = WorkerPool.Shared;
        int savedDegree = pool.MaxDegreeOfParallelism;
        bool savedGenerated = KernelOptions.GeneratedCode;
        int savedRows = GemvKnobs.Rows, savedCall = GemvKnobs.RowsPerCall;
        long savedGate = GemvKnobs.GateBytes;
        int savedDistance = GemvKnobs.PrefetchDistance;
        GemvKnobs.GateBytes = long.MaxValue;
        var schemes = new[]
        {
            new QuantizationScheme(4, 32, false), new QuantizationScheme(4, 64, false), new QuantizationScheme(4, 128, false),
            new QuantizationScheme(4, 32, true), new QuantizationScheme(8, 32, true), new QuantizationScheme(8, 64, true),
            new QuantizationScheme(8, 128, true), new QuantizationScheme(8, 0, true),
        };
        int threads = args.Contains("--two") ? 2 : 1;
        try
        {
            pool.MaxDegreeOfParallelism = threads;
            // --shapes OUTxIN,... (default 4096x4096 and 512x4096; --s1-only: 4096x4096), --schemes int4-g64-asym,...
            // (names as printed), --variants 0,1,2,4 (0 = managed, n = generated with n rows per pass).
            var shapes = (Option(args, "--shapes") ?? (args.Contains("--s1-only") ? "4096x4096" : "4096x4096,512x4096"))
                .Split(',').Select(t => t.Split('x')).Select(t => (Out: int.Parse(t[0]), In: int.Parse(t[1]))).ToArray();
            var only = Option(args, "--schemes")?.Split(',');
            if (only != null) schemes = schemes.Where(sc => only.Contains(sc.FormatName)).ToArray();
            // A variant "r" or "r/c": r rows per pass (0 = the managed loop), c rows per kernel call (default 16).
            string[] variants = (Option(args, "--variants") ?? "0,1,2,4").Split(',');
            foreach (var (outF, inF) in shapes)
            {
                var random = new Random(1);
                var w = new float[outF * inF];
                for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
                var x = new float[inF];
                for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
                var y = new float[outF];
                foreach (var scheme in schemes)
                {
                    var q = GroupQuantizedWeight.Quantize(w, outF, inF, scheme);
                    double bytes = (double)outF * inF * scheme.Bits / 8;
                    // Variants: the managed loop (0) and the generated one at 1, 2 and 4 rows per pass, the
                    // 4 MiB gate lifted so every weight takes it.
                    var rates = variants.ToDictionary(v => v, _ => new List<double>());
                    for (int round = 0; round < 5; round++)
                        foreach (string v in variants)
                        {
                            int rows = int.Parse(v.Split('/')[0]);
                            KernelOptions.GeneratedCode = rows != 0;
                            if (rows != 0) GemvKnobs.Rows = rows;
                            var parts = v.Split('/');
                            GemvKnobs.RowsPerCall = parts.Length > 1 ? int.Parse(parts[1]) : 16;
                            // "r/c/p": p = prefetch distance in bytes of the generated loop (default: the library's, 0 since session 9)
                            int distance = parts.Length > 2 ? int.Parse(parts[2]) : savedDistance;
                            if (GemvKnobs.PrefetchDistance != distance) GemvKnobs.PrefetchDistance = distance;
                            q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                            int calls = 0;
                            double cpu0 = Cpu();
                            var clock = Stopwatch.StartNew();
                            while (clock.ElapsedMilliseconds < 300) { q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8); calls++; }
                            rates[v].Add(bytes * calls / (Cpu() - cpu0) / 1e9);
                        }
                    double m = Median(rates[variants[0]]);
                    Console.WriteLine($"{scheme.FormatName,-16} {outF}x{inF} batch 1, {threads} thread(s), GB per CPU-second: "
                        + string.Join(", ", variants.Select(v => $"{(v == "0" ? "managed" : $"generated {v}")} {Median(rates[v]):F1} ({Median(rates[v]) / m:F2}x)")));
                }
            }
        }
        finally
        {
            pool.MaxDegreeOfParallelism = savedDegree;
            KernelOptions.GeneratedCode = savedGenerated;
            GemvKnobs.Rows = savedRows;
            GemvKnobs.RowsPerCall = savedCall;
            GemvKnobs.GateBytes = savedGate;
            GemvKnobs.PrefetchDistance = savedDistance;
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }
}
