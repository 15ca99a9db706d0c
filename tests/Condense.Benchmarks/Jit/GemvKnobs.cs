using System.Reflection;
using Condense.Kernels;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// Measurement knobs of the batch-1 generated GEMV (internal settings of VnniGemv, reached by reflection so the
/// library exposes no tuning API): <c>--gemv-rows n</c> (rows per pass, 1..4), <c>--gemv-prefetch n</c> (software prefetch distance in bytes, 0 = none;
/// <c>--gemv-prefetch-every n</c> prefetches every n-th line, 1/2/4; <c>--gemv-prefetch-l2</c> uses prefetcht1), <c>--gemv-call-rows n</c> (rows per kernel call, 1..16), <c>--gemv-shifted-loads 0|1</c> (8-bit rows off a cache line: whole-line loads joined by valignd, default 1), <c>--gemv-shifted-nibbles 0|1</c> (the same for 4-bit rows read one per pass), <c>--gemv-stream-permuted 0|1</c> (4-bit g32/g64 above the gate: the generated streaming loop instead of the managed one; <c>--gemv-stream-permuted-rows n</c> its rows per pass; <c>--gemv-stream-permuted-g64 0|1</c> g64 alone, default 1), <c>--gemv-gfni 0|1</c> (4-bit high nibbles by one vgf2p8affineqb, default 1), <c>--gemv-row-int 0|1</c> (8-bit per-row: whole-row integer sums, default 1), <c>--gemv-int8-scale-prefetch 0|1</c> (8 bits: prefetch the next 16-row block's scales, default 0 since session 11), <c>--gemv-lowbit-scale-prefetch 0|1</c> (the same for 2-4-bit weights, default 1), <c>--gemv-scale-prefetch-slices n</c> (streaming g32/g64: that prefetch spread over n kernel calls per 16-row block, default 8, 1 = one burst; <c>--gemv-scale-prefetch-ahead n</c> blocks ahead, default 1; <c>--gemv-scale-prefetch-l2 0|1</c> prefetcht1), <c>--gemv-lean8 0|1</c> (8-bit loops with fewer instructions per byte, default 1), <c>--gemv-own8 0|1</c> (8-bit symmetric: the kernel converts its own float16 scales, default 1; <c>--gemv-own8-prefetch n</c> prefetches the scales n rows ahead, default 2; <c>--gemv-own8-inloop 0|1</c>: g32 converts each chunk's scales in the loop, default 1), <c>--gemv-own4-g128-rows 0|1</c> (4-bit g128 above the gate: the 4-row streaming kernel converts its own scales and zero points, default 0), <c>--gemv-own4 0|1</c> (4-bit g32/g64: the kernel converts its own float16 scales and zero points; <c>--gemv-own4-large-g32 0|1</c>: g32 above the gate on that loop instead of the managed one), <c>--gemv-gate-mib n</c> (largest
/// <c>--gemv-prefetch-every n</c> prefetches every n-th line, 1/2/4; <c>--gemv-prefetch-l2</c> uses prefetcht1), <c>--gemv-call-rows n</c> (rows per kernel call, 1..16), <c>--gemv-shifted-loads 0|1</c> (8-bit rows off a cache line: whole-line loads joined by valignd, default 1), <c>--gemv-shifted-nibbles 0|1</c> (the same for 4-bit rows read one per pass), <c>--gemv-stream-permuted 0|1</c> (4-bit g32/g64 above the gate: the generated streaming loop instead of the managed one; <c>--gemv-stream-permuted-rows n</c> its rows per pass; <c>--gemv-stream-permuted-g64 0|1</c> g64 alone, default 1), <c>--gemv-gfni 0|1</c> (4-bit high nibbles by one vgf2p8affineqb, default 1), <c>--gemv-row-int 0|1</c> (8-bit per-row: whole-row integer sums, default 1), <c>--gemv-int8-scale-prefetch 0|1</c> (8 bits: prefetch the next 16-row block's scales, default 0 since session 11), <c>--gemv-lowbit-scale-prefetch 0|1</c> (the same for 2-4-bit weights, default 1), <c>--gemv-scale-prefetch-slices n</c> (streaming g32/g64: that prefetch spread over n kernel calls per 16-row block, default 8, 1 = one burst; <c>--gemv-scale-prefetch-ahead n</c> blocks ahead, default 1; <c>--gemv-scale-prefetch-l2 0|1</c> prefetcht1), <c>--gemv-lean8 0|1</c> (8-bit loops with fewer instructions per byte, default 1), <c>--gemv-own8 0|1</c> (8-bit symmetric: the kernel converts its own float16 scales, default 1; <c>--gemv-own8-prefetch n</c> prefetches the scales n rows ahead, default 2; <c>--gemv-own8-inloop 0|1</c>: g32 converts each chunk's scales in the loop, default 1), <c>--gemv-two-ended 0|1</c> (WorkerPool: the caller claims chunks from the start, workers from the end, default 1), <c>--gemv-own4-sums 0|1</c> (4-bit own-scale kernels leave one vector of lane sums per row, default 0), <c>--gemv-own4-quads 0|1</c> (the 4-row g128 kernel also runs levels 1-2 of the transpose-sum, default 0), <c>--gemv-memo 0|1</c> (Run keeps each thread's last own-scale kernels, default 1), <c>--gemv-stream-hint n</c> (streaming layouts' weight prefetch: 0 prefetcht0, 1 t1, 2 t2, 3 nta, 4 none; default 0), <c>--gemv-own8-sums 0|1</c> (8-bit own-scale kernels add each row's accumulators themselves, default 0), <c>--gemv-chunks n</c> / <c>--gemv-pieces n</c> (WorkerPool: chunks per thread, default 8; pieces where the claims meet, default 4), <c>--gemv-min-chunk-kib n</c> (batch 1 on the pool: chunks of at least n KiB of codes, fewer threads below two such chunks; default 0, no floor), <c>--gemv-gate-mib n</c> (largest
/// 4-bit / 8-bit g32 weight the generated loop takes) and <c>--gemv-stream-prefetch n</c> (prefetch distance of 4-bit g128+
/// weights above the gate, which take the generated loop; 0 = the managed loop, as before session 10; <c>--gemv-stream-rows n</c> their rows per pass), for A/B runs of the same build, cold and hot side by side.
/// </summary>
public static class GemvKnobs
{
    private static readonly Type s_vnniGemv =
        typeof(KernelOptions).Assembly.GetType("Condense.Kernels.Jit.VnniGemv", throwOnError: true)!;

    /// <summary>Rows per pass of the generated loop.</summary>
    public static int Rows
    {
        get => (int)Property("RowsPerPass").GetValue(null)!;
        set => Property("RowsPerPass").SetValue(null, value);
    }

    /// <summary>Rows per kernel call (scales converted, then the kernel, then the sums reduced).</summary>
    public static int RowsPerCall
    {
        get => (int)Property("RowsPerCall").GetValue(null)!;
        set => Property("RowsPerCall").SetValue(null, value);
    }

    /// <summary>Software prefetch distance (bytes, 0 = none) of the generated loop.</summary>
    public static int PrefetchDistance
    {
        get => (int)Property("PrefetchDistance").GetValue(null)!;
        set => Property("PrefetchDistance").SetValue(null, value);
    }

    /// <summary>Prefetch every n-th 64-byte load (1, 2 or 4) of the generated 1-row loop.</summary>
    public static int PrefetchEvery
    {
        get => (int)Property("PrefetchEvery").GetValue(null)!;
        set => Property("PrefetchEvery").SetValue(null, value);
    }

    /// <summary>prefetcht1 (into L2) instead of prefetcht0 in the generated 1-row loop.</summary>
    public static bool PrefetchToL2
    {
        get => (bool)Property("PrefetchToL2").GetValue(null)!;
        set => Property("PrefetchToL2").SetValue(null, value);
    }

    /// <summary>Prefetch distance (bytes) of 4-bit g128+ weights above the gate; 0 keeps them on the managed loop.</summary>
    public static int StreamingPrefetch
    {
        get => (int)Property("StreamingPrefetch").GetValue(null)!;
        set => Property("StreamingPrefetch").SetValue(null, value);
    }

    /// <summary>Rows per pass of 4-bit g128+ weights above the gate (1..4).</summary>
    public static int StreamingRows
    {
        get => (int)Property("StreamingRows").GetValue(null)!;
        set => Property("StreamingRows").SetValue(null, value);
    }

    /// <summary>8-bit symmetric weights: the kernel converts its own float16 scales (VnniGemv.OwnInt8Scales).</summary>
    public static bool OwnInt8Scales
    {
        get => (bool)Property("OwnInt8Scales").GetValue(null)!;
        set => Property("OwnInt8Scales").SetValue(null, value);
    }

    /// <summary>Largest 4-bit weight (bytes) the generated loop takes.</summary>
    public static long GateBytes
    {
        get => (long)Property("CacheResidentBytes").GetValue(null)!;
        set => Property("CacheResidentBytes").SetValue(null, value);
    }

    /// <summary>Applies the <c>--gemv-*</c> knobs when given; prints what runs.</summary>
    public static void Apply(string[] args)
    {
        int i = Array.IndexOf(args, "--gemv-rows");
        if (i >= 0) Rows = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-call-rows");
        if (i >= 0) RowsPerCall = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-gate-mib");
        if (i >= 0) GateBytes = long.Parse(args[i + 1]) << 20;
        i = Array.IndexOf(args, "--gemv-prefetch");
        if (i >= 0) PrefetchDistance = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-prefetch-every");
        if (i >= 0) PrefetchEvery = int.Parse(args[i + 1]);
        if (args.Contains("--gemv-prefetch-l2")) PrefetchToL2 = true;
        i = Array.IndexOf(args, "--gemv-stream-prefetch");
        if (i >= 0) StreamingPrefetch = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-stream-rows");
        if (i >= 0) StreamingRows = int.Parse(args[i + 1]);
        i = Array.IndexOf(args, "--gemv-shifted-loads");
        if (i >= 0) Property("ShiftedLoads").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-shifted-nibbles");
        if (i >= 0) Property("ShiftedNibbles").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-gfni");
        if (i >= 0) Property("GfniNibbles").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-stream-permuted-rows");
        if (i >= 0) Property("StreamingPermutedRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-stream-permuted-g64");
        if (i >= 0) Property("StreamingPermutedG64").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-stream-permuted");
        if (i >= 0) Property("StreamingPermuted").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-row-int");
        if (i >= 0) Property("RowIntegerSums").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-int8-scale-prefetch");
        if (i >= 0) Property("PrefetchInt8Scales").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-lowbit-scale-prefetch");
        if (i >= 0) Property("PrefetchLowBitScales").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-scale-prefetch-slices");
        if (i >= 0) Property("ScalePrefetchSlices").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-scale-prefetch-ahead");
        if (i >= 0) Property("ScalePrefetchAhead").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-scale-prefetch-l2");
        if (i >= 0) Property("ScalePrefetchToL2").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-lean8");
        if (i >= 0) Property("LeanInt8Loops").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own8");
        if (i >= 0) Property("OwnInt8Scales").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own8-prefetch");
        if (i >= 0) Property("OwnScalePrefetchRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-own4");
        if (i >= 0) Property("OwnInt4Scales").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own4-prefetch");
        if (i >= 0) Property("OwnInt4PrefetchRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-own4-prefetch-inloop");
        if (i >= 0) Property("OwnInt4PrefetchInLoop").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own4-g128");
        if (i >= 0) Property("OwnInt4G128").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own4-g128-rows");
        if (i >= 0) Property("OwnInt4G128Rows").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own4-large-g32");
        if (i >= 0) Property("OwnInt4LargeG32").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-two-ended");
        if (i >= 0) typeof(WorkerPool).GetProperty("TwoEnded", BindingFlags.Static | BindingFlags.NonPublic)!.SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own4-sums");
        if (i >= 0) Property("OwnInt4RowSums").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own4-quads");
        if (i >= 0) Property("OwnInt4QuadSums").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-memo");
        if (i >= 0) Property("MemoizeKernels").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-stream-hint");
        if (i >= 0) Property("StreamingPrefetchHint").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-own8-sums");
        if (i >= 0) Property("OwnInt8RowSums").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-chunks");
        if (i >= 0) typeof(WorkerPool).GetProperty("ChunksPerThread", BindingFlags.Static | BindingFlags.NonPublic)!.SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-min-chunk-kib");
        if (i >= 0) typeof(WorkerPool).Assembly.GetType("Condense.Quantization.Int8MatMul")!.GetProperty("MinChunkBytes", BindingFlags.Static | BindingFlags.NonPublic)!.SetValue(null, int.Parse(args[i + 1]) * 1024);
        i = Array.IndexOf(args, "--gemv-pieces");
        if (i >= 0) typeof(WorkerPool).GetProperty("TailPieces", BindingFlags.Static | BindingFlags.NonPublic)!.SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-own8-inloop");
        if (i >= 0) Property("OwnScalesInLoop").SetValue(null, args[i + 1] != "0");
        // Batch 2-15, 4-bit (VnniSmallBatch4): --gemv-sb4-gfni 0|1 (paired kernels' high nibbles by vgf2p8affineqb, default 0),
        // --gemv-sb4-tree-min n (fewest tile rows whose own-scale kernels add their own lanes, default 6), --gemv-sb4-tile n
        // (most batch rows per tile, default 8), --gemv-sb4-spread 0|1 (the next block's
        // scale prefetch a kernel call at a time instead of one burst per block), --gemv-sb4-pf n (prefetch
        // variant: 2 prefetcht0 6 KB ahead, the default; 6 / 7 / 8 / 9: 8 / 7 / 10 / 9 KB; see VnniSmallBatch4.PrefetchVariant),
        // --gemv-sb4-pf4 n (the variant of tiles of 4+ rows, -1: the same as --gemv-sb4-pf; default -1), --gemv-sb4-rows n
        // (at most n weight rows per kernel call, 0: RowsPerCall), --gemv-sb4-shared-rows n (rows per call of tiles of at most
        // --gemv-sb4-shared-m rows, default 2, on more than one thread; 0: off, the default).
        i = Array.IndexOf(args, "--gemv-sb4-gfni");
        if (i >= 0) SmallBatch4("GfniNibbles").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-sb4-tree-min");
        if (i >= 0) SmallBatch4("LaneTreeMinRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-sb4-pf");
        if (i >= 0) SmallBatch4("PrefetchVariant").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-sb4-pf4");
        if (i >= 0) SmallBatch4("PrefetchVariantWide").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-sb4-rows");
        if (i >= 0) SmallBatch4("RowsCap").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-sb4-shared-rows");
        if (i >= 0) SmallBatch4("SharedSmallTileRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-sb4-shared-m");
        if (i >= 0) SmallBatch4("SharedSmallTileMaxRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-sb4-spread");
        if (i >= 0) SmallBatch4("SpreadScalePrefetch").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-sb4-tile");
        if (i >= 0) SmallBatch4("TileCap").SetValue(null, int.Parse(args[i + 1]));
        string prefetch = PrefetchDistance == 0 ? "no prefetch"
            : $"{(PrefetchToL2 ? "prefetcht1" : "prefetcht0")} {PrefetchDistance} B ahead on every {(PrefetchEvery == 1 ? "" : PrefetchEvery + "th ")}line";
        Console.WriteLine($"generated batch-1 GEMV: {Rows} row(s) per pass, {RowsPerCall} per call, taken by 4-bit weights up to {GateBytes >> 20} MiB, {prefetch}; "
            + (StreamingPrefetch == 0 ? "larger 4-bit g128+ weights: the managed loop" : $"larger 4-bit g128+ weights: generated, {StreamingRows} row(s) per pass, prefetcht0 {StreamingPrefetch} B ahead")
            + $", 8-bit rows off a cache line: {((bool)Property("ShiftedLoads").GetValue(null)! ? "whole-line loads joined by valignd" : "plain (split) loads")}"
            + $", 4-bit rows off a cache line: {((bool)Property("ShiftedNibbles").GetValue(null)! ? "whole-line loads (1 row per pass)" : "plain (split) loads")}"
            + $", 4-bit nibble split: {((bool)Property("GfniNibbles").GetValue(null)! ? "vgf2p8affineqb when GFNI" : "vpsrlw + vpandd")}"
            + $", larger 4-bit g32/g64: {((bool)Property("StreamingPermuted").GetValue(null)! ? "generated (streaming)" : (bool)Property("StreamingPermutedG64").GetValue(null)! ? "g64 generated (streaming), g32 the managed loop" : "the managed loop")}"
            + $", their next-block scale prefetch in {Property("ScalePrefetchSlices").GetValue(null)} slice(s)"
            + $", 8-bit per-row: {((bool)Property("RowIntegerSums").GetValue(null)! ? "whole-row integer sums" : "virtual groups of 4 steps")}"
            + $", 8-bit next-block scale prefetch: {((bool)Property("PrefetchInt8Scales").GetValue(null)! ? "on" : "off")}"
            + $", 8-bit lean loops: {((bool)Property("LeanInt8Loops").GetValue(null)! ? "on" : "off")}"
            + $", 8-bit symmetric scales: {((bool)Property("OwnInt8Scales").GetValue(null)! ? "converted by the kernel (g32 above the gate: generated)" : "ScaleRows per 16-row block")}"
            + $", 4-bit g32/g64 scales: {((bool)Property("OwnInt4Scales").GetValue(null)! ? "converted by the kernel" + ((bool)Property("OwnInt4LargeG32").GetValue(null)! ? " (g32 above the gate: generated)" : "") : "ScaleRows per 16-row block")}");
    }

    private static readonly Type s_smallBatch4 =
        typeof(KernelOptions).Assembly.GetType("Condense.Kernels.Jit.VnniSmallBatch4", throwOnError: true)!;

    private static PropertyInfo SmallBatch4(string name) =>
        s_smallBatch4.GetProperty(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
        ?? throw new InvalidOperationException($"VnniSmallBatch4.{name} not found: the knob was renamed.");

    private static PropertyInfo Property(string name) =>
        s_vnniGemv.GetProperty(name, BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public)
        ?? throw new InvalidOperationException($"VnniGemv.{name} not found: the knob was renamed.");

    /// <summary>
    /// <c>--gemv-dump bits,plan,units,steps,groupsPerStep,rowBytes,scaleStride,rows[,prefetch,shift,gfni] path</c>: writes the generated kernel's
    /// bytes (for <c>objdump -D -b binary -mi386:x86-64</c>: map perf's bare addresses to instructions).
    /// </summary>
    public static void Dump(string spec, string path)
    {
        var layoutType = s_vnniGemv.GetNestedType("Layout", BindingFlags.NonPublic)!;
        var p = spec.Split(',');
        // The record's constructor: the fields given in order (the first 8 at least), the rest at their defaults
        // (reflection does not fill optional parameters by itself).
        var ctor = layoutType.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        var parameters = ctor.GetParameters();
        if (p.Length < 8 || p.Length > parameters.Length)
            throw new ArgumentException($"--gemv-dump wants 8 to {parameters.Length} comma-separated fields ({string.Join(",", parameters.Select(q => q.Name))}), got {p.Length}.");
        var values = new object?[parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            var type = parameters[i].ParameterType;
            values[i] = i >= p.Length ? parameters[i].DefaultValue
                : type.IsEnum ? Enum.Parse(type, p[i])
                : type == typeof(bool) ? p[i] is "1" or "true" or "True"
                : Convert.ChangeType(p[i], type, System.Globalization.CultureInfo.InvariantCulture);
        }
        var layout = ctor.Invoke(values);
        var bytes = (byte[])s_vnniGemv.GetMethod("Emit", BindingFlags.Static | BindingFlags.NonPublic)!.Invoke(null, [layout])!;
        File.WriteAllBytes(path, bytes);
        Console.WriteLine($"{bytes.Length} bytes of {layout} to {path}");
    }
}
