namespace Condense.Quantization;

/// <summary>
/// Splits the rows of a matrix into fixed contiguous blocks and runs them, in parallel when the work is
/// large enough. Each row belongs to exactly one block, so results never depend on the thread count.
/// </summary>
internal static class RowBlocks
{
    // About 64K elements per block: big enough to amortize scheduling, small enough to balance 2..64 cores.
    private const long ElementsPerBlock = 1 << 16;

    // Below this much total work the thread hand-off costs more than it saves.
    private const long ParallelThreshold = 1 << 18;

    /// <summary>Number of blocks <see cref="Run"/> will use for these dimensions.</summary>
    public static int BlockCount(int rows, long elementsPerRow, out int rowsPerBlock)
    {
        rowsPerBlock = (int)Math.Clamp(ElementsPerBlock / Math.Max(1, elementsPerRow), 1, Math.Max(1, rows));
        return (rows + rowsPerBlock - 1) / rowsPerBlock;
    }

    /// <summary>Calls <paramref name="body"/>(block, firstRow, endRow) once per block.</summary>
    public static void Run(int rows, long elementsPerRow, Action<int, int, int> body)
    {
        int blocks = BlockCount(rows, elementsPerRow, out int rowsPerBlock);
        if (blocks <= 1 || Environment.ProcessorCount == 1 || rows * elementsPerRow < ParallelThreshold)
        {
            for (int blk = 0; blk < blocks; blk++)
                body(blk, blk * rowsPerBlock, Math.Min(rows, (blk + 1) * rowsPerBlock));
            return;
        }

        Kernels.WorkerPool.Shared.For(blocks, (first, end) =>
        {
            for (int blk = first; blk < end; blk++)
                body(blk, blk * rowsPerBlock, Math.Min(rows, (blk + 1) * rowsPerBlock));
        });
    }
}
