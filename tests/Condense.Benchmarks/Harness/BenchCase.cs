namespace Condense.Benchmarks.Harness;

/// <summary>
/// One timed thing in the quick table: a kernel on one shape and batch, cold or hot.
/// Subclasses own their buffers; <see cref="Invoke"/> is one call (cold cases rotate copies inside it).
/// </summary>
internal abstract class BenchCase
{
    protected BenchCase(string name, string shape, int batch, bool cold)
    {
        Name = name;
        ShapeLabel = shape;
        Batch = batch;
        Cold = cold;
    }

    /// <summary>The format or kernel, e.g. <c>int4-g64-asym</c>; <c>fp32</c> is the speed-up baseline.</summary>
    public string Name { get; }

    /// <summary>Shape label, e.g. <c>S2 11008x4096</c>.</summary>
    public string ShapeLabel { get; }

    public int Batch { get; }

    /// <summary>True: every call reads weights that are not in any cache (rotation over >= 512 MiB).</summary>
    public bool Cold { get; }

    /// <summary>Stored bits per weight (scales, zero points, indices included); NaN when not a weight.</summary>
    public abstract double BitsPerWeight { get; }

    /// <summary>Bytes a call has to read: the stored weight plus the activations.</summary>
    public abstract long BytesPerCall { get; }

    /// <summary>Multiply-adds x 2 per call, for GFLOP/s targets; 0 when not meaningful.</summary>
    public virtual double FlopsPerCall => 0;

    /// <summary>What BENCHMARKS.md asks of this case, or null.</summary>
    public Target? Target { get; init; }

    /// <summary>True for the fp32 row the other rows of the same shape, batch and mode are compared with.</summary>
    public bool IsBaseline => Name == Fp32Name;

    public const string Fp32Name = "fp32";

    /// <summary>Calls the same code on a small problem so the JIT reaches tier 1 without paying for the big one.</summary>
    public abstract void WarmUp(int calls);

    /// <summary>Untimed work before each measured call (a cache flush for cold cases that cannot rotate copies), or null.</summary>
    public virtual Action? BeforeCall => null;

    /// <summary>One measured call.</summary>
    public abstract void Invoke();

    public string Mode => Cold ? "cold" : "hot";
}
