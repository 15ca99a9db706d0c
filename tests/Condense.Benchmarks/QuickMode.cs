using System.Diagnostics;
using System.Globalization;
using Condense.Benchmarks.Cases;
using Condense.Benchmarks.Generator;
using Condense.Benchmarks.Harness;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks;

/// <summary>
/// The quick kernel table (BENCHMARKS.md harness rules): every kernel against the same-round bandwidth probe and
/// the same-round fp32 kernel, cold and hot, after JIT warm-up.
/// <code>
///   --quick                     the quick subset, one table in under a minute
///   --quick --full              every shape, batch and format (minutes)
///   --quick generator           generator + analyzer on a 1,000-layer model: ms per full run, incremental check;
///                               then growth at 1,000 / 3,000 / 10,000 layers, flat and mixture of experts
///   --quick generator growth    only the growth table
///   --quick load                ModelFile.Load of a 256 MiB model: checksum cost vs load time, allocations / file size
///   --quick gptq                seconds to GPTQ one 4096 x 4096 layer from 128 calibration rows
///   --quick --peers             side by side with ONNX Runtime on the same codes (Peers/PeersMode.cs; exits 1 on a wrong output)
///   --quick vnni | int8-peak    the generated VNNI code: register-only vpdpbusd GMAC per CPU-second (the int8 peak), int8 per row at S1/S2 x 16/128 rows
///                               as a fraction of it (1 thread per CPU-second, all threads wall), and the 8/4-bit GEMM on 1 thread with it on and off
///   --quick gemv1               the batch-1 GEMV with generated code on and off, 1 thread (--two: 2; --s1-only: 4096x4096 only), weight GB per CPU-second
///   --quick sgemm               fp32 GEMM and float32-activation panels, S1 batch 128, kernel variants alternated (1 thread CPU time; --two: 2 threads wall; --tile: the micro-kernel alone) (Gemv/SgemmQuick.cs)
///   --quick linear              the fp32 Linear forward (Gemm.MatMulTransposedB, what Ops.Linear runs) beside DenseWeight, MiniLM shapes in cache, batch 1-416 (Gemv/LinearQuick.cs)
///   --quick fp32-peak           the machine's fp32 FMA ceiling: register-only loop, GFLOP per CPU-second per core (the fp32 b128 target is 75% of 2 cores x it)
///   --quick readprobe           what governs the DRAM read rate: streams per thread, prefetch type/distance, huge pages, 2-thread split, FMA vs OR per line (Gemv/ReadProbeQuick.cs)
///   --quick poolprobe           WorkerPool's cost per call at 2 threads beyond its work: empty and compute-only bodies vs 1 thread (Gemv/PoolProbeQuick.cs)
///   --quick smallbatch          int4-g64 S2 at batch 2, 4, 8 over batch 1 (cold), the generated small-batch kernel on and off (--one: 1 thread, thread CPU time; --hot: 2,048 rows, 1 thread)
///   --quick lowbit              the batch-1 2- and 3-bit GEMV, generated VNNI loop vs managed, S2 cold and hot (Jit/LowBitQuick.cs)
///   --quick f32act              the batch-1 float32-activation kernel's loop variants, S2 cold, alternated next to the probe (--hot: 256 rows, 1 thread, CPU time)
///   --quick subspace [fastfood] one training step in a d = 10,000 subspace (Fastfood, Sparse) against the plain step, D = 199,210
///   --fp32-gemv-rows n          (any mode) W rows the fp32 batch-1..3 GEMV reads side by side: 1 or 4 (session 8's tile); default: 1 from 8 MiB of weight (the packed copy if the weight was made with packForBatch1), else 4; same bits
///   --f32-panels sgemm|old      (any mode) float32-activation batch >= 32: PackedSgemm's tiles (default) or session 8's dequantized panels; same bits
///   --gemv-prefetch n           (any mode) software prefetch distance (bytes, 0 = none) of the generated batch-1 GEMV; --gemv-prefetch-every n (1/2/4 lines), --gemv-prefetch-l2 (prefetcht1)
///   options: --only w1,w2 (cases whose name contains a word, and fp32)   --csv path   --rounds n (3)   --cold-mib n (512)   --budget-ms n (80, time per case per round)
/// </code>
/// </summary>
public static class QuickMode
{
    /// <summary>
    /// <c>--fp32-gemv-rows n</c>: W rows the fp32 batch-1..3 GEMV reads side by side (1 or 4, the session-8 tile; by
    /// default 1 for weights of 8 MiB or more, else 4; same bits), an internal setting of DenseMatMul reached by reflection, for A/B runs of one build.
    /// </summary>
    private static void SetFp32GemvRows(int rows)
    {
        var type = typeof(Condense.Kernels.KernelOptions).Assembly.GetType("Condense.Kernels.DenseMatMul", throwOnError: true)!;
        var property = type.GetProperty("GemvRowsSideBySide", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)
                       ?? throw new InvalidOperationException("DenseMatMul.GemvRowsSideBySide not found");
        property.SetValue(null, rows);
        Console.WriteLine($"knob    : fp32 batch-1 GEMV reads {rows} W row(s) side by side");
    }

    /// <summary><c>--f32-panels sgemm|old</c>: float32-activation batches >= 32 on PackedSgemm's tiles (default) or the session-8 dequantized panels; same bits.</summary>
    private static void SetF32Panels(bool sgemm)
    {
        var type = typeof(Condense.Kernels.KernelOptions).Assembly.GetType("Condense.Quantization.Float32ActivationKernel", throwOnError: true)!;
        (type.GetProperty("PanelsOnPackedSgemm", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)
         ?? throw new InvalidOperationException("Float32ActivationKernel.PanelsOnPackedSgemm not found")).SetValue(null, sgemm);
        Console.WriteLine($"knob    : float32-activation batch >= 32 on {(sgemm ? "PackedSgemm's tiles" : "the dequantized 64-row panels (session 8)")}");
    }

    public static int Run(string[] args)
    {
        if (args.Contains("--gemv-dump")) { Jit.GemvKnobs.Dump(args[Array.IndexOf(args, "--gemv-dump") + 1], args[Array.IndexOf(args, "--gemv-dump") + 2]); return 0; }
        if (args.Any(a => a.StartsWith("--gemv-", StringComparison.Ordinal) && a != "--gemv-dump")) Jit.GemvKnobs.Apply(args);
        if (Option(args, "--fp32-gemv-rows") is { } fp32Rows) SetFp32GemvRows(int.Parse(fp32Rows, CultureInfo.InvariantCulture));
        if (Option(args, "--f32-panels") is { } panels) SetF32Panels(panels == "sgemm");
        if (args.Contains("generator") && args.Contains("growth")) return GeneratorQuick.Scale(GeneratorQuick.ScaleSizes) ? 0 : 1;
        if (args.Contains("generator")) return GeneratorQuick.Run();
        if (args.Contains("load")) return Files.LoadQuick.Run();
        if (args.Contains("gptq")) return Gptq.GptqQuick.Run();
        if (args.Contains("--peers")) return Peers.PeersMode.Run(args);
        if (args.Contains("subspace")) return Training.SubspaceStepQuick.Run(fastfoodOnly: args.Contains("fastfood"));
        if (args.Contains("gemm-groups")) return Jit.GemmGroupQuick.Run(args);
        if (args.Contains("vnni") || args.Contains("int8-peak")) return Jit.VnniQuick.Run();
        if (args.Contains("readprobe")) return Gemv.ReadProbeQuick.Run(args);
        if (args.Contains("poolprobe")) return Gemv.PoolProbeQuick.Run(args);
        if (args.Contains("gemv-ab")) return Jit.GemvAbQuick.Run(args);
        if (args.Contains("gemv1")) return Jit.GemvQuick.Run(args);
        if (args.Contains("fp32-peak")) return Gemv.FloatPeakQuick.Run();
        if (args.Contains("sgemm")) return Gemv.SgemmQuick.Run(args);
        if (args.Contains("linear")) return Gemv.LinearQuick.Run(args);
        if (args.Contains("smallbatch")) return Jit.SmallBatchQuick.Run(args);
        if (args.Contains("lowbit")) return Jit.LowBitQuick.Run(args);
        if (args.Contains("f32act")) return Gemv.Float32ActQuick.Run(args);

        bool full = args.Contains("--full");
        string? csv = Option(args, "--csv");
        int rounds = int.Parse(Option(args, "--rounds") ?? "3", CultureInfo.InvariantCulture);
        long coldBytes = long.Parse(Option(args, "--cold-mib") ?? "512", CultureInfo.InvariantCulture) << 20;
        double budget = double.Parse(Option(args, "--budget-ms") ?? "80", CultureInfo.InvariantCulture) / 1e3;

        if (Option(args, "--only") is { } only) CaseCatalog.Only = only.Split(',', StringSplitOptions.RemoveEmptyEntries);
        var clock = Stopwatch.StartNew();
        Console.WriteLine($"Condense kernel benchmark, {(full ? "full" : "quick")} mode: {(full ? CaseCatalog.FullDescription : CaseCatalog.QuickDescription)}");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);
        Console.WriteLine($"method  : {rounds} rounds per group; each round = probe (1 GiB read, 1 and 2 threads), every case, probe again; " +
                          $"cold = rotation over >= {coldBytes >> 20} MiB of weight copies; >= 3 calls / {budget * 1e3:0} ms per case per round; " +
                          $"fp32 = {FormatName()}");

        var groups = full ? CaseCatalog.Full() : CaseCatalog.Quick();
        long peak = 0, probeHuge = 0;
        Runner runner;
        using (var probe = new BandwidthProbe())
        {
            runner = new Runner(probe, rounds, coldBytes, budget);
            foreach (var group in groups)
            {
                runner.RunGroup(group, message => Console.Error.Write($"\r  {message,-60}"));
                probeHuge = probe.HugePageBytes;
                peak = Math.Max(peak, Environment.WorkingSet);
                GC.Collect();
            }
        }
        Console.Error.Write($"\r{new string(' ', 64)}\r");

        var table = KernelTable(runner.Rows);
        Console.WriteLine($"probe   : read GB/s per round, 1 thread {Rounds(runner.Probe.OneThread)}; 2 threads {Rounds(runner.Probe.TwoThreads)} " +
                          $"(median {Format.Number(Timing.Median(runner.Probe.TwoThreads), "0.0")}; '% BW' uses each round's own 2-thread median); " +
                          $"buffer on 2 MiB pages: {probeHuge >> 20} MiB of {BandwidthProbe.Bytes >> 20}");
        Console.WriteLine();
        Console.Write(table.Render(leftAligned: 4));
        Console.WriteLine();
        Console.WriteLine(TargetSummary(runner.Rows));
        Console.WriteLine();
        Console.Write(References.Render(runner.Rows, runner.Probe));
        Console.WriteLine();
        Console.WriteLine("bits/w = ByteCount x 8 / (Out x In), scales, zero points and indices included; bytes/call = stored weight + fp32 activations;");
        Console.WriteLine("GB/s = bytes/call / median; % BW and x fp32 = median over rounds of the same-round ratio (fp32: same shape, batch and mode);");
        Console.WriteLine("spread = max / min of the per-round medians; target: BENCHMARKS.md, judged on cold rows (hot for the 64x256 overhead rows);");
        Console.WriteLine("x ref = reference time / this run's time (bandwidth: ours / theirs): a different run, so a loose comparison.");
        Console.WriteLine($"{runner.Rows.Count} rows in {clock.Elapsed.TotalSeconds:0.0} s, peak working set {peak >> 20} MiB");

        if (csv is not null)
        {
            File.WriteAllText(csv, table.ToCsv());
            Console.WriteLine($"csv: {csv}");
        }
        return 0;
    }

    private static TextTable KernelTable(IEnumerable<RowResult> rows)
    {
        var table = new TextTable("case", "shape", "batch", "mode", "bits/w", "bytes/call", "median", "GB/s", "% BW", "x fp32", "spread", "target");
        foreach (var r in rows)
        {
            string target = r.Target is null ? "" : $"{r.Target.Text}: {(r.TargetMet == true ? "met" : "NOT met")}";
            if (r.Target is not null && r.Target.Text.Contains("GFLOP", StringComparison.Ordinal))
                target += $" ({Format.Number(r.Gflops, "0")})";
            if (r.Target is not null && r.Target.Text.Contains("own b1", StringComparison.Ordinal))
                target += $" ({Format.Number(r.VsOwnBatch1, "0.00")}x)";
            table.Add(r.Name, r.Shape, r.Batch.ToString(CultureInfo.InvariantCulture), r.Mode,
                Format.Number(r.BitsPerWeight, "0.00"), Format.Bytes(r.BytesPerCall), Format.Time(r.MedianSeconds),
                Format.Number(r.GBps, "0.0"), Format.Number(r.PercentOfBandwidth, "0") + "%",
                r.Name == BenchCase.Fp32Name ? "1.00x" : double.IsNaN(r.SpeedUpVsFp32) ? "-" : Format.Number(r.SpeedUpVsFp32, "0.00") + "x",
                Format.Number(Timing.Spread(r.RoundMedians), "0.00"), target);
        }
        return table;
    }

    private static string TargetSummary(IReadOnlyList<RowResult> rows)
    {
        var judged = rows.Where(r => r.TargetMet is not null).ToList();
        string Names(bool met) => string.Join(", ", judged.Where(r => r.TargetMet == met).Select(r => $"{r.Name} {r.Shape.Split(' ')[0]} b{r.Batch}").Distinct());
        return $"targets met: {judged.Count(r => r.TargetMet == true)} of {judged.Count}" +
               $"\n  met    : {Names(true)}\n  not met: {Names(false)}";
    }

    private static string Rounds(IEnumerable<double> values) => string.Join(" / ", values.Select(v => Format.Number(v, "0.0")));

    private static string FormatName() => Fp32Storage.Format.Create(new float[16], 4, 4).Format;
}
