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

    /// <summary>vpermps dst, index, src: dst[i] = src[index[i] &amp; 15] (32-bit lanes across the whole register).</summary>
    public void Vpermps(Zmm dst, Zmm index, Zmm src) => EvexRegister(Map0F38, Pp66, 0x16, dst.Index, index.Index, src.Index);

    /// <summary>vpermps dst, index, zmmword [mem] (full 512-bit operand, or {1to16}).</summary>
    public void Vpermps(Zmm dst, Zmm index, Mem src) => EvexMemory(Map0F38, Pp66, 0x16, dst.Index, index.Index, src);
}
