using System.Runtime.InteropServices;
using Condense.Kernels.Jit;

namespace Condense.Tests.Kernels.Jit;

/// <summary>
/// The run-time x86-64 encoder against GNU as: every instruction form the generated kernels use, over low and
/// extended registers (r8-r15, zmm8-zmm31), rsp/r12 bases (SIB), rbp/r13 bases (no mod-00 form), compressed disp8*N,
/// full disp32 and broadcasts; branches; executable pages that run and are never writable.
/// </summary>
public partial class X86AssemblerTests
{
    [Fact]
    public void Every_instruction_form_encodes_to_the_bytes_GNU_as_produces()
    {
        Assert.True(s_encodings.Length > 500);
        var wrong = new List<string>();
        foreach (var e in s_encodings)
        {
            var a = new X86Assembler();
            e.Emit(a);
            string bytes = string.Join(' ', a.ToArray().Select(b => b.ToString("x2")));
            if (bytes != e.Bytes) wrong.Add($"{e.Assembly}: emitted {bytes}, as gives {e.Bytes}");
        }
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {s_encodings.Length} encodings differ:\n" + string.Join('\n', wrong.Take(20)));
    }

    [Fact]
    public void Backward_jnz_uses_rel8_up_to_minus_128_and_rel32_beyond()
    {
        // as: "top: .rept 31; add rax, 1; .endr; jnz top" -> 75 82; with 32 adds -> 0f 85 7a ff ff ff.
        var a = new X86Assembler();
        for (int i = 0; i < 31; i++) a.AddImm(Gpr.Rax, 1);
        a.JnzBack(0);
        Assert.Equal(new byte[] { 0x75, 0x82 }, a.ToArray()[^2..]);

        var b = new X86Assembler();
        for (int i = 0; i < 32; i++) b.AddImm(Gpr.Rax, 1);
        b.JnzBack(0);
        Assert.Equal(new byte[] { 0x0f, 0x85, 0x7a, 0xff, 0xff, 0xff }, b.ToArray()[^6..]);
        Assert.Throws<ArgumentOutOfRangeException>(() => b.JnzBack(b.Position + 1));
    }

    [Fact]
    public void Forms_the_encoder_does_not_have_are_rejected_not_misencoded()
    {
        var a = new X86Assembler();
        Assert.Throws<ArgumentException>(() => a.Vmovdqu32(Z(0), new Mem(Gpr.Rax, 0, Broadcast: true)));
        Assert.Throws<ArgumentException>(() => a.Vmovups(new Mem(Gpr.Rax, 0, Broadcast: true), Z(1)));
        Assert.Throws<ArgumentException>(() => a.MovLoad(Gpr.Rax, new Mem(Gpr.Rsi, 0, Broadcast: true)));
        Assert.Throws<ArgumentException>(() => a.Vpbroadcastd(Z(2), new Mem(Gpr.Rdx, 0, Broadcast: true)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Zmm(32));
        Assert.Equal(0, a.Position);
    }

    [Fact]
    public unsafe void Generated_code_runs_from_pages_that_are_read_execute_only()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        var a = new X86Assembler();
        a.Mov(Gpr.Rax, Gpr.Rdi);   // return the first argument ...
        a.AddImm(Gpr.Rax, 1000);   // ... plus 1000
        a.Add(Gpr.Rax, Gpr.Rsi);   // ... plus the second
        a.Ret();
        void* code = ExecutableMemory.TryCreate(a.ToArray());
        Assert.True(code != null, "mmap/mprotect failed on Linux x64");
        long result = ((delegate* unmanaged<long, long, long>)code)(42, -7);
        Assert.Equal(42 + 1000 - 7, result);

        // W^X: the page is mapped r-x (not writable) once the code is in.
        ulong address = (ulong)code;
        string? perms = null;
        foreach (string line in File.ReadLines("/proc/self/maps"))
        {
            int dash = line.IndexOf('-'), space = line.IndexOf(' ');
            ulong start = Convert.ToUInt64(line[..dash], 16), end = Convert.ToUInt64(line[(dash + 1)..space], 16);
            if (address >= start && address < end) { perms = line.Substring(space + 1, 4); break; }
        }
        Assert.Equal("r-xp", perms);
    }

    [Fact]
    public void An_empty_program_gets_no_pages()
    {
        unsafe { Assert.True(ExecutableMemory.TryCreate(ReadOnlySpan<byte>.Empty) == null); }
    }
}
