namespace Condense.Kernels;

/// <summary>
/// Asks Linux to back a large weight array with 2 MiB transparent huge pages (madvise MADV_HUGEPAGE, then
/// MADV_COLLAPSE for pages already touched). A GEMV streams its whole weight once per call; with 4 KiB pages
/// every 4 KiB of each row stream costs a TLB miss and restarts the hardware prefetcher. Used for every weight a
/// batch-1 product streams: fp32 (DenseWeight), quantized codes (GroupQuantizedWeight) and low-rank factors.
/// </summary>
/// <remarks>
/// <para>What it buys on the development VM (<c>--quick readprobe</c>, docs/benchmarks.md "What governs the DRAM read
/// rate"): a plain read loop streams 1.1-1.5x more bytes per CPU-second from huge pages, and int4/int8 g128 batch-1
/// cold calls ran 1.2-1.5x faster per core with their codes advised (ONNX Runtime's own buffers sit on 4 KiB pages).
/// Page size was the largest single factor measured; streams per thread and software prefetch moved less.</para>
/// <para>Advice only: the contents and the bits of every product are unchanged, failures are ignored (other systems,
/// THP disabled, kernels before 6.1 without MADV_COLLAPSE, no free huge page), and an array the GC later moves
/// (large arrays do not move unless the large object heap is compacted explicitly) only loses the speed-up.</para>
/// </remarks>
internal static unsafe class HugePages
{
    private const int MadvHugePage = 14;
    private const int MadvCollapse = 25;
    private const long HugePage = 2L << 20;

    /// <summary>Arrays smaller than this are left alone (they span too few whole huge pages to matter).</summary>
    public const long MinBytes = 4 * HugePage;

    private static int s_disabled = Environment.GetEnvironmentVariable("CONDENSE_HUGE_PAGES") == "0" ? 1 : 0;

    /// <summary>Process-wide switch (default on; CONDENSE_HUGE_PAGES=0 turns it off), e.g. to measure both ways.</summary>
    public static bool Enabled
    {
        get => Volatile.Read(ref s_disabled) == 0;
        set => Volatile.Write(ref s_disabled, value ? 0 : 1);
    }

    /// <summary>Advises the whole 2 MiB-aligned interior of <paramref name="array"/>; returns whether the kernel accepted the collapse.</summary>
    public static bool Advise<T>(T[] array) where T : unmanaged
    {
        if (!Enabled || (long)array.LongLength * sizeof(T) < MinBytes) return false;
        var libc = Libc.Instance;
        if (libc is null) return false;
        fixed (T* p = array)
        {
            long start = ((long)p + HugePage - 1) & ~(HugePage - 1);
            long end = ((long)p + (long)array.LongLength * sizeof(T)) & ~(HugePage - 1);
            if (end - start < HugePage) return false;
            if (libc.Madvise((void*)start, (nuint)(end - start), MadvHugePage) != 0) return false;
            // Pages the caller already wrote are 4 KiB ones; MADV_COLLAPSE rebuilds them as huge pages now
            // instead of waiting for khugepaged (which scans 16 MiB per 10 s by default).
            bool collapsed = libc.Madvise((void*)start, (nuint)(end - start), MadvCollapse) == 0;
            Record(start, end, collapsed);
            return collapsed;
        }
    }

    /// <summary>One advice given: the range and whether the kernel collapsed it then.</summary>
    internal readonly record struct Attempt(long Start, long End, bool Collapsed);

    // The last advices given (a weight is advised once, when it is built): lets a test tell "never advised" from
    // "advised while the kernel had no free 2 MiB page", which a later probe cannot.
    private static readonly Attempt[] s_recent = new Attempt[64];
    private static int s_next;

    private static void Record(long start, long end, bool collapsed)
    {
        lock (s_recent) s_recent[s_next++ % s_recent.Length] = new Attempt(start, end, collapsed);
    }

    /// <summary>The most recent advice whose range holds <paramref name="address"/>, if it is among the last 64.</summary>
    internal static Attempt? LastAttemptCovering(long address)
    {
        lock (s_recent)
        {
            for (int i = 1; i <= Math.Min(s_next, s_recent.Length); i++)
            {
                var a = s_recent[(s_next - i) % s_recent.Length];
                if (address >= a.Start && address < a.End) return a;
            }
            return null;
        }
    }
}
