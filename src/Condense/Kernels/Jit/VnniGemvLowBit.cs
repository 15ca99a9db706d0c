using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Quantization;

namespace Condense.Kernels.Jit;

/// <summary>
/// Batch 1 with 2- and 3-bit codes on CPUs with AVX512-VNNI: a run-time assembled vpdpbusd loop over the stored rows,
/// the managed loop's decode (<see cref="FusedInt8Dot"/>'s Crumbs and Triples) with one vpdpbusd per 64 codes in place
/// of vpmaddubsw + vpaddw + vpmaddwd.
/// </summary>
/// <remarks>
/// <para>A unit is the managed loop's: 2 bits, one 64-byte line = 256 codes, split by one vpandd and three GFNI affine
/// transforms (a shift and a mask each; vpsrlw + vpandd without GFNI) into 4 registers, register p holding codes
/// 4j + p; 3 bits, 48 bytes = 128 codes, gathered by one vpermb (from memory) into 8 qwords of 16 codes, one
/// vpmultishiftqb putting codes 16q + 2k and 16q + 2k + 1 into byte 8q + k, a mask and an affine transform splitting
/// them (register p holding codes 2j + p). The activations are interleaved once per call in the same order
/// (<see cref="FusedInt8Dot.Interleave"/>), so each register meets its 64 activations as one vpdpbusd memory operand,
/// all into one int32 accumulator: lane k sums codes [k L, (k + 1) L) of the unit (L = 16 or 8), exactly the managed
/// loop's lane sums (unsigned codes times signed activations, no saturation; the zero point folds through the group
/// sums).</para>
/// <para>Floats follow the managed loop (FusedInt8Dot.Gemv: DotSpans with one unit per group, DotPermuted with several
/// groups per unit) step for step: unit u's lanes are converted and FMA'd into accumulator f[u mod 4] with its group's
/// broadcast scale, or with the 16 lane scales taken by one vpermps from the aligned 16-scale block that holds them;
/// the row's dot is (f0 + f1) + (f2 + f3) summed horizontally. So results are bit-identical with the kernel on or off,
/// at any thread count. Groups of several units and per-row groups keep the managed loop.</para>
/// <para>Per 64 weight bytes (static count from the emitter, 2-bit g64 / 3-bit g128): 11 / 10.7 vector ALU
/// instructions, 4 / 2.7 of them vpdpbusd, 6 / 5.3 loads, 2 / 2 prefetches, 1.25 / 1.7 loop overhead; the managed
/// loop: 15 / 13.3 vector ALU with 5 / 4 multiply-port instructions (vpmaddubsw, vpmaddwd) and 7 / 5.3 loads.</para>
/// <para>Each line is prefetched twice: into L1 6 KB ahead (the managed loop's) and into L2 48 KB ahead (two to three
/// 16-row blocks), which keeps the stream going while the next block's scales are converted between kernel calls
/// (see <see cref="L2PrefetchAhead"/>).</para>
/// </remarks>
internal static unsafe class VnniGemvLowBit
{
    /// <summary>Most rows per kernel call (their scales are converted first, their sums reduced after).</summary>
    public const int BlockRows = 16;

    /// <summary>Floats each row's accumulators take in the kernel's output (f0..f3).</summary>
    private const int LaneFloats = 64;

    /// <summary>Software prefetch distance into L1 (bytes ahead of each line's load), the managed loop's.</summary>
    private const int PrefetchAhead = 6144;

    /// <summary>
    /// Prefetch distance into L2 (prefetcht1): two to three 16-row blocks ahead. Without it the loop ran cold S2 calls
    /// 0.74-0.92x the managed loop (one thread, CPU time): between two kernel calls the next 16 rows' scales are
    /// converted with no weight loads in flight, and L1 prefetches 6 KB ahead (4 rows) cannot cover that gap; with
    /// it 1.1-1.3x, cold and hot (docs/kernels.md).
    /// </summary>
    private const int L2PrefetchAhead = 49152;

    private static readonly bool s_cpuHasVnni = VnniGemv.CpuHasVnni;
    private static readonly ConcurrentDictionary<Layout, nint> s_kernels = new();

    // Constants the kernels load once per call (offsets into s_constants).
    private const int Mask3Offset = 0, Mask7Offset = 64, Crumb1Offset = 128, Crumb2Offset = 192, Crumb3Offset = 256,
        TripleHighOffset = 320, TriplePermuteOffset = 384, TripleShiftOffset = 448, IndexOffset = 512;
    private static readonly byte* s_constants = MakeConstants();

    /// <summary>Bytes ahead of each line's load that the loop prefetches into L1 (prefetcht0; 0 = none).</summary>
    internal static int L1Prefetch { get; set; } = PrefetchAhead;

    /// <summary>Bytes ahead of each line's load that the loop prefetches into L2 (prefetcht1; 0 = none).</summary>
    internal static int L2Prefetch { get; set; } = L2PrefetchAhead;

    /// <summary>Rows per kernel call, 1..<see cref="BlockRows"/> (benchmarks compare them).</summary>
    internal static int RowsPerCall
    {
        get => s_rowsPerCall;
        set => s_rowsPerCall = value is >= 1 and <= BlockRows ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"Rows per call 1..{BlockRows}.");
    }
    private static int s_rowsPerCall = BlockRows;

    /// <summary>Tests and benchmarks: false makes <see cref="Prepare"/> give 0, so the managed loop runs.</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>AVX512-VNNI (CPUID.(EAX=7, ECX=0):ECX bit 11) with AVX-512 enabled in this runtime and generated code allowed.</summary>
    public static bool IsSupported => s_cpuHasVnni && Enabled && KernelOptions.GeneratedCode;

    /// <summary>Index rows of P groups per unit start at IndexOffset + RowsBefore(P) * 64 (P = 2, 4, 8, 16: 8, 4, 2, 1 rows).</summary>
    private static int IndexTable(int groupsPerUnit) => IndexOffset + 64 * groupsPerUnit switch { 2 => 0, 4 => 8, 8 => 12, _ => 14 };

    private static byte* MakeConstants()
    {
        // Never freed: the kernels live as long as the process.
        byte* c = (byte*)NativeMemory.AlignedAlloc(IndexOffset + 15 * 64, 64);
        new Span<byte>(c + Mask3Offset, 64).Fill(0x03);
        new Span<byte>(c + Mask7Offset, 64).Fill(0x07);
        // GF(2) bit matrices taking bits 2-3, 4-5 and 6-7 of each byte to bits 0-1 (the managed Crumbs decode's), and
        // bits 3-5 to bits 0-2 (Triples').
        new Span<ulong>(c + Crumb1Offset, 8).Fill(0x0408000000000000UL);
        new Span<ulong>(c + Crumb2Offset, 8).Fill(0x1020000000000000UL);
        new Span<ulong>(c + Crumb3Offset, 8).Fill(0x4080000000000000UL);
        new Span<ulong>(c + TripleHighOffset, 8).Fill(0x0810200000000000UL);
        // 3 bits: qword q gathers bytes 6q .. 6q + 7 (codes 16q .. 16q + 15 in its low 48 bits); byte k of every qword
        // then takes the 8 bits from bit 6k: codes 2k and 2k + 1 in its low 6 bits.
        for (int q = 0; q < 8; q++)
            for (int k = 0; k < 8; k++) c[TriplePermuteOffset + 8 * q + k] = (byte)(6 * q + k);
        new Span<ulong>(c + TripleShiftOffset, 8).Fill(0x2A241E18120C0600UL);
        foreach (int p in new[] { 2, 4, 8, 16 })
        {
            // Row j of P groups per unit: lane k of the unit j of a 16-scale block takes scale j P + floor(k P / 16).
            int* rows = (int*)(c + IndexTable(p));
            for (int j = 0; j < 16 / p; j++)
                for (int k = 0; k < 16; k++) rows[16 * j + k] = j * p + (k * p >> 4);
        }
        return c;
    }

    /// <summary>How the float sums are made: a group per unit (broadcast scale) or several (permuted scales).</summary>
    internal enum Plan : byte
    {
        /// <summary>A group of one unit: f[u mod 4] += lanes * broadcast scale.</summary>
        UnitFma,
        /// <summary>P = 2..16 groups per unit: f[u mod 4] += lanes * scales permuted from their 16-scale block.</summary>
        Permuted,
    }

    /// <summary>A weight's kernel layout: everything the generated code depends on.</summary>
    internal readonly record struct Layout(int Bits, Plan Plan, int Units, int GroupsPerUnit, int RowBytes, int ScaleStride, bool Gfni, int L1Ahead = PrefetchAhead, int L2Ahead = 0)
    {
        /// <summary>Codes (and activation bytes) per unit.</summary>
        public int UnitCodes => Bits == 2 ? 256 : 128;

        /// <summary>Stored bytes per unit (each unit's load reads 64).</summary>
        public int UnitBytes => Bits == 2 ? 64 : 48;

        /// <summary>Scales a row's kernel reads: one per unit, or whole 16-scale blocks.</summary>
        public int ScaleCount => Plan == Plan.UnitFma ? Units : (Units * GroupsPerUnit + 15) & ~15;

        /// <summary>Units per unrolled loop iteration: 4 (one per accumulator), or a whole 16-scale block when longer.</summary>
        public int Chunk => Plan == Plan.UnitFma ? 4 : Math.Max(4, 16 / GroupsPerUnit);
    }

    /// <summary>
    /// The layout for this weight at batch 1, or null when the kernel does not take it: 2- or 3-bit codes in groups
    /// that tile the row and equal a unit (2 bits: 256 codes, 3 bits: 128) or split it into 2, 4, 8 or 16.
    /// </summary>
    internal static Layout? LayoutFor(int bits, int groupSize, int groupsPerRow, int inFeatures, int rowBytes, int groupStride)
    {
        if (bits is not (2 or 3) || inFeatures <= 0 || groupsPerRow <= 1) return null;
        if ((long)groupSize * groupsPerRow != inFeatures) return null;
        int unitCodes = bits == 2 ? 256 : 128;
        int units = (inFeatures + unitCodes - 1) / unitCodes;
        if ((long)units * 64 > int.MaxValue / 4) return null;
        Plan plan;
        int perUnit = 1;
        if (groupSize == unitCodes) plan = Plan.UnitFma;
        else if (groupSize < unitCodes && unitCodes % groupSize == 0 && unitCodes / groupSize <= 16)
        {
            perUnit = unitCodes / groupSize;
            plan = Plan.Permuted;
        }
        else return null;
        var layout = new Layout(bits, plan, units, perUnit, rowBytes, 0, Gfni.V512.IsSupported, L1Prefetch, L2Prefetch);
        // One float per group, 16-float aligned; zero past the row's groups (permuted blocks read them).
        return layout with { ScaleStride = (Math.Max(groupStride, layout.ScaleCount) + 15) & ~15 };
    }

    /// <summary>True when batch 1 of this weight takes the generated kernel here.</summary>
    public static bool Applies(int bits, int batch, int groupSize, int groupsPerRow, int inFeatures, int vectorBits) =>
        batch == 1 && vectorBits == 512 && IsSupported && (bits != 3 || Avx512Vbmi.IsSupported)
        && LayoutFor(bits, groupSize, groupsPerRow, inFeatures, (inFeatures * bits + 7) / 8, (groupsPerRow + 15) & ~15) is not null;

    /// <summary>
    /// The kernel a batch-1 call of this weight runs (as <see cref="FusedInt8Dot.Args.VnniKernel"/>), or 0 when the
    /// managed loop runs (no AVX512-VNNI or, for 3 bits, AVX512_VBMI; generated code off; a layout it does not take).
    /// </summary>
    public static nint Prepare(int bits, int batch, int groupSize, int groupsPerRow, int inFeatures, int rowBytes, int groupStride, int vectorBits)
    {
        if (batch != 1 || vectorBits != 512 || !IsSupported || (bits == 3 && !Avx512Vbmi.IsSupported)) return 0;
        var layout = LayoutFor(bits, groupSize, groupsPerRow, inFeatures, rowBytes, groupStride);
        return layout is null ? 0 : (nint)Kernel(layout.Value);
    }

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
    /// <remarks>
    /// Registers: f0..f3 in zmm0..3; unit sums zmm4..7 (unit j mod 4); permute index rows zmm8..15; decoded registers
    /// zmm16..19 and zmm20..23 (alternate units); permuted scales zmm24/25; constants zmm28..31.
    /// </remarks>
    internal static byte[] Emit(Layout l)
    {
        if (l.Bits is not (2 or 3) || l.Units < 1 || l.RowBytes <= 0 || l.ScaleStride < l.ScaleCount
            || (l.Plan == Plan.Permuted && l.GroupsPerUnit is not (2 or 4 or 8 or 16)))
            throw new ArgumentOutOfRangeException(nameof(l), l, "2 or 3 bits, a positive row, 2-16 groups per permuted unit, and a scale stride holding a row's scales.");
        var asm = new X86Assembler();
        bool crumbs = l.Bits == 2;
        int unitBytes = l.UnitBytes, unitCodes = l.UnitCodes, chunk = l.Chunk;
        int perBlock = l.Plan == Plan.Permuted ? 16 / l.GroupsPerUnit : 0; // units per 16-scale block
        var mask = new Zmm(31);
        Zmm F(int i) => new(i & 3);

        // Unit j of a chunk: codes at rdi + j unitBytes, activations at rsi + j unitCodes, into f[j mod 4].
        void Unit(int j)
        {
            int wo = unitBytes * j, xo = unitCodes * j;
            Zmm acc = new(4 + (j & 3)), w = new(16 + 4 * (j & 1));
            Zmm W(int p) => new(w.Index + p);
            // One prefetch per line: the lines whose first byte this unit's stored bytes hold.
            for (int line = (wo + 63) / 64 * 64; line < wo + unitBytes; line += 64)
            {
                if (l.L1Ahead > 0) asm.Prefetcht0(new Mem(Gpr.Rdi, line + l.L1Ahead));
                if (l.L2Ahead > 0) asm.Prefetcht1(new Mem(Gpr.Rdi, line + l.L2Ahead));
            }
            if (crumbs)
            {
                asm.Vmovdqu32(w, new Mem(Gpr.Rdi, wo));
                for (int p = 1; p < 4; p++)
                {
                    if (l.Gfni) asm.Vgf2p8affineqb(W(p), w, new Zmm(27 + p), 0);
                    else
                    {
                        asm.Vpsrlw(W(p), w, (byte)(2 * p));
                        asm.Vpandd(W(p), W(p), mask);
                    }
                }
                asm.Vpandd(w, w, mask);
            }
            else
            {
                asm.Vpermb(w, new Zmm(28), new Mem(Gpr.Rdi, wo));
                asm.Vpmultishiftqb(w, new Zmm(29), w);
                if (l.Gfni) asm.Vgf2p8affineqb(W(1), w, new Zmm(30), 0);
                else
                {
                    asm.Vpsrlw(W(1), w, 3);
                    asm.Vpandd(W(1), W(1), mask);
                }
                asm.Vpandd(w, w, mask);
            }
            int parts = crumbs ? 4 : 2;
            asm.Vpxord(acc, acc, acc);
            // One dependent chain: two chains summed by a vpaddd measured no faster (S2, 1 and 2 threads).
            for (int p = 0; p < parts; p++) asm.Vpdpbusd(acc, W(p), new Mem(Gpr.Rsi, xo + 64 * p));
            asm.Vcvtdq2ps(acc, acc);
            if (l.Plan == Plan.UnitFma) asm.Vfmadd231ps(F(j), acc, new Mem(Gpr.Rdx, 4 * j, Broadcast: true));
            else if (perBlock == 1) asm.Vfmadd231ps(F(j), acc, new Mem(Gpr.Rdx, 64 * j));
            else
            {
                var s = new Zmm(24 + (j & 1));
                asm.Vpermps(s, new Zmm(8 + j % perBlock), new Mem(Gpr.Rdx, 64 * (j / perBlock)));
                asm.Vfmadd231ps(F(j), acc, s);
            }
        }

        // Entry: the constants into registers, x kept for every row.
        if (crumbs)
        {
            asm.Vmovdqu32(mask, new Mem(Gpr.R8, Mask3Offset));
            if (l.Gfni)
            {
                asm.Vmovdqu32(new Zmm(28), new Mem(Gpr.R8, Crumb1Offset));
                asm.Vmovdqu32(new Zmm(29), new Mem(Gpr.R8, Crumb2Offset));
                asm.Vmovdqu32(new Zmm(30), new Mem(Gpr.R8, Crumb3Offset));
            }
        }
        else
        {
            asm.Vmovdqu32(mask, new Mem(Gpr.R8, Mask7Offset));
            asm.Vmovdqu32(new Zmm(28), new Mem(Gpr.R8, TriplePermuteOffset));
            asm.Vmovdqu32(new Zmm(29), new Mem(Gpr.R8, TripleShiftOffset));
            if (l.Gfni) asm.Vmovdqu32(new Zmm(30), new Mem(Gpr.R8, TripleHighOffset));
        }
        if (perBlock > 1)
            for (int j = 0; j < perBlock; j++) asm.Vmovdqu32(new Zmm(8 + j), new Mem(Gpr.R8, IndexTable(l.GroupsPerUnit) + 64 * j));
        asm.Mov(Gpr.Rax, Gpr.Rsi);

        int row = asm.Position;
        for (int i = 0; i < 4; i++) asm.Vpxord(F(i), F(i), F(i));
        int chunkScaleBytes = l.Plan == Plan.UnitFma ? 4 * chunk : 4 * chunk * l.GroupsPerUnit;
        int chunks = l.Units / chunk, rest = l.Units % chunk;
        int wAdvance = 0, sAdvance = 0;
        if (chunks > 0)
        {
            asm.MovImm32(Gpr.R10, chunks);
            int loop = asm.Position;
            for (int j = 0; j < chunk; j++) Unit(j);
            asm.AddImm(Gpr.Rdi, unitBytes * chunk);
            asm.AddImm(Gpr.Rsi, unitCodes * chunk);
            asm.AddImm(Gpr.Rdx, chunkScaleBytes);
            asm.Dec(Gpr.R10);
            asm.JnzBack(loop);
            wAdvance = unitBytes * chunk * chunks;
            sAdvance = chunkScaleBytes * chunks;
        }
        // The rest: unit j into f[j mod 4] (chunks hold a multiple of 4 units, so that is f[u mod 4]).
        for (int j = 0; j < rest; j++) Unit(j);
        for (int i = 0; i < 4; i++) asm.Vmovups(new Mem(Gpr.Rcx, 64 * i), F(i));
        asm.AddImm(Gpr.Rcx, 4 * LaneFloats);
        if (l.RowBytes - wAdvance != 0) asm.AddImm(Gpr.Rdi, l.RowBytes - wAdvance);
        if (4 * l.ScaleStride - sAdvance != 0) asm.AddImm(Gpr.Rdx, 4 * l.ScaleStride - sAdvance);
        asm.Mov(Gpr.Rsi, Gpr.Rax);
        asm.Dec(Gpr.R9);
        asm.JnzBack(row);
        asm.Vzeroupper();
        asm.Ret();
        return asm.ToArray();
    }

    [ThreadStatic] private static byte[]? t_scratch;

    /// <summary>
    /// Prefetches the float16 scales and zero points of rows [r0, r0 + count) (the next call's block) while this
    /// block's kernel streams its weights.
    /// </summary>
    private static void PrefetchScales(in FusedInt8Dot.Args a, int r0, int count)
    {
        long groups = (long)count * a.GroupsPerRow;
        byte* s = (byte*)(a.Scales + (nint)r0 * a.GroupsPerRow);
        for (long o = 0; o < 2 * groups; o += 64) Sse.Prefetch0(s + o);
        if (a.Zeros == null) return;
        byte* z = a.Zeros + (nint)r0 * a.GroupsPerRow;
        for (long o = 0; o < groups; o += 64) Sse.Prefetch0(z + o);
    }

    /// <summary>
    /// Output rows [start, end) of batch 1 with <see cref="FusedInt8Dot.Args.VnniKernel"/> from <see cref="Prepare"/>:
    /// y[r] = rowScale * (dot_r - correction_r), the correction the zero points folded through the activation's group
    /// sums (the managed loop's <see cref="FusedInt8Dot.ScaleRow"/>, and its final sum).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(in FusedInt8Dot.Args a, int start, int end)
    {
        int gpr = a.GroupsPerRow, rowBytes = a.RowBytes;
        var l = LayoutFor(a.Bits, a.GroupSize, gpr, a.In, rowBytes, a.GroupStride)!.Value;
        int scaleStride = l.ScaleStride, scaleCount = l.ScaleCount, units = l.Units;
        var kernel = (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, byte*, long, void>)a.VnniKernel;

        // Scratch: a block's scales and accumulators, and a zero-padded copy of the last row (when its reads would
        // pass the end of the codes).
        long copyBytes = (long)(units - 1) * l.UnitBytes + 64;
        int work = FusedInt8Dot.ScaleRowsWork(gpr);
        long need = 64 + 4L * BlockRows * (scaleStride + LaneFloats) + copyBytes + 64 + 4L * work + 64;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<byte>((int)Math.Max(need, 64 * 1024), pinned: true);
        float* sf = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* lanes = sf + BlockRows * scaleStride;
        byte* copy = (byte*)(lanes + BlockRows * LaneFloats);
        float* scaleWork = (float*)(((nint)copy + (nint)copyBytes + 63) & ~(nint)63);
        float* corrections = stackalloc float[BlockRows];
        int symmetricZero = 1 << (a.Bits - 1);
        float rowScale = a.RowScale[0];
        // The last unit's load ends copyBytes from a row's start: past the row's end when In is not a multiple of a
        // unit or at 3 bits (48-byte units, 64-byte loads). Inside the matrix the extra bytes are the next row's codes
        // meeting zero activations (or bytes the 3-bit permute never reads); only the matrix's last row needs the copy.
        bool overrun = copyBytes > rowBytes;

        int block = RowsPerCall;
        for (int r0 = start; r0 < end; r0 += block)
        {
            int count = Math.Min(block, end - r0);
            // The block's scales and corrections at once (ScaleRow's bits row by row; rows of fewer than 16 groups
            // convert as one stream: per row, ScaleRow's call and partial chunk were most of a short row's time, session
            // 17: 3072x768 2-bit g64 258 us per call, 1 thread).
            FusedInt8Dot.ScaleRows(a.Scales + (nint)r0 * gpr, a.Zeros == null ? null : a.Zeros + (nint)r0 * gpr,
                symmetricZero, 0, sf, scaleStride, a.GroupSums, gpr, count, scaleWork, corrections);
            if (scaleCount > gpr)
                for (int k = 0; k < count; k++) new Span<float>(sf + (nint)k * scaleStride + gpr, scaleCount - gpr).Clear();
            if (r0 + count < end) PrefetchScales(a, r0 + count, Math.Min(block, end - r0 - count));
            byte* w = a.Packed + (nint)r0 * rowBytes;
            int direct = overrun && r0 + count == a.Out ? count - 1 : count;
            if (direct > 0) kernel(w, a.Q, sf, lanes, s_constants, direct);
            if (direct < count)
            {
                new Span<byte>(copy, (int)copyBytes).Clear();
                Buffer.MemoryCopy(w + (nint)direct * rowBytes, copy, copyBytes, rowBytes);
                kernel(copy, a.Q, sf + (nint)direct * scaleStride, lanes + LaneFloats * direct, s_constants, 1);
            }
            for (int k = 0; k < count; k++)
            {
                float* f = lanes + LaneFloats * k;
                // The managed loop's reduction: (f0 + f1) + (f2 + f3), then one horizontal sum.
                float dot = Vector512.Sum((Vector512.Load(f) + Vector512.Load(f + 16)) + (Vector512.Load(f + 32) + Vector512.Load(f + 48)));
                a.Y[r0 + k] = rowScale * (dot - corrections[k]);
            }
        }
    }
}
