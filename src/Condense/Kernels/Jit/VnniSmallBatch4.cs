using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Quantization;

namespace Condense.Kernels.Jit;

/// <summary>
/// What one call of a generated small-batch kernel reads and writes: R weight rows (4-bit codes, packed as stored)
/// against M batch rows over every whole 128-code step of the rows. Field offsets are part of the generated code.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct SmallBatchArgs
{
    /// <summary>+0: the first row's packed codes (two per byte, low nibble first); row r at W + r * RowBytes.</summary>
    public byte* W;

    /// <summary>+8: bytes between consecutive rows' codes.</summary>
    public long RowBytes;

    /// <summary>+16: the tile's activations: step j, batch row m, half h (0: even codes, 1: odd codes) at X + (j * M + m) * 128 + 64 h.</summary>
    public sbyte* X;

    /// <summary>+24: the first row's lane scales (float32); step j reads the 16 floats at S + j * ScaleAdvance and permutes them by Index.</summary>
    public float* S;

    /// <summary>+32: bytes between consecutive rows' lane scales.</summary>
    public long ScaleStride;

    /// <summary>+40: whole 128-code steps, at least 1.</summary>
    public long Steps;

    /// <summary>+48: [r][m][16] float32 lanes: in, the accumulators' starting values (zeros, or the negated zero-point
    /// correction lanes); out, the lane sums (the caller adds the 16 lanes). The 8-bit kernels' int32 lanes start at zero.</summary>
    public float* Acc;

    /// <summary>+56: 16 int32 lane indices: lane l of a step takes the scale at S[Index[l]].</summary>
    public int* Index;

    /// <summary>+64: bytes the lane-scale pointers advance per step.</summary>
    public long ScaleAdvance;

    /// <summary>+72: 0x0F0F0F0F, the nibble mask.</summary>
    public int Mask;

    /// <summary>+80: the prefetch front of variant 0: each iteration requests the next R x (bytes read per row) bytes from here into L2 (see EmitPrefetch).</summary>
    public byte* Front;

    /// <summary>+88 (own-scale kernels, <see cref="VnniSmallBatch4.OwnScales"/>): the first row's float16 scales; the R
    /// rows' scales are contiguous (Chunks x 16 per row), and the kernel writes them as float32 to S (ScaleStride = Chunks x 64 bytes).</summary>
    public Half* HalfScales;

    /// <summary>+96 (own-scale kernels): the first row's zero points (Chunks x 16 bytes per row, contiguous), or bytes of 8 (symmetric).</summary>
    public byte* Zeros;

    /// <summary>+104 (own-scale kernels): the tile's group sums of the activations, chunk k of batch row c at GroupSums + (k M + c) 16 floats.</summary>
    public float* GroupSums;

    /// <summary>+112 (own-scale kernels): whole chunks of 16 groups per row, at least 1 (the row has no other groups).</summary>
    public long Chunks;

    /// <summary>+120 (own-scale kernels): 0x80000000, the float32 sign bit.</summary>
    public int SignMask;

    /// <summary>+128 (lane-tree kernels, <see cref="VnniSmallBatch4.OwnLaneTree"/>): 16 int32, the lane tree's final order (ReduceLanes16's).</summary>
    public int* ReduceOrder;
}

/// <summary>
/// Batches of 2 to 15 rows for 4-bit codes with int8 activations: generated AVX-512 VNNI kernels that read the packed
/// codes in place (no byte-per-code copy, which would double the bytes a 4-bit product reads) and share each weight
/// load across every batch row of a tile, so small batches stay bound by the weight stream as batch 1 is.
/// </summary>
/// <remarks>
/// <para>Per 128-code step and weight row: one 64-byte load of packed codes; vpandd with 0x0F gives the even codes (low
/// nibbles) and vpsrlw 4 + vpandd the odd ones, one per byte: unsigned operands of vpdpbusd. The activations are laid
/// out once per call to match: for each batch row and step, its 64 even-indexed and 64 odd-indexed int8 values. Two
/// vpdpbusd give lane l the exact integer sum of codes 8l..8l+7 of the step times their activations; every such lane
/// lies in one group (groups are multiples of 8 codes), so vcvtdq2ps and one FMA with a vector of the lanes' group
/// scales (vpermps of the row's float32 scales) add it into a float32 accumulator per weight row and batch row.</para>
/// <para>The zero points are taken out after the sums, as the managed kernels do: y = sx (sum - sum_g s_g z_g sum_g q),
/// the group sums of the activations computed once per call. A row's tail past its last whole step (In not a multiple
/// of 128) is added in managed code, exact per group, since a whole-step load there would read past the row (and past
/// the array for the last row).</para>
/// <para>Register blocking: R weight rows x M batch rows of float32 accumulators (R (M + 3) &lt;= 26 with the decoded
/// codes, the scales, four temporaries, the lane index and the mask): M = 8 takes R = 2, M = 4 R = 3, M = 2 R = 4
/// (paired kernels, <see cref="RowsPerCall"/>: 2, 2 and 3).
/// Batches above 8 run as two tiles of nearly equal size; a block of 12 weight rows runs every tile before the next
/// block, so the second tile reads the rows from cache.</para>
/// <para>Results do not depend on the thread count, R or the tile sizes: each output's operations and their order
/// depend only on its own weight row and batch row. They differ from the managed kernels' rounding (those convert one
/// exact sum per group), within the int8-activation tolerance of the scalar reference.</para>
/// </remarks>
internal static unsafe class VnniSmallBatch4
{
    /// <summary>Largest batch rows per tile.</summary>
    public const int MaxTile = 8;

    /// <summary>Codes per step.</summary>
    public const int StepCodes = 128;

    private const int BlockRows = 12; // a multiple of every R (2, 3, 4)

    /// <summary>
    /// Weight rows per call for a tile of <paramref name="m"/> batch rows: the most with R (M + 3) &lt;= 26 (R (M + 6)
    /// &lt;= 28 with <paramref name="paired"/> steps, which hold four decoded vectors and a temporary per row), at most 4.
    /// </summary>
    public static int RowsPerCall(int m, bool paired) => Math.Min(4, paired ? 28 / (m + 6) : 26 / (m + 3));

    /// <summary>
    /// True when a product takes the paired kernels: two steps (256 codes) per iteration, whose two loads are regrouped
    /// by 128-bit chunks (vshufi32x4) so that each lane stays in one group of 64 or more for both steps, and each
    /// output's conversion and FMA run once per 256 codes instead of once per 128. Needs groups of a multiple of 64
    /// (or one per row) and rows of whole pairs of steps.
    /// </summary>
    public static bool UsesPairs(int groupSize, int groupsPerRow, int inFeatures) =>
        inFeatures % (2 * StepCodes) == 0 && (groupsPerRow == 1 || groupSize % 64 == 0);

    /// <summary>The kernels of one prefetch variant, made when first used: the variants a run does not pick cost no code.</summary>
    private static readonly Lazy<nint[]?>[] s_slices = Enumerable.Range(0, Variants).Select(i => new Lazy<nint[]?>(() => Build(i))).ToArray();

    /// <summary>The kernels of prefetch variant 2: present when the generated code runs here at all.</summary>
    private static nint[]? DefaultSlice => s_slices[2].Value;

    /// <summary>Index of a kernel in a slice's flat code table (a multi-dimensional array's element access is a call through an IL stub, ~2% of b8's time).</summary>
    private static int CodeIndex(int p, int m, int rows) => (p * (MaxTile + 1) + m) * 5 + rows;

    /// <summary>Kernel kinds: 0 unpaired, 1 paired, 2 paired interleaved, 3 paired own-scale, 4 paired own-scale
    /// interleaved, 5 / 6: 3 / 4 adding their lanes (<see cref="OwnLaneTree"/>).</summary>
    private const int Kinds = 7;

    /// <summary>Experiment knob: 0 = L2 block prefetch (prefetcht1 front), 1 = no software prefetch, 2 / 3 = prefetcht0
    /// 6 / 12 KB ahead of each row's loads (the managed kernels' pattern), 4 = 0 and 2 together, 5 = prefetcht0 3 KB,
    /// 6 / 7 / 8 / 9 = prefetcht0 8 / 7 / 10 / 9 KB (<see cref="EmitPrefetch"/>; session 15 also tried a linear front
    /// past the call's first row, each row's prefetches right after its loads, and one prefetch per 128 bytes: none
    /// better, docs/kernels.md).</summary>
    internal static int PrefetchVariant { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_PF"), out int v) ? v : 2;

    private const int Variants = 10;

    /// <summary>
    /// Knob (env <c>CONDENSE_SB4_PF4</c>; default 9; -1: <see cref="PrefetchVariant"/>): the prefetch variant of tiles of
    /// 4 or more batch rows, whose paired calls take 2 weight rows (b2's take 3). Session 15 (cold S2, one thread,
    /// in-process pairs): 9 KB ahead (variant 9) ran b4 1.08-1.15x faster than 6 KB and b8 1.04x, while b2 was 0.97x
    /// with it: the best distance depends on the rows per call. The batch targets (int4-g64 S2, 2 threads) with it:
    /// b4 1.49 / 1.53x -> 1.20 / 1.27x of batch 1 (lead, alternating runs). Prefetches change no value.
    /// </summary>
    internal static int PrefetchVariantWide { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_PF4"), out int w) ? w : 9;

    /// <summary>Experiment knob: at most this many weight rows per kernel call (0: <see cref="RowsPerCall"/>).</summary>
    internal static int RowsCap { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_R"), out int r) ? r : 0;

    /// <summary>
    /// Knob (env <c>CONDENSE_SB_EPILOGUE=0</c>: off): the zero-point correction enters the kernel as the accumulators'
    /// starting values (16 lanes of s_g z_g x group sums per output, negated) and the 16 lanes of every 16 outputs are
    /// added by one transposing tree (<see cref="ReduceLanes16"/>) instead of two horizontal sums (lanes, correction)
    /// per output. Off: the session-10 epilogue (zero start, Vector512.Sum + Dot per output). The two round differently
    /// (the lanes' addition order), both within the int8-activation tolerance.
    /// </summary>
    internal static bool FusedEpilogue { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_SB_EPILOGUE") != "0";

    /// <summary>
    /// Knob (env <c>CONDENSE_SB4_IL=0</c>: off): the paired kernels run two batch rows at a time where the registers
    /// allow it (M = 2..5 at their R), so that 2R, not R, independent vpdpbusd chains are in flight. Same bits.
    /// </summary>
    internal static bool InterleaveBatchRows { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_SB4_IL") != "0";

    /// <summary>
    /// Knob (env <c>CONDENSE_SB_PIPE=0</c>: off; only with <see cref="FusedEpilogue"/>): a thread's blocks of 12 weight
    /// rows run as a software pipeline, kernel calls of block k, then the managed set-up of block k + 1 (scales, lane
    /// scales, correction lanes), then the lane sums and stores of block k. The set-up does not depend on the kernel's
    /// results, so it runs while the kernel's last loads and vpdpbusd chains drain, and the lane sums read accumulators
    /// that are long stored. Off: one block at a time (set-up, calls, sums; <see cref="Block"/>). The same operations
    /// per output in the same order: the same bits.
    /// </summary>
    internal static bool PipelinedBlocks { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_SB_PIPE") != "0";

    /// <summary>
    /// Knob (env <c>CONDENSE_SB4_OWN=0</c>: off; only with <see cref="PipelinedBlocks"/>): paired kernels whose groups
    /// divide the 256-code step (g64, g128, g256) and whose rows are whole chunks of 16 groups convert their own float16
    /// scales and zero points and start their own accumulators (<see cref="EmitOwnScales"/>), as the batch-1 kernel
    /// does (VnniGemv's own-scale kernels): the managed <see cref="BlockScales"/> and <see cref="StartCorrections"/> per
    /// block are gone. The same operations per output in the same order: the same bits.
    /// </summary>
    internal static bool OwnScales { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_SB4_OWN") != "0";

    /// <summary>
    /// Knob (env <c>CONDENSE_SB4_TREE=0</c>: off; only with <see cref="OwnScales"/>): own-scale kernels of tiles of at
    /// least <see cref="LaneTreeMinRows"/> batch rows add each output's 16 lanes themselves (<see cref="EmitLaneTree"/>:
    /// <see cref="ReduceLanes16"/> in registers, the same order) and store the sums, not the accumulators: the block's
    /// managed lane tree and the accumulators' round trip through memory are gone. Same bits.
    /// </summary>
    internal static bool OwnLaneTree { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_SB4_TREE") != "0";

    /// <summary>Fewest tile rows for <see cref="OwnLaneTree"/> (env <c>CONDENSE_SB4_TREE_MIN</c>): a call adds 16 vectors whatever its R x M outputs.</summary>
    internal static int LaneTreeMinRows { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_TREE_MIN"), out int tm) ? tm : 6;

    /// <summary>Experiment knob (env <c>CONDENSE_SB4_TILE</c>, 2..8, default 8): most batch rows per tile; a batch above it
    /// runs as tiles of nearly equal size, every tile over a block of 12 rows before the next block. Same bits.</summary>
    internal static int TileCap { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_TILE"), out int tc) ? tc : MaxTile;

    /// <summary>
    /// Knob (env <c>CONDENSE_SB4_SHARED_R</c>, default 1; 0 = <see cref="RowsPerCall"/>): weight rows per kernel call for
    /// tiles of at most <see cref="SharedSmallTileMaxRows"/> batch rows when the product runs on more than one thread.
    /// Session 15 (cold S2, b2, in-process pairs): 1 row per call ran 1.13-1.15x faster than 3 at 2 threads (wall) and
    /// 0.97x at one thread (CPU time, where it does not apply); b4 and b8 lost with it. The lead's quiet target runs
    /// (int4-g64 S2, 2 threads, 3 alternating pairs, load 1.7-2.2): b2 1.25 / 1.28 / 1.25x -> 1.09 / 1.11 / 1.11x of
    /// batch 1, b4 and b8 unchanged. Rows per call change no value (each output's operations depend only on its weight
    /// row and batch row).
    /// </summary>
    internal static int SharedSmallTileRows { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_SHARED_R"), out int sr) ? sr : 1;

    /// <summary>Most tile rows <see cref="SharedSmallTileRows"/> applies to (env <c>CONDENSE_SB4_SHARED_M</c>, default 2).</summary>
    internal static int SharedSmallTileMaxRows { get; set; } = int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_SB4_SHARED_M"), out int sm) ? sm : 2;

    /// <summary>
    /// Whether a product of this weight runs the own-scale kernels (<see cref="OwnScales"/>): paired steps, groups that
    /// divide the 256-code pair, rows of whole 16-group chunks (at least one).
    /// </summary>
    internal static bool TakesOwnScales(int groupSize, int groupsPerRow, int inFeatures) =>
        OwnScales && FusedEpilogue && PipelinedBlocks && UsesPairs(groupSize, groupsPerRow, inFeatures)
        && groupsPerRow % 16 == 0 && groupsPerRow >= 16 && 2 * StepCodes % groupSize == 0;

    [ThreadStatic] private static bool t_off;

    /// <summary>Tests: true keeps the calling thread's products off these kernels (on the managed batched kernels).</summary>
    internal static bool DisabledOverride { get => t_off; set => t_off = value; }

    /// <summary>True when the generated kernels run here (<see cref="VnniGemmKernel.CpuSupports"/>, generated code on, pages made).</summary>
    public static bool IsAvailable => KernelOptions.GeneratedCode && VnniGemmKernel.CpuSupports && DefaultSlice is not null;

    /// <summary>
    /// True when a product of <paramref name="batch"/> rows runs here: 4-bit codes, 2..15 rows, at least one whole step, and groups whose 8-code lanes never straddle two groups and whose scales repeat per step: one group per
    /// row, or a multiple of 8 codes that divides 128 or is a multiple of 128.
    /// </summary>
    public static bool Applies(int bits, int groupSize, int groupsPerRow, int inFeatures, int outFeatures, int batch, int vectorBits) =>
        bits == 4 && batch is >= 2 and < 16 && inFeatures >= StepCodes && vectorBits >= 512 && !t_off &&
        (groupsPerRow == 1 || groupSize % 8 == 0 && (StepCodes % groupSize == 0 || groupSize % StepCodes == 0)) &&
        IsAvailable;

    private static nint[]? Build(int variant)
    {
        if (!VnniGemmKernel.CpuSupports) return null;
        var a = new X86Assembler();
        var offsets = new int[Kinds, MaxTile + 1, 5];
        for (int p = 0; p < Kinds; p++)
            for (int m = 1; m <= MaxTile; m++)
                for (int r = 1; r <= RowsPerCall(m, p >= 1); r++)
                {
                    while (a.Position % 64 != 0) a.Ret();
                    offsets[p, m, r] = a.Position;
                    Emit(a, r, m, p >= 1, variant, p is 2 or 4 or 6, p >= 3, p >= 5);
                }
        var pages = (nint)ExecutableMemory.TryCreate(a.ToArray());
        if (pages == 0) return null;
        var code = new nint[Kinds * (MaxTile + 1) * 5];
        for (int p = 0; p < Kinds; p++)
            for (int m = 1; m <= MaxTile; m++)
                for (int r = 1; r <= RowsPerCall(m, p >= 1); r++) code[CodeIndex(p, m, r)] = pages + offsets[p, m, r];
        return code;
    }

    private static Zmm Z(int index) => new(index);

    private static readonly Gpr[] s_rowPointers = [Gpr.Rsi, Gpr.R10, Gpr.R11, Gpr.Rbx];
    private static readonly Gpr[] s_scalePointers = [Gpr.R12, Gpr.R13, Gpr.R14, Gpr.R15];

    /// <summary>
    /// The kernel for <paramref name="rows"/> weight rows x <paramref name="m"/> batch rows. zmm: 0..R-1 even codes,
    /// R..2R-1 odd codes, 2R..3R-1 lane scales, 3R.. accumulators, 26..29 temporaries, 30 lane index, 31 mask.
    /// </summary>
    internal static void Emit(X86Assembler a, int rows, int m, bool paired = false, int prefetch = 0, bool interleave = false, bool own = false, bool tree = false)
    {
        if (paired)
        {
            EmitPaired(a, rows, m, prefetch, interleave, own, tree);
            return;
        }
        if (rows < 1 || rows > 4 || rows * (m + 3) > 26) throw new ArgumentOutOfRangeException(nameof(rows), rows, "Too many accumulators for the registers.");
        Gpr[] w = s_rowPointers, s = s_scalePointers;
        EmitProlog(a, rows);
        int acc0 = 3 * rows, accumulators = rows * m;
        EmitLoadAccumulators(a, acc0, accumulators);

        int loop = a.Position;
        EmitPrefetch(a, rows, 64, prefetch);
        for (int r = 0; r < rows; r++)
        {
            a.Vmovdqu32(Z(r), new Mem(w[r], 0));
            a.Vpsrlw(Z(rows + r), Z(r), 4);
            a.Vpandd(Z(r), Z(r), Z(31));
            a.Vpandd(Z(rows + r), Z(rows + r), Z(31));
            a.Vpermps(Z(2 * rows + r), Z(30), new Mem(s[r], 0));
        }
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < m; c++)
            {
                var t = Z(26 + ((r * m + c) & 3));
                a.Vpxord(t, t, t);
                a.Vpdpbusd(t, Z(r), new Mem(Gpr.Rdx, 128 * c));
                a.Vpdpbusd(t, Z(rows + r), new Mem(Gpr.Rdx, 128 * c + 64));
                a.Vcvtdq2ps(t, t);
                a.Vfmadd231ps(Z(acc0 + r * m + c), t, Z(2 * rows + r));
            }
        for (int r = 0; r < rows; r++)
        {
            a.AddImm(w[r], 64);
            a.Add(s[r], Gpr.R8);
        }
        a.AddImm(Gpr.Rax, 64 * rows);
        a.AddImm(Gpr.Rdx, 128 * m);
        a.Dec(Gpr.Rcx);
        a.JnzBack(loop);
        EmitEpilog(a, acc0, accumulators);
    }

    /// <summary>
    /// The paired kernel: per iteration two 64-byte loads A, B of each row (256 codes); V0 = [A0 A2 B0 B2] and
    /// V1 = [A1 A3 B1 B3] by 128-bit chunks, so lane L of both holds codes of 64-code group L / 4 of the 256; each is
    /// decoded into even and odd codes. zmm: 0..R-1 V0 even, R..2R-1 V1 even, 2R..3R-1 V0 odd, 3R..4R-1 V1 odd (the
    /// raw loads land there first), 4R..5R-1 lane scales, then R x M accumulators, R integer temporaries and two
    /// activation registers; 30 index, 31 mask.
    /// </summary>
    private static void EmitPaired(X86Assembler a, int rows, int m, int prefetch, bool interleave = false, bool own = false, bool tree = false)
    {
        if (rows < 1 || rows > 4 || rows * (m + 6) > 28) throw new ArgumentOutOfRangeException(nameof(rows), rows, "Too many accumulators for the registers.");
        Gpr[] w = s_rowPointers, s = s_scalePointers;
        int acc0 = 5 * rows, accumulators = rows * m;
        // Interleaving needs 2R integer temporaries besides the decoded codes and lane scales (5R), the accumulators and
        // two activation registers, below zmm30.
        bool interleaved = interleave && 5 * rows + accumulators + 2 * rows + 2 <= 30;
        if (own)
        {
            EmitOwnScales(a, rows, m, acc0);
            EmitProlog(a, rows, pushed: true);
        }
        else
        {
            EmitProlog(a, rows);
            EmitLoadAccumulators(a, acc0, accumulators);
        }

        int loop = a.Position;
        EmitPrefetch(a, rows, 128, prefetch);
        for (int r = 0; r < rows; r++)
        {
            Zmm lo0 = Z(r), lo1 = Z(rows + r), hi0 = Z(2 * rows + r), hi1 = Z(3 * rows + r);
            a.Vmovdqu32(hi0, new Mem(w[r], 0));
            a.Vmovdqu32(hi1, new Mem(w[r], 64));
            a.Vshufi32x4(lo0, hi0, hi1, 0x88);
            a.Vshufi32x4(lo1, hi0, hi1, 0xDD);
            a.Vpsrlw(hi0, lo0, 4);
            a.Vpsrlw(hi1, lo1, 4);
            a.Vpandd(lo0, lo0, Z(31));
            a.Vpandd(lo1, lo1, Z(31));
            a.Vpandd(hi0, hi0, Z(31));
            a.Vpandd(hi1, hi1, Z(31));
            a.Vpermps(Z(4 * rows + r), Z(30), new Mem(s[r], 0));
        }
        // Per batch row: each 64-byte activation vector is loaded once into a register and used by every weight row
        // (a memory operand per vpdpbusd made the loads, not the multiplies, the limit: one 512-bit load per vpdpbusd).
        int temp0 = acc0 + accumulators, x0 = temp0 + rows;
        // Interleaved: two batch rows at a time, 2R integer temporaries, so that each weight vector's vpdpbusd feed 2R
        // independent chains instead of R (each chain is 4 dependent vpdpbusd per 256 codes). Same operations per
        // output in the same order: the same bits. Only where the registers allow it (5R + RM + 2R + 2 <= 30).
        int c0 = 0;
        if (interleaved)
        {
            int xa = temp0 + 2 * rows, xb = xa + 1;
            for (; c0 + 2 <= m; c0 += 2)
            {
                for (int r = 0; r < 2 * rows; r++) a.Vpxord(Z(temp0 + r), Z(temp0 + r), Z(temp0 + r));
                for (int k = 0; k < 4; k++)
                {
                    a.Vmovdqu32(Z(xa), new Mem(Gpr.Rdx, 256 * c0 + 64 * k));
                    a.Vmovdqu32(Z(xb), new Mem(Gpr.Rdx, 256 * (c0 + 1) + 64 * k));
                    int weights = k switch { 0 => 0, 1 => 2 * rows, 2 => rows, _ => 3 * rows };
                    for (int r = 0; r < rows; r++)
                    {
                        a.Vpdpbusd(Z(temp0 + r), Z(weights + r), Z(xa));
                        a.Vpdpbusd(Z(temp0 + rows + r), Z(weights + r), Z(xb));
                    }
                }
                for (int h = 0; h < 2; h++)
                    for (int r = 0; r < rows; r++)
                    {
                        Zmm t = Z(temp0 + h * rows + r);
                        a.Vcvtdq2ps(t, t);
                        a.Vfmadd231ps(Z(acc0 + r * m + c0 + h), t, Z(4 * rows + r));
                    }
            }
        }
        for (int c = c0; c < m; c++)
        {
            for (int r = 0; r < rows; r++) a.Vpxord(Z(temp0 + r), Z(temp0 + r), Z(temp0 + r));
            for (int k = 0; k < 4; k++)
            {
                var xv = Z(x0 + (k & 1));
                a.Vmovdqu32(xv, new Mem(Gpr.Rdx, 256 * c + 64 * k));
                // k: 0 = V0 even (zmm r), 1 = V0 odd (2R + r), 2 = V1 even (R + r), 3 = V1 odd (3R + r).
                int weights = k switch { 0 => 0, 1 => 2 * rows, 2 => rows, _ => 3 * rows };
                for (int r = 0; r < rows; r++) a.Vpdpbusd(Z(temp0 + r), Z(weights + r), xv);
            }
            for (int r = 0; r < rows; r++)
            {
                a.Vcvtdq2ps(Z(temp0 + r), Z(temp0 + r));
                a.Vfmadd231ps(Z(acc0 + r * m + c), Z(temp0 + r), Z(4 * rows + r));
            }
        }
        for (int r = 0; r < rows; r++)
        {
            a.AddImm(w[r], 128);
            a.Add(s[r], Gpr.R8);
        }
        a.AddImm(Gpr.Rax, 128 * rows);
        a.AddImm(Gpr.Rdx, 256 * m);
        a.Dec(Gpr.Rcx);
        a.JnzBack(loop);
        if (tree) EmitLaneTree(a, acc0, accumulators);
        EmitEpilog(a, acc0, tree ? 0 : accumulators);
    }

    /// <summary>
    /// The lane-tree kernels' end (<see cref="OwnLaneTree"/>): <see cref="ReduceLanes16"/> on the accumulators in
    /// registers (vector j = accumulator j, r M + c; past the last one any register), the same shuffles and additions
    /// in the same order, and its 16 sums stored to Acc: sums[r M + c] at Acc, lanes past R M hold anything.
    /// </summary>
    private static void EmitLaneTree(X86Assembler a, int acc0, int accumulators)
    {
        var f = new List<int>();
        for (int i = 0; i < 32; i++) if (i < acc0 || i >= acc0 + accumulators) f.Add(i);
        Zmm F(int i) => Z(f[i]);
        Zmm V(int j) => j < accumulators ? Z(acc0 + j) : F(10);
        for (int i = 0; i < 8; i++) // level 1: w_i = [a0+a2, a1+a3, b0+b2, b1+b3] by 128-bit chunks, a = v 2i, b = v 2i+1
        {
            a.Vshufi32x4(F(8), V(2 * i), V(2 * i + 1), 0x44);
            a.Vshufi32x4(F(9), V(2 * i), V(2 * i + 1), 0xEE);
            a.Vaddps(F(i), F(8), F(9));
        }
        for (int j = 0; j < 4; j++) // level 2: x_j
        {
            a.Vshufi32x4(F(8), F(2 * j), F(2 * j + 1), 0x88);
            a.Vshufi32x4(F(9), F(2 * j), F(2 * j + 1), 0xDD);
            a.Vaddps(F(10 + j), F(8), F(9));
        }
        for (int k = 0; k < 2; k++) // level 3: y_k
        {
            a.Vunpcklps(F(8), F(10 + 2 * k), F(11 + 2 * k));
            a.Vunpckhps(F(9), F(10 + 2 * k), F(11 + 2 * k));
            a.Vaddps(F(k), F(8), F(9));
        }
        a.Vshufps(F(8), F(0), F(1), 0x44); // level 4
        a.Vshufps(F(9), F(0), F(1), 0xEE);
        a.Vaddps(F(2), F(8), F(9));
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 128));
        a.Vmovdqu32(F(3), new Mem(Gpr.Rax, 0));
        a.Vpermps(F(4), F(3), F(2));
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 48));
        a.Vmovups(new Mem(Gpr.Rax, 0), F(4));
    }

    /// <summary>Saves rbx, r12-r15; loads the arguments; sets up the row and scale pointers, the lane index (zmm30) and the mask (zmm31).</summary>
    private static void EmitProlog(X86Assembler a, int rows, bool pushed = false)
    {
        Gpr[] w = s_rowPointers, s = s_scalePointers;
        if (!pushed) { a.Push(Gpr.Rbx); a.Push(Gpr.R12); a.Push(Gpr.R13); a.Push(Gpr.R14); a.Push(Gpr.R15); }
        a.MovLoad(Gpr.Rsi, new Mem(Gpr.Rdi, 0));
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 8));
        a.MovLoad(Gpr.Rdx, new Mem(Gpr.Rdi, 16));
        a.MovLoad(Gpr.R12, new Mem(Gpr.Rdi, 24));
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 32));
        a.MovLoad(Gpr.Rcx, new Mem(Gpr.Rdi, 40));
        a.MovLoad(Gpr.R8, new Mem(Gpr.Rdi, 64));
        for (int r = 1; r < rows; r++)
        {
            a.Mov(w[r], w[r - 1]); a.Add(w[r], Gpr.R9);
            a.Mov(s[r], s[r - 1]); a.Add(s[r], Gpr.Rax);
        }
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 80)); // the prefetch front (EmitPrefetch)
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 56));
        a.Vmovdqu32(Z(30), new Mem(Gpr.R9, 0));
        a.Vpbroadcastd(Z(31), new Mem(Gpr.Rdi, 72));
    }

    /// <summary>
    /// The software prefetches of one iteration, which reads <paramref name="bytesPerRow"/> bytes of each of R adjacent
    /// rows. Variant 2 (the default, <see cref="PrefetchVariant"/>): prefetcht0 6 KB ahead of each row's loads (3 rows
    /// ahead at 4,096 inputs: the next call's rows), the managed batched kernels' pattern; 3: the same 12 KB ahead;
    /// 0: the session-8 front (the next R x that many bytes from rax, <see cref="SmallBatchArgs.Front"/>, into L2, the
    /// front starting at the next block of 12 rows); 1: none.
    /// </summary>
    /// <remarks>
    /// Session 8 (another VM, 30 GB/s) measured prefetcht0 4 KB ahead of each row losing to the L2 block front. On
    /// session 10's Zen 5 VM (54 GB/s) the front lost instead: cold S2 on one thread, thread CPU time over batch 1, same
    /// rounds: b2 1.61x -> 1.32x, b4 2.00x -> 1.81x, b8 2.84x -> 2.58x with prefetcht0 6 KB ahead (12 KB: 1.38x /
    /// 1.93x at b2 / b4; 3 KB and front + prefetcht0: no better; none: 1.84x-1.97x at b2, the worst). See
    /// docs/benchmarks.md, "session 10: batch 2-15 prefetch".
    /// </remarks>
    private static void EmitPrefetch(X86Assembler a, int rows, int bytesPerRow, int variant)
    {
        if (variant == 0 || variant == 4)
            for (int i = 0; i < rows * bytesPerRow; i += 64) a.Prefetcht1(new Mem(Gpr.Rax, i));
        if (variant >= 2)
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < bytesPerRow; i += 64)
                    a.Prefetcht0(new Mem(s_rowPointers[r], (variant switch { 3 => 12288, 5 => 3072, 6 => 8192, 7 => 7168, 8 => 10240, 9 => 9216, _ => 6144 }) + i));
    }

    /// <summary>
    /// The own-scale kernels' set-up (<see cref="OwnScales"/>; saves rbx, r12-r15 first): per weight row r, chunk by
    /// chunk of 16 groups, vcvtph2ps of the float16 scales, stored as float32 to S for the loop's lane scales, and
    /// v = s x float(z) (vpmovzxbd, vcvtdq2ps, vmulps: <see cref="ScaleTimesZero"/>'s product; bytes of 8 when
    /// symmetric); each accumulator (r, c) starts at zero and takes fma(v, group sums of chunk k of batch row c, acc) in
    /// chunk order, then its sign is flipped: <see cref="StartCorrections"/>'s chain and negation, the same bits.
    /// Leaves the accumulators in zmm acc0.. for the loop.
    /// </summary>
    private static void EmitOwnScales(X86Assembler a, int rows, int m, int acc0)
    {
        a.Push(Gpr.Rbx); a.Push(Gpr.R12); a.Push(Gpr.R13); a.Push(Gpr.R14); a.Push(Gpr.R15);
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 88));   // float16 scales, row after row
        a.MovLoad(Gpr.R10, new Mem(Gpr.Rdi, 96));  // zero points (or 8s), row after row
        a.MovLoad(Gpr.R11, new Mem(Gpr.Rdi, 24));  // float32 scales out (the loop's S), row after row
        for (int i = 0; i < rows * m; i++) a.Vpxord(Z(acc0 + i), Z(acc0 + i), Z(acc0 + i));
        for (int r = 0; r < rows; r++)
        {
            a.MovLoad(Gpr.Rsi, new Mem(Gpr.Rdi, 104)); // the tile's group sums, [chunk][c][16]
            a.MovLoad(Gpr.Rcx, new Mem(Gpr.Rdi, 112));
            int loop = a.Position;
            a.Vcvtph2ps(Z(0), new Mem(Gpr.R9, 0));
            a.Vmovups(new Mem(Gpr.R11, 0), Z(0));
            a.Vpmovzxbd(Z(1), new Mem(Gpr.R10, 0));
            a.Vcvtdq2ps(Z(1), Z(1));
            a.Vmulps(Z(2), Z(0), Z(1));
            for (int c = 0; c < m; c++) a.Vfmadd231ps(Z(acc0 + r * m + c), Z(2), new Mem(Gpr.Rsi, 64 * c));
            a.AddImm(Gpr.R9, 32);
            a.AddImm(Gpr.R10, 16);
            a.AddImm(Gpr.R11, 64);
            a.AddImm(Gpr.Rsi, 64 * m);
            a.Dec(Gpr.Rcx);
            a.JnzBack(loop);
        }
        a.Vpbroadcastd(Z(3), new Mem(Gpr.Rdi, 120));
        for (int i = 0; i < rows * m; i++) a.Vpxord(Z(acc0 + i), Z(acc0 + i), Z(3));
    }

    /// <summary>
    /// Loads the accumulators' starting values from Acc (the same [r][m][16] layout the epilog stores): zeros, or the
    /// negated zero-point correction lanes (<see cref="FusedEpilogue"/>). r9 (the lane index pointer) is free by now.
    /// </summary>
    private static void EmitLoadAccumulators(X86Assembler a, int acc0, int accumulators)
    {
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 48));
        for (int i = 0; i < accumulators; i++) a.Vmovups(Z(acc0 + i), new Mem(Gpr.R9, 64 * i));
    }

    /// <summary>Stores the accumulators to Acc, restores the saved registers and returns.</summary>
    private static void EmitEpilog(X86Assembler a, int acc0, int accumulators)
    {
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 48));
        for (int i = 0; i < accumulators; i++) a.Vmovups(new Mem(Gpr.Rax, 64 * i), Z(acc0 + i));
        a.Vzeroupper();
        a.Pop(Gpr.R15); a.Pop(Gpr.R14); a.Pop(Gpr.R13); a.Pop(Gpr.R12); a.Pop(Gpr.Rbx);
        a.Ret();
    }

    /// <summary>The kernel for a tile of <paramref name="m"/> batch rows and <paramref name="rows"/> weight rows (the knobs as they are now).</summary>
    private static delegate* unmanaged[SuppressGCTransition]<SmallBatchArgs*, void> Kernel(bool paired, int m, int rows, bool own = false, bool tree = false) =>
        (delegate* unmanaged[SuppressGCTransition]<SmallBatchArgs*, void>)Slice(m)[CodeIndex(Kind(paired, own, tree), m, rows)];

    /// <summary>The kernels of the knobs as they are now for tiles of <paramref name="m"/> batch rows (<see cref="PrefetchVariant"/>
    /// or, from 4 rows, <see cref="PrefetchVariantWide"/>).</summary>
    private static nint[] Slice(int m) => s_slices[VariantOf(m)].Value!;

    /// <summary>The prefetch variant of tiles of <paramref name="m"/> batch rows.</summary>
    private static int VariantOf(int m)
    {
        int v = m >= 4 && PrefetchVariantWide >= 0 ? PrefetchVariantWide : PrefetchVariant;
        return (uint)v < Variants ? v : throw new ArgumentOutOfRangeException(nameof(PrefetchVariant), v, $"Prefetch variants 0..{Variants - 1}.");
    }

    private static int Kind(bool paired, bool own, bool tree) => !paired ? 0 : (tree ? 5 : own ? 3 : 1) + (InterleaveBatchRows ? 1 : 0);

    private static void Call(bool paired, int m, int rows, SmallBatchArgs* args, bool own = false, bool tree = false) => Kernel(paired, m, rows, own, tree)(args);

    /// <summary>ReduceLanes16's final order as an int32 table the lane-tree kernels load (pinned: its address is passed to them).</summary>
    private static readonly int[] s_reduceOrderTable = BuildReduceOrder();

    private static int[] BuildReduceOrder()
    {
        var t = GC.AllocateArray<int>(16, pinned: true);
        for (int i = 0; i < 16; i++) t[i] = 4 * (i % 4) + i / 4; // s_reduceOrder (declared later: static fields initialize in order)
        return t;
    }

    /// <summary>True when tile rows <paramref name="m"/> of an own-scale product add their lanes in the kernel.</summary>
    private static bool TileTree(in Args a, int m) => a.Own && OwnLaneTree && m >= LaneTreeMinRows;

    /// <summary>Paired layout: position (2i + h) * 64 + 4L + b of a 256-code block holds code s_pairOrder[...] (see <see cref="EmitPaired"/>).</summary>
    internal static readonly int[] s_pairOrder = BuildPairOrder();

    private static int[] BuildPairOrder()
    {
        var order = new int[2 * StepCodes];
        for (int i = 0; i < 2; i++)
            for (int h = 0; h < 2; h++)
                for (int lane = 0; lane < 16; lane++)
                    for (int b = 0; b < 4; b++)
                    {
                        int chunk = lane / 4, e = lane % 4;
                        // V_i lane L = load chunk/2, 128-bit chunk 2 (chunk % 2) + i, dword e: codes 32 k + 8 e + 2 b + h of that load.
                        order[(2 * i + h) * 64 + 4 * lane + b] = StepCodes * (chunk / 2) + 32 * (2 * (chunk % 2) + i) + 8 * e + 2 * b + h;
                    }
        return order;
    }

    /// <summary>dword d of the paired layout's register (i, h) comes from dword s_pairDwords[i][d] of the 256 codes' 128
    /// codes of parity h (even or odd, in order): lane L = 4 c + e takes dword 16 (c / 2) + 4 (2 (c % 2) + i) + e.</summary>
    private static readonly Vector512<int> s_pairIndex0 = PairIndex(0), s_pairIndex1 = PairIndex(1);

    private static Vector512<int> PairIndex(int i)
    {
        var index = new int[16];
        for (int lane = 0; lane < 16; lane++) index[lane] = 16 * (lane / 8) + 4 * (2 * (lane / 4 % 2) + i) + lane % 4;
        return Vector512.Create(index);
    }

    /// <summary>
    /// One 256-code block of a batch row in the paired layout (<see cref="s_pairOrder"/>): the even and odd codes split
    /// by two narrowings, then one two-source dword permute per 64-byte register (the scalar byte loop this replaces
    /// cost ~5 instructions per code, serial before the threads start: ~0.05 of batch 1's time at 8 rows).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void PairBlock(sbyte* from, sbyte* dst)
    {
        var l0 = Vector512.Load((ushort*)from);
        var l1 = Vector512.Load((ushort*)(from + 64));
        var l2 = Vector512.Load((ushort*)(from + 128));
        var l3 = Vector512.Load((ushort*)(from + 192));
        var even0 = Vector512.Narrow(l0, l1).AsInt32();
        var even1 = Vector512.Narrow(l2, l3).AsInt32();
        var odd0 = Vector512.Narrow(Vector512.ShiftRightLogical(l0, 8), Vector512.ShiftRightLogical(l1, 8)).AsInt32();
        var odd1 = Vector512.Narrow(Vector512.ShiftRightLogical(l2, 8), Vector512.ShiftRightLogical(l3, 8)).AsInt32();
        // Register 2 i + h at dst + (2 i + h) * 64.
        Avx512F.PermuteVar16x32x2(even0, s_pairIndex0, even1).Store((int*)dst);
        Avx512F.PermuteVar16x32x2(odd0, s_pairIndex0, odd1).Store((int*)(dst + 64));
        Avx512F.PermuteVar16x32x2(even0, s_pairIndex1, even1).Store((int*)(dst + 128));
        Avx512F.PermuteVar16x32x2(odd0, s_pairIndex1, odd1).Store((int*)(dst + 192));
    }

    private struct Args
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int GroupSize, GroupsPerRow, RowBytes, Out, In, Batch, Steps, Tiles, Unit;
        public bool Paired;
        public sbyte* Q, X;
        public int Padded, GroupStride;
        public float* RowScale, GroupSums, Y;
        public bool Own;
        public float* OwnSums; // own-scale kernels: tile t's group sums at OwnSums + b0 gpr, [chunk][c][16]
        public byte* Eights;   // own-scale kernels, symmetric: 4 rows of 8s
        public bool Shared;    // the call runs on more than one thread (SharedSmallTileRows)
    }

    private struct Body : IRangeBody
    {
        public Args A;

        public readonly void Invoke(int start, int end)
        {
            if (FusedEpilogue && PipelinedBlocks)
            {
                Pipelined(A, start, end);
                return;
            }
            for (int block = start; block < end; block++) Block(A, block);
        }
    }

    [ThreadStatic] private static float[]? t_scratch;

    private static readonly int[] s_noIndex = new int[16];

    /// <summary>Tile t of a batch split into <paramref name="tiles"/> tiles of nearly equal size: its first row and its rows.</summary>
    private static (int First, int Rows) Tile(int batch, int tiles, int t)
    {
        int size = batch / tiles, extra = batch % tiles;
        return (t * size + Math.Min(t, extra), size + (t < extra ? 1 : 0));
    }

    /// <summary>
    /// y[b, o] = sx_b (sum_k s_g(k) u[o, k] q[b, k] - sum_g s_g z_g sum_g q[b]) for 4-bit codes: <paramref name="q"/> holds the
    /// batch's int8 rows in natural order (row b at q + b * <paramref name="padded"/>), <paramref name="groupSums"/> their
    /// group sums (row b at groupSums + b * <paramref name="groupStride"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(in PackedWeightView w, sbyte* q, int padded, float* rowScale, float* groupSums, int groupStride, float* y, int batch)
    {
        bool paired = UsesPairs(w.GroupSize, w.GroupsPerRow, w.In);
        int unit = paired ? 2 * StepCodes : StepCodes;
        int steps = w.In / unit;
        int tileCap = TileCap is >= 2 and <= MaxTile ? TileCap : MaxTile;
        int tiles = (batch + tileCap - 1) / tileCap;
        long xBytes = (long)batch * steps * unit;
        int gpr0 = w.GroupsPerRow;
        bool own = TakesOwnScales(w.GroupSize, gpr0, w.In);
        // Own-scale kernels: the group sums by chunk of 16 groups (then batch row) per tile, and 4 rows of 8s (symmetric zero points).
        long ownBytes = own ? (long)batch * gpr0 * sizeof(float) + (w.Zeros == null ? 4L * gpr0 : 0) : 0;
        byte[] xBuffer = System.Buffers.ArrayPool<byte>.Shared.Rent(checked((int)(xBytes + ownBytes) + 128));
        try
        {
            fixed (byte* xb = xBuffer)
            {
                sbyte* x = (sbyte*)(((nint)xb + 63) & ~(nint)63);
                float* ownSums = (float*)(((nint)x + (nint)xBytes + 63) & ~(nint)63);
                byte* eights = (byte*)(ownSums + (nint)batch * gpr0);
                if (own)
                {
                    for (int t = 0; t < tiles; t++)
                    {
                        var (b0, rows) = Tile(batch, tiles, t);
                        float* dst = ownSums + (nint)b0 * gpr0;
                        for (int k = 0; k < gpr0 / 16; k++)
                            for (int c = 0; c < rows; c++)
                                Vector512.Load(groupSums + (nint)(b0 + c) * groupStride + 16 * k).Store(dst + ((nint)k * rows + c) * 16);
                    }
                    if (w.Zeros == null) new Span<byte>(eights, 4 * gpr0).Fill(8);
                }
                // Tile t (rows [b0, b0 + M)) at x + b0 * steps * 128: step j, row m, even then odd codes.
                for (int t = 0; t < tiles; t++)
                {
                    var (b0, rows) = Tile(batch, tiles, t);
                    sbyte* tile = x + (nint)b0 * steps * unit;
                    for (int c = 0; c < rows; c++)
                    {
                        sbyte* src = q + (nint)(b0 + c) * padded;
                        if (paired)
                        {
                            for (int j = 0; j < steps; j++) PairBlock(src + (nint)j * unit, tile + ((nint)j * rows + c) * unit);
                            continue;
                        }
                        for (int j = 0; j < steps; j++)
                        {
                            var lo = Vector512.Load((ushort*)(src + j * StepCodes));
                            var hi = Vector512.Load((ushort*)(src + j * StepCodes + 64));
                            sbyte* dst = tile + ((nint)j * rows + c) * StepCodes;
                            Vector512.Narrow(lo, hi).Store((byte*)dst);                                   // even codes
                            Vector512.Narrow(Vector512.ShiftRightLogical(lo, 8), Vector512.ShiftRightLogical(hi, 8)).Store((byte*)dst + 64);                  // odd codes
                        }
                    }
                }
                var body = new Body
                {
                    A = new Args
                    {
                        Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, GroupSize = w.GroupsPerRow == 1 ? w.In : w.GroupSize,
                        GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes, Out = w.Out, In = w.In, Batch = batch, Steps = steps,
                        Unit = unit, Paired = paired,
                        Tiles = tiles, Q = q, X = x, Padded = padded, GroupStride = groupStride, RowScale = rowScale,
                        GroupSums = groupSums, Y = y, Own = own, OwnSums = ownSums, Eights = eights,
                    },
                };
                int count = (w.Out + BlockRows - 1) / BlockRows;
                int degree = (long)w.Out * w.In * batch < (1 << 16) ? 1 : int.MaxValue;
                body.A.Shared = Math.Min(Math.Min(WorkerPool.Shared.MaxDegreeOfParallelism, degree), count) > 1;
                WorkerPool.Shared.For(count, ref body, degree);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(xBuffer);
        }
    }

    /// <summary>Weight rows [12 block, 12 block + 12) for every batch row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(in Args a, int block)
    {
        int o0 = block * BlockRows, rows = Math.Min(BlockRows, a.Out - o0);
        int gpr = a.GroupsPerRow, g = a.GroupSize, steps = a.Steps, unit = a.Unit;
        // Lane scales: groups dividing the step read the row's scales as they are (advance unit / G per step; lane l
        // takes group 8l / G of the step, or (64 (l / 4)) / G when paired); larger groups (and one group per row) get one
        // scale per step.
        bool small = gpr > 1 && unit % g == 0;
        int laneStride = small ? gpr : steps;
        int need = BlockRows * MaxTile * 16 + 2 * (rows * gpr + 16) + rows * laneStride + 16 + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need) t_scratch = scratch = GC.AllocateArray<float>(Math.Max(need, 4096), pinned: true);
        float* acc = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* sf = acc + BlockRows * MaxTile * 16;               // [rows][gpr] float32 scales, then 16 floats of padding
        float* szf = sf + rows * gpr + 16;                 // [rows][gpr] s_g * z_g
        float* lane = small ? sf : szf + rows * gpr + 16;  // [rows][laneStride], then 16 floats of padding
        BlockScales(a, o0, rows, sf, szf, lane, laneStride, small);

        int* index = stackalloc int[16];
        for (int l = 0; l < 16; l++) index[l] = !small ? 0 : a.Paired ? 64 * (l / 4) / g : 8 * l / g;
        SmallBatchArgs args = default;
        args.RowBytes = a.RowBytes;
        args.ScaleStride = (long)laneStride * sizeof(float);
        args.ScaleAdvance = (small ? unit / g : 1) * sizeof(float);
        args.Index = index;
        args.Mask = 0x0F0F0F0F;
        int tailStart = steps * unit;

        // Prefetch variant 0 only: the front sweeps the next block of rows into L2 (prefetcht1) at the rate this block's
        // rows are read, a whole block (12 rows, 24 KB at 4,096 inputs) ahead; see EmitPrefetch. For the last block it
        // points past the weight (as the default's 6 KB-ahead requests do past the last rows): prefetches never fault,
        // and nothing reads what they fetch.
        int bytesPerStep = unit / 2;
        byte* nextBlock = a.Packed + (nint)(o0 + BlockRows) * a.RowBytes;
        args.Steps = steps;
        bool fused = FusedEpilogue;
        float* sums = stackalloc float[BlockRows * MaxTile];
        if (fused) PrefetchScales(a.Scales, a.Zeros, o0 + BlockRows, a.Out, gpr);
        for (int t = 0; t < a.Tiles; t++)
        {
            var (b0, m) = Tile(a.Batch, a.Tiles, t);
            int perCall = PerCall(a, m);
            args.X = a.X + (nint)b0 * steps * unit;
            byte* front = nextBlock;
            if (fused) StartCorrections(acc, szf, gpr, a.GroupSums + (nint)b0 * a.GroupStride, a.GroupStride, rows, m);
            else new Span<float>(acc, rows * m * 16).Clear();
            for (int r0 = 0; r0 < rows; r0 += perCall)
            {
                int n = Math.Min(perCall, rows - r0);
                args.W = a.Packed + (nint)(o0 + r0) * a.RowBytes;
                args.S = lane + r0 * laneStride;
                args.Acc = acc + r0 * m * 16;
                args.Front = front;
                front += (nint)n * steps * bytesPerStep;
                Call(a.Paired, m, n, &args);
            }
            if (fused)
            {
                for (int i = 0; i < rows * m; i += 16) ReduceLanes16(acc + i * 16, sums + i);
                StoreTile(a, o0, rows, b0, m, sums, tailStart, gpr, sf, szf);
                continue;
            }
            for (int r = 0; r < rows; r++)
            {
                int o = o0 + r;
                for (int c = 0; c < m; c++)
                {
                    int b = b0 + c;
                    float dot = Vector512.Sum(Vector512.Load(acc + (r * m + c) * 16));
                    if (tailStart < a.In) dot += Tail(a, o, b, tailStart, sf + r * gpr);
                    float correction = Dot(szf + r * gpr, a.GroupSums + (nint)b * a.GroupStride, gpr);
                    a.Y[(nint)b * a.Out + o] = a.RowScale[b] * (dot - correction);
                }
            }
        }
    }

    /// <summary>Floats of one pipeline buffer (<see cref="Pipelined"/>): accumulators of every batch row, then the
    /// scales, scale x zero and lane scales of 12 rows, with slack for the lane tree's reads past the last vector.</summary>
    private static int PipeFloats(in Args a, out int laneStride, out bool small)
    {
        small = a.GroupsPerRow > 1 && a.Unit % a.GroupSize == 0;
        laneStride = small ? a.GroupsPerRow : a.Steps;
        int floats = BlockRows * a.Batch * 16 + 2 * (BlockRows * a.GroupsPerRow + 16) + BlockRows * laneStride + 16 + 16 * 16;
        return (floats + 15) & ~15;
    }

    /// <summary>
    /// Blocks [start, end) as a software pipeline (<see cref="PipelinedBlocks"/>): two buffers of set-up and
    /// accumulators alternate, so that block k + 1's set-up runs between block k's kernel calls and its lane sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Pipelined(in Args a, int start, int end)
    {
        int per = PipeFloats(a, out _, out bool small);
        int need = 2 * per + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need) t_scratch = scratch = GC.AllocateArray<float>(Math.Max(need, 4096), pinned: true);
        float* buffer0 = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63), buffer1 = buffer0 + per;
        int* index = stackalloc int[16];
        for (int l = 0; l < 16; l++) index[l] = !small ? 0 : a.Paired ? 64 * (l / 4) / a.GroupSize : 8 * l / a.GroupSize;
        float* sums = stackalloc float[BlockRows * MaxTile];
        Prepare(a, start, buffer0);
        for (int block = start; block < end; block++)
        {
            float* current = ((block - start) & 1) == 0 ? buffer0 : buffer1;
            Compute(a, block, current, index);
            if (block + 1 < end) Prepare(a, block + 1, current == buffer0 ? buffer1 : buffer0);
            Finish(a, block, current, sums);
        }
    }

    /// <summary>Where block rows' set-up lives in a pipeline buffer: accumulators (tile t at acc + rows b0 16), scales, s z, lane scales.</summary>
    private static void PipeLayout(in Args a, float* buffer, int rows, out float* sf, out float* szf, out float* lane, out int laneStride, out bool small)
    {
        PipeFloats(a, out laneStride, out small);
        sf = buffer + BlockRows * a.Batch * 16;
        szf = sf + rows * a.GroupsPerRow + 16;
        lane = small ? sf : szf + rows * a.GroupsPerRow + 16;
    }

    /// <summary>
    /// A block's scales for the kernel: float32 scales sf and s z per row ([rows][gpr]), and, unless groups are smaller
    /// than a step (<paramref name="small"/>: the kernel reads sf), one lane scale per step ([rows][laneStride]); the
    /// 16 floats past the last row's lane scales are zero.
    /// </summary>
    private static void BlockScales(in Args a, int o0, int rows, float* sf, float* szf, float* lane, int laneStride, bool small)
    {
        int gpr = a.GroupsPerRow, g = a.GroupSize, steps = a.Steps, unit = a.Unit;
        // sf and szf are [rows][gpr] with no gap, as the block's float16 scales and zero points are: one stream each
        // (rows of fewer than 16 groups then convert in whole vectors too, not a short tail per row).
        ConvertScales(a.Scales + (nint)o0 * gpr, sf, rows * gpr);
        ScaleTimesZero(sf, a.Zeros == null ? null : a.Zeros + (nint)o0 * gpr, 8f, szf, rows * gpr);
        if (!small)
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < steps; j++) lane[r * laneStride + j] = sf[r * gpr + (gpr == 1 ? 0 : (int)((long)unit * j / g))];
        new Span<float>(lane + rows * laneStride, 16).Clear();
    }

    /// <summary>Block set-up: float32 scales, s z, lane scales, the next block's scale prefetch, every tile's correction lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Prepare(in Args a, int block, float* buffer)
    {
        int o0 = block * BlockRows, rows = Math.Min(BlockRows, a.Out - o0);
        int gpr = a.GroupsPerRow;
        if (a.Own)
        {
            // The kernels convert the scales and start the accumulators themselves (EmitOwnScales).
            PrefetchScales(a.Scales, a.Zeros, o0 + BlockRows, a.Out, gpr);
            return;
        }
        PipeLayout(a, buffer, rows, out float* sf, out float* szf, out float* lane, out int laneStride, out bool small);
        BlockScales(a, o0, rows, sf, szf, lane, laneStride, small);
        PrefetchScales(a.Scales, a.Zeros, o0 + BlockRows, a.Out, gpr);
        for (int t = 0; t < a.Tiles; t++)
        {
            var (b0, m) = Tile(a.Batch, a.Tiles, t);
            StartCorrections(buffer + (nint)rows * b0 * 16, szf, gpr, a.GroupSums + (nint)b0 * a.GroupStride, a.GroupStride, rows, m);
        }
    }

    /// <summary>Block's kernel calls, every tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Compute(in Args a, int block, float* buffer, int* index)
    {
        int o0 = block * BlockRows, rows = Math.Min(BlockRows, a.Out - o0);
        int steps = a.Steps, unit = a.Unit;
        PipeLayout(a, buffer, rows, out _, out _, out float* lane, out int laneStride, out bool small);
        SmallBatchArgs args = default;
        args.RowBytes = a.RowBytes;
        args.ScaleStride = (long)laneStride * sizeof(float);
        args.ScaleAdvance = (small ? unit / a.GroupSize : 1) * sizeof(float);
        args.Index = index;
        args.Mask = 0x0F0F0F0F;
        args.Steps = steps;
        int bytesPerStep = unit / 2;
        byte* nextBlock = a.Packed + (nint)(o0 + BlockRows) * a.RowBytes;
        bool own = a.Own;
        int gpr = a.GroupsPerRow;
        args.Chunks = gpr / 16;
        args.SignMask = int.MinValue;
        args.ReduceOrder = (int*)Unsafe.AsPointer(ref s_reduceOrderTable[0]);
        for (int t = 0; t < a.Tiles; t++)
        {
            var (b0, m) = Tile(a.Batch, a.Tiles, t);
            int perCall = PerCall(a, m);
            args.X = a.X + (nint)b0 * steps * unit;
            args.GroupSums = a.OwnSums + (nint)b0 * gpr;
            float* acc = buffer + (nint)rows * b0 * 16;
            byte* front = nextBlock;
            bool tree = TileTree(a, m);
            var kernel = Kernel(a.Paired, m, perCall, own, tree);
            for (int r0 = 0; r0 < rows; r0 += perCall)
            {
                int n = Math.Min(perCall, rows - r0);
                args.W = a.Packed + (nint)(o0 + r0) * a.RowBytes;
                args.S = lane + r0 * laneStride;
                args.Acc = tree ? acc + r0 * m : acc + r0 * m * 16; // lane-tree kernels: sums [r M + c], each call's 16 past the last
                args.Front = front;
                if (own)
                {
                    args.HalfScales = a.Scales + (nint)(o0 + r0) * gpr;
                    args.Zeros = a.Zeros == null ? a.Eights : a.Zeros + (nint)(o0 + r0) * gpr;
                }
                front += (nint)n * steps * bytesPerStep;
                if (n == perCall) kernel(&args);
                else Call(a.Paired, m, n, &args, own, tree);
            }
        }
    }

    /// <summary>Weight rows per kernel call for a tile of <paramref name="m"/> batch rows (<see cref="RowsPerCall"/>, <see cref="RowsCap"/>, <see cref="SharedSmallTileRows"/>).</summary>
    private static int PerCall(in Args a, int m)
    {
        int perCall = RowsPerCall(m, a.Paired);
        if (RowsCap > 0) return Math.Min(perCall, RowsCap);
        if (a.Shared && m <= SharedSmallTileMaxRows && SharedSmallTileRows > 0) return Math.Min(perCall, SharedSmallTileRows);
        return perCall;
    }

    /// <summary>Block's lane sums (the transposing tree), tails, leftover corrections and stores, every tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Finish(in Args a, int block, float* buffer, float* sums)
    {
        int o0 = block * BlockRows, rows = Math.Min(BlockRows, a.Out - o0);
        int gpr = a.GroupsPerRow, tailStart = a.Steps * a.Unit;
        PipeLayout(a, buffer, rows, out float* sf, out float* szf, out _, out _, out _);
        for (int t = 0; t < a.Tiles; t++)
        {
            var (b0, m) = Tile(a.Batch, a.Tiles, t);
            float* acc = buffer + (nint)rows * b0 * 16;
            if (TileTree(a, m))
            {
                StoreTile(a, o0, rows, b0, m, acc, tailStart, gpr, sf, szf); // the kernels stored the sums
                continue;
            }
            for (int i = 0; i < rows * m; i += 16) ReduceLanes16(acc + i * 16, sums + i);
            StoreTile(a, o0, rows, b0, m, sums, tailStart, gpr, sf, szf);
        }
    }

    /// <summary>
    /// The fused epilogue of one tile: y[b, o] = sx_b (sum + tail - the leftover groups' correction) for the block's
    /// <paramref name="rows"/> rows from <paramref name="o0"/> and batch rows b0 .. b0 + m; sums holds the lane sums
    /// [r * m + c] (the 16-group corrections already inside). Without a tail or leftover groups, a store per output.
    /// </summary>
    private static void StoreTile(in Args a, int o0, int rows, int b0, int m, float* sums, int tailStart, int gpr, float* sf, float* szf)
    {
        // (Every group's correction is in the sums: StartCorrections takes a row's partial chunk too.)
        if (tailStart >= a.In)
        {
            for (int c = 0; c < m; c++)
            {
                float scale = a.RowScale[b0 + c];
                float* yb = a.Y + (nint)(b0 + c) * a.Out + o0;
                for (int r = 0; r < rows; r++) yb[r] = scale * sums[r * m + c];
            }
            return;
        }
        for (int r = 0; r < rows; r++)
        {
            int o = o0 + r;
            for (int c = 0; c < m; c++)
            {
                int b = b0 + c;
                float dot = sums[r * m + c];
                if (tailStart < a.In) dot += Tail(a, o, b, tailStart, sf + r * gpr);
                a.Y[(nint)b * a.Out + o] = a.RowScale[b] * dot;
            }
        }
    }

    /// <summary>
    /// sum_g a[g] b[g] in 16 float32 lanes (fixed order for a given count), then the lanes added: inlined, since a
    /// library call per output (TensorPrimitives.Dot) cost more than the 64-group dot itself.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int count)
    {
        var sum = Vector512<float>.Zero;
        int g = 0;
        for (; g + 16 <= count; g += 16) sum = Vector512.FusedMultiplyAdd(Vector512.Load(a + g), Vector512.Load(b + g), sum);
        float result = Vector512.Sum(sum);
        for (; g < count; g++) result = MathF.FusedMultiplyAdd(a[g], b[g], result);
        return result;
    }

    /// <summary>
    /// The accumulators' starting values for a tile (<see cref="FusedEpilogue"/>): for weight row r and batch row c, the
    /// negated 16 lanes of sum over 16-group chunks of s_g z_g x the group sums; a row's last partial chunk is one more
    /// chunk with its lanes past the row's groups zero (since session 17; before, those groups were taken out in scalar
    /// per output after the sums, most of a batch-2 call on rows of 12 groups). Shared by the 8-bit kernels. Reads up to
    /// 16 floats past the last row's s z (the callers' padding) and the group sums' zero padding.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void StartCorrections(float* acc, float* szf, int gpr, float* groupSums, int groupStride, int rows, int m)
    {
        int whole = gpr & ~15;
        // The partial chunk's lanes in the row (all ones) and past it (zero); whole chunks only: no partial step.
        bool partial = whole < gpr;
        var inRow = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(gpr - whole)).AsSingle();
        int r = 0;
        // Two weight rows x four batch rows at a time: eight independent chains (four were still latency-bound).
        if (m >= 4)
            for (; r + 2 <= rows; r += 2)
            {
                float* sz0 = szf + r * gpr, sz1 = sz0 + gpr, row0 = acc + r * m * 16, row1 = row0 + m * 16;
                int c = 0;
                for (; c + 4 <= m; c += 4)
                {
                    float* gs0 = groupSums + (nint)c * groupStride, gs1 = gs0 + groupStride, gs2 = gs1 + groupStride, gs3 = gs2 + groupStride;
                    Vector512<float> l0 = Vector512<float>.Zero, l1 = l0, l2 = l0, l3 = l0, k0 = l0, k1 = l0, k2 = l0, k3 = l0;
                    for (int g = 0; g < whole + (partial ? 16 : 0); g += 16)
                    {
                        var v = Vector512.Load(sz0 + g);
                        var u = Vector512.Load(sz1 + g);
                        if (g == whole)
                        {
                            v = Vector512.ConditionalSelect(inRow, v, Vector512<float>.Zero);
                            u = Vector512.ConditionalSelect(inRow, u, Vector512<float>.Zero);
                        }
                        var x0 = Vector512.Load(gs0 + g);
                        var x1 = Vector512.Load(gs1 + g);
                        var x2 = Vector512.Load(gs2 + g);
                        var x3 = Vector512.Load(gs3 + g);
                        l0 = Vector512.FusedMultiplyAdd(v, x0, l0);
                        l1 = Vector512.FusedMultiplyAdd(v, x1, l1);
                        l2 = Vector512.FusedMultiplyAdd(v, x2, l2);
                        l3 = Vector512.FusedMultiplyAdd(v, x3, l3);
                        k0 = Vector512.FusedMultiplyAdd(u, x0, k0);
                        k1 = Vector512.FusedMultiplyAdd(u, x1, k1);
                        k2 = Vector512.FusedMultiplyAdd(u, x2, k2);
                        k3 = Vector512.FusedMultiplyAdd(u, x3, k3);
                    }
                    (-l0).Store(row0 + c * 16);
                    (-l1).Store(row0 + c * 16 + 16);
                    (-l2).Store(row0 + c * 16 + 32);
                    (-l3).Store(row0 + c * 16 + 48);
                    (-k0).Store(row1 + c * 16);
                    (-k1).Store(row1 + c * 16 + 16);
                    (-k2).Store(row1 + c * 16 + 32);
                    (-k3).Store(row1 + c * 16 + 48);
                }
                for (; c < m; c++)
                {
                    float* gs = groupSums + (nint)c * groupStride;
                    Vector512<float> l0 = Vector512<float>.Zero, k0 = l0;
                    for (int g = 0; g < whole + (partial ? 16 : 0); g += 16)
                    {
                        var x = Vector512.Load(gs + g);
                        var v = Vector512.Load(sz0 + g);
                        var u = Vector512.Load(sz1 + g);
                        if (g == whole)
                        {
                            v = Vector512.ConditionalSelect(inRow, v, Vector512<float>.Zero);
                            u = Vector512.ConditionalSelect(inRow, u, Vector512<float>.Zero);
                        }
                        l0 = Vector512.FusedMultiplyAdd(v, x, l0);
                        k0 = Vector512.FusedMultiplyAdd(u, x, k0);
                    }
                    (-l0).Store(row0 + c * 16);
                    (-k0).Store(row1 + c * 16);
                }
            }
        for (; r < rows; r++)
        {
            float* sz = szf + r * gpr, row = acc + r * m * 16;
            int c = 0;
            // Four batch rows at a time: four independent chains sharing each load of s z (a single chain per output was
            // latency-bound: ~7% of b8's samples). Each output's own chain is unchanged: the same bits.
            for (; c + 4 <= m; c += 4)
            {
                float* gs0 = groupSums + (nint)c * groupStride, gs1 = gs0 + groupStride, gs2 = gs1 + groupStride, gs3 = gs2 + groupStride;
                Vector512<float> l0 = Vector512<float>.Zero, l1 = l0, l2 = l0, l3 = l0;
                for (int g = 0; g < whole + (partial ? 16 : 0); g += 16)
                {
                    var v = Vector512.Load(sz + g);
                    if (g == whole) v = Vector512.ConditionalSelect(inRow, v, Vector512<float>.Zero);
                    l0 = Vector512.FusedMultiplyAdd(v, Vector512.Load(gs0 + g), l0);
                    l1 = Vector512.FusedMultiplyAdd(v, Vector512.Load(gs1 + g), l1);
                    l2 = Vector512.FusedMultiplyAdd(v, Vector512.Load(gs2 + g), l2);
                    l3 = Vector512.FusedMultiplyAdd(v, Vector512.Load(gs3 + g), l3);
                }
                (-l0).Store(row + c * 16);
                (-l1).Store(row + c * 16 + 16);
                (-l2).Store(row + c * 16 + 32);
                (-l3).Store(row + c * 16 + 48);
            }
            for (; c < m; c++)
            {
                float* gs = groupSums + (nint)c * groupStride;
                var lanes = Vector512<float>.Zero;
                for (int g = 0; g < whole + (partial ? 16 : 0); g += 16)
                {
                    var v = Vector512.Load(sz + g);
                    if (g == whole) v = Vector512.ConditionalSelect(inRow, v, Vector512<float>.Zero);
                    lanes = Vector512.FusedMultiplyAdd(v, Vector512.Load(gs + g), lanes);
                }
                (-lanes).Store(row + c * 16);
            }
        }
    }

    /// <summary>Requests the float16 scales (and zero points) of weight rows [first, first + 12) into L1 (the next block's: the
    /// kernels prefetch only the codes, and these lines otherwise miss at the start of every block): every line the
    /// rows' bytes touch.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void PrefetchScales(Half* scales, byte* zeros, int first, int outFeatures, int gpr)
    {
        if (first >= outFeatures) return;
        int rows = Math.Min(BlockRows, outFeatures - first);
        PrefetchLines((byte*)(scales + (nint)first * gpr), (long)rows * gpr * 2);
        if (zeros != null) PrefetchLines(zeros + (nint)first * gpr, (long)rows * gpr);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchLines(byte* start, long bytes)
    {
        for (byte* p = (byte*)((nint)start & ~(nint)63), end = start + bytes; p < end; p += 64) Sse.Prefetch0(p);
    }

    /// <summary>Inverse of <see cref="ReduceLanes16"/>'s lane order: vector i's sum lands in lane 4 (i % 4) + i / 4.</summary>
    private static readonly Vector512<int> s_reduceOrder = Vector512.Create(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);

    /// <summary>
    /// sums[i] = the 16 lanes of vector i (at v + 16 i, i &lt; 16) added, for 16 vectors at once by a transposing tree:
    /// 15 (two shuffles + one add) in place of 16 horizontal sums. Every vector's lanes are added in the same order
    /// whatever its position i: ((l_k + l_k+8) + (l_k+4 + l_k+12)) for k = 0..3, then (k0 + k2) + (k1 + k3). Lanes of
    /// vectors past the ones used may hold anything: each sum depends only on its own vector.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ReduceLanes16(float* v, float* sums)
    {
        // Level 1: [a0+a2, a1+a3, b0+b2, b1+b3] by 128-bit chunks, for the pairs (a, b) = (v 2i, v 2i+1).
        var w0 = Halves(v, 0); var w1 = Halves(v, 2); var w2 = Halves(v, 4); var w3 = Halves(v, 6);
        var w4 = Halves(v, 8); var w5 = Halves(v, 10); var w6 = Halves(v, 12); var w7 = Halves(v, 14);
        // Level 2: chunk q of x j = vector 4 j + q, 4 partial lanes (l_k + l_k+8) + (l_k+4 + l_k+12).
        var x0 = Avx512F.Shuffle4x128(w0, w1, 0x88) + Avx512F.Shuffle4x128(w0, w1, 0xDD);
        var x1 = Avx512F.Shuffle4x128(w2, w3, 0x88) + Avx512F.Shuffle4x128(w2, w3, 0xDD);
        var x2 = Avx512F.Shuffle4x128(w4, w5, 0x88) + Avx512F.Shuffle4x128(w4, w5, 0xDD);
        var x3 = Avx512F.Shuffle4x128(w6, w7, 0x88) + Avx512F.Shuffle4x128(w6, w7, 0xDD);
        // Level 3: per chunk q, [p0+p2, r0+r2, p1+p3, r1+r3] for p = vector q (+8), r = vector q + 4 (+8).
        var y0 = Avx512F.UnpackLow(x0, x1) + Avx512F.UnpackHigh(x0, x1);
        var y1 = Avx512F.UnpackLow(x2, x3) + Avx512F.UnpackHigh(x2, x3);
        // Level 4: lane 4 q + e = vector q + 4 e.
        var z = Avx512F.Shuffle(y0, y1, 0x44) + Avx512F.Shuffle(y0, y1, 0xEE);
        Avx512F.PermuteVar16x32(z, s_reduceOrder).Store(sums);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Halves(float* v, int i)
    {
        var a = Vector512.Load(v + 16 * i);
        var b = Vector512.Load(v + 16 * i + 16);
        return Avx512F.Shuffle4x128(a, b, 0x44) + Avx512F.Shuffle4x128(a, b, 0xEE);
    }

    /// <summary>Codes [start, In) of row o times batch row b: exact integer sums per group, each times its scale.</summary>
    private static float Tail(in Args a, int o, int b, int start, float* sf)
    {
        byte* row = a.Packed + (nint)o * a.RowBytes;
        sbyte* x = a.Q + (nint)b * a.Padded;
        float result = 0f;
        for (int k = start; k < a.In;)
        {
            int group = a.GroupsPerRow == 1 ? 0 : k / a.GroupSize;
            int end = a.GroupsPerRow == 1 ? a.In : Math.Min(a.In, (group + 1) * a.GroupSize);
            int sum = 0;
            for (; k < end; k++) sum += (row[k >> 1] >> 4 * (k & 1) & 0xF) * x[k];
            result = MathF.FusedMultiplyAdd(sum, sf[group], result);
        }
        return result;
    }

    /// <summary>
    /// destination[g] = scales[g] * zeros[g], or * <paramref name="symmetricZero"/> (8 for 4-bit codes, 128 for 8-bit)
    /// when <paramref name="zeros"/> is null. Shared by the 4- and 8-bit small-batch kernels.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ScaleTimesZero(float* scales, byte* zeros, float symmetricZero, float* destination, int count)
    {
        int g = 0;
        if (zeros == null)
        {
            var zero = Vector512.Create(symmetricZero);
            for (; g + 16 <= count; g += 16) (Vector512.Load(scales + g) * zero).Store(destination + g);
        }
        else
        {
            for (; g + 16 <= count; g += 16)
            {
                var z = Vector512.ConvertToSingle(Avx512F.ConvertToVector512Int32(Vector128.Load(zeros + g)));
                (Vector512.Load(scales + g) * z).Store(destination + g);
            }
        }
        for (; g < count; g++) destination[g] = scales[g] * (zeros == null ? symmetricZero : zeros[g]);
    }

    /// <summary>float16 to float32 (exact): the magnitude bits shifted into a float32 times 2^112, the sign moved to bit 31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void ConvertScales(Half* scales, float* destination, int count) => FusedInt8Dot.HalvesToSingle(scales, destination, count);
}
