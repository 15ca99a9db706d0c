using System.Runtime;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Benchmarks.Harness;

/// <summary>The facts a reader needs to interpret a table from another machine.</summary>
internal static class MachineInfo
{
    public static IEnumerable<string> Lines()
    {
        yield return $"machine : {CpuModel()}, {Environment.ProcessorCount} logical cores, {RuntimeInformation.OSDescription}";
        yield return $"runtime : {RuntimeInformation.FrameworkDescription}, {RuntimeInformation.ProcessArchitecture}, " +
                     $"GC {(GCSettings.IsServerGC ? "server" : "workstation")}, {DotnetSwitches()}";
        yield return "ISA     : " + string.Join(" ", new (string Name, bool On)[]
        {
            ("Vector512", Vector512.IsHardwareAccelerated), ("Vector256", Vector256.IsHardwareAccelerated),
            ("Avx2", Avx2.IsSupported), ("Fma", Fma.IsSupported), ("Avx512F", Avx512F.IsSupported),
            ("Avx512BW", Avx512BW.IsSupported), ("Avx512Vbmi", Avx512Vbmi.IsSupported),
            ("AvxVnni", AvxVnni.IsSupported), ("Avx10v1", Avx10v1.IsSupported),
        }.Select(f => $"{f.Name}={(f.On ? "yes" : "no")}"));
    }

    private static string CpuModel()
    {
        const string CpuInfo = "/proc/cpuinfo";
        if (!File.Exists(CpuInfo)) return "cpu unknown";
        var line = File.ReadLines(CpuInfo).FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
        return line is null ? "cpu unknown" : line[(line.IndexOf(':') + 1)..].Trim();
    }

    // DOTNET_EnableAVX512F=0 and friends change which kernel path runs: show them.
    private static string DotnetSwitches()
    {
        var set = Environment.GetEnvironmentVariables().Keys.Cast<string>()
            .Where(k => k.StartsWith("DOTNET_Enable", StringComparison.Ordinal) || k.StartsWith("DOTNET_Tiered", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(k => $"{k}={Environment.GetEnvironmentVariable(k)}")
            .ToList();
        return set.Count == 0 ? "no DOTNET_Enable*/Tiered* overrides" : string.Join(" ", set);
    }
}
