using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;
using Condense.Quantization;

namespace Condense.Kernels.Jit;

/// <summary>
/// Batch 1 with 8-bit codes on CPUs with AVX512-VNNI: a run-time assembled loop of 512-bit vpdpbusd (.NET exposes
/// no EVEX VNNI intrinsic) that streams the weight rows in order, as the managed loop does.
/// </summary>
/// <remarks>
/// <para>Why: the managed AVX-512 loop needs vpmaddubsw + vpmaddwd (and the |u - 128| sign trick) per 64 codes, two
/// multiply-port instructions where vpdpbusd needs one; on the Zen 4 development VM the multiply ports bound the hot
/// (in-cache) batch-1 rows, so the managed kernel cannot reach ONNX Runtime's vpdpbusd kernel there.</para>
/// <para>vpdpbusd multiplies the unsigned codes u (0..255) by the signed int8 activations and sums four products per
/// int32 lane without saturation, so codes enter as they are (code offset 0: the zero point z is folded through the
/// group sums like the other kernels). Each group of S = G / 64 steps sums into int32 accumulators (|sum| &lt;=
/// S * 4 * 255 * 127, far below 2^31 for S &lt;= 32), converted and added to a float accumulator with the group's
/// scale by one FMA; two groups per iteration on two float accumulators. A per-row group is cut into equal virtual
/// groups of at most 4 steps carrying the same scale. Integer sums are exact and every row runs the same
/// instructions, so results do not depend on the thread count or the block a row falls in.</para>
/// <para>Rows are read one after another with a software prefetch 6 KB ahead, one sequential stream: reading several
/// rows at once (4 streams) ran cold calls 1.3-1.7x slower on the development VM.</para>
/// <para>The code is made once per (S, groups, row bytes, scale stride) and kept; without executable pages, the
/// CPUID bit or AVX-512, <see cref="Prepare"/> gives 0 and the managed kernels run.</para>
/// </remarks>
internal static unsafe class VnniGemv8
{
    /// <summary>Most 64-code steps per group the loop unrolls (groups up to 2048 codes).</summary>
    public const int MaxSteps = 32;

    /// <summary>Rows per kernel call: their scales are converted first, their sums reduced after.</summary>
    public const int BlockRows = 16;

    private const int PrefetchAhead = 6144;

    private static readonly bool s_cpuHasVnni = DetectVnni();
    private static readonly ConcurrentDictionary<(int Steps, int Groups, int RowBytes, int ScaleStride), nint> s_kernels = new();

    /// <summary>Tests: false makes <see cref="Applies"/> false, so the managed kernels run.</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>AVX512-VNNI (CPUID.(EAX=7, ECX=0):ECX bit 11) with AVX-512 enabled in this runtime.</summary>
    public static bool IsSupported => s_cpuHasVnni && Enabled;

    private static bool DetectVnni()
    {
        if (!X86Base.IsSupported || !Avx512F.IsSupported || !Avx512BW.IsSupported) return false;
        var (_, _, ecx, _) = X86Base.CpuId(7, 0);
        return (ecx & (1 << 11)) != 0;
    }

    /// <summary>
    /// True when batch 1 of 8-bit codes takes this kernel: groups a multiple of 64 codes up to <see cref="MaxSteps"/>
    /// steps that tile the row, or one group per row of at least 2 steps.
    /// </summary>
    public static bool Applies(int bits, int batch, int groupSize, int groupsPerRow, int inFeatures, int vectorBits) =>
        bits == 8 && batch == 1 && vectorBits == 512 && IsSupported
        && (groupsPerRow == 1
            ? inFeatures > 64
            : groupSize % 64 == 0 && groupSize / 64 <= MaxSteps && (long)groupSize * groupsPerRow == inFeatures);

    /// <summary>
    /// Steps per (virtual) group for <paramref name="units"/> 64-code steps per row: the group's own, or for a
    /// per-row group the largest divisor of <paramref name="units"/> up to 4 that leaves at least 2 groups.
    /// </summary>
    /// <remarks>
    /// A group's steps are one chain of dependent vpdpbusd (about 5 cycles each on Zen 4) with one other group beside
    /// it: virtual groups of 16 steps made per-row calls latency-bound (slower than the managed loop, hot and cold);
    /// 4 steps keep the chains short at one extra convert and FMA per 256 codes.
    /// </remarks>
    public static int StepsPerGroup(int groupSize, int groupsPerRow, int units)
    {
        if (groupsPerRow != 1) return groupSize / 64;
        for (int s = Math.Min(4, units / 2); s > 1; s--)
            if (units % s == 0) return s;
        return 1;
    }

    /// <summary>
    /// The kernel: (w, x, scales, out, pairs, rows) runs <c>rows</c> rows from w (row r at w + r * rowBytes, its
    /// float32 scales at scales + r * scaleStride) over groups * steps * 64 codes (pairs = groups / 2) and stores each
    /// row's 32 float lane sums (two accumulators) at out + 32 r. Null when the code cannot be made here.
    /// </summary>
    public static delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, long, long, void> Kernel(int steps, int groups, int rowBytes, int scaleStride)
    {
        if (!s_cpuHasVnni) return null;
        nint code = s_kernels.GetOrAdd((steps, groups, rowBytes, scaleStride),
            static key => (nint)ExecutableMemory.TryCreate(Emit(key.Steps, key.Groups, key.RowBytes, key.ScaleStride)));
        return (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, long, long, void>)code;
    }

    /// <summary>The machine code (System V: rdi = w, rsi = x, rdx = scales, rcx = out, r8 = pairs, r9 = rows).</summary>
    internal static byte[] Emit(int steps, int groups, int rowBytes, int scaleStride)
    {
        if (steps < 1 || steps > MaxSteps) throw new ArgumentOutOfRangeException(nameof(steps), steps, $"1..{MaxSteps} steps of 64 codes per group.");
        if (groups < 2) throw new ArgumentOutOfRangeException(nameof(groups), groups, "The loop takes two groups per iteration: at least 2.");
        if (rowBytes <= 0 || (long)64 * steps * groups > int.MaxValue / 2 || scaleStride < groups)
            throw new ArgumentOutOfRangeException(nameof(rowBytes), rowBytes, "Row and scale offsets must fit 32 bits and the scale stride hold a row's groups.");
        var asm = new X86Assembler();
        Zmm f0 = new(0), f1 = new(1);                           // float accumulators: even and odd groups
        Zmm ia = new(2), ib = new(3);                            // int32 sums of groups a and b (zeroed every iteration: the
                                                                // out-of-order core overlaps the next iteration's chains)
        Zmm wa = new(6), wb = new(7);
        int groupBytes = 64 * steps;

        void Group(Zmm acc, Zmm w, int at, int j)
        {
            int offset = at + 64 * j;
            asm.Prefetcht0(new Mem(Gpr.Rdi, offset + PrefetchAhead));
            asm.Vmovdqu32(w, new Mem(Gpr.Rdi, offset));
            asm.Vpdpbusd(acc, w, new Mem(Gpr.Rsi, offset));
        }

        void Scale(Zmm f, Zmm acc, int scaleOffset)
        {
            asm.Vcvtdq2ps(acc, acc);
            asm.Vfmadd231ps(f, acc, new Mem(Gpr.Rdx, scaleOffset, Broadcast: true));
        }

        asm.Mov(Gpr.Rax, Gpr.Rsi);   // x, restored for every row
        asm.Mov(Gpr.R10, Gpr.R8);    // pairs, restored for every row
        int row = asm.Position;
        asm.Vpxord(f0, f0, f0);
        asm.Vpxord(f1, f1, f1);
        int pair = asm.Position;
        asm.Vpxord(ia, ia, ia);
        asm.Vpxord(ib, ib, ib);
        for (int j = 0; j < steps; j++)
        {
            Group(ia, wa, 0, j);
            Group(ib, wb, groupBytes, j);
        }
        Scale(f0, ia, 0);
        Scale(f1, ib, 4);
        asm.AddImm(Gpr.Rdi, 2 * groupBytes);
        asm.AddImm(Gpr.Rsi, 2 * groupBytes);
        asm.AddImm(Gpr.Rdx, 8);
        asm.Dec(Gpr.R8);
        asm.JnzBack(pair);
        if ((groups & 1) != 0)
        {
            asm.Vpxord(ia, ia, ia);
            for (int j = 0; j < steps; j++) Group(ia, wa, 0, j);
            Scale(f0, ia, 0);
            asm.AddImm(Gpr.Rdi, groupBytes);
            asm.AddImm(Gpr.Rdx, 4);
        }
        asm.Vmovups(new Mem(Gpr.Rcx, 0), f0);
        asm.Vmovups(new Mem(Gpr.Rcx, 64), f1);
        asm.AddImm(Gpr.Rcx, 128);
        int rowRest = rowBytes - groupBytes * groups, scaleRest = 4 * (scaleStride - groups);
        if (rowRest != 0) asm.AddImm(Gpr.Rdi, rowRest);
        if (scaleRest != 0) asm.AddImm(Gpr.Rdx, scaleRest);
        asm.Mov(Gpr.Rsi, Gpr.Rax);
        asm.Mov(Gpr.R8, Gpr.R10);
        asm.Dec(Gpr.R9);
        asm.JnzBack(row);
        asm.Vzeroupper();
        asm.Ret();
        return asm.ToArray();
    }

    /// <summary>
    /// The kernel a batch-1 call of this weight runs (as <see cref="FusedInt8Dot.Args.VnniKernel"/>), or 0 when the
    /// managed kernels run: the caller then keeps their code offset (the kernel's codes enter unshifted).
    /// </summary>
    public static nint Prepare(int bits, int batch, int groupSize, int groupsPerRow, int inFeatures, int rowBytes, int groupStride, int vectorBits)
    {
        if (!Applies(bits, batch, groupSize, groupsPerRow, inFeatures, vectorBits)) return 0;
        Layout(groupSize, groupsPerRow, inFeatures, groupStride, out int steps, out int groups, out int scaleStride);
        return (nint)Kernel(steps, groups, rowBytes, scaleStride);
    }

    /// <summary>Steps per (virtual) group, groups per row, and the per-row stride of the float32 scales.</summary>
    private static void Layout(int groupSize, int groupsPerRow, int inFeatures, int groupStride, out int steps, out int groups, out int scaleStride)
    {
        int units = (inFeatures + 63) >> 6;
        steps = StepsPerGroup(groupSize, groupsPerRow, units);
        groups = groupsPerRow == 1 ? units / steps : groupsPerRow;
        // One scale per virtual group of a per-row group; 16-float aligned.
        scaleStride = (Math.Max(groupStride, groups) + 15) & ~15;
    }

    [ThreadStatic] private static byte[]? t_scratch;

    /// <summary>
    /// Output rows [start, end) of batch 1 with <see cref="FusedInt8Dot.Args.VnniKernel"/> from <see cref="Prepare"/>
    /// and code offset 0: y[r] = rowScale * (dot_r - correction_r), the correction the zero points folded through the
    /// activation's group sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(in FusedInt8Dot.Args a, int start, int end)
    {
        int gpr = a.GroupsPerRow, rowBytes = a.RowBytes;
        int units = (a.In + 63) >> 6;
        Layout(a.GroupSize, gpr, a.In, a.GroupStride, out _, out int groups, out int scaleStride);
        var kernel = (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, float*, float*, long, long, void>)a.VnniKernel;

        // Scratch: a block's scales and lane sums, and a zero-padded copy of the last row (when its reads would pass
        // the end of the codes).
        long need = 64 + 4L * BlockRows * (scaleStride + 32) + (long)units * 64 + 64;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<byte>((int)Math.Max(need, 64 * 1024), pinned: true);
        float* sf = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* lanes = sf + BlockRows * scaleStride;
        byte* copy = (byte*)(lanes + BlockRows * 32);
        float* corrections = stackalloc float[BlockRows];
        int symmetricZero = 1 << (a.Bits - 1);
        float rowScale = a.RowScale[0];
        // Reads run to units * 64 bytes from a row's start: past the row's end when In is not a multiple of 64
        // (the next row's codes meet zero activations), so only the matrix's last row needs the copy.
        bool overrun = (long)units * 64 > rowBytes;

        for (int r0 = start; r0 < end; r0 += BlockRows)
        {
            int count = Math.Min(BlockRows, end - r0);
            for (int k = 0; k < count; k++)
            {
                int r = r0 + k;
                float* rowScales = sf + (nint)k * scaleStride;
                corrections[k] = FusedInt8Dot.ScaleRow(a.Scales + (nint)r * gpr, a.Zeros == null ? null : a.Zeros + (nint)r * gpr,
                    symmetricZero, 0, rowScales, a.GroupSums, gpr);
                if (gpr == 1) new Span<float>(rowScales, groups).Fill(rowScales[0]);
            }
            byte* w = a.Packed + (nint)r0 * rowBytes;
            int direct = overrun && r0 + count == a.Out ? count - 1 : count;
            if (direct > 0) kernel(w, a.Q, sf, lanes, groups / 2, direct);
            if (direct < count)
            {
                new Span<byte>(copy, units * 64).Clear();
                Buffer.MemoryCopy(w + (nint)direct * rowBytes, copy, (long)units * 64, rowBytes);
                kernel(copy, a.Q, sf + (nint)direct * scaleStride, lanes + 32 * direct, groups / 2, 1);
            }
            for (int k = 0; k < count; k++)
            {
                float dot = Vector512.Sum(Vector512.Load(lanes + 32 * k) + Vector512.Load(lanes + 32 * k + 16));
                a.Y[r0 + k] = rowScale * (dot - corrections[k]);
            }
        }
    }
}
