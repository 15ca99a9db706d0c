using System.Diagnostics;
using System.Globalization;
using Condense.Benchmarks.Harness;
using Microsoft.CodeAnalysis;

namespace Condense.Benchmarks.Generator;

/// <summary>
/// `--quick generator`: ms per full generator + analyzer run on the 1,000-layer model (target &lt;= 100 ms), the growth
/// table up to 10,000 layers (flat and a mixture of experts; target: linear),
/// and whether an unrelated edit leaves every tracked step Cached/Unchanged (it must re-emit nothing).
/// </summary>
/// <remarks>
/// The full run is what a build pays, as the compiler runs it: the generator on the user's compilation, then the
/// analyzer on a compilation of its own (CompilationWithAnalyzers makes one with an event queue, so nothing the
/// generator bound is reused, as in a build, where analyzers see the compilation with the generated files). The
/// analyzer run includes Roslyn compiling the model to raise its events, which a build pays with or without
/// Condense: the no-op floor measures that, and "our share" is the full run minus that floor.
/// </remarks>
internal static class GeneratorQuick
{
    private const int WarmUpRuns = 5;
    private const int Runs = 25;

    public static int Run()
    {
        var setup = Stopwatch.StartNew();
        var workload = new GeneratorWorkload();
        Console.WriteLine($"Condense generator benchmark: one model, {GeneratorWorkload.Layers} annotated Linear layers (10 Quantize settings, every 50th KeepDense) + one unrelated file");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);

        // Correctness first: a benchmark of a run that fails or reports errors would measure the wrong thing.
        var first = workload.RunGenerator();
        var analyzerDiagnostics = workload.RunAnalyzer();
        int generatorDiagnostics = first.Diagnostics.Length;
        long generatedChars = first.GeneratedTrees.Sum(t => (long)t.Length);
        Console.WriteLine($"setup   : {setup.Elapsed.TotalMilliseconds:0} ms; generated {first.GeneratedTrees.Length} file(s), {generatedChars / 1000.0:0} k chars; " +
                          $"diagnostics: generator {generatorDiagnostics}, analyzer {analyzerDiagnostics.Length}" +
                          (first.Results.Any(r => r.Exception is not null) ? "; GENERATOR THREW" : ""));

        // Interleaved (one call of each per round) so a change of machine load hits every row alike.
        var runs = new (string Name, Action Run, string Target)[]
        {
            ("generator + analyzer, full run (new driver, fresh clone)", () => workload.RunFull(), "<= 100 ms"),
            ("  generator only", () => workload.RunGenerator(), ""),
            ("  analyzer only (CompressionPlanAnalyzer)", () => workload.RunAnalyzer(), ""),
            ("  (floor: a no-op analyzer on class declarations)", () => workload.RunNoOpAnalyzer(), ""),
            ("incremental run after an unrelated edit", () => workload.RunAfterUnrelatedEdit(), ""),
            // Not part of the full run: Roslyn compiling the generated file, which a build pays on top of the floor.
            ("(not in the full run: the floor + the generated file)", () => workload.RunNoOpAnalyzerWithGenerated(), ""),
        };
        const int Full = 0, Floor = 3;
        var times = runs.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < WarmUpRuns + Runs; round++)
        {
            for (int i = 0; i < runs.Length; i++)
            {
                // Untimed: garbage left by the previous row would otherwise be collected on this row's time.
                var sample = Timing.Sample(runs[i].Run, () => GC.Collect(), 1, 1, 0);
                if (round >= WarmUpRuns) times[i].AddRange(sample);
            }
        }

        var table = new TextTable("run", "median", "min", "runs", "target");
        for (int i = 0; i < runs.Length; i++)
        {
            double median = Timing.Median(times[i]);
            string target = runs[i].Target.Length == 0 ? "" : $"{runs[i].Target}: {(median <= 0.100 ? "met" : "NOT met")}";
            table.Add(runs[i].Name, Format.Time(median), Format.Time(times[i].Min()), Runs.ToString(CultureInfo.InvariantCulture), target);
            if (i == Floor)
            {
                // Median minus median and min minus min (a difference of two noisy samples has no useful min of its own).
                double shareMedian = Timing.Median(times[Full]) - Timing.Median(times[Floor]);
                table.Add("  our share: full run minus the floor", Format.Time(shareMedian), Format.Time(times[Full].Min() - times[Floor].Min()),
                    Runs.ToString(CultureInfo.InvariantCulture), $"<= 100 ms: {(shareMedian <= 0.100 ? "met" : "NOT met")}");
            }
        }
        Console.WriteLine();
        Console.Write(table.Render());

        var check = IncrementalCheck(workload.RunAfterUnrelatedEdit());
        Console.WriteLine();
        Console.WriteLine(check.Text);
        bool scaleOk = Scale(ScaleSizes);
        return check.Ok && scaleOk && generatorDiagnostics == 0 && analyzerDiagnostics.IsEmpty ? 0 : 1;
    }

    /// <summary>Model sizes of the growth table (Linear layers).</summary>
    public static readonly int[] ScaleSizes = [1000, 3000, 10_000];

    private const int ScaleRounds = 3;

    /// <summary>
    /// Growth: the flat model and a mixture of experts (nested block arrays) at each size. After a JIT warm-up on every
    /// workload, <see cref="ScaleRounds"/> rounds each run every (model, size) once in turn, so a change of machine load
    /// hits every row alike: generator, analyzer and the full run (min over rounds, wall clock), the full run's process
    /// CPU time (all threads; less sensitive to neighbours than wall time), the no-op analyzer's time (the binding Roslyn
    /// does for any analyzer on class declarations, nullable analysis included: in a flat class of 10,000 initialized
    /// fields it grew 15x for 10x the layers in session 16, most of the analyzer's own growth), microseconds per layer,
    /// and the growth of the per-layer time from the smallest size (1.0 = linear). Target: the full run linear in the layer count, i.e.
    /// the per-layer time at each larger size within 1.5x of that at the smallest (issue 13).
    /// </summary>
    public static bool Scale(IReadOnlyList<int> sizes)
    {
        Console.WriteLine();
        Console.WriteLine($"growth with the model size: {ScaleRounds} interleaved rounds after a warm-up, min over rounds; load average {LoadAverage()}");
        var cases = new List<(bool Moe, int Layers, GeneratorWorkload Workload)>();
        bool ok = true;
        foreach (bool moe in new[] { false, true })
            foreach (int layers in sizes)
            {
                var workload = new GeneratorWorkload(layers, moe);
                // Correctness and warm-up: the model must be error-free, and the JIT must have seen every path.
                int diagnostics = workload.RunGenerator().Diagnostics.Length + workload.RunAnalyzer().Length;
                if (diagnostics != 0) Console.WriteLine($"  {(moe ? "mixture of experts" : "flat")} {layers}: {diagnostics} diagnostics (expected none)");
                ok &= diagnostics == 0;
                workload.RunFull();
                cases.Add((moe, layers, workload));
            }
        var generator = cases.Select(_ => new List<double>()).ToArray();
        var analyzer = cases.Select(_ => new List<double>()).ToArray();
        var floor = cases.Select(_ => new List<double>()).ToArray();
        var full = cases.Select(_ => new List<double>()).ToArray();
        var cpu = cases.Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < ScaleRounds; round++)
            for (int c = 0; c < cases.Count; c++)
            {
                var workload = cases[c].Workload;
                generator[c].Add(Timed(() => workload.RunGenerator()).Wall);
                analyzer[c].Add(Timed(() => workload.RunAnalyzer()).Wall);
                floor[c].Add(Timed(() => workload.RunNoOpAnalyzer()).Wall);
                var (wall, processor) = Timed(() => workload.RunFull());
                full[c].Add(wall);
                cpu[c].Add(processor);
                Console.Error.Write($"\r  round {round + 1}/{ScaleRounds}, case {c + 1}/{cases.Count}        ");
            }
        Console.Error.Write($"\r{new string(' ', 40)}\r");

        var table = new TextTable("model", "layers", "generator", "analyzer", "no-op floor", "full run", "full run CPU", "full / layer", "CPU / layer", "growth per layer (wall, CPU)", "target");
        for (int c = 0; c < cases.Count; c++)
        {
            int first = cases.FindIndex(x => x.Moe == cases[c].Moe);
            double perLayer = full[c].Min() / cases[c].Layers, cpuPerLayer = cpu[c].Min() / cases[c].Layers;
            double growth = perLayer / (full[first].Min() / cases[first].Layers);
            double cpuGrowth = cpuPerLayer / (cpu[first].Min() / cases[first].Layers);
            bool met = growth <= 1.5 || cpuGrowth <= 1.5;
            table.Add(cases[c].Moe ? "mixture of experts" : "flat", cases[c].Layers.ToString("N0", CultureInfo.InvariantCulture),
                Format.Time(generator[c].Min()), Format.Time(analyzer[c].Min()), Format.Time(floor[c].Min()), Format.Time(full[c].Min()), Format.Time(cpu[c].Min()),
                $"{perLayer * 1e6:0} us", $"{cpuPerLayer * 1e6:0} us", $"{growth:0.00}x, {cpuGrowth:0.00}x",
                c == first ? "" : $"<= 1.5x: {(met ? "met" : "NOT met")}");
        }
        Console.Write(table.Render());
        Console.WriteLine($"load average at end: {LoadAverage()}");
        return ok;
    }

    /// <summary>Wall-clock and process CPU seconds of one call, after a collection (untimed) of the previous call's garbage.</summary>
    private static (double Wall, double Cpu) Timed(Action run)
    {
        GC.Collect();
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        run();
        double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        process.Refresh();
        return (wall, (process.TotalProcessorTime - cpu).TotalSeconds);
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    /// <summary>Every output of the generator's tracked steps must be Cached/Unchanged, and no source output may run.</summary>
    public static (bool Ok, string Text) IncrementalCheck(GeneratorDriverRunResult run)
    {
        var result = run.Results.Single();
        var lines = new List<string> { "incremental check after an unrelated edit (another syntax tree changed):" };
        bool ok = true;
        foreach (var name in GeneratorWorkload.StepNames)
        {
            var outputs = result.TrackedSteps.TryGetValue(name, out var steps) ? steps.SelectMany(s => s.Outputs).ToList() : [];
            var reasons = outputs.GroupBy(o => o.Reason).Select(g => $"{g.Key} {g.Count()}");
            bool stepOk = outputs.Count > 0 && outputs.All(o => o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
            ok &= stepOk;
            lines.Add($"  step {name,-12} {string.Join(", ", reasons),-24} {(stepOk ? "ok" : "NOT cached")}");
        }
        int reEmitted = result.TrackedOutputSteps.SelectMany(s => s.Value).SelectMany(s => s.Outputs)
            .Count(o => o.Reason is not IncrementalStepRunReason.Cached);
        ok &= reEmitted == 0;
        lines.Add($"  source outputs re-run: {reEmitted}");
        lines.Add($"  result: {(ok ? "every tracked step Cached/Unchanged, nothing re-emitted (target met)" : "NOT met")}");
        return (ok, string.Join(Environment.NewLine, lines));
    }
}
