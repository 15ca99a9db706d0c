using System.Buffers;
using System.Globalization;
using System.Numerics.Tensors;
using System.Runtime.ExceptionServices;
using Condense.Catalogue;
using Condense.Kernels;
using Condense.Nn;

namespace Condense.Quantization;

/// <summary>Bits, group size (0 = one group per row) and grid of a group-wise quantization.</summary>
/// <param name="Bits">Bits per weight: 2, 3, 4 or 8 (see <see cref="KernelCatalogue.SupportedBits"/>).</param>
/// <param name="GroupSize">Consecutive weights of a row that share a scale; 0 = the whole row is one group.</param>
/// <param name="Symmetric">True: levels centered on zero, no zero point. False: min/max grid with a uint8 zero point.</param>
public readonly record struct QuantizationScheme(int Bits, int GroupSize, bool Symmetric)
{
    /// <summary>The short format name, e.g. <c>int4-g64-sym</c> or <c>int8-row-asym</c>.</summary>
    public string FormatName => string.Create(CultureInfo.InvariantCulture,
        $"int{Bits}-{(GroupSize == 0 ? "row" : "g" + GroupSize.ToString(CultureInfo.InvariantCulture))}-{(Symmetric ? "sym" : "asym")}");
}

/// <summary>
/// A weight matrix [OutFeatures, InFeatures] quantized group-wise to 2, 3, 4 or 8 bits by round-to-nearest,
/// stored packed with float16 scales and (asymmetric) uint8 zero points; layout in docs/format.md.
/// Every weight dequantizes to s * (q - z) for its group's stored scale s (negative for a symmetric group whose
/// largest-magnitude weight is positive) and zero point z (2^(b-1) when symmetric). How s and z are chosen is
/// <see cref="QuantizationRounding"/>.
/// </summary>
public sealed class GroupQuantizedWeight : IWeightStorage
{
    private readonly byte[] _packed;
    private readonly Half[] _scales;
    private readonly byte[]? _zeroPoints;
    private readonly int _rowBytes;
    private readonly int _groupSize;
    private readonly int _groupsPerRow;

    // 8 bits: the codes repacked for Int8Gemm, made on the first int8-activation product that runs it (batches of 16
    // and more with AVX-512BW); a runtime cache of the same codes, not part of the stored format or its byte count.
    private GemmCache? _gemm;

    // The same for the generated VNNI kernels (quads instead of pairs; Int8Gemm.BuildQuadPanels), where they run:
    // 8 bits (one byte per code), and 4 bits (two codes per byte, as many bytes as the packed codes; made on the first
    // product at batch >= 16).
    private GemmCache? _gemmVnni;

    private sealed class GemmCache(byte[] codes, float[] terms)
    {
        public readonly byte[] Codes = codes;
        public readonly float[] Terms = terms;
    }

    private GroupQuantizedWeight(int outFeatures, int inFeatures, QuantizationScheme scheme, byte[] packed, Half[] scales, byte[]? zeroPoints)
    {
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        Scheme = scheme;
        _packed = packed;
        // Batch-1 products stream the codes from memory: 2 MiB pages read them faster (see HugePages).
        HugePages.Advise(packed);
        _scales = scales;
        _zeroPoints = zeroPoints;
        _rowBytes = (int)KernelCatalogue.PackedRowBytes(inFeatures, scheme.Bits);
        _groupSize = scheme.GroupSize == 0 ? inFeatures : scheme.GroupSize;
        _groupsPerRow = KernelCatalogue.GroupsPerRow(inFeatures, scheme.GroupSize);
    }

    /// <summary>
    /// Quantizes a row-major float32 matrix [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>]
    /// with round-to-nearest at <typeparamref name="TBits"/> bits.
    /// </summary>
    /// <param name="rounding">How each group's scale is picked: MSE clipping (default) or plain min/max.</param>
    /// <exception cref="ArgumentException">A shape or setting the catalogue does not support, a length that does
    /// not match the shape, a NaN/Inf weight (row and column named), or a group too large for a float16 scale.</exception>
    public static GroupQuantizedWeight Quantize<TBits>(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, int groupSize, bool symmetric,
        QuantizationRounding rounding = QuantizationRounding.MseClip)
        where TBits : struct, IBitWidth
    {
        var scheme = new QuantizationScheme(TBits.Bits, groupSize, symmetric);
        ValidateShapeAndScheme(outFeatures, inFeatures, scheme);
        long expected = (long)outFeatures * inFeatures;
        if (weight.Length != expected)
            throw new ArgumentException(Invariant($"weight has {weight.Length} values; expected OutFeatures x InFeatures = {outFeatures} x {inFeatures} = {expected}"), nameof(weight));

        int rowBytes = (int)KernelCatalogue.PackedRowBytes(inFeatures, scheme.Bits);
        int groupsPerRow = KernelCatalogue.GroupsPerRow(inFeatures, groupSize);
        int effectiveGroup = groupSize == 0 ? inFeatures : groupSize;
        var packed = new byte[checked(outFeatures * rowBytes)];
        var scales = new Half[checked(outFeatures * groupsPerRow)];
        var zeroPoints = symmetric ? null : new byte[scales.Length];

        int blocks = RowBlocks.BlockCount(outFeatures, inFeatures, out _);
        var errors = new ArgumentException?[blocks];
        var zeroed = new long[blocks];
        unsafe
        {
            fixed (float* weightPointer = weight)
            {
                nint weightAddress = (nint)weightPointer;
                RowBlocks.Run(outFeatures, inFeatures, (block, firstRow, endRow) =>
                {
                    var all = new ReadOnlySpan<float>((void*)weightAddress, (int)expected);
                    int[] levels = ArrayPool<int>.Shared.Rent(inFeatures);
                    try
                    {
                        for (int r = firstRow; r < endRow; r++)
                        {
                            zeroed[block] += RoundToNearest.QuantizeRow<TBits>(
                                all.Slice(r * inFeatures, inFeatures), r, effectiveGroup, symmetric,
                                packed.AsSpan(r * rowBytes, rowBytes),
                                scales.AsSpan(r * groupsPerRow, groupsPerRow),
                                zeroPoints is null ? default : zeroPoints.AsSpan(r * groupsPerRow, groupsPerRow),
                                levels.AsSpan(0, inFeatures), rounding);
                        }
                    }
                    catch (ArgumentException e)
                    {
                        // Blocks stop at their first bad row; the lowest block's error is reported, whatever the scheduling.
                        errors[block] = e;
                    }
                    finally
                    {
                        ArrayPool<int>.Shared.Return(levels);
                    }
                });
            }
        }

        foreach (var error in errors)
            if (error is not null) ExceptionDispatchInfo.Throw(error);

        return new GroupQuantizedWeight(outFeatures, inFeatures, scheme, packed, scales, zeroPoints) { ZeroedGroups = zeroed.Sum() };
    }

    /// <summary>Quantizes with the bit width, group size and grid of <paramref name="scheme"/>.</summary>
    /// <param name="weight">Row-major float32 [outFeatures, inFeatures].</param>
    /// <param name="outFeatures">Rows.</param>
    /// <param name="inFeatures">Columns.</param>
    /// <param name="scheme">Bits, group size and grid.</param>
    /// <param name="rounding">How each group's scale is picked: MSE clipping (default) or plain min/max.</param>
    /// <inheritdoc cref="Quantize{TBits}(ReadOnlySpan{float}, int, int, int, bool, QuantizationRounding)" path="/exception"/>
    public static GroupQuantizedWeight Quantize(ReadOnlySpan<float> weight, int outFeatures, int inFeatures, QuantizationScheme scheme,
        QuantizationRounding rounding = QuantizationRounding.MseClip) =>
        scheme.Bits switch
        {
            2 => Quantize<Bits2>(weight, outFeatures, inFeatures, scheme.GroupSize, scheme.Symmetric, rounding),
            3 => Quantize<Bits3>(weight, outFeatures, inFeatures, scheme.GroupSize, scheme.Symmetric, rounding),
            4 => Quantize<Bits4>(weight, outFeatures, inFeatures, scheme.GroupSize, scheme.Symmetric, rounding),
            8 => Quantize<Bits8>(weight, outFeatures, inFeatures, scheme.GroupSize, scheme.Symmetric, rounding),
            _ => throw new ArgumentException(KernelCatalogue.QuantizationProblem(scheme.Bits, scheme.GroupSize, inFeatures), nameof(scheme)),
        };

    /// <summary>
    /// Rebuilds a weight from its stored parts (e.g. from a file), validating every length and value range.
    /// The arrays are taken as they are, not copied.
    /// </summary>
    /// <param name="packed">OutFeatures x PackedRowBytes(InFeatures, Bits) bytes, rows byte-aligned, padding bits zero.</param>
    /// <param name="scales">One finite float16 scale per group, row-major: &gt;= 0 when asymmetric, any sign when symmetric.</param>
    /// <param name="zeroPoints">One zero point in [0, 2^Bits - 1] per group (asymmetric), or null (symmetric).</param>
    /// <exception cref="ArgumentException">A part with the wrong length or an out-of-range value, named with what was expected.</exception>
    public static GroupQuantizedWeight FromParts(int outFeatures, int inFeatures, QuantizationScheme scheme, byte[] packed, Half[] scales, byte[]? zeroPoints)
    {
        ArgumentNullException.ThrowIfNull(packed);
        ArgumentNullException.ThrowIfNull(scales);
        ValidateShapeAndScheme(outFeatures, inFeatures, scheme);
        string format = scheme.FormatName;

        long rowBytes = KernelCatalogue.PackedRowBytes(inFeatures, scheme.Bits);
        long expectedPacked = outFeatures * rowBytes;
        if (packed.LongLength != expectedPacked)
            throw new ArgumentException(Invariant($"packed has {packed.LongLength} bytes; {format} [{outFeatures}, {inFeatures}] expects OutFeatures x PackedRowBytes = {outFeatures} x {rowBytes} = {expectedPacked}"), nameof(packed));

        int paddingBits = (int)(rowBytes * 8 - (long)inFeatures * scheme.Bits);
        if (paddingBits > 0)
        {
            int usedMask = (1 << (8 - paddingBits)) - 1;
            for (int r = 0; r < outFeatures; r++)
            {
                byte last = packed[(r + 1) * rowBytes - 1];
                if ((last & ~usedMask) != 0)
                    throw new ArgumentException(Invariant($"packed row {r} has non-zero padding bits in its last byte (0x{last:X2}); the top {paddingBits} bits must be zero"), nameof(packed));
            }
        }

        int groupsPerRow = KernelCatalogue.GroupsPerRow(inFeatures, scheme.GroupSize);
        long groups = (long)outFeatures * groupsPerRow;
        if (scales.LongLength != groups)
            throw new ArgumentException(Invariant($"scales has {scales.LongLength} values; {format} [{outFeatures}, {inFeatures}] expects one per group: {outFeatures} rows x {groupsPerRow} groups = {groups}"), nameof(scales));
        for (int i = 0; i < scales.Length; i++)
        {
            var s = scales[i];
            // Symmetric scales carry the sign that puts the group's extreme on level -2^(b-1); asymmetric ones are >= 0.
            if (!Half.IsFinite(s) || (!scheme.Symmetric && s < Half.Zero))
                throw new ArgumentException(Invariant($"scales[{i}] (row {i / groupsPerRow}, group {i % groupsPerRow}) is {(float)s}; expected a finite scale{(scheme.Symmetric ? "" : " >= 0")}"), nameof(scales));
        }

        if (scheme.Symmetric)
        {
            if (zeroPoints is not null)
                throw new ArgumentException(Invariant($"zeroPoints has {zeroPoints.Length} values; the symmetric format {format} stores no zero points: expected null"), nameof(zeroPoints));
        }
        else
        {
            if (zeroPoints is null || zeroPoints.LongLength != groups)
                throw new ArgumentException(Invariant($"zeroPoints has {(zeroPoints is null ? "no array" : zeroPoints.Length + " values")}; {format} expects one per group: {groups}"), nameof(zeroPoints));
            int maxLevel = (1 << scheme.Bits) - 1;
            for (int i = 0; i < zeroPoints.Length; i++)
                if (zeroPoints[i] > maxLevel)
                    throw new ArgumentException(Invariant($"zeroPoints[{i}] (row {i / groupsPerRow}, group {i % groupsPerRow}) is {zeroPoints[i]}; expected 0..{maxLevel} for {scheme.Bits} bits"), nameof(zeroPoints));
        }

        return new GroupQuantizedWeight(outFeatures, inFeatures, scheme, packed, scales, zeroPoints);
    }

    /// <summary>Bits, group size and grid.</summary>
    public QuantizationScheme Scheme { get; }

    /// <summary>
    /// Groups that held a non-zero weight but quantized to all zeros (every |w| below half of the smallest float16
    /// scale, ~3e-8): known when this process quantized the weight, 0 for one rebuilt by <see cref="FromParts"/>.
    /// </summary>
    internal long ZeroedGroups { get; private init; }

    /// <summary>Number of groups (float16 scales).</summary>
    internal long GroupCount => _scales.LongLength;

    /// <summary>Packed levels: OutFeatures rows of PackedRowBytes(InFeatures, Bits) bytes (the stored array; do not modify).</summary>
    public byte[] Packed => _packed;

    /// <summary>Float16 scale per group, row-major: row r, group g at r * groupsPerRow + g (the stored array).</summary>
    public Half[] Scales => _scales;

    /// <summary>Uint8 zero point per group (same layout as <see cref="Scales"/>) for asymmetric grids; null when symmetric.</summary>
    public byte[]? ZeroPoints => _zeroPoints;

    /// <inheritdoc/>
    public int OutFeatures { get; }

    /// <inheritdoc/>
    public int InFeatures { get; }

    /// <inheritdoc/>
    public string Format => Scheme.FormatName;

    /// <inheritdoc/>
    public long ByteCount => _packed.LongLength + _scales.LongLength * KernelCatalogue.ScaleBytes + (_zeroPoints?.LongLength ?? 0) * KernelCatalogue.ZeroPointBytes;

    /// <inheritdoc/>
    /// <remarks>
    /// Uses <see cref="KernelOptions.QuantizedActivations"/>: int8 activations by default (integer dot products on
    /// the packed codes), or the exact float32 path. Neither materializes the float32 matrix.
    /// </remarks>
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch) =>
        MatMulTransposed(x, y, batch, KernelOptions.QuantizedActivations);

    /// <summary>
    /// y[b, o] = sum_i x[b, i] * w'[o, i] with the given activation precision (see <see cref="ActivationPrecision"/>).
    /// An input row with a NaN or infinity always takes the float32 path.
    /// </summary>
    /// <exception cref="ArgumentException">x or y with a length other than batch x InFeatures / batch x OutFeatures.</exception>
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch, ActivationPrecision precision)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        long expectedX = (long)batch * InFeatures;
        long expectedY = (long)batch * OutFeatures;
        if (x.Length != expectedX)
            throw new ArgumentException(Invariant($"x has {x.Length} values; {Format} [{OutFeatures}, {InFeatures}] with batch {batch} expects batch x InFeatures = {expectedX}"), nameof(x));
        if (y.Length != expectedY)
            throw new ArgumentException(Invariant($"y has {y.Length} values; {Format} [{OutFeatures}, {InFeatures}] with batch {batch} expects batch x OutFeatures = {expectedY}"), nameof(y));
        if (batch == 0) return;

        if (precision == ActivationPrecision.Int8 && MatMulPacked(x, y, batch, float32Activations: false)) return;
        if (MatMulPacked(x, y, batch, float32Activations: true)) return;
        switch (Scheme.Bits)
        {
            case 2: MatMulTransposed<Bits2>(x, y, batch); break;
            case 3: MatMulTransposed<Bits3>(x, y, batch); break;
            case 4: MatMulTransposed<Bits4>(x, y, batch); break;
            default: MatMulTransposed<Bits8>(x, y, batch); break;
        }
    }

    /// <inheritdoc/>
    public void Dequantize(Span<float> destination)
    {
        long expected = (long)OutFeatures * InFeatures;
        if (destination.Length != expected)
            throw new ArgumentException(Invariant($"destination has {destination.Length} values; {Format} [{OutFeatures}, {InFeatures}] expects OutFeatures x InFeatures = {expected}"), nameof(destination));

        switch (Scheme.Bits)
        {
            case 2: Dequantize<Bits2>(destination); break;
            case 3: Dequantize<Bits3>(destination); break;
            case 4: Dequantize<Bits4>(destination); break;
            default: Dequantize<Bits8>(destination); break;
        }
    }

    private unsafe void Dequantize<TBits>(Span<float> destination) where TBits : struct, IBitWidth
    {
        int total = destination.Length;
        fixed (float* destinationPointer = destination)
        {
            nint address = (nint)destinationPointer;
            RowBlocks.Run(OutFeatures, InFeatures, (_, firstRow, endRow) =>
            {
                var all = new Span<float>((void*)address, total);
                for (int r = firstRow; r < endRow; r++)
                    DequantizeRow<TBits>(r, all.Slice(r * InFeatures, InFeatures));
            });
        }
    }

    /// <summary>Pins the codes, scales and zero points (and, for the 8-bit GEMM, its repacked copy) and runs the int8- or float32-activation kernel.</summary>
    private unsafe bool MatMulPacked(ReadOnlySpan<float> x, Span<float> y, int batch, bool float32Activations)
    {
        bool useGemm = !float32Activations && GemmApplies(Scheme.Bits, _groupSize, _groupsPerRow, InFeatures, batch, OutFeatures);
        bool vnni = useGemm && Int8Gemm.UsesVnni(_groupSize, _groupsPerRow);
        var gemm = useGemm ? Gemm(vnni) : null;
        fixed (byte* gemmPanels = gemm?.Codes)
        fixed (float* gemmTerms = gemm?.Terms)
        fixed (byte* packed = _packed)
        fixed (Half* scales = _scales)
        fixed (byte* zeros = _zeroPoints)
        fixed (float* px = x, py = y)
        {
            var weight = new PackedWeightView
            {
                Packed = packed, Scales = scales, Zeros = _zeroPoints is null ? null : zeros, Bits = Scheme.Bits,
                GroupSize = _groupSize, GroupsPerRow = _groupsPerRow, RowBytes = _rowBytes, Out = OutFeatures, In = InFeatures,
                GemmPanels = gemm is null ? null : gemmPanels, GemmTerms = gemmTerms, GemmVnni = vnni,
            };
            return float32Activations ? Float32ActivationKernel.Run(weight, px, py, batch) : Int8MatMul.Run(weight, px, py, batch);
        }
    }

    /// <summary>
    /// Whether an int8-activation product of <paramref name="batch"/> rows runs on <see cref="Int8Gemm"/>: where
    /// <see cref="Int8Gemm.Applies"/> says so (4- and 8-bit codes, from 16 rows), and for small weights from
    /// <see cref="SmallWeightGemmMinRows"/> rows where the generated VNNI kernels run.
    /// </summary>
    /// <remarks>
    /// Measured on MiniLM one sentence at a time (7-21 tokens, so every Linear layer sees 7-21 rows; Zen 4, one
    /// thread, processor time per sentence, int8 activations): with the VNNI GEMM from 4 rows the int4 g64 plan took
    /// 3.19 ms against 5.53 on the batched kernels (q/k/v 1.57 -&gt; 0.95, intermediate 1.92 -&gt; 0.92, output 1.03
    /// -&gt; 0.85 ms), int8 per row 2.48 against 5.80. The managed vpmaddwd GEMM at these rows was slower than the
    /// batched kernel on the 1536-input layer (1.00 -&gt; 1.31 ms), so without VNNI the threshold stays at 16.
    /// The 4-row rule is for weights whose GEMM copy (one byte per code) stays in cache: a large layer at 4-15 rows is
    /// bound by memory, where the GEMM's byte-per-code copy reads up to twice the bytes of the packed codes (11008x4096
    /// int4 g64 at 4 / 8 rows: 3.2x / 4.2x its batch-1 time on the GEMM against 1.7x / 3.0x on the batched kernel).
    /// </remarks>
    internal static bool GemmApplies(int bits, int groupSize, int groupsPerRow, int inFeatures, int batch, int outFeatures) =>
        // 2- and 3-bit codes only while small: their byte copy is 4x / 2.7x the codes, and above the cache the batched
        // kernels were faster (11008x4096 2-bit g64 at 16 rows, 1 thread: 3.29 ms against 3.58 on the GEMM; session 17).
        bits is 4 or 8 && Int8Gemm.Applies(bits, groupsPerRow, inFeatures, batch, KernelOptions.VectorBits) ||
        (batch >= SmallWeightGemmMinRows(bits, groupSize, groupsPerRow, inFeatures) && (long)outFeatures * inFeatures <= VnniGemmMaxSmallElements &&
         Int8Gemm.UsesVnni(groupSize, groupsPerRow) &&
         // The GEMM's own test of the codes, machine and shape, at its threshold: the rows were decided here.
         Int8Gemm.Applies(bits, groupsPerRow, inFeatures, Math.Max(batch, Int8Gemm.DefaultMinBatch), KernelOptions.VectorBits));

    /// <summary>
    /// The fewest rows an int8-activation product of a small weight sends to the generated VNNI GEMM when the 4-bit
    /// own-scale small-batch kernels would run it (default 4; other small weights from 2, <see cref="SmallWeightGemmMinRows"/>);
    /// below it, and for 4-bit codes up to 15 rows when this is raised, the small-batch kernels run. Knob for A/B runs
    /// (environment variable CONDENSE_VNNI_GEMM_MIN_ROWS at start-up, then for every weight).
    /// </summary>
    internal static int VnniGemmMinRows { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_VNNI_GEMM_MIN_ROWS"), out int rows) && rows > 0 ? rows : 4;

    /// <summary>
    /// The fewest rows a weight of at most <see cref="VnniGemmMaxSmallElements"/> codes sends to the VNNI GEMM:
    /// <see cref="VnniGemmMinRows"/>, or 2 for 8-bit codes and for 4-bit codes the small-batch kernels would run without
    /// their own-scale kernels (rows not of whole pairs of steps or not of whole 16-group chunks: In 384 or 768 at g64).
    /// </summary>
    /// <remarks>
    /// Session 17, batch 2, one thread, CPU time per call (small-batch kernels -&gt; GEMM), hot / cold: int4 g64
    /// 1536x384 21.0 / 22.5 -&gt; 4.5 / 16.8 us, 3072x768 47.8 / 112 -&gt; 21.8 / 95.4, 2048x512 25.8 / 37.7 -&gt; 7.8 / 36.3;
    /// int8 g64 1536x384 28.9 / 35.0 -&gt; 6.0 / 32.7, 768x3072 52.1 / 176 -&gt; 38.6 / 96.4, 2048x2048 142 / 240 -&gt; 51.0 /
    /// 227. 4-bit weights on the own-scale small-batch kernels stay there below 4 rows: their cold calls read half the
    /// GEMM copy's bytes (768x3072 27.6 / 63.8 against 23.2 / 157, 1024x1024 13.6 / 30.9 against 7.1 / 42.5). 2- and
    /// 3-bit codes (expanded to bytes in the copy) left the managed batched kernels: 1536x384 2-bit g64 b2 / b4 / b8
    /// 64 / 71 / 193 -&gt; 5.6 / 7.1 / 13.6 us hot, 3-bit g128 52 / 59 / 82 -&gt; 4.6 / 6.6 / 12.6.
    /// An explicit CONDENSE_VNNI_GEMM_MIN_ROWS applies to every weight.
    /// </remarks>
    internal static int SmallWeightGemmMinRows(int bits, int groupSize, int groupsPerRow, int inFeatures)
    {
        if (s_minRowsFromEnvironment) return VnniGemmMinRows;
        bool ownSmallBatch = bits == 4 && Kernels.Jit.VnniSmallBatch4.TakesOwnScales(groupSize, groupsPerRow, inFeatures);
        return ownSmallBatch ? VnniGemmMinRows : Math.Min(2, VnniGemmMinRows);
    }

    private static readonly bool s_minRowsFromEnvironment = Environment.GetEnvironmentVariable("CONDENSE_VNNI_GEMM_MIN_ROWS") is not null;

    /// <summary>The largest weight (out x in) that takes the VNNI GEMM below <see cref="Int8Gemm.DefaultMinBatch"/> rows: 4 Mi codes, a 4 MiB copy.</summary>
    internal const long VnniGemmMaxSmallElements = 4L << 20;

    /// <summary>Tests: whether a GEMM copy (either layout) was built, i.e. a product took <see cref="Int8Gemm"/>.</summary>
    internal bool HasGemmCopy => Volatile.Read(ref _gemm) is not null || Volatile.Read(ref _gemmVnni) is not null;

    /// <summary>
    /// The repacked codes and terms for <see cref="Int8Gemm"/> (the VNNI layouts with <paramref name="vnni"/>), made once
    /// (concurrent first callers may each build one; one is kept).
    /// </summary>
    private unsafe GemmCache Gemm(bool vnni)
    {
        ref GemmCache? slot = ref vnni ? ref _gemmVnni : ref _gemm;
        var cache = Volatile.Read(ref slot);
        if (cache is not null) return cache;
        // 2- and 3-bit codes enter the panels as bytes (the 8-bit layout); their terms keep their own symmetric zero point.
        byte[]? expanded = Scheme.Bits is 2 or 3 ? ExpandedCodes() : null;
        int panelBits = expanded is null ? Scheme.Bits : 8;
        var codes = GC.AllocateUninitializedArray<byte>(checked((int)(vnni ? Int8Gemm.QuadPanelBytes(OutFeatures, InFeatures, panelBits) : Int8Gemm.PanelBytes(OutFeatures, InFeatures))));
        var terms = GC.AllocateUninitializedArray<float>(checked((int)Int8Gemm.TermFloats(OutFeatures, _groupsPerRow)));
        fixed (byte* source = expanded ?? _packed)
        fixed (byte* destination = codes)
            if (vnni) Int8Gemm.BuildQuadPanels(source, OutFeatures, InFeatures, destination, panelBits);
            else Int8Gemm.BuildPanels(source, OutFeatures, InFeatures, destination);
        fixed (Half* scales = _scales)
        fixed (byte* zeros = _zeroPoints)
        fixed (float* destination = terms)
            Int8Gemm.BuildTerms(scales, _zeroPoints is null ? null : zeros, OutFeatures, _groupsPerRow, destination, vnni, Scheme.Bits);
        var built = new GemmCache(codes, terms);
        return Interlocked.CompareExchange(ref slot, built, null) ?? built;
    }

    /// <summary>The codes one byte each, row-major [OutFeatures, InFeatures] (the GEMM's panels of 2- and 3-bit weights are built from it).</summary>
    private unsafe byte[] ExpandedCodes()
    {
        var expanded = GC.AllocateUninitializedArray<byte>(checked(OutFeatures * InFeatures));
        var row = new byte[CodeUnpack.PaddedLength(InFeatures)];
        fixed (byte* source = _packed)
        fixed (byte* destination = expanded)
        fixed (byte* codes = row)
            for (int o = 0; o < OutFeatures; o++)
            {
                CodeUnpack.Row(source + (nint)o * _rowBytes, _rowBytes, Scheme.Bits, InFeatures, codes, KernelOptions.VectorBits);
                Buffer.MemoryCopy(codes, destination + (nint)o * InFeatures, InFeatures, InFeatures);
            }
        return expanded;
    }

    /// <summary>The scalar reference of the float32 path: each row dequantized, then dotted with every input row.</summary>
    internal void MatMulTransposedReference(ReadOnlySpan<float> x, Span<float> y, int batch)
    {
        switch (Scheme.Bits)
        {
            case 2: MatMulTransposed<Bits2>(x, y, batch); break;
            case 3: MatMulTransposed<Bits3>(x, y, batch); break;
            case 4: MatMulTransposed<Bits4>(x, y, batch); break;
            default: MatMulTransposed<Bits8>(x, y, batch); break;
        }
    }

    private unsafe void MatMulTransposed<TBits>(ReadOnlySpan<float> x, Span<float> y, int batch) where TBits : struct, IBitWidth
    {
        int xLength = x.Length, yLength = y.Length;
        fixed (float* xPointer = x)
        fixed (float* yPointer = y)
        {
            nint xAddress = (nint)xPointer, yAddress = (nint)yPointer;
            RowBlocks.Run(OutFeatures, (long)InFeatures * (batch + 1), (_, firstRow, endRow) =>
            {
                var xs = new ReadOnlySpan<float>((void*)xAddress, xLength);
                var ys = new Span<float>((void*)yAddress, yLength);
                float[] rowBuffer = ArrayPool<float>.Shared.Rent(InFeatures);
                try
                {
                    var row = rowBuffer.AsSpan(0, InFeatures);
                    for (int r = firstRow; r < endRow; r++)
                    {
                        DequantizeRow<TBits>(r, row);
                        for (int b = 0; b < batch; b++)
                            ys[b * OutFeatures + r] = TensorPrimitives.Dot(xs.Slice(b * InFeatures, InFeatures), row);
                    }
                }
                finally
                {
                    ArrayPool<float>.Shared.Return(rowBuffer);
                }
            });
        }
    }

    private void DequantizeRow<TBits>(int row, Span<float> destination) where TBits : struct, IBitWidth
    {
        var packedRow = new ReadOnlySpan<byte>(_packed, row * _rowBytes, _rowBytes);
        int symmetricZero = 1 << (TBits.Bits - 1);
        int firstGroup = row * _groupsPerRow;
        for (int g = 0; g < _groupsPerRow; g++)
        {
            int zero = _zeroPoints is null ? symmetricZero : _zeroPoints[firstGroup + g];
            int start = g * _groupSize;
            PackedBits.DequantizeRange<TBits>(packedRow, start, _groupSize, (float)_scales[firstGroup + g], zero, destination.Slice(start, _groupSize));
        }
    }

    private static void ValidateShapeAndScheme(int outFeatures, int inFeatures, QuantizationScheme scheme)
    {
        if (outFeatures <= 0)
            throw new ArgumentException(Invariant($"outFeatures is {outFeatures}; expected a positive number of weight rows"), nameof(outFeatures));
        if (inFeatures <= 0)
            throw new ArgumentException(Invariant($"inFeatures is {inFeatures}; expected a positive number of weight columns"), nameof(inFeatures));
        string? problem = KernelCatalogue.QuantizationProblem(scheme.Bits, scheme.GroupSize, inFeatures);
        if (problem is not null)
            throw new ArgumentException(problem, nameof(scheme));
        if ((long)outFeatures * KernelCatalogue.PackedRowBytes(inFeatures, scheme.Bits) > Array.MaxLength ||
            (long)outFeatures * inFeatures > int.MaxValue)
            throw new ArgumentException(Invariant($"a [{outFeatures}, {inFeatures}] weight is too large; expected at most {int.MaxValue} values"), nameof(outFeatures));
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
