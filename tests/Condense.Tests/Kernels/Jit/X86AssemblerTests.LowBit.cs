using Condense.Kernels.Jit;

namespace Condense.Tests.Kernels.Jit;

// The 2- and 3-bit batch-1 kernel's encodings (VnniGemvLowBit, in X86Assembler.cs), generated as the others: each
// instruction assembled with GNU as 2.40 (`as --64`, Intel syntax) and disassembled with `objdump -d -M intel`; the
// bytes are objdump's. vpmultishiftqb and vgf2p8affineqb are EVEX.W1 (the only W1 forms the encoder emits).
public partial class X86AssemblerTests
{
    private static readonly Encoding[] s_lowBitEncodings =
    [
        new("vpermb zmm16, zmm28, ZMMWORD PTR [rdi]", "62 e2 1d 40 8d 07", a => a.Vpermb(Z(16), Z(28), new Mem(Gpr.Rdi, 0))),
        new("vpermb zmm16, zmm28, ZMMWORD PTR [rdi+48]", "62 e2 1d 40 8d 87 30 00 00 00", a => a.Vpermb(Z(16), Z(28), new Mem(Gpr.Rdi, 48))),
        new("vpermb zmm20, zmm28, ZMMWORD PTR [rdi+144]", "62 e2 1d 40 8d a7 90 00 00 00", a => a.Vpermb(Z(20), Z(28), new Mem(Gpr.Rdi, 144))),
        new("vpermb zmm3, zmm9, ZMMWORD PTR [rdi+128]", "62 f2 35 48 8d 5f 02", a => a.Vpermb(Z(3), Z(9), new Mem(Gpr.Rdi, 128))),
        new("vpermb zmm20, zmm28, ZMMWORD PTR [r13+144]", "62 c2 1d 40 8d a5 90 00 00 00", a => a.Vpermb(Z(20), Z(28), new Mem(Gpr.R13, 144))),
        new("vpermb zmm0, zmm1, ZMMWORD PTR [rsp+64]", "62 f2 75 48 8d 44 24 01", a => a.Vpermb(Z(0), Z(1), new Mem(Gpr.Rsp, 64))),
        new("vpermb zmm31, zmm17, ZMMWORD PTR [r12-8192]", "62 42 75 40 8d 7c 24 80", a => a.Vpermb(Z(31), Z(17), new Mem(Gpr.R12, -8192))),
        new("vpmultishiftqb zmm16, zmm29, zmm16", "62 a2 95 40 83 c0", a => a.Vpmultishiftqb(Z(16), Z(29), Z(16))),
        new("vpmultishiftqb zmm1, zmm2, zmm3", "62 f2 ed 48 83 cb", a => a.Vpmultishiftqb(Z(1), Z(2), Z(3))),
        new("vpmultishiftqb zmm9, zmm17, zmm30", "62 12 f5 40 83 ce", a => a.Vpmultishiftqb(Z(9), Z(17), Z(30))),
        new("vpmultishiftqb zmm24, zmm8, zmm7", "62 62 bd 48 83 c7", a => a.Vpmultishiftqb(Z(24), Z(8), Z(7))),
        new("vgf2p8affineqb zmm17, zmm16, zmm28, 0", "62 83 fd 40 ce cc 00", a => a.Vgf2p8affineqb(Z(17), Z(16), Z(28), 0)),
        new("vgf2p8affineqb zmm1, zmm2, zmm3, 0", "62 f3 ed 48 ce cb 00", a => a.Vgf2p8affineqb(Z(1), Z(2), Z(3), 0)),
        new("vgf2p8affineqb zmm23, zmm8, zmm31, 5", "62 83 bd 48 ce ff 05", a => a.Vgf2p8affineqb(Z(23), Z(8), Z(31), 5)),
        new("vgf2p8affineqb zmm9, zmm20, zmm12, 0", "62 53 dd 40 ce cc 00", a => a.Vgf2p8affineqb(Z(9), Z(20), Z(12), 0)),
        new("vgf2p8affineqb zmm0, zmm31, zmm16, 255", "62 b3 85 40 ce c0 ff", a => a.Vgf2p8affineqb(Z(0), Z(31), Z(16), 255)),
        new("vpdpbusd zmm4, zmm16, ZMMWORD PTR [rsi+192]", "62 f2 7d 40 50 66 03", a => a.Vpdpbusd(Z(4), Z(16), new Mem(Gpr.Rsi, 192))),
        new("vpdpbusd zmm7, zmm23, ZMMWORD PTR [rsi+960]", "62 f2 45 40 50 7e 0f", a => a.Vpdpbusd(Z(7), Z(23), new Mem(Gpr.Rsi, 960))),
        new("prefetcht0 BYTE PTR [rdi+6192]", "0f 18 8f 30 18 00 00", a => a.Prefetcht0(new Mem(Gpr.Rdi, 6192))),
    ];

    [Fact]
    public void Low_bit_gemv_forms_encode_to_the_bytes_GNU_as_produces()
    {
        var wrong = new List<string>();
        foreach (var e in s_lowBitEncodings)
        {
            var a = new X86Assembler();
            e.Emit(a);
            string bytes = string.Join(' ', a.ToArray().Select(b => b.ToString("x2")));
            if (bytes != e.Bytes) wrong.Add($"{e.Assembly}: emitted {bytes}, as gives {e.Bytes}");
        }
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
        Assert.Throws<ArgumentException>(() => new X86Assembler().Vpermb(Z(0), Z(1), new Mem(Gpr.Rdi, 0, Broadcast: true)));
    }
}
