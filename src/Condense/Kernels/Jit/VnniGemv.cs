using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Quantization;

namespace Condense.Kernels.Jit;

/// <summary>
/// Batch 1 with 8- and 4-bit codes on CPUs with AVX512-VNNI: a run-time assembled loop of 512-bit vpdpbusd (.NET
/// exposes no EVEX VNNI intrinsic) that streams the weight rows in order, as the managed loop does.
/// </summary>
/// <remarks>
/// <para>Why: the managed AVX-512 loop needs vpmaddubsw + vpmaddwd per 64 codes (8 bits: plus the |u - 128| sign
/// trick; 4 bits: two vpmaddubsw, an add and a vpmaddwd per 128 codes), multiply-port instructions where vpdpbusd
/// needs one per 64 codes; on the Zen 4 development VM the multiply ports bound the hot (in-cache) batch-1 rows.</para>
/// <para>A step is one 64-byte load: 64 codes at 8 bits, 128 at 4 bits. 4-bit codes are split in registers by one
/// vpandd and one vgf2p8affineqb with GFNI (<see cref="GfniNibbles"/>; else vpsrlw and two vpandd) (low nibbles = even codes, high = odd) against activations interleaved once per call in the
/// same order (<see cref="FusedInt8Dot.Interleave"/>: per 128 codes, 64 even then 64 odd), so the stored rows are read
/// as they are. vpdpbusd multiplies the unsigned codes (0..255 or 0..15) by the signed int8 activations and sums four
/// products per int32 lane without saturation: codes enter unshifted (the zero point folds through the group sums as
/// in the other kernels). Lane k of a step covers codes [k L, (k + 1) L), L = 4 or 8: the managed loop's lanes.</para>
/// <para>Float accumulation (four accumulators f0..f3, summed as (f0 + f1) + (f2 + f3)) follows one of three plans:
/// a group of one step: f[u mod 4] += lanes_u * s_u by one FMA per step; groups smaller than a step (4-bit g32/g64,
/// 8-bit g32): the same with each lane's scale taken by one vpermps from the aligned 16-scale block holding it; groups
/// of S &gt;= 2 steps (and 4-bit per-row groups, cut into virtual groups of at most 4 steps that carry the row's scale;
/// 8-bit per-row groups sum the whole row in integers instead, <see cref="Plan.RowInt"/>):
/// integer sums over the group, then f[g mod 2] += float(sum) * s_g as a multiply and an add. These are the managed
/// loop's operations in its order (FusedInt8Dot.Gemv), so where both compute the same integer sums (4-bit codes) the
/// results are bit-identical; 8-bit codes differ from the managed sign-trick path only by float32 rounding.</para>
/// <para>Rows are read one after another, one sequential stream, without software prefetch (see
/// <see cref="PrefetchDistance"/>): reading several
/// rows at once (4 streams) ran cold calls 1.3-1.7x slower on the development VM. A kernel reading 2-4 rows per pass
/// (<see cref="EmitRows"/>: each step's activations loaded once into registers for all of them, each row's floats in
/// the 1-row order, so the bits do not change) exists behind <see cref="RowsPerPass"/> (default 1): in session 8 it
/// measured 0.85-1.2x the 1-row kernel in cache and 0.6-1.0x on 4-16 MiB weights (docs/benchmarks.md).</para>
/// <para>The code is made once per layout and kept; without executable pages, the CPUID bit, AVX-512 or with
/// <see cref="KernelOptions.GeneratedCode"/> off, <see cref="Prepare"/> gives 0 and the managed kernels run.</para>
/// </remarks>
internal static unsafe class VnniGemv
{
    /// <summary>Most steps per group the loop unrolls (8 bits: groups up to 2048 codes; 4 bits: up to 4096).</summary>
    public const int MaxSteps = 32;

    /// <summary>Most rows per kernel call (scratch sizes): their scales are converted first, their sums reduced after.</summary>
    public const int BlockRows = 16;

    /// <summary>Rows per kernel call, 1..<see cref="BlockRows"/> (a multiple of the rows per pass keeps passes whole).</summary>
    internal static int RowsPerCall
    {
        get => s_rowsPerCall;
        set => s_rowsPerCall = value is >= 1 and <= BlockRows ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"Rows per call 1..{BlockRows}.");
    }
    private static int s_rowsPerCall = BlockRows;

    /// <summary>Steps per virtual group of a per-row group (also the managed 4-bit loop's, so both convert alike).</summary>
    public const int RowSteps = 4;

    /// <summary>Floats each row's accumulators take in the kernel's output (f0..f3).</summary>
    private const int LaneFloats = 64;

    private const int PrefetchAhead = 6144;

    /// <summary>
    /// Software prefetch distance of the emitted loops in bytes (0: none); benchmarks vary it (setting it drops the
    /// kernels made so far). Default 0: session 9 measured the 1-row loop's prefetcht0 <see cref="PrefetchAhead"/> bytes
    /// ahead of every 64-byte load against none, 6 alternating pairs of `--quick --peers --batches 1` (int8 g128 acc4 and
    /// per-row/DQMM, S1 and S2, load 19 -> 5): without it the medians were better in all 16 rows, cold ones included;
    /// CPU time per call 1102 -> 859 us (S1 g128 cold), 721 -> 632 (S1 hot), 2948 -> 2088 (S2 cold), 2640 -> 1966
    /// (S2 hot); per-row S1 1067 -> 787 cold. The hardware prefetcher follows the one stream; the extra instruction per
    /// line costs issue slots hot (readprobe: 8 MiB from L2/L3 185 GB/s plain, 110 with prefetcht0 on every line).
    /// </summary>
    internal static int PrefetchDistance
    {
        get => s_prefetchDistance;
        set
        {
            if (value < 0 || value % 64 != 0) throw new ArgumentOutOfRangeException(nameof(value), value, "A non-negative multiple of 64 bytes.");
            s_prefetchDistance = value;
            DropKernels();
        }
    }
    private static int s_prefetchDistance;

    /// <summary>
    /// Which lines the 1-row loop prefetches: every <c>PrefetchEvery</c>-th 64-byte load (1, 2 or 4), with prefetcht1
    /// (into L2 only) when <see cref="PrefetchToL2"/>, else prefetcht0. Benchmark knobs (setting either drops the kernels
    /// made so far); defaults 1 and false.
    /// </summary>
    internal static int PrefetchEvery
    {
        get => s_prefetchEvery;
        set
        {
            if (value is not (1 or 2 or 4)) throw new ArgumentOutOfRangeException(nameof(value), value, "1, 2 or 4 loads per prefetch.");
            s_prefetchEvery = value;
            DropKernels();
        }
    }
    private static int s_prefetchEvery = 1;

    /// <summary>prefetcht1 instead of prefetcht0 in the 1-row loop (see <see cref="PrefetchEvery"/>).</summary>
    internal static bool PrefetchToL2
    {
        get => s_prefetchToL2;
        set { s_prefetchToL2 = value; DropKernels(); }
    }
    private static bool s_prefetchToL2;

    /// <summary>
    /// Software prefetch distance (bytes) of 4-bit layouts with groups of one or more steps (g128 and up, per row) above
    /// <see cref="CacheResidentBytes"/>, which take the generated loop since session 10 (<see cref="Prepare"/>); 0 keeps
    /// such weights on the managed loop (the earlier gate; a benchmark knob for A/B runs in one build). Default 6144,
    /// the managed loop's distance: without it the generated loop read S1 int4 g128 cold at 0.88-1.06x ORT against
    /// 1.20-1.22x with it (session 10, `--peers --cpu-time`); 8-bit layouts keep no prefetch (<see cref="PrefetchDistance"/>).
    /// </summary>
    internal static int StreamingPrefetch
    {
        get => s_streamingPrefetch;
        set => s_streamingPrefetch = value >= 0 && value % 64 == 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "A non-negative multiple of 64 bytes.");
    }
    private static int s_streamingPrefetch = PrefetchAhead;

    /// <summary>A layout's prefetch distance: its own (<see cref="Layout.Prefetch"/>, streaming 4-bit weights) or the global knob.</summary>
    private static int DistanceOf(in Layout l) => l.Prefetch != 0 ? l.Prefetch : PrefetchDistance;

    /// <summary>The 1-row loop's software prefetch for the load at <paramref name="wo"/>, all in one place.</summary>
    private static void EmitLinePrefetch(X86Assembler asm, in Layout l, int wo)
    {
        int distance = DistanceOf(l);
        if (distance == 0 || (wo / 64) % PrefetchEvery != 0) return;
        var at = new Mem(Gpr.Rdi, wo + distance);
        if (l.Prefetch != 0 && StreamingPrefetchHint != 0) EmitHintedPrefetch(asm, at);
        else if (PrefetchToL2) asm.Prefetcht1(at);
        else asm.Prefetcht0(at);
    }

    /// <summary>
    /// The weight prefetch instruction of streaming layouts (<see cref="Layout.Prefetch"/> != 0): 0 prefetcht0 (default),
    /// 1 prefetcht1, 2 prefetcht2, 3 prefetchnta, 4 none (the hardware prefetcher alone). A benchmark knob for A/B runs
    /// (`--gemv-stream-hint n`; setting it drops the kernels made so far): the 6 KB prefetcht0 was decided on weights
    /// read from DRAM; weights read again from L3 (hot calls of an 8 MiB layer) may want another hint or none.
    /// </summary>
    internal static int StreamingPrefetchHint
    {
        get => s_streamingPrefetchHint;
        set
        {
            s_streamingPrefetchHint = value is >= 0 and <= 4 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "0..4: t0, t1, t2, nta, none.");
            DropKernels();
        }
    }
    private static int s_streamingPrefetchHint;

    private static void EmitHintedPrefetch(X86Assembler asm, Mem at)
    {
        switch (StreamingPrefetchHint)
        {
            case 1: asm.Prefetcht1(at); break;
            case 2: asm.Prefetcht2(at); break;
            case 3: asm.Prefetchnta(at); break;
            case 4: break;
            default: asm.Prefetcht0(at); break;
        }
    }

    private static readonly bool s_cpuHasVnni = DetectVnni();
    private static readonly ConcurrentDictionary<Layout, nint> s_kernels = new();

    /// <summary>Counts <see cref="DropKernels"/> calls: a thread's <see cref="KernelMemo"/> holds only while it is unchanged.</summary>
    private static int s_kernelsVersion;

    /// <summary>Drops the kernels made so far (a knob that changes the emitted code was set).</summary>
    private static void DropKernels()
    {
        s_kernels.Clear();
        Interlocked.Increment(ref s_kernelsVersion);
    }

    /// <summary>
    /// The last own-scale layout a thread's <see cref="Run"/> looked up and its kernels (the pass kernel and the 1-row
    /// one): a 2-thread call runs Run once per claimed chunk (~20 per call), and the two dictionary lookups of a
    /// 14-field layout each time took ~2% of a hot S1 call's samples (session 14).
    /// </summary>
    private sealed class KernelMemo
    {
        public Layout Layout;
        public int Version = -1;
        public nint Kernel, Single;
    }

    [ThreadStatic] private static KernelMemo? t_kernelMemo;

    /// <summary>
    /// Constants the kernels load once per call: 64 bytes of 0x0F (the nibble mask), then the vpermps index rows for 2
    /// and for 4 groups per step (8 and 4 rows of 16 int32).
    /// </summary>
    private static readonly byte* s_constants = MakeConstants();
    private const int Index2Offset = 64, Index4Offset = 64 + 8 * 64, HighNibbleOffset = Index4Offset + 4 * 64;

    /// <summary>
    /// <see cref="Layout.OwnScales"/> kernels take, instead of <see cref="Constants"/>, a per-thread context: the
    /// constants (bytes [0, HighNibbleOffset + 64)), then at this offset one row's float32 scales (G floats, written by
    /// the kernel), then the activation's G group sums (written by <see cref="Run"/> once per call).
    /// </summary>
    internal const int OwnScaleOffset = 1024;

    /// <summary>
    /// Where in an <see cref="OwnScaleOffset"/> context <see cref="Run"/> leaves the first row's zero points for a
    /// <see cref="Layout.OwnZeros"/> kernel call (a pointer; past the constants, before the scales).
    /// </summary>
    internal const int OwnZerosSlot = 960;

    /// <summary>Bytes of an <see cref="OwnScaleOffset"/> context for rows of <paramref name="groups"/> groups.</summary>
    internal static int OwnScaleContextBytes(int groups) => OwnRowsScaleOffset(groups) + 4 * MaxRows * Padded(groups);

    /// <summary>
    /// Where a multi-row <see cref="Layout.OwnScales"/> kernel (4-bit g128 above the gate) converts its
    /// pass's float32 scales (<see cref="Layout.Rows"/> rows of G floats): past the group sums.
    /// </summary>
    internal static int OwnRowsScaleOffset(int groups) => OwnScaleOffset + 8 * Padded(groups);

    /// <summary>Groups rounded up to whole 16-group chunks: the context's scale buffer and group sums take this many floats.</summary>
    private static int Padded(int groups) => (groups + 15) & ~15;

    [ThreadStatic] private static byte[]? t_ownContext;

    /// <summary>
    /// This thread's context (64-byte aligned, <see cref="OwnScaleContextBytes"/>) for a call with these group sums: the
    /// constants are copied once per thread (when the context is made), the group sums on every call.
    /// </summary>
    internal static byte* OwnScaleContext(float* groupSums, int groups)
    {
        var buffer = t_ownContext;
        if (buffer is null || buffer.Length < OwnScaleContextBytes(groups) + 64)
        {
            t_ownContext = buffer = GC.AllocateArray<byte>(Math.Max(OwnScaleContextBytes(groups) + 64, 16 * 1024), pinned: true);
            byte* fresh = (byte*)(((nint)Unsafe.AsPointer(ref buffer[0]) + 63) & ~(nint)63);
            Buffer.MemoryCopy(s_constants, fresh, OwnScaleOffset, HighNibbleOffset + 64);
        }
        byte* context = (byte*)(((nint)Unsafe.AsPointer(ref buffer[0]) + 63) & ~(nint)63);
        // The group sums past a row's groups (a last partial chunk) are zero: the kernel's masked chunk reads them.
        float* sums = (float*)(context + OwnScaleOffset + 4 * Padded(groups));
        Buffer.MemoryCopy(groupSums, sums, 4L * groups, 4L * groups);
        new Span<float>(sums + groups, Padded(groups) - groups).Clear();
        return context;
    }

    /// <summary>Rows the kernel reads side by side (1..<see cref="MaxRows"/>; tests and benchmarks compare them).</summary>
    internal static int RowsPerPass
    {
        get => s_rowsPerPass;
        set => s_rowsPerPass = value is >= 1 and <= MaxRows ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"Rows per pass 1..{MaxRows}.");
    }
    private static int s_rowsPerPass = 1;

    /// <summary>
    /// 4-bit layouts split the high nibbles with one vgf2p8affineqb (GFNI, 512-bit) instead of vpsrlw + vpandd: 7 vector
    /// operations per 128 codes instead of 8 in the Permuted plan (session 11). Same integers, same bits. A benchmark and
    /// test knob (default true; without GFNI the shift and mask run).
    /// </summary>
    internal static bool GfniNibbles { get; set; } = true;

    /// <summary>Tests: false makes <see cref="Applies"/> false, so the managed kernels run.</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>AVX512-VNNI (CPUID.(EAX=7, ECX=0):ECX bit 11) with AVX-512 enabled in this runtime and generated code allowed.</summary>
    public static bool IsSupported => s_cpuHasVnni && Enabled && KernelOptions.GeneratedCode;

    /// <summary>The CPU has AVX512-VNNI and this runtime AVX-512F/BW (the other generated VNNI loops ask here too).</summary>
    internal static bool CpuHasVnni => s_cpuHasVnni;

    private static bool DetectVnni()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported || !Avx512BW.IsSupported) return false;
        var (_, _, ecx, _) = X86Base.CpuId(7, 0);
        return (ecx & (1 << 11)) != 0;
    }

    private static byte* MakeConstants()
    {
        // Never freed: the kernels live as long as the process.
        byte* c = (byte*)NativeMemory.AlignedAlloc(HighNibbleOffset + 64, 64);
        new Span<byte>(c, 64).Fill(0x0F);
        // GF(2) bit matrix taking bits 4-7 of each byte to bits 0-3 (vgf2p8affineqb: the high nibble in one instruction).
        new Span<ulong>(c + HighNibbleOffset, 8).Fill(0x1020408000000000UL);
        FillIndices((int*)(c + Index2Offset), 2);
        FillIndices((int*)(c + Index4Offset), 4);
        return c;
    }

    /// <summary>Row j (of 16 / P): lane k of the step j of a 16-scale block takes scale j P + floor(k P / 16).</summary>
    private static void FillIndices(int* rows, int groupsPerStep)
    {
        int cycle = 16 / groupsPerStep;
        for (int j = 0; j < cycle; j++)
            for (int k = 0; k < 16; k++) rows[16 * j + k] = j * groupsPerStep + (k * groupsPerStep >> 4);
    }

    /// <summary>How the float sums are made (see the remarks).</summary>
    internal enum Plan : byte
    {
        /// <summary>A group of one step: f[u mod 4] += lanes * broadcast scale, one FMA per step.</summary>
        StepFma,
        /// <summary>Groups smaller than a step: f[u mod 4] += lanes * permuted scales, one FMA per step.</summary>
        Permuted,
        /// <summary>Groups of 2+ steps: integer sums per group, then f[g mod 2] += float(sum) * s_g (multiply, add).</summary>
        GroupMulAdd,
        /// <summary>
        /// 8 bits, one group per row: the whole row's integer sum in four chains (no float work inside the row), then
        /// f0 = float(sum) * s once; f1..f3 stay 0. One row per pass (the multi-row knob does not apply).
        /// </summary>
        RowInt,
    }

    /// <summary>A weight's kernel layout: everything the generated code depends on.</summary>
    /// <remarks><c>Prefetch</c>: bytes ahead the loop prefetches each line (0: <see cref="PrefetchDistance"/>); <see cref="Prepare"/>
    /// sets it for 4-bit weights above <see cref="CacheResidentBytes"/>. <c>OwnScales</c> (8 bits, 1 row per pass, rows of whole
    /// 16-group chunks): the kernel's scale argument is the rows' float16 scales (row stride <c>ScaleStride</c> halves) and
    /// its constants argument an <see cref="OwnScaleOffset"/> context; each row's output is f0..f3 then its 16 zero-point
    /// correction lanes (sum over chunks of s * group sums, ScaleRows' FMA chain), <see cref="Layout.OutFloats"/> floats.
    /// 4-bit g32/g64 (Permuted) take <c>OwnScales</c> too (session 13), with <c>OwnZeros</c> for
    /// asymmetric weights: the correction lanes then sum (s * zero point) * group sums, the zero points (one byte per group,
    /// row stride = the groups) read from the pointer at <see cref="OwnZerosSlot"/> of the context.</remarks>
    internal readonly record struct Layout(int Bits, Plan Plan, int Units, int Steps, int GroupsPerStep, int RowBytes, int ScaleStride, int Rows = 1, int Prefetch = 0, int Shift = 0, bool Gfni = false, bool OwnScales = false, bool OwnZeros = false, bool Sums = false)
    {
        /// <summary>
        /// Floats each row's output takes: f0..f3, and with <see cref="OwnScales"/> the 16 correction lanes; with
        /// <see cref="Sums"/> (every 4-bit own layout since session 14; 8 bits with <see cref="OwnInt8RowSums"/>) the row's lane sums (f0 + f1) + (f2 + f3)
        /// made by the kernel, then the correction lanes: 32 floats.
        /// </summary>
        public int OutFloats => Sums ? 32 : OwnScales ? LaneFloats + 16 : LaneFloats;

        /// <summary>Byte offset of a row's correction lanes in its output (<see cref="OwnScales"/>).</summary>
        public int CorrectionOffset => Sums ? 64 : 4 * LaneFloats;

        /// <summary>Activation (and code) count of one step.</summary>
        public int StepCodes => Bits == 8 ? 64 : 128;

        /// <summary>Scales a row's kernel reads: groups (virtual ones for per-row) or, when permuted, whole 16-blocks.</summary>
        public int ScaleCount => Plan switch
        {
            Plan.StepFma => Units,
            Plan.Permuted => (Units * GroupsPerStep + 15) & ~15,
            Plan.RowInt => 1,
            _ => (Units + Steps - 1) / Steps,
        };
    }

    /// <summary>
    /// The layout for this weight at batch 1, or null when the kernel does not take it: 4- or 8-bit codes; groups
    /// that tile the row and are a multiple of a step (up to <see cref="MaxSteps"/>) or a step's half or quarter of
    /// at least 32 codes; or one group per row of at least 2 steps (4 bits: up to 4096 steps, the managed loop's one
    /// integer accumulation).
    /// </summary>
    internal static Layout? LayoutFor(int bits, int groupSize, int groupsPerRow, int inFeatures, int rowBytes, int groupStride)
    {
        if (bits is not (4 or 8) || inFeatures <= 0) return null;
        int stepCodes = bits == 8 ? 64 : 128;
        int units = (inFeatures + stepCodes - 1) / stepCodes;
        Plan plan;
        int steps = 1, perStep = 1;
        if (groupsPerRow == 1)
        {
            if (units < 2) return null;
            steps = Math.Min(RowSteps, units);
            plan = GroupMulAdd;
            // 8 bits: the row's integer sum at once while it cannot overflow (a lane gains at most 4 x 255 x 127 per
            // step; every chain's sum and their total stay below 2^31 up to 16,000 steps, In 1,024,000).
            if (bits == 8 && RowIntegerSums && units <= MaxRowIntUnits)
            {
                steps = 1;
                plan = RowInt;
            }
        }
        else
        {
            if ((long)groupSize * groupsPerRow != inFeatures) return null;
            if (groupSize % stepCodes == 0)
            {
                steps = groupSize / stepCodes;
                if (steps > MaxSteps) return null;
                plan = steps == 1 ? StepFma : GroupMulAdd;
            }
            else if (groupSize >= 32 && stepCodes % groupSize == 0)
            {
                perStep = stepCodes / groupSize;
                plan = Permuted;
            }
            else return null;
        }
        if ((long)units * 64 > int.MaxValue / 4) return null;
        var layout = new Layout(bits, plan, units, steps, perStep, rowBytes, 0, plan == RowInt ? 1 : RowsPerPass,
            Gfni: bits == 4 && GfniNibbles && System.Runtime.Intrinsics.X86.Gfni.V512.IsSupported);
        // One float per (virtual) group, 16-float aligned; zero past the row's groups (permuted blocks read them).
        return layout with { ScaleStride = (Math.Max(groupStride, layout.ScaleCount) + 15) & ~15 };
    }

    private const Plan StepFma = Plan.StepFma, Permuted = Plan.Permuted, GroupMulAdd = Plan.GroupMulAdd, RowInt = Plan.RowInt;

    /// <summary>Most 64-code steps of an 8-bit row summed in integers at once (<see cref="Plan.RowInt"/>).</summary>
    internal const int MaxRowIntUnits = 16000;

    /// <summary>
    /// 8-bit per-row weights take <see cref="Plan.RowInt"/> (default) instead of virtual groups of
    /// <see cref="RowSteps"/> steps converted one by one; false: the virtual groups (A/B runs; results differ by
    /// float32 rounding only).
    /// </summary>
    internal static bool RowIntegerSums
    {
        get => s_rowIntegerSums;
        set { s_rowIntegerSums = value; }
    }
    private static bool s_rowIntegerSums = true;

    /// <summary>True when batch 1 of this weight takes the generated kernel here.</summary>
    public static bool Applies(int bits, int batch, int groupSize, int groupsPerRow, int inFeatures, int vectorBits) =>
        batch == 1 && vectorBits == 512 && IsSupported
        && LayoutFor(bits, groupSize, groupsPerRow, inFeatures, (inFeatures * bits + 7) / 8, (groupsPerRow + 15) & ~15) is not null;

    /// <summary>
    /// The kernel: (w, x, scales, out, constants, rows) runs <c>rows</c> rows from w (row r at w + r * RowBytes, its
    /// float32 scales at scales + r * ScaleStride) and stores each row's 64 float accumulators (f0..f3) at out + 64 r.
    /// Null when the code cannot be made here.
    /// </summary>
    internal static delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void> Kernel(Layout layout)
    {
        if (!s_cpuHasVnni) return null;
        nint code = s_kernels.GetOrAdd(layout, static key => (nint)ExecutableMemory.TryCreate(Emit(key)));
        return (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void>)code;
    }

    /// <summary>The constants pointer the kernels take (tests call kernels directly).</summary>
    internal static byte* Constants => s_constants;

    /// <summary>
    /// The machine code (System V: rdi = w, rsi = x, rdx = scales, rcx = out, r8 = constants, r9 = rows; r10 counts
    /// loop iterations, rax keeps x).
    /// </summary>
    internal static byte[] Emit(Layout l)
    {
        if (l.Steps < 1 || l.Steps > (l.Plan == GroupMulAdd ? MaxSteps : 1) || l.Units < 1 || l.RowBytes <= 0
            || l.ScaleStride < (l.OwnScales ? 1 : l.ScaleCount)) // (own scales: the stride is the row's groups; checked below)
            throw new ArgumentOutOfRangeException(nameof(l), l, "Steps 1..MaxSteps per group (1 unless grouped), a positive row, and a scale stride holding a row's scales.");
        if (l.Rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(l), l, $"Rows per pass 1..{MaxRows}.");
        if (l.Shift != 0 && (l.Shift is < 1 or > 15 || l.Rows != 1 || l.RowBytes % 64 != 0 || l.Plan == Permuted && 16 / l.GroupsPerStep % 2 != 0))
            throw new ArgumentOutOfRangeException(nameof(l), l, "A shift of 1..15 dwords: rows of whole cache lines, 1 row per pass.");
        if (l.Plan == RowInt && (l.Bits != 8 || l.Rows != 1 || l.Units > MaxRowIntUnits))
            throw new ArgumentOutOfRangeException(nameof(l), l, "Whole-row integer sums: 8 bits, 1 row per pass, at most MaxRowIntUnits steps.");
        if (l.Gfni && (l.Bits != 4 || !System.Runtime.Intrinsics.X86.Gfni.V512.IsSupported))
            throw new ArgumentOutOfRangeException(nameof(l), l, "The GFNI nibble split: 4 bits, on a CPU with 512-bit GFNI.");
        // Own scales: ScaleStride is the row's groups (its float16 scales' row stride); a last partial 16-group chunk only
        // on the 1-row kernel (its loads masked to the row's groups).
        if (l.OwnScales && (l.Bits == 8 ? l.Plan == RowInt : l.Bits != 4 || l.Plan is not (Permuted or StepFma)) || l.OwnScales && (l.Rows != 1 && !(l.Bits == 4 && l.Plan == StepFma)
            || l.ScaleCount != (l.Plan == Permuted ? Padded(l.ScaleStride) : l.ScaleStride) || l.ScaleStride % 16 != 0 && l.Rows != 1
            || l.Plan == GroupMulAdd && l.Units % l.Steps != 0 || (long)l.Units * 64 != l.RowBytes))
            throw new ArgumentOutOfRangeException(nameof(l), l, "Own scales: 8 bits or 4-bit permuted scales, 1 row per pass (whole 16-group chunks for more), whole groups, rows of whole steps.");
        if (l.OwnZeros && (!l.OwnScales || l.Bits != 4))
            throw new ArgumentOutOfRangeException(nameof(l), l, "Own zero points: a 4-bit own-scale layout.");
        if (l.Sums && (!l.OwnScales || l.Bits == 8 && l.Rows != 1))
            throw new ArgumentOutOfRangeException(nameof(l), l, "Row sums in the kernel: an own-scale layout (8 bits: 1 row per pass).");
        if (l.Rows > 1) return EmitRows(l);
        var asm = new X86Assembler();
        bool nibbles = l.Bits == 4;
        int xStep = l.StepCodes; // activation bytes per step
        var mask = new Zmm(31);
        var highNibbles = new Zmm(30); // the GFNI matrix (l.Gfni)
        Zmm F(int i) => new(i & 3);
        // Shift != 0 (8 bits): rows start Shift dwords past a cache line; every load is of a whole aligned line and
        // valignd joins two neighbours (zmm20/21 by the line's parity: the 4-bit loop's registers), so no load splits
        // two lines. The steps run in memory order and every loop advances rdi by an even number of lines.
        bool shifted = l.Shift != 0;
        // 8 bits: zmm20/21 (the nibble temporaries, unused); 4 bits: zmm22/23, the temporaries then alternate between
        // two sets (t mod 2) instead of four.
        Zmm Line(int q) => new((nibbles ? 22 : 20) + (q & 1));
        // 8-bit groups of 2-4 steps sum in one integer chain (no second zeroing, no vpaddd; the same integer sum), and
        // 8-bit one-step groups run 8 steps per loop pass (session 11, 'lean loops': fewer instructions per weight byte).
        bool oneChain = !nibbles && l.Plan == GroupMulAdd && l.Steps <= 4;
        // OwnScales: rdx is the first row's float16 scales (kept in r11); each row converts its own into the context's
        // float buffer (rdx then points there) and sums its correction lanes on the way (zmm30; the context: OwnScaleOffset).
        bool own = l.OwnScales;
        // Own scales: the row's groups, and those of its last partial 16-group chunk (0: whole chunks), whose scale and
        // zero-point loads are masked by k1 to the row's groups (the rest of the chunk zero, ScaleRow's padded chunk).
        int groups = own ? l.ScaleStride : l.ScaleCount, tail = own ? groups % 16 : 0, padded = Padded(groups);
        var tailMask = new KReg(1);
        // 4 bits: zmm30 is the GFNI matrix and zmm24 a nibble temporary, so the correction and the chunk's scales take
        // zmm26/27 and the zero points zmm19 (the nibble temporaries then alternate between two sets: 16/17, 20/21, 24/25).
        var correction = new Zmm(nibbles ? 26 : 30);
        // Permuted (8-bit g32, 4-bit g32/g64): no float buffer at all; each chunk of 16 groups converts its scales into a
        // register inside the loop (session 12: 8-bit g32 faster than the row's scales into the buffer before it).
        bool ownInLoop = own && l.Plan == Permuted;
        var chunkScales = new Zmm(nibbles ? 27 : 24);
        var chunkZeros = new Zmm(19);
        bool ownZeros = l.OwnZeros;
        // 4-bit g32 (4 groups per step): OwnInt4PrefetchRows as one prefetch of the scales (and one of the zero points)
        // per 16-group chunk in the loop instead of a burst at each row's start; g64 keeps the burst. In-process A/B
        // (session 13, S1, 1 thread, CPU time, cold, 150 rounds): g32 asym 1.05-1.06x the burst in 4 runs, g64 asym
        // 0.91-0.99x in 3, hot equal.
        bool prefetch4InLoop = own && nibbles && l.GroupsPerStep == 4;

        // One step: codes at rdi + wo, activations at rsi + 2 wo (4 bits) or rsi + wo, into accumulators lo/hi
        // (the same register unless the plan keeps the nibble halves apart); t picks the temporaries.
        void Step(int wo, Zmm lo, Zmm hi, int t)
        {
            if (nibbles && (shifted || own)) t &= 1;
            Zmm w = new(16 + t), h = new(20 + t), low = new(24 + t);
            int xo = nibbles ? 2 * wo : wo;
            EmitLinePrefetch(asm, l, wo);
            if (shifted)
            {
                // The step's 64 codes straddle aligned lines q and q + 1 (q = wo / 64 from rdi's line): line q is in
                // Line(q) from the step before (or the row's start), line q + 1 is loaded once into Line(q + 1).
                int q = wo / 64;
                asm.Vmovdqu32(Line(q + 1), new Mem(Gpr.Rdi, wo + 64 - 4 * l.Shift));
                asm.Valignd(w, Line(q + 1), Line(q), (byte)l.Shift);
            }
            else asm.Vmovdqu32(w, new Mem(Gpr.Rdi, wo));
            if (!nibbles)
            {
                asm.Vpdpbusd(lo, w, new Mem(Gpr.Rsi, xo));
                return;
            }
            if (l.Gfni) asm.Vgf2p8affineqb(h, w, highNibbles, 0);
            else
            {
                asm.Vpsrlw(h, w, 4);
                asm.Vpandd(h, h, mask);
            }
            asm.Vpandd(low, w, mask);
            asm.Vpdpbusd(lo, low, new Mem(Gpr.Rsi, xo));
            asm.Vpdpbusd(hi, h, new Mem(Gpr.Rsi, xo + 64));
        }

        // One step of the per-step plans: its lanes scaled into f[u mod 4]; j is the step's place in its chunk.
        void ScaledStep(int j, bool last = false)
        {
            var acc = new Zmm(4 + (j & 3));
            asm.Vpxord(acc, acc, acc);
            Step(64 * j, acc, acc, j & 3);
            asm.Vcvtdq2ps(acc, acc);
            if (l.Plan == StepFma) asm.Vfmadd231ps(F(j), acc, new Mem(Gpr.Rdx, 4 * j, Broadcast: true));
            else
            {
                var s = new Zmm(28 + (j & 1));
                if (ownInLoop)
                {
                    // The chunk's 16 float16 scales converted once, into a register (zmm24), at its first step; rdx walks
                    // the group sums for the correction lanes.
                    if (j == 0)
                    {
                        // (The last, partial chunk of a row: masked to its groups.)
                        bool masked = last && tail != 0;
                        if (masked) asm.Vcvtph2ps(chunkScales, new Mem(Gpr.R11, 0), tailMask);
                        else asm.Vcvtph2ps(chunkScales, new Mem(Gpr.R11, 0));
                        if (prefetch4InLoop && OwnInt4PrefetchRows != 0 && (l.Prefetch != 0 || OwnInt4PrefetchRows < 0))
                        {
                            // The same lines as the row-start prefetch, one per chunk each (half / three quarters repeat a line).
                            asm.Prefetcht0(new Mem(Gpr.R11, Math.Abs(OwnInt4PrefetchRows) * 2 * l.ScaleStride));
                            if (ownZeros) asm.Prefetcht0(new Mem(Gpr.Rbx, Math.Abs(OwnInt4PrefetchRows) * l.ScaleStride));
                        }
                        EmitCorrection(asm, correction, chunkScales, chunkZeros, ownZeros, new Mem(Gpr.Rbx, 0), new Mem(Gpr.Rdx, 0), masked ? tailMask : null);
                    }
                    asm.Vpermps(s, new Zmm(8 + j), chunkScales);
                }
                else asm.Vpermps(s, new Zmm(8 + j), new Mem(Gpr.Rdx, 0));
                asm.Vfmadd231ps(F(j), acc, s);
            }
        }

        // Groups of 2+ steps, two side by side (a = 0, b = 1): each keeps two integer chains, summed at its end.
        Zmm SetLo(int group, int chain) => new(4 + 2 * group + chain);      // zmm4..7: group a chains 0/1, group b chains 0/1
        void ZeroGroup(int group)
        {
            asm.Vpxord(SetLo(group, 0), SetLo(group, 0), SetLo(group, 0));
            if (!oneChain) asm.Vpxord(SetLo(group, 1), SetLo(group, 1), SetLo(group, 1));
        }
        void GroupStep(int group, int j, int wo)
        {
            // 4 bits: chain 0 takes the low nibbles, chain 1 the high; 8 bits: steps alternate between the chains
            // (oneChain: all in chain 0).
            if (nibbles) Step(wo, SetLo(group, 0), SetLo(group, 1), group);
            else if (oneChain) Step(wo, SetLo(group, 0), SetLo(group, 0), group);
            else Step(wo, SetLo(group, j & 1), SetLo(group, j & 1), group);
        }
        void FinishGroup(int group, int slot, int so)
        {
            var sum = SetLo(group, 0);
            if (!oneChain) asm.Vpaddd(sum, sum, SetLo(group, 1));
            asm.Vcvtdq2ps(sum, sum);
            asm.Vmulps(sum, sum, new Mem(Gpr.Rdx, so, Broadcast: true));
            asm.Vaddps(F(slot), F(slot), sum);
        }

        // Entry: the constants into registers, x kept for every row.
        asm.Vmovdqu32(mask, new Mem(Gpr.R8, 0));
        if (l.Gfni) asm.Vmovdqu32(highNibbles, new Mem(Gpr.R8, HighNibbleOffset));
        if (l.Plan == Permuted)
        {
            int cycle = 16 / l.GroupsPerStep, table = l.GroupsPerStep == 2 ? Index2Offset : Index4Offset;
            for (int j = 0; j < cycle; j++) asm.Vmovdqu32(new Zmm(8 + j), new Mem(Gpr.R8, table + 64 * j));
        }
        asm.Mov(Gpr.Rax, Gpr.Rsi);
        if (own) asm.Mov(Gpr.R11, Gpr.Rdx);
        if (tail != 0)
        {
            asm.MovImm32(Gpr.R10, (1 << tail) - 1);
            asm.Kmovw(tailMask, Gpr.R10);
        }
        if (ownZeros)
        {
            // rbx (callee-saved) walks the zero points, from the pointer Run leaves in the context.
            asm.Push(Gpr.Rbx);
            asm.MovLoad(Gpr.Rbx, new Mem(Gpr.R8, OwnZerosSlot));
        }

        int row = asm.Position;
        for (int i = 0; i < 4; i++) asm.Vpxord(F(i), F(i), F(i));
        if (own)
        {
            // ScaleRows' whole-chunk order: c = fma(s_chunk, groupSums_chunk, c) over the chunks from c = 0, so the
            // lanes (reduced by TransposeSum in Run) are its bits; vcvtph2ps is exact, as HalvesToSingle is.
            asm.Vpxord(correction, correction, correction);
            // The float16 scales of the row OwnScalePrefetchRows ahead, so each row's conversion finds its scales in
            // L1 instead of waiting on L3 with the row's FMAs behind it (a prefetch past the last row cannot fault).
            // Not for the in-loop g32 conversion: its loads issue early in the row anyway, and the prefetch measured
            // 1.52-1.57x (2 rows ahead) and 1.40-1.44x (4) against 1.60-1.65x without (gain over ScaleRows, one process).
            if (OwnScalePrefetchRows > 0 && !ownInLoop && !nibbles)
                for (int b = 0; b < 2 * groups; b += 64) asm.Prefetcht0(new Mem(Gpr.R11, OwnScalePrefetchRows * 2 * l.ScaleStride + b));
            // 4 bits (OwnInt4PrefetchRows; streaming layouts only, or every 4-bit own layout when negative): the float16
            // scales and zero points of the row that many rows ahead.
            int ahead4 = Math.Abs(OwnInt4PrefetchRows);
            if (nibbles && ahead4 > 0 && (l.Prefetch != 0 || OwnInt4PrefetchRows < 0) && !prefetch4InLoop)
            {
                for (int b = 0; b < 2 * groups; b += 64) asm.Prefetcht0(new Mem(Gpr.R11, ahead4 * 2 * l.ScaleStride + b));
                if (ownZeros)
                    for (int b = 0; b < groups; b += 64) asm.Prefetcht0(new Mem(Gpr.Rbx, ahead4 * l.ScaleStride + b));
            }
            for (int c = 0; c < (ownInLoop ? 0 : padded / 16); c++)
            {
                // (4 bits, g128: the nibble temporaries zmm16/17 and 20/21 are free before the row's loop.)
                var s = nibbles ? new Zmm(16 + (c & 1)) : new Zmm(24 + (c & 3));
                bool masked = tail != 0 && c == padded / 16 - 1;
                if (masked) asm.Vcvtph2ps(s, new Mem(Gpr.R11, 32 * c), tailMask);
                else asm.Vcvtph2ps(s, new Mem(Gpr.R11, 32 * c));
                asm.Vmovups(new Mem(Gpr.R8, OwnScaleOffset + 64 * c), s);
                EmitCorrection(asm, correction, s, new Zmm(20 + (c & 1)), ownZeros, new Mem(Gpr.Rbx, 16 * c), new Mem(Gpr.R8, OwnScaleOffset + 4 * padded + 64 * c),
                    masked ? tailMask : null);
            }
            if (ownZeros && !ownInLoop) asm.AddImm(Gpr.Rbx, groups);
            asm.Mov(Gpr.Rdx, Gpr.R8);
            asm.AddImm(Gpr.Rdx, OwnScaleOffset + (ownInLoop ? 4 * padded : 0));
        }
        if (shifted) asm.Vmovdqu32(Line(0), new Mem(Gpr.Rdi, -4 * l.Shift));
        int wAdvance = 0, sAdvance = 0;
        if (l.Plan is StepFma or Permuted)
        {
            // Chunks of C steps: 4 broadcast scales (8 at 8 bits), or one aligned 16-scale block (16 / P steps).
            int fmaChunk = l.Plan == StepFma && !nibbles ? 8 : 4;
            int chunk = l.Plan == StepFma ? fmaChunk : 16 / l.GroupsPerStep;
            int chunkScaleBytes = l.Plan == StepFma ? 4 * fmaChunk : 64;
            int chunks = l.Units / chunk, rest = l.Units % chunk;
            if (chunks > 0)
            {
                asm.MovImm32(Gpr.R10, chunks);
                int loop = asm.Position;
                for (int j = 0; j < chunk; j++) ScaledStep(j);
                asm.AddImm(Gpr.Rdi, 64 * chunk);
                asm.AddImm(Gpr.Rsi, xStep * chunk);
                asm.AddImm(Gpr.Rdx, chunkScaleBytes);
                if (ownInLoop) asm.AddImm(Gpr.R11, 32);
                if (ownZeros && ownInLoop) asm.AddImm(Gpr.Rbx, 16);
                asm.Dec(Gpr.R10);
                asm.JnzBack(loop);
                wAdvance = 64 * chunk * chunks;
                sAdvance = chunkScaleBytes * chunks;
            }
            for (int j = 0; j < rest; j++) ScaledStep(j, last: true);
        }
        else if (l.Plan == RowInt)
        {
            // Four integer chains (zmm4..7, step u into chain u mod 4), 8 steps per loop pass, then one conversion.
            Zmm Chain(int c) => new(4 + (c & 3));
            for (int c = 0; c < 4; c++) asm.Vpxord(Chain(c), Chain(c), Chain(c));
            const int chunk = 8;
            int chunks = l.Units / chunk, rest = l.Units % chunk;
            if (chunks > 0)
            {
                asm.MovImm32(Gpr.R10, chunks);
                int loop = asm.Position;
                for (int j = 0; j < chunk; j++) Step(64 * j, Chain(j), Chain(j), j & 3);
                asm.AddImm(Gpr.Rdi, 64 * chunk);
                asm.AddImm(Gpr.Rsi, xStep * chunk);
                asm.Dec(Gpr.R10);
                asm.JnzBack(loop);
                wAdvance = 64 * chunk * chunks;
            }
            for (int j = 0; j < rest; j++) Step(64 * j, Chain(j), Chain(j), j & 3);
            asm.Vpaddd(Chain(0), Chain(0), Chain(1));
            asm.Vpaddd(Chain(2), Chain(2), Chain(3));
            asm.Vpaddd(Chain(0), Chain(0), Chain(2));
            asm.Vcvtdq2ps(Chain(0), Chain(0));
            asm.Vmulps(F(0), Chain(0), new Mem(Gpr.Rdx, 0, Broadcast: true));
        }
        else
        {
            int s = l.Steps, full = l.Units / s, rest = l.Units % s;
            if (full >= 2)
            {
                asm.MovImm32(Gpr.R10, full / 2);
                int loop = asm.Position;
                ZeroGroup(0);
                ZeroGroup(1);
                if (shifted)
                {
                    // Memory order (line q's register is filled by step q - 1); the same integer sums.
                    for (int j = 0; j < s; j++) GroupStep(0, j, 64 * j);
                    for (int j = 0; j < s; j++) GroupStep(1, j, 64 * (s + j));
                }
                else
                    for (int j = 0; j < s; j++)
                    {
                        GroupStep(0, j, 64 * j);
                        GroupStep(1, j, 64 * (s + j));
                    }
                FinishGroup(0, 0, 0);
                FinishGroup(1, 1, 4);
                asm.AddImm(Gpr.Rdi, 128 * s);
                asm.AddImm(Gpr.Rsi, 2 * xStep * s);
                asm.AddImm(Gpr.Rdx, 8);
                asm.Dec(Gpr.R10);
                asm.JnzBack(loop);
                wAdvance = 128 * s * (full / 2);
                sAdvance = 8 * (full / 2);
            }
            // The odd full group (an even index: f0), then a partial last group (per-row only) into f[its index mod 2].
            int wo = 0, so = 0;
            if ((full & 1) != 0)
            {
                ZeroGroup(0);
                for (int j = 0; j < s; j++) GroupStep(0, j, 64 * j);
                FinishGroup(0, 0, 0);
                wo = 64 * s;
                so = 4;
            }
            if (rest > 0)
            {
                ZeroGroup(1);
                for (int j = 0; j < rest; j++) GroupStep(1, j, wo + 64 * j);
                FinishGroup(1, full & 1, so);
            }
        }
        if (l.Sums)
        {
            // Run's reduction of the four accumulators, (f0 + f1) + (f2 + f3), here: one vector per row instead of four.
            asm.Vaddps(F(0), F(0), F(1));
            asm.Vaddps(F(2), F(2), F(3));
            asm.Vaddps(F(0), F(0), F(2));
            asm.Vmovups(new Mem(Gpr.Rcx, 0), F(0));
        }
        else
            for (int i = 0; i < 4; i++) asm.Vmovups(new Mem(Gpr.Rcx, 64 * i), F(i));
        if (own) asm.Vmovups(new Mem(Gpr.Rcx, l.CorrectionOffset), correction);
        asm.AddImm(Gpr.Rcx, 4 * l.OutFloats);
        if (l.RowBytes - wAdvance != 0) asm.AddImm(Gpr.Rdi, l.RowBytes - wAdvance);
        if (own && !ownInLoop) asm.AddImm(Gpr.R11, 2 * l.ScaleStride); // (in the loop: r11 walked the row's whole chunks)
        else if (4 * l.ScaleStride - sAdvance != 0) asm.AddImm(Gpr.Rdx, 4 * l.ScaleStride - sAdvance);
        if (ownInLoop && tail != 0)
        {
            // Past the row's partial chunk, which the loop's chunk steps did not walk.
            asm.AddImm(Gpr.R11, 2 * tail);
            if (ownZeros) asm.AddImm(Gpr.Rbx, tail);
        }
        asm.Mov(Gpr.Rsi, Gpr.Rax);
        asm.Dec(Gpr.R9);
        asm.JnzBack(row);
        if (ownZeros) asm.Pop(Gpr.Rbx);
        asm.Vzeroupper();
        asm.Ret();
        return asm.ToArray();
    }

    /// <summary>Most rows one pass of the kernel reads side by side (<see cref="EmitRows"/>).</summary>
    public const int MaxRows = 4;

    /// <summary>
    /// The multi-row kernel's software prefetch, all in one place: the load of row r at offset <paramref name="wo"/>
    /// prefetches the same offset of row r a whole number of passes ahead (at least <see cref="PrefetchDistance"/> bytes).
    /// Each line is then prefetched once, by the load that reads the same place of an earlier pass; a distance of
    /// PrefetchAhead from each row's load (the 1-row kernel's rule) would land, for rows shorter than it, on lines of
    /// the pass's other rows that are already read.
    /// </summary>
    private static void EmitPrefetch(X86Assembler asm, Layout l, int rowOffset, int wo)
    {
        int distance = DistanceOf(l);
        if (distance == 0) return;
        int pass = l.Rows * l.RowBytes;
        int ahead = (distance + pass - 1) / pass * pass;
        var at = new Mem(Gpr.Rdi, ahead + rowOffset + wo);
        if (l.Prefetch != 0) EmitHintedPrefetch(asm, at);
        else asm.Prefetcht0(at);
    }

    /// <summary>
    /// One 16-group chunk's term of a row's correction lanes, ScaleRows' FMA chain: symmetric c = fma(s, groupSums, c);
    /// with zero points (<paramref name="ownZeros"/>) t = s * float(zero point) in <paramref name="z"/> (the chunk's 16
    /// bytes at <paramref name="zeros"/>), then c = fma(t, groupSums, c).
    /// </summary>
    private static void EmitCorrection(X86Assembler asm, Zmm correction, Zmm s, Zmm z, bool ownZeros, Mem zeros, Mem groupSums, KReg? mask = null)
    {
        if (ownZeros)
        {
            // (A row's partial last chunk: its zero points masked, so nothing past the array's end is read.)
            if (mask is { } k) asm.Vpmovzxbd(z, zeros, k);
            else asm.Vpmovzxbd(z, zeros);
            asm.Vcvtdq2ps(z, z);
            asm.Vmulps(z, s, z);
            asm.Vfmadd231ps(correction, z, groupSums);
        }
        else asm.Vfmadd231ps(correction, s, groupSums);
    }

    /// <summary>
    /// The kernel for <see cref="Layout.Rows"/> = R &gt; 1 (same arguments; <c>rows</c> a multiple of R): R rows per
    /// pass, each step's activations loaded once into registers for the R rows' weight loads (1 + 2/R loads per
    /// 64 weight bytes at 4 bits instead of 3, 1 + 1/R at 8 bits instead of 2), and each row's float sums made by the
    /// 1-row kernel's operations in its order (same accumulators f0..f3, same plan), so a row's result does not depend
    /// on R.
    /// </summary>
    /// <remarks>
    /// Registers: f0..f3 of row r in zmm(4r)..zmm(4r + 3) (grouped plans: f0, f1 in zmm(2r), zmm(2r + 1) and the
    /// integer chains in zmm8..15); activations in zmm16..19 (two sets, alternate steps); permute indices zmm20/21;
    /// row temporaries in zmm22..29 (two sets, alternate rows); zmm30 zero; zmm31 the nibble mask.
    /// </remarks>
    private static byte[] EmitRows(Layout l)
    {
        var asm = new X86Assembler();
        int rows = l.Rows;
        bool nibbles = l.Bits == 4;
        int xStep = l.StepCodes, rowScaleBytes = 4 * l.ScaleStride;
        var mask = new Zmm(31);
        // zmm30: zero for the grouped plans' stores, or (l.Gfni) the GFNI matrix, the zero then made in a temporary.
        var zero = new Zmm(l.Gfni ? 22 : 30);
        var highNibbles = new Zmm(30);
        Zmm X(int j, int half) => new(16 + 2 * (j & 1) + half);
        Zmm Temp(int r, int k) => new(22 + 4 * (r & 1) + k); // k: 0 = w (then s), 1 = high nibbles, 2 = low, 3 = sum

        // Step j's activations (at rsi + xo) into registers.
        void LoadX(int j, int xo)
        {
            asm.Vmovdqu32(X(j, 0), new Mem(Gpr.Rsi, xo));
            if (nibbles) asm.Vmovdqu32(X(j, 1), new Mem(Gpr.Rsi, xo + 64));
        }
        // Row r's step at weight offset wo: low/even codes into lo, high/odd into hi (the same register but for
        // 4-bit grouped chains).
        void RowStep(int r, int j, int wo, Zmm lo, Zmm hi)
        {
            Zmm w = Temp(r, 0), h = Temp(r, 1), low = Temp(r, 2);
            EmitPrefetch(asm, l, r * l.RowBytes, wo);
            asm.Vmovdqu32(w, new Mem(Gpr.Rdi, r * l.RowBytes + wo));
            if (!nibbles)
            {
                asm.Vpdpbusd(lo, w, X(j, 0));
                return;
            }
            if (l.Gfni) asm.Vgf2p8affineqb(h, w, highNibbles, 0);
            else
            {
                asm.Vpsrlw(h, w, 4);
                asm.Vpandd(h, h, mask);
            }
            asm.Vpandd(low, w, mask);
            asm.Vpdpbusd(lo, low, X(j, 0));
            asm.Vpdpbusd(hi, h, X(j, 1));
        }

        asm.Vmovdqu32(mask, new Mem(Gpr.R8, 0));
        if (l.Gfni) asm.Vmovdqu32(highNibbles, new Mem(Gpr.R8, HighNibbleOffset));
        else asm.Vpxord(zero, zero, zero);
        asm.Mov(Gpr.Rax, Gpr.Rsi);
        // OwnScales (4-bit g128 above the gate): rdx is the first row's float16 scales (kept in r11), rbx the zero
        // points (OwnZeros); each pass converts its rows' scales into the context's rows buffer (rdx then points there)
        // and writes each row's correction lanes (ScaleRows' chunk-by-chunk FMA chain from zero) before the loop.
        bool own = l.OwnScales, ownZeros = l.OwnZeros;
        int groups = l.ScaleCount, outBytes = 4 * l.OutFloats;
        if (own) asm.Mov(Gpr.R11, Gpr.Rdx);
        if (ownZeros)
        {
            asm.Push(Gpr.Rbx);
            asm.MovLoad(Gpr.Rbx, new Mem(Gpr.R8, OwnZerosSlot));
        }
        int pass = asm.Position;
        if (own)
        {
            int ahead = Math.Abs(OwnInt4PrefetchRows) * rows;
            if (ahead > 0 && (l.Prefetch != 0 || OwnInt4PrefetchRows < 0))
            {
                for (int b = 0; b < rows * 2 * l.ScaleStride; b += 64) asm.Prefetcht0(new Mem(Gpr.R11, ahead * 2 * l.ScaleStride + b));
                if (ownZeros)
                    for (int b = 0; b < rows * l.ScaleStride; b += 64) asm.Prefetcht0(new Mem(Gpr.Rbx, ahead * l.ScaleStride + b));
            }
            var corr = new Zmm(20);
            for (int r = 0; r < rows; r++)
            {
                asm.Vpxord(corr, corr, corr);
                for (int c = 0; c < groups / 16; c++)
                {
                    var s = new Zmm(22 + 2 * (c & 1));
                    asm.Vcvtph2ps(s, new Mem(Gpr.R11, r * 2 * l.ScaleStride + 32 * c));
                    asm.Vmovups(new Mem(Gpr.R8, OwnRowsScaleOffset(groups) + 4 * (r * l.ScaleStride + 16 * c)), s);
                    EmitCorrection(asm, corr, s, new Zmm(23 + 2 * (c & 1)), ownZeros, new Mem(Gpr.Rbx, r * l.ScaleStride + 16 * c),
                        new Mem(Gpr.R8, OwnScaleOffset + 4 * groups + 64 * c));
                }
                asm.Vmovups(new Mem(Gpr.Rcx, outBytes * r + l.CorrectionOffset), corr);
            }
            asm.Mov(Gpr.Rdx, Gpr.R8);
            asm.AddImm(Gpr.Rdx, OwnRowsScaleOffset(groups));
        }
        int wAdvance = 0, sAdvance = 0;
        if (l.Plan is StepFma or Permuted)
        {
            Zmm F(int r, int i) => new(4 * r + (i & 3));
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < 4; i++) asm.Vpxord(F(r, i), F(r, i), F(r, i));
            int chunk = l.Plan == StepFma ? 4 : 16 / l.GroupsPerStep;
            int chunkScaleBytes = l.Plan == StepFma ? 16 : 64;
            int table = l.GroupsPerStep == 2 ? Index2Offset : Index4Offset;
            int chunks = l.Units / chunk, rest = l.Units % chunk;
            // Step j of a chunk for every row: f[j mod 4] += lanes * scale(s), as the 1-row kernel's ScaledStep.
            void ScaledSteps(int j)
            {
                LoadX(j, xStep * j);
                var index = new Zmm(20 + (j & 1));
                if (l.Plan == Permuted) asm.Vmovdqu32(index, new Mem(Gpr.R8, table + 64 * j));
                for (int r = 0; r < rows; r++)
                {
                    var acc = Temp(r, 3);
                    asm.Vpxord(acc, acc, acc);
                    RowStep(r, j, 64 * j, acc, acc);
                    asm.Vcvtdq2ps(acc, acc);
                    if (l.Plan == StepFma) asm.Vfmadd231ps(F(r, j), acc, new Mem(Gpr.Rdx, r * rowScaleBytes + 4 * j, Broadcast: true));
                    else
                    {
                        var s = Temp(r, 0);
                        asm.Vpermps(s, index, new Mem(Gpr.Rdx, r * rowScaleBytes));
                        asm.Vfmadd231ps(F(r, j), acc, s);
                    }
                }
            }
            if (chunks > 0)
            {
                asm.MovImm32(Gpr.R10, chunks);
                int loop = asm.Position;
                for (int j = 0; j < chunk; j++) ScaledSteps(j);
                asm.AddImm(Gpr.Rdi, 64 * chunk);
                asm.AddImm(Gpr.Rsi, xStep * chunk);
                asm.AddImm(Gpr.Rdx, chunkScaleBytes);
                asm.Dec(Gpr.R10);
                asm.JnzBack(loop);
                wAdvance = 64 * chunk * chunks;
                sAdvance = chunkScaleBytes * chunks;
            }
            for (int j = 0; j < rest; j++) ScaledSteps(j);
            for (int r = 0; r < rows; r++)
            {
                if (l.Sums)
                {
                    // (f0 + f1) + (f2 + f3), Run's order, one vector per row.
                    asm.Vaddps(F(r, 0), F(r, 0), F(r, 1));
                    asm.Vaddps(F(r, 2), F(r, 2), F(r, 3));
                    asm.Vaddps(F(r, 0), F(r, 0), F(r, 2));
                    asm.Vmovups(new Mem(Gpr.Rcx, outBytes * r), F(r, 0));
                }
                else
                    for (int i = 0; i < 4; i++) asm.Vmovups(new Mem(Gpr.Rcx, outBytes * r + 64 * i), F(r, i));
            }
        }
        else
        {
            Zmm F(int r, int slot) => new(2 * r + slot);
            Zmm Chain(int r, int c) => new(8 + 2 * r + c);
            for (int r = 0; r < rows; r++)
            {
                asm.Vpxord(F(r, 0), F(r, 0), F(r, 0));
                asm.Vpxord(F(r, 1), F(r, 1), F(r, 1));
            }
            // One group of n steps at weight offset wo for every row, into f[slot] with the scale at rdx + so.
            void Group(int slot, int wo, int so, int n)
            {
                for (int r = 0; r < rows; r++)
                {
                    asm.Vpxord(Chain(r, 0), Chain(r, 0), Chain(r, 0));
                    asm.Vpxord(Chain(r, 1), Chain(r, 1), Chain(r, 1));
                }
                for (int j = 0; j < n; j++)
                {
                    int o = wo + 64 * j;
                    LoadX(j, nibbles ? 2 * o : o);
                    for (int r = 0; r < rows; r++)
                    {
                        // 4 bits: chain 0 takes the low nibbles, chain 1 the high; 8 bits: steps alternate chains.
                        if (nibbles) RowStep(r, j, o, Chain(r, 0), Chain(r, 1));
                        else RowStep(r, j, o, Chain(r, j & 1), Chain(r, j & 1));
                    }
                }
                for (int r = 0; r < rows; r++)
                {
                    var sum = Chain(r, 0);
                    asm.Vpaddd(sum, sum, Chain(r, 1));
                    asm.Vcvtdq2ps(sum, sum);
                    asm.Vmulps(sum, sum, new Mem(Gpr.Rdx, r * rowScaleBytes + so, Broadcast: true));
                    asm.Vaddps(F(r, slot), F(r, slot), sum);
                }
            }
            int s = l.Steps, full = l.Units / s, rest = l.Units % s;
            if (full >= 2)
            {
                asm.MovImm32(Gpr.R10, full / 2);
                int loop = asm.Position;
                Group(0, 0, 0, s);
                Group(1, 64 * s, 4, s);
                asm.AddImm(Gpr.Rdi, 128 * s);
                asm.AddImm(Gpr.Rsi, 2 * xStep * s);
                asm.AddImm(Gpr.Rdx, 8);
                asm.Dec(Gpr.R10);
                asm.JnzBack(loop);
                wAdvance = 128 * s * (full / 2);
                sAdvance = 8 * (full / 2);
            }
            int wo = 0, so = 0;
            if ((full & 1) != 0)
            {
                Group(0, 0, 0, s);
                wo = 64 * s;
                so = 4;
            }
            if (rest > 0) Group(full & 1, wo, so, rest);
            if (l.Gfni) asm.Vpxord(zero, zero, zero); // a temporary, free here
            for (int r = 0; r < rows; r++)
            {
                asm.Vmovups(new Mem(Gpr.Rcx, 4 * LaneFloats * r), F(r, 0));
                asm.Vmovups(new Mem(Gpr.Rcx, 4 * LaneFloats * r + 64), F(r, 1));
                asm.Vmovups(new Mem(Gpr.Rcx, 4 * LaneFloats * r + 128), zero);
                asm.Vmovups(new Mem(Gpr.Rcx, 4 * LaneFloats * r + 192), zero);
            }
        }
        asm.AddImm(Gpr.Rcx, outBytes * rows);
        if (rows * l.RowBytes - wAdvance != 0) asm.AddImm(Gpr.Rdi, rows * l.RowBytes - wAdvance);
        if (own)
        {
            // (rdx is set again from the context at the next pass's start.)
            asm.AddImm(Gpr.R11, rows * 2 * l.ScaleStride);
            if (ownZeros) asm.AddImm(Gpr.Rbx, rows * l.ScaleStride);
        }
        else if (rows * rowScaleBytes - sAdvance != 0) asm.AddImm(Gpr.Rdx, rows * rowScaleBytes - sAdvance);
        asm.Mov(Gpr.Rsi, Gpr.Rax);
        asm.SubImm(Gpr.R9, rows);
        asm.JnzBack(pass);
        if (ownZeros) asm.Pop(Gpr.Rbx);
        asm.Vzeroupper();
        asm.Ret();
        return asm.ToArray();
    }

    /// <summary>
    /// The kernel a batch-1 call of this weight runs (as <see cref="FusedInt8Dot.Args.VnniKernel"/>), or 0 when the
    /// managed kernels run: the caller then keeps their code offset (the kernel's codes enter unshifted).
    /// </summary>
    /// <remarks>
    /// 4-bit codes, and 8-bit codes in groups of 32 (permuted scales), take the kernel only while the weight is at most
    /// <see cref="CacheResidentBytes"/>. In cache (512x4096, one thread, bytes per CPU-second, two runs) the kernel ran
    /// 1.14-1.27x the managed loop with 4-bit codes and 1.31-1.41x with 8-bit g32; on 4096x4096 weights read from L3
    /// and memory it was not faster and often slower (8-bit g32 0.57-0.75x in six runs at prefetch distances of 0 to
    /// 12 KB; 4-bit cold S1 rows 0.77-1.16x ORT against 1.10-1.37x with the managed loop, one thread, CPU time), and
    /// cold rows must not regress. The cause was not found (development VM under load 26-42); see docs/benchmarks.md
    /// ("Generated batch-1 GEMV"). Since session 10 (Zen 5 VM, ~1.8x the DRAM bandwidth) 4-bit groups of a step or more
    /// (g128+, per row) above the gate take the kernel with a 6 KB prefetch and 4 rows per pass (<see cref="Chosen"/>):
    /// S1 g128 hot and cold CPU time per call lower; 4-bit g32/g64 (permuted scales) still ran 0.55-0.72x ORT hot and
    /// 0.53-0.92x cold with the gate lifted, so they kept the managed loop (docs/benchmarks.md, session 10). Since
    /// session 12 g64 streams too (with <see cref="ScalePrefetchSlices"/>).
    /// </remarks>
    public static nint Prepare(int bits, int batch, int groupSize, int groupsPerRow, int inFeatures, int rowBytes, int groupStride, int vectorBits, int outFeatures,
        bool symmetric = false)
    {
        if (batch != 1 || vectorBits != 512 || !IsSupported) return 0;
        var layout = Chosen(bits, groupSize, groupsPerRow, inFeatures, rowBytes, groupStride, outFeatures, symmetric);
        return layout is null ? 0 : (nint)Kernel(layout.Value);
    }

    /// <summary>
    /// The layout a batch-1 call of this weight runs (<see cref="Prepare"/> and <see cref="Run"/> agree through it), or
    /// null for the managed loop: 4-bit groups of a step or more above <see cref="CacheResidentBytes"/> stream with
    /// <see cref="StreamingPrefetch"/> and <see cref="StreamingRows"/> rows per pass, 4-bit g64 likewise 1 row per pass;
    /// 8-bit g32 keeps the managed loop unless symmetric with rows of whole 16-group chunks.
    /// <para>Own scales (<see cref="Layout.OwnScales"/>; the knobs that switched them were retired in session 15, their
    /// evidence here). Symmetric 8-bit weights whose rows are whole chunks of 16 groups (512 codes at g32, 1024 at g64,
    /// 2048 at g128) take, at any size, the kernel that converts its own float16 scales and sums its own correction
    /// lanes instead of <see cref="FusedInt8Dot.ScaleRows"/> per 16-row block (session 12: S1 1 thread g32 1.5x, g64
    /// 1.06-1.13x, g128 1.02-1.09x). 4-bit g32/g64 with rows of whole 16-group chunks take the 4-bit own-scale kernel
    /// with zero points (session 13: in-process A/B against ScaleRows / the managed loop, S1/S2, 1 thread CPU, hot
    /// 1.2-1.9x, cold 1.1-1.3x), in cache and above the gate (g32 there before: the managed loop). 4-bit g128 above the
    /// gate converts its own scales in the <see cref="StreamingRows"/>-row streaming kernel (session 13, the lead's 3 quiet
    /// peers pairs: S1/S2 hot and cold no worse). Same bits as ScaleRows in every case (same float scales, same FMA chain).</para>
    /// </summary>
    private static Layout? Chosen(int bits, int groupSize, int groupsPerRow, int inFeatures, int rowBytes, int groupStride, int outFeatures,
        bool symmetric)
    {
        var layout = LayoutFor(bits, groupSize, groupsPerRow, inFeatures, rowBytes, groupStride);
        if (layout is null) return null;
        // Rows ending in a partial 16-group chunk (In 384 at g32/g64/g128, 768 at g64/g128, ...) take the own-scale
        // kernels in cache only (session 17): their short rows spent most of a call in ScaleRows and Run's per-row sums
        // (1536x384 int4 g64, 1 thread: 14.4 us against 11.0 for 1536x1024 on the own kernel).
        bool inCache = (long)rowBytes * outFeatures <= CacheResidentBytes;
        // (ScaleStride: the float16 scales' row stride, the row's groups.)
        var ownFit = layout.Value with { Rows = 1, OwnScales = true, ScaleStride = groupsPerRow };
        if (bits == 8 && symmetric && OwnScalesFit(ownFit, groupsPerRow, inCache))
            return ownFit with { Sums = OwnInt8RowSums };
        if (bits == 4 && layout.Value.Plan == StepFma && OwnScalesFit(ownFit, groupsPerRow, inCache))
        {
            // 4-bit g128 (one group per step): above the gate StreamingRows rows per pass (the streaming kernel's form),
            // each pass converting its rows' scales before its loop (session 13); in cache 1 row per pass, each row's
            // scales into the context's L1 buffer at its start (the 8-bit g64/g128 scheme; session 16, against the
            // plain kernel and ScaleRows: in-process A/B, 1024x2048 / 2048x2048 / 512x4096 hot 1.13-1.21x on 1 thread
            // and 1.10-1.13x on 2, cold 0.97-1.17x, 384x1536 and 1536x384 1.00x).
            var own = ownFit with { OwnZeros = !symmetric, Sums = true };
            if (inCache) return own;
            if (StreamingPrefetch != 0) return own with { Prefetch = StreamingPrefetch, Rows = StreamingRows };
        }
        if (bits == 4 && layout.Value.Plan == Permuted && OwnScalesFit(ownFit, groupsPerRow, inCache))
        {
            // 4-bit g32/g64 converting their own scales (and zero points; session 13): in cache, and above the gate
            // streaming (g32 there before: the managed loop).
            var own = ownFit with { OwnZeros = !symmetric, Sums = true };
            if (inCache) return own;
            if (StreamingPrefetch != 0) return own with { Prefetch = StreamingPrefetch };
        }
        if ((bits == 4 || layout.Value.Plan == Permuted) && (long)rowBytes * outFeatures > CacheResidentBytes)
        {
            // 4-bit g64 streams 1 row per pass with its scale prefetch in slices (ScalePrefetchSlices; session 12: 1.2x the
            // managed loop hot, 1.1x cold); g32 keeps the managed loop (session 11's quiet peers: its cold rows lost).
            if (bits != 4 || layout.Value.Plan == Permuted && layout.Value.GroupsPerStep != 2 || StreamingPrefetch == 0) return null;
            layout = layout.Value with { Prefetch = StreamingPrefetch, Rows = layout.Value.Plan == Permuted ? 1 : StreamingRows };
        }
        return layout;
    }

    /// <summary>
    /// The 8-bit own-scale kernel (<see cref="Layout.OwnScales"/>) adds each row's accumulators itself, (f0 + f1) + (f2 + f3)
    /// as <see cref="Run"/> did, and leaves one vector of lane sums and one of correction lanes per row
    /// (<see cref="Layout.Sums"/>, the 4-bit own layouts' scheme of session 14; session 15): a hot 1-thread S1 int8 g128 call spent
    /// 6.8% of its samples in Run against ~87% in the kernel. Same operations, same bits. Default on (`--gemv-own8-sums 0|1`):
    /// 1-thread in-process pairs 1.04-1.15x on every int8 own-scale row, hot and cold, quartiles above 1; 2 threads hot
    /// 1.030, cold 1.043 (docs/kernels.md, session 15, ws16/hot1).
    /// </summary>
    internal static bool OwnInt8RowSums { get; set; } = true;

    /// <summary>
    /// Rows ahead whose float16 scales and zero points a 4-bit <see cref="Layout.OwnScales"/> kernel prefetches
    /// (prefetcht0) at each row's start, in streaming layouts (above the gate; negative: in every 4-bit own layout);
    /// 0: none. A benchmark knob (`--gemv-own4-prefetch n`); setting it drops the kernels made so far.
    /// </summary>
    internal static int OwnInt4PrefetchRows
    {
        get => s_ownInt4PrefetchRows;
        set { s_ownInt4PrefetchRows = value is >= -64 and <= 64 ? value : throw new ArgumentOutOfRangeException(nameof(value)); DropKernels(); }
    }
    private static int s_ownInt4PrefetchRows = 2;

    /// <summary>
    /// Rows ahead whose float16 scales an <see cref="Layout.OwnScales"/> kernel with the row buffer (g64, g128+)
    /// prefetches (prefetcht0) at each row's start (0: none). A benchmark knob; setting it drops the kernels made so far.
    /// </summary>
    internal static int OwnScalePrefetchRows
    {
        get => s_ownScalePrefetchRows;
        set { s_ownScalePrefetchRows = value is >= 0 and <= 64 ? value : throw new ArgumentOutOfRangeException(nameof(value)); DropKernels(); }
    }
    private static int s_ownScalePrefetchRows = 2;

    /// <summary>
    /// Whether an own-scale kernel can take this layout: rows of whole 16-group chunks, or with
    /// <paramref name="partialChunk"/> (1 row per pass; session 17) rows whose last chunk is partial.
    /// </summary>
    private static bool OwnScalesFit(in Layout l, int groupsPerRow, bool partialChunk) =>
        (l.Bits == 8 ? l.Plan != RowInt : l.Bits == 4 && (l.Plan == Permuted || l.Plan == StepFma))
        && (groupsPerRow % 16 == 0 ? l.ScaleCount == groupsPerRow && l.ScaleStride == groupsPerRow
            : partialChunk && l.ScaleCount == (l.Plan == Permuted ? Padded(groupsPerRow) : groupsPerRow))
        && (l.Plan != GroupMulAdd || l.Units % l.Steps == 0) && (long)l.Units * 64 == l.RowBytes;

    /// <summary>
    /// Rows per pass of the streaming 4-bit layouts (<see cref="Chosen"/>; 1..<see cref="MaxRows"/>, a benchmark knob):
    /// default 4 (session 10: `--quick gemv1` 4096x4096 int4 g128, 1 thread, 4 rows 1.07-1.22x one row, prefetch on both).
    /// </summary>
    internal static int StreamingRows
    {
        get => s_streamingRows;
        set => s_streamingRows = value is >= 1 and <= MaxRows ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"Rows per pass 1..{MaxRows}.");
    }
    private static int s_streamingRows = 4;

    /// <summary>
    /// Largest 8-bit g32 and 4-bit g32/g64 weight (bytes) the kernel takes (see <see cref="Prepare"/>); larger 4-bit
    /// weights with groups of a step or more take it with <see cref="StreamingPrefetch"/>.
    /// </summary>
    internal static long CacheResidentBytes { get; set; } = 4L << 20;

    /// <summary>
    /// 4-bit weights: <see cref="PrefetchScales"/> for the next block before each kernel call (default true). A knob for
    /// A/B runs. 8-bit weights never prefetch them (session 11: with weights in L3, a burst of 16-64 prefetcht0 per 16-row
    /// block ran S1 g32/g64/g128 products 5-30% slower; the next block's scales are read on demand by ScaleRows).
    /// </summary>
    internal static bool PrefetchLowBitScales { get; set; } = true;

    /// <summary>
    /// Streaming g32/g64 layouts (permuted scales above <see cref="CacheResidentBytes"/>): slices of a 16-row block's
    /// kernel call over which the next block's scale prefetch (<see cref="PrefetchScales"/>) is spread
    /// (1..<see cref="BlockRows"/>; other layouts always issue it in one burst). 1: one burst of prefetcht0 before the
    /// call (before session 12: 96 lines per block for 4-bit g32 asym, 48 for g64); default 8: the kernel runs 2 rows at
    /// a time, each pair after its share (12 / 6 lines). The burst was most of the streaming loop's cold loss against
    /// the managed loop (in-process interleaved A/B, S1, 1 thread, CPU time: g32 0.69-0.82x, g64 0.80-1.09x with the
    /// burst; 0.90-1.03x and 0.99-1.12x with 16 slices; hot 1.1-1.3x either way); 8 slices ran g64 hot 1.03-1.09x
    /// the 16 (fewer calls), cold 0.94-1.04x; 4 slices lost cold (0.91-0.95x). Same rows, same kernel, same order: no
    /// bits change. A knob for A/B runs (`--gemv-scale-prefetch-slices n`).
    /// </summary>
    internal static int ScalePrefetchSlices
    {
        get => s_scalePrefetchSlices;
        set => s_scalePrefetchSlices = value is >= 1 and <= BlockRows ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"Slices 1..{BlockRows}.");
    }
    private static int s_scalePrefetchSlices = 8;

    /// <summary>Blocks ahead the scale prefetch reads (1: the next block, as before; 2: the one after). A knob for A/B runs.</summary>
    internal static int ScalePrefetchAhead
    {
        get => s_scalePrefetchAhead;
        set => s_scalePrefetchAhead = value is >= 1 and <= 4 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "1..4 blocks.");
    }
    private static int s_scalePrefetchAhead = 1;

    /// <summary>The scale prefetch with prefetcht1 (into L2) instead of prefetcht0. A knob for A/B runs.</summary>
    internal static bool ScalePrefetchToL2 { get; set; }

    [ThreadStatic] private static byte[]? t_scratch;

    /// <summary>
    /// Prefetches the float16 scales and zero points of rows [r0, r0 + count) (the next call's block) while this
    /// block's kernel streams its weights: converted in one burst before the kernel, a cold block's scales were read
    /// on demand with the weight stream idle.
    /// </summary>
    private static void PrefetchScales(in FusedInt8Dot.Args a, int r0, int count)
    {
        long groups = (long)count * a.GroupsPerRow;
        byte* s = (byte*)(a.Scales + (nint)r0 * a.GroupsPerRow);
        byte* z = a.Zeros == null ? null : a.Zeros + (nint)r0 * a.GroupsPerRow;
        if (ScalePrefetchToL2)
        {
            for (long o = 0; o < 2 * groups; o += 64) Sse.Prefetch1(s + o);
            if (z != null) for (long o = 0; o < groups; o += 64) Sse.Prefetch1(z + o);
            return;
        }
        for (long o = 0; o < 2 * groups; o += 64) Sse.Prefetch0(s + o);
        if (z == null) return;
        for (long o = 0; o < groups; o += 64) Sse.Prefetch0(z + o);
    }

    /// <summary>
    /// Output rows [start, end) of batch 1 with <see cref="FusedInt8Dot.Args.VnniKernel"/> from <see cref="Prepare"/>
    /// and code offset 0: y[r] = rowScale * (dot_r - correction_r), the correction the zero points folded through the
    /// activation's group sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(in FusedInt8Dot.Args a, int start, int end)
    {
        int gpr = a.GroupsPerRow, rowBytes = a.RowBytes;
        var l = Chosen(a.Bits, a.GroupSize, gpr, a.In, rowBytes, a.GroupStride, a.Out, a.Zeros == null)!.Value;
        int scaleStride = l.ScaleStride, scaleCount = l.ScaleCount, units = l.Units;
        bool own = l.OwnScales;
        int outFloats = l.OutFloats;
        // a.VnniKernel reads l.Rows rows per pass; a block's leftover rows take the 1-row kernel.
        // (OwnScales: the layout's own kernel, whatever Prepare was told about zero points.)
        delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void> kernel, single;
        var memo = own ? t_kernelMemo ??= new KernelMemo() : null;
        if (memo != null && memo.Version == Volatile.Read(ref s_kernelsVersion) && memo.Layout == l)
        {
            kernel = (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void>)memo.Kernel;
            single = (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void>)memo.Single;
        }
        else
        {
            int version = Volatile.Read(ref s_kernelsVersion);
            kernel = own ? Kernel(l) : (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void>)a.VnniKernel;
            single = l.Rows == 1 ? kernel : Kernel(l with { Rows = 1 });
            if (memo != null && kernel != null && single != null)
            {
                memo.Layout = l;
                memo.Kernel = (nint)kernel;
                memo.Single = (nint)single;
                memo.Version = version;
            }
        }
        // Rows of whole cache lines that start off a line (a managed array's codes: 16-48 bytes past one), read one per
        // pass: the kernel that loads whole lines and joins them (see Layout.Shift); the aligned copy of a last row keeps
        // the plain one. Loads that split two lines ran the 8-bit loop 1.3-1.5x slower in L2 and 1.2x from L3 (session
        // 10); 4 bits since session 11.
        int misalign = (int)((nint)a.Packed & 63);
        if (l.Rows == 1 && misalign != 0 && misalign % 4 == 0 && rowBytes % 64 == 0
            && (l.Plan != Permuted || 16 / l.GroupsPerStep % 2 == 0))
        {
            var shiftedKernel = Kernel(l with { Shift = misalign / 4 });
            if (shiftedKernel != null) kernel = shiftedKernel;
        }

        // Scratch: a block's scales and accumulators, a zero-padded copy of the last row (when its reads would pass the
        // end of the codes), then ScaleRows' work space and the block's corrections.
        int work = FusedInt8Dot.ScaleRowsWork(gpr);
        long need = 64 + 4L * BlockRows * (scaleStride + outFloats) + (long)units * 64 + 64 + 4L * (work + 16);
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<byte>((int)Math.Max(need, 64 * 1024), pinned: true);
        float* sf = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* lanes = sf + BlockRows * scaleStride;
        byte* copy = (byte*)(lanes + BlockRows * outFloats);
        float* scaleWork = (float*)(copy + (((long)units * 64 + 64) & ~63L));
        float* corrections = scaleWork + work;
        // OwnScales: the kernel's context (constants, one row's float scales, the group sums) instead of the constants.
        byte* constants = own ? OwnScaleContext(a.GroupSums, gpr) : s_constants;
        int symmetricZero = 1 << (a.Bits - 1);
        var rowScale = Vector512.Create(a.RowScale[0]);
        // Reads run to units * 64 bytes from a row's start: past the row's end when In is not a multiple of a step
        // (the next row's codes meet zero activations), so only the matrix's last row needs the copy.
        bool overrun = (long)units * 64 > rowBytes;
        // Scales past a row's groups stay zero (permuted blocks read them; the scratch is shared by every layout).
        if (!own) new Span<float>(sf, BlockRows * scaleStride).Clear();
        var sums = stackalloc Vector512<float>[BlockRows + 1];
        sums = (Vector512<float>*)(((nint)sums + 63) & ~(nint)63);

        int block = RowsPerCall, ownPasses = 0;
        for (int r0 = start; r0 < end; r0 += block)
        {
            int count = Math.Min(block, end - r0);
            if (own)
            {
                // The kernel converts the rows' float16 scales itself and leaves 16 correction lanes per row (with zero
                // points: sum of (s * z) * group sums, the whole correction; symmetric: times the symmetric term).
                if (l.OwnZeros) *(byte**)(constants + OwnZerosSlot) = a.Zeros + (nint)r0 * gpr;
                ownPasses = count / l.Rows * l.Rows;
                if (ownPasses > 0) kernel(a.Packed + (nint)r0 * rowBytes, a.Q, (float*)(a.Scales + (nint)r0 * gpr), lanes, constants, ownPasses);
                if (ownPasses < count)
                {
                    // Multi-row own layouts (g128): the block's last rows on the 1-row own kernel.
                    int r1 = r0 + ownPasses;
                    if (l.OwnZeros) *(byte**)(constants + OwnZerosSlot) = a.Zeros + (nint)r1 * gpr;
                    single(a.Packed + (nint)r1 * rowBytes, a.Q, (float*)(a.Scales + (nint)r1 * gpr), lanes + outFloats * ownPasses, constants, count - ownPasses);
                }
                if (l.Sums)
                {
                    // The kernel left per row its lane sums and correction lanes (32 floats): transposed in place. A
                    // partial block's rows past count hold stale floats; lane k of a transpose-sum reads row k only.
                    var rowSums = FusedInt8Dot.TransposeSum(lanes, 32);
                    var correctionSums = FusedInt8Dot.TransposeSum(lanes + 16, 32);
                    var yb = (rowSums - (l.OwnZeros ? correctionSums : correctionSums * Vector512.Create((float)symmetricZero))) * rowScale;
                    if (count == BlockRows) yb.Store(a.Y + r0);
                    else
                        for (int k = 0; k < count; k++) a.Y[r0 + k] = yb[k];
                    continue;
                }
                var acc = (Vector512<float>*)scaleWork;
                for (int k = 0; k < count; k++) acc[k] = Vector512.Load(lanes + outFloats * k + LaneFloats);
                for (int k = count; k < BlockRows; k++) acc[k] = Vector512<float>.Zero;
                var lanesSum = FusedInt8Dot.TransposeSum(acc);
                (l.OwnZeros ? lanesSum : lanesSum * Vector512.Create((float)symmetricZero)).Store(corrections);
            }
            else
            {
            // The block's scales and zero-point corrections at once (ScaleRow's bits, row by row).
            FusedInt8Dot.ScaleRows(a.Scales + (nint)r0 * gpr, a.Zeros == null ? null : a.Zeros + (nint)r0 * gpr,
                symmetricZero, 0, sf, scaleStride, a.GroupSums, gpr, count, scaleWork, corrections);
            if (gpr == 1)
            {
                // One group per row: every virtual group carries the row's scale.
                for (int k = 0; k < count; k++)
                {
                    float* rowScales = sf + (nint)k * scaleStride;
                    var v = Vector512.Create(rowScales[0]);
                    for (int g = 0; g < scaleCount; g += 16) v.Store(rowScales + g);
                }
            }
            // The block ScalePrefetchAhead blocks on (its rows [nextStart, nextStart + nextCount)).
            int nextStart = r0 + count + (ScalePrefetchAhead - 1) * block;
            bool prefetchNext = l.Bits != 8 && PrefetchLowBitScales && nextStart < end;
            int nextCount = prefetchNext ? Math.Min(block, end - nextStart) : 0;
            byte* w = a.Packed + (nint)r0 * rowBytes;
            int direct = overrun && r0 + count == a.Out ? count - 1 : count;
            int passes = direct / l.Rows * l.Rows;
            int slices = prefetchNext && l.Plan == Permuted && l.Prefetch != 0 ? ScalePrefetchSlices : 1;
            if (slices <= 1 || passes <= l.Rows)
            {
                if (prefetchNext) PrefetchScales(a, nextStart, nextCount);
                if (passes > 0) kernel(w, a.Q, sf, lanes, s_constants, passes);
            }
            else
            {
                // The next block's scales spread over the call: slices of whole passes, each after its share of prefetches.
                int sliceRows = Math.Max(l.Rows, (passes + slices - 1) / slices / l.Rows * l.Rows);
                int fetched = 0;
                for (int k0 = 0; k0 < passes; k0 += sliceRows)
                {
                    int n = Math.Min(sliceRows, passes - k0);
                    int upTo = k0 + n == passes ? nextCount : (int)((long)nextCount * (k0 + n) / passes);
                    if (upTo > fetched) PrefetchScales(a, nextStart + fetched, upTo - fetched);
                    fetched = upTo;
                    kernel(w + (nint)k0 * rowBytes, a.Q, sf + (nint)k0 * scaleStride, lanes + LaneFloats * k0, s_constants, n);
                }
            }
            if (direct > passes)
                single(w + (nint)passes * rowBytes, a.Q, sf + (nint)passes * scaleStride, lanes + LaneFloats * passes, s_constants, direct - passes);
            if (direct < count)
            {
                new Span<byte>(copy, units * 64).Clear();
                Buffer.MemoryCopy(w + (nint)direct * rowBytes, copy, (long)units * 64, rowBytes);
                single(copy, a.Q, sf + (nint)direct * scaleStride, lanes + LaneFloats * direct, s_constants, 1);
            }
            }
            // The managed loop's reduction, (f0 + f1) + (f2 + f3) then Vector512.Sum's tree, for the block's rows together.
            for (int k = 0; k < count; k++)
            {
                float* f = lanes + outFloats * k;
                sums[k] = (Vector512.Load(f) + Vector512.Load(f + 16)) + (Vector512.Load(f + 32) + Vector512.Load(f + 48));
            }
            for (int k = count; k < BlockRows; k++) sums[k] = Vector512<float>.Zero;
            var y = (FusedInt8Dot.TransposeSum(sums) - Vector512.Load(corrections)) * rowScale;
            if (count == BlockRows) y.Store(a.Y + r0);
            else
                for (int k = 0; k < count; k++) a.Y[r0 + k] = y[k];
        }
    }
}
