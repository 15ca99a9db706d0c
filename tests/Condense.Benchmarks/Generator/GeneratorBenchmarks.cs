using BenchmarkDotNet.Attributes;

namespace Condense.Benchmarks.Generator;

/// <summary>
/// Generator + analyzer on a model with 1,000 annotated layers (target: &lt;= 100 ms per full run), and the
/// incremental run after an unrelated edit. `--quick generator` prints the same numbers plus the cache check.
/// </summary>
[MemoryDiagnoser]
public class GeneratorBenchmarks
{
    private GeneratorWorkload _workload = null!;

    [GlobalSetup]
    public void Setup() => _workload = new GeneratorWorkload();

    /// <summary>New driver, fresh clone: generator then CompressionPlanAnalyzer.</summary>
    [Benchmark(Baseline = true)]
    public int FullRun() => _workload.RunFull();

    [Benchmark]
    public int GeneratorOnly() => _workload.RunGenerator().GeneratedTrees.Length;

    [Benchmark]
    public int AnalyzerOnly() => _workload.RunAnalyzer().Length;

    /// <summary>The analyzer driver's floor: a no-op analyzer on the same syntax nodes.</summary>
    [Benchmark]
    public int NoOpAnalyzer() => _workload.RunNoOpAnalyzer().Length;

    /// <summary>The floor with the generated file in the compilation: Roslyn compiling Condense's output.</summary>
    [Benchmark]
    public int NoOpAnalyzerWithGenerated() => _workload.RunNoOpAnalyzerWithGenerated().Length;

    /// <summary>The primed driver on the compilation with another file edited: must re-emit nothing.</summary>
    [Benchmark]
    public int IncrementalAfterUnrelatedEdit() => _workload.RunAfterUnrelatedEdit().GeneratedTrees.Length;
}
