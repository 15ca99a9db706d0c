namespace Condense.Kernels.Jit;

/// <summary>Encodings the small-batch 4-bit kernel (<see cref="VnniSmallBatch4"/>) adds: nibble decoding and lane permutes.</summary>
internal sealed partial class X86Assembler
{
    /// <summary>vpandd dst, a, b (bitwise and of 32-bit lanes; used on bytes: the lane size only matters for masking).</summary>
    public void Vpandd(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map0F, Pp66, 0xDB, dst.Index, a.Index, b.Index);

    /// <summary>vpsrlw dst, src, imm8: each 16-bit lane of src shifted right (logical) by <paramref name="count"/>.</summary>
    public void VpsrlwImm(Zmm dst, Zmm src, byte count)
    {
        // EVEX.512.66.0F.WIG 71 /2 ib: the destination is vvvv, the source r/m, ModRM.reg the /2 extension.
        EvexRegister(Map0F, Pp66, 0x71, 2, dst.Index, src.Index);
        Emit(count);
    }

    private const int Map0F3A = 3;

    /// <summary>
    /// vshufi32x4 dst, a, b, imm8: 128-bit chunks; dst chunks 0 and 1 are a's chunks imm[1:0] and imm[3:2], chunks 2 and
    /// 3 are b's chunks imm[5:4] and imm[7:6].
    /// </summary>
    public void Vshufi32x4(Zmm dst, Zmm a, Zmm b, byte imm)
    {
        EvexRegister(Map0F3A, Pp66, 0x43, dst.Index, a.Index, b.Index);
        Emit(imm);
    }

    /// <summary>vpermps dst, index, src: dst[i] = src[index[i] &amp; 15] (32-bit lanes across the whole register).</summary>
    public void Vpermps(Zmm dst, Zmm index, Zmm src) => EvexRegister(Map0F38, Pp66, 0x16, dst.Index, index.Index, src.Index);

    /// <summary>vpermps dst, index, zmmword [mem] (full 512-bit operand, or {1to16}).</summary>
    public void Vpermps(Zmm dst, Zmm index, Mem src) => EvexMemory(Map0F38, Pp66, 0x16, dst.Index, index.Index, src);
}
