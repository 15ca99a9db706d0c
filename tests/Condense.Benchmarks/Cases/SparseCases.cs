using BenchmarkDotNet.Attributes;
using Condense.Benchmarks.Gemv;
using Condense.Benchmarks.Harness;
using Condense.Quantization;
using Condense.Sparsity;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// N:M and CSR storages (formats.md 3 and 4). Pruning is slow, so the cold copies are made from the first one's
/// stored arrays (cloned and rebuilt through FromParts): cold then means the same rotation as fp32, not a cache
/// flush whose 3 ms pause also parks the worker threads before every timed call.
/// </summary>
internal static class SparseFormats
{
    public static readonly WeightFormat TwoFour = Nm(2, 4, values: null, Target.SpeedUp(1.6));
    public static readonly WeightFormat TwoFourInt8 = Nm(2, 4, new QuantizationScheme(8, 32, Symmetric: true));
    public static readonly WeightFormat TwoFourInt4 = Nm(2, 4, new QuantizationScheme(4, 128, Symmetric: false));
    public static readonly WeightFormat OneFour = Nm(1, 4, values: null);
    public static readonly WeightFormat Csr10 = Csr(density: 0.10, Target.SpeedUp(4));
    public static readonly WeightFormat Csr50 = Csr(density: 0.50);

    private static WeightFormat Nm(int n, int m, QuantizationScheme? values, Target? target = null) => new(
        $"{n}:{m}-{(values is { } v ? v.FormatName : "fp32")}",
        (dense, outFeatures, inFeatures) => NmSparseWeight.Prune(dense, outFeatures, inFeatures, n, m, values),
        Copy: (w, _) => CopyNm((NmSparseWeight)w),
        Batch1Target: target);

    private static NmSparseWeight CopyNm(NmSparseWeight w)
    {
        var indices = (byte[])w.Indices.Clone();
        if (w.Values is { } values) return NmSparseWeight.FromParts(w.OutFeatures, w.InFeatures, w.N, w.M, indices, (float[])values.Clone());
        var q = w.QuantizedValues!;
        var copy = GroupQuantizedWeight.FromParts(q.OutFeatures, q.InFeatures, q.Scheme, (byte[])q.Packed.Clone(), (Half[])q.Scales.Clone(), (byte[]?)q.ZeroPoints?.Clone());
        return NmSparseWeight.FromParts(w.OutFeatures, w.InFeatures, w.N, w.M, indices, copy);
    }

    private static CsrWeight CopyCsr(CsrWeight w) => w.ColumnIndices16 is { } c16
        ? CsrWeight.FromParts(w.OutFeatures, w.InFeatures, (float[])w.Values.Clone(), (ushort[])c16.Clone(), (int[])w.RowPointers.Clone())
        : CsrWeight.FromParts(w.OutFeatures, w.InFeatures, (float[])w.Values.Clone(), (uint[])w.ColumnIndices32!.Clone(), (int[])w.RowPointers.Clone());

    // Prune's fraction is the share removed: 10% density keeps 0.10 of the weights.
    private static WeightFormat Csr(double density, Target? target = null) => new(
        $"csr-{density * 100:0}%",
        (dense, outFeatures, inFeatures) => CsrWeight.Prune(dense, outFeatures, inFeatures, 1 - density),
        Copy: (w, _) => CopyCsr((CsrWeight)w),
        Batch1Target: target);
}

internal static partial class CaseCatalog
{
    static partial void AddSparseFormats(Shape shape, List<WeightFormat> formats, bool full)
    {
        formats.Add(SparseFormats.TwoFour);
        formats.Add(SparseFormats.Csr10);
        if (!full) return;
        formats.AddRange([SparseFormats.TwoFourInt8, SparseFormats.TwoFourInt4, SparseFormats.OneFour, SparseFormats.Csr50]);
    }
}

/// <summary>Sparse GEMV/GEMM against the fp32 baseline (cold copies are built by pruning again: slow setup).</summary>
public class SparseGemvBenchmarks : GemvBenchmarkBase
{
    [GlobalSetup(Target = nameof(Fp32))] public void SetupFp32() => Setup(Fp32Storage.Format);
    [GlobalSetup(Target = nameof(TwoFour))] public void SetupTwoFour() => Setup(SparseFormats.TwoFour);
    [GlobalSetup(Target = nameof(TwoFourInt8))] public void SetupTwoFourInt8() => Setup(SparseFormats.TwoFourInt8);
    [GlobalSetup(Target = nameof(TwoFourInt4))] public void SetupTwoFourInt4() => Setup(SparseFormats.TwoFourInt4);
    [GlobalSetup(Target = nameof(Csr10))] public void SetupCsr10() => Setup(SparseFormats.Csr10);
    [GlobalSetup(Target = nameof(Csr50))] public void SetupCsr50() => Setup(SparseFormats.Csr50);

    [Benchmark(Baseline = true)] public void Fp32() => Call();
    [Benchmark] public void TwoFour() => Call();
    [Benchmark] public void TwoFourInt8() => Call();
    [Benchmark] public void TwoFourInt4() => Call();
    [Benchmark] public void Csr10() => Call();
    [Benchmark] public void Csr50() => Call();
}
