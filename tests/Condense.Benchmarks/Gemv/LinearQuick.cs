using System.Globalization;
using Condense.Benchmarks.Harness;
using Condense.Kernels;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// <c>--quick linear</c>: the float32 Linear forward of an uncompressed layer (<c>Gemm.MatMulTransposedB</c>, what
/// <c>Ops.Linear</c> runs) next to <c>DenseWeight.MatMulTransposed</c> (the fp32 row of the peers table) on the same
/// operands, in cache, per shape and batch: 1 thread, thread CPU time, GFLOP per CPU-second, both alternated in every
/// round. <c>--shapes OUTxIN,...</c> (MiniLM's 384x384, 1536x384, 384x1536), <c>--batches n,...</c>, <c>--rounds n</c> (5).
/// </summary>
public static class LinearQuick
{
    private static string? Option(string[] args, string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();

    public static int Run(string[] args)
    {
        int rounds = int.Parse(Option(args, "--rounds") ?? "5", CultureInfo.InvariantCulture);
        var shapes = (Option(args, "--shapes") ?? "384x384,1536x384,384x1536").Split(',')
            .Select(s => s.Split('x').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();
        var batches = (Option(args, "--batches") ?? "1,4,7,13,16,21,32,128,416").Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        int threads = args.Contains("--two") ? 2 : 1;
        WorkerPool.Shared.MaxDegreeOfParallelism = threads;
        Gemm.MaxDegreeOfParallelism = threads;
        Timing.ThreadCpuTime = threads == 1;
        Console.WriteLine($"fp32 Linear forward, {(threads == 1 ? "1 thread, thread CPU time" : "2 threads, wall time")}, weights in cache; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine($"{"shape",-10} {"batch",5} {"Gemm us",9} {"Dense us",9} {"Gemm GF/s",10} {"Dense GF/s",10} {"Dense/Gemm",10}");
        foreach (var shape in shapes)
        {
            int outF = shape[0], inF = shape[1];
            var random = new Random(1);
            var w = new float[outF * inF];
            for (int i = 0; i < w.Length; i++) w[i] = (float)(random.NextDouble() - 0.5);
            var dense = new DenseWeight(w, outF, inF);
            foreach (int batch in batches)
            {
                var x = new float[batch * inF];
                for (int i = 0; i < x.Length; i++) x[i] = (float)(random.NextDouble() - 0.5);
                var y = new float[batch * outF];
                var gemm = new List<double>();
                var direct = new List<double>();
                void G() => Gemm.MatMulTransposedB(x, w, y, batch, inF, outF);
                void D() => dense.MatMulTransposed(x, y, batch);
                for (int i = 0; i < 20; i++) { G(); D(); }
                for (int r = 0; r < rounds; r++)
                {
                    if (r % 2 == 0) { gemm.Add(Timing.Median(Timing.Sample(G, null, 5, 100_000, 0.04))); direct.Add(Timing.Median(Timing.Sample(D, null, 5, 100_000, 0.04))); }
                    else { direct.Add(Timing.Median(Timing.Sample(D, null, 5, 100_000, 0.04))); gemm.Add(Timing.Median(Timing.Sample(G, null, 5, 100_000, 0.04))); }
                }
                double g = Timing.Median(gemm), d = Timing.Median(direct), flop = 2.0 * batch * outF * inF;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{outF}x{inF,-5} {batch,5} {g * 1e6,9:F1} {d * 1e6,9:F1} {flop / g * 1e-9,10:F1} {flop / d * 1e-9,10:F1} {g / d,10:F2}"));
            }
        }
        return 0;
    }
}
