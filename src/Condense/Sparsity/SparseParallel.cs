using Condense.Kernels;

namespace Condense.Sparsity;

/// <summary>
/// The one place the sparse, low-rank and transform kernels go parallel: contiguous chunks of an index range,
/// each chunk run by one thread in increasing order, so every output is computed the same way at any thread count.
/// </summary>
/// <remarks>Runs on the persistent <see cref="WorkerPool"/>, with a threshold below which a hand-off costs more than it saves.</remarks>
internal static class SparseParallel
{
    // Below this much work (multiply-adds or bytes touched) a parallel hand-off costs more than it saves.
    internal const long Threshold = 1L << 17;

    /// <summary>Upper bound on threads (default: processor count). Results never depend on it.</summary>
    public static int MaxDegreeOfParallelism { get; set; } = Environment.ProcessorCount;

    /// <summary>Calls <paramref name="body"/>(start, end) over disjoint contiguous chunks covering [0, count).</summary>
    /// <param name="count">Number of items (rows).</param>
    /// <param name="workPerItem">Rough cost of one item, to decide whether to go parallel at all.</param>
    /// <param name="body">Processes items [start, end); must touch only their outputs.</param>
    public static void For(int count, long workPerItem, Action<int, int> body)
    {
        if (count <= 0) return;
        int threads = Math.Max(1, MaxDegreeOfParallelism);
        if (threads == 1 || count == 1 || count * Math.Max(1, workPerItem) < Threshold)
        {
            body(0, count);
            return;
        }

        // The persistent pool splits [0, count) into contiguous chunks; each output row stays on one thread.
        WorkerPool.Shared.For(count, body, threads);
    }
}
