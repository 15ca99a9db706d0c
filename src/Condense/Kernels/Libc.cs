using System.Runtime.InteropServices;

namespace Condense.Kernels;

/// <summary>
/// The few libc entry points the kernels use (executable pages for generated code, huge-page advice for large
/// weights), looked up by name: "libc.so.6" (glibc) first, then "libc" (the runtime's name probing: musl's libc.so).
/// A [DllImport("libc")] would depend on how each runtime (CoreCLR, NativeAOT) maps that name. Null where there is no
/// libc (Windows, macOS without these names): callers then keep their portable path.
/// </summary>
internal sealed unsafe class Libc
{
    public delegate* unmanaged<void*, nuint, int, int, int, nint, void*> Mmap;
    public delegate* unmanaged<void*, nuint, int, int> Mprotect;
    public delegate* unmanaged<void*, nuint, int> Munmap;
    public delegate* unmanaged<void*, nuint, int, int> Madvise;

    private static readonly Lazy<Libc?> s_instance = new(TryLoad);

    /// <summary>This process's libc, or null.</summary>
    public static Libc? Instance => s_instance.Value;

    private static Libc? TryLoad()
    {
        if (!OperatingSystem.IsLinux()) return null;
        foreach (string name in new[] { "libc.so.6", "libc" })
        {
            if (!NativeLibrary.TryLoad(name, out nint handle)) continue;
            if (NativeLibrary.TryGetExport(handle, "mmap", out nint mmap) &&
                NativeLibrary.TryGetExport(handle, "mprotect", out nint mprotect) &&
                NativeLibrary.TryGetExport(handle, "munmap", out nint munmap) &&
                NativeLibrary.TryGetExport(handle, "madvise", out nint madvise))
                return new Libc
                {
                    Mmap = (delegate* unmanaged<void*, nuint, int, int, int, nint, void*>)mmap,
                    Mprotect = (delegate* unmanaged<void*, nuint, int, int>)mprotect,
                    Munmap = (delegate* unmanaged<void*, nuint, int>)munmap,
                    Madvise = (delegate* unmanaged<void*, nuint, int, int>)madvise,
                };
        }
        return null;
    }
}
