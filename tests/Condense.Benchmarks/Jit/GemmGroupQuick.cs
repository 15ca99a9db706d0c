using System.Diagnostics;
using Condense.Kernels;
using Condense.Quantization;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// <c>--quick gemm-groups</c>: the group-wise int8-activation GEMM (MatMulNBits acc4's peer, batch &gt;= 16) on one
/// thread, weights in cache, in GMAC per CPU-second, alternating between the generated VNNI kernels (variant 1) and
/// the managed vpmaddwd ones (variant 0, CONDENSE_NO_JIT's path), the two checked for identical bits. Options:
/// <c>--shape OUTxIN</c> (4096x4096), <c>--batches 16,128</c>, <c>--variants 0,1</c>, <c>--rounds n</c> (5), <c>--only g32,int4</c>.
/// </summary>
public static class GemmGroupQuick
{
    public static int Run(string[] args)
    {
        string shape = Option(args, "--shape") ?? "4096x4096";
        int outF = int.Parse(shape.Split('x')[0]), inF = int.Parse(shape.Split('x')[1]);
        var batches = (Option(args, "--batches") ?? "16,128").Split(',').Select(int.Parse).ToArray();
        var variants = (Option(args, "--variants") ?? "0,1").Split(',').Select(int.Parse).ToArray();
        int rounds = int.Parse(Option(args, "--rounds") ?? "5");
        string[]? only = Option(args, "--only")?.Split(',');
        Console.WriteLine($"group GEMM, {outF}x{inF}, 1 thread, GMAC per CPU-second; load {File.ReadAllText("/proc/loadavg").Trim()}");
        var random = new Random(1);
        var w = new float[(long)outF * inF];
        for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
        var pool = WorkerPool.Shared;
        int savedDegree = pool.MaxDegreeOfParallelism;
        bool savedGenerated = KernelOptions.GeneratedCode;
        pool.MaxDegreeOfParallelism = 1;
        var schemes = new[]
        {
            new QuantizationScheme(8, 32, true), new QuantizationScheme(8, 64, true), new QuantizationScheme(8, 128, true),
            new QuantizationScheme(4, 32, false), new QuantizationScheme(4, 64, false), new QuantizationScheme(4, 128, false), new QuantizationScheme(4, 32, true),
        };
        try
        {
            foreach (var scheme in schemes)
            {
                if (only is not null && !only.Any(o => scheme.FormatName.Contains(o))) continue;
                var q = GroupQuantizedWeight.Quantize(w, outF, inF, scheme);
                foreach (int batch in batches)
                {
                    var x = new float[batch * inF];
                    for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
                    var rates = variants.ToDictionary(v => v, _ => new List<double>());
                    float[]? first = null;
                    bool same = true;
                    for (int round = 0; round < rounds; round++)
                        foreach (int variant in round % 2 == 0 ? variants : variants.Reverse())
                        {
                            KernelOptions.GeneratedCode = variant == 1;
                            var y = new float[batch * outF];
                            q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
                            if (first is null) first = y;
                            else same &= first.AsSpan().SequenceEqual(y);
                            int calls = 0;
                            double cpu0 = Cpu();
                            var clock = Stopwatch.StartNew();
                            while (clock.ElapsedMilliseconds < 300 || calls < 3) { q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8); calls++; }
                            rates[variant].Add((double)outF * inF * batch * calls / (Cpu() - cpu0) / 1e9);
                        }
                    Console.WriteLine($"{scheme.FormatName,-16} batch {batch,3}: " + string.Join("  ", variants.Select(v => $"v{v} {Median(rates[v]):F1}")) +
                                      $"  ratio v{variants[^1]}/v{variants[0]} {Median(rates[variants[^1]]) / Median(rates[variants[0]]):F2}  bits {(same ? "identical" : "DIFFER")}");
                }
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
}
