namespace Condense.Tests.Core;

public class RngTests
{
    [Fact]
    public void Same_seed_gives_the_same_stream_and_different_seeds_differ()
    {
        var a = new Rng(123);
        var b = new Rng(123);
        var c = new Rng(124);
        var sa = Enumerable.Range(0, 100).Select(_ => a.NextUInt64()).ToArray();
        var sb = Enumerable.Range(0, 100).Select(_ => b.NextUInt64()).ToArray();
        var sc = Enumerable.Range(0, 100).Select(_ => c.NextUInt64()).ToArray();
        Assert.Equal(sa, sb);
        Assert.NotEqual(sa, sc);
    }

    [Fact]
    public void Stream_is_pinned_to_known_values()
    {
        // Pinned so a change to the generator or seeding (which would change every initialization) is caught.
        var rng = new Rng(0);
        // SplitMix64(0) state then xoshiro256**: first value computed independently below.
        ulong x = 0;
        static ulong Mix(ref ulong s)
        {
            ulong z = s += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
        Assert.Equal(0xE220A8397B1DCDAFUL, Mix(ref x)); // SplitMix64's published first output for seed 0
        x = 0;
        _ = Mix(ref x);
        ulong s1 = Mix(ref x);
        ulong expected = System.Numerics.BitOperations.RotateLeft(s1 * 5, 7) * 9;
        Assert.Equal(expected, rng.NextUInt64());
    }

    [Fact]
    public void Derive_depends_on_seed_and_name_only()
    {
        Assert.Equal(Rng.Derive(7, "hidden1"), Rng.Derive(7, "hidden1"));
        Assert.NotEqual(Rng.Derive(7, "hidden1"), Rng.Derive(7, "hidden2"));
        Assert.NotEqual(Rng.Derive(7, "hidden1"), Rng.Derive(8, "hidden1"));
        Assert.NotEqual(Rng.Derive(7, ""), Rng.Derive(7, "a"));
    }

    [Fact]
    public void Floats_are_in_unit_interval_with_mean_one_half()
    {
        var rng = new Rng(5);
        double sum = 0;
        for (int i = 0; i < 100_000; i++)
        {
            float f = rng.NextFloat();
            Assert.InRange(f, 0f, 0.99999994f);
            sum += f;
        }
        Assert.InRange(sum / 100_000, 0.495, 0.505);
    }

    [Fact]
    public void Gaussians_have_mean_zero_and_unit_variance()
    {
        var rng = new Rng(6);
        const int N = 200_000;
        double sum = 0, sumSq = 0;
        int beyond2 = 0;
        for (int i = 0; i < N; i++)
        {
            double g = rng.NextGaussian();
            Assert.True(double.IsFinite(g));
            sum += g;
            sumSq += g * g;
            if (Math.Abs(g) > 2) beyond2++;
        }
        double mean = sum / N;
        Assert.InRange(mean, -0.01, 0.01);
        Assert.InRange(sumSq / N - mean * mean, 0.98, 1.02);
        Assert.InRange(beyond2 / (double)N, 0.0435, 0.0475); // P(|z| > 2) = 0.0455
    }

    [Fact]
    public void NextInt_covers_the_range_uniformly_and_rejects_bad_bounds()
    {
        var rng = new Rng(7);
        var counts = new int[7];
        for (int i = 0; i < 70_000; i++) counts[rng.NextInt(7)]++;
        foreach (int c in counts) Assert.InRange(c, 9_500, 10_500);
        Assert.Equal(0, rng.NextInt(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => rng.NextInt(0));
        // A bound near 2^31 exercises the rejection path: values must stay below it.
        for (int i = 0; i < 1000; i++) Assert.InRange(rng.NextInt(int.MaxValue), 0, int.MaxValue - 1);
    }

    [Fact]
    public void Shuffle_is_a_deterministic_permutation()
    {
        var a = Enumerable.Range(0, 50).ToArray();
        var b = Enumerable.Range(0, 50).ToArray();
        new Rng(9).Shuffle(a.AsSpan());
        new Rng(9).Shuffle(b.AsSpan());
        Assert.Equal(a, b);
        Assert.NotEqual(Enumerable.Range(0, 50), a);
        Assert.Equal(Enumerable.Range(0, 50), a.Order());
    }
}
