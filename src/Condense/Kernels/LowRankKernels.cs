using System.Runtime.CompilerServices;
using Condense.Sparsity;

namespace Condense.Kernels;

/// <summary>
/// Row-major dot-product products for the low-rank factors: y[b, o] (+)= dot(x[b, :], w[o, :]), every weight row
/// read once per call at batch 1 (four rows at a time), and register tiles of 4 batch rows x 2 weight rows, cache-blocked, above it.
/// </summary>
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
    /// Weight rows per unit of parallel work: the register tile's height (4 rows of <see cref="Rows4{TV}"/> at batch 1,
    /// 2 rows of <see cref="Tile4x2{TV}"/> above it). Every unit but the last is whole tiles, and <see cref="RowBlock"/> is a
    /// multiple of both, so a row's tile, and with it its summation order, depends only on the shape.
    /// </summary>
    private static int TileRows(int batch) => batch == 1 ? 4 : 2;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TV>(float* x, int batch, int k, float* w, int start, int end, float* y, int ldy, bool accumulate)
        where TV : struct, IFloatVector<TV>
    {
        if (batch == 1)
        {
            // Four rows at a time: four weight streams in flight and one x load per four FMAs (the x row stays in L1).
            int o = start;
            for (; o + 4 <= end; o += 4) Rows4<TV>(x, w + (nint)o * k, k, y + o, accumulate);
            for (; o < end; o++) Single<TV>(x, w + (nint)o * k, k, y + o, accumulate);
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
    private static void Rows4<TV>(float* x, float* w0, int k, float* y, bool accumulate) where TV : struct, IFloatVector<TV>
    {
        int n = TV.Count;
        float* w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
        TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero, b0 = TV.Zero, b1 = TV.Zero, b2 = TV.Zero, b3 = TV.Zero;
        int i = 0;
        // Two chains per row hide the FMA latency.
        for (; i + 2 * n <= k; i += 2 * n)
        {
            TV xa = TV.Load(x + i), xb = TV.Load(x + i + n);
            a0 = TV.Fma(xa, TV.Load(w0 + i), a0); b0 = TV.Fma(xb, TV.Load(w0 + i + n), b0);
            a1 = TV.Fma(xa, TV.Load(w1 + i), a1); b1 = TV.Fma(xb, TV.Load(w1 + i + n), b1);
            a2 = TV.Fma(xa, TV.Load(w2 + i), a2); b2 = TV.Fma(xb, TV.Load(w2 + i + n), b2);
            a3 = TV.Fma(xa, TV.Load(w3 + i), a3); b3 = TV.Fma(xb, TV.Load(w3 + i + n), b3);
        }
        for (; i + n <= k; i += n)
        {
            TV xa = TV.Load(x + i);
            a0 = TV.Fma(xa, TV.Load(w0 + i), a0);
            a1 = TV.Fma(xa, TV.Load(w1 + i), a1);
            a2 = TV.Fma(xa, TV.Load(w2 + i), a2);
            a3 = TV.Fma(xa, TV.Load(w3 + i), a3);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1)), s2 = TV.Sum(TV.Add(a2, b2)), s3 = TV.Sum(TV.Add(a3, b3));
        for (; i < k; i++)
        {
            float xi = x[i];
            s0 = MathF.FusedMultiplyAdd(xi, w0[i], s0);
            s1 = MathF.FusedMultiplyAdd(xi, w1[i], s1);
            s2 = MathF.FusedMultiplyAdd(xi, w2[i], s2);
            s3 = MathF.FusedMultiplyAdd(xi, w3[i], s3);
        }
        Put(y, s0, accumulate); Put(y + 1, s1, accumulate); Put(y + 2, s2, accumulate); Put(y + 3, s3, accumulate);
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
