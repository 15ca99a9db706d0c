using System.Runtime.InteropServices;

namespace Condense.Kernels.Jit;

/// <summary>
/// Pages of machine code made at run time (Linux x64): mapped read+write, filled, then switched to read+execute, so
/// no page is ever writable and executable at once (W^X). The pages are kept for the life of the process.
/// </summary>
/// <remarks>
/// Only libc's mmap/mprotect/munmap, found with NativeLibrary (<see cref="Libc"/>) (no native library of our own, so NativeAOT and
/// trimming are unaffected). Any failure (no libc, mmap refused by a policy such as SELinux execmem, a non-Linux OS)
/// returns null and the caller keeps its managed kernel: generated code is a speed path, never something the user
/// asked for.
/// </remarks>
internal static unsafe class ExecutableMemory
{
    private const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    private const int MapPrivate = 0x02, MapAnonymous = 0x20; // Linux values

    /// <summary>The code copied into new read+execute pages, or null when this process cannot have them.</summary>
    public static void* TryCreate(ReadOnlySpan<byte> code)
    {
        if (code.IsEmpty || !OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return null;
        var libc = Libc.Instance;
        if (libc is null) return null;
        nuint length = (nuint)((code.Length + 4095) & ~4095);
        void* pages = libc.Mmap(null, length, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (pages == (void*)-1 || pages == null) return null;
        code.CopyTo(new Span<byte>(pages, code.Length));
        if (libc.Mprotect(pages, length, ProtRead | ProtExec) != 0)
        {
            libc.Munmap(pages, length);
            return null;
        }
        return pages;
    }
}
