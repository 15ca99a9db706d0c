using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Condense.Benchmarks.Cases;
using Condense.Benchmarks.Harness;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// <c>--quick fp32-peak</c>: the machine's float32 FMA ceiling, from a register-only loop of 12 independent
/// accumulators (enough to cover the FMA latency at one or two FMAs a cycle), in GFLOP per CPU-second of each thread
/// (a per-core figure a loaded machine disturbs far less than wall time), on one thread and on two at once, at 512 and
/// 256 bits. The fp32 batch-128 target of the quick table is a fraction of 2 cores x this (BENCHMARKS.md: targets are
/// relative to the machine).
/// </summary>
public static class FloatPeakQuick
{
    private const long Iterations = 40_000_000;

    public static int Run()
    {
        Console.WriteLine($"fp32 FMA peak (register-only loop, 12 accumulators); load {File.ReadAllText("/proc/loadavg").Trim()}");
        if (!Vector512.IsHardwareAccelerated && !Vector256.IsHardwareAccelerated)
        {
            Console.WriteLine("no 256- or 512-bit vectors: nothing to measure");
            return 0;
        }
        Loop512(1000);
        Loop256(1000);
        double best = 0;
        foreach (int threads in new[] { 1, 2 })
            foreach (bool wide in new[] { true, false })
            {
                if (wide ? !Vector512.IsHardwareAccelerated : !Vector256.IsHardwareAccelerated) continue;
                for (int round = 0; round < 3; round++)
                {
                    var perThread = new double[threads];
                    var workers = new Thread[threads];
                    for (int t = 0; t < threads; t++)
                    {
                        int index = t;
                        workers[t] = new Thread(() =>
                        {
                            double c0 = Timing.ThreadSeconds();
                            float sink = wide ? Loop512(Iterations) : Loop256(Iterations);
                            double seconds = Timing.ThreadSeconds() - c0;
                            perThread[index] = 2.0 * 12 * (wide ? 16 : 8) * Iterations / seconds / 1e9 + (sink == float.MinValue ? 1 : 0);
                        });
                        workers[t].Start();
                    }
                    foreach (var w in workers) w.Join();
                    best = Math.Max(best, perThread.Min());
                    Console.WriteLine($"{(wide ? 512 : 256)} bits, {threads} thread(s): " +
                                      string.Join(" / ", perThread.Select(g => g.ToString("F1", CultureInfo.InvariantCulture))) + " GFLOP per CPU-second");
                }
            }
        Console.WriteLine($"peak: {best:F1} GFLOP/s per core; {Environment.ProcessorCount} cores: {best * Environment.ProcessorCount:F0} GFLOP/s " +
                          $"(the quick table's fp32 b128 target is {CaseCatalogTargets.Fp32Batch128Fraction * 100:0}% of {CaseCatalogTargets.Fp32PeakGflops:0} GFLOP/s, the reference machine's peak measured quiet; under load the per-CPU-second figure falls too)");
        return 0;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop512(long iterations)
    {
        var m = Vector512.Create(0.9999f);
        var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = a, c1 = c0 + a, c2 = c1 + a, c3 = c2 + a, c4 = c3 + a, c5 = c4 + a, c6 = c5 + a, c7 = c6 + a, c8 = c7 + a, c9 = c8 + a, c10 = c9 + a, c11 = c10 + a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, m, a); c1 = Vector512.FusedMultiplyAdd(c1, m, a); c2 = Vector512.FusedMultiplyAdd(c2, m, a);
            c3 = Vector512.FusedMultiplyAdd(c3, m, a); c4 = Vector512.FusedMultiplyAdd(c4, m, a); c5 = Vector512.FusedMultiplyAdd(c5, m, a);
            c6 = Vector512.FusedMultiplyAdd(c6, m, a); c7 = Vector512.FusedMultiplyAdd(c7, m, a); c8 = Vector512.FusedMultiplyAdd(c8, m, a);
            c9 = Vector512.FusedMultiplyAdd(c9, m, a); c10 = Vector512.FusedMultiplyAdd(c10, m, a); c11 = Vector512.FusedMultiplyAdd(c11, m, a);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop256(long iterations)
    {
        var m = Vector256.Create(0.9999f);
        var a = Vector256.Create(1e-7f);
        Vector256<float> c0 = a, c1 = c0 + a, c2 = c1 + a, c3 = c2 + a, c4 = c3 + a, c5 = c4 + a, c6 = c5 + a, c7 = c6 + a, c8 = c7 + a, c9 = c8 + a, c10 = c9 + a, c11 = c10 + a;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Vector256.FusedMultiplyAdd(c0, m, a); c1 = Vector256.FusedMultiplyAdd(c1, m, a); c2 = Vector256.FusedMultiplyAdd(c2, m, a);
            c3 = Vector256.FusedMultiplyAdd(c3, m, a); c4 = Vector256.FusedMultiplyAdd(c4, m, a); c5 = Vector256.FusedMultiplyAdd(c5, m, a);
            c6 = Vector256.FusedMultiplyAdd(c6, m, a); c7 = Vector256.FusedMultiplyAdd(c7, m, a); c8 = Vector256.FusedMultiplyAdd(c8, m, a);
            c9 = Vector256.FusedMultiplyAdd(c9, m, a); c10 = Vector256.FusedMultiplyAdd(c10, m, a); c11 = Vector256.FusedMultiplyAdd(c11, m, a);
        }
        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
