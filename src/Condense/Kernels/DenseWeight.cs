using System.Globalization;
using Condense.Catalogue;
using Condense.Nn;

namespace Condense.Kernels;

/// <summary>
/// A dense float32 weight [OutFeatures, InFeatures], row-major, as an <see cref="IWeightStorage"/>: the
/// uncompressed baseline of benchmarks and layers. <see cref="MatMulTransposed"/> runs the fp32 GEMV/GEMM kernels.
/// </summary>
/// <remarks>
/// With AVX-512, a weight of at most 4 Mi values (16 MiB) keeps a second copy of W laid out for its products (k-major
/// panels of 32 outputs, <c>OutputLanesSgemm</c>), made at the first product (batch 1 only without packForBatch1):
/// products then run with the outputs in the vector lanes, in row blocks of 256 from 257 rows, as ONNX Runtime's
/// MatMul does over the B it packs once per session. The copy
/// takes as much memory as the weight; <see cref="ByteCount"/> counts the stored format only, as for the quantized
/// storages' GEMM copies. Products read the copies, not the array: after changing <see cref="Weight"/>'s values, call
/// <see cref="WeightsChanged"/>.
/// </remarks>
public sealed class DenseWeight : IWeightStorage
{
    private readonly float[] _weight;
    private readonly object _packLock = new();
    // The batch-1 copy of W in DenseMatMul.PackRows4's layout for one vector width, built at the first batch-1
    // product of a weight of at least DenseMatMul.GemvStreamMinBytes (null until then, and for smaller weights).
    private volatile PackedCopy? _packed;
    // W as OutputLanesSgemm's k-major panels of 32 outputs, built at the first product of a weight of at most
    // PanelCopyMaxValues values with AVX-512 (null until then): products read it instead of the array.
    private volatile PackedCopy? _panels;

    // Values holds the copy from index Offset on: a pinned array with its copy started on a 64 B line (a managed
    // array's data is 16 B off one, which splits every 512-bit load over two lines; session 10).
    private sealed record PackedCopy(float[] Values, int Offset, int Bits);

    /// <summary>Wraps <paramref name="weight"/> (not copied) as a [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>] matrix.</summary>
    /// <exception cref="ArgumentException">A non-positive dimension or a length other than outFeatures x inFeatures.</exception>
    public DenseWeight(float[] weight, int outFeatures, int inFeatures) : this(weight, outFeatures, inFeatures, packForBatch1: false)
    {
    }

    /// <summary>
    /// Wraps <paramref name="weight"/> (not copied); with <paramref name="packForBatch1"/>, a weight of 8 MiB or more
    /// also keeps a second copy laid out for batch-1 products (see <see cref="MatMulTransposed"/>): twice the memory
    /// for a faster decode step. Off by default, so a weight's memory is what <see cref="ByteCount"/> says.
    /// </summary>
    /// <exception cref="ArgumentException">A non-positive dimension or a length other than outFeatures x inFeatures.</exception>
    public DenseWeight(float[] weight, int outFeatures, int inFeatures, bool packForBatch1)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (outFeatures <= 0 || inFeatures <= 0)
            throw new ArgumentException(Invariant($"DenseWeight: expected positive dimensions, got [{outFeatures}, {inFeatures}]"), nameof(outFeatures));
        if (weight.LongLength != (long)outFeatures * inFeatures)
            throw new ArgumentException(Invariant($"DenseWeight: weight has {weight.LongLength} values; [{outFeatures}, {inFeatures}] expects {(long)outFeatures * inFeatures}"), nameof(weight));
        _weight = weight;
        // Every batch-1 product streams the whole weight: huge pages spare the TLB misses (see HugePages).
        HugePages.Advise(weight);
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        PacksForBatch1 = packForBatch1;
    }

    /// <summary>Whether batch-1 products of a weight of 8 MiB or more read a second, GEMV-ordered copy (twice the memory).</summary>
    public bool PacksForBatch1 { get; }

    /// <summary>
    /// The row-major values (the stored array; do not modify while a product runs, and call <see cref="WeightsChanged"/>
    /// after modifying it).
    /// </summary>
    public float[] Weight => _weight;

    /// <summary>
    /// Drops the copies made for batch-1 and panel products, so the next product reads <see cref="Weight"/>'s
    /// current values (and makes its copy again). Call it after changing the array's values; not while a product runs.
    /// </summary>
    public void WeightsChanged()
    {
        lock (_packLock)
        {
            _packed = null;
            _panels = null;
        }
    }

    /// <inheritdoc/>
    public int OutFeatures { get; }

    /// <inheritdoc/>
    public int InFeatures { get; }

    /// <inheritdoc/>
    public string Format => "fp32";

    /// <inheritdoc/>
    public long ByteCount => KernelCatalogue.DenseBytes(OutFeatures, InFeatures);

    /// <inheritdoc/>
    /// <remarks>
    /// With AVX-512, products on a weight of at most 4 Mi values read its panel copy (see the class remarks; batch 1
    /// only when the weight was not made with packForBatch1): every output is one fma chain over the features in order
    /// from +0, the scalar reference bit for bit. (Session 19: from 65 rows too, where PackedSgemm's tiles over W packed
    /// per call ran before; --quick linear, MiniLM shapes, 1 thread, batch 96 / 128 / 300: 1.09-1.10 / 1.06-1.07 /
    /// 1.03-1.05x.)
    /// At batch 1, a weight of 8 MiB or more made with packForBatch1 is read from a second copy of W laid out for the GEMV (4 rows
    /// interleaved block by block: one sequential stream whose activation loads each serve 4 rows), built at the
    /// first batch-1 product and kept with the weight: it doubles this weight's memory (1.2-1.3x the read rate per core
    /// in session 9; since the row-major stream reads with aligned loads, session 10, it is no longer faster on the
    /// development machine). The results are the same bits as from the row-major array.
    /// Batches below 4 stream W once through a dot-product kernel (bandwidth-bound); batches up to two SIMD vectors use
    /// register-tiled dot products (both equal the scalar fma-chain reference up to float32 reassociation); larger
    /// batches use a packed broadcast-FMA kernel whose results equal the scalar reference bit for bit.
    /// </remarks>
    public unsafe void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        if (x.Length != (long)batch * InFeatures)
            throw new ArgumentException(Invariant($"x has {x.Length} values; fp32 [{OutFeatures}, {InFeatures}] with batch {batch} expects batch x InFeatures = {(long)batch * InFeatures}"), nameof(x));
        if (y.Length != (long)batch * OutFeatures)
            throw new ArgumentException(Invariant($"y has {y.Length} values; fp32 [{OutFeatures}, {InFeatures}] with batch {batch} expects batch x OutFeatures = {(long)batch * OutFeatures}"), nameof(y));
        if (batch == 0) return;
        if (PanelsFor(batch) is { } panels)
        {
            int degree = (long)batch * OutFeatures * InFeatures < DenseMatMul.SerialWork ? 1 : int.MaxValue;
            fixed (float* px = x, pp = panels.Values, py = y)
                OutputLanesSgemm.RunRowBlocks(px, new OutputLanesSgemm.PackedPanels(pp + panels.Offset, InFeatures), py, batch, OutFeatures, InFeatures, accumulate: false, degree);
            return;
        }
        var packed = batch == 1 ? PackedFor(KernelOptions.VectorBits) : null;
        int packedBits = packed is null ? 0 : KernelOptions.VectorBits;
        fixed (float* px = x, pw = _weight, py = y, pp = packed?.Values)
            DenseMatMul.MatMulTransposed(px, pw, py, batch, OutFeatures, InFeatures, pp is null ? null : pp + packed!.Offset, packedBits);
    }

    /// <summary>Whether this weight holds a batch-1 packed copy now (tests and benchmarks: memory accounting).</summary>
    internal bool HasPackedCopy => _packed is not null;

    private unsafe PackedCopy? PackedFor(int bits)
    {
        if (!PacksForBatch1 || bits == 0 || DenseMatMul.GemvRowsSideBySide != 0 || (long)_weight.Length * sizeof(float) < DenseMatMul.GemvStreamMinBytes) return null;
        var current = _packed;
        if (current is not null && current.Bits == bits) return current;
        lock (_packLock)
        {
            current = _packed;
            if (current is not null && current.Bits == bits) return current;
            // A width change (tests switch ISA paths) replaces the copy (a new array: a product running on the old one
            // keeps reading it unchanged).
            var values = GC.AllocateUninitializedArray<float>(_weight.Length + 16, pinned: true);
            int offset;
            fixed (float* pw = _weight, pd = values)
            {
                offset = (int)((16 - (((nint)pd >> 2) & 15)) & 15);
                DenseMatMul.PackRows4(pw, pd + offset, OutFeatures, InFeatures, bits);
            }
            HugePages.Advise(values);
            _packed = current = new PackedCopy(values, offset, bits);
            return current;
        }
    }

    /// <summary>Largest weight (values) that keeps a panel copy: 4 Mi, 16 MiB of floats.</summary>
    internal const long PanelCopyMaxValues = 4L << 20;

    /// <summary>Switch for A/B measurements and tests: off, products run DenseMatMul's kernels on the row-major array (PackedSgemm from 32 rows).</summary>
    internal static bool PanelCopies { get; set; } = true;

    /// <summary>Whether this weight holds the panel copy now (tests and benchmarks: memory accounting).</summary>
    internal bool HasPanelCopy => _panels is not null;

    private unsafe PackedCopy? PanelsFor(int batch)
    {
        if (!PanelCopies || !OutputLanesSgemm.Available || _weight.LongLength > PanelCopyMaxValues || (batch == 1 && PacksForBatch1)) return null;
        var current = _panels;
        if (current is not null) return current;
        lock (_packLock)
        {
            current = _panels;
            if (current is not null) return current;
            long floats = OutputLanesSgemm.PackedFloats(OutFeatures, InFeatures);
            var values = GC.AllocateUninitializedArray<float>((int)floats + 16, pinned: true);
            int offset;
            fixed (float* pw = _weight, pd = values)
            {
                offset = (int)((16 - (((nint)pd >> 2) & 15)) & 15);
                OutputLanesSgemm.Pack(pw, OutFeatures, InFeatures, pd + offset);
            }
            _panels = current = new PackedCopy(values, offset, 512);
            return current;
        }
    }

    /// <summary>Where the batch-1 packed copy starts (tests: it must start on a 64 B line); null without a copy.</summary>
    internal unsafe nint? PackedCopyAddress
    {
        get
        {
            var current = _packed;
            if (current is null) return null;
            fixed (float* p = current.Values) return (nint)(p + current.Offset);
        }
    }

    /// <inheritdoc/>
    public void Dequantize(Span<float> destination)
    {
        if (destination.Length != _weight.Length)
            throw new ArgumentException(Invariant($"destination has {destination.Length} values; fp32 [{OutFeatures}, {InFeatures}] expects {_weight.Length}"), nameof(destination));
        _weight.CopyTo(destination);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
