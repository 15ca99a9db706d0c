using System.Diagnostics;
using System.Globalization;
using Condense.Benchmarks.Cases;
using Condense.Benchmarks.Harness;
using Condense.Kernels;
using Microsoft.ML.OnnxRuntime;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Peers;

/// <summary>
/// <c>--quick --peers</c>: Condense's kernels side by side with ONNX Runtime's (MLAS) on the same quantized codes, in one
/// process, with 2 threads each (issue 13). Every pairing is checked against a float64 reference before it is timed;
/// a pairing that fails is not timed and the run exits with 1.
/// <code>
///   --quick --peers                       S1 and S2, batch 1 (cold + hot), 16 and 128 (cold), every pairing
///   --quick --peers --self-check          seconds: feeds ORT deliberately mis-laid codes on a small shape and exits 1
///                                         unless the reference check rejects every one and passes the real layouts
///   options: --only w1,w2 (pairings whose name contains a word, e.g. int4-g64,acc0,dqmm,fp32)   --shapes S1,S2
///            --batches 1,16,128   --rounds n (3)   --cold-mib n (512)   --budget-ms n (80, per side, row and round)   --csv path
///            --warm-ms n (60: untimed calls per side of a hot row before its timed ones; see PeerSet.TimeRound)
///            --hot-all (every batch cold + hot, not batch 1 only: small weights that stay in cache between calls)
///            --cpu-time (1 thread each, both on the calling thread, timed in its CPU time: compute per core on a loaded machine)
/// </code>
/// </summary>
internal static class PeersMode
{
    public static int Run(string[] args)
    {
        int rounds = int.Parse(Option(args, "--rounds") ?? "3", CultureInfo.InvariantCulture);
        long coldBytes = long.Parse(Option(args, "--cold-mib") ?? "512", CultureInfo.InvariantCulture) << 20;
        double budget = double.Parse(Option(args, "--budget-ms") ?? "80", CultureInfo.InvariantCulture) / 1e3;
        double warm = double.Parse(Option(args, "--warm-ms") ?? "60", CultureInfo.InvariantCulture) / 1e3;
        string? csv = Option(args, "--csv");
        string[]? only = Option(args, "--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries);
        var shapes = (Option(args, "--shapes") ?? "S1,S2").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(Shape.Parse).ToList();
        var batches = (Option(args, "--batches") ?? "1,16,128").Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(b => int.Parse(b, CultureInfo.InvariantCulture)).ToList();
        var specs = PeerSpec.All.Where(s => only is null || only.Any(w => s.Name.Contains(w, StringComparison.Ordinal))).ToList();
        if (specs.Count == 0)
        {
            Console.Error.WriteLine($"--only {string.Join(',', only ?? [])} selects no pairing; names are: {string.Join(", ", PeerSpec.All.Select(s => s.Name))}");
            return 2;
        }

        bool cpuTime = args.Contains("--cpu-time");
        bool hotAll = args.Contains("--hot-all");
        s_threads = cpuTime ? 1 : 2;
        if (cpuTime)
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = 1;
            Timing.ThreadCpuTime = true;
        }

        var clock = Stopwatch.StartNew();
        string loadStart = LoadAverage();
        using var options = CreateSessionOptions(out var env);
        if (args.Contains("--self-check")) return SelfCheck(options);

        Console.WriteLine($"Condense vs ONNX Runtime {env.GetVersionString()} (CPU, MLAS), same codes, {s_threads} thread(s) each{(cpuTime ? ", timed in the calling thread's CPU time" : "")}: " +
                          $"{string.Join(", ", shapes.Select(s => s.Label))}; batch {string.Join(", ", batches)} (batch 1{(hotAll ? " and every other batch" : "")} cold + hot{(hotAll ? "" : ", others cold")})");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);
        Console.WriteLine($"load    : {loadStart} (/proc/loadavg at start)");
        Console.WriteLine($"method  : {rounds} rounds; per row and round, Condense and ORT each >= 3 calls / {budget * 1e3:0} ms, order alternating by round; each side after the other's pool threads parked (a 5 ms slice under 0.5 ms of process CPU); hot rows after {warm * 1e3:0} ms of untimed calls per side; " +
                          $"cold = rotation over >= {coldBytes >> 20} MiB of copies on both sides (ORT: one session per copy); " +
                          "ORT: one global intra-op pool of 2 threads, sequential, all graph optimizations, IOBinding on pre-allocated buffers");

        var rows = new List<PeerRow>();
        var problems = new List<string>();
        foreach (var shape in shapes)
        {
            var dense = RandomData.Weights(shape);
            foreach (var spec in specs)
            {
                var specRows = new List<PeerRow>();
                try
                {
                    using var set = new PeerSet(spec, shape, dense, coldBytes, options, batches, m => Console.Error.Write($"\r  {m,-70}"));
                    foreach (int batch in batches)
                    {
                        if (batch == 1 || hotAll) specRows.Add(NewRow(spec, set, shape, batch, cold: true));
                        specRows.Add(NewRow(spec, set, shape, batch, cold: batch != 1 && !hotAll));
                    }
                    Console.Error.Write($"\r  {spec.Name} {shape.Id}: checking against the float64 reference{"",-20}");
                    var found = set.Check(specRows);
                    if (found.Count > 0)
                    {
                        // Refuse to time a pairing whose outputs are wrong: its speed would mean nothing.
                        problems.AddRange(found);
                        continue;
                    }
                    set.WarmUp();
                    for (int round = 0; round < rounds; round++)
                    {
                        Console.Error.Write($"\r  {spec.Name} {shape.Id}: round {round + 1}/{rounds}{"",-30}");
                        GC.Collect();
                        set.TimeRound(specRows, round, budget, warm);
                    }
                    rows.AddRange(specRows);
                }
                catch (OnnxRuntimeException e)
                {
                    problems.Add($"{spec.Name} {shape.Label}: ONNX Runtime rejected the model or a run: {e.Message}");
                }
                GC.Collect();
            }
        }
        Console.Error.Write($"\r{new string(' ', 80)}\r");

        var table = Table(rows);
        Console.WriteLine();
        Console.Write(table.Render(leftAligned: 5));
        Console.WriteLine();
        Console.WriteLine(Summary(rows));
        Console.WriteLine($"load    : {loadStart} at start, {LoadAverage()} at end (/proc/loadavg: 1, 5, 15 min)");
        Console.WriteLine("ORT/C = ORT median / Condense median, median over rounds of the same-round ratio (> 1: Condense is faster); " +
                          "spread = max / min of the per-round ratios;");
        Console.WriteLine($"err = max |y - ref| / max |ref| over every output of batch rows 0, 1, b/2, b-1 against a float64 reference from the decoded codes " +
                          $"(every copy / session at batch 1); allowed {PeerSpec.Int8ActivationTolerance:G2} with int8 activations (acc4, Condense Int8), " +
                          $"{PeerSpec.ExactTolerance:G2} with float32 ones; Condense and ORT must also agree on every output within twice that.");
        Console.WriteLine($"{rows.Count} rows in {clock.Elapsed.TotalSeconds:0.0} s");
        if (csv is not null)
        {
            File.WriteAllText(csv, table.ToCsv());
            Console.WriteLine($"csv: {csv}");
        }

        if (problems.Count == 0) return 0;
        Console.WriteLine();
        Console.WriteLine($"FAILED: {problems.Count} check(s); those pairings were not timed:");
        foreach (var p in problems) Console.WriteLine("  " + p);
        return 1;
    }

    // One process-wide intra-op pool of 2 threads (the caller + 1 worker) and no per-session pools: the cold
    // rotation runs many sessions, and per-session pools would leave the previous session's worker spinning on
    // one of the 2 cores while the next session runs. Equivalent to IntraOpNumThreads = 2 for a single session.
    private static SessionOptions CreateSessionOptions(out OrtEnv env)
    {
        env = OrtEnv.CreateInstanceWithOptions(ref EnvironmentOptions());
        var options = new SessionOptions
        {
            IntraOpNumThreads = s_threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        options.DisablePerSessionThreads();
        return options;
    }

    /// <summary>
    /// The peers mode's own test (kept out of tests/Condense.Tests so neither Condense nor its tests depend on ONNX
    /// Runtime): each pairing on a small shape with the real layout must pass the reference check, and with each
    /// deliberate mistake in the ORT model must fail it. Exit 0 only when every expectation holds.
    /// </summary>
    private static int SelfCheck(SessionOptions options)
    {
        var shape = Shape.WarmUp;
        var dense = RandomData.Weights(shape);
        int[] batches = [1, 16];
        var plan = new (string Name, Corruption[] Mistakes)[]
        {
            ("int4-g64-asym/acc4", [Corruption.SwapNibbles, Corruption.ZeroPointsHighFirst, Corruption.NoZeroPoints, Corruption.ScalesShifted]),
            ("int4-g32-sym/acc0", [Corruption.SwapNibbles, Corruption.ScalesShifted]),
            ("int8-g32-sym/acc4", [Corruption.ScalesShifted]),
            ("int8-g128-sym/acc0", [Corruption.ScalesShifted]),
            ("int8-row-sym/dqmm", [Corruption.NotTransposed]),
            ("fp32/matmul", [Corruption.NotTransposed]),
        };
        var table = new TextTable("case", "ORT model", "err C", "err ORT", "check", "expected", "");
        int wrong = 0;
        foreach (var (name, mistakes) in plan)
        {
            var spec = PeerSpec.All.Single(s => s.Name == name);
            foreach (var corruption in mistakes.Prepend(Corruption.None))
            {
                using var set = new PeerSet(spec, shape, dense, coldBytes: 0, options, batches, _ => { }, corruption);
                var rows = batches.Select(b => NewRow(spec, set, shape, b, cold: false)).ToList();
                bool passed = set.Check(rows).Count == 0;
                bool expected = corruption == Corruption.None;
                if (passed != expected) wrong++;
                table.Add(name, corruption == Corruption.None ? "real layout" : corruption.ToString(),
                    rows.Max(r => r.CondenseError).ToString("0.0e0", CultureInfo.InvariantCulture),
                    rows.Max(r => r.OrtError).ToString("0.0e0", CultureInfo.InvariantCulture),
                    passed ? "pass" : "fail", expected ? "pass" : "fail", passed == expected ? "ok" : "WRONG");
            }
        }
        Console.WriteLine($"peers self-check on {shape.Label}, batch {string.Join(", ", batches)}: the reference check must pass real layouts and reject mistakes");
        Console.Write(table.Render(leftAligned: 2));
        Console.WriteLine(wrong == 0 ? "self-check: ok" : $"self-check: FAILED ({wrong} expectation(s) wrong)");
        return wrong == 0 ? 0 : 1;
    }

    private static PeerRow NewRow(PeerSpec spec, PeerSet set, Shape shape, int batch, bool cold) =>
        new() { Spec = spec, Peer = set.Peer, Shape = shape.Label, Batch = batch, Cold = cold };

    private static TextTable Table(IEnumerable<PeerRow> rows)
    {
        var table = new TextTable("case", "ORT peer", "shape", "batch", "mode", "Condense", "ORT", "ORT/C", "spread", "err C", "err ORT", "target");
        foreach (var r in rows)
        {
            double ratio = r.Ratio;
            table.Add(r.Spec.Name, r.Peer, r.Shape, r.Batch.ToString(CultureInfo.InvariantCulture), r.Mode,
                Format.Time(Timing.Median(r.CondenseTimes)), Format.Time(Timing.Median(r.OrtTimes)),
                Format.Number(ratio, "0.00") + "x", Format.Number(r.RatioSpread, "0.00"),
                r.CondenseError.ToString("0.0e0", CultureInfo.InvariantCulture), r.OrtError.ToString("0.0e0", CultureInfo.InvariantCulture),
                $"ratio >= 1.0: {(ratio >= 1.0 ? "met" : "NOT met")}");
        }
        return table;
    }

    private static string Summary(IReadOnlyList<PeerRow> rows)
    {
        static double GeomeanOf(IEnumerable<PeerRow> rs)
        {
            var ratios = rs.Select(r => r.Ratio).Where(double.IsFinite).ToList();
            return ratios.Count == 0 ? double.NaN : Math.Exp(ratios.Average(Math.Log));
        }
        static string Geomean(IEnumerable<PeerRow> rs) => Format.Number(GeomeanOf(rs), "0.00") + $"x over {rs.Count()} rows";
        // BENCHMARKS.md: >= 1.0 on every row, geomean >= 1.3.
        double all = GeomeanOf(rows);
        var lines = new List<string>
        {
            $"geomean ORT/Condense: {Geomean(rows)} (target >= 1.3: {(all >= 1.3 ? "met" : "NOT met")}); " +
            $"rows with ratio >= 1.0: {rows.Count(r => r.Ratio >= 1.0)} of {rows.Count}",
        };
        foreach (var group in rows.GroupBy(r => r.Spec.Op switch
                 {
                     PeerOp.MatMulNBits => $"MatMulNBits acc{r.Spec.AccuracyLevel}",
                     PeerOp.DynamicQuantizeMatMul => "DynamicQuantizeMatMul",
                     _ => "MatMul",
                 }))
            lines.Add($"  {group.Key,-22}: {Geomean(group)}");
        return string.Join(Environment.NewLine, lines);
    }

    private static EnvironmentCreationOptions s_environmentOptions;

    private static int s_threads = 2;

    private static ref EnvironmentCreationOptions EnvironmentOptions()
    {
        s_environmentOptions = new EnvironmentCreationOptions
        {
            logId = "Condense.Benchmarks",
            logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
            threadOptions = new OrtThreadingOptions { GlobalIntraOpNumThreads = s_threads, GlobalInterOpNumThreads = 1 },
        };
        return ref s_environmentOptions;
    }

    private static string LoadAverage()
    {
        const string Path = "/proc/loadavg";
        return File.Exists(Path) ? string.Join(" ", File.ReadAllText(Path).Split(' ').Take(3)) : "unknown (no /proc/loadavg)";
    }
}
