using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Condense.Benchmarks.Harness;

/// <summary>
/// The denominator of every "% BW": a read-only OR-reduction over 1 GiB of native memory with 1 or 2 threads
/// (Vector512, else Vector256, else Vector128, else scalar). Nothing is written, so it measures DRAM reads only.
/// </summary>
/// <remarks>
/// The buffer is advised onto 2 MiB transparent huge pages, as Condense's large weights are (Kernels/HugePages.cs):
/// until session 8 it sat on 4 KiB pages and under-read this VM's DRAM (1 thread 0.6-0.7x, 2 threads 0.65-0.9x of the
/// same loop on huge pages, <c>--quick readprobe</c>), so "% BW" was measured against a slower reader than the kernels.
/// </remarks>
internal sealed unsafe class BandwidthProbe : IDisposable
{
    public const long Bytes = 1L << 30;

    private readonly ulong* _data;
    private readonly HelperThread _helper = new();
    private static ulong s_sink;

    public BandwidthProbe()
    {
        // 2 MiB-aligned and advised before the first touch, so the fill below faults in huge pages directly.
        _data = (ulong*)NativeMemory.AlignedAlloc((nuint)Bytes, 2 << 20);
        PageAdvice.Advise(_data, Bytes, PageAdvice.HugePage);
        // Touch every page with non-zero data so the probe reads real memory, not the shared zero page.
        new Span<ulong>(_data, (int)(Bytes / sizeof(ulong) / 2)).Fill(0x0101010101010101UL);
        new Span<ulong>(_data + Bytes / sizeof(ulong) / 2, (int)(Bytes / sizeof(ulong) / 2)).Fill(0x0202020202020202UL);
    }

    /// <summary>Bytes of the buffer the kernel backs with huge pages (smaps AnonHugePages; -1 if unknown).</summary>
    public long HugePageBytes => PageAdvice.AnonHugeBytes((nint)_data, Bytes);

    /// <summary>Reads the whole 1 GiB once with <paramref name="threads"/> (1 or 2) threads.</summary>
    public void Read(int threads)
    {
        long count = Bytes / sizeof(ulong);
        if (threads <= 1)
        {
            s_sink ^= Reduce(_data, count);
            return;
        }
        long half = count / 2;
        ulong a = 0, b = 0;
        _helper.Run(() => a = Reduce(_data + half, count - half), () => b = Reduce(_data, half));
        s_sink ^= a | b;
    }

    /// <summary>A read-only OR over <paramref name="count"/> ulongs; four independent accumulators keep loads in flight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static ulong Reduce(ulong* p, long count)
    {
        long i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 32 <= count; i += 32)
            {
                a0 |= Vector512.Load(p + i);
                a1 |= Vector512.Load(p + i + 8);
                a2 |= Vector512.Load(p + i + 16);
                a3 |= Vector512.Load(p + i + 24);
            }
            ulong r = Vector512.Sum((a0 | a1) | (a2 | a3));
            for (; i < count; i++) r |= p[i];
            return r;
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 16 <= count; i += 16)
            {
                a0 |= Vector256.Load(p + i);
                a1 |= Vector256.Load(p + i + 4);
                a2 |= Vector256.Load(p + i + 8);
                a3 |= Vector256.Load(p + i + 12);
            }
            ulong r = Vector256.Sum((a0 | a1) | (a2 | a3));
            for (; i < count; i++) r |= p[i];
            return r;
        }
        if (Vector128.IsHardwareAccelerated)
        {
            Vector128<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i + 8 <= count; i += 8)
            {
                a0 |= Vector128.Load(p + i);
                a1 |= Vector128.Load(p + i + 2);
                a2 |= Vector128.Load(p + i + 4);
                a3 |= Vector128.Load(p + i + 6);
            }
            ulong r = Vector128.Sum((a0 | a1) | (a2 | a3));
            for (; i < count; i++) r |= p[i];
            return r;
        }
        ulong s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (; i + 4 <= count; i += 4)
        {
            s0 |= p[i]; s1 |= p[i + 1]; s2 |= p[i + 2]; s3 |= p[i + 3];
        }
        for (; i < count; i++) s0 |= p[i];
        return s0 | s1 | s2 | s3;
    }

    public void Dispose()
    {
        _helper.Dispose();
        NativeMemory.AlignedFree(_data);
    }
}
