using System.Globalization;
using System.Runtime.InteropServices;

namespace Condense.Benchmarks.Harness;

/// <summary>
/// Transparent huge pages for the harness's own buffers (the bandwidth probes), as Condense's weights get them
/// (Kernels/HugePages.cs), and a reader of /proc/self/smaps to report what the kernel actually gave.
/// </summary>
internal static unsafe partial class PageAdvice
{
    public const int HugePage = 14, NoHugePage = 15; // MADV_HUGEPAGE, MADV_NOHUGEPAGE

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* address, nuint length, int advice);

    /// <summary>madvise(<paramref name="advice"/>) over [p, p + bytes) before it is touched; false where that fails or there is no libc.</summary>
    public static bool Advise(void* p, long bytes, int advice)
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return Madvise(p, (nuint)bytes, advice) == 0; }
        catch (DllNotFoundException) { return false; }
        catch (EntryPointNotFoundException) { return false; }
    }

    /// <summary>Bytes of AnonHugePages in the mappings that overlap [address, address + bytes), or -1 if smaps cannot be read.</summary>
    public static long AnonHugeBytes(nint address, long bytes)
    {
        try
        {
            bool inside = false;
            long total = 0;
            foreach (var line in File.ReadLines("/proc/self/smaps"))
            {
                int dash = line.IndexOf('-', StringComparison.Ordinal);
                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long lo)
                    && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out long hi))
                {
                    inside = address + bytes > lo && address < hi;
                }
                else if (inside && line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                {
                    total += long.Parse(line["AnonHugePages:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) << 10;
                }
            }
            return total;
        }
        catch (IOException) { return -1; }
        catch (UnauthorizedAccessException) { return -1; }
    }
}
