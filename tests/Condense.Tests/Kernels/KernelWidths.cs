using Condense.Kernels;

namespace Condense.Tests.Kernels;

/// <summary>Runs a kernel once per SIMD width the machine accelerates (512, 256, 128) and the scalar path.</summary>
internal static class KernelWidths
{
    public static readonly int[] All = [512, 256, 128, 0];

    private static readonly object s_gate = new();

    public static void ForEach(Action<int> run)
    {
        // KernelOptions is process-wide: tests that change it run one at a time.
        lock (s_gate)
        {
            int saved = KernelOptions.MaxVectorBits;
            try
            {
                foreach (int bits in All)
                {
                    KernelOptions.MaxVectorBits = bits;
                    if (KernelOptions.VectorBits != bits) continue; // not accelerated here (or disabled by DOTNET_Enable*)
                    run(bits);
                }
            }
            finally
            {
                KernelOptions.MaxVectorBits = saved;
            }
        }
    }
}
