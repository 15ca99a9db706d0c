using System.Diagnostics;
using System.Reflection;
using Condense.Kernels;
using Condense.Quantization;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>--quick vnni</c>: the generated AVX-512 VNNI code's ceiling and use of it, in GMAC per CPU-second (a per-core
/// figure that a loaded machine disturbs far less than wall time): the register-only vpdpbusd loop
/// (VnniGemmKernel.Peak, internal, reached by reflection); int8 per row at the peers' shapes (S1, S2 at 16 and 128
/// rows) as a fraction of that peak, on one thread and on all; then the 8- and 4-bit GEMM on one thread with generated
/// code on and off, alternating. <c>--quick int8-peak</c> runs the same.
/// </summary>
public static class VnniQuick
{
    public static int Run()
    {
        var kernel = typeof(KernelOptions).Assembly.GetType("Condense.Kernels.Jit.VnniGemmKernel")
                     ?? throw new InvalidOperationException("Condense.Kernels.Jit.VnniGemmKernel not found in the Condense assembly.");
        bool available = (bool)kernel.GetProperty("IsAvailable", BindingFlags.Static | BindingFlags.Public)!.GetValue(null)!;
        Console.WriteLine($"generated VNNI kernels available: {available}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        if (!available) return 0;

        var peak = kernel.GetMethod("Peak", BindingFlags.Static | BindingFlags.Public)!;
        var peaks = new List<double>();
        for (int round = 0; round < 5; round++)
        {
            const long iterations = 20_000_000; // x 24 vpdpbusd x 64 MACs
            double cpu0 = Cpu();
            peak.Invoke(null, [iterations]);
            peaks.Add(iterations * 24.0 * 64 / (Cpu() - cpu0) / 1e9);
            Console.WriteLine($"register-only vpdpbusd loop: {peaks[^1]:F1} GMAC per CPU-second");
        }
        double core = Median(peaks);
        Console.WriteLine($"int8 peak: {core:F1} GMAC per CPU-second per core (median of 5), {Environment.ProcessorCount} x = {Environment.ProcessorCount * core:F0} GMAC/s for the machine");
        PerRowFractions(core);

        const int outF = 4096, inF = 4096, batch = 128;
        var random = new Random(1);
        var w = new float[outF * inF];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
        var x = new float[batch * inF];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
        var y = new float[batch * outF];
        var pool = WorkerPool.Shared;
        int savedDegree = pool.MaxDegreeOfParallelism;
        bool savedGenerated = KernelOptions.GeneratedCode;
        try
        {
            pool.MaxDegreeOfParallelism = 1;
            foreach (var scheme in new[] { new QuantizationScheme(8, 0, true), new QuantizationScheme(8, 32, true), new QuantizationScheme(8, 128, true), new QuantizationScheme(4, 64, false) })
            {
                var q = GroupQuantizedWeight.Quantize(w, outF, inF, scheme);
                var rates = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
                for (int round = 0; round < 3; round++)
                    foreach (bool generated in new[] { true, false })
                    {
                        KernelOptions.GeneratedCode = generated;
                        q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
                        int calls = 0;
                        double cpu0 = Cpu();
                        var clock = Stopwatch.StartNew();
                        while (clock.ElapsedMilliseconds < 1000) { q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8); calls++; }
                        rates[generated].Add((double)outF * inF * batch * calls / (Cpu() - cpu0) / 1e9);
                    }
                Console.WriteLine($"{scheme.FormatName,-16} {outF}x{inF} batch {batch}, 1 thread: generated {Median(rates[true]):F1} ({Median(rates[true]) / core:P0} of peak), managed {Median(rates[false]):F1} GMAC per CPU-second (median of 3 alternating rounds)");
            }
        }
        finally
        {
            pool.MaxDegreeOfParallelism = savedDegree;
            KernelOptions.GeneratedCode = savedGenerated;
        }
        Console.WriteLine($"load {File.ReadAllText("/proc/loadavg").Trim()} at end");
        return 0;
    }

    /// <summary>
    /// int8 per row (DynamicQuantizeMatMul's peer) at the peers' shapes and batches, weights in cache (one copy, repeated
    /// calls): one thread in GMAC per CPU-second against the core's peak, and all threads in wall GMAC/s against
    /// the machine's (cores x peak).
    /// </summary>
    private static void PerRowFractions(double core)
    {
        var pool = WorkerPool.Shared;
        int savedDegree = pool.MaxDegreeOfParallelism;
        try
        {
            foreach (var (outF, inF) in new[] { (4096, 4096), (11008, 4096) })
            {
                var random = new Random(2);
                var w = new float[(long)outF * inF];
                for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
                var q = GroupQuantizedWeight.Quantize(w, outF, inF, new QuantizationScheme(8, 0, true));
                foreach (int batch in new[] { 16, 128 })
                {
                    var x = new float[batch * inF];
                    for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
                    var y = new float[batch * outF];
                    double macs = (double)outF * inF * batch;
                    var one = new List<double>();
                    var all = new List<double>();
                    for (int round = 0; round < 3; round++)
                    {
                        pool.MaxDegreeOfParallelism = 1;
                        q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
                        int calls = 0;
                        double cpu0 = Cpu();
                        var clock = Stopwatch.StartNew();
                        while (clock.ElapsedMilliseconds < 500) { q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8); calls++; }
                        one.Add(macs * calls / (Cpu() - cpu0) / 1e9);
                        pool.MaxDegreeOfParallelism = savedDegree;
                        q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
                        calls = 0;
                        clock.Restart();
                        while (clock.ElapsedMilliseconds < 500) { q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8); calls++; }
                        all.Add(macs * calls / clock.Elapsed.TotalSeconds / 1e9);
                    }
                    double machine = core * Math.Min(savedDegree, Environment.ProcessorCount);
                    Console.WriteLine($"int8-row-sym {outF}x{inF} batch {batch,3}, in cache: 1 thread {Median(one):F1} GMAC per CPU-second ({Median(one) / core:P0} of the core's peak); " +
                                      $"{savedDegree} threads {Median(all):F1} GMAC/s wall ({Median(all) / machine:P0} of {machine:F0}) (medians of 3 alternating rounds)");
                }
            }
        }
        finally { pool.MaxDegreeOfParallelism = savedDegree; }
    }
}
