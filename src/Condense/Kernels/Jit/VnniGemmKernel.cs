using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels.Jit;

/// <summary>
/// What the generated group kernel (<see cref="VnniGemmKernel.Group"/>) reads and writes; one call covers one tile of
/// batch rows against one 64-row panel over a chunk of whole groups. Field offsets are part of the generated code.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VnniArgs
{
    /// <summary>+0: the panel's codes from the chunk's first quad: quad kq, row o, code j at W[256 kq + 4 o + j] (unsigned).</summary>
    public byte* W;

    /// <summary>+8: the tile's activations from the chunk's first quad: X[kq * tile + c] holds inputs 4kq..4kq+3 of batch row c (signed).</summary>
    public int* X;

    /// <summary>+16: accumulators, [c][64]: float32 scaled sums; read, added to, written.</summary>
    public void* Acc;

    /// <summary>+24, group kernel: the scales of the chunk's first group, [g][64].</summary>
    public float* Scales;

    /// <summary>+32, group kernel: the negated zero points of the chunk's first group, [g][64].</summary>
    public int* ZeroNeg;

    /// <summary>+40, group kernel: the int8 activation sums per group and batch row, [g][tile].</summary>
    public int* SumQ;

    /// <summary>+48: groups; at least 1.</summary>
    public long Count;

    /// <summary>+56, group kernel: quads per group; at least 1.</summary>
    public long GroupQuads;

    /// <summary>+64, 4-bit panels (<see cref="VnniGemmKernel.Group"/> with nibbles): 0x0F0F0F0F, the nibble mask.</summary>
    public long NibbleMask;
}

/// <summary>
/// What a generated per-row VNNI micro-kernel (<see cref="VnniGemmKernel.RowPanel"/>) reads and writes: up to
/// <see cref="VnniGemmKernel.RowTile"/> batch rows against one 64-row quad panel over all its inputs. Field offsets are
/// part of the generated code.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct VnniRowArgs
{
    /// <summary>+0: the panel's codes from quad 0: quad kq, row o, code j at W[256 kq + 4 o + j] (unsigned).</summary>
    public byte* W;

    /// <summary>+8: the tile's first batch row of int8 activations in natural order (signed), zero up to a whole quad.</summary>
    public sbyte* X;

    /// <summary>+16: bytes from one batch row of <see cref="X"/> to the next.</summary>
    public long XStride;

    /// <summary>+24: the int32 sums, [c][64] (written, not read: the kernel starts from zero).</summary>
    public int* Acc;

    /// <summary>+32: quads (4 inputs each); at least 1.</summary>
    public long Quads;

    /// <summary>+40, 4-bit panels (<see cref="VnniGemmKernel.RowPanel"/> with nibbles): 0x0F0F0F0F, the nibble mask.</summary>
    public long NibbleMask;
}

/// <summary>
/// AVX-512 VNNI (vpdpbusd) micro-kernels for the 8-bit int8-activation GEMM, emitted as machine code at run time
/// because .NET 10 has no EVEX vpdpbusd intrinsic (only the VEX AVX-VNNI form, which e.g. Zen 4 lacks).
/// </summary>
/// <remarks>
/// <para>Operands: vpdpbusd multiplies unsigned bytes (its first source) by signed bytes (its second: a 32-bit
/// broadcast, from memory or from a register holding one). The weight codes are the unsigned side (0..255, as stored, no offset); the int8
/// activations (-127..127) are the signed side, four consecutive inputs of one batch row broadcast to all 16 lanes.
/// So each lane accumulates sum u q, and the zero point is corrected with the per-group activation sums computed
/// once per call: sum (u - z) q = sum u q - z sum q. int32 arithmetic wraps, so the corrected sum is exact whenever
/// the true sum fits in int32 (|sum| &lt;= 255 x 127 x 65,536 &lt; 2^31 for a row of at most 65,536 inputs), and equals
/// the managed kernel's sum of (u - z) q bit for bit.</para>
/// <para>Row kernel (one group per row, <see cref="RowPanel"/>): 1..6 batch rows x 64 weight rows = up to 24 int32
/// accumulators in zmm4..zmm27, 4 weight vectors in zmm0..zmm3, each batch row's quad broadcast once into zmm28/zmm29
/// (alternating, so one row's broadcast does not wait for the previous row's products to read theirs). One call runs
/// the whole input length: the accumulators never leave the registers, the panel (64 x In bytes, 256 KiB at 4,096
/// inputs) streams from L2 once per tile in line order, and the activations are read in place from the quantized
/// rows (one pointer per batch row), so nothing is repacked per call. Measured on Zen 4 (one core, in-cache data):
/// the loop runs at the register-only vpdpbusd rate (<see cref="Peak"/>, ~220 GMAC/s). The zero-point correction is
/// applied by the caller.</para>
/// <para>Group kernel: up to 6 batch rows x 64 weight rows; per group the 24 int32 accumulators (zmm4..27) start at
/// -z sum q (vpmulld), gain the group's vpdpbusd products (one register broadcast per batch row and quad, zmm28..31
/// rotating), and are added as acc = fma(float(sum), s, acc) into 24 float32 accumulators kept in memory (L1, read and
/// written once per group), in group order: the same operations as the managed Int8Gemm.GroupKernel. Session 10
/// (Zen 5, two vpdpbusd zmm per cycle): the earlier 3-row kernel, with its 12 float32 accumulators in registers and
/// memory-broadcast operands, reached 35-40% of the core's vpdpbusd peak at 128 rows; 6 rows reach 50-65%.</para>
/// <para>Calling convention: System V x64 (Linux), one argument (a <see cref="VnniRowArgs"/>* or <see cref="VnniArgs"/>*
/// in rdi); only caller-saved registers are written (rax, rcx, rdx, rsi, rdi, r8-r11, zmm0-31), and the code ends
/// with vzeroupper. Called through an unmanaged function pointer with the GC transition suppressed: the kernels never
/// block, call nothing, touch no managed object and run for microseconds (a row-kernel call over 4,096 inputs ~7 us,
/// over the largest row, 65,536 inputs, ~0.1 ms).</para>
/// </remarks>
internal static unsafe class VnniGemmKernel
{
    /// <summary>The most batch rows per row-kernel call (kernels for 1..6 rows exist).</summary>
    public const int RowTile = 6;

    /// <summary>Batch rows per group-kernel tile (kernels for 1..6 rows of a tile exist).</summary>
    public const int GroupTile = 6;

    private const int PanelVectors = 4;          // 64 weight rows = 4 x 16 int32 lanes
    private const int QuadBytes = 64 * 4;        // one quad of 64 rows

    private sealed class Code(nint[][] rows, nint[][] groups, nint peak)
    {
        public readonly nint[][] Rows = rows;     // [nibbles][r]: the row kernel for r batch rows (index 0 unused)
        public readonly nint[][] Groups = groups; // [nibbles][r]: the group kernel for r batch rows of a GroupTile-row tile (index 0 unused)
        public readonly nint Peak = peak;
    }

    /// <summary>The value of <see cref="VnniArgs.NibbleMask"/> and <see cref="VnniRowArgs.NibbleMask"/>.</summary>
    public const long NibbleMask = 0x0F0F0F0F;

    private static readonly Lazy<Code?> s_code = new(Build);

    /// <summary>
    /// True when this CPU and OS run AVX-512 VNNI code: CPUID.(EAX=7,ECX=0):ECX[11] (AVX512_VNNI), and the runtime's
    /// AVX-512F/BW/VL support, which also means the OS saves the zmm and opmask state (XCR0) and that no
    /// DOTNET_EnableAVX512F=0 (or DOTNET_EnableHWIntrinsic=0) switched AVX-512 off for this process.
    /// </summary>
    /// <remarks>Read once per process: CPUID is serializing, and in a virtual machine it traps to the hypervisor (tens
    /// of microseconds). Evaluated on every product it cost MiniLM's small projections ~35 us a call.</remarks>
    public static bool CpuSupports => s_cpuSupports;

    private static readonly bool s_cpuSupports =
        X86Base.IsSupported && Avx512F.IsSupported && Avx512BW.IsSupported && Avx512F.VL.IsSupported &&
        Vector512.IsHardwareAccelerated && (X86Base.CpuId(7, 0).Ecx & (1 << 11)) != 0;

    /// <summary>
    /// True when the generated kernels can run here: the CPU supports them, <see cref="KernelOptions.GeneratedCode"/>
    /// is on (CONDENSE_NO_JIT=1 turns it off) and the executable pages were made (built on first use).
    /// </summary>
    public static bool IsAvailable => KernelOptions.GeneratedCode && CpuSupports && s_code.Value is not null;

    /// <summary>
    /// The row kernel for <paramref name="rows"/> (1..<see cref="RowTile"/>) batch rows: int32 sums of codes times
    /// activations over the whole panel, no zero-point correction.
    /// </summary>
    public static void RowPanel(VnniRowArgs* args, int rows, bool nibbles = false) =>
        ((delegate* unmanaged[SuppressGCTransition]<VnniRowArgs*, void>)s_code.Value!.Rows[nibbles ? 1 : 0][rows])(args);

    /// <summary>
    /// The group kernel for the first <paramref name="rows"/> (1..<see cref="GroupTile"/>) batch rows of a tile laid out
    /// for <see cref="GroupTile"/> rows (float32 accumulators in memory).
    /// </summary>
    public static void Group(VnniArgs* args, int rows, bool nibbles = false) =>
        ((delegate* unmanaged[SuppressGCTransition]<VnniArgs*, void>)s_code.Value!.Groups[nibbles ? 1 : 0][rows])(args);

    /// <summary>
    /// Benchmarks: <paramref name="iterations"/> x 24 register-only vpdpbusd (24 independent accumulators, 64 MACs
    /// each), the row kernel's inner loop without its loads: the core's VNNI ceiling.
    /// </summary>
    public static void Peak(long iterations) =>
        ((delegate* unmanaged[SuppressGCTransition]<long, void>)s_code.Value!.Peak)(iterations);

    private static Code? Build()
    {
        if (!CpuSupports) return null;
        var a = new X86Assembler();
        var rows = new int[2][];
        var groups = new int[2][];
        for (int n = 0; n < 2; n++)
        {
            rows[n] = new int[RowTile + 1];
            for (int r = 1; r <= RowTile; r++)
            {
                rows[n][r] = a.Position;
                EmitRowPanelKernel(a, r, nibbles: n == 1);
                Align(a);
            }
            groups[n] = new int[GroupTile + 1];
            for (int r = 1; r <= GroupTile; r++)
            {
                groups[n][r] = a.Position;
                EmitGroupKernel(a, r, GroupTile, nibbles: n == 1);
                Align(a);
            }
        }
        int peak = a.Position;
        EmitPeakLoop(a);
        var pages = (nint)ExecutableMemory.TryCreate(a.ToArray());
        if (pages == 0) return null;
        var rowEntries = new nint[2][];
        var groupEntries = new nint[2][];
        for (int n = 0; n < 2; n++)
        {
            rowEntries[n] = new nint[RowTile + 1];
            for (int r = 1; r <= RowTile; r++) rowEntries[n][r] = pages + rows[n][r];
            groupEntries[n] = new nint[GroupTile + 1];
            for (int r = 1; r <= GroupTile; r++) groupEntries[n][r] = pages + groups[n][r];
        }
        return new Code(rowEntries, groupEntries, pages + peak);
    }

    /// <summary>Pads with ret (never executed) to a 64-byte boundary so each kernel starts on its own cache line.</summary>
    private static void Align(X86Assembler a)
    {
        while (a.Position % 64 != 0) a.Ret();
    }

    private static Zmm Z(int index) => new(index);

    // Batch row c's activation pointer: r8, r9, r10, r11, rax, rdx (caller-saved, like every register written here).
    private static readonly Gpr[] s_rowPointers = [Gpr.R8, Gpr.R9, Gpr.R10, Gpr.R11, Gpr.Rax, Gpr.Rdx];

    /// <summary>
    /// acc = 0; for each quad: load the 4 weight vectors; per batch row c, broadcast its quad and
    /// acc[c][v] += dpbusd(w[v], quad); W += 256, every row pointer += 4. Then the sums are stored to Acc.
    /// </summary>
    internal static void EmitRowPanelKernel(X86Assembler a, int rows, bool nibbles = false)
    {
        if (rows < 1 || rows > RowTile) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"The row kernel takes 1..{RowTile} batch rows.");
        int accumulators = PanelVectors * rows;
        a.MovLoad(Gpr.Rsi, new Mem(Gpr.Rdi, 0));    // W
        a.MovLoad(Gpr.R8, new Mem(Gpr.Rdi, 8));     // row 0
        a.MovLoad(Gpr.Rcx, new Mem(Gpr.Rdi, 16));   // stride
        for (int c = 1; c < rows; c++)
        {
            a.Mov(s_rowPointers[c], s_rowPointers[c - 1]);
            a.Add(s_rowPointers[c], Gpr.Rcx);
        }
        a.MovLoad(Gpr.Rcx, new Mem(Gpr.Rdi, 32));   // quads
        if (nibbles) a.Vpbroadcastd(Z(31), new Mem(Gpr.Rdi, 40)); // the nibble mask (zmm30/31 are free in this kernel)
        for (int i = 0; i < accumulators; i++) a.Vpxord(Z(PanelVectors + i), Z(PanelVectors + i), Z(PanelVectors + i));
        int loop = a.Position;
        EmitWeightLoads(a, nibbles, Z(31));
        for (int c = 0; c < rows; c++)
        {
            var quad = Z(28 + (c & 1));
            a.Vpbroadcastd(quad, new Mem(s_rowPointers[c], 0));
            for (int v = 0; v < PanelVectors; v++) a.Vpdpbusd(Z(PanelVectors + PanelVectors * c + v), Z(v), quad);
        }
        a.AddImm(Gpr.Rsi, nibbles ? QuadBytes / 2 : QuadBytes);
        for (int c = 0; c < rows; c++) a.AddImm(s_rowPointers[c], 4);
        a.Dec(Gpr.Rcx);
        a.JnzBack(loop);
        a.MovLoad(Gpr.Rsi, new Mem(Gpr.Rdi, 24));   // Acc
        for (int i = 0; i < accumulators; i++) a.Vmovdqu32(new Mem(Gpr.Rsi, 64 * i), Z(PanelVectors + i));
        a.Vzeroupper();
        a.Ret();
    }

    /// <summary>
    /// The group kernel for the first <paramref name="rows"/> batch rows of a tile laid out for <paramref name="tile"/>
    /// rows (X advances tile x 4 bytes per quad, SumQ tile x 4 bytes per group). For each group: acc[c][v] = -z[v] *
    /// sumq[c]; per quad 4 weight loads, one register broadcast per batch row and rows x 4 vpdpbusd; then
    /// f[c][v] = fma(float(acc), s[v], f[c][v]) on the float32 accumulators, which stay in memory (L1): with them out
    /// of the registers, 6 batch rows' 24 int32 accumulators fit, and each weight vector loaded feeds 6 vpdpbusd.
    /// </summary>
    internal static void EmitGroupKernel(X86Assembler a, int rows, int tile, bool nibbles = false)
    {
        if (tile < 1 || tile > GroupTile) throw new ArgumentOutOfRangeException(nameof(tile), tile, $"The group kernel's tile is 1..{GroupTile} batch rows.");
        if (rows < 1 || rows > tile) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"The group kernel takes 1..{tile} batch rows.");
        int accumulators = PanelVectors * rows;
        a.MovLoad(Gpr.Rsi, new Mem(Gpr.Rdi, 0));   // W
        a.MovLoad(Gpr.Rdx, new Mem(Gpr.Rdi, 8));   // X
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 16));  // Acc (float32)
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 24));   // Scales
        a.MovLoad(Gpr.R10, new Mem(Gpr.Rdi, 32));  // ZeroNeg
        a.MovLoad(Gpr.R11, new Mem(Gpr.Rdi, 40));  // SumQ
        a.MovLoad(Gpr.Rcx, new Mem(Gpr.Rdi, 48));  // groups
        a.MovLoad(Gpr.R8, new Mem(Gpr.Rdi, 56));   // quads per group
        // spare: registers for broadcasts and temporaries after the accumulators (4, or 3 when zmm31 holds the nibble mask).
        int first = PanelVectors, spare = PanelVectors + accumulators, spares = nibbles ? 31 - spare : 32 - spare;
        var mask = Z(31);
        if (nibbles) a.Vpbroadcastd(mask, new Mem(Gpr.Rdi, 64));

        int groupLoop = a.Position;
        for (int v = 0; v < PanelVectors; v++) a.Vmovdqu32(Z(v), new Mem(Gpr.R10, 64 * v));
        for (int c = 0; c < rows; c++)
        {
            a.Vpbroadcastd(Z(spare + (c % spares)), new Mem(Gpr.R11, 4 * c));
            for (int v = 0; v < PanelVectors; v++) a.Vpmulld(Z(first + PanelVectors * c + v), Z(v), Z(spare + (c % spares)));
        }
        a.Mov(Gpr.Rdi, Gpr.R8);
        int quadLoop = a.Position;
        EmitWeightLoads(a, nibbles, mask);
        for (int c = 0; c < rows; c++)
        {
            var quad = Z(spare + (c % spares));
            a.Vpbroadcastd(quad, new Mem(Gpr.Rdx, 4 * c));
            for (int v = 0; v < PanelVectors; v++) a.Vpdpbusd(Z(first + PanelVectors * c + v), Z(v), quad);
        }
        a.AddImm(Gpr.Rsi, nibbles ? QuadBytes / 2 : QuadBytes);
        a.AddImm(Gpr.Rdx, 4 * tile);
        a.Dec(Gpr.Rdi);
        a.JnzBack(quadLoop);
        for (int v = 0; v < PanelVectors; v++) a.Vmovups(Z(v), new Mem(Gpr.R9, 64 * v));
        for (int c = 0; c < rows; c++)
            for (int v = 0; v < PanelVectors; v++)
            {
                int i = PanelVectors * c + v;
                var f = Z(spare + (i % spares));
                a.Vmovups(f, new Mem(Gpr.Rax, 64 * i));
                a.Vcvtdq2ps(Z(first + i), Z(first + i));
                a.Vfmadd231ps(f, Z(first + i), Z(v));
                a.Vmovups(new Mem(Gpr.Rax, 64 * i), f);
            }
        a.AddImm(Gpr.R9, QuadBytes);
        a.AddImm(Gpr.R10, QuadBytes);
        a.AddImm(Gpr.R11, 4 * tile);
        a.Dec(Gpr.Rcx);
        a.JnzBack(groupLoop);
        a.Vzeroupper();
        a.Ret();
    }

    /// <summary>
    /// One quad's 4 weight vectors into zmm0..3 from [rsi]: 256 bytes, or with <paramref name="nibbles"/> 128 bytes
    /// whose low and high nibbles hold vectors 0 and 1 (bytes 0..63) and 2 and 3 (bytes 64..127), split with a 16-bit
    /// shift and the 0x0F byte mask in <paramref name="mask"/> (<see cref="Condense.Quantization.Int8Gemm.BuildQuadPanels"/>'s 4-bit layout).
    /// </summary>
    private static void EmitWeightLoads(X86Assembler a, bool nibbles, Zmm mask)
    {
        if (!nibbles)
        {
            for (int v = 0; v < PanelVectors; v++) a.Vmovdqu32(Z(v), new Mem(Gpr.Rsi, 64 * v));
            return;
        }
        a.Vmovdqu32(Z(0), new Mem(Gpr.Rsi, 0));
        a.Vmovdqu32(Z(2), new Mem(Gpr.Rsi, 64));
        a.Vpsrlw(Z(1), Z(0), 4);
        a.Vpsrlw(Z(3), Z(2), 4);
        for (int v = 0; v < PanelVectors; v++) a.Vpandd(Z(v), Z(v), mask);
    }

    /// <summary>rdi iterations of 24 register-only vpdpbusd into zmm4..zmm27 (results discarded).</summary>
    private static void EmitPeakLoop(X86Assembler a)
    {
        for (int i = 0; i < 28; i++) a.Vpxord(Z(i), Z(i), Z(i));
        int loop = a.Position;
        for (int c = 0; c < RowTile; c++)
            for (int v = 0; v < PanelVectors; v++)
                a.Vpdpbusd(Z(PanelVectors + PanelVectors * c + v), Z(v), Z(28 + (c & 3)));
        a.Dec(Gpr.Rdi);
        a.JnzBack(loop);
        a.Vzeroupper();
        a.Ret();
    }
}
