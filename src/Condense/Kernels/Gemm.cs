using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>
/// Row-major fp32 matrix products for training: C = A B, C = A B^T and C = A^T B.
/// </summary>
/// <remarks>
/// Every output element is one fused multiply-add chain over k in increasing order, starting from 0
/// (or from the old C when accumulating). The SIMD paths vectorize over output columns only, so each
/// lane runs exactly that chain: results are bit-identical across Vector512/256/128, the scalar
/// reference, and any thread count. With AVX-512, <see cref="MatMulTransposedB"/> (the Linear forward) hands
/// 1-64 rows to <see cref="OutputLanesSgemm"/> (B's rows transposed into output panels per call) and 65 or more,
/// not accumulating, to <see cref="PackedSgemm"/>: both run the same chains, so the bits are the same.
/// </remarks>
public static class Gemm
{
    // Register tile: MR rows x (2 vectors) columns of C stay in registers over the whole k loop.
    private const int MR = 4;

    // Below this many multiply-adds a product runs on one thread: a parallel dispatch costs more.
    private const long ParallelThreshold = 1L << 18;

    /// <summary>Upper bound on threads a product uses (default: processor count). Results do not depend on it.</summary>
    public static int MaxDegreeOfParallelism { get; set; } = Environment.ProcessorCount;

    /// <summary>C[m,n] (+)= A[m,k] B[k,n].</summary>
    public static unsafe void MatMul(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate = false)
    {
        CheckSizes(nameof(MatMul), a.Length, b.Length, c.Length, m, k, n);
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (m > 0 && n > 0 && k > 0 && OutputLanesSgemm.Available)
            {
                // B's rows run along C's columns: output panels without transposes.
                int threads = (long)m * k * n >= ParallelThreshold ? Math.Max(1, MaxDegreeOfParallelism) : 1;
                OutputLanesRows(pa, transposedA: false, pb, pc, m, k, n, accumulate, threads);
                return;
            }
            Run(pa, k, 1, pb, n, pc, n, m, k, n, accumulate);
        }
    }

    /// <summary>
    /// C (+)= A B or A^T B on <see cref="OutputLanesSgemm"/> (AVX-512): B [k, n] row-major is already k-major along C's
    /// columns. Up to 64 rows read B's panels in place; more rows pack B once (one strided pass) and run row blocks of
    /// <see cref="OutputLanesSgemm.RowBlock"/>, whose packed A stays in L2 while B's packed panels stream past.
    /// </summary>
    private static unsafe void OutputLanesRows(float* a, bool transposedA, float* b, float* c, int m, int k, int n, bool accumulate, int threads)
    {
        if (m <= OutputLanesSgemm.MaxBatch)
        {
            var direct = new OutputLanesSgemm.KMajorPanels(b, n, n);
            if (transposedA) OutputLanesSgemm.RunTransposedX(a, m, direct, c, m, n, k, accumulate, threads);
            else OutputLanesSgemm.Run(a, direct, c, m, n, k, accumulate, threads);
            return;
        }
        long floats = OutputLanesSgemm.PackedFloats(n, k);
        float[] buffer = ArrayPool<float>.Shared.Rent((int)floats + 16);
        try
        {
            fixed (float* raw = buffer)
            {
                float* packed = (float*)(((nint)raw + 63) & ~(nint)63);
                OutputLanesSgemm.PackKMajor(b, n, n, k, packed, threads);
                var panels = new OutputLanesSgemm.PackedPanels(packed, k);
                if (!transposedA)
                {
                    OutputLanesSgemm.RunRowBlocks(a, panels, c, m, n, k, accumulate, threads);
                    return;
                }
                // A^T's rows are A's columns: a block of them starts i0 columns in, with A's row stride m.
                for (int i0 = 0; i0 < m; i0 += OutputLanesSgemm.RowBlock)
                    OutputLanesSgemm.RunTransposedX(a + i0, m, panels, c + (nint)i0 * n, Math.Min(OutputLanesSgemm.RowBlock, m - i0), n, k, accumulate, threads);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(buffer);
        }
    }

    /// <summary>C[m,n] (+)= A[m,k] B[n,k]^T (a Linear forward: X W^T).</summary>
    public static unsafe void MatMulTransposedB(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate = false)
    {
        CheckSizes(nameof(MatMulTransposedB), a.Length, b.Length, c.Length, m, k, n);
        if (m == 0 || n == 0) return;
        // Up to 64 rows with AVX-512: outputs in the lanes over B's rows transposed per call (a batch of 7 would fill
        // 7 of 16 lanes here); from 65 rows: PackedSgemm's tiles. Both run each element's chain in the same order
        // from the same start, so the bits are this class's.
        if (k > 0 && OutputLanesSgemm.Applies(m))
        {
            int threads = (long)m * k * n >= ParallelThreshold ? Math.Max(1, MaxDegreeOfParallelism) : 1;
            fixed (float* pa = a, pb = b, pc = c)
                OutputLanesSgemm.Run(pa, new OutputLanesSgemm.RowMajorPanels(pb, n, k), pc, m, n, k, accumulate, threads);
            return;
        }
        if (k > 0 && !accumulate && PackedSgemm.Applies(m, KernelOptions.VectorBits))
        {
            int threads = (long)m * k * n >= ParallelThreshold ? Math.Max(1, MaxDegreeOfParallelism) : 1;
            fixed (float* pa = a, pb = b, pc = c)
                PackedSgemm.Run(pa, pb, pc, m, n, k, threads);
            return;
        }
        // Either operand can be the one packed: C = A B^T, or C^T = B A^T with A^T packed. The kernel vectorizes
        // over C's columns, so whichever matrix ends up as its right operand must be transposed first. Packing
        // the smaller side (for a Linear at a few tokens: the activations, not the weight) costs O(m k) instead
        // of O(n k) per call; each element is still one fma chain over k in order, so the bits do not change.
        int width = VectorWidth;
        int paddedM = (m + width - 1) / width * width;
        if ((long)paddedM * (k + n) < (long)k * n)
        {
            TransposedOutput(a, b, c, m, k, n, paddedM, accumulate);
            return;
        }
        // B^T is packed once, in column panels of two vectors each stored contiguously (k x 2w), so a tile
        // streams one dense block instead of two cache lines per k-step spread over k pages; the chain order is unchanged.
        float[] packed = ArrayPool<float>.Shared.Rent(Math.Max(1, k * n));
        try
        {
            bool panels = width > 1;
            if (panels) PackPanels(b, packed, n, k, 2 * width);
            else Transpose(b, packed, n, k);
            fixed (float* pa = a, pb = packed, pc = c)
                Run(pa, k, 1, pb, n, pc, n, m, k, n, accumulate, panels);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(packed);
        }
    }

    /// <summary>
    /// b [n, k] to B^T in column panels: the panel of columns j0..j0+w-1 (w = <paramref name="panel"/>, the last one
    /// narrower) starts at j0 * k and holds B^T(p, j0 + jj) at p * w + jj.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanels(ReadOnlySpan<float> b, Span<float> packed, int n, int k, int panel)
    {
        for (int j0 = 0; j0 < n; j0 += panel)
        {
            int width = Math.Min(panel, n - j0);
            var destination = packed.Slice(j0 * k, width * k);
            for (int jj = 0; jj < width; jj++)
            {
                var row = b.Slice((j0 + jj) * k, k);
                for (int p = 0; p < k; p++) destination[p * width + jj] = row[p];
            }
        }
    }

    /// <summary>Lanes of the vector type <see cref="RunRows"/> picks (1 for the scalar path).</summary>
    private static int VectorWidth =>
        Vector512.IsHardwareAccelerated ? Vector512<float>.Count
        : Vector256.IsHardwareAccelerated ? Vector256<float>.Count
        : Vector128.IsHardwareAccelerated ? Vector128<float>.Count
        : 1;

    /// <summary>
    /// C = A B^T computed as C^T[n, paddedM] = B[n,k] A^T[k, paddedM]: B's rows are read in place (broadcast), A^T is
    /// packed with zero columns up to a whole vector (their results are dropped), and C^T is copied back.
    /// </summary>
    private static unsafe void TransposedOutput(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, int paddedM, bool accumulate)
    {
        float[] at = ArrayPool<float>.Shared.Rent(Math.Max(1, k * paddedM));
        float[] ct = ArrayPool<float>.Shared.Rent(n * paddedM);
        try
        {
            var packedA = at.AsSpan(0, k * paddedM);
            packedA.Clear();
            for (int i = 0; i < m; i++)
            {
                var row = a.Slice(i * k, k);
                for (int p = 0; p < k; p++) packedA[p * paddedM + i] = row[p];
            }
            var output = ct.AsSpan(0, n * paddedM);
            if (accumulate)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) output[j * paddedM + i] = c[i * n + j];
            fixed (float* pa = at, pb = b, pc = ct)
                Run(pb, k, 1, pa, paddedM, pc, paddedM, n, k, paddedM, accumulate);
            Transpose(output, c, n, paddedM, m);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(at);
            ArrayPool<float>.Shared.Return(ct);
        }
    }

    /// <summary>
    /// C[m,n] = A B for strided operands on the calling thread: A(i,p) = a[i*rsA + p], B(p,j) = b[p*ldb + j],
    /// C(i,j) = c[i*ldc + j]. For callers that already split their work over threads (attention heads); each element
    /// is the same fma chain as <see cref="MatMul"/>.
    /// </summary>
    internal static unsafe void MatMulStrided(float* a, int rsA, float* b, int ldb, float* c, int ldc, int m, int k, int n)
    {
        if (m == 0 || n == 0) return;
        RunRows(a, rsA, 1, b, ldb, c, ldc, 0, m, k, n, false);
    }

    /// <summary>C[m,n] (+)= A[k,m]^T B[k,n] (a weight gradient: dY^T X).</summary>
    public static unsafe void MatMulTransposedA(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> c, int m, int k, int n, bool accumulate = false)
    {
        CheckSizes(nameof(MatMulTransposedA), a.Length, b.Length, c.Length, m, k, n);
        fixed (float* pa = a, pb = b, pc = c)
        {
            if (m > 0 && n > 0 && k > 0 && OutputLanesSgemm.Available)
            {
                // C's rows are A's columns (k-major already) and B's rows run along C's columns: output panels need no
                // transposes.
                int threads = (long)m * k * n >= ParallelThreshold ? Math.Max(1, MaxDegreeOfParallelism) : 1;
                OutputLanesRows(pa, transposedA: true, pb, pc, m, k, n, accumulate, threads);
                return;
            }
            Run(pa, 1, m, pb, n, pc, n, m, k, n, accumulate);
        }
    }

    /// <summary>The scalar reference: C[i,j] = fma chain over p of A(i,p) B(p,j), A(i,p) = a[i*rsA + p*csA].</summary>
    internal static void Reference(ReadOnlySpan<float> a, int rsA, int csA, ReadOnlySpan<float> b, int rsB, int csB, Span<float> c, int m, int k, int n, bool accumulate)
    {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                float sum = accumulate ? c[i * n + j] : 0f;
                for (int p = 0; p < k; p++)
                    sum = MathF.FusedMultiplyAdd(a[i * rsA + p * csA], b[p * rsB + j * csB], sum);
                c[i * n + j] = sum;
            }
    }

    private static void CheckSizes(string op, int aLength, int bLength, int cLength, int m, int k, int n)
    {
        if (m < 0 || k < 0 || n < 0)
            throw new ArgumentException($"Gemm.{op}: sizes must be non-negative, got m={m}, k={k}, n={n}.");
        if (aLength < (long)m * k || bLength < (long)k * n || cLength < (long)m * n)
            throw new ArgumentException(
                $"Gemm.{op}: m={m}, k={k}, n={n} needs A >= {(long)m * k}, B >= {(long)k * n}, C >= {(long)m * n} elements; got {aLength}, {bLength}, {cLength}.");
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose(ReadOnlySpan<float> source, Span<float> destination, int rows, int cols) =>
        Transpose(source, destination, rows, cols, cols);

    /// <summary>destination[col, r] = source[r, col] for the first <paramref name="usedCols"/> of <paramref name="cols"/> columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose(ReadOnlySpan<float> source, Span<float> destination, int rows, int cols, int usedCols)
    {
        // Blocked so both sides stay in cache lines.
        const int Block = 32;
        for (int r0 = 0; r0 < rows; r0 += Block)
            for (int c0 = 0; c0 < usedCols; c0 += Block)
            {
                int r1 = Math.Min(r0 + Block, rows), c1 = Math.Min(c0 + Block, usedCols);
                for (int r = r0; r < r1; r++)
                    for (int col = c0; col < c1; col++)
                        destination[col * rows + r] = source[r * cols + col];
            }
    }

    /// <param name="panels">B is laid out by <see cref="PackPanels"/> with panels of two vectors (ldb unused).</param>
    private static unsafe void Run(float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, int m, int k, int n, bool accumulate, bool panels = false)
    {
        if (m == 0 || n == 0) return;
        int rowTiles = (m + MR - 1) / MR;
        int threads = (long)m * k * n >= ParallelThreshold ? Math.Min(Math.Max(1, MaxDegreeOfParallelism), rowTiles) : 1;
        if (threads <= 1)
        {
            RunRows(a, rsA, csA, b, ldb, c, ldc, 0, m, k, n, accumulate, panels);
            return;
        }
        // Chunks own disjoint row bands; each element's chain is the same whichever band it is in.
        var body = new RowBandBody { A = a, RsA = rsA, CsA = csA, B = b, Ldb = ldb, C = c, Ldc = ldc, M = m, K = k, N = n, Accumulate = accumulate, Panels = panels };
        WorkerPool.Shared.For(rowTiles, ref body, threads);
    }

    private unsafe struct RowBandBody : IRangeBody
    {
        public float* A, B, C;
        public int RsA, CsA, Ldb, Ldc, M, K, N;
        public bool Accumulate, Panels;

        public readonly void Invoke(int start, int end) =>
            RunRows(A, RsA, CsA, B, Ldb, C, Ldc, start * MR, Math.Min(M, end * MR), K, N, Accumulate, Panels);
    }

    private static unsafe void RunRows(float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, int rowStart, int rowEnd, int k, int n, bool accumulate, bool panels = false)
    {
        if (Vector512.IsHardwareAccelerated)
            RunRows<F512>(a, rsA, csA, b, ldb, c, ldc, rowStart, rowEnd, k, n, accumulate, panels);
        else if (Vector256.IsHardwareAccelerated)
            RunRows<F256>(a, rsA, csA, b, ldb, c, ldc, rowStart, rowEnd, k, n, accumulate, panels);
        else if (Vector128.IsHardwareAccelerated)
            RunRows<F128>(a, rsA, csA, b, ldb, c, ldc, rowStart, rowEnd, k, n, accumulate, panels);
        else
            ScalarColumns(a, rsA, csA, b, ldb, c, ldc, rowStart, rowEnd, 0, k, n, accumulate);   // never packed in panels
    }

    // Fully optimized on first call: tier-0 code of this loop nest is ~50x slower and would run for seconds.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void RunRows<TV>(float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, int rowStart, int rowEnd, int k, int n, bool accumulate, bool panels)
        where TV : struct, IFloatVector<TV>
    {
        int w = TV.Count;
        int j = 0;
        // Column panels of two vectors: the panel of B (k x 2w) is reused by every row tile.
        for (; j + 2 * w <= n; j += 2 * w)
        {
            float* bj = panels ? b + (nint)j * k : b + j;
            int ld = panels ? 2 * w : ldb;
            int i = rowStart;
            for (; i + MR <= rowEnd; i += MR)
                TwoVectors<TV, Rows4>(a + (nint)i * rsA, rsA, csA, bj, ld, c + (nint)i * ldc + j, ldc, k, accumulate);
            if (PairedTailRows && i + 2 <= rowEnd)
            {
                TwoVectors<TV, Rows2>(a + (nint)i * rsA, rsA, csA, bj, ld, c + (nint)i * ldc + j, ldc, k, accumulate);
                i += 2;
            }
            for (; i < rowEnd; i++)
                TwoVectors<TV, Rows1>(a + (nint)i * rsA, rsA, csA, bj, ld, c + (nint)i * ldc + j, ldc, k, accumulate);
        }
        // The remaining columns: in panel layout they form one last, narrower panel starting at column j.
        float* tail = panels ? b + (nint)j * k - j : b;
        int tailLd = panels ? n - j : ldb;
        // One vector of columns (e.g. C^T of a Linear at <= 16 tokens): eight rows at a time keep eight
        // independent chains in flight, where one row alone would wait on each fma's latency.
        for (; j + w <= n; j += w)
        {
            int i = rowStart;
            for (; i + 2 * MR <= rowEnd; i += 2 * MR)
                OneVector<TV, Rows8>(a + (nint)i * rsA, rsA, csA, tail + j, tailLd, c + (nint)i * ldc + j, ldc, k, accumulate);
            if (PairedTailRows)
            {
                // The last 1-7 rows: 4 and 2 side by side before single ones (a single row waits on each fma's latency).
                if (i + MR <= rowEnd)
                {
                    OneVector<TV, Rows4>(a + (nint)i * rsA, rsA, csA, tail + j, tailLd, c + (nint)i * ldc + j, ldc, k, accumulate);
                    i += MR;
                }
                if (i + 2 <= rowEnd)
                {
                    OneVector<TV, Rows2>(a + (nint)i * rsA, rsA, csA, tail + j, tailLd, c + (nint)i * ldc + j, ldc, k, accumulate);
                    i += 2;
                }
            }
            for (; i < rowEnd; i++)
                OneVector<TV, Rows1>(a + (nint)i * rsA, rsA, csA, tail + j, tailLd, c + (nint)i * ldc + j, ldc, k, accumulate);
        }
        if (j < n)
            ScalarColumns(a, rsA, csA, tail, tailLd, c, ldc, rowStart, rowEnd, j, k, n, accumulate);
    }

    /// <summary>
    /// A/B knob (session 19; same bits either way): the rows left after a register-tile loop run 4 and 2 side by side
    /// instead of one at a time, whose k-long fma chain waits on each fma's latency (attention's score products at 13
    /// tokens: 8 rows tiled, 5 rows alone).
    /// </summary>
    internal static bool PairedTailRows { get; set; } = true;

    /// <summary>Rows of a register tile: a constant of each instantiation, so the JIT keeps only that many rows' code.</summary>
    private interface ITileRows { static abstract int N { get; } }
    private struct Rows1 : ITileRows { public static int N => 1; }
    private struct Rows2 : ITileRows { public static int N => 2; }
    private struct Rows4 : ITileRows { public static int N => 4; }
    private struct Rows8 : ITileRows { public static int N => 8; }

    /// <summary>
    /// R rows (1, 2, 4 or 8) x one vector of C in registers over the whole k loop: each output one fma chain over p
    /// from +0 (or its old value when accumulating). Eight rows keep eight independent chains in flight.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void OneVector<TV, R>(float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, int k, bool accumulate)
        where TV : struct, IFloatVector<TV> where R : struct, ITileRows
    {
        int n = R.N;
        TV c0 = TV.Zero, c1 = TV.Zero, c2 = TV.Zero, c3 = TV.Zero, c4 = TV.Zero, c5 = TV.Zero, c6 = TV.Zero, c7 = TV.Zero;
        if (accumulate)
        {
            c0 = TV.Load(c);
            if (n > 1) c1 = TV.Load(c + ldc);
            if (n > 2) { c2 = TV.Load(c + 2 * ldc); c3 = TV.Load(c + 3 * ldc); }
            if (n > 4) { c4 = TV.Load(c + 4 * ldc); c5 = TV.Load(c + 5 * ldc); c6 = TV.Load(c + 6 * ldc); c7 = TV.Load(c + 7 * ldc); }
        }
        float* a1 = a + rsA, a2 = a + 2 * rsA, a3 = a + 3 * rsA, a4 = a + 4 * rsA, a5 = a + 5 * rsA, a6 = a + 6 * rsA, a7 = a + 7 * rsA;
        for (int p = 0; p < k; p++)
        {
            TV bp = TV.Load(b + (nint)p * ldb);
            nint ap = (nint)p * csA;
            c0 = TV.Fma(TV.Broadcast(a[ap]), bp, c0);
            if (n > 1) c1 = TV.Fma(TV.Broadcast(a1[ap]), bp, c1);
            if (n > 2)
            {
                c2 = TV.Fma(TV.Broadcast(a2[ap]), bp, c2);
                c3 = TV.Fma(TV.Broadcast(a3[ap]), bp, c3);
            }
            if (n > 4)
            {
                c4 = TV.Fma(TV.Broadcast(a4[ap]), bp, c4);
                c5 = TV.Fma(TV.Broadcast(a5[ap]), bp, c5);
                c6 = TV.Fma(TV.Broadcast(a6[ap]), bp, c6);
                c7 = TV.Fma(TV.Broadcast(a7[ap]), bp, c7);
            }
        }
        TV.Store(c0, c);
        if (n > 1) TV.Store(c1, c + ldc);
        if (n > 2) { TV.Store(c2, c + 2 * ldc); TV.Store(c3, c + 3 * ldc); }
        if (n > 4) { TV.Store(c4, c + 4 * ldc); TV.Store(c5, c + 5 * ldc); TV.Store(c6, c + 6 * ldc); TV.Store(c7, c + 7 * ldc); }
    }

    /// <summary>As <see cref="OneVector{TV, R}"/> with two vectors of C per row, R = 1, 2 or 4 (a B panel of 2 vectors reused by every row).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void TwoVectors<TV, R>(float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, int k, bool accumulate)
        where TV : struct, IFloatVector<TV> where R : struct, ITileRows
    {
        int n = R.N, w = TV.Count;
        TV c00 = TV.Zero, c01 = TV.Zero, c10 = TV.Zero, c11 = TV.Zero, c20 = TV.Zero, c21 = TV.Zero, c30 = TV.Zero, c31 = TV.Zero;
        if (accumulate)
        {
            c00 = TV.Load(c); c01 = TV.Load(c + w);
            if (n > 1) { c10 = TV.Load(c + ldc); c11 = TV.Load(c + ldc + w); }
            if (n > 2)
            {
                c20 = TV.Load(c + 2 * ldc); c21 = TV.Load(c + 2 * ldc + w);
                c30 = TV.Load(c + 3 * ldc); c31 = TV.Load(c + 3 * ldc + w);
            }
        }
        float* a1 = a + rsA, a2 = a + 2 * rsA, a3 = a + 3 * rsA;
        for (int p = 0; p < k; p++)
        {
            float* bp = b + (nint)p * ldb;
            TV b0 = TV.Load(bp), b1 = TV.Load(bp + w);
            nint ap = (nint)p * csA;
            TV x = TV.Broadcast(a[ap]);
            c00 = TV.Fma(x, b0, c00); c01 = TV.Fma(x, b1, c01);
            if (n > 1)
            {
                x = TV.Broadcast(a1[ap]);
                c10 = TV.Fma(x, b0, c10); c11 = TV.Fma(x, b1, c11);
            }
            if (n > 2)
            {
                x = TV.Broadcast(a2[ap]);
                c20 = TV.Fma(x, b0, c20); c21 = TV.Fma(x, b1, c21);
                x = TV.Broadcast(a3[ap]);
                c30 = TV.Fma(x, b0, c30); c31 = TV.Fma(x, b1, c31);
            }
        }
        TV.Store(c00, c); TV.Store(c01, c + w);
        if (n > 1) { TV.Store(c10, c + ldc); TV.Store(c11, c + ldc + w); }
        if (n > 2)
        {
            TV.Store(c20, c + 2 * ldc); TV.Store(c21, c + 2 * ldc + w);
            TV.Store(c30, c + 3 * ldc); TV.Store(c31, c + 3 * ldc + w);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScalarColumns(float* a, int rsA, int csA, float* b, int ldb, float* c, int ldc, int rowStart, int rowEnd, int colStart, int k, int n, bool accumulate)
    {
        for (int i = rowStart; i < rowEnd; i++)
        {
            float* ai = a + (nint)i * rsA;
            for (int j = colStart; j < n; j++)
            {
                float sum = accumulate ? c[(nint)i * ldc + j] : 0f;
                for (int p = 0; p < k; p++)
                    sum = MathF.FusedMultiplyAdd(ai[(nint)p * csA], b[(nint)p * ldb + j], sum);
                c[(nint)i * ldc + j] = sum;
            }
        }
    }
}
