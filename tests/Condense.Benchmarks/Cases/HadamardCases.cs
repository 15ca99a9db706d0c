using BenchmarkDotNet.Attributes;
using Condense.Benchmarks.Harness;
using Condense.Kernels;

namespace Condense.Benchmarks.Cases;

/// <summary>In-place FWHT of 2^logN floats (hot: the vector is reused; 2^24 = 64 MiB is DRAM-bound anyway).</summary>
internal sealed class FwhtCase : BenchCase
{
    private readonly float[] _data, _small;

    public FwhtCase(int logN, Target? target = null) : base("fwht", $"2^{logN}", batch: 1, cold: false)
    {
        _data = RandomData.Uniform(1L << logN, seed: 17, scale: 1f);
        _small = RandomData.Uniform(1 << Math.Min(logN, 12), seed: 19, scale: 1f);
        Target = target;
    }

    public override double BitsPerWeight => double.NaN;
    public override long BytesPerCall => _data.LongLength * sizeof(float);
    public override double FlopsPerCall => _data.LongLength * Math.Log2(_data.Length);
    public override void WarmUp(int calls) { for (int i = 0; i < calls; i++) Hadamard.Transform(_small); }
    public override void Invoke() => Hadamard.Transform(_data);
}

/// <summary>A Fastfood map S H G Pi H B x of 2^logN floats, or its transpose B H Pi^T G H S y.</summary>
internal sealed class FastfoodCase : BenchCase
{
    private readonly Fastfood _map, _smallMap;
    private readonly float[] _x, _y, _xSmall, _ySmall;
    private readonly bool _transpose;

    public FastfoodCase(int logN, Target? target = null, bool transpose = false)
        : base(transpose ? "fastfood-T" : "fastfood", $"2^{logN}", batch: 1, cold: false)
    {
        _transpose = transpose;
        int n = 1 << logN, small = 1 << Math.Min(logN, 12);
        (_map, _smallMap) = (Create(n), Create(small));
        (_x, _y) = (RandomData.Uniform(n, seed: 23, scale: 1f), new float[n]);
        (_xSmall, _ySmall) = (RandomData.Uniform(small, seed: 29, scale: 1f), new float[small]);
        Target = target;
    }

    public override double BitsPerWeight => double.NaN;
    public override long BytesPerCall => _x.LongLength * sizeof(float);
    public override void WarmUp(int calls)
    {
        for (int i = 0; i < calls; i++)
        {
            if (_transpose) _smallMap.ApplyTranspose(_ySmall, _xSmall);
            else Apply(_smallMap, _xSmall, _ySmall);
        }
    }

    public override void Invoke()
    {
        if (_transpose) _map.ApplyTranspose(_y, _x);
        else Apply(_map, _x, _y);
    }

    // A seeded n -> n map (the 2^20 PyTorch row is square), and y = V x.
    internal static Fastfood Create(int n) => new(n, n, seed: 31);
    internal static void Apply(Fastfood map, float[] x, float[] y) => map.Apply(x, y);
}

internal static partial class CaseCatalog
{
    static partial void AddTransformGroups(List<CaseGroup> groups, bool full)
    {
        // Targets: FWHT 2^20 on 1 thread >= 2.4x the 2.4 ms PyTorch row; Fastfood 2^20 >= 2.3x its 7.1 ms row.
        var fwht20 = Target.TimeAtMost(1.0, "<=1.0 ms (2.4x torch)");
        var fastfood20 = Target.TimeAtMost(7.1 / 2.3, "<=3.1 ms (2.3x torch)");
        groups.Add(new CaseGroup("transforms", _ => full
            ? [new FwhtCase(10), new FwhtCase(16), new FwhtCase(20, fwht20), new FwhtCase(24), new FastfoodCase(20, fastfood20), new FastfoodCase(24)]
            : [new FwhtCase(20, fwht20), new FastfoodCase(20, fastfood20), new FastfoodCase(20, transpose: true)]));
    }
}

/// <summary>FWHT and Fastfood at 2^10..2^24.</summary>
public class HadamardBenchmarks
{
    private float[] _data = [], _x = [], _y = [];
    private Fastfood _map = null!;

    [Params(10, 16, 20, 24)]
    public int LogN { get; set; } = 20;

    [GlobalSetup]
    public void Setup()
    {
        _data = RandomData.Uniform(1L << LogN, seed: 17, scale: 1f);
        _x = RandomData.Uniform(1L << LogN, seed: 23, scale: 1f);
        _y = new float[1 << LogN];
        _map = FastfoodCase.Create(1 << LogN);
    }

    [Benchmark(Baseline = true)] public void Fwht() => Hadamard.Transform(_data);
    [Benchmark] public void FastfoodMap() => FastfoodCase.Apply(_map, _x, _y);
}
