using System.Runtime.CompilerServices;

namespace Condense.Kernels;

/// <summary>
/// fp32 y[B, Out] = x[B, In] W[Out, In]^T for inference: a bandwidth-bound dot-product kernel for small batches
/// and a k-blocked, register-tiled (4 W rows x 3 x rows) kernel for batches of <see cref="GemmMinBatch"/> and more.
/// </summary>
/// <remarks>
/// The scalar reference computes each output as one fused multiply-add chain over i in increasing order from 0.
/// The SIMD paths accumulate i in vector lanes (lane l takes i = l mod width), reduce the lanes at the end and
/// add the tail, so they differ from the reference by float32 reassociation only. Every output is computed by
/// one thread in a fixed order (threads split W rows), so no result depends on the thread count.
/// </remarks>
internal static unsafe class DenseMatMul
{
    /// <summary>Batches at least this large use the packed GEMM kernel.</summary>
    public const int GemmMinBatch = 4;

    private const int GemvRows = 4;   // W rows per dot-product tile: 4 streams keep the loads busy
    private const int KC = 512;       // k block: 4 W row segments of KC floats (8 KiB) stay in L1
    private const long SerialWork = 1 << 15; // below this many multiply-adds a thread hand-off costs more than it saves

    [ThreadStatic] private static float[]? t_panel;

    public static void MatMulTransposed(float* x, float* w, float* y, int batch, int outF, int inF)
    {
        if (batch == 0 || outF == 0) return;
        int bits = KernelOptions.VectorBits;
        int degree = (long)batch * outF * inF < SerialWork ? 1 : int.MaxValue;
        if (bits == 0)
        {
            var body = new ScalarBody { X = x, W = w, Y = y, Batch = batch, Out = outF, In = inF };
            WorkerPool.Shared.For(outF, ref body, degree);
        }
        else if (batch < GemmMinBatch)
        {
            var body = new GemvBody { X = x, W = w, Y = y, Batch = batch, Out = outF, In = inF, Bits = bits };
            WorkerPool.Shared.For((outF + GemvRows - 1) / GemvRows, ref body, degree);
        }
        else
        {
            var body = new GemmBody { X = x, W = w, Y = y, Batch = batch, Out = outF, In = inF, Bits = bits };
            WorkerPool.Shared.For((outF + GemvRows - 1) / GemvRows, ref body, degree);
        }
    }

    /// <summary>The scalar reference: one fma chain per output.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Reference(float* x, float* w, float* y, int batch, int outF, int inF, int rowStart, int rowEnd)
    {
        for (int o = rowStart; o < rowEnd; o++)
        {
            float* wr = w + (nint)o * inF;
            for (int b = 0; b < batch; b++)
            {
                float* xr = x + (nint)b * inF;
                float sum = 0f;
                for (int i = 0; i < inF; i++) sum = MathF.FusedMultiplyAdd(xr[i], wr[i], sum);
                y[(nint)b * outF + o] = sum;
            }
        }
    }

    private struct ScalarBody : IRangeBody
    {
        public float* X, W, Y;
        public int Batch, Out, In;
        public readonly void Invoke(int start, int end) => Reference(X, W, Y, Batch, Out, In, start, end);
    }

    private struct GemvBody : IRangeBody
    {
        public float* X, W, Y;
        public int Batch, Out, In, Bits;

        public readonly void Invoke(int start, int end)
        {
            int r0 = start * GemvRows, r1 = Math.Min(Out, end * GemvRows);
            if (Bits == 512) GemvTile<F512>(X, W, Y, Batch, Out, In, r0, r1);
            else if (Bits == 256) GemvTile<F256>(X, W, Y, Batch, Out, In, r0, r1);
            else GemvTile<F128>(X, W, Y, Batch, Out, In, r0, r1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvTile<TV>(float* x, float* w, float* y, int batch, int outF, int inF, int r0, int r1)
        where TV : struct, IFloatVector<TV>
    {
        int o = r0;
        for (; o + GemvRows <= r1; o += GemvRows)
            for (int b = 0; b < batch; b++)
                Dot4<TV>(x + (nint)b * inF, w + (nint)o * inF, inF, y + (nint)b * outF + o);
        for (; o < r1; o++)
            for (int b = 0; b < batch; b++)
                y[(nint)b * outF + o] = Dot1<TV>(x + (nint)b * inF, w + (nint)o * inF, inF);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot4<TV>(float* x, float* w0, int n, float* y) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        float* w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
        TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero, b0 = TV.Zero, b1 = TV.Zero, b2 = TV.Zero, b3 = TV.Zero;
        int i = 0;
        // Two independent chains per row hide the FMA latency.
        for (; i + 2 * v <= n; i += 2 * v)
        {
            TV xa = TV.Load(x + i), xb = TV.Load(x + i + v);
            a0 = TV.Fma(TV.Load(w0 + i), xa, a0); b0 = TV.Fma(TV.Load(w0 + i + v), xb, b0);
            a1 = TV.Fma(TV.Load(w1 + i), xa, a1); b1 = TV.Fma(TV.Load(w1 + i + v), xb, b1);
            a2 = TV.Fma(TV.Load(w2 + i), xa, a2); b2 = TV.Fma(TV.Load(w2 + i + v), xb, b2);
            a3 = TV.Fma(TV.Load(w3 + i), xa, a3); b3 = TV.Fma(TV.Load(w3 + i + v), xb, b3);
        }
        for (; i + v <= n; i += v)
        {
            TV xa = TV.Load(x + i);
            a0 = TV.Fma(TV.Load(w0 + i), xa, a0);
            a1 = TV.Fma(TV.Load(w1 + i), xa, a1);
            a2 = TV.Fma(TV.Load(w2 + i), xa, a2);
            a3 = TV.Fma(TV.Load(w3 + i), xa, a3);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1)), s2 = TV.Sum(TV.Add(a2, b2)), s3 = TV.Sum(TV.Add(a3, b3));
        for (; i < n; i++)
        {
            float xi = x[i];
            s0 = MathF.FusedMultiplyAdd(xi, w0[i], s0);
            s1 = MathF.FusedMultiplyAdd(xi, w1[i], s1);
            s2 = MathF.FusedMultiplyAdd(xi, w2[i], s2);
            s3 = MathF.FusedMultiplyAdd(xi, w3[i], s3);
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot1<TV>(float* x, float* w, int n) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        TV a = TV.Zero, b = TV.Zero;
        int i = 0;
        for (; i + 2 * v <= n; i += 2 * v)
        {
            a = TV.Fma(TV.Load(w + i), TV.Load(x + i), a);
            b = TV.Fma(TV.Load(w + i + v), TV.Load(x + i + v), b);
        }
        for (; i + v <= n; i += v) a = TV.Fma(TV.Load(w + i), TV.Load(x + i), a);
        float s = TV.Sum(TV.Add(a, b));
        for (; i < n; i++) s = MathF.FusedMultiplyAdd(x[i], w[i], s);
        return s;
    }

    private struct GemmBody : IRangeBody
    {
        public float* X, W, Y;
        public int Batch, Out, In, Bits;

        public readonly void Invoke(int start, int end)
        {
            int r0 = start * GemvRows, r1 = Math.Min(Out, end * GemvRows);
            if (Bits == 512) GemmTiles<F512>(X, W, Y, Batch, Out, In, r0, r1);
            else if (Bits == 256) GemmTiles<F256>(X, W, Y, Batch, Out, In, r0, r1);
            else GemmTiles<F128>(X, W, Y, Batch, Out, In, r0, r1);
        }
    }

    // Per tile of 4 W rows: for each k block, 4 x 3 register tiles of (W row, x row) partial dot products run over
    // all batch rows; the unreduced vector accumulators wait in an L1 scratch between k blocks, so the 4 W row
    // segments stay in L1 while the x block streams from L2, and lanes are reduced only once at the end.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmTiles<TV>(float* x, float* w, float* y, int batch, int outF, int inF, int r0, int r1)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        int accFloats = batch * GemvRows * v;
        var scratch = t_panel;
        if (scratch is null || scratch.Length < accFloats)
            t_panel = scratch = GC.AllocateArray<float>(Math.Max(accFloats, 128 * GemvRows * 16), pinned: true);
        float* acc = (float*)Unsafe.AsPointer(ref scratch[0]);
        int body = inF - inF % v; // the vector part; the tail is added per output at the end
        int o = r0;
        for (; o + GemvRows <= r1; o += GemvRows)
        {
            float* wt = w + (nint)o * inF;
            for (int k0 = 0; k0 < body; k0 += KC)
            {
                int k1 = Math.Min(body, k0 + KC);
                bool first = k0 == 0;
                int b = 0;
                for (; b + 3 <= batch; b += 3)
                    Tile4x3<TV>(x + (nint)b * inF, inF, wt, k0, k1, acc + (nint)b * GemvRows * v, first);
                for (; b < batch; b++)
                    Tile4x1<TV>(x + (nint)b * inF, inF, wt, k0, k1, acc + (nint)b * GemvRows * v, first);
            }
            for (int b = 0; b < batch; b++)
            {
                float* xr = x + (nint)b * inF;
                for (int r = 0; r < GemvRows; r++)
                {
                    float s = body == 0 ? 0f : TV.Sum(TV.Load(acc + ((nint)b * GemvRows + r) * v));
                    float* wr = wt + (nint)r * inF;
                    for (int i = body; i < inF; i++) s = MathF.FusedMultiplyAdd(xr[i], wr[i], s);
                    y[(nint)b * outF + o + r] = s;
                }
            }
        }
        for (; o < r1; o++)
            for (int b = 0; b < batch; b++)
                y[(nint)b * outF + o] = Dot1<TV>(x + (nint)b * inF, w + (nint)o * inF, inF);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile4x3<TV>(float* x0, int n, float* w0, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        float* x1 = x0 + n, x2 = x1 + n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
        TV a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23;
        if (first)
        {
            a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = TV.Zero;
        }
        else
        {
            a00 = TV.Load(acc); a01 = TV.Load(acc + v); a02 = TV.Load(acc + 2 * v); a03 = TV.Load(acc + 3 * v);
            a10 = TV.Load(acc + 4 * v); a11 = TV.Load(acc + 5 * v); a12 = TV.Load(acc + 6 * v); a13 = TV.Load(acc + 7 * v);
            a20 = TV.Load(acc + 8 * v); a21 = TV.Load(acc + 9 * v); a22 = TV.Load(acc + 10 * v); a23 = TV.Load(acc + 11 * v);
        }
        for (int i = k0; i < k1; i += v)
        {
            TV q0 = TV.Load(w0 + i), q1 = TV.Load(w1 + i), q2 = TV.Load(w2 + i), q3 = TV.Load(w3 + i);
            TV p = TV.Load(x0 + i);
            a00 = TV.Fma(p, q0, a00); a01 = TV.Fma(p, q1, a01); a02 = TV.Fma(p, q2, a02); a03 = TV.Fma(p, q3, a03);
            p = TV.Load(x1 + i);
            a10 = TV.Fma(p, q0, a10); a11 = TV.Fma(p, q1, a11); a12 = TV.Fma(p, q2, a12); a13 = TV.Fma(p, q3, a13);
            p = TV.Load(x2 + i);
            a20 = TV.Fma(p, q0, a20); a21 = TV.Fma(p, q1, a21); a22 = TV.Fma(p, q2, a22); a23 = TV.Fma(p, q3, a23);
        }
        TV.Store(a00, acc); TV.Store(a01, acc + v); TV.Store(a02, acc + 2 * v); TV.Store(a03, acc + 3 * v);
        TV.Store(a10, acc + 4 * v); TV.Store(a11, acc + 5 * v); TV.Store(a12, acc + 6 * v); TV.Store(a13, acc + 7 * v);
        TV.Store(a20, acc + 8 * v); TV.Store(a21, acc + 9 * v); TV.Store(a22, acc + 10 * v); TV.Store(a23, acc + 11 * v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile4x1<TV>(float* x0, int n, float* w0, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        float* w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
        TV a0 = first ? TV.Zero : TV.Load(acc), a1 = first ? TV.Zero : TV.Load(acc + v);
        TV a2 = first ? TV.Zero : TV.Load(acc + 2 * v), a3 = first ? TV.Zero : TV.Load(acc + 3 * v);
        for (int i = k0; i < k1; i += v)
        {
            TV p = TV.Load(x0 + i);
            a0 = TV.Fma(p, TV.Load(w0 + i), a0); a1 = TV.Fma(p, TV.Load(w1 + i), a1);
            a2 = TV.Fma(p, TV.Load(w2 + i), a2); a3 = TV.Fma(p, TV.Load(w3 + i), a3);
        }
        TV.Store(a0, acc); TV.Store(a1, acc + v); TV.Store(a2, acc + 2 * v); TV.Store(a3, acc + 3 * v);
    }
}
