using Condense.Benchmarks.Harness;
using Condense.Nn;
using Condense.Kernels;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// The fp32 baseline every "x fp32" is measured against: <see cref="DenseWeight"/>, with its batch-1 packed copy
/// (packForBatch1: twice the memory for weights of 8 MiB or more, as ORT's MatMul pre-packs its B).
/// </summary>
internal static class Fp32Storage
{
    public static readonly WeightFormat Format = new(
        BenchCase.Fp32Name,
        (dense, outFeatures, inFeatures) => new DenseWeight(dense, outFeatures, inFeatures, packForBatch1: true),
        // A copy of the array: a storage that keeps the caller's array must not make the cold copies share it.
        Copy: (w, dense) => new DenseWeight((float[])dense.Clone(), w.OutFeatures, w.InFeatures, packForBatch1: true),
        Batch1Target: Target.Bandwidth(85));
}
