using Condense.Benchmarks.Harness;
using Condense.Nn;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// One format built on one shape: the copies the cold rotation walks through (working set >= the cold size),
/// and a small instance for the JIT warm-up. Shared by every batch and mode of that format.
/// </summary>
internal sealed class WeightSet
{
    // Only a storage far below 128 kB would need more: the rotation then is pointless anyway.
    private const int MaxCopies = 4096;

    private static readonly Lazy<float[]> WarmUpDense = new(() => RandomData.Weights(Shape.WarmUp, seed: 3));

    /// <param name="coldBytes">Working set of the cold rotation; 0 = hot only (one copy).</param>
    /// <param name="slowCopies">Formats without a cheap copy: build every copy with Create (BenchmarkDotNet) instead of
    /// keeping one copy and flushing the caches before each cold call (quick mode).</param>
    public WeightSet(WeightFormat format, Shape shape, float[] dense, long coldBytes, bool slowCopies = false)
    {
        Format = format;
        Shape = shape;
        var first = format.Create(dense, shape.Out, shape.In);
        if (coldBytes <= 0 || (format.Copy is null && !slowCopies))
        {
            Copies = [first];
        }
        else
        {
            // At least two copies, so even a matrix larger than the caches is never re-read back to back.
            int count = (int)Math.Clamp((coldBytes + first.ByteCount - 1) / Math.Max(1, first.ByteCount), 2, MaxCopies);
            Copies = new IWeightStorage[count];
            Copies[0] = first;
            for (int i = 1; i < count; i++)
                Copies[i] = format.Copy is null ? format.Create(dense, shape.Out, shape.In) : format.Copy(first, dense);
        }
        Small = format.Create(WarmUpDense.Value, Shape.WarmUp.Out, Shape.WarmUp.In);
    }

    public WeightFormat Format { get; }
    public Shape Shape { get; }
    public IWeightStorage[] Copies { get; }
    public IWeightStorage Small { get; }

    /// <summary>True when there are too few copies to rotate: cold calls flush the caches instead.</summary>
    public bool NeedsFlush => Copies.Length == 1;
}

/// <summary>y = x W^T through <see cref="IWeightStorage.MatMulTransposed"/> at one batch, cold or hot.</summary>
internal sealed class WeightCase : BenchCase
{
    private readonly WeightSet _set;
    private readonly float[] _x, _y, _xSmall, _ySmall;
    private int _next;

    public WeightCase(WeightSet set, int batch, bool cold)
        : base(set.Format.Name, set.Shape.Label, batch, cold)
    {
        _set = set;
        _x = RandomData.Activations(batch, set.Shape.In);
        _y = new float[(long)batch * set.Shape.Out];
        _xSmall = RandomData.Activations(batch, Shape.WarmUp.In);
        _ySmall = new float[batch * Shape.WarmUp.Out];
    }

    public override double BitsPerWeight => _set.Copies[0].ByteCount * 8.0 / _set.Shape.Elements;

    public override long BytesPerCall => _set.Copies[0].ByteCount + (long)Batch * _set.Shape.In * sizeof(float);

    public override double FlopsPerCall => 2.0 * Batch * _set.Shape.Elements;

    public override void WarmUp(int calls)
    {
        for (int i = 0; i < calls; i++)
            _set.Small.MatMulTransposed(_xSmall, _ySmall, Batch);
        if (_prepared) return;
        // One call per copy at this batch, untimed: a storage may build per-weight state on its first product of a
        // kind (the int8 GEMM's repacked panels), once per weight, as ONNX Runtime prepacks at session creation.
        // Timing it would charge a one-time cost to every cold call, since the rotation reaches each copy rarely.
        foreach (var copy in Cold ? _set.Copies : [_set.Copies[0]])
            copy.MatMulTransposed(_x, _y, Batch);
        _prepared = true;
    }

    private bool _prepared;

    public override Action? BeforeCall => Cold && _set.NeedsFlush ? CacheFlush.Run : null;

    public override void Invoke()
    {
        if (!Cold)
        {
            _set.Copies[0].MatMulTransposed(_x, _y, Batch);
            return;
        }
        var copies = _set.Copies;
        copies[_next++ % copies.Length].MatMulTransposed(_x, _y, Batch);
    }
}
