namespace Condense.Benchmarks.Harness;

/// <summary>
/// The cold fallback for formats that cannot be copied cheaply: read 64 MiB (twice the L3) of other data,
/// untimed, before a call so its weights come from DRAM.
/// </summary>
internal static class CacheFlush
{
    private static readonly long[] Buffer = Enumerable.Repeat(1L, (64 << 20) / sizeof(long)).ToArray();
    private static long s_sink;

    public static void Run()
    {
        long acc = 0;
        var span = Buffer.AsSpan();
        // One load per 64-byte line is enough to pull the line in and push something else out.
        for (int i = 0; i < span.Length; i += 8) acc += span[i];
        s_sink += acc;
    }
}
