using Condense.Benchmarks.Harness;
using Condense.Nn;
using Condense.Kernels;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// The fp32 baseline every "x fp32" is measured against, and the peers' MatMul row: <see cref="DenseWeight"/> as a
/// user gets it by default (one copy of W). Session 10: with the batch-1 row stream's aligned loads, the opt-in
/// packed copy (packForBatch1, twice the memory) was no longer faster (docs/benchmarks.md), so it is not the baseline.
/// </summary>
internal static class Fp32Storage
{
    public static readonly WeightFormat Format = new(
        BenchCase.Fp32Name,
        (dense, outFeatures, inFeatures) => new DenseWeight(dense, outFeatures, inFeatures),
        // A copy of the array: a storage that keeps the caller's array must not make the cold copies share it.
        Copy: (w, dense) => new DenseWeight((float[])dense.Clone(), w.OutFeatures, w.InFeatures),
        Batch1Target: Target.Bandwidth(85));
}
