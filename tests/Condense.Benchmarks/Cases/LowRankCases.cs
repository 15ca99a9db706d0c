using BenchmarkDotNet.Attributes;
using Condense.Benchmarks.Gemv;
using Condense.Benchmarks.Harness;
using Condense.LowRank;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// Low-rank W ~ U V (formats.md 5). The timing does not depend on the factors' values, so they are random
/// rather than an SVD of the dense matrix (which would take minutes on S2); copies are cheap.
/// </summary>
internal static class LowRankFormats
{
    public static WeightFormat Rank(int rank, Target? target = null) => new(
        $"lowrank-r{rank}",
        (_, outFeatures, inFeatures) => Create(outFeatures, inFeatures, rank),
        Copy: (w, _) => Create(w.OutFeatures, w.InFeatures, rank),
        Batch1Target: target);

    // Factors U [Out, r] and V [r, In], row-major fp32.
    private static LowRankWeight Create(int outFeatures, int inFeatures, int rank) =>
        LowRankWeight.FromFactors(outFeatures, inFeatures, rank,
            RandomData.Uniform((long)outFeatures * rank, seed: 11), RandomData.Uniform((long)rank * inFeatures, seed: 13));
}

internal static partial class CaseCatalog
{
    static partial void AddLowRankFormats(Shape shape, List<WeightFormat> formats, bool full)
    {
        if (shape == Shape.S2) formats.Add(LowRankFormats.Rank(512, Target.Bandwidth(80)));
        if (full) formats.AddRange([LowRankFormats.Rank(64), LowRankFormats.Rank(256)]);
    }
}

/// <summary>Low-rank products against the fp32 baseline.</summary>
public class LowRankGemvBenchmarks : GemvBenchmarkBase
{
    [GlobalSetup(Target = nameof(Fp32))] public void SetupFp32() => Setup(Fp32Storage.Format);
    [GlobalSetup(Target = nameof(Rank64))] public void SetupRank64() => Setup(LowRankFormats.Rank(64));
    [GlobalSetup(Target = nameof(Rank256))] public void SetupRank256() => Setup(LowRankFormats.Rank(256));
    [GlobalSetup(Target = nameof(Rank512))] public void SetupRank512() => Setup(LowRankFormats.Rank(512));

    [Benchmark(Baseline = true)] public void Fp32() => Call();
    [Benchmark] public void Rank64() => Call();
    [Benchmark] public void Rank256() => Call();
    [Benchmark] public void Rank512() => Call();
}
