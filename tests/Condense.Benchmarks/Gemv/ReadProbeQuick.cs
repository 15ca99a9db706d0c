using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Benchmarks.Harness;
using static Condense.Benchmarks.Harness.QuickArgs;

namespace Condense.Benchmarks.Gemv;

/// <summary>
/// <c>--quick readprobe</c>: what governs the DRAM read rate of a batch-1 GEMV on this machine. Each variant reads
/// "calls" of one weight's size (default 64 MiB, S1 fp32) from a rotating place in a 1 GiB buffer (every call cold),
/// split over 2 threads (the harness's helper thread + the caller) or run on 1, and reports GB/s of the median call.
/// Variants: streams per thread (rows read side by side, as a 4-row dot-product tile does), software prefetch type and
/// distance, the 2-thread split (contiguous halves vs interleaved blocks), 2 MiB huge pages or 4 KiB pages, and the
/// work per cache line (an OR per load vs an fp32 FMA against an activation vector, as the GEMV does).
/// Variants alternate within each round, so drift and other tenants' load hit all of them alike.
/// </summary>
/// <remarks>Options: <c>--call-mib n</c> (64), <c>--rounds n</c> (5), <c>--row-kib n</c> (16: an S1 fp32 row), <c>--hot</c>
/// (every call reads the same bytes at the buffer's start: with <c>--call-mib 8</c>, an S1 int4 weight in L3).
/// Session 9 added the batch-1 fp32 GEMV's candidate loop shapes (1 row per stream unrolled, 2 rows, 4 rows packed
/// per line) and the real kernel (DenseWeight at batch 1: packed copy, 1 row, 4 rows side by side).</remarks>
internal static unsafe class ReadProbeQuick
{
    private const long BufferBytes = 1L << 30;
    private const long HugePage = 2L << 20;
    private const int MadvHugePage = PageAdvice.HugePage, MadvNoHugePage = PageAdvice.NoHugePage;

    private enum Pf { None, T0, T1, T2, Nta }

    private enum Work { Or, Fma, FmaUnrolled, Kernel, FmaPacked }

    /// <summary>One way of reading a call's bytes.</summary>
    private sealed record Variant(string Name, bool Huge, int Threads, int Streams, Pf Prefetch, int Distance, long SplitBlock, Work Work)
    {
        /// <summary>Bytes added to the weight and activation addresses (a managed float[]'s data is 8-B aligned, not 64).</summary>
        public int Misalign { get; init; }
    }

    private static float s_sink;

    public static int Run(string[] args)
    {
        long callBytes = long.Parse(Option(args, "--call-mib") ?? "64", CultureInfo.InvariantCulture) << 20;
        int rounds = int.Parse(Option(args, "--rounds") ?? "5", CultureInfo.InvariantCulture);
        int rowBytes = int.Parse(Option(args, "--row-kib") ?? "16", CultureInfo.InvariantCulture) << 10;
        bool hot = args.Contains("--hot");
        Console.WriteLine($"read-rate probe: calls of {callBytes >> 20} MiB " + (hot ? "always at the buffer's start (hot: in cache after the first), " : $"rotating over a {BufferBytes >> 20} MiB buffer (each call cold), ") +
                          $"rows of {rowBytes >> 10} KiB for the multi-stream variants, {rounds} rounds, variants alternate within a round");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);
        Console.WriteLine($"loadavg : {File.ReadAllText("/proc/loadavg").Trim()} (start)");

        byte* huge = Allocate(MadvHugePage, out long hugeAnon);
        byte* small = Allocate(MadvNoHugePage, out long smallAnon);
        Console.WriteLine($"pages   : huge buffer AnonHugePages {hugeAnon >> 20} MiB of {BufferBytes >> 20}; 4 KiB buffer {smallAnon >> 20} MiB");
        float* x = (float*)NativeMemory.AlignedAlloc((nuint)rowBytes + 64, 64);
        for (int i = 0; i < rowBytes / 4; i++) x[i] = 1f + i % 7;

        var variants = new List<Variant>
        {
            new("probe: 1 stream, OR, halves", true, 2, 1, Pf.None, 0, 0, Work.Or),
            new("probe, 4 KiB pages", false, 2, 1, Pf.None, 0, 0, Work.Or),
            new("probe, 1 thread", true, 1, 1, Pf.None, 0, 0, Work.Or),
            new("probe, 1 thread, 4 KiB pages", false, 1, 1, Pf.None, 0, 0, Work.Or),
        };
        foreach (int s in new[] { 2, 4, 8 }) variants.Add(new($"{s} streams (rows side by side)", true, 2, s, Pf.None, 0, 0, Work.Or));
        variants.Add(new("4 streams, 4 KiB pages", false, 2, 4, Pf.None, 0, 0, Work.Or));
        foreach (int d in new[] { 512, 1024, 2048, 4096, 6144, 8192, 16384 })
            variants.Add(new($"prefetcht0 {d} B ahead", true, 2, 1, Pf.T0, d, 0, Work.Or));
        variants.Add(new("prefetcht0 6144, 4 KiB pages", false, 2, 1, Pf.T0, 6144, 0, Work.Or));
        variants.Add(new("prefetcht1 2048", true, 2, 1, Pf.T1, 2048, 0, Work.Or));
        variants.Add(new("prefetcht1 6144", true, 2, 1, Pf.T1, 6144, 0, Work.Or));
        variants.Add(new("prefetcht2 6144", true, 2, 1, Pf.T2, 6144, 0, Work.Or));
        variants.Add(new("prefetchnta 2048", true, 2, 1, Pf.Nta, 2048, 0, Work.Or));
        variants.Add(new("prefetchnta 6144", true, 2, 1, Pf.Nta, 6144, 0, Work.Or));
        variants.Add(new("4 streams + t0 1024", true, 2, 4, Pf.T0, 1024, 0, Work.Or));
        variants.Add(new("4 streams + t0 4096", true, 2, 4, Pf.T0, 4096, 0, Work.Or));
        foreach (long b in new[] { 64L << 10, 256L << 10, 2L << 20 })
            variants.Add(new($"interleaved {b >> 10} KiB blocks", true, 2, 1, Pf.None, 0, b, Work.Or));
        variants.Add(new("FMA dot, 1 stream", true, 2, 1, Pf.None, 0, 0, Work.Fma));
        variants.Add(new("FMA dot, 4 streams (fp32 GEMV tile)", true, 2, 4, Pf.None, 0, 0, Work.Fma));
        variants.Add(new("FMA dot, 4 streams, 4 KiB pages", false, 2, 4, Pf.None, 0, 0, Work.Fma));
        variants.Add(new("FMA dot, 1 stream + t0 2048", true, 2, 1, Pf.T0, 2048, 0, Work.Fma));
        variants.Add(new("FMA dot, 4 streams + t0 1024", true, 2, 4, Pf.T0, 1024, 0, Work.Fma));
        // Session 9: the batch-1 GEMV's candidate shapes (same two chains per row as DenseMatMul's dot, so same bits):
        // 1 row at a time with 8 lines per loop step, and 2 rows side by side.
        variants.Add(new("FMA dot, 1 stream, 8 lines per step", true, 2, 1, Pf.None, 0, 0, Work.FmaUnrolled));
        variants.Add(new("FMA dot, 1 stream, 8 lines, 1 thread", true, 1, 1, Pf.None, 0, 0, Work.FmaUnrolled));
        variants.Add(new("FMA dot, 1 stream, 1 thread", true, 1, 1, Pf.None, 0, 0, Work.Fma));
        variants.Add(new("FMA dot, 4 streams, 1 thread", true, 1, 4, Pf.None, 0, 0, Work.Fma));
        variants.Add(new("FMA dot, 2 streams", true, 2, 2, Pf.None, 0, 0, Work.FmaUnrolled));
        // 4 rows interleaved line by line (a packed layout: one sequential stream, each activation load serves 4 rows).
        variants.Add(new("FMA dot, 4 rows packed per line", true, 2, 4, Pf.None, 0, 0, Work.FmaPacked));
        variants.Add(new("FMA dot, 4 rows packed per line, 1 thread", true, 1, 4, Pf.None, 0, 0, Work.FmaPacked));
        // The real kernel (DenseWeight batch 1 over managed copies of one call's size, through WorkerPool.Shared),
        // with its W rows read 1 or 4 side by side (DenseMatMul.GemvRowsSideBySide; same bits).
        foreach (int t in new[] { 2, 1 })
            foreach (int rows in new[] { 0, 1, 4 })
                variants.Add(new((rows == 0 ? "DenseWeight b1, packed copy (packForBatch1)" : $"DenseWeight b1, {rows} row(s) side by side") + (t == 1 ? ", 1 thread" : ""), true, t, rows, Pf.None, 0, 0, Work.Kernel));
        // Session 10: the loops above with W and x 16 B off a cache line, as a managed float[] is (its data starts 16 B
        // after an 8-B aligned object): every 64 B load then spans two lines.
        variants.Add(new("FMA dot, 1 stream, 8 lines, 1 thread, +16 B", true, 1, 1, Pf.None, 0, 0, Work.FmaUnrolled) { Misalign = 16 });
        variants.Add(new("FMA dot, 4 rows packed per line, 1 thread, +16 B", true, 1, 4, Pf.None, 0, 0, Work.FmaPacked) { Misalign = 16 });
        variants.Add(new("FMA dot, 1 stream, 8 lines, +16 B", true, 2, 1, Pf.None, 0, 0, Work.FmaUnrolled) { Misalign = 16 });
        // The first variant again, last in each round: how much the position in a round alone moves a figure.
        variants.Add(variants[0] with { Name = "probe again (position control)" });
        string? only = Option(args, "--variants");
        if (only is not null)
        {
            var keep = only.Split(',');
            variants = variants.Where((v, k) => k == 0 || keep.Any(f => v.Name.Contains(f, StringComparison.OrdinalIgnoreCase))).ToList();
        }

        var results = variants.Select(_ => new List<double>()).ToList();
        var cpuResults = variants.Select(_ => new List<double>()).ToList();
        using var helper = new HelperThread();
        long next = 0;
        int callsPerVariant = (int)Math.Max(4, (512L << 20) / callBytes);
        // Warm-up: JIT every kernel once.
        foreach (var v in variants) OneCall(v, v.Huge ? huge : small, 0, Math.Min(callBytes, 4L << 20), rowBytes, x, helper);
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < variants.Count; k++)
            {
                var v = variants[k];
                var times = new double[callsPerVariant];
                var cpu = new double[callsPerVariant];
                for (int c = 0; c < callsPerVariant; c++)
                {
                    long offset = next;
                    next = hot ? 0 : (next + callBytes) % (BufferBytes - callBytes + 1) / HugePage * HugePage;
                    long t0 = Stopwatch.GetTimestamp();
                    cpu[c] = OneCall(v, v.Huge ? huge : small, offset, callBytes, rowBytes, x, helper);
                    times[c] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                }
                results[k].Add(callBytes / Timing.Median(times) / 1e9);
                cpuResults[k].Add(callBytes / Timing.Median(cpu) / 1e9);
                Console.Error.Write($"\r  round {round + 1}/{rounds}: {v.Name,-50}");
            }
        }
        Console.Error.Write($"\r{new string(' ', 72)}\r");
        Console.WriteLine($"loadavg : {File.ReadAllText("/proc/loadavg").Trim()} (end)");
        double baseline = Timing.Median(results[0]), cpuBaseline = Timing.Median(cpuResults[0]);
        var table = new TextTable("variant", "threads", "pages", "wall GB/s", "per round", "vs probe", "CPU-time GB/s", "per round", "vs probe");
        for (int k = 0; k < variants.Count; k++)
        {
            var v = variants[k];
            double m = Timing.Median(results[k]);
            table.Add(v.Name, v.Threads.ToString(CultureInfo.InvariantCulture), v.Huge ? "2 MiB" : "4 KiB", m.ToString("0.0", CultureInfo.InvariantCulture),
                string.Join(" ", results[k].Select(r => r.ToString("0.0", CultureInfo.InvariantCulture))),
                (m / baseline).ToString("0.00", CultureInfo.InvariantCulture) + "x",
                Timing.Median(cpuResults[k]).ToString("0.0", CultureInfo.InvariantCulture),
                string.Join(" ", cpuResults[k].Select(r => r.ToString("0.0", CultureInfo.InvariantCulture))),
                (Timing.Median(cpuResults[k]) / cpuBaseline).ToString("0.00", CultureInfo.InvariantCulture) + "x");
        }
        Console.Write(table.Render(leftAligned: 3));
        Console.WriteLine("wall GB/s = call bytes / median wall time of a call; CPU-time GB/s = call bytes / the slower thread's CPU time");
        Console.WriteLine("(a thread's own CPU seconds: time stalled on memory counts, time descheduled by other tenants does not).");
        Console.WriteLine($"sink {s_sink}");
        NativeMemory.AlignedFree(x);
        Release(huge);
        Release(small);
        return 0;
    }

    private static byte* Allocate(int advice, out long anonHuge)
    {
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)BufferBytes, (nuint)HugePage);
        PageAdvice.Advise(p, BufferBytes, advice);
        // Touch with non-zero data so every page is real memory (not the shared zero page).
        new Span<byte>(p, int.MaxValue / 2).Fill(1);
        new Span<byte>(p + int.MaxValue / 2, (int)(BufferBytes - int.MaxValue / 2)).Fill(2);
        anonHuge = PageAdvice.AnonHugeBytes((nint)p, BufferBytes);
        return p;
    }

    private static void Release(byte* p) => NativeMemory.AlignedFree(p);

    /// <summary>One call; returns the CPU seconds of its slower thread.</summary>
    private static double OneCall(Variant v, byte* buffer, long offset, long bytes, int rowBytes, float* x, HelperThread helper)
    {
        byte* p = buffer + offset;
        if (v.Work == Work.Kernel) return KernelCall(v, offset, bytes, rowBytes);
        if (v.Misalign != 0)
        {
            // The same bytes less one row (so the shifted read stays inside the buffer), 16 B off every line.
            p += v.Misalign;
            x = (float*)((byte*)x + v.Misalign);
            bytes -= rowBytes;
        }
        double c0 = Timing.ThreadSeconds();
        if (v.Threads == 1)
        {
            s_sink += Read(v, p, bytes, rowBytes, x);
            return Timing.ThreadSeconds() - c0;
        }
        float a = 0, b = 0;
        double ca = 0, cb = 0;
        if (v.SplitBlock == 0)
        {
            // Contiguous halves (WorkerPool's static split), cut at a row boundary.
            long half = bytes / 2 / rowBytes * rowBytes;
            helper.Run(() => { double h = Timing.ThreadSeconds(); a = Read(v, p + half, bytes - half, rowBytes, x); ca = Timing.ThreadSeconds() - h; },
                () => { b = Read(v, p, half, rowBytes, x); cb = Timing.ThreadSeconds() - c0; });
        }
        else
        {
            long block = v.SplitBlock;
            helper.Run(() => { double h = Timing.ThreadSeconds(); a = Interleaved(v, p, bytes, block, 1, rowBytes, x); ca = Timing.ThreadSeconds() - h; },
                () => { b = Interleaved(v, p, bytes, block, 0, rowBytes, x); cb = Timing.ThreadSeconds() - c0; });
        }
        s_sink += a + b;
        return Math.Max(ca, cb);
    }

    private static List<Condense.Kernels.DenseWeight>? s_weights;
    private static float[]? s_x, s_y;

    /// <summary>
    /// One batch-1 product of the real fp32 kernel on the copy the offset selects (1 GiB of copies, so a rotating
    /// offset is cold like the other variants); returns the calling thread's CPU seconds (at 2 threads: the caller's
    /// share only, so read the wall column there).
    /// </summary>
    private static double KernelCall(Variant v, long offset, long bytes, int rowBytes)
    {
        int inF = rowBytes / 4, outF = (int)(bytes / rowBytes);
        if (s_weights is null || s_weights[0].OutFeatures != outF || s_weights[0].InFeatures != inF)
        {
            s_weights = [];
            for (long b = 0; b < BufferBytes; b += bytes)
            {
                var w = new float[(long)outF * inF];
                for (long i = 0; i < w.LongLength; i++) w[i] = 1f / (1 + (i & 15));
                s_weights.Add(new Condense.Kernels.DenseWeight(w, outF, inF, packForBatch1: true));
            }
            s_x = new float[inF];
            for (int i = 0; i < inF; i++) s_x[i] = 1f + i % 7;
            s_y = new float[outF];
            // Build every copy's batch-1 packed copy now (the default path makes it at the first product), untimed.
            foreach (var w in s_weights) w.MatMulTransposed(s_x, s_y, 1);
            long huge = 0;
            foreach (var w in s_weights)
                fixed (float* pw = w.Weight) huge += PageAdvice.AnonHugeBytes((nint)pw, w.Weight.LongLength * 4);
            var misaligned = new SortedSet<long>();
            foreach (var w in s_weights)
                fixed (float* pw = w.Weight) misaligned.Add((long)pw & 63);
            Console.WriteLine($"kernel  : {s_weights.Count} DenseWeight copies of [{outF}, {inF}], AnonHugePages {huge >> 20} MiB of {(long)s_weights.Count * bytes >> 20}, data address mod 64: {string.Join("/", misaligned)}");
        }
        var weight = s_weights[(int)(offset / bytes % s_weights.Count)];
        var type = typeof(Condense.Kernels.KernelOptions).Assembly.GetType("Condense.Kernels.DenseMatMul", throwOnError: true)!;
        var knob = type.GetProperty("GemvRowsSideBySide", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)!;
        int savedRows = (int)knob.GetValue(null)!, savedDegree = Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism;
        knob.SetValue(null, v.Streams);
        Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism = v.Threads;
        try
        {
            double c0 = Timing.ThreadSeconds();
            weight.MatMulTransposed(s_x, s_y, 1);
            double cpu = Timing.ThreadSeconds() - c0;
            s_sink += s_y![0];
            return cpu;
        }
        finally
        {
            knob.SetValue(null, savedRows);
            Condense.Kernels.WorkerPool.Shared.MaxDegreeOfParallelism = savedDegree;
        }
    }

    private static float Interleaved(Variant v, byte* p, long bytes, long block, int first, int rowBytes, float* x)
    {
        float s = 0;
        for (long o = first * block; o < bytes; o += 2 * block) s += Read(v, p + o, Math.Min(block, bytes - o), rowBytes, x);
        return s;
    }

    private static float Read(Variant v, byte* p, long bytes, int rowBytes, float* x)
    {
        if (v.Work == Work.FmaPacked) return FmaPacked4(p, bytes, rowBytes, x);
        if (v.Work == Work.FmaUnrolled)
            return v.Streams == 1 ? FmaRows1Unrolled(p, bytes, rowBytes, x) : FmaRows2(p, bytes, rowBytes, x);
        if (v.Work == Work.Fma)
            return v.Streams == 1 ? FmaRows1(p, bytes, rowBytes, x, v.Prefetch, v.Distance) : FmaRows4(p, bytes, rowBytes, x, v.Prefetch, v.Distance);
        if (v.Streams == 1) return Or1(p, bytes, v.Prefetch, v.Distance);
        return OrStreams(p, bytes, rowBytes, v.Streams, v.Prefetch, v.Distance);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(byte* p, Pf type)
    {
        switch (type)
        {
            case Pf.T0: Sse.Prefetch0(p); break;
            case Pf.T1: Sse.Prefetch1(p); break;
            case Pf.T2: Sse.Prefetch2(p); break;
            case Pf.Nta: Sse.PrefetchNonTemporal(p); break;
        }
    }

    /// <summary>One sequential stream, 4 zmm loads (256 B) per step, an OR per load; optional prefetch of the 4 lines d ahead.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Or1(byte* p, long bytes, Pf pf, int d)
    {
        Vector512<byte> a0 = default, a1 = default, a2 = default, a3 = default;
        byte* end = p + bytes;
        if (pf == Pf.None)
        {
            for (; p < end; p += 256)
            {
                a0 |= Vector512.Load(p); a1 |= Vector512.Load(p + 64); a2 |= Vector512.Load(p + 128); a3 |= Vector512.Load(p + 192);
            }
        }
        else
        {
            for (; p < end; p += 256)
            {
                Prefetch(p + d, pf); Prefetch(p + d + 64, pf); Prefetch(p + d + 128, pf); Prefetch(p + d + 192, pf);
                a0 |= Vector512.Load(p); a1 |= Vector512.Load(p + 64); a2 |= Vector512.Load(p + 128); a3 |= Vector512.Load(p + 192);
            }
        }
        return ((a0 | a1) | (a2 | a3)).GetElement(0);
    }

    /// <summary><paramref name="streams"/> rows side by side: one 64 B line of each row per step, rows <paramref name="rowBytes"/> apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float OrStreams(byte* p, long bytes, int rowBytes, int streams, Pf pf, int d)
    {
        Vector512<byte> a0 = default, a1 = default, a2 = default, a3 = default;
        long tile = (long)rowBytes * streams;
        for (long t = 0; t + tile <= bytes; t += tile)
        {
            byte* r = p + t;
            if (streams == 2)
            {
                for (int i = 0; i < rowBytes; i += 128)
                {
                    if (pf != Pf.None) { Prefetch(r + i + d, pf); Prefetch(r + rowBytes + i + d, pf); }
                    a0 |= Vector512.Load(r + i); a1 |= Vector512.Load(r + rowBytes + i);
                    a2 |= Vector512.Load(r + i + 64); a3 |= Vector512.Load(r + rowBytes + i + 64);
                }
            }
            else if (streams == 4)
            {
                byte* r1 = r + rowBytes, r2 = r1 + rowBytes, r3 = r2 + rowBytes;
                for (int i = 0; i < rowBytes; i += 64)
                {
                    if (pf != Pf.None) { Prefetch(r + i + d, pf); Prefetch(r1 + i + d, pf); Prefetch(r2 + i + d, pf); Prefetch(r3 + i + d, pf); }
                    a0 |= Vector512.Load(r + i); a1 |= Vector512.Load(r1 + i); a2 |= Vector512.Load(r2 + i); a3 |= Vector512.Load(r3 + i);
                }
            }
            else
            {
                for (int i = 0; i < rowBytes; i += 64)
                    for (int s = 0; s < streams; s += 4)
                    {
                        byte* q = r + (nint)s * rowBytes + i;
                        a0 |= Vector512.Load(q); a1 |= Vector512.Load(q + rowBytes); a2 |= Vector512.Load(q + 2 * rowBytes); a3 |= Vector512.Load(q + 3 * rowBytes);
                    }
            }
        }
        return ((a0 | a1) | (a2 | a3)).GetElement(0);
    }

    /// <summary>fp32 dot products, one row at a time (two chains), against an activation row in L1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float FmaRows1(byte* p, long bytes, int rowBytes, float* x, Pf pf, int d)
    {
        var s = Vector512<float>.Zero;
        int n = rowBytes / 4;
        for (long t = 0; t + rowBytes <= bytes; t += rowBytes)
        {
            float* w = (float*)(p + t);
            Vector512<float> a = default, b = default;
            for (int i = 0; i < n; i += 32)
            {
                if (pf != Pf.None) { Prefetch((byte*)(w + i) + d, pf); Prefetch((byte*)(w + i) + d + 64, pf); }
                a = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a);
                b = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), b);
            }
            s += a + b;
        }
        return Vector512.Sum(s);
    }

    /// <summary>fp32 dot products, one row at a time, two chains, 8 lines (4 per chain) per loop step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float FmaRows1Unrolled(byte* p, long bytes, int rowBytes, float* x)
    {
        var s = Vector512<float>.Zero;
        int n = rowBytes / 4;
        for (long t = 0; t + rowBytes <= bytes; t += rowBytes)
        {
            float* w = (float*)(p + t);
            Vector512<float> a = default, b = default;
            for (int i = 0; i < n; i += 128)
            {
                a = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a);
                b = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), b);
                a = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 32), Vector512.Load(x + i + 32), a);
                b = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 48), Vector512.Load(x + i + 48), b);
                a = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 64), Vector512.Load(x + i + 64), a);
                b = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 80), Vector512.Load(x + i + 80), b);
                a = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 96), Vector512.Load(x + i + 96), a);
                b = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 112), Vector512.Load(x + i + 112), b);
            }
            s += a + b;
        }
        return Vector512.Sum(s);
    }

    /// <summary>fp32 dot products of 4 rows stored interleaved per 64 B line (row 0..3 of line k, then line k + 1), two chains per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float FmaPacked4(byte* p, long bytes, int rowBytes, float* x)
    {
        var s = Vector512<float>.Zero;
        int n = rowBytes / 4;
        for (long t = 0; t + 4L * rowBytes <= bytes; t += 4L * rowBytes)
        {
            float* w = (float*)(p + t);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            for (int i = 0; i < n; i += 32, w += 128)
            {
                var xa = Vector512.Load(x + i);
                var xb = Vector512.Load(x + i + 16);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w), xa, a0); a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 16), xa, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 32), xa, a2); a3 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 48), xa, a3);
                b0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 64), xb, b0); b1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 80), xb, b1);
                b2 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 96), xb, b2); b3 = Vector512.FusedMultiplyAdd(Vector512.Load(w + 112), xb, b3);
            }
            s += (a0 + b0) + (a1 + b1) + (a2 + b2) + (a3 + b3);
        }
        return Vector512.Sum(s);
    }

    /// <summary>fp32 dot products of 2 rows side by side, two chains per row, 4 lines per row per step.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float FmaRows2(byte* p, long bytes, int rowBytes, float* x)
    {
        var s = Vector512<float>.Zero;
        int n = rowBytes / 4;
        for (long t = 0; t + 2L * rowBytes <= bytes; t += 2L * rowBytes)
        {
            float* w0 = (float*)(p + t), w1 = w0 + n;
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default;
            for (int i = 0; i < n; i += 64)
            {
                var xa = Vector512.Load(x + i);
                var xb = Vector512.Load(x + i + 16);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i), xa, a0); b0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i + 16), xb, b0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i), xa, a1); b1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i + 16), xb, b1);
                xa = Vector512.Load(x + i + 32);
                xb = Vector512.Load(x + i + 48);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i + 32), xa, a0); b0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i + 48), xb, b0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i + 32), xa, a1); b1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i + 48), xb, b1);
            }
            s += (a0 + b0) + (a1 + b1);
        }
        return Vector512.Sum(s);
    }

    /// <summary>fp32 dot products of 4 rows side by side (DenseMatMul's batch-1 tile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float FmaRows4(byte* p, long bytes, int rowBytes, float* x, Pf pf, int d)
    {
        var s = Vector512<float>.Zero;
        int n = rowBytes / 4;
        for (long t = 0; t + 4L * rowBytes <= bytes; t += 4L * rowBytes)
        {
            float* w0 = (float*)(p + t), w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
            for (int i = 0; i < n; i += 32)
            {
                if (pf != Pf.None) { Prefetch((byte*)(w0 + i) + d, pf); Prefetch((byte*)(w1 + i) + d, pf); Prefetch((byte*)(w2 + i) + d, pf); Prefetch((byte*)(w3 + i) + d, pf); }
                var xa = Vector512.Load(x + i);
                var xb = Vector512.Load(x + i + 16);
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i), xa, a0); b0 = Vector512.FusedMultiplyAdd(Vector512.Load(w0 + i + 16), xb, b0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i), xa, a1); b1 = Vector512.FusedMultiplyAdd(Vector512.Load(w1 + i + 16), xb, b1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(w2 + i), xa, a2); b2 = Vector512.FusedMultiplyAdd(Vector512.Load(w2 + i + 16), xb, b2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Load(w3 + i), xa, a3); b3 = Vector512.FusedMultiplyAdd(Vector512.Load(w3 + i + 16), xb, b3);
            }
            s += (a0 + b0) + (a1 + b1) + (a2 + b2) + (a3 + b3);
        }
        return Vector512.Sum(s);
    }
}
