using System.Runtime.InteropServices;
using Condense.Benchmarks.Cases;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Benchmarks.Peers;

/// <summary>Which ONNX Runtime operator runs the same codes as a Condense storage.</summary>
internal enum PeerOp
{
    /// <summary><c>com.microsoft.MatMulNBits</c>: group-quantized 2-8 bit weights, blocks along K.</summary>
    MatMulNBits,

    /// <summary><c>com.microsoft.DynamicQuantizeMatMul</c>: int8 weights with per-column scales, A quantized per call.</summary>
    DynamicQuantizeMatMul,

    /// <summary>Plain ONNX <c>MatMul</c> on the float32 weights.</summary>
    MatMul,
}

/// <summary>
/// A deliberate layout mistake in the ORT model, for <c>--peers --self-check</c>: proof that the reference check
/// catches each way the translation of Condense's codes could go wrong.
/// </summary>
internal enum Corruption
{
    None,
    /// <summary>4-bit codes high nibble first (the opposite of both formats).</summary>
    SwapNibbles,
    /// <summary>4-bit zero points high nibble first.</summary>
    ZeroPointsHighFirst,
    /// <summary>An asymmetric grid given without zero_points (ORT then assumes 2^(bits-1)).</summary>
    NoZeroPoints,
    /// <summary>Each row's scales rotated by one block.</summary>
    ScalesShifted,
    /// <summary>B given in Condense's [N, K] order where ORT expects [K, N].</summary>
    NotTransposed,
}

/// <summary>
/// One side-by-side pairing: a Condense format and activation precision, and the ONNX Runtime node given the same
/// codes. <see cref="AccuracyLevel"/> 4 (ORT quantizes A to int8 per block) pairs with Condense's int8 activations;
/// 0 (A stays float32) pairs with <see cref="ActivationPrecision.Float32"/>, so each row compares like with like.
/// </summary>
/// <param name="Name">The table's case name, e.g. <c>int4-g64-asym/acc4</c>; --only matches against it.</param>
/// <param name="Precision">Condense's activation precision; null for the fp32 storage, which has none.</param>
internal sealed record PeerSpec(string Name, WeightFormat Format, PeerOp Op, int AccuracyLevel, ActivationPrecision? Precision)
{
    /// <summary>Max relative error (see <see cref="PeerCheck"/>) allowed when A is quantized to int8 on either side.</summary>
    public const double Int8ActivationTolerance = 1e-2;

    /// <summary>Max relative error allowed for float32 activations (fp32 accumulation order only).</summary>
    public const double ExactTolerance = 1e-4;

    /// <summary>
    /// Int8 activation quantization error, relative to the largest output, is ~1e-3 on these shapes (0.5/127 of
    /// max |x| per input, summed as noise over K = 4096); a wrong layout (nibble order, transposition, zero point,
    /// scale) gives errors of order 1. The tolerances sit between the two.
    /// </summary>
    public double Tolerance => Precision == ActivationPrecision.Int8 || AccuracyLevel == 4 ? Int8ActivationTolerance : ExactTolerance;

    /// <summary>What ORT runs, for the table, e.g. <c>MatMulNBits b4 blk64 zp acc4</c>.</summary>
    public string PeerText(IWeightStorage w) => Op switch
    {
        PeerOp.MatMulNBits when w is GroupQuantizedWeight q =>
            $"MatMulNBits b{q.Scheme.Bits} blk{q.Scheme.GroupSize}{(q.ZeroPoints is null ? "" : " zp")} acc{AccuracyLevel}",
        PeerOp.DynamicQuantizeMatMul => "DynamicQuantizeMatMul s8",
        _ => "MatMul fp32",
    };

    /// <summary>The pairings the peers mode runs on every shape.</summary>
    public static IReadOnlyList<PeerSpec> All { get; } = BuildAll();

    private static List<PeerSpec> BuildAll()
    {
        // int4: the asymmetric grids of the quick table (zero points packed two per byte), and one symmetric grid,
        // which exercises MatMulNBits' default zero point 2^(bits-1). int8: symmetric (default zero point 128).
        var nbits = new List<WeightFormat>
        {
            QuantizedFormats.Int4G32, QuantizedFormats.Int4G64, QuantizedFormats.Int4G128, QuantizedFormats.Int4G32Sym,
            QuantizedFormats.Int8G32, QuantizedFormats.Of(8, 64, symmetric: true), QuantizedFormats.Of(8, 128, symmetric: true),
        };
        var specs = new List<PeerSpec>();
        foreach (var f in nbits)
        {
            specs.Add(new PeerSpec($"{f.Name}/acc4", f, PeerOp.MatMulNBits, 4, ActivationPrecision.Int8));
            specs.Add(new PeerSpec($"{f.Name}/acc0", f, PeerOp.MatMulNBits, 0, ActivationPrecision.Float32));
        }
        var row = QuantizedFormats.Of(8, 0, symmetric: true);
        specs.Add(new PeerSpec($"{row.Name}/dqmm", row, PeerOp.DynamicQuantizeMatMul, 0, ActivationPrecision.Int8));
        specs.Add(new PeerSpec("fp32/matmul", Fp32Storage.Format, PeerOp.MatMul, 0, null));
        return specs;
    }

    /// <summary>
    /// The ONNX model that runs this peer on <paramref name="storage"/>'s codes (never re-quantized: the bytes are
    /// Condense's). <paramref name="dense"/> is only read for the fp32 MatMul.
    /// </summary>
    /// <param name="corruption">A deliberate mistake (self-check only); <see cref="Corruption.None"/> for the real model.</param>
    public byte[] BuildModel(IWeightStorage storage, float[] dense, out long weightBytes, Corruption corruption = Corruption.None)
    {
        int n = storage.OutFeatures, k = storage.InFeatures;
        switch (Op)
        {
            case PeerOp.MatMulNBits:
            {
                var w = (GroupQuantizedWeight)storage;
                int bits = w.Scheme.Bits, block = w.Scheme.GroupSize;
                if (block == 0 || k % block != 0 || block * bits % 8 != 0)
                    throw new InvalidOperationException($"{Name}: MatMulNBits needs whole blocks along K; K = {k}, block = {block}, bits = {bits}");
                int kBlocks = k / block, blob = block * bits / 8;
                // Condense rows are K values packed low bits first, byte-aligned per row; with K a multiple of the
                // block, row n is exactly B[n, 0..kBlocks, 0..blob]: the same bytes, no repacking.
                var packed = corruption == Corruption.SwapNibbles ? w.Packed.Select(b => (byte)((b << 4) | (b >> 4))).ToArray() : w.Packed;
                var scales = w.Scales.Select(s => (float)s).ToArray();
                if (corruption == Corruption.ScalesShifted)
                    scales = scales.Select((_, i) => scales[i - i % kBlocks + (i + 1) % kBlocks]).ToArray();
                var inits = new List<OnnxInitializer>
                {
                    new("B", OnnxType.UInt8, [n, kBlocks, blob], packed),
                    new("scales", OnnxType.Float, [n, kBlocks], FloatBytes(scales)),
                };
                var inputs = new List<string> { "A", "B", "scales" };
                if (w.ZeroPoints is { } zp && corruption != Corruption.NoZeroPoints)
                {
                    // Packed like B: ceil(kBlocks * bits / 8) bytes per row, block j of 4 bits in the low nibble when j is even.
                    var zpBytes = PackZeroPoints(zp, n, kBlocks, bits);
                    if (corruption == Corruption.ZeroPointsHighFirst) zpBytes = zpBytes.Select(b => (byte)((b << 4) | (b >> 4))).ToArray();
                    inits.Add(new("zero_points", OnnxType.UInt8, [n, ((long)kBlocks * bits + 7) / 8], zpBytes));
                    inputs.Add("zero_points");
                }
                // No zero_points: MatMulNBits uses 2^(bits-1), Condense's symmetric zero point (ContribOperators.md).
                weightBytes = inits.Sum(i => i.RawData.LongLength);
                return OnnxModel.Build("MatMulNBits", "com.microsoft", inputs, inits,
                    [new("K", k), new("N", n), new("bits", bits), new("block_size", block), new("accuracy_level", AccuracyLevel)], k, n);
            }
            case PeerOp.DynamicQuantizeMatMul:
            {
                var w = (GroupQuantizedWeight)storage;
                if (w.Scheme is not { Bits: 8, GroupSize: 0, Symmetric: true })
                    throw new InvalidOperationException($"{Name}: DynamicQuantizeMatMul needs int8 per-row symmetric codes, got {w.Format}");
                // Y = A x B with B [K, N]: Condense's row n is column n. Codes q in [0, 255] with zero point 128 become
                // the signed q - 128 with ORT's default zero point 0: the same values, and the s8 weights MLAS is fastest on.
                var b = new byte[(long)k * n];
                bool transpose = corruption != Corruption.NotTransposed;
                for (int o = 0; o < n; o++)
                    for (int i = 0; i < k; i++)
                        b[transpose ? (long)i * n + o : (long)o * k + i] = unchecked((byte)(sbyte)(w.Packed[(long)o * k + i] - 128));
                var scales = FloatBytes(w.Scales.Select(s => (float)s).ToArray());
                weightBytes = b.LongLength + scales.LongLength;
                return OnnxModel.Build("DynamicQuantizeMatMul", "com.microsoft", ["A", "B", "b_scale"],
                    [new("B", OnnxType.Int8, [k, n], b), new("b_scale", OnnxType.Float, [n], scales)], [], k, n);
            }
            default:
            {
                // MatMul takes B [K, N]: the transpose of the [N, K] matrix Condense's DenseWeight holds.
                var t = new float[(long)k * n];
                bool transpose = corruption != Corruption.NotTransposed;
                for (int o = 0; o < n; o++)
                    for (int i = 0; i < k; i++)
                        t[transpose ? (long)i * n + o : (long)o * k + i] = dense[(long)o * k + i];
                var raw = FloatBytes(t);
                weightBytes = raw.LongLength;
                return OnnxModel.Build("MatMul", "", ["A", "B"], [new("B", OnnxType.Float, [k, n], raw)], [], k, n);
            }
        }
    }

    /// <summary>Condense's one zero point per byte, repacked at <paramref name="bits"/> per value, low bits first, per row.</summary>
    internal static byte[] PackZeroPoints(byte[] zeroPoints, int rows, int blocks, int bits)
    {
        if (bits == 8) return (byte[])zeroPoints.Clone();
        if (bits != 4) throw new NotSupportedException($"zero points at {bits} bits: only 4 and 8 are packed here");
        int rowBytes = (blocks + 1) / 2;
        var packed = new byte[(long)rows * rowBytes];
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < blocks; j++)
                packed[(long)r * rowBytes + j / 2] |= (byte)(zeroPoints[(long)r * blocks + j] << (j % 2 * 4));
        return packed;
    }

    private static byte[] FloatBytes(float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
