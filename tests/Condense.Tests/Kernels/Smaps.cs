namespace Condense.Tests.Kernels;

/// <summary>Reads this process's /proc/self/smaps: whether an array really sits on transparent huge pages.</summary>
internal static class Smaps
{
    /// <summary>Whether this system can give transparent huge pages at all (Linux, THP not "never").</summary>
    public static bool TransparentHugePagesAvailable =>
        OperatingSystem.IsLinux() && File.Exists("/sys/kernel/mm/transparent_hugepage/enabled")
        && !File.ReadAllText("/sys/kernel/mm/transparent_hugepage/enabled").Contains("[never]", StringComparison.Ordinal);

    /// <summary>AnonHugePages (KiB) of the mapping holding <paramref name="address"/>, or -1 when no mapping holds it.</summary>
    public static long AnonHugePagesKiB(long address)
    {
        bool inside = false;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            int dash = line.IndexOf('-', StringComparison.Ordinal);
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (dash > 0 && space > dash && long.TryParse(line.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber, null, out long start)
                && long.TryParse(line.AsSpan(dash + 1, space - dash - 1), System.Globalization.NumberStyles.HexNumber, null, out long end))
            {
                inside = address >= start && address < end;
                continue;
            }
            if (inside && line.StartsWith("AnonHugePages:", StringComparison.Ordinal))
                return long.Parse(line["AnonHugePages:".Length..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        return -1;
    }

    /// <summary>Whether this kernel can collapse a touched array into huge pages at all (Linux >= 6.1, a free 2 MiB page).</summary>
    public static bool CanCollapse()
    {
        var probe = new byte[16 << 20];
        Array.Fill(probe, (byte)1);
        return Condense.Kernels.HugePages.Advise(probe);
    }

    /// <summary>
    /// Whether a weight holding <paramref name="address"/> was advised but the kernel could not collapse it then (no free
    /// 2 MiB page at that moment): its 4 KiB pages say nothing about the code under test. False when it was never
    /// advised, so a missing advice still fails the caller's assertion.
    /// </summary>
    public static bool AdvisedWithoutCollapse(long address) =>
        Condense.Kernels.HugePages.LastAttemptCovering(address) is { Collapsed: false };

    /// <summary>As <see cref="AdvisedWithoutCollapse(long)"/> for the middle of <paramref name="array"/>.</summary>
    public static unsafe bool AdvisedWithoutCollapse(float[] array)
    {
        fixed (float* p = array) return AdvisedWithoutCollapse((long)(p + array.Length / 2));
    }

    /// <summary>AnonHugePages (KiB) of the mapping holding the middle of <paramref name="array"/>.</summary>
    public static unsafe long AnonHugePagesKiB(float[] array)
    {
        fixed (float* p = array) return AnonHugePagesKiB((long)(p + array.Length / 2));
    }
}
