using System.Reflection;
using Condense.Kernels;

namespace Condense.Benchmarks.Jit;

/// <summary>
/// Measurement knobs of the batch-1 generated GEMV (internal settings of VnniGemv, reached by reflection so the
/// library exposes no tuning API), for A/B runs of the same build, cold and hot side by side:
/// <list type="bullet">
/// <item>Shape of the loop: <c>--gemv-rows n</c> (rows per pass, 1..4), <c>--gemv-call-rows n</c> (rows per kernel call, 1..16),
/// <c>--gemv-gfni 0|1</c> (4-bit high nibbles by one vgf2p8affineqb, default 1), <c>--gemv-row-int 0|1</c> (8-bit per-row:
/// whole-row integer sums, default 1).</item>
/// <item>Gate and streaming: <c>--gemv-gate-mib n</c> (largest 4-bit / 8-bit g32 weight taken as in cache), <c>--gemv-stream-prefetch n</c>
/// (prefetch distance of 4-bit weights above the gate, which take the generated loop; 0 = the managed loop, as before
/// session 10), <c>--gemv-stream-rows n</c> (their rows per pass), <c>--gemv-stream-hint n</c> (their weight prefetch: 0
/// prefetcht0, 1 t1, 2 t2, 3 nta, 4 none; default 0).</item>
/// <item>Weight prefetch in cache: <c>--gemv-prefetch n</c> (distance in bytes, 0 = none), <c>--gemv-prefetch-every n</c> (every
/// n-th line, 1/2/4), <c>--gemv-prefetch-l2</c> (prefetcht1).</item>
/// <item>ScaleRows layouts (rows not of whole 16-group chunks, asymmetric 8-bit): <c>--gemv-lowbit-scale-prefetch 0|1</c> (4 bits:
/// prefetch the next 16-row block's scales, default 1; 8 bits never), <c>--gemv-scale-prefetch-slices n</c> (streaming g64:
/// that prefetch spread over n kernel calls per block, default 8, 1 = one burst), <c>--gemv-scale-prefetch-ahead n</c>
/// (blocks ahead, default 1), <c>--gemv-scale-prefetch-l2 0|1</c> (prefetcht1).</item>
/// <item>Own-scale layouts (rows of whole 16-group chunks): <c>--gemv-own8-prefetch n</c> (8-bit g64+: float16 scales n rows
/// ahead, default 2), <c>--gemv-own4-prefetch n</c> (4 bits: scales and zero points n rows ahead, default 2),
/// <c>--gemv-own8-sums 0|1</c> (8-bit
/// own kernels add each row's accumulators themselves, default 1).</item>
/// <item>WorkerPool: <c>--gemv-two-ended 0|1</c> (the caller claims chunks from the start, workers from the end, default 1),
/// <c>--gemv-chunks n</c> (chunks per thread, default 8), <c>--gemv-pieces n</c> (pieces where the claims meet, default 4),
/// <c>--gemv-min-chunk-kib n</c> (batch 1 on the pool: chunks of at least n KiB of codes, fewer threads below two such
/// chunks; 0 = no floor).</item>
/// </list>
/// Retired in session 15 (defaults inlined; docs/kernels.md "Retired knobs of VnniGemv.cs"): <c>--gemv-shifted-loads</c>,
/// <c>--gemv-shifted-nibbles</c>, <c>--gemv-stream-permuted[-rows|-g64]</c>, <c>--gemv-int8-scale-prefetch</c>,
/// <c>--gemv-lean8</c>, <c>--gemv-own8</c>, <c>--gemv-own8-inloop</c>, <c>--gemv-own4</c>, <c>--gemv-own4-large-g32</c>,
/// <c>--gemv-own4-g128-rows</c>, <c>--gemv-own4-sums</c>, <c>--gemv-own4-quads</c>, <c>--gemv-own4-prefetch-inloop</c>,
/// <c>--gemv-memo</c>; in session 16: <c>--gemv-own4-g128</c> (4-bit g128 in cache always converts its own scales).
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
        i = Array.IndexOf(args, "--gemv-gfni");
        if (i >= 0) Property("GfniNibbles").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-row-int");
        if (i >= 0) Property("RowIntegerSums").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-lowbit-scale-prefetch");
        if (i >= 0) Property("PrefetchLowBitScales").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-scale-prefetch-slices");
        if (i >= 0) Property("ScalePrefetchSlices").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-scale-prefetch-ahead");
        if (i >= 0) Property("ScalePrefetchAhead").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-scale-prefetch-l2");
        if (i >= 0) Property("ScalePrefetchToL2").SetValue(null, args[i + 1] != "0");
        i = Array.IndexOf(args, "--gemv-own8-prefetch");
        if (i >= 0) Property("OwnScalePrefetchRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-own4-prefetch");
        if (i >= 0) Property("OwnInt4PrefetchRows").SetValue(null, int.Parse(args[i + 1]));
        i = Array.IndexOf(args, "--gemv-two-ended");
        if (i >= 0) typeof(WorkerPool).GetProperty("TwoEnded", BindingFlags.Static | BindingFlags.NonPublic)!.SetValue(null, args[i + 1] != "0");
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
        // Batch 2-15, 4-bit (VnniSmallBatch4): --gemv-sb4-tree-min n (fewest tile rows whose own-scale kernels add their own
        // lanes, default 6), --gemv-sb4-tile n (most batch rows per tile, default 8), --gemv-sb4-pf n (prefetch
        // variant: 2 prefetcht0 6 KB ahead, the default; 6 / 7 / 8 / 9: 8 / 7 / 10 / 9 KB; see VnniSmallBatch4.PrefetchVariant),
        // --gemv-sb4-pf4 n (the variant of tiles of 4+ rows, -1: the same as --gemv-sb4-pf; default 9), --gemv-sb4-rows n
        // (at most n weight rows per kernel call, 0: RowsPerCall), --gemv-sb4-shared-rows n (rows per call of tiles of at most
        // --gemv-sb4-shared-m rows, default 2, on more than one thread; default 1, 0: RowsPerCall).
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
        i = Array.IndexOf(args, "--gemv-sb4-tile");
        if (i >= 0) SmallBatch4("TileCap").SetValue(null, int.Parse(args[i + 1]));
        string prefetch = PrefetchDistance == 0 ? "no prefetch"
            : $"{(PrefetchToL2 ? "prefetcht1" : "prefetcht0")} {PrefetchDistance} B ahead on every {(PrefetchEvery == 1 ? "" : PrefetchEvery + "th ")}line";
        Console.WriteLine($"generated batch-1 GEMV: {Rows} row(s) per pass, {RowsPerCall} per call, taken by 4-bit weights up to {GateBytes >> 20} MiB, {prefetch}; "
            + (StreamingPrefetch == 0 ? "larger 4-bit g128+ weights: the managed loop" : $"larger 4-bit g128+ weights: generated, {StreamingRows} row(s) per pass, prefetcht0 {StreamingPrefetch} B ahead")
            + $", 4-bit nibble split: {((bool)Property("GfniNibbles").GetValue(null)! ? "vgf2p8affineqb when GFNI" : "vpsrlw + vpandd")}"
            + ", larger 4-bit g64 not in whole 16-group chunks: generated (streaming); g32: the managed loop"
            + $", their next-block scale prefetch in {Property("ScalePrefetchSlices").GetValue(null)} slice(s)"
            + $", 8-bit per-row: {((bool)Property("RowIntegerSums").GetValue(null)! ? "whole-row integer sums" : "virtual groups of 4 steps")}"
            + ", scales of rows of whole 16-group chunks (8-bit symmetric, 4-bit g32/g64, 4-bit g128 above the gate): converted by the kernel");
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
