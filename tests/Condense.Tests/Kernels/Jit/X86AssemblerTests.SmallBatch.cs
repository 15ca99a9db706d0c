using Condense.Kernels.Jit;

namespace Condense.Tests.Kernels.Jit;

// The small-batch own-scale kernels' forms (VnniSmallBatch4.EmitOwnScales, EmitLaneTree), generated as the other
// encoding tables: each line assembled with GNU as 2.40 (`as --64`, Intel syntax), the bytes from `objdump -d -M intel`.
public partial class X86AssemblerTests
{
    private static readonly Encoding[] s_smallBatchEncodings =
    [
        new("vunpcklps zmm0, zmm1, zmm2", "62 f1 74 48 14 c2", a => a.Vunpcklps(Z(0), Z(1), Z(2))),
        new("vunpckhps zmm0, zmm1, zmm2", "62 f1 74 48 15 c2", a => a.Vunpckhps(Z(0), Z(1), Z(2))),
        new("vshufps zmm0, zmm1, zmm2, 0x44", "62 f1 74 48 c6 c2 44", a => a.Vshufps(Z(0), Z(1), Z(2), 0x44)),
        new("vshufps zmm0, zmm1, zmm2, 0xee", "62 f1 74 48 c6 c2 ee", a => a.Vshufps(Z(0), Z(1), Z(2), 0xEE)),
        new("vunpcklps zmm17, zmm25, zmm9", "62 c1 34 40 14 c9", a => a.Vunpcklps(Z(17), Z(25), Z(9))),
        new("vunpckhps zmm31, zmm8, zmm27", "62 01 3c 48 15 fb", a => a.Vunpckhps(Z(31), Z(8), Z(27))),
        new("vshufps zmm9, zmm31, zmm5, 0x44", "62 71 04 40 c6 cd 44", a => a.Vshufps(Z(9), Z(31), Z(5), 0x44)),
        new("vshufps zmm26, zmm16, zmm30, 0xee", "62 01 7c 40 c6 d6 ee", a => a.Vshufps(Z(26), Z(16), Z(30), 0xEE)),
        new("vpermps zmm4, zmm3, zmm2", "62 f2 65 48 16 e2", a => a.Vpermps(Z(4), Z(3), Z(2))),
        new("vpermps zmm20, zmm29, zmm11", "62 c2 15 40 16 e3", a => a.Vpermps(Z(20), Z(29), Z(11))),
        new("vcvtph2ps zmm0, YMMWORD PTR [r9]", "62 d2 7d 48 13 01", a => a.Vcvtph2ps(Z(0), new Mem(Gpr.R9, 0))),
        new("vpmovzxbd zmm1, XMMWORD PTR [r10]", "62 d2 7d 48 31 0a", a => a.Vpmovzxbd(Z(1), new Mem(Gpr.R10, 0))),
        new("vmovups ZMMWORD PTR [r11], zmm0", "62 d1 7c 48 11 03", a => a.Vmovups(new Mem(Gpr.R11, 0), Z(0))),
        new("vfmadd231ps zmm10, zmm2, ZMMWORD PTR [rsi+448]", "62 72 6d 48 b8 56 07", a => a.Vfmadd231ps(Z(10), Z(2), new Mem(Gpr.Rsi, 448))),
        new("vpbroadcastd zmm3, DWORD PTR [rdi+120]", "62 f2 7d 48 58 5f 1e", a => a.Vpbroadcastd(Z(3), new Mem(Gpr.Rdi, 120))),
        new("mov rax, QWORD PTR [rdi+128]", "48 8b 87 80 00 00 00", a => a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 128))),
        new("vmovdqu32 zmm3, ZMMWORD PTR [rax]", "62 f1 7e 48 6f 18", a => a.Vmovdqu32(Z(3), new Mem(Gpr.Rax, 0))),
        new("vshufi32x4 zmm8, zmm10, zmm11, 0x44", "62 53 2d 48 43 c3 44", a => a.Vshufi32x4(Z(8), Z(10), Z(11), 0x44)),
        new("vshufi32x4 zmm9, zmm28, zmm29, 0xdd", "62 13 1d 40 43 cd dd", a => a.Vshufi32x4(Z(9), Z(28), Z(29), 0xDD)),
    ];

    [Fact]
    public void The_small_batch_own_scale_forms_encode_to_the_bytes_GNU_as_produces()
    {
        var wrong = new List<string>();
        foreach (var e in s_smallBatchEncodings)
        {
            var a = new X86Assembler();
            e.Emit(a);
            string bytes = string.Join(' ', a.ToArray().Select(b => b.ToString("x2")));
            if (bytes != e.Bytes) wrong.Add($"{e.Assembly}: emitted {bytes}, as gives {e.Bytes}");
        }
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {s_smallBatchEncodings.Length} encodings differ:\n" + string.Join('\n', wrong.Take(20)));
    }
}
