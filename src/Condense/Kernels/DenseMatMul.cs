using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>
/// fp32 y[B, Out] = x[B, In] W[Out, In]^T for inference: a bandwidth-bound dot-product kernel for small batches
/// and a packed, k-blocked broadcast-FMA kernel (8 W rows x 2 vectors of batch) for batches of <see cref="GemmMinBatch"/> and more.
/// </summary>
/// <remarks>
/// The scalar reference computes each output as one fused multiply-add chain over i in increasing order from 0;
/// the batched kernel runs exactly that chain per output (vectorized over the batch), so it equals the reference
/// bit for bit. The small-batch SIMD paths accumulate i in vector lanes (lane l takes i = l mod width), reduce the lanes at the end and
/// add the tail, so they differ from the reference by float32 reassociation only. Every output is computed by
/// one thread in a fixed order (threads split W rows), so no result depends on the thread count.
/// </remarks>
internal static unsafe class DenseMatMul
{
    /// <summary>Batches at least this large use a GEMM kernel rather than the one-pass dot products.</summary>
    public const int GemmMinBatch = 4;

    // Batches of at least this many vectors use the packed broadcast kernel; below it a vector of batch would be
    // mostly padding and the dot-product tiles (4 W rows x 3 x rows, W from L1) do fewer loads per FMA.
    private const int PackedMinVectors = 2;
    // Dot-product tiles' k block. Measured (S1 4096x4096, batch 16, per-thread CPU time): one block over the whole
    // row (W rows re-read from L2 by each group of x rows) beat 512-float blocks held in L1 by 1.0-1.3x, because the
    // accumulators then stay in registers instead of a round trip through the scratch per block; rows longer than
    // this are still blocked so 4 W row segments (64 KiB) and a group of x rows stay in L2.
    private const int KC = 4096;

    private const int GemvRows = 4;   // W rows per dot-product tile: 4 streams keep the loads busy
    internal const long SerialWork = 1 << 15; // below this many multiply-adds a thread hand-off costs more than it saves

    [ThreadStatic] private static float[]? t_panel;

    public static void MatMulTransposed(float* x, float* w, float* y, int batch, int outF, int inF) =>
        MatMulTransposed(x, w, y, batch, outF, inF, null, 0);

    /// <summary>
    /// As above; at batch 1, <paramref name="packed"/> (when not null) is W in <see cref="PackRows4"/>'s layout for
    /// vectors of <paramref name="packedBits"/> bits, and is read instead of <paramref name="w"/> if that is the
    /// current width. Same bits either way.
    /// </summary>
    public static void MatMulTransposed(float* x, float* w, float* y, int batch, int outF, int inF, float* packed, int packedBits)
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
            if (batch == 1 && packed != null && packedBits == bits && GemvRowsSideBySide == 0) body.Packed = packed;
            else if (batch == 1 && bits == 512 && GemvRowsFor(outF, inF) == 1 && inF >= 16 && ((nint)w & 3) == 0)
                body.XShifted = ShiftedInputs(x, w, outF, inF, out body.XStride);
            WorkerPool.Shared.For((outF + GemvRows - 1) / GemvRows, ref body, degree);
        }
        else if (UsesPackedKernel(batch, bits))
        {
            if (PackedSgemm.Applies(batch, bits)) PackedSgemm.Run(x, w, y, batch, outF, inF, degree);
            else GemmPacked(x, w, y, batch, outF, inF, bits, degree);
        }
        else
        {
            var body = new GemmBody { X = x, W = w, Y = y, Batch = batch, Out = outF, In = inF, Bits = bits };
            WorkerPool.Shared.For((outF + GemvRows - 1) / GemvRows, ref body, degree);
        }
    }

    /// <summary>
    /// Whether a batch takes the packed broadcast kernel (results equal <see cref="Reference"/> bit for bit) rather
    /// than the dot-product tiles: from two vectors of batch on, or from one vector when the padding is at most 1/8.
    /// </summary>
    /// <remarks>
    /// Batch 16 at 512 bits (one full vector) was the dot-product tiles' case until session 7: they load a W vector and
    /// an x vector per 2 FMAs (4 x 4 tile: 8 loads per 16 FMAs) and reduce lanes at the end; the packed 8 x 1 tile loads
    /// one x vector and 8 scalar broadcasts per 8 FMAs and reads each weight once. Measured S1 and S2 at batch 16, one
    /// thread, CPU time, against ORT's MatMul: 0.87x / 0.90x -> 1.11x / 1.02x. A 16-row tile was slower (0.61x): its 16
    /// W rows are inF floats apart, a multiple of 4 KiB for these shapes, so all 16 streams fall into one 8-way L1 set.
    /// </remarks>
    internal static bool UsesPackedKernel(int batch, int bits)
    {
        if (bits == 0 || batch < GemmMinBatch) return false;
        int v = bits / 32;
        int padded = (batch + v - 1) / v * v;
        return batch >= PackedMinVectors * v || padded * 7 <= batch * 8;
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

    /// <summary>
    /// Weight rows the batch-1..3 GEMV reads side by side: 0 (default) chooses by size (see <see cref="GemvStreamMinBytes"/>),
    /// 1 streams W in address order, one row after the next; 4 is the session-8 tile (4 rows sharing each activation
    /// load). Same bits either way (each output is the same two-chain dot product); a measurement knob for A/B runs
    /// of one build (the benchmarks set it by reflection), not an API.
    /// </summary>
    internal static int GemvRowsSideBySide { get; set; }

    /// <summary>
    /// Weights of at least this many bytes take the one-row stream at batch 1-3; smaller ones (cache-resident when a
    /// model calls them again and again) take the 4-row tile. `--quick readprobe` (8 MiB read again and again, from
    /// L2/L3): 4 rows side by side 131 GB/s of CPU time, one row 88-114 (two FMA chains per row are latency-bound
    /// there); from DRAM (64 MiB, cold) one row 50 GB/s, 4 rows 45.
    /// </summary>
    internal static long GemvStreamMinBytes { get; set; } = 8L << 20;

    /// <summary>W rows the batch-1..3 GEMV reads side by side for this shape: 1 (one stream) or 4 (the tile).</summary>
    private static int GemvRowsFor(int outF, int inF)
    {
        int rows = GemvRowsSideBySide;
        return rows != 0 ? rows : (long)outF * inF * sizeof(float) >= GemvStreamMinBytes ? 1 : 4;
    }

    [ThreadStatic] private static float[]? t_xShifted;

    /// <summary>
    /// Copies x so that for every W row's misalignment d (its first float's index mod 16 within a 64 B line) there
    /// is a copy of x at the same misalignment: copy d starts at result + d x stride + d, 64 B aligned up to d
    /// floats, with at least 16 floats of room before and after (what <see cref="Dot1Aligned512"/> reads beyond the
    /// row's ends). When inF is a multiple of 16 every row has the same d; x itself is used if it already matches
    /// (stride 0). The copies are the calling thread's and live until its next batch-1 product.
    /// </summary>
    private static float* ShiftedInputs(float* x, float* w, int outF, int inF, out int stride)
    {
        int d0 = (int)((nint)w >> 2) & 15;
        if (inF % 16 == 0 && ((nint)x & 63) == ((nint)w & 63))
        {
            stride = 0;
            return x - d0;
        }
        stride = (inF + 15) / 16 * 16 + 48;
        int needed = 16 * stride + 16;
        var buffer = t_xShifted;
        if (buffer is null || buffer.Length < needed)
            t_xShifted = buffer = GC.AllocateArray<float>(needed, pinned: true);
        float* b = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(buffer));
        b += (16 - (int)(((nint)b >> 2) & 15)) & 15; // 64 B aligned
        b += 16;                                     // room before each copy
        uint done = 0;
        for (int o = 0; o < Math.Min(outF, 16); o++)
        {
            int d = (d0 + (int)((long)o * inF % 16)) & 15;
            if ((done & (1u << d)) != 0) continue;
            done |= 1u << d;
            new ReadOnlySpan<float>(x, inF).CopyTo(new Span<float>(b + (nint)d * stride + d, inF));
        }
        return b;
    }

    // Batch 1-3, one index per GemvRows rows (the pool's split is unchanged). Session 9: a weight that streams from
    // DRAM is read one row after the next, i.e. as a single sequential stream per thread, with the activation rows
    // in L1/L2 and no software prefetch. `--quick readprobe` on this VM (docs/benchmarks.md): several rows side by
    // side read 10-32% slower from DRAM than one stream, and a prefetch per line never helped; ORT's MatMul also
    // walks its packed B as one stream. Every output keeps the exact chain of Dot1 (two vector chains over alternate
    // blocks, the leftover block into the first, lanes summed, scalar tail), so both shapes give the same bits.
    private struct GemvBody : IRangeBody
    {
        public float* X, W, Y, Packed, XShifted;
        public int Batch, Out, In, Bits, XStride;

        public readonly void Invoke(int start, int end)
        {
            int r0 = start * GemvRows, r1 = Math.Min(Out, end * GemvRows);
            if (Packed != null)
            {
                if (Bits == 512) GemvPacked<F512>(X, Packed, Y, Out, In, r0, r1);
                else if (Bits == 256) GemvPacked<F256>(X, Packed, Y, Out, In, r0, r1);
                else GemvPacked<F128>(X, Packed, Y, Out, In, r0, r1);
                return;
            }
            if (XShifted != null)
            {
                GemvRows1Aligned512(XShifted, XStride, W, Y, In, r0, r1);
                return;
            }
            int rows = GemvRowsFor(Out, In);
            if (rows == 4)
            {
                if (Bits == 512) GemvTile<F512>(X, W, Y, Batch, Out, In, r0, r1);
                else if (Bits == 256) GemvTile<F256>(X, W, Y, Batch, Out, In, r0, r1);
                else GemvTile<F128>(X, W, Y, Batch, Out, In, r0, r1);
            }
            else if (Bits == 512) GemvRows1<F512>(X, W, Y, Batch, Out, In, r0, r1);
            else if (Bits == 256) GemvRows1<F256>(X, W, Y, Batch, Out, In, r0, r1);
            else GemvRows1<F128>(X, W, Y, Batch, Out, In, r0, r1);
        }
    }

    /// <summary>
    /// W [outF, inF] re-laid for the batch-1 GEMV at <paramref name="bits"/>-bit vectors: each tile of 4 rows
    /// (GemvRows) is stored block by block, for each block k of v = bits / 32 floats the 4 rows' block k side by side
    /// (4 x v floats, one cache line each at 512 bits), then the 4 rows' tails (inF mod v floats each); rows past the
    /// last whole tile stay row-major. Same size as W; tile t starts at t x 4 x inF, a leftover row o at o x inF.
    /// </summary>
    /// <remarks>
    /// Why: `--quick readprobe` (docs/benchmarks.md, session 9) read this layout from DRAM 1.2-1.3x faster per core
    /// than one row at a time or 4 rows side by side: it is one sequential stream, like a plain read, and each
    /// activation load serves 4 rows, so per 64 B line the loop issues 1.25 loads instead of 2. ORT's MatMul reads
    /// its pre-packed B the same way.
    /// </remarks>
    internal static void PackRows4(float* w, float* dst, int outF, int inF, int bits)
    {
        int v = bits / 32, nb = inF / v, tail = inF - nb * v, tiles = outF / GemvRows;
        for (int t = 0; t < tiles; t++)
        {
            float* d = dst + (nint)t * GemvRows * inF;
            for (int r = 0; r < GemvRows; r++)
            {
                float* src = w + ((nint)t * GemvRows + r) * inF;
                for (int k = 0; k < nb; k++)
                    new ReadOnlySpan<float>(src + (nint)k * v, v).CopyTo(new Span<float>(d + ((nint)k * GemvRows + r) * v, v));
                new ReadOnlySpan<float>(src + (nint)nb * v, tail).CopyTo(new Span<float>(d + (nint)nb * GemvRows * v + r * tail, tail));
            }
        }
        long done = (long)tiles * GemvRows * inF, total = (long)outF * inF;
        if (total > done)
            new ReadOnlySpan<float>(w + done, (int)(total - done)).CopyTo(new Span<float>(dst + done, (int)(total - done)));
    }

    // Batch 1 over PackRows4's layout: per 4-row tile, two chains per row over alternate blocks (the leftover block
    // into the first), lanes summed, scalar tail: Dot1's chain for every row, so the bits equal the row-major paths'.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvPacked<TV>(float* x, float* packed, float* y, int outF, int inF, int r0, int r1)
        where TV : struct, IFloatVector<TV>
    {
        int tiles = outF / GemvRows;
        int o = r0;
        for (; o + GemvRows <= r1 && o / GemvRows < tiles; o += GemvRows)
            DotPacked4<TV>(x, packed + (nint)o * inF, inF, y + o);
        for (; o < r1; o++) y[o] = Dot1Streamed<TV>(x, packed + (nint)o * inF, inF);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void DotPacked4<TV>(float* x, float* p, int n, float* y) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count, nb = n / v;
        TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero, b0 = TV.Zero, b1 = TV.Zero, b2 = TV.Zero, b3 = TV.Zero;
        int k = 0;
        float* q = p;
        // 8 consecutive vectors per step: block k of rows 0-3 (chain a), block k + 1 of rows 0-3 (chain b).
        for (; k + 2 <= nb; k += 2, q += 8 * v)
        {
            TV xa = TV.Load(x + (nint)k * v), xb = TV.Load(x + (nint)(k + 1) * v);
            a0 = TV.Fma(TV.Load(q), xa, a0); a1 = TV.Fma(TV.Load(q + v), xa, a1);
            a2 = TV.Fma(TV.Load(q + 2 * v), xa, a2); a3 = TV.Fma(TV.Load(q + 3 * v), xa, a3);
            b0 = TV.Fma(TV.Load(q + 4 * v), xb, b0); b1 = TV.Fma(TV.Load(q + 5 * v), xb, b1);
            b2 = TV.Fma(TV.Load(q + 6 * v), xb, b2); b3 = TV.Fma(TV.Load(q + 7 * v), xb, b3);
        }
        if (k < nb)
        {
            TV xa = TV.Load(x + (nint)k * v);
            a0 = TV.Fma(TV.Load(q), xa, a0); a1 = TV.Fma(TV.Load(q + v), xa, a1);
            a2 = TV.Fma(TV.Load(q + 2 * v), xa, a2); a3 = TV.Fma(TV.Load(q + 3 * v), xa, a3);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1)), s2 = TV.Sum(TV.Add(a2, b2)), s3 = TV.Sum(TV.Add(a3, b3));
        int i0 = nb * v, tail = n - i0;
        float* t = p + (nint)nb * GemvRows * v;
        for (int j = 0; j < tail; j++)
        {
            float xi = x[i0 + j];
            s0 = MathF.FusedMultiplyAdd(xi, t[j], s0);
            s1 = MathF.FusedMultiplyAdd(xi, t[tail + j], s1);
            s2 = MathF.FusedMultiplyAdd(xi, t[2 * tail + j], s2);
            s3 = MathF.FusedMultiplyAdd(xi, t[3 * tail + j], s3);
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvRows1<TV>(float* x, float* w, float* y, int batch, int outF, int inF, int r0, int r1)
        where TV : struct, IFloatVector<TV>
    {
        if (batch == 1)
        {
            for (int o = r0; o < r1; o++) y[o] = Dot1Streamed<TV>(x, w + (nint)o * inF, inF);
            return;
        }
        // Batch 2-3: each W row is read once and dotted with every x row (x rows from L1/L2).
        for (int o = r0; o < r1; o++)
        {
            float* wr = w + (nint)o * inF;
            if (batch == 2) Dot1x2<TV>(x, x + inF, wr, inF, y + o, y + outF + o);
            else Dot1x3<TV>(x, x + inF, x + 2 * (nint)inF, wr, inF, y + o, y + outF + o, y + 2 * (nint)outF + o);
        }
    }

    // Batch 1, 512 bits, one row after the next with 64 B aligned loads of W (see Dot1Aligned512); xs from ShiftedInputs.
    // A managed float[]'s data starts 16 B past a line, so loads from each row's first float split two lines: the same
    // FMA loop from DRAM read 26.0 GB/s aligned against 18.3 16 B off (session 10, docs/benchmarks.md; one thread).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvRows1Aligned512(float* xs, int stride, float* w, float* y, int inF, int r0, int r1)
    {
        for (int o = r0; o < r1; o++)
        {
            float* wr = w + (nint)o * inF;
            int d = (int)((nint)wr >> 2) & 15;
            float* xd = xs + (nint)d * stride + d;
            y[o] = d == 0 ? Dot1Streamed<F512>(xd, wr, inF) : Dot1Aligned512(xd, wr, inF, d);
        }
    }

    /// <summary>
    /// <see cref="Dot1{TV}"/>'s exact chain at 512 bits for a row <paramref name="w"/> that starts <paramref name="d"/>
    /// (1-15) floats past a 64 B line, read with aligned loads (one cache line each, instead of two per load);
    /// <paramref name="x"/> has the same misalignment. n must be at least 16.
    /// </summary>
    /// <remarks>
    /// Dot1 puts element i in lane i mod 16 of chain a (even blocks i / 16) or b (odd blocks). The aligned vector m
    /// (w - d + 16m) holds, in lane j, element 16m + j - d: for j >= d block m, lane j - d; for j &lt; d block m - 1,
    /// lane j - d + 16. So the even-m vectors go to accumulator p and the odd ones to q, each lane in block order:
    /// p's lanes j >= d are chain a and its lanes j &lt; d chain b, q the other way round. Vector 0 keeps only lanes
    /// j >= d and vector nb (the whole-block count) only lanes j &lt; d, by a select that leaves the other lanes'
    /// accumulators untouched (the bytes loaded there lie in the row's first and last line: never a fault). At the
    /// end a and b are put together from p and q, their lanes rotated back by d, and summed as in Dot1, then the
    /// scalar tail in index order: the same bits.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot1Aligned512(float* x, float* w, int n, int d)
    {
        int nb = n >> 4;
        float* wa = w - d, xa = x - d;
        var indices = Vector512<int>.Indices;
        var high = Vector512.GreaterThanOrEqual(indices, Vector512.Create(d)).AsSingle();
        Vector512<float> p = Vector512<float>.Zero, q = Vector512<float>.Zero;
        p = Vector512.ConditionalSelect(high, Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wa), Vector512.LoadAligned(xa), p), p);
        int m = 1;
        for (; m + 8 <= nb; m += 8)
        {
            float* wm = wa + (nint)m * 16, xm = xa + (nint)m * 16;
            q = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm), Vector512.LoadAligned(xm), q);
            p = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 16), Vector512.LoadAligned(xm + 16), p);
            q = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 32), Vector512.LoadAligned(xm + 32), q);
            p = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 48), Vector512.LoadAligned(xm + 48), p);
            q = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 64), Vector512.LoadAligned(xm + 64), q);
            p = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 80), Vector512.LoadAligned(xm + 80), p);
            q = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 96), Vector512.LoadAligned(xm + 96), q);
            p = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 112), Vector512.LoadAligned(xm + 112), p);
        }
        for (; m + 2 <= nb; m += 2)
        {
            float* wm = wa + (nint)m * 16, xm = xa + (nint)m * 16;
            q = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm), Vector512.LoadAligned(xm), q);
            p = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wm + 16), Vector512.LoadAligned(xm + 16), p);
        }
        if (m < nb)
        {
            q = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wa + (nint)m * 16), Vector512.LoadAligned(xa + (nint)m * 16), q);
            m++;
        }
        // m == nb: the last whole block's lanes below d.
        var last = Vector512.FusedMultiplyAdd(Vector512.LoadAligned(wa + (nint)nb * 16), Vector512.LoadAligned(xa + (nint)nb * 16), (nb & 1) == 0 ? p : q);
        if ((nb & 1) == 0) p = Vector512.ConditionalSelect(high, p, last);
        else q = Vector512.ConditionalSelect(high, q, last);
        var rotate = (indices + Vector512.Create(d)) & Vector512.Create(15);
        var a = Avx512F.PermuteVar16x32(Vector512.ConditionalSelect(high, p, q), rotate);
        var b = Avx512F.PermuteVar16x32(Vector512.ConditionalSelect(high, q, p), rotate);
        float s = Vector512.Sum(a + b);
        for (int i = nb * 16; i < n; i++) s = MathF.FusedMultiplyAdd(x[i], w[i], s);
        return s;
    }

    /// <summary>
    /// <see cref="Dot1{TV}"/> with 8 vectors per loop step (4 per chain, in the same order): the same bits, a quarter
    /// of the loop overhead per cache line, so more lines of the stream are in flight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot1Streamed<TV>(float* x, float* w, int n) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        TV a = TV.Zero, b = TV.Zero;
        int i = 0;
        for (; i + 8 * v <= n; i += 8 * v)
        {
            a = TV.Fma(TV.Load(w + i), TV.Load(x + i), a);
            b = TV.Fma(TV.Load(w + i + v), TV.Load(x + i + v), b);
            a = TV.Fma(TV.Load(w + i + 2 * v), TV.Load(x + i + 2 * v), a);
            b = TV.Fma(TV.Load(w + i + 3 * v), TV.Load(x + i + 3 * v), b);
            a = TV.Fma(TV.Load(w + i + 4 * v), TV.Load(x + i + 4 * v), a);
            b = TV.Fma(TV.Load(w + i + 5 * v), TV.Load(x + i + 5 * v), b);
            a = TV.Fma(TV.Load(w + i + 6 * v), TV.Load(x + i + 6 * v), a);
            b = TV.Fma(TV.Load(w + i + 7 * v), TV.Load(x + i + 7 * v), b);
        }
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

    /// <summary>Two outputs of one W row (x rows x0, x1), each exactly <see cref="Dot1{TV}"/>'s chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot1x2<TV>(float* x0, float* x1, float* w, int n, float* y0, float* y1) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        TV a0 = TV.Zero, b0 = TV.Zero, a1 = TV.Zero, b1 = TV.Zero;
        int i = 0;
        for (; i + 4 * v <= n; i += 4 * v)
        {
            TV p = TV.Load(w + i), q = TV.Load(w + i + v);
            a0 = TV.Fma(p, TV.Load(x0 + i), a0); b0 = TV.Fma(q, TV.Load(x0 + i + v), b0);
            a1 = TV.Fma(p, TV.Load(x1 + i), a1); b1 = TV.Fma(q, TV.Load(x1 + i + v), b1);
            p = TV.Load(w + i + 2 * v); q = TV.Load(w + i + 3 * v);
            a0 = TV.Fma(p, TV.Load(x0 + i + 2 * v), a0); b0 = TV.Fma(q, TV.Load(x0 + i + 3 * v), b0);
            a1 = TV.Fma(p, TV.Load(x1 + i + 2 * v), a1); b1 = TV.Fma(q, TV.Load(x1 + i + 3 * v), b1);
        }
        for (; i + 2 * v <= n; i += 2 * v)
        {
            TV p = TV.Load(w + i), q = TV.Load(w + i + v);
            a0 = TV.Fma(p, TV.Load(x0 + i), a0); b0 = TV.Fma(q, TV.Load(x0 + i + v), b0);
            a1 = TV.Fma(p, TV.Load(x1 + i), a1); b1 = TV.Fma(q, TV.Load(x1 + i + v), b1);
        }
        for (; i + v <= n; i += v)
        {
            TV p = TV.Load(w + i);
            a0 = TV.Fma(p, TV.Load(x0 + i), a0);
            a1 = TV.Fma(p, TV.Load(x1 + i), a1);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1));
        for (; i < n; i++)
        {
            s0 = MathF.FusedMultiplyAdd(x0[i], w[i], s0);
            s1 = MathF.FusedMultiplyAdd(x1[i], w[i], s1);
        }
        *y0 = s0; *y1 = s1;
    }

    /// <summary>Three outputs of one W row, each exactly <see cref="Dot1{TV}"/>'s chain.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Dot1x3<TV>(float* x0, float* x1, float* x2, float* w, int n, float* y0, float* y1, float* y2)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        TV a0 = TV.Zero, b0 = TV.Zero, a1 = TV.Zero, b1 = TV.Zero, a2 = TV.Zero, b2 = TV.Zero;
        int i = 0;
        for (; i + 2 * v <= n; i += 2 * v)
        {
            TV p = TV.Load(w + i), q = TV.Load(w + i + v);
            a0 = TV.Fma(p, TV.Load(x0 + i), a0); b0 = TV.Fma(q, TV.Load(x0 + i + v), b0);
            a1 = TV.Fma(p, TV.Load(x1 + i), a1); b1 = TV.Fma(q, TV.Load(x1 + i + v), b1);
            a2 = TV.Fma(p, TV.Load(x2 + i), a2); b2 = TV.Fma(q, TV.Load(x2 + i + v), b2);
        }
        for (; i + v <= n; i += v)
        {
            TV p = TV.Load(w + i);
            a0 = TV.Fma(p, TV.Load(x0 + i), a0);
            a1 = TV.Fma(p, TV.Load(x1 + i), a1);
            a2 = TV.Fma(p, TV.Load(x2 + i), a2);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1)), s2 = TV.Sum(TV.Add(a2, b2));
        for (; i < n; i++)
        {
            s0 = MathF.FusedMultiplyAdd(x0[i], w[i], s0);
            s1 = MathF.FusedMultiplyAdd(x1[i], w[i], s1);
            s2 = MathF.FusedMultiplyAdd(x2[i], w[i], s2);
        }
        *y0 = s0; *y1 = s1; *y2 = s2;
    }

    // The session-8 batch 1-3 tile: 4 W rows side by side sharing each activation load: 8 FMA chains in flight, the
    // faster shape when W comes from L2/L3 (weights below GemvStreamMinBytes); with AVX-512 two x rows share each W load
    // (Dot4x2, session 17).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvTile<TV>(float* x, float* w, float* y, int batch, int outF, int inF, int r0, int r1)
        where TV : struct, IFloatVector<TV>
    {
        int o = r0;
        for (; o + GemvRows <= r1; o += GemvRows)
        {
            int b = 0;
            // Two x rows per pass over the tile's W (AVX-512: 16 accumulators, 12 loads per 16 FMAs instead of 20, and
            // the tile's W streamed once, not once per row). Session 17, 1 thread, hot, per call: batch 2 384x1536 38.2 ->
            // 26.6 us, 1536x384 36.0 -> 31.1, 768x768 36.9 -> 28.5 (ORT 25); batch 3 (a pair, then Dot4) 47.5 -> 40.8.
            // Batch 3: the three rows in one pass (24 accumulators). 1 thread, hot, against a pair then one row: 384x1536
            // 44.1 / 39.8 -> 31.1 / 33.6 us, 768x768 41.0 / 38.8 -> 35.3, 384x384 and 1536x384 unchanged (session 17).
            if (Avx512F.IsSupported && batch == 3)
            {
                Dot4x3<TV>(x, x + inF, x + 2 * (nint)inF, w + (nint)o * inF, inF, y + o, y + outF + o, y + 2 * (nint)outF + o);
                b = 3;
            }
            if (Avx512F.IsSupported)
                for (; b + 2 <= batch; b += 2)
                    Dot4x2<TV>(x + (nint)b * inF, x + (nint)(b + 1) * inF, w + (nint)o * inF, inF, y + (nint)b * outF + o, y + (nint)(b + 1) * outF + o);
            for (; b < batch; b++)
                Dot4<TV>(x + (nint)b * inF, w + (nint)o * inF, inF, y + (nint)b * outF + o);
        }
        for (; o < r1; o++)
            for (int b = 0; b < batch; b++)
                y[(nint)b * outF + o] = Dot1<TV>(x + (nint)b * inF, w + (nint)o * inF, inF);
    }

    /// <summary><see cref="Dot4{TV}"/> for three x rows at once (24 accumulators): each output's chains, order and tail exactly Dot4's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x3<TV>(float* x, float* x1, float* x2, float* w0, int n, float* y, float* y1, float* y2) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        float* w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
        TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero, b0 = TV.Zero, b1 = TV.Zero, b2 = TV.Zero, b3 = TV.Zero;
        TV e0 = TV.Zero, e1 = TV.Zero, e2 = TV.Zero, e3 = TV.Zero, f0 = TV.Zero, f1 = TV.Zero, f2 = TV.Zero, f3 = TV.Zero;
        TV g0 = TV.Zero, g1 = TV.Zero, g2 = TV.Zero, g3 = TV.Zero, h0 = TV.Zero, h1 = TV.Zero, h2 = TV.Zero, h3 = TV.Zero;
        int i = 0;
        for (; i + 2 * v <= n; i += 2 * v)
        {
            TV p = TV.Load(w0 + i), q = TV.Load(w0 + i + v), r = TV.Load(w1 + i), t = TV.Load(w1 + i + v);
            TV xa = TV.Load(x + i), xb = TV.Load(x + i + v);
            a0 = TV.Fma(p, xa, a0); b0 = TV.Fma(q, xb, b0); a1 = TV.Fma(r, xa, a1); b1 = TV.Fma(t, xb, b1);
            xa = TV.Load(x1 + i); xb = TV.Load(x1 + i + v);
            e0 = TV.Fma(p, xa, e0); f0 = TV.Fma(q, xb, f0); e1 = TV.Fma(r, xa, e1); f1 = TV.Fma(t, xb, f1);
            xa = TV.Load(x2 + i); xb = TV.Load(x2 + i + v);
            g0 = TV.Fma(p, xa, g0); h0 = TV.Fma(q, xb, h0); g1 = TV.Fma(r, xa, g1); h1 = TV.Fma(t, xb, h1);
            p = TV.Load(w2 + i); q = TV.Load(w2 + i + v); r = TV.Load(w3 + i); t = TV.Load(w3 + i + v);
            xa = TV.Load(x + i); xb = TV.Load(x + i + v);
            a2 = TV.Fma(p, xa, a2); b2 = TV.Fma(q, xb, b2); a3 = TV.Fma(r, xa, a3); b3 = TV.Fma(t, xb, b3);
            xa = TV.Load(x1 + i); xb = TV.Load(x1 + i + v);
            e2 = TV.Fma(p, xa, e2); f2 = TV.Fma(q, xb, f2); e3 = TV.Fma(r, xa, e3); f3 = TV.Fma(t, xb, f3);
            xa = TV.Load(x2 + i); xb = TV.Load(x2 + i + v);
            g2 = TV.Fma(p, xa, g2); h2 = TV.Fma(q, xb, h2); g3 = TV.Fma(r, xa, g3); h3 = TV.Fma(t, xb, h3);
        }
        for (; i + v <= n; i += v)
        {
            TV xa = TV.Load(x + i), za = TV.Load(x1 + i), ua = TV.Load(x2 + i);
            TV p = TV.Load(w0 + i); a0 = TV.Fma(p, xa, a0); e0 = TV.Fma(p, za, e0); g0 = TV.Fma(p, ua, g0);
            p = TV.Load(w1 + i); a1 = TV.Fma(p, xa, a1); e1 = TV.Fma(p, za, e1); g1 = TV.Fma(p, ua, g1);
            p = TV.Load(w2 + i); a2 = TV.Fma(p, xa, a2); e2 = TV.Fma(p, za, e2); g2 = TV.Fma(p, ua, g2);
            p = TV.Load(w3 + i); a3 = TV.Fma(p, xa, a3); e3 = TV.Fma(p, za, e3); g3 = TV.Fma(p, ua, g3);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1)), s2 = TV.Sum(TV.Add(a2, b2)), s3 = TV.Sum(TV.Add(a3, b3));
        float t0 = TV.Sum(TV.Add(e0, f0)), t1 = TV.Sum(TV.Add(e1, f1)), t2 = TV.Sum(TV.Add(e2, f2)), t3 = TV.Sum(TV.Add(e3, f3));
        float u0 = TV.Sum(TV.Add(g0, h0)), u1 = TV.Sum(TV.Add(g1, h1)), u2 = TV.Sum(TV.Add(g2, h2)), u3 = TV.Sum(TV.Add(g3, h3));
        for (; i < n; i++)
        {
            float xi = x[i], zi = x1[i], ui = x2[i];
            s0 = MathF.FusedMultiplyAdd(xi, w0[i], s0); t0 = MathF.FusedMultiplyAdd(zi, w0[i], t0); u0 = MathF.FusedMultiplyAdd(ui, w0[i], u0);
            s1 = MathF.FusedMultiplyAdd(xi, w1[i], s1); t1 = MathF.FusedMultiplyAdd(zi, w1[i], t1); u1 = MathF.FusedMultiplyAdd(ui, w1[i], u1);
            s2 = MathF.FusedMultiplyAdd(xi, w2[i], s2); t2 = MathF.FusedMultiplyAdd(zi, w2[i], t2); u2 = MathF.FusedMultiplyAdd(ui, w2[i], u2);
            s3 = MathF.FusedMultiplyAdd(xi, w3[i], s3); t3 = MathF.FusedMultiplyAdd(zi, w3[i], t3); u3 = MathF.FusedMultiplyAdd(ui, w3[i], u3);
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
        y1[0] = t0; y1[1] = t1; y1[2] = t2; y1[3] = t3;
        y2[0] = u0; y2[1] = u1; y2[2] = u2; y2[3] = u3;
    }

    /// <summary><see cref="Dot4{TV}"/> for two x rows at once: each output's chains, order and tail exactly Dot4's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4x2<TV>(float* x, float* x1, float* w0, int n, float* y, float* y1) where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        float* w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
        TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero, b0 = TV.Zero, b1 = TV.Zero, b2 = TV.Zero, b3 = TV.Zero;
        TV e0 = TV.Zero, e1 = TV.Zero, e2 = TV.Zero, e3 = TV.Zero, f0 = TV.Zero, f1 = TV.Zero, f2 = TV.Zero, f3 = TV.Zero;
        int i = 0;
        for (; i + 2 * v <= n; i += 2 * v)
        {
            TV xa = TV.Load(x + i), xb = TV.Load(x + i + v), za = TV.Load(x1 + i), zb = TV.Load(x1 + i + v);
            TV p = TV.Load(w0 + i), q = TV.Load(w0 + i + v);
            a0 = TV.Fma(p, xa, a0); b0 = TV.Fma(q, xb, b0); e0 = TV.Fma(p, za, e0); f0 = TV.Fma(q, zb, f0);
            p = TV.Load(w1 + i); q = TV.Load(w1 + i + v);
            a1 = TV.Fma(p, xa, a1); b1 = TV.Fma(q, xb, b1); e1 = TV.Fma(p, za, e1); f1 = TV.Fma(q, zb, f1);
            p = TV.Load(w2 + i); q = TV.Load(w2 + i + v);
            a2 = TV.Fma(p, xa, a2); b2 = TV.Fma(q, xb, b2); e2 = TV.Fma(p, za, e2); f2 = TV.Fma(q, zb, f2);
            p = TV.Load(w3 + i); q = TV.Load(w3 + i + v);
            a3 = TV.Fma(p, xa, a3); b3 = TV.Fma(q, xb, b3); e3 = TV.Fma(p, za, e3); f3 = TV.Fma(q, zb, f3);
        }
        for (; i + v <= n; i += v)
        {
            TV xa = TV.Load(x + i), za = TV.Load(x1 + i);
            TV p = TV.Load(w0 + i); a0 = TV.Fma(p, xa, a0); e0 = TV.Fma(p, za, e0);
            p = TV.Load(w1 + i); a1 = TV.Fma(p, xa, a1); e1 = TV.Fma(p, za, e1);
            p = TV.Load(w2 + i); a2 = TV.Fma(p, xa, a2); e2 = TV.Fma(p, za, e2);
            p = TV.Load(w3 + i); a3 = TV.Fma(p, xa, a3); e3 = TV.Fma(p, za, e3);
        }
        float s0 = TV.Sum(TV.Add(a0, b0)), s1 = TV.Sum(TV.Add(a1, b1)), s2 = TV.Sum(TV.Add(a2, b2)), s3 = TV.Sum(TV.Add(a3, b3));
        float t0 = TV.Sum(TV.Add(e0, f0)), t1 = TV.Sum(TV.Add(e1, f1)), t2 = TV.Sum(TV.Add(e2, f2)), t3 = TV.Sum(TV.Add(e3, f3));
        for (; i < n; i++)
        {
            float xi = x[i], zi = x1[i];
            s0 = MathF.FusedMultiplyAdd(xi, w0[i], s0); t0 = MathF.FusedMultiplyAdd(zi, w0[i], t0);
            s1 = MathF.FusedMultiplyAdd(xi, w1[i], s1); t1 = MathF.FusedMultiplyAdd(zi, w1[i], t1);
            s2 = MathF.FusedMultiplyAdd(xi, w2[i], s2); t2 = MathF.FusedMultiplyAdd(zi, w2[i], t2);
            s3 = MathF.FusedMultiplyAdd(xi, w3[i], s3); t3 = MathF.FusedMultiplyAdd(zi, w3[i], t3);
        }
        y[0] = s0; y[1] = s1; y[2] = s2; y[3] = s3;
        y1[0] = t0; y1[1] = t1; y1[2] = t2; y1[3] = t3;
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
            if (Bits == 512) DotTiles<F512>(X, W, Y, Batch, Out, In, r0, r1);
            else if (Bits == 256) DotTiles<F256>(X, W, Y, Batch, Out, In, r0, r1);
            else DotTiles<F128>(X, W, Y, Batch, Out, In, r0, r1);
        }
    }

    // Per tile of 4 W rows: for each k block, 4 x 4 (or 4 x 3) register tiles of (W row, x row) partial dot products
    // run over all batch rows; the unreduced vector accumulators wait in a scratch between k blocks, so the 4 W row
    // segments stay in L2 while the x block streams, and lanes are reduced only once at the end. Every tile shape
    // runs the same per-lane chain (lane l takes i = l mod width, in order), so the tiling never changes the bits.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTiles<TV>(float* x, float* w, float* y, int batch, int outF, int inF, int r0, int r1)
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
                // 4 x 4 tiles: 8 loads per 16 FMAs (4 x 3: 7 per 12); the remaining rows take 4 x 3 and 4 x 1 tiles.
                // 20 vector registers live: only with AVX-512's 32 (AVX2's 16 would spill).
                if (Avx512F.IsSupported)
                    for (; b + 4 <= batch; b += 4)
                        DotTile4x4<TV>(x + (nint)b * inF, inF, wt, k0, k1, acc + (nint)b * GemvRows * v, first);
                for (; b + 3 <= batch; b += 3)
                    DotTile4x3<TV>(x + (nint)b * inF, inF, wt, k0, k1, acc + (nint)b * GemvRows * v, first);
                for (; b < batch; b++)
                    DotTile4x1<TV>(x + (nint)b * inF, inF, wt, k0, k1, acc + (nint)b * GemvRows * v, first);
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

    // Not inlined (like the packed tiles below): DotTiles holds three tiles, and inlined together they could exhaust
    // the JIT's inlining budget and leave the vector helpers as calls.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTile4x4<TV>(float* x0, int n, float* w0, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        float* x1 = x0 + n, x2 = x1 + n, x3 = x2 + n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
        TV a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33;
        if (first)
        {
            a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = TV.Zero;
        }
        else
        {
            a00 = TV.Load(acc); a01 = TV.Load(acc + v); a02 = TV.Load(acc + 2 * v); a03 = TV.Load(acc + 3 * v);
            a10 = TV.Load(acc + 4 * v); a11 = TV.Load(acc + 5 * v); a12 = TV.Load(acc + 6 * v); a13 = TV.Load(acc + 7 * v);
            a20 = TV.Load(acc + 8 * v); a21 = TV.Load(acc + 9 * v); a22 = TV.Load(acc + 10 * v); a23 = TV.Load(acc + 11 * v);
            a30 = TV.Load(acc + 12 * v); a31 = TV.Load(acc + 13 * v); a32 = TV.Load(acc + 14 * v); a33 = TV.Load(acc + 15 * v);
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
            p = TV.Load(x3 + i);
            a30 = TV.Fma(p, q0, a30); a31 = TV.Fma(p, q1, a31); a32 = TV.Fma(p, q2, a32); a33 = TV.Fma(p, q3, a33);
        }
        TV.Store(a00, acc); TV.Store(a01, acc + v); TV.Store(a02, acc + 2 * v); TV.Store(a03, acc + 3 * v);
        TV.Store(a10, acc + 4 * v); TV.Store(a11, acc + 5 * v); TV.Store(a12, acc + 6 * v); TV.Store(a13, acc + 7 * v);
        TV.Store(a20, acc + 8 * v); TV.Store(a21, acc + 9 * v); TV.Store(a22, acc + 10 * v); TV.Store(a23, acc + 11 * v);
        TV.Store(a30, acc + 12 * v); TV.Store(a31, acc + 13 * v); TV.Store(a32, acc + 14 * v); TV.Store(a33, acc + 15 * v);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTile4x3<TV>(float* x0, int n, float* w0, int k0, int k1, float* acc, bool first)
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

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotTile4x1<TV>(float* x0, int n, float* w0, int k0, int k1, float* acc, bool first)
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

    // ---- Batched kernel (batch >= GemmMinBatch) ----
    // With AVX-512 and a batch of 32 or more, PackedSgemm (8 x 48 tile over packed panels of both operands) runs
    // instead; the kernel below serves AVX2/SSE, batches 4-31, and PackedRows. Both run the reference chain.
    // y^T[o, b] = sum_i W[o, i] xT[i, b]: x is packed once per call as xT[i][b] (batch padded to whole vectors), so a
    // register tile of MR W rows x 2 vectors of batch runs a broadcast-FMA chain over i in increasing order. Each
    // output is then exactly the scalar reference's fma chain, at every width and thread count. Blocking: per
    // thread, chunks of NC W rows keep their y^T tile in an L2 scratch; k blocks of KC keep the x panel (KC x batch)
    // in L2 and each MR x KC W block in L1 while it is reused by every batch group.

    private const int NC = 64;                  // W rows per chunk: its y^T scratch is NC x batch floats
    private const int PanelFloats = 1 << 16;    // target floats of one k block of the packed x (256 KiB, L2)

    [ThreadStatic] private static float[]? t_xPacked;

    private static void GemmPacked(float* x, float* w, float* y, int batch, int outF, int inF, int bits, int degree)
    {
        int v = bits / 32;
        int padded = (batch + v - 1) / v * v;
        long packedFloats = (long)inF * padded;
        var buffer = t_xPacked;
        if (buffer is null || buffer.LongLength < packedFloats)
            t_xPacked = buffer = GC.AllocateUninitializedArray<float>((int)Math.Max(packedFloats, 1 << 16), pinned: true);
        float* xp = (float*)Unsafe.AsPointer(ref buffer[0]);
        var pack = new PackBody { X = x, Xp = xp, Batch = batch, Padded = padded, In = inF };
        WorkerPool.Shared.For((inF + PackRows - 1) / PackRows, ref pack, packedFloats < 1 << 16 ? 1 : degree);
        int kc = Math.Clamp(PanelFloats / padded, 16, Math.Max(16, inF));
        int mr = bits == 512 ? 8 : 4;
        var body = new PackedBody { Xp = xp, W = w, Y = y, Batch = batch, Padded = padded, Out = outF, In = inF, Bits = bits, Kc = kc, Mr = mr };
        WorkerPool.Shared.For((outF + NC - 1) / NC, ref body, degree);
    }

    /// <summary>
    /// x [batch, inF] packed for the broadcast-FMA kernel (inF rows of <paramref name="padded"/> floats, the batch
    /// zero-padded to whole vectors) into the calling thread's buffer; valid until that thread's next packed product.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float* PackInputs(float* x, int batch, int inF, int bits, int degree, out int padded)
    {
        int v = bits / 32;
        padded = (batch + v - 1) / v * v;
        long packedFloats = (long)inF * padded;
        var buffer = t_xPacked;
        if (buffer is null || buffer.LongLength < packedFloats)
            t_xPacked = buffer = GC.AllocateUninitializedArray<float>((int)Math.Max(packedFloats, 1 << 16), pinned: true);
        float* xp = (float*)Unsafe.AsPointer(ref buffer[0]);
        var pack = new PackBody { X = x, Xp = xp, Batch = batch, Padded = padded, In = inF };
        WorkerPool.Shared.For((inF + PackRows - 1) / PackRows, ref pack, packedFloats < 1 << 16 ? 1 : degree);
        return xp;
    }

    /// <summary>Most rows <see cref="PackedRows"/> takes at once (its y^T scratch).</summary>
    internal const int PackedRowsMax = NC;

    /// <summary>
    /// y[:, r0..r0 + rows) from those weight rows given as a float32 panel (row stride inF), with x packed by
    /// <see cref="PackInputs"/>: the packed GEMM's chunk, so each output is the reference fma chain bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackedRows(float* xp, float* panel, float* y, int batch, int padded, int outF, int inF, int r0, int rows, int bits)
    {
        var scratch = t_panel;
        int need = NC * padded;
        if (scratch is null || scratch.Length < need)
            t_panel = scratch = GC.AllocateArray<float>(Math.Max(need, NC * 128), pinned: true);
        float* yt = (float*)Unsafe.AsPointer(ref scratch[0]);
        int kc = Math.Clamp(PanelFloats / padded, 16, Math.Max(16, inF));
        int mr = bits == 512 ? 8 : 4;
        if (bits == 512) GemmChunk<F512>(xp, panel, yt, padded, inF, 0, rows, kc, mr);
        else if (bits == 256) GemmChunk<F256>(xp, panel, yt, padded, inF, 0, rows, kc, mr);
        else GemmChunk<F128>(xp, panel, yt, padded, inF, 0, rows, kc, mr);
        for (int b = 0; b < batch; b++)
        {
            float* yr = Y(y, b, outF) + r0;
            for (int o = 0; o < rows; o++) yr[o] = yt[(nint)o * padded + b];
        }
    }

    private static float* Y(float* y, int b, int outF) => y + (nint)b * outF;

    private const int PackRows = 64; // input features per packing chunk

    private struct PackBody : IRangeBody
    {
        public float* X, Xp;
        public int Batch, Padded, In;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(int start, int end)
        {
            int i0 = start * PackRows, i1 = Math.Min(In, end * PackRows);
            // 8 x rows at a time: 8 read streams, writes land in the same few cache lines of xT.
            int b = 0;
            for (; b + 8 <= Batch; b += 8)
            {
                float* x0 = X + (nint)b * In;
                for (int i = i0; i < i1; i++)
                {
                    float* d = Xp + (nint)i * Padded + b;
                    float* s = x0 + i;
                    d[0] = s[0]; d[1] = s[In]; d[2] = s[2 * (nint)In]; d[3] = s[3 * (nint)In];
                    d[4] = s[4 * (nint)In]; d[5] = s[5 * (nint)In]; d[6] = s[6 * (nint)In]; d[7] = s[7 * (nint)In];
                }
            }
            for (; b < Batch; b++)
                for (int i = i0; i < i1; i++) Xp[(nint)i * Padded + b] = X[(nint)b * In + i];
            for (int i = i0; i < i1; i++)
                for (int p = Batch; p < Padded; p++) Xp[(nint)i * Padded + p] = 0f;
        }
    }

    private struct PackedBody : IRangeBody
    {
        public float* Xp, W, Y;
        public int Batch, Padded, Out, In, Bits, Kc, Mr;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(int start, int end)
        {
            var scratch = t_panel;
            int need = NC * Padded;
            if (scratch is null || scratch.Length < need)
                t_panel = scratch = GC.AllocateArray<float>(Math.Max(need, NC * 128), pinned: true);
            float* yt = (float*)Unsafe.AsPointer(ref scratch[0]);
            for (int c = start; c < end; c++)
            {
                int r0 = c * NC, r1 = Math.Min(Out, r0 + NC);
                if (Bits == 512) GemmChunk<F512>(Xp, W, yt, Padded, In, r0, r1, Kc, Mr);
                else if (Bits == 256) GemmChunk<F256>(Xp, W, yt, Padded, In, r0, r1, Kc, Mr);
                else GemmChunk<F128>(Xp, W, yt, Padded, In, r0, r1, Kc, Mr);
                // y^T scratch -> y rows: contiguous writes, strided reads from L1/L2.
                for (int b = 0; b < Batch; b++)
                {
                    float* yr = Y + (nint)b * Out;
                    for (int o = r0; o < r1; o++) yr[o] = yt[(nint)(o - r0) * Padded + b];
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemmChunk<TV>(float* xp, float* w, float* yt, int padded, int inF, int r0, int r1, int kc, int mr)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        for (int k0 = 0; k0 < inF; k0 += kc)
        {
            int k1 = Math.Min(inF, k0 + kc);
            bool first = k0 == 0;
            int o = r0;
            for (; o + mr <= r1; o += mr)
            {
                float* wt = w + (nint)o * inF;
                float* acc = yt + (nint)(o - r0) * padded;
                int b = 0;
                if (mr == 8)
                {
                    for (; b + 2 * v <= padded; b += 2 * v) Tile8x2<TV>(xp + b, padded, wt, inF, k0, k1, acc + b, first);
                    for (; b < padded; b += v) Tile8x1<TV>(xp + b, padded, wt, inF, k0, k1, acc + b, first);
                }
                else
                {
                    for (; b + 2 * v <= padded; b += 2 * v) Tile4x2<TV>(xp + b, padded, wt, inF, k0, k1, acc + b, first);
                    for (; b < padded; b += v) Tile4x1<TV>(xp + b, padded, wt, inF, k0, k1, acc + b, first);
                }
            }
            for (; o < r1; o++)
                for (int b = 0; b < padded; b += v)
                    Tile1x1<TV>(xp + b, padded, w + (nint)o * inF, k0, k1, yt + (nint)(o - r0) * padded + b, first);
        }
    }

    // acc rows are padded floats apart (the y^T scratch); xp rows too. W rows are ldw apart.
    // Not inlined: GemmChunk holds five tiles, and inlined together they exhaust the JIT's inlining budget, leaving
    // the vector helpers (F512.Fma, ...) as calls (a 10x slowdown measured on the 8x1 tile).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x2<TV>(float* xp, int padded, float* w0, int ldw, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        nint ld = padded;
        float* w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw, w4 = w3 + ldw, w5 = w4 + ldw, w6 = w5 + ldw, w7 = w6 + ldw;
        TV c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (first)
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = TV.Zero;
        }
        else
        {
            c00 = TV.Load(acc); c01 = TV.Load(acc + v);
            c10 = TV.Load(acc + ld); c11 = TV.Load(acc + ld + v);
            c20 = TV.Load(acc + 2 * ld); c21 = TV.Load(acc + 2 * ld + v);
            c30 = TV.Load(acc + 3 * ld); c31 = TV.Load(acc + 3 * ld + v);
            c40 = TV.Load(acc + 4 * ld); c41 = TV.Load(acc + 4 * ld + v);
            c50 = TV.Load(acc + 5 * ld); c51 = TV.Load(acc + 5 * ld + v);
            c60 = TV.Load(acc + 6 * ld); c61 = TV.Load(acc + 6 * ld + v);
            c70 = TV.Load(acc + 7 * ld); c71 = TV.Load(acc + 7 * ld + v);
        }
        float* xi = xp + (nint)k0 * ld;
        for (nint i = k0; i < k1; i++, xi += ld)
        {
            TV x0 = TV.Load(xi), x1 = TV.Load(xi + v);
            TV q = TV.Broadcast(w0[i]); c00 = TV.Fma(q, x0, c00); c01 = TV.Fma(q, x1, c01);
            q = TV.Broadcast(w1[i]); c10 = TV.Fma(q, x0, c10); c11 = TV.Fma(q, x1, c11);
            q = TV.Broadcast(w2[i]); c20 = TV.Fma(q, x0, c20); c21 = TV.Fma(q, x1, c21);
            q = TV.Broadcast(w3[i]); c30 = TV.Fma(q, x0, c30); c31 = TV.Fma(q, x1, c31);
            q = TV.Broadcast(w4[i]); c40 = TV.Fma(q, x0, c40); c41 = TV.Fma(q, x1, c41);
            q = TV.Broadcast(w5[i]); c50 = TV.Fma(q, x0, c50); c51 = TV.Fma(q, x1, c51);
            q = TV.Broadcast(w6[i]); c60 = TV.Fma(q, x0, c60); c61 = TV.Fma(q, x1, c61);
            q = TV.Broadcast(w7[i]); c70 = TV.Fma(q, x0, c70); c71 = TV.Fma(q, x1, c71);
        }
        TV.Store(c00, acc); TV.Store(c01, acc + v);
        TV.Store(c10, acc + ld); TV.Store(c11, acc + ld + v);
        TV.Store(c20, acc + 2 * ld); TV.Store(c21, acc + 2 * ld + v);
        TV.Store(c30, acc + 3 * ld); TV.Store(c31, acc + 3 * ld + v);
        TV.Store(c40, acc + 4 * ld); TV.Store(c41, acc + 4 * ld + v);
        TV.Store(c50, acc + 5 * ld); TV.Store(c51, acc + 5 * ld + v);
        TV.Store(c60, acc + 6 * ld); TV.Store(c61, acc + 6 * ld + v);
        TV.Store(c70, acc + 7 * ld); TV.Store(c71, acc + 7 * ld + v);
    }

    // Not inlined: GemmChunk holds five tiles, and inlined together they exhaust the JIT's inlining budget, leaving
    // the vector helpers (F512.Fma, ...) as calls (a 10x slowdown measured on the 8x1 tile).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x2<TV>(float* xp, int padded, float* w0, int ldw, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        int v = TV.Count;
        nint ld = padded;
        float* w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw;
        TV c00, c01, c10, c11, c20, c21, c30, c31;
        if (first)
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = TV.Zero;
        }
        else
        {
            c00 = TV.Load(acc); c01 = TV.Load(acc + v);
            c10 = TV.Load(acc + ld); c11 = TV.Load(acc + ld + v);
            c20 = TV.Load(acc + 2 * ld); c21 = TV.Load(acc + 2 * ld + v);
            c30 = TV.Load(acc + 3 * ld); c31 = TV.Load(acc + 3 * ld + v);
        }
        float* xi = xp + (nint)k0 * ld;
        for (nint i = k0; i < k1; i++, xi += ld)
        {
            TV x0 = TV.Load(xi), x1 = TV.Load(xi + v);
            TV q = TV.Broadcast(w0[i]); c00 = TV.Fma(q, x0, c00); c01 = TV.Fma(q, x1, c01);
            q = TV.Broadcast(w1[i]); c10 = TV.Fma(q, x0, c10); c11 = TV.Fma(q, x1, c11);
            q = TV.Broadcast(w2[i]); c20 = TV.Fma(q, x0, c20); c21 = TV.Fma(q, x1, c21);
            q = TV.Broadcast(w3[i]); c30 = TV.Fma(q, x0, c30); c31 = TV.Fma(q, x1, c31);
        }
        TV.Store(c00, acc); TV.Store(c01, acc + v);
        TV.Store(c10, acc + ld); TV.Store(c11, acc + ld + v);
        TV.Store(c20, acc + 2 * ld); TV.Store(c21, acc + 2 * ld + v);
        TV.Store(c30, acc + 3 * ld); TV.Store(c31, acc + 3 * ld + v);
    }

    // Not inlined: GemmChunk holds five tiles, and inlined together they exhaust the JIT's inlining budget, leaving
    // the vector helpers (F512.Fma, ...) as calls (a 10x slowdown measured on the 8x1 tile).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x1<TV>(float* xp, int padded, float* w0, int ldw, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        nint ld = padded;
        float* w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw;
        TV c0 = first ? TV.Zero : TV.Load(acc), c1 = first ? TV.Zero : TV.Load(acc + ld);
        TV c2 = first ? TV.Zero : TV.Load(acc + 2 * ld), c3 = first ? TV.Zero : TV.Load(acc + 3 * ld);
        float* xi = xp + (nint)k0 * ld;
        for (nint i = k0; i < k1; i++, xi += ld)
        {
            TV x0 = TV.Load(xi);
            c0 = TV.Fma(TV.Broadcast(w0[i]), x0, c0); c1 = TV.Fma(TV.Broadcast(w1[i]), x0, c1);
            c2 = TV.Fma(TV.Broadcast(w2[i]), x0, c2); c3 = TV.Fma(TV.Broadcast(w3[i]), x0, c3);
        }
        TV.Store(c0, acc); TV.Store(c1, acc + ld); TV.Store(c2, acc + 2 * ld); TV.Store(c3, acc + 3 * ld);
    }

    // Not inlined: GemmChunk holds five tiles, and inlined together they exhaust the JIT's inlining budget, leaving
    // the vector helpers (F512.Fma, ...) as calls (a 10x slowdown measured on the 8x1 tile).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x1<TV>(float* xp, int padded, float* w0, int ldw, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        nint ld = padded;
        float* w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw, w4 = w3 + ldw, w5 = w4 + ldw, w6 = w5 + ldw, w7 = w6 + ldw;
        TV c0 = first ? TV.Zero : TV.Load(acc), c1 = first ? TV.Zero : TV.Load(acc + ld);
        TV c2 = first ? TV.Zero : TV.Load(acc + 2 * ld), c3 = first ? TV.Zero : TV.Load(acc + 3 * ld);
        TV c4 = first ? TV.Zero : TV.Load(acc + 4 * ld), c5 = first ? TV.Zero : TV.Load(acc + 5 * ld);
        TV c6 = first ? TV.Zero : TV.Load(acc + 6 * ld), c7 = first ? TV.Zero : TV.Load(acc + 7 * ld);
        float* xi = xp + (nint)k0 * ld;
        nint i = k0;
        if (Sse.IsSupported)
        {
            // A cache line of each of the 8 W rows per 16 features: prefetch the line PrefetchFloats ahead in every
            // row, so the DRAM reads of this tile's streams are in flight before the FMAs reach them.
            for (; i + 16 <= k1; )
            {
                Sse.Prefetch0(w0 + i + PrefetchFloats); Sse.Prefetch0(w1 + i + PrefetchFloats);
                Sse.Prefetch0(w2 + i + PrefetchFloats); Sse.Prefetch0(w3 + i + PrefetchFloats);
                Sse.Prefetch0(w4 + i + PrefetchFloats); Sse.Prefetch0(w5 + i + PrefetchFloats);
                Sse.Prefetch0(w6 + i + PrefetchFloats); Sse.Prefetch0(w7 + i + PrefetchFloats);
                for (nint e = i + 16; i < e; i++, xi += ld)
                {
                    TV x0 = TV.Load(xi);
                    c0 = TV.Fma(TV.Broadcast(w0[i]), x0, c0); c1 = TV.Fma(TV.Broadcast(w1[i]), x0, c1);
                    c2 = TV.Fma(TV.Broadcast(w2[i]), x0, c2); c3 = TV.Fma(TV.Broadcast(w3[i]), x0, c3);
                    c4 = TV.Fma(TV.Broadcast(w4[i]), x0, c4); c5 = TV.Fma(TV.Broadcast(w5[i]), x0, c5);
                    c6 = TV.Fma(TV.Broadcast(w6[i]), x0, c6); c7 = TV.Fma(TV.Broadcast(w7[i]), x0, c7);
                }
            }
        }
        for (; i < k1; i++, xi += ld)
        {
            TV x0 = TV.Load(xi);
            c0 = TV.Fma(TV.Broadcast(w0[i]), x0, c0); c1 = TV.Fma(TV.Broadcast(w1[i]), x0, c1);
            c2 = TV.Fma(TV.Broadcast(w2[i]), x0, c2); c3 = TV.Fma(TV.Broadcast(w3[i]), x0, c3);
            c4 = TV.Fma(TV.Broadcast(w4[i]), x0, c4); c5 = TV.Fma(TV.Broadcast(w5[i]), x0, c5);
            c6 = TV.Fma(TV.Broadcast(w6[i]), x0, c6); c7 = TV.Fma(TV.Broadcast(w7[i]), x0, c7);
        }
        TV.Store(c0, acc); TV.Store(c1, acc + ld); TV.Store(c2, acc + 2 * ld); TV.Store(c3, acc + 3 * ld);
        TV.Store(c4, acc + 4 * ld); TV.Store(c5, acc + 5 * ld); TV.Store(c6, acc + 6 * ld); TV.Store(c7, acc + 7 * ld);
    }

    /// <summary>How far ahead (in floats) the 8 x 1 tile prefetches each W row: 2 KiB.</summary>
    private const int PrefetchFloats = 512;

    // Not inlined: GemmChunk holds five tiles, and inlined together they exhaust the JIT's inlining budget, leaving
    // the vector helpers (F512.Fma, ...) as calls (a 10x slowdown measured on the 8x1 tile).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x1<TV>(float* xp, int padded, float* w0, int k0, int k1, float* acc, bool first)
        where TV : struct, IFloatVector<TV>
    {
        nint ld = padded;
        TV c0 = first ? TV.Zero : TV.Load(acc);
        float* xi = xp + (nint)k0 * ld;
        for (nint i = k0; i < k1; i++, xi += ld) c0 = TV.Fma(TV.Broadcast(w0[i]), TV.Load(xi), c0);
        TV.Store(c0, acc);
    }
}
