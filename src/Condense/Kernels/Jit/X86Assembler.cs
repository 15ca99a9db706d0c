namespace Condense.Kernels.Jit;

/// <summary>x86-64 general-purpose registers, numbered as the encoding numbers them.</summary>
internal enum Gpr : byte
{
    Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15,
}

/// <summary>An AVX-512 register zmm0..zmm31.</summary>
internal readonly record struct Zmm
{
    public Zmm(int index)
    {
        if ((uint)index > 31) throw new ArgumentOutOfRangeException(nameof(index), index, "zmm registers are numbered 0..31.");
        Index = index;
    }

    public int Index { get; }

    public override string ToString() => "zmm" + Index;
}

/// <summary>An AVX-512 opmask register k1..k7 (k0 means "no mask" in an EVEX prefix, so it is not one here).</summary>
internal readonly record struct KReg
{
    public KReg(int index)
    {
        if (index is < 1 or > 7) throw new ArgumentOutOfRangeException(nameof(index), index, "Opmask registers k1..k7.");
        Index = index;
    }

    public int Index { get; }

    public override string ToString() => "k" + Index;
}

/// <summary>
/// A memory operand [base + displacement]; <see cref="Broadcast"/> makes it an AVX-512 m32bcst operand (one 32-bit
/// element repeated in all 16 lanes, written {1to16}).
/// </summary>
internal readonly record struct Mem(Gpr Base, int Displacement, bool Broadcast = false)
{
    /// <summary>The same address as a 32-bit broadcast operand.</summary>
    public Mem ToBroadcast() => this with { Broadcast = true };
}

/// <summary>
/// A minimal x86-64 encoder for the instructions the generated integer kernels need: EVEX-encoded 512-bit loads,
/// stores and integer/float arithmetic (vpdpbusd, vpmulld, vpaddd, vpxord, vcvtdq2ps, vfmadd231ps), and the scalar
/// moves, adds and loop branches around them. Every encoding is checked against GNU as in X86AssemblerTests.
/// </summary>
/// <remarks>
/// <para>Only what the kernels use: no index registers, zero-masking on two loads only, no rounding control, backward branches only.
/// Anything else is rejected rather than encoded wrongly.</para>
/// <para>EVEX layout (Intel SDM vol. 2, 2.7): 62, P0 = [R X B R' 0 m m m] with R, X, B, R' stored inverted,
/// P1 = [W vvvv 1 pp] with vvvv inverted, P2 = [z L'L b V' aaa] with V' inverted. Memory displacements use the
/// compressed disp8*N form when they are a multiple of N (N = 64 for a full 512-bit operand, 4 for a 32-bit element
/// or broadcast) within -128..127 steps, as the assembler does.</para>
/// </remarks>
internal sealed class X86Assembler
{
    private readonly List<byte> _code = new();

    /// <summary>Bytes emitted so far.</summary>
    public int Position => _code.Count;

    /// <summary>The code as a new array.</summary>
    public byte[] ToArray() => _code.ToArray();

    // Opcode maps and SIMD prefixes of the EVEX instructions.
    private const int Map0F = 1, Map0F38 = 2, Map0F3A = 3;
    private const int PpNone = 0, Pp66 = 1, PpF3 = 2;

    // ---- scalar ----

    /// <summary>mov dst, qword [mem].</summary>
    public void MovLoad(Gpr dst, Mem mem)
    {
        RequireScalar(mem);
        Rex(w: true, reg: (int)dst, rmBase: (int)mem.Base);
        Emit(0x8B);
        ModRmMemory((int)dst, mem, 1);
    }

    /// <summary>mov dst, src (64-bit).</summary>
    public void Mov(Gpr dst, Gpr src)
    {
        Rex(w: true, reg: (int)src, rmBase: (int)dst);
        Emit(0x89);
        Emit(0xC0 | ((int)src & 7) << 3 | ((int)dst & 7));
    }

    /// <summary>add dst, imm (64-bit, sign-extended immediate).</summary>
    public void AddImm(Gpr dst, int imm) => ArithImm(0, dst, imm);

    /// <summary>sub dst, imm (64-bit, sign-extended immediate).</summary>
    public void SubImm(Gpr dst, int imm) => ArithImm(5, dst, imm);

    /// <summary>add dst, src (64-bit).</summary>
    public void Add(Gpr dst, Gpr src)
    {
        Rex(w: true, reg: (int)src, rmBase: (int)dst);
        Emit(0x01);
        Emit(0xC0 | ((int)src & 7) << 3 | ((int)dst & 7));
    }

    /// <summary>prefetcht0 [mem]: requests the line into L1 ahead of its loads (no fault on any address).</summary>
    public void Prefetcht0(Mem mem) => Prefetch(hint: 1, mem);

    /// <summary>The prefetch group 0F 18 /hint [mem] (/0 nta, /1 t0, /2 t1, /3 t2; no fault on any address).</summary>
    private void Prefetch(int hint, Mem mem)
    {
        RequireScalar(mem);
        Rex(w: false, reg: 0, rmBase: (int)mem.Base);
        Emit(0x0F);
        Emit(0x18);
        ModRmMemory(hint, mem, 1);
    }

    /// <summary>dec reg (64-bit).</summary>
    public void Dec(Gpr reg)
    {
        Rex(w: true, reg: 0, rmBase: (int)reg);
        Emit(0xFF);
        Emit(0xC0 | 1 << 3 | ((int)reg & 7));
    }

    /// <summary>mov dst32, imm32 (zero-extends into the 64-bit register): loop counts known when the code is made.</summary>
    public void MovImm32(Gpr dst, int imm)
    {
        if ((int)dst >= 8) Emit(0x41);
        Emit(0xB8 + ((int)dst & 7));
        Emit32(imm);
    }

    /// <summary>push reg.</summary>
    public void Push(Gpr reg)
    {
        if ((int)reg >= 8) Emit(0x41);
        Emit(0x50 + ((int)reg & 7));
    }

    /// <summary>pop reg.</summary>
    public void Pop(Gpr reg)
    {
        if ((int)reg >= 8) Emit(0x41);
        Emit(0x58 + ((int)reg & 7));
    }

    /// <summary>jnz to an earlier <paramref name="target"/> (a <see cref="Position"/>): rel8 when it reaches, else rel32.</summary>
    public void JnzBack(int target)
    {
        if (target > Position) throw new ArgumentOutOfRangeException(nameof(target), target, "Only backward branches (loops) are supported.");
        int rel8 = target - (Position + 2);
        if (rel8 >= -128)
        {
            Emit(0x75);
            Emit((byte)(sbyte)rel8);
            return;
        }
        int rel32 = target - (Position + 6);
        Emit(0x0F);
        Emit(0x85);
        Emit32(rel32);
    }

    /// <summary>ret.</summary>
    public void Ret() => Emit(0xC3);

    /// <summary>vzeroupper: leaves no dirty upper vector state for SSE code after the kernel returns.</summary>
    public void Vzeroupper()
    {
        Emit(0xC5);
        Emit(0xF8);
        Emit(0x77);
    }

    // ---- EVEX, 512 bits ----

    /// <summary>vmovdqu32 dst, zmmword [mem] (unaligned integer load).</summary>
    public void Vmovdqu32(Zmm dst, Mem mem) => EvexMemory(Map0F, PpF3, 0x6F, dst.Index, 0, RequireFull(mem));

    /// <summary>vmovdqu32 zmmword [mem], src (unaligned integer store).</summary>
    public void Vmovdqu32(Mem mem, Zmm src) => EvexMemory(Map0F, PpF3, 0x7F, src.Index, 0, RequireFull(mem));

    /// <summary>vmovups dst, zmmword [mem] (unaligned float load).</summary>
    public void Vmovups(Zmm dst, Mem mem) => EvexMemory(Map0F, PpNone, 0x10, dst.Index, 0, RequireFull(mem));

    /// <summary>vmovups zmmword [mem], src (unaligned float store).</summary>
    public void Vmovups(Mem mem, Zmm src) => EvexMemory(Map0F, PpNone, 0x11, src.Index, 0, RequireFull(mem));

    /// <summary>vpbroadcastd dst, dword [mem].</summary>
    public void Vpbroadcastd(Zmm dst, Mem mem)
    {
        if (mem.Broadcast) throw new ArgumentException("vpbroadcastd takes a plain 32-bit memory operand.", nameof(mem));
        EvexMemory(Map0F38, Pp66, 0x58, dst.Index, 0, mem, elementBytes: 4);
    }

    /// <summary>vpxord dst, a, b.</summary>
    public void Vpxord(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, Pp66, 0xEF, dst.Index, a.Index, b.Index);

    /// <summary>vpaddd dst, a, b.</summary>
    public void Vpaddd(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, Pp66, 0xFE, dst.Index, a.Index, b.Index);

    /// <summary>vpaddd dst, a, [mem] (full or {1to16}).</summary>
    public void Vpaddd(Zmm dst, Zmm a, Mem b) => EvexMemory(Map0F, Pp66, 0xFE, dst.Index, a.Index, b);

    /// <summary>
    /// vpdpbusd acc, u, s: each int32 lane of acc gains the sum of the four products of u's unsigned bytes and s's
    /// signed bytes in that lane (no saturation: int32 wraps).
    /// </summary>
    public void Vpdpbusd(Zmm acc, Zmm u, Zmm s) => EvexRegister(Map0F38, Pp66, 0x50, acc.Index, u.Index, s.Index);

    /// <summary>vpdpbusd acc, u, [mem] (full or {1to16}): the signed bytes come from memory.</summary>
    public void Vpdpbusd(Zmm acc, Zmm u, Mem s) => EvexMemory(Map0F38, Pp66, 0x50, acc.Index, u.Index, s);

    /// <summary>vpmulld dst, a, b (low 32 bits of the signed products).</summary>
    public void Vpmulld(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F38, Pp66, 0x40, dst.Index, a.Index, b.Index);

    /// <summary>vpmulld dst, a, [mem] (full or {1to16}).</summary>
    public void Vpmulld(Zmm dst, Zmm a, Mem b) => EvexMemory(Map0F38, Pp66, 0x40, dst.Index, a.Index, b);

    /// <summary>vpandd dst, a, b (bitwise and).</summary>
    public void Vpandd(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, Pp66, 0xDB, dst.Index, a.Index, b.Index);

    /// <summary>
    /// vpsrlw dst, src, imm8: each 16-bit lane shifted right logically (EVEX 71 /2: ModRM.reg is the opcode
    /// extension, vvvv names the destination).
    /// </summary>
    public void Vpsrlw(Zmm dst, Zmm src, byte imm)
    {
        EvexRegister(Map0F, Pp66, 0x71, 2, dst.Index, src.Index);
        Emit(imm);
    }

    /// <summary>vpermps dst, indices, src: lane k of dst = src's lane indices[k] mod 16 (across the whole register).</summary>
    public void Vpermps(Zmm dst, Zmm indices, Zmm src) => EvexRegister(Map0F38, Pp66, 0x16, dst.Index, indices.Index, src.Index);

    /// <summary>vpermps dst, indices, [mem]: lane k of dst = the 16-float table at mem (full, or {1to16}), element indices[k] mod 16.</summary>
    public void Vpermps(Zmm dst, Zmm indices, Mem table) => EvexMemory(Map0F38, Pp66, 0x16, dst.Index, indices.Index, table);

    /// <summary>
    /// vshufi32x4 dst, a, b, imm8: 128-bit chunks; dst chunks 0 and 1 are a's chunks imm[1:0] and imm[3:2], chunks 2 and
    /// 3 are b's chunks imm[5:4] and imm[7:6].
    /// </summary>
    public void Vshufi32x4(Zmm dst, Zmm a, Zmm b, byte imm)
    {
        EvexRegister(Map0F3A, Pp66, 0x43, dst.Index, a.Index, b.Index);
        Emit(imm);
    }

    /// <summary>vmulps dst, a, b.</summary>
    public void Vmulps(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, PpNone, 0x59, dst.Index, a.Index, b.Index);

    /// <summary>vmulps dst, a, [mem] (full or {1to16}).</summary>
    public void Vmulps(Zmm dst, Zmm a, Mem b) => EvexMemory(Map0F, PpNone, 0x59, dst.Index, a.Index, b);

    /// <summary>vaddps dst, a, b.</summary>
    public void Vaddps(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, PpNone, 0x58, dst.Index, a.Index, b.Index);

    /// <summary>vcvtdq2ps dst, src (int32 to float32, round to nearest even).</summary>
    public void Vcvtdq2ps(Zmm dst, Zmm src) => EvexRegister(Map0F, PpNone, 0x5B, dst.Index, 0, src.Index);

    /// <summary>vfmadd231ps acc, a, b: acc = a * b + acc, rounded once.</summary>
    public void Vfmadd231ps(Zmm acc, Zmm a, Zmm b) => EvexRegister(Map0F38, Pp66, 0xB8, acc.Index, a.Index, b.Index);

    /// <summary>vfmadd231ps acc, a, [mem] (full or {1to16}).</summary>
    public void Vfmadd231ps(Zmm acc, Zmm a, Mem b) => EvexMemory(Map0F38, Pp66, 0xB8, acc.Index, a.Index, b);

    // ---- encoding ----

    private static Mem RequireFull(Mem mem) =>
        mem.Broadcast ? throw new ArgumentException("Loads and stores take a full 512-bit operand, not a broadcast.", nameof(mem)) : mem;

    private static void RequireScalar(Mem mem)
    {
        if (mem.Broadcast) throw new ArgumentException("Scalar instructions have no broadcast operand.", nameof(mem));
    }

    private void ArithImm(int extension, Gpr dst, int imm)
    {
        Rex(w: true, reg: 0, rmBase: (int)dst);
        bool short8 = imm is >= -128 and <= 127;
        Emit(short8 ? 0x83 : 0x81);
        Emit(0xC0 | extension << 3 | ((int)dst & 7));
        if (short8) Emit((byte)(sbyte)imm);
        else Emit32(imm);
    }

    /// <summary>REX prefix (always emitted with W; without W only when an extended register needs it).</summary>
    private void Rex(bool w, int reg, int rmBase)
    {
        int rex = 0x40 | (w ? 8 : 0) | (reg >> 3 & 1) << 2 | (rmBase >> 3 & 1);
        if (rex != 0x40) Emit(rex);
    }

    private void EvexRegister(int map, int pp, int opcode, int reg, int vvvv, int rm)
    {
        EvexPrefix(map, pp, reg, vvvv, bExtension: rm >> 3 & 1, xExtension: rm >> 4 & 1, broadcast: false);
        Emit(opcode);
        Emit(0xC0 | (reg & 7) << 3 | (rm & 7));
    }

    /// <param name="elementBytes">N of disp8*N when the operand is not a full vector (scalar element loads); 0 = 64, or 4 when broadcast.</param>
    /// <param name="zeroMask">k1..k7: lanes whose mask bit is clear are zeroed ({k}{z}) and their memory is not read; 0: no mask.</param>
    private void EvexMemory(int map, int pp, int opcode, int reg, int vvvv, Mem mem, int elementBytes = 0, int zeroMask = 0)
    {
        int b = (int)mem.Base;
        EvexPrefix(map, pp, reg, vvvv, bExtension: b >> 3 & 1, xExtension: 0, broadcast: mem.Broadcast, zeroMask: zeroMask);
        Emit(opcode);
        ModRmMemory(reg, mem, elementBytes != 0 ? elementBytes : mem.Broadcast ? 4 : 64);
    }

    /// <param name="bExtension">bit 3 of the r/m register or base; <paramref name="xExtension"/>: bit 4 of an r/m vector register.</param>
    private void EvexPrefix(int map, int pp, int reg, int vvvv, int bExtension, int xExtension, bool broadcast, int zeroMask = 0)
    {
        Emit(0x62);
        int p0 = (~reg >> 3 & 1) << 7 | (~xExtension & 1) << 6 | (~bExtension & 1) << 5 | (~reg >> 4 & 1) << 4 | map;
        int p1 = 0 << 7 | (~vvvv & 15) << 3 | 1 << 2 | pp; // W0 for every instruction here
        // z (zeroing) with a mask, L'L = 512, aaa = the mask (k0: none).
        int p2 = (zeroMask != 0 ? 1 : 0) << 7 | 0b10 << 5 | (broadcast ? 1 : 0) << 4 | (~vvvv >> 4 & 1) << 3 | zeroMask;
        Emit(p0);
        Emit(p1);
        Emit(p2);
    }

    /// <summary>ModRM (+ SIB for rsp/r12 bases) and displacement of [base + disp]; <paramref name="scale"/> is disp8's N (1 for legacy encodings).</summary>
    private void ModRmMemory(int reg, Mem mem, int scale)
    {
        int b = (int)mem.Base & 7, disp = mem.Displacement;
        bool needsSib = b == 4;                // rsp, r12: rm = 100 means "SIB follows"
        bool noZeroForm = b == 5;              // rbp, r13: mod 00 rm 101 means RIP-relative, so disp8 0 instead
        int mod;
        if (disp == 0 && !noZeroForm) mod = 0;
        else if (disp % scale == 0 && disp / scale is >= -128 and <= 127) mod = 1;
        else mod = 2;
        Emit(mod << 6 | (reg & 7) << 3 | b);
        if (needsSib) Emit(0x24);              // scale 1, no index, base = b
        if (mod == 1) Emit((byte)(sbyte)(disp / scale));
        else if (mod == 2) Emit32(disp);
    }

    private void Emit(int value) => _code.Add((byte)value);

    private void Emit32(int value)
    {
        for (int i = 0; i < 4; i++) _code.Add((byte)(value >> (8 * i)));
    }

    // --- VnniSmallBatch4 (small-batch 4-bit kernels): encodings added for it ---

    /// <summary>prefetcht1 [mem]: requests the line into L2 (not L1) ahead of its loads (no fault on any address).</summary>
    public void Prefetcht1(Mem mem) => Prefetch(hint: 2, mem);

    // --- VnniGemvLowBit (2- and 3-bit batch-1 kernel): encodings added for it ---

    /// <summary>vpermb dst, indices, [mem]: byte k of dst = byte indices[k] mod 64 of the 64 bytes at mem (AVX512_VBMI).</summary>
    public void Vpermb(Zmm dst, Zmm indices, Mem table) => EvexMemory(Map0F38, Pp66, 0x8D, dst.Index, indices.Index, RequireFull(table));

    /// <summary>
    /// vpmultishiftqb dst, control, src: byte k of each qword of dst = the 8 bits of src's same qword starting at bit
    /// (control byte k mod 64), wrapping around the qword (AVX512_VBMI; EVEX.W1).
    /// </summary>
    public void Vpmultishiftqb(Zmm dst, Zmm control, Zmm src) => WithW1(() => EvexRegister(Map0F38, Pp66, 0x83, dst.Index, control.Index, src.Index));

    /// <summary>
    /// vgf2p8affineqb dst, src, matrix, imm8: each byte of src times the 8x8 bit matrix in the same qword of matrix
    /// over GF(2), xor imm8 (GFNI; EVEX.W1): with a matrix that selects bits, a shift and a mask in one instruction.
    /// </summary>
    public void Vgf2p8affineqb(Zmm dst, Zmm src, Zmm matrix, byte imm)
    {
        WithW1(() => EvexRegister(Map0F3A, Pp66, 0xCE, dst.Index, src.Index, matrix.Index));
        Emit(imm);
    }

    /// <summary>Emits one EVEX instruction with W = 1 (bit 7 of P1, the prefix's third byte); the shared prefix writes W0.</summary>
    private void WithW1(Action emit)
    {
        int start = _code.Count;
        emit();
        _code[start + 2] |= 0x80;
    }

    // --- VnniGemv (8-bit batch-1 kernel on rows that do not start on a cache line): encoding added for it ---

    /// <summary>
    /// valignd dst, high, low, imm8: the 32 dwords low:high (low in dwords 0..15) shifted right by imm8 dwords, the
    /// lower 16 kept: dwords imm8..15 of low, then dwords 0..imm8 - 1 of high (AVX512F).
    /// </summary>
    public void Valignd(Zmm dst, Zmm high, Zmm low, byte imm)
    {
        EvexRegister(Map0F3A, Pp66, 0x03, dst.Index, high.Index, low.Index);
        Emit(imm);
    }

    // --- VnniGemv (8-bit batch-1 kernel converting its own float16 scales, session 12): encoding added for it ---

    /// <summary>
    /// vcvtph2ps dst, ymmword [mem]: 16 float16 values at mem to float32, exactly (AVX512F; a half-vector memory
    /// operand, so disp8 counts 32-byte steps).
    /// </summary>
    public void Vcvtph2ps(Zmm dst, Mem mem) => EvexMemory(Map0F38, Pp66, 0x13, dst.Index, 0, RequireFull(mem), elementBytes: 32);

    // --- VnniGemv (own-scale kernels for rows ending in a partial 16-group chunk, session 17): encodings added for it ---

    /// <summary>vcvtph2ps dst{k}{z}, ymmword [mem]: as above, lanes whose bit in <paramref name="k"/> is clear zero (and not read: no fault past an array's end).</summary>
    public void Vcvtph2ps(Zmm dst, Mem mem, KReg k) => EvexMemory(Map0F38, Pp66, 0x13, dst.Index, 0, RequireFull(mem), elementBytes: 32, zeroMask: k.Index);

    /// <summary>vpmovzxbd dst{k}{z}, xmmword [mem]: as <see cref="Vpmovzxbd(Zmm, Mem)"/>, lanes whose bit in <paramref name="k"/> is clear zero (and not read).</summary>
    public void Vpmovzxbd(Zmm dst, Mem mem, KReg k) => EvexMemory(Map0F38, Pp66, 0x31, dst.Index, 0, RequireFull(mem), elementBytes: 16, zeroMask: k.Index);

    /// <summary>kmovw k, r32 (VEX.L0.0F.W0 92 /r; the 2-byte VEX form when the register is eax..edi, as GNU as picks).</summary>
    public void Kmovw(KReg k, Gpr src)
    {
        int r = (int)src;
        if (r < 8)
        {
            Emit(0xC5);
            Emit(0xF8);          // R (inverted) = 1, vvvv = 1111, L = 0, pp = none
        }
        else
        {
            Emit(0xC4);
            Emit(0xC1);          // R, X inverted = 1, B inverted = 0 (r8..r15), map 0F
            Emit(0x78);          // W0, vvvv = 1111, L = 0, pp = none
        }
        Emit(0x92);
        Emit(0xC0 | k.Index << 3 | (r & 7));
    }

    // --- VnniGemv (4-bit batch-1 kernel converting its own scales and zero points, session 13): encoding added for it ---

    /// <summary>
    /// vpmovzxbd dst, xmmword [mem]: 16 bytes at mem zero-extended to 16 dwords (AVX512F; a quarter-vector memory
    /// operand, so disp8 counts 16-byte steps).
    /// </summary>
    public void Vpmovzxbd(Zmm dst, Mem mem) => EvexMemory(Map0F38, Pp66, 0x31, dst.Index, 0, RequireFull(mem), elementBytes: 16);

    // --- VnniGemv (streaming batch-1 kernels' prefetch hint) and VnniSmallBatch4 (own-scale kernels adding their 16
    // lanes), session 14: encodings added for them ---

    /// <summary>prefetcht2 [mem]: requests the line toward the outer caches (0F 18 /3; no fault on any address).</summary>
    public void Prefetcht2(Mem mem) => Prefetch(hint: 3, mem);

    /// <summary>vunpcklps dst, a, b: per 128-bit chunk [a0, b0, a1, b1] (AVX512F).</summary>
    public void Vunpcklps(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, PpNone, 0x14, dst.Index, a.Index, b.Index);

    /// <summary>vunpckhps dst, a, b: per 128-bit chunk [a2, b2, a3, b3] (AVX512F).</summary>
    public void Vunpckhps(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, PpNone, 0x15, dst.Index, a.Index, b.Index);

    /// <summary>vshufps dst, a, b, imm8: per 128-bit chunk [a[imm 1:0], a[imm 3:2], b[imm 5:4], b[imm 7:6]] (AVX512F).</summary>
    public void Vshufps(Zmm dst, Zmm a, Zmm b, byte imm)
    {
        EvexRegister(Map0F, PpNone, 0xC6, dst.Index, a.Index, b.Index);
        Emit(imm);
    }

    /// <summary>prefetchnta [mem]: requests the line with a non-temporal hint (0F 18 /0; no fault on any address).</summary>
    public void Prefetchnta(Mem mem) => Prefetch(hint: 0, mem);
}
