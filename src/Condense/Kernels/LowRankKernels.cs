using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Condense.Sparsity;

namespace Condense.Kernels;

/// <summary>
/// Row-major dot-product products for the low-rank factors: y[b, o] (+)= dot(x[b, :], w[o, :]), every weight row
/// read once per call at batch 1, and register tiles of 4 batch rows x 2 weight rows, cache-blocked, above it.
/// </summary>
internal static unsafe class LowRankKernels
{
    // Weight rows per cache block: 16 rows of 4096 floats (256 KiB) stay in L2 while every batch tile passes over them.
    private const int RowBlock = 16;

    /// <summary>y[b * ldy + o] (+)= sum_i x[b * k + i] * w[o * k + i] for b &lt; batch, o &lt; rows; parallel over o.</summary>
    public static void DotProducts(float* x, int batch, int k, float* w, int rows, float* y, int ldy, bool accumulate)
    {
        if (batch == 0 || rows == 0) return;
        nint xa = (nint)x, wa = (nint)w, ya = (nint)y;
        SparseParallel.For(rows, (long)k * batch, (start, end) =>
        {
            if (Vector512.IsHardwareAccelerated) Rows<F512>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
            else if (Vector256.IsHardwareAccelerated) Rows<F256>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
            else if (Vector128.IsHardwareAccelerated) Rows<F128>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
            else Rows<F1>((float*)xa, batch, k, (float*)wa, start, end, (float*)ya, ldy, accumulate);
        });
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TV>(float* x, int batch, int k, float* w, int start, int end, float* y, int ldy, bool accumulate)
        where TV : struct, IFloatVector<TV>
    {
        if (batch == 1)
        {
            for (int o = start; o < end; o++)
            {
                float dot = TensorPrimitives.Dot(new ReadOnlySpan<float>(x, k), new ReadOnlySpan<float>(w + (nint)o * k, k));
                y[o] = accumulate ? y[o] + dot : dot;
            }
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
