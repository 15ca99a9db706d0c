using Condense.Kernels.Jit;

namespace Condense.Tests.Kernels.Jit;

// The small-batch 4-bit kernel's encodings (in X86Assembler.cs), generated as the others: each instruction assembled
// with GNU as 2.40 (`as --64`, Intel syntax) and disassembled with `objdump -d -M intel`; the bytes are objdump's.
public partial class X86AssemblerTests
{
    private static readonly Encoding[] s_gemmEncodings =
    [
        new("vpandd zmm0, zmm1, zmm2", "62 f1 75 48 db c2", a => a.Vpandd(Z(0), Z(1), Z(2))),
        new("vpandd zmm8, zmm17, zmm31", "62 11 75 40 db c7", a => a.Vpandd(Z(8), Z(17), Z(31))),
        new("vpandd zmm25, zmm9, zmm16", "62 21 35 48 db c8", a => a.Vpandd(Z(25), Z(9), Z(16))),
        new("vpsrlw zmm1, zmm0, 4", "62 f1 75 48 71 d0 04", a => a.Vpsrlw(Z(1), Z(0), 4)),
        new("vpsrlw zmm24, zmm7, 4", "62 f1 3d 40 71 d7 04", a => a.Vpsrlw(Z(24), Z(7), 4)),
        new("vpsrlw zmm3, zmm30, 12", "62 91 65 48 71 d6 0c", a => a.Vpsrlw(Z(3), Z(30), 12)),
        new("vpsrlw zmm17, zmm17, 1", "62 b1 75 40 71 d1 01", a => a.Vpsrlw(Z(17), Z(17), 1)),
        new("vpsrlw zmm9, zmm20, 4", "62 b1 35 48 71 d4 04", a => a.Vpsrlw(Z(9), Z(20), 4)),
        new("vpermps zmm2, zmm30, zmm5", "62 f2 0d 40 16 d5", a => a.Vpermps(Z(2), Z(30), Z(5))),
        new("vpermps zmm19, zmm8, zmm29", "62 82 3d 48 16 dd", a => a.Vpermps(Z(19), Z(8), Z(29))),
        new("vpermps zmm11, zmm17, zmm12", "62 52 75 40 16 dc", a => a.Vpermps(Z(11), Z(17), Z(12))),
        new("vpermps zmm4, zmm30, ZMMWORD PTR [r12]", "62 d2 0d 40 16 24 24", a => a.Vpermps(Z(4), Z(30), new Mem(Gpr.R12, 0))),
        new("vpermps zmm4, zmm30, ZMMWORD PTR [r13]", "62 d2 0d 40 16 65 00", a => a.Vpermps(Z(4), Z(30), new Mem(Gpr.R13, 0))),
        new("vpermps zmm7, zmm1, ZMMWORD PTR [rbx+64]", "62 f2 75 48 16 7b 01", a => a.Vpermps(Z(7), Z(1), new Mem(Gpr.Rbx, 64))),
        new("vpermps zmm20, zmm31, ZMMWORD PTR [r15-128]", "62 c2 05 40 16 67 fe", a => a.Vpermps(Z(20), Z(31), new Mem(Gpr.R15, -128))),
        new("vpermps zmm2, zmm3, ZMMWORD PTR [rsp+200]", "62 f2 65 48 16 94 24 c8 00 00 00", a => a.Vpermps(Z(2), Z(3), new Mem(Gpr.Rsp, 200))),
        new("vpermps zmm2, zmm3, DWORD BCST [rsi+8]", "62 f2 65 58 16 56 02", a => a.Vpermps(Z(2), Z(3), new Mem(Gpr.Rsi, 8, Broadcast: true))),
        new("vpermps zmm8, zmm30, ZMMWORD PTR [r14+8192]", "62 52 0d 40 16 86 00 20 00 00", a => a.Vpermps(Z(8), Z(30), new Mem(Gpr.R14, 8192))),
        new("vpdpbusd zmm26, zmm0, ZMMWORD PTR [rdx+64]", "62 62 7d 48 50 52 01", a => a.Vpdpbusd(Z(26), Z(0), new Mem(Gpr.Rdx, 64))),
        new("vpdpbusd zmm9, zmm7, ZMMWORD PTR [rdx+960]", "62 72 45 48 50 4a 0f", a => a.Vpdpbusd(Z(9), Z(7), new Mem(Gpr.Rdx, 960))),
        new("vpdpbusd zmm29, zmm3, ZMMWORD PTR [rdx+8192]", "62 62 65 48 50 aa 00 20 00 00", a => a.Vpdpbusd(Z(29), Z(3), new Mem(Gpr.Rdx, 8192))),
        new("vshufi32x4 zmm0, zmm4, zmm5, 0x88", "62 f3 5d 48 43 c5 88", a => a.Vshufi32x4(Z(0), Z(4), Z(5), 0x88)),
        new("vshufi32x4 zmm1, zmm4, zmm5, 0xdd", "62 f3 5d 48 43 cd dd", a => a.Vshufi32x4(Z(1), Z(4), Z(5), 0xdd)),
        new("vshufi32x4 zmm17, zmm22, zmm9, 0x88", "62 c3 4d 40 43 c9 88", a => a.Vshufi32x4(Z(17), Z(22), Z(9), 0x88)),
        new("vshufi32x4 zmm3, zmm30, zmm31, 0xdd", "62 93 0d 40 43 df dd", a => a.Vshufi32x4(Z(3), Z(30), Z(31), 0xdd)),
        new("vmovdqu32 zmm21, ZMMWORD PTR [r11+64]", "62 c1 7e 48 6f 6b 01", a => a.Vmovdqu32(Z(21), new Mem(Gpr.R11, 64))),
        new("push rbx", "53", a => a.Push(Gpr.Rbx)),
        new("push r12", "41 54", a => a.Push(Gpr.R12)),
        new("push r15", "41 57", a => a.Push(Gpr.R15)),
        new("pop r15", "41 5f", a => a.Pop(Gpr.R15)),
        new("pop rbx", "5b", a => a.Pop(Gpr.Rbx)),
        new("mov r10, rsi", "49 89 f2", a => a.Mov(Gpr.R10, Gpr.Rsi)),
        new("add r10, r9", "4d 01 ca", a => a.Add(Gpr.R10, Gpr.R9)),
        new("add r14, r8", "4d 01 c6", a => a.Add(Gpr.R14, Gpr.R8)),
    ];

    [Fact]
    public void Small_batch_kernel_forms_encode_to_the_bytes_GNU_as_produces()
    {
        var wrong = new List<string>();
        foreach (var e in s_gemmEncodings)
        {
            var a = new X86Assembler();
            e.Emit(a);
            string bytes = string.Join(' ', a.ToArray().Select(b => b.ToString("x2")));
            if (bytes != e.Bytes) wrong.Add($"{e.Assembly}: emitted {bytes}, as gives {e.Bytes}");
        }
        Assert.True(wrong.Count == 0, string.Join('\n', wrong));
    }
}
