using BenchmarkDotNet.Attributes;
using Condense.Benchmarks.Cases;
using Condense.Nn;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// y = x W^T for one format per [Benchmark] method over shapes, batches and cold/hot. Each method has its own
/// [GlobalSetup(Target = ...)] so a process builds only the format it measures. Cold rotates through copies
/// filling 512 MiB inside the measured call, as the quick mode does.
/// </summary>
public abstract class GemvBenchmarkBase
{
    private const long ColdBytes = 512L << 20;

    private IWeightStorage[] _copies = [];
    private float[] _x = [], _y = [];
    private int _next;

    [Params("S1", "S2", "S3")]
    public string Shape { get; set; } = "S1";

    [Params(1, 16, 128)]
    public int Batch { get; set; } = 1;

    [Params("cold", "hot")]
    public string Mode { get; set; } = "cold";

    private protected void Setup(WeightFormat format)
    {
        var shape = Cases.Shape.Parse(Shape);
        var set = new WeightSet(format, shape, RandomData.Weights(shape), Mode == "cold" ? ColdBytes : 0, slowCopies: true);
        _copies = set.Copies;
        _x = RandomData.Activations(Batch, shape.In);
        _y = new float[(long)Batch * shape.Out];
    }

    private protected void Call() => _copies[_next++ % _copies.Length].MatMulTransposed(_x, _y, Batch);
}

/// <summary>Group-quantized GEMV/GEMM against the fp32 baseline (BenchmarkDotNet reports the ratios).</summary>
public class GemvBenchmarks : GemvBenchmarkBase
{
    [GlobalSetup(Target = nameof(Fp32))] public void SetupFp32() => Setup(Fp32Storage.Format);
    [GlobalSetup(Target = nameof(Int8G32))] public void SetupInt8G32() => Setup(QuantizedFormats.Int8G32);
    [GlobalSetup(Target = nameof(Int4G32))] public void SetupInt4G32() => Setup(QuantizedFormats.Int4G32Sym);
    [GlobalSetup(Target = nameof(Int4G64))] public void SetupInt4G64() => Setup(QuantizedFormats.Int4G64);
    [GlobalSetup(Target = nameof(Int4G128))] public void SetupInt4G128() => Setup(QuantizedFormats.Int4G128);
    [GlobalSetup(Target = nameof(Int3G128))] public void SetupInt3G128() => Setup(QuantizedFormats.Int3G128);
    [GlobalSetup(Target = nameof(Int2G64))] public void SetupInt2G64() => Setup(QuantizedFormats.Int2G64);

    [Benchmark(Baseline = true)] public void Fp32() => Call();
    [Benchmark] public void Int8G32() => Call();
    [Benchmark] public void Int4G32() => Call();
    [Benchmark] public void Int4G64() => Call();
    [Benchmark] public void Int4G128() => Call();
    [Benchmark] public void Int3G128() => Call();
    [Benchmark] public void Int2G64() => Call();
}
