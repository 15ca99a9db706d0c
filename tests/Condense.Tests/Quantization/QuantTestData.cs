namespace Condense.Tests.Quantization;

/// <summary>Seeded test matrices (SplitMix64), independent of the runtime's Rng so these tests stand alone.</summary>
internal static class QuantTestData
{
    public static float[] Gaussian(ulong seed, int count, float std = 1f)
    {
        var state = seed;
        var result = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Box-Muller; 1 - u keeps the log argument in (0, 1].
            double u1 = 1.0 - NextDouble(ref state), u2 = NextDouble(ref state);
            result[i] = (float)(std * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2));
        }
        return result;
    }

    public static float[] Uniform(ulong seed, int count, float low, float high)
    {
        var state = seed;
        var result = new float[count];
        for (int i = 0; i < count; i++) result[i] = (float)(low + (high - low) * NextDouble(ref state));
        return result;
    }

    public static int NextInt(ref ulong state, int exclusiveMax) => (int)(Next(ref state) % (ulong)exclusiveMax);

    public static double NextDouble(ref ulong state) => (Next(ref state) >> 11) * (1.0 / (1UL << 53));

    public static ulong Next(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
