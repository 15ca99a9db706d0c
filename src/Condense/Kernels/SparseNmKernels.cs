using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>An N:M pattern as a type, so the kernels fold N, M and the index width into constants.</summary>
internal interface INmPattern
{
    static abstract int N { get; }
    static abstract int M { get; }
    static abstract int IndexBits { get; }
}

internal readonly struct Nm2Of4 : INmPattern { public static int N => 2; public static int M => 4; public static int IndexBits => 2; }

internal readonly struct Nm1Of4 : INmPattern { public static int N => 1; public static int M => 4; public static int IndexBits => 2; }

internal readonly struct Nm2Of8 : INmPattern { public static int N => 2; public static int M => 8; public static int IndexBits => 3; }

/// <summary>
/// N:M rows: K kept values, each with its log2(M)-bit position inside its block, packed low bits first.
/// Batch 1 gathers x by the positions: AVX-512 expands 16 positions with one variable shift and picks x with
/// vpermt2ps from the 32 (or 2 x 32) inputs the 16 values cover; AVX2 uses a hardware gather. Cold, the kernel is
/// bound by how many lines of the DRAM stream the core keeps in flight, which falls with the instructions per line:
/// the AVX-512 loop spends 6 per 16 values (64 bytes) and no software prefetch; the AVX2 loop prefetches 8 KiB ahead.
/// </summary>
/// <remarks>
/// Tried on the target (Zen 5) and dropped: four rows at a time sharing each x window (fewer x loads, but eight
/// streams per thread read DRAM about 15% slower than two).
/// </remarks>
internal static unsafe class SparseNmKernels
{
    /// <summary>Software prefetch distance in values (8 KiB of fp32 values; the positions are fetched as far ahead).</summary>
    internal const int PrefetchFloats = 2048;

    /// <summary>sum over j &lt; k of values[j] * x[(j / N) * M + position(j)].</summary>
    /// <param name="streamValues">True when the values are the stored rows (the AVX2 loop prefetches them ahead into the
    /// next rows); false for a one-row scratch buffer, where fetching past it would only pollute L1.</param>
    public static float RowDot<TP>(float* values, byte* positions, byte* positionsEnd, int k, float* x, bool streamValues = false) where TP : struct, INmPattern
    {
        int bits = KernelOptions.VectorBits;
        if (bits >= 512 && Avx512F.IsSupported) return RowDotAvx512<TP>(values, positions, positionsEnd, k, x);
        if (bits >= 256 && Avx2.IsSupported) return RowDotAvx2<TP>(values, positions, positionsEnd, k, x, streamValues);
        if (bits >= 128) return RowDotVector128<TP>(values, positions, k, x);
        return RowDotScalar<TP>(values, positions, k, x);
    }

    /// <summary>Rows [start, end) of y = W x with fp32 values: row r has K values at values + r * K and its positions at positions + r * rowBytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows<TP>(float* values, byte* positions, byte* positionsEnd, int rowBytes, int k, float* x, float* y, int start, int end)
        where TP : struct, INmPattern
    {
        for (int r = start; r < end; r++)
            y[r] = RowDot<TP>(values + (nint)r * k, positions + (nint)r * rowBytes, positionsEnd, k, x, streamValues: true);
    }

    /// <summary>The scalar reference of <see cref="RowDot{TP}"/>: one chain in value order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float RowDotScalar<TP>(float* values, byte* positions, int k, float* x) where TP : struct, INmPattern
    {
        float sum = 0f;
        for (int j = 0; j < k; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[(j / TP.N) * TP.M + Position(positions, j, TP.IndexBits)], sum);
        return sum;
    }

    /// <summary>columns[j] = (j / N) * M + position(j) for j &lt; k.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DecodeColumns<TP>(byte* positions, int k, int* columns) where TP : struct, INmPattern
    {
        for (int j = 0; j < k; j++)
            columns[j] = (j / TP.N) * TP.M + Position(positions, j, TP.IndexBits);
    }

    /// <summary>The <paramref name="bits"/>-bit field j of a little-endian, low-bits-first packed row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Position(byte* positions, int j, int bits)
    {
        int bit = j * bits;
        int shift = bit & 7;
        int value = positions[bit >> 3] >> shift;
        // A 3-bit field can straddle two bytes; a 2-bit one never does.
        if (shift + bits > 8) value |= positions[(bit >> 3) + 1] << (8 - shift);
        return value & ((1 << bits) - 1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadBits(byte* p, byte* end)
    {
        if (p + 8 <= end && BitConverter.IsLittleEndian) return Unsafe.ReadUnaligned<ulong>(p);
        ulong bits = 0;
        for (int i = 0; p + i < end && i < 8; i++) bits |= (ulong)p[i] << (8 * i);
        return bits;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float RowDotAvx512<TP>(float* values, byte* positions, byte* positionsEnd, int k, float* x) where TP : struct, INmPattern
    {
        int n = TP.N, m = TP.M, lb = TP.IndexBits;
        int span = 16 * m / n;
        int chunkBytes = 2 * lb;
        uint l = (uint)lb;
        // Lanes 0..7 read fields from the low word, lanes 8..15 from the word shifted by 8 fields.
        // 2-bit positions: all 16 fields sit in one 32-bit word, broadcast to every lane.
        var shifts = lb == 2
            ? Vector512.Create(0u, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
            : Vector512.Create(0u, l, 2 * l, 3 * l, 4 * l, 5 * l, 6 * l, 7 * l, 0u, l, 2 * l, 3 * l, 4 * l, 5 * l, 6 * l, 7 * l);
        var bases = n == 2
            ? Vector512.Create(0, 0, m, m, 2 * m, 2 * m, 3 * m, 3 * m, 4 * m, 4 * m, 5 * m, 5 * m, 6 * m, 6 * m, 7 * m, 7 * m)
            : Vector512.Create(0, m, 2 * m, 3 * m, 4 * m, 5 * m, 6 * m, 7 * m, 8 * m, 9 * m, 10 * m, 11 * m, 12 * m, 13 * m, 14 * m, 15 * m);
        var mask = Vector512.Create((uint)((1 << lb) - 1));
        var upperLanes = Vector512.Create(0, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1, -1, -1).AsSingle();

        int chunks = k / 16;
        var acc0 = Vector512<float>.Zero;
        var acc1 = Vector512<float>.Zero;
        var acc2 = Vector512<float>.Zero;
        var acc3 = Vector512<float>.Zero;
        // Pointers walk the values, positions and x windows: indexed addressing cost the JIT 6 scalar instructions per
        // 16 values (sign extensions, shifts, leas) beside the 7 vector ones. No software prefetch: on the development VM
        // (Zen 4 class) prefetching the values and positions 8 KiB ahead read fewer bytes per CPU-second than the
        // hardware prefetcher alone (one thread, cold, S1; docs/kernels.md), as it did for every plain read loop
        // --quick readprobe measured.
        float* v = values, vEnd4 = values + (nint)(chunks & ~3) * 16, vEnd = values + (nint)chunks * 16;
        byte* p = positions;
        float* xc = x;
        for (; v < vEnd4; v += 64, p += 4 * chunkBytes, xc += 4 * span)
        {
            acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(v), Gather(p, xc, 0), acc0);
            acc1 = Vector512.FusedMultiplyAdd(Vector512.Load(v + 16), Gather(p, xc, 1), acc1);
            acc2 = Vector512.FusedMultiplyAdd(Vector512.Load(v + 32), Gather(p, xc, 2), acc2);
            acc3 = Vector512.FusedMultiplyAdd(Vector512.Load(v + 48), Gather(p, xc, 3), acc3);
        }
        for (; v < vEnd; v += 16, p += chunkBytes, xc += span)
            acc0 = Vector512.FusedMultiplyAdd(Vector512.Load(v), Gather(p, xc, 0), acc0);
        float sum = Vector512.Sum((acc0 + acc1) + (acc2 + acc3));
        for (int j = chunks * 16; j < k; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[(j / n) * m + Position(positions, j, lb)], sum);
        return sum;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        // Chunk i after the pointers: a constant offset the JIT folds into the loads' addresses.
        Vector512<float> Gather(byte* p, float* xc, int i)
        {
            Vector512<uint> words;
            if (lb == 2)
            {
                words = Vector512.Create(Unsafe.ReadUnaligned<uint>(p + i * 4));
            }
            else
            {
                ulong bits = ReadBits(p + i * chunkBytes, positionsEnd);
                words = Vector512.Create(Vector256.Create((uint)bits), Vector256.Create((uint)(bits >> (8 * lb))));
            }
            // (field & mask) | base in one vpternlogd (0xEA = A & B | C): a base is a multiple of M and a field is below
            // M, so OR is the add; one instruction less per 16 values, which is what bounds this cold loop.
            var index = Avx512F.TernaryLogic(Avx512F.ShiftRightLogicalVariable(words, shifts), mask, bases.AsUInt32(), 0xEA).AsInt32();
            int o = i * span;
            if (span == 32)
                return Avx512F.PermuteVar16x32x2(Vector512.Load(xc + o), index, Vector512.Load(xc + o + 16));
            // 64 inputs: lanes 0..7 pick from the first 32, lanes 8..15 from the next (vpermt2ps ignores index bit 5).
            var low = Avx512F.PermuteVar16x32x2(Vector512.Load(xc + o), index, Vector512.Load(xc + o + 16));
            var high = Avx512F.PermuteVar16x32x2(Vector512.Load(xc + o + 32), index, Vector512.Load(xc + o + 48));
            return Vector512.ConditionalSelect(upperLanes, high, low);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float RowDotAvx2<TP>(float* values, byte* positions, byte* positionsEnd, int k, float* x, bool streamValues) where TP : struct, INmPattern
    {
        int n = TP.N, m = TP.M, lb = TP.IndexBits;
        int span = 8 * m / n;
        uint l = (uint)lb;
        var shifts = Vector256.Create(0u, l, 2 * l, 3 * l, 4 * l, 5 * l, 6 * l, 7 * l);
        var bases = n == 2
            ? Vector256.Create(0, 0, m, m, 2 * m, 2 * m, 3 * m, 3 * m)
            : Vector256.Create(0, m, 2 * m, 3 * m, 4 * m, 5 * m, 6 * m, 7 * m);
        var mask = Vector256.Create((uint)((1 << lb) - 1));

        int chunks = k / 8;
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        int c = 0;
        for (; c + 2 <= chunks; c += 2)
        {
            if (streamValues) Sse.Prefetch0(values + c * 8 + PrefetchFloats);
            Sse.Prefetch0(positions + (c * 8 + PrefetchFloats) * lb / 8);
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(values + c * 8), Gather(c), acc0);
            acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(values + c * 8 + 8), Gather(c + 1), acc1);
        }
        if (c < chunks)
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(values + c * 8), Gather(c), acc0);
        float sum = Vector256.Sum(acc0 + acc1);
        for (int j = chunks * 8; j < k; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[(j / n) * m + Position(positions, j, lb)], sum);
        return sum;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        Vector256<float> Gather(int chunk)
        {
            uint bits = (uint)ReadBits(positions + chunk * lb, positionsEnd);
            var index = (Avx2.ShiftRightLogicalVariable(Vector256.Create(bits), shifts) & mask).AsInt32() + bases;
            return Avx2.GatherVector256(x + (nint)chunk * span, index, 4);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float RowDotVector128<TP>(float* values, byte* positions, int k, float* x) where TP : struct, INmPattern
    {
        int n = TP.N, m = TP.M, lb = TP.IndexBits;
        var acc = Vector128<float>.Zero;
        int j = 0;
        for (; j + 4 <= k; j += 4)
        {
            var gathered = Vector128.Create(
                x[(j / n) * m + Position(positions, j, lb)],
                x[((j + 1) / n) * m + Position(positions, j + 1, lb)],
                x[((j + 2) / n) * m + Position(positions, j + 2, lb)],
                x[((j + 3) / n) * m + Position(positions, j + 3, lb)]);
            acc = Vector128.FusedMultiplyAdd(Vector128.Load(values + j), gathered, acc);
        }
        float sum = Vector128.Sum(acc);
        for (; j < k; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[(j / n) * m + Position(positions, j, lb)], sum);
        return sum;
    }
}
