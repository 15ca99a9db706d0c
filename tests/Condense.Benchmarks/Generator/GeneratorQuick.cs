using System.Diagnostics;
using Condense.Benchmarks.Harness;
using Microsoft.CodeAnalysis;

namespace Condense.Benchmarks.Generator;

/// <summary>
/// `--quick generator`: ms per full generator + analyzer run on the 1,000-layer model (target &lt;= 100 ms),
/// and whether an unrelated edit leaves every tracked step Cached/Unchanged (it must re-emit nothing).
/// </summary>
internal static class GeneratorQuick
{
    private const int WarmUpRuns = 5;
    private const int Runs = 15;

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

        var table = new TextTable("run", "median", "min", "runs", "target");
        double full = Measure(() => workload.RunFull(), out double fullMin);
        table.Add("generator + analyzer, full run (new driver, fresh clone)", Format.Time(full), Format.Time(fullMin), Runs.ToString(),
            $"<= 100 ms: {(full <= 0.100 ? "met" : "NOT met")}");
        double gen = Measure(() => workload.RunGenerator(), out double genMin);
        table.Add("  generator only", Format.Time(gen), Format.Time(genMin), Runs.ToString(), "");
        double analyzer = Measure(() => workload.RunAnalyzer(), out double analyzerMin);
        table.Add("  analyzer only (CompressionPlanAnalyzer)", Format.Time(analyzer), Format.Time(analyzerMin), Runs.ToString(), "");
        double incremental = Measure(() => workload.RunAfterUnrelatedEdit(), out double incrementalMin);
        table.Add("incremental run after an unrelated edit", Format.Time(incremental), Format.Time(incrementalMin), Runs.ToString(), "");
        Console.WriteLine();
        Console.Write(table.Render());

        var check = IncrementalCheck(workload.RunAfterUnrelatedEdit());
        Console.WriteLine();
        Console.WriteLine(check.Text);
        return check.Ok && generatorDiagnostics == 0 && analyzerDiagnostics.IsEmpty ? 0 : 1;
    }

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

    private static double Measure(Action run, out double min)
    {
        for (int i = 0; i < WarmUpRuns; i++) run();
        var times = Timing.Sample(run, null, Runs, Runs, 0);
        min = times.Min();
        return Timing.Median(times);
    }
}
