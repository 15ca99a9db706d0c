using Condense.Benchmarks.Harness;
using Condense.Nn;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// A weight storage under test: how to build it from a dense fp32 matrix and, when it is cheap, how to copy it
/// (copies fill the cold rotation; in quick mode formats without <see cref="Copy"/> are cold through a cache flush).
/// </summary>
/// <param name="Name">The table's case name, e.g. <c>int4-g64-asym</c>; <c>fp32</c> is the baseline.</param>
/// <param name="Create">(dense row-major [out, in], out, in) -> storage.</param>
/// <param name="Copy">(built storage, dense) -> an independent copy, or null when the only way is a slow <paramref name="Create"/>.</param>
/// <param name="Batch1Target">The BENCHMARKS.md target of this format at batch 1, cold.</param>
internal sealed record WeightFormat(
    string Name,
    Func<float[], int, int, IWeightStorage> Create,
    Func<IWeightStorage, float[], IWeightStorage>? Copy = null,
    Target? Batch1Target = null);
