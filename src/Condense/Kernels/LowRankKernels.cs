using System.Runtime.CompilerServices;
using Condense.Sparsity;

namespace Condense.Kernels;

/// <summary>
/// Row-major dot-product products for the low-rank factors: y[b, o] (+)= dot(x[b, :], w[o, :]), every weight row
/// read once per call. Batch 1 walks the rows one after another (one sequential weight stream per thread); above it,
/// register tiles of 4 batch rows x 2 weight rows, cache-blocked.
/// </summary>
/// <remarks>
/// Batch 1 used to take four rows at a time (four weight streams, one x load per four FMAs). On U's short rows (r
/// floats each) that read DRAM at less than half the rate of one sequential stream: measured on the development VM
/// (Zen 4 class, one thread, cold, CPU time), 11008 x 512: 9-11 GB per CPU-second with four rows at a time against
/// 24 with one row after another; 16384 x 256: 7 against 20; 8192 x 1024 and 4096 x 2048: 15 against 22-25; at 4096
/// floats per row (V) the two were equal. Four streams of only 2 KiB each restart the hardware prefetcher every 8 KiB;
/// software prefetch ahead of the four-row block did not recover it (12 GB per CPU-second). Both loops sum a row in the
/// same order (two chains over alternate vectors, a leftover vector into the first, their lane sum, then the scalar
/// tail), so the change kept every bit.
/// </remarks>
internal static unsafe class LowRankKernels
{
    // Weight rows per cache block: 16 rows of 4096 floats (256 KiB) stay in L2 while every batch tile passes over them.
    private const int RowBlock = 16;

    /// <summary>y[b * ldy + o] (+)= sum_i x[b * k + i] * w[o * k + i] for b &lt; batch, o &lt; rows; parallel over o.</summary>
    /// <remarks>
    /// Threads take whole tiles: units of <see cref="TileRows"/> weight rows, fixed by the shape. A split inside a tile
    /// would send its rows through <see cref="Single{TV}"/> instead of <see cref="Tile4x2{TV}"/>, another summation
    /// order, so the bits would follow the thread count (or a busy pool running the call inline on one thread).
    /// </remarks>
    public static void DotProducts(float* x, int batch, int k, float* w, int rows, float* y, int ldy, bool accumulate)
    {
        if (batch == 0 || rows == 0) return;
        nint xa = (nint)x, wa = (nint)w, ya = (nint)y;
        int bits = KernelOptions.VectorBits;
        int unit = TileRows(batch);
        SparseParallel.For((rows + unit - 1) / unit, (long)k * batch * unit, (first, last) =>
        {
            int start = first * unit, end = Math.Min(rows, last * unit);
            if (bits >= 512) Rows<F512>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
            else if (bits >= 256) Rows<F256>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
            else if (bits >= 128) Rows<F128>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
            else Rows<F1>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
        });
    }

    /// <summary>
    /// Weight rows per unit of parallel work: 4 rows at batch 1 (each row is summed alone there, so the unit only sets
    /// the work per claim), the register tile's height, 2 rows of <see cref="Tile4x2{TV}"/>, above it. Every unit but the
    /// last is whole tiles, and <see cref="RowBlock"/> is a multiple of both, so a row's tile, and with it its summation
    /// order, depends only on the shape.
    /// </summary>
    private static int TileRows(int batch) => batch == 1 ? 4 : 2;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TV>(float* x, int batch, int k, float* w, int start, int end, float* y, int ldy, bool accumulate)
        where TV : struct, IFloatVector<TV>
    {
        if (batch == 1)
        {
            // One row after another: the thread's rows are one contiguous block, read as a single sequential stream
            // (x stays in L1). Several rows at a time were slower on short rows; see the class remarks.
            for (int o = start; o < end; o++) Single<TV>(x, w + (nint)o * k, k, y + o, accumulate);
            return;
        }

        for (int block = start; block < end; block += RowBlock)
        {
            int blockEnd = Math.Min(end, block + RowBlock);
            int b = 0;
            for (; b + 4 <= batch; b += 4)
            {
                int o = block;
                for (; o + 2 <= blockEnd; o += 2) Tile4x2<TV>(x + (nint)b * k, k, w + (nint)o * k, y + (nint)b * ldy + o, ldy, accumulate);
                for (; o < blockEnd; o++)
                    for (int t = 0; t < 4; t++) Single<TV>(x + (nint)(b + t) * k, w + (nint)o * k, k, y + (nint)(b + t) * ldy + o, accumulate);
            }
            for (; b < batch; b++)
                for (int o = block; o < blockEnd; o++) Single<TV>(x + (nint)b * k, w + (nint)o * k, k, y + (nint)b * ldy + o, accumulate);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile4x2<TV>(float* x, int k, float* w, float* y, int ldy, bool accumulate) where TV : struct, IFloatVector<TV>
    {
        int n = TV.Count;
        TV c00 = TV.Zero, c01 = TV.Zero, c10 = TV.Zero, c11 = TV.Zero, c20 = TV.Zero, c21 = TV.Zero, c30 = TV.Zero, c31 = TV.Zero;
        float* w0 = w, w1 = w + k;
        float* x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k;
        int i = 0;
        for (; i + n <= k; i += n)
        {
            TV a = TV.Load(w0 + i), b = TV.Load(w1 + i);
            TV v = TV.Load(x0 + i);
            c00 = TV.Fma(v, a, c00); c01 = TV.Fma(v, b, c01);
            v = TV.Load(x1 + i);
            c10 = TV.Fma(v, a, c10); c11 = TV.Fma(v, b, c11);
            v = TV.Load(x2 + i);
            c20 = TV.Fma(v, a, c20); c21 = TV.Fma(v, b, c21);
            v = TV.Load(x3 + i);
            c30 = TV.Fma(v, a, c30); c31 = TV.Fma(v, b, c31);
        }
        float s00 = TV.Sum(c00), s01 = TV.Sum(c01), s10 = TV.Sum(c10), s11 = TV.Sum(c11);
        float s20 = TV.Sum(c20), s21 = TV.Sum(c21), s30 = TV.Sum(c30), s31 = TV.Sum(c31);
        for (; i < k; i++)
        {
            float a = w0[i], b = w1[i];
            s00 = MathF.FusedMultiplyAdd(x0[i], a, s00); s01 = MathF.FusedMultiplyAdd(x0[i], b, s01);
            s10 = MathF.FusedMultiplyAdd(x1[i], a, s10); s11 = MathF.FusedMultiplyAdd(x1[i], b, s11);
            s20 = MathF.FusedMultiplyAdd(x2[i], a, s20); s21 = MathF.FusedMultiplyAdd(x2[i], b, s21);
            s30 = MathF.FusedMultiplyAdd(x3[i], a, s30); s31 = MathF.FusedMultiplyAdd(x3[i], b, s31);
        }
        Put(y, s00, accumulate); Put(y + 1, s01, accumulate);
        Put(y + ldy, s10, accumulate); Put(y + ldy + 1, s11, accumulate);
        Put(y + 2 * ldy, s20, accumulate); Put(y + 2 * ldy + 1, s21, accumulate);
        Put(y + 3 * ldy, s30, accumulate); Put(y + 3 * ldy + 1, s31, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Single<TV>(float* x, float* w, int k, float* y, bool accumulate) where TV : struct, IFloatVector<TV>
    {
        int n = TV.Count;
        TV c0 = TV.Zero, c1 = TV.Zero;
        int i = 0;
        for (; i + 2 * n <= k; i += 2 * n)
        {
            c0 = TV.Fma(TV.Load(x + i), TV.Load(w + i), c0);
            c1 = TV.Fma(TV.Load(x + i + n), TV.Load(w + i + n), c1);
        }
        for (; i + n <= k; i += n) c0 = TV.Fma(TV.Load(x + i), TV.Load(w + i), c0);
        float s = TV.Sum(TV.Add(c0, c1));
        for (; i < k; i++) s = MathF.FusedMultiplyAdd(x[i], w[i], s);
        Put(y, s, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* y, float value, bool accumulate) => *y = accumulate ? *y + value : value;
}
