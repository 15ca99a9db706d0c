namespace Condense.Benchmarks.Cases;

/// <summary>A weight shape [Out, In] (y = x W^T reads In values per output).</summary>
internal sealed record Shape(string Id, int Out, int In)
{
    public static readonly Shape S1 = new("S1", 4096, 4096);
    public static readonly Shape S2 = new("S2", 11008, 4096);
    public static readonly Shape S3 = new("S3", 4096, 11008);

    /// <summary>Small enough that a call is all fixed overhead: the per-call overhead rows.</summary>
    public static readonly Shape Tiny = new("T", 64, 256);

    /// <summary>What the JIT warm-up runs on: the same code paths (parallel ones included) at a fraction of the cost.</summary>
    public static readonly Shape WarmUp = new("W", 256, 1024);

    public static readonly Shape[] Standard = [S1, S2, S3];

    public string Label => $"{Id} {Out}x{In}";

    public long Elements => (long)Out * In;

    /// <summary>S1, S2, S3, or OUTxIN (e.g. 512x4096: a layer that stays in L2, to time a kernel's compute alone).</summary>
    public static Shape Parse(string id)
    {
        if (Standard.FirstOrDefault(s => s.Id == id) is { } standard) return standard;
        var parts = id.Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], out int o) && int.TryParse(parts[1], out int i) && o > 0 && i > 0 && i % 128 == 0)
            return new Shape(id, o, i);
        throw new ArgumentException($"unknown shape '{id}'; expected S1, S2, S3 or OUTxIN with IN a multiple of 128 (e.g. 512x4096)");
    }
}

/// <summary>Seeded random data: the same seed gives the same bits on every run.</summary>
internal static class RandomData
{
    /// <summary>Uniform values in [-scale, scale); rows are filled in parallel from per-block seeds, so the result does not depend on scheduling.</summary>
    public static float[] Uniform(long count, ulong seed, float scale = 0.05f)
    {
        var data = GC.AllocateUninitializedArray<float>(checked((int)count));
        const int Block = 1 << 20;
        int blocks = (int)((count + Block - 1) / Block);
        Parallel.For(0, blocks, b =>
        {
            var rng = new Rng(seed + (ulong)b * 0x9E3779B97F4A7C15UL);
            int end = (int)Math.Min(count, (long)(b + 1) * Block);
            for (int i = b * Block; i < end; i++)
                data[i] = rng.NextUniform(-scale, scale);
        });
        return data;
    }

    public static float[] Weights(Shape shape, ulong seed = 42) => Uniform(shape.Elements, seed ^ (ulong)shape.Elements);

    public static float[] Activations(int batch, int inFeatures, ulong seed = 7) => Uniform((long)batch * inFeatures, seed + (ulong)batch, 1f);
}
