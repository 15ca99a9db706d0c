namespace Condense;

// OWNER: core. Skeleton only.
/// <summary>Seeded random numbers: the same seed gives the same bits on every machine and thread count.</summary>
public sealed class Rng
{
    public Rng(ulong seed) => throw new NotImplementedException();

    /// <summary>A seed for a named child stream (e.g. a layer path), independent of creation order.</summary>
    public static ulong Derive(ulong seed, string name) => throw new NotImplementedException();
}
