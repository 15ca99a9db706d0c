using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>
/// fp32 y[B, Out] (+)= x[B, In] W[Out, In]^T with the outputs in the vector lanes: W as k-major panels of 32 outputs
/// ([k][32], two AVX-512 vectors), x rows broadcast, up to 12 x rows x 32 outputs per register tile (24 zmm
/// accumulators; per k step 2 panel loads and 12 broadcasts for 24 FMAs). <see cref="Applies"/> says where it serves
/// as the small-batch kernel of the Linear forward (1-64 rows); <see cref="Gemm"/>'s A B and A^T B and
/// <see cref="DenseWeight"/>'s products over its panel copy run it at every size in row blocks.
/// </summary>
/// <remarks>
/// <para><b>Why.</b> With the batch in the lanes (<see cref="PackedSgemm"/>, <c>DenseMatMul</c>'s packed tiles) a batch
/// of 7 fills 7 of 16 lanes; with k in the lanes (<c>DenseMatMul</c>'s dot-product tiles) every output ends in a lane
/// reduction and each W vector serves at most 4 x rows. Outputs in the lanes waste nothing at any batch and read W once
/// per 12 x rows, which is MLAS's SGEMM shape (ONNX Runtime packs B once per session).</para>
/// <para><b>Where the panels come from.</b> <see cref="IPanelSource"/>: either a packed copy made once
/// (<see cref="PackedPanels"/>, <see cref="DenseWeight"/>'s small weights), or W's rows transposed per call, k block by
/// k block, 16 x 16 in registers (<see cref="RowMajorPanels"/>, for weights that may change between calls: the Linear
/// forward of <see cref="Gemm.MatMulTransposedB"/>). The per-call transpose costs 4 shuffles per 16 weights, so it pays
/// off once a few rows share it. A row-major B of C = A B is already k-major along the outputs: its panels are copies
/// (<see cref="KMajorPanels"/>, or packed once by <see cref="PackKMajor"/> for many rows).</para>
/// <para><b>Summation order.</b> Every output is one fused multiply-add chain over k = 0, 1, ..., In - 1 in increasing
/// order, starting from +0 (or the old y when accumulating): <see cref="DenseMatMul.Reference"/> bit for bit, at any
/// thread count, batch grouping and k block. A k block only pauses a chain (its accumulators go to a per-thread
/// scratch and come back exactly).</para>
/// </remarks>
internal static unsafe class OutputLanesSgemm
{
    /// <summary>Outputs per panel (two 16-float vectors).</summary>
    internal const int PanelOutputs = 32;
    /// <summary>Most x rows per register tile.</summary>
    private const int MaxRows = 12;
    /// <summary>Features per k block: a transposed panel block is KB x 32 x 4 = 16 KiB (L1).</summary>
    private const int KB = 128;
    /// <summary>
    /// Largest batch this kernel takes; from 65 rows on, <see cref="PackedSgemm"/>'s 8 x 48 tiles. At 32-64 rows this
    /// kernel measured 1.1-1.3x PackedSgemm (--quick linear, MiniLM shapes in cache: 245-255 GFLOP/s per core over a
    /// packed copy, 195-227 transposing per call, against 170-212); from 96 rows they are even.
    /// </summary>
    internal const int MaxBatch = 64;

    /// <summary>
    /// A/B knob (same bits either way): the per-call transpose (<see cref="RowMajorPanels"/>) prefetches the next
    /// panel's rows. Measured (session 18, MiniLM fp32 one sentence at a time, 1 thread, weights from DRAM): 3.4-4.2
    /// against 4.1-5.4 ms per sentence; a single weight hot in L2/L3 pays for it (--quick linear: batch 1-4 +10-30%,
    /// batch 13-21 +3-7%).
    /// </summary>
    internal static bool PrefetchNext { get; set; } = true;

    /// <summary>Switch for tests and A/B measurements (same bits either way where the kernel replaced a reference-bit one).</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>Whether this kernel takes a batch: AVX-512 in use and 1..<see cref="MaxBatch"/> rows.</summary>
    internal static bool Applies(int batch) => Available && batch is >= 1 and <= MaxBatch;

    /// <summary>Whether the kernel runs here at all: enabled, AVX-512 in use (<see cref="Gemm"/>'s A B and A^T B take it at every size then).</summary>
    internal static bool Available => Enabled && KernelOptions.VectorBits == 512 && Avx512F.IsSupported;

    /// <summary>Floats of a packed copy of a [outF, inF] weight: whole panels of 32 outputs, each In x 32.</summary>
    internal static long PackedFloats(int outF, int inF) => (long)Panels(outF) * PanelOutputs * inF;

    private static int Panels(int outF) => (outF + PanelOutputs - 1) / PanelOutputs;

    /// <summary>Where a k block of one panel comes from: a pointer to kb x 32 floats, [k][32], outputs past Out zero.</summary>
    internal interface IPanelSource
    {
        /// <summary>Features [k0, k0 + kb) of panel <paramref name="panel"/>; may fill and return <paramref name="scratch"/> (KB x 32 floats).</summary>
        float* Block(int panel, int k0, int kb, float* scratch);
    }

    /// <summary>A copy made by <see cref="Pack"/>: panel p's feature k at (p x In + k) x 32.</summary>
    internal readonly struct PackedPanels : IPanelSource
    {
        public readonly float* Panels;
        public readonly int In;
        public PackedPanels(float* panels, int inF) { Panels = panels; In = inF; }
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float* Block(int panel, int k0, int kb, float* scratch) => Panels + ((nint)panel * In + k0) * PanelOutputs;
    }

    /// <summary>W row-major [Out, In], transposed into the scratch per call.</summary>
    internal readonly struct RowMajorPanels : IPanelSource
    {
        public readonly float* W;
        public readonly int Out, In;
        public RowMajorPanels(float* w, int outF, int inF) { W = w; Out = outF; In = inF; }
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float* Block(int panel, int k0, int kb, float* scratch)
        {
            TransposeBlock(W, Out, In, panel * PanelOutputs, k0, kb, scratch);
            // The next panel's rows are one contiguous run of 32 x In floats: prefetch the part of it this block's
            // share of the features covers, so a weight not in cache (a model's layers one after another) arrives
            // while this panel computes, instead of as 32 short row streams the hardware prefetcher barely follows.
            int ahead = panel + 1;
            if (PrefetchNext && ahead * PanelOutputs < Out)
            {
                // Rows [ahead x 32, + rowsLeft) are contiguous: this block's share of them is features k0..k0 + kb of
                // each row, i.e. bytes rowsLeft x k0 x 4 to rowsLeft x (k0 + kb) x 4 of the run.
                long rowsLeft = Math.Min(PanelOutputs, Out - ahead * PanelOutputs);
                byte* start = (byte*)(W + (long)ahead * PanelOutputs * In);
                long from = rowsLeft * k0 * sizeof(float) & ~63L, to = rowsLeft * (k0 + kb) * sizeof(float);
                for (long b = from; b < to; b += 64) Sse.Prefetch0(start + b);
            }
            return scratch;
        }
    }

    /// <summary>
    /// Packs W^T given row-major (W[o, k] = b[k x ld + o], the B of C = A B) into <paramref name="destination"/>
    /// (<see cref="PackedFloats"/>(outF, inF) floats) in <see cref="PackedPanels"/>' layout: a product of many rows
    /// reads B's strided rows once instead of once per row block.
    /// </summary>
    internal static void PackKMajor(float* b, int ld, int outF, int inF, float* destination, int degree)
    {
        var body = new PackKMajorBody { B = b, Ld = ld, Out = outF, In = inF, Destination = destination };
        WorkerPool.Shared.For(Panels(outF), ref body, degree);
    }

    private struct PackKMajorBody : IRangeBody
    {
        public float* B, Destination;
        public int Ld, Out, In;
        public readonly void Invoke(int start, int end)
        {
            // A packed panel is [k][32] over all features: one copy of its columns.
            for (int p = start; p < end; p++)
                CopyColumns(B, Ld, Out, p, 0, In, Destination + (nint)p * In * PanelOutputs);
        }
    }

    /// <summary>
    /// dst[k][j] = b[(k0 + k) x ld + panel x 32 + j] for k &lt; kb, j &lt; 32 (0 past outF): a panel of a row-major B
    /// of C = A B, whose rows already run along the outputs.
    /// </summary>
    private static void CopyColumns(float* b, int ld, int outF, int panel, int k0, int kb, float* dst)
    {
        int o0 = panel * PanelOutputs, valid = Math.Min(PanelOutputs, outF - o0);
        float* src = b + (nint)k0 * ld + o0;
        if (valid == PanelOutputs)
        {
            for (int k = 0; k < kb; k++)
            {
                float* s = src + (nint)k * ld;
                Vector512.Load(s).Store(dst + (nint)k * PanelOutputs);
                Vector512.Load(s + 16).Store(dst + (nint)k * PanelOutputs + 16);
            }
            return;
        }
        for (int k = 0; k < kb; k++)
        {
            float* s = src + (nint)k * ld;
            float* d = dst + (nint)k * PanelOutputs;
            for (int j = 0; j < PanelOutputs; j++) d[j] = j < valid ? s[j] : 0f;
        }
    }

    /// <summary>Rows per block when a product of many rows reads a packed B: the block's packed A (rows x 128 features) stays in L2.</summary>
    internal const int RowBlock = 256;

    /// <summary>
    /// W^T given row-major: W[o, k] = <see cref="B"/>[k x <see cref="Ld"/> + o] (the B of C = A B, whose rows already run
    /// along the outputs), each k block's 32 columns copied into the scratch (zero past Out).
    /// </summary>
    internal readonly struct KMajorPanels : IPanelSource
    {
        public readonly float* B;
        public readonly int Ld, Out;
        public KMajorPanels(float* b, int ld, int outF) { B = b; Ld = ld; Out = outF; }
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float* Block(int panel, int k0, int kb, float* scratch)
        {
            CopyColumns(B, Ld, Out, panel, k0, kb, scratch);
            return scratch;
        }
    }

    /// <summary>
    /// Packs W [outF, inF] into <paramref name="destination"/> (<see cref="PackedFloats"/> floats): panels of 32
    /// outputs, each [k][32] over all features; outputs past outF are +0. Needs AVX-512 (the same transposes as a call).
    /// </summary>
    internal static void Pack(float* w, int outF, int inF, float* destination)
    {
        int panels = Panels(outF);
        for (int p = 0; p < panels; p++)
            for (int k0 = 0; k0 < inF; k0 += KB)
                TransposeBlock(w, outF, inF, p * PanelOutputs, k0, Math.Min(KB, inF - k0), destination + ((nint)p * inF + k0) * PanelOutputs);
    }

    /// <summary>
    /// dst[k][j] = W[o0 + j, k0 + k] for k &lt; kb, j &lt; 32 (0 where o0 + j &gt;= outF): 16 x 16 blocks transposed in
    /// registers, a scalar tail for the last kb mod 16 features.
    /// </summary>
    private static void TransposeBlock(float* w, int outF, int inF, int o0, int k0, int kb, float* dst)
    {
        int whole = kb & ~15;
        for (int half = 0; half < 2; half++)
        {
            int r0 = o0 + half * 16;
            int rows = Math.Clamp(outF - r0, 0, 16);
            float* d = dst + half * 16;
            if (rows == 0)
            {
                for (int k = 0; k < kb; k++) Vector512<float>.Zero.Store(d + (nint)k * PanelOutputs);
                continue;
            }
            float* src = w + (nint)r0 * inF + k0;
            for (int k = 0; k < whole; k += 16)
                Transpose16(src + k, inF, rows, d + (nint)k * PanelOutputs, PanelOutputs);
            for (int k = whole; k < kb; k++)
            {
                float* o = d + (nint)k * PanelOutputs;
                for (int j = 0; j < 16; j++) o[j] = j < rows ? src[(nint)j * inF + k] : 0f;
            }
        }
    }

    /// <summary>16 rows (the first <paramref name="rows"/> from src with stride ld, the rest zero) x 16 features to dst[k][0..16) with stride <paramref name="S"/>. Needs AVX-512.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose16(float* src, int ld, int rows, float* dst, int S)
    {
        Vector512<float> r0 = Row(src, ld, 0, rows), r1 = Row(src, ld, 1, rows), r2 = Row(src, ld, 2, rows), r3 = Row(src, ld, 3, rows);
        Vector512<float> r4 = Row(src, ld, 4, rows), r5 = Row(src, ld, 5, rows), r6 = Row(src, ld, 6, rows), r7 = Row(src, ld, 7, rows);
        Vector512<float> r8 = Row(src, ld, 8, rows), r9 = Row(src, ld, 9, rows), ra = Row(src, ld, 10, rows), rb = Row(src, ld, 11, rows);
        Vector512<float> rc = Row(src, ld, 12, rows), rd = Row(src, ld, 13, rows), re = Row(src, ld, 14, rows), rf = Row(src, ld, 15, rows);

        // Stage 1: interleave pairs of rows (within 128-bit lanes).
        var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
        var ta = Avx512F.UnpackLow(ra, rb); var tb = Avx512F.UnpackHigh(ra, rb);
        var tc = Avx512F.UnpackLow(rc, rd); var td = Avx512F.UnpackHigh(rc, rd);
        var te = Avx512F.UnpackLow(re, rf); var tf = Avx512F.UnpackHigh(re, rf);

        // Stage 2: 4 x 4 blocks within each 128-bit lane: u(4i + c) holds rows 4i..4i+3 of column c of every lane.
        var u0 = Avx512F.Shuffle(t0, t2, 0x44); var u1 = Avx512F.Shuffle(t0, t2, 0xEE);
        var u2 = Avx512F.Shuffle(t1, t3, 0x44); var u3 = Avx512F.Shuffle(t1, t3, 0xEE);
        var u4 = Avx512F.Shuffle(t4, t6, 0x44); var u5 = Avx512F.Shuffle(t4, t6, 0xEE);
        var u6 = Avx512F.Shuffle(t5, t7, 0x44); var u7 = Avx512F.Shuffle(t5, t7, 0xEE);
        var u8 = Avx512F.Shuffle(t8, ta, 0x44); var u9 = Avx512F.Shuffle(t8, ta, 0xEE);
        var ua = Avx512F.Shuffle(t9, tb, 0x44); var ub = Avx512F.Shuffle(t9, tb, 0xEE);
        var uc = Avx512F.Shuffle(tc, te, 0x44); var ud = Avx512F.Shuffle(tc, te, 0xEE);
        var ue = Avx512F.Shuffle(td, tf, 0x44); var uf = Avx512F.Shuffle(td, tf, 0xEE);

        // Stages 3-4: move 128-bit lanes. v: lanes (0, 2) and (1, 3) of row groups 0/1 and 2/3; then gather.
        var v0 = Avx512F.Shuffle4x128(u0, u4, 0x88); var v1 = Avx512F.Shuffle4x128(u1, u5, 0x88);
        var v2 = Avx512F.Shuffle4x128(u2, u6, 0x88); var v3 = Avx512F.Shuffle4x128(u3, u7, 0x88);
        var v4 = Avx512F.Shuffle4x128(u0, u4, 0xDD); var v5 = Avx512F.Shuffle4x128(u1, u5, 0xDD);
        var v6 = Avx512F.Shuffle4x128(u2, u6, 0xDD); var v7 = Avx512F.Shuffle4x128(u3, u7, 0xDD);
        var v8 = Avx512F.Shuffle4x128(u8, uc, 0x88); var v9 = Avx512F.Shuffle4x128(u9, ud, 0x88);
        var va = Avx512F.Shuffle4x128(ua, ue, 0x88); var vb = Avx512F.Shuffle4x128(ub, uf, 0x88);
        var vc = Avx512F.Shuffle4x128(u8, uc, 0xDD); var vd = Avx512F.Shuffle4x128(u9, ud, 0xDD);
        var ve = Avx512F.Shuffle4x128(ua, ue, 0xDD); var vf = Avx512F.Shuffle4x128(ub, uf, 0xDD);

        Avx512F.Shuffle4x128(v0, v8, 0x88).Store(dst + 0 * S);
        Avx512F.Shuffle4x128(v1, v9, 0x88).Store(dst + 1 * S);
        Avx512F.Shuffle4x128(v2, va, 0x88).Store(dst + 2 * S);
        Avx512F.Shuffle4x128(v3, vb, 0x88).Store(dst + 3 * S);
        Avx512F.Shuffle4x128(v4, vc, 0x88).Store(dst + 4 * S);
        Avx512F.Shuffle4x128(v5, vd, 0x88).Store(dst + 5 * S);
        Avx512F.Shuffle4x128(v6, ve, 0x88).Store(dst + 6 * S);
        Avx512F.Shuffle4x128(v7, vf, 0x88).Store(dst + 7 * S);
        Avx512F.Shuffle4x128(v0, v8, 0xDD).Store(dst + 8 * S);
        Avx512F.Shuffle4x128(v1, v9, 0xDD).Store(dst + 9 * S);
        Avx512F.Shuffle4x128(v2, va, 0xDD).Store(dst + 10 * S);
        Avx512F.Shuffle4x128(v3, vb, 0xDD).Store(dst + 11 * S);
        Avx512F.Shuffle4x128(v4, vc, 0xDD).Store(dst + 12 * S);
        Avx512F.Shuffle4x128(v5, vd, 0xDD).Store(dst + 13 * S);
        Avx512F.Shuffle4x128(v6, ve, 0xDD).Store(dst + 14 * S);
        Avx512F.Shuffle4x128(v7, vf, 0xDD).Store(dst + 15 * S);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Row(float* src, int ld, int r, int rows) => r < rows ? Vector512.Load(src + (nint)r * ld) : Vector512<float>.Zero;

    [ThreadStatic] private static float[]? t_x;
    [ThreadStatic] private static float[]? t_scratch;

    /// <summary>
    /// y (+)= x W^T over panels from <paramref name="source"/>, [batch, outF] and [batch, inF] row-major;
    /// <paramref name="degree"/> bounds the threads (the panels are split between them). Caller checks <see cref="Applies"/>.
    /// </summary>
    internal static void Run<TSource>(float* x, TSource source, float* y, int batch, int outF, int inF, bool accumulate, int degree)
        where TSource : struct, IPanelSource
    {
        // x rows in groups of at most 12 (sizes within one of each other), each packed k-major: group g's feature k
        // at xp[start_g x In + k x rows_g + r], so a tile broadcasts from one pointer with constant offsets.
        int groups = (batch + MaxRows - 1) / MaxRows;
        // 16 x 16 transposes; each k's full 16-float store runs past its rows into the next k's (written next) or,
        // at the very end, into the 256 floats of slack, which also hold the transpose's block.
        float* xp = PackedSgemm.Buffer(ref t_x, (long)batch * inF + 512);
        float* block = xp + (long)batch * inF + 256;
        int whole = inF & ~15;
        for (int g = 0, b0 = 0; g < groups; g++)
        {
            int rows = GroupRows(batch, groups, g);
            float* dst = xp + (nint)b0 * inF;
            float* src = x + (nint)b0 * inF;
            for (int k = 0; k < whole; k += 16)
            {
                Transpose16(src + k, inF, rows, block, 16);
                for (int kk = 0; kk < 16; kk++) Vector512.Load(block + kk * 16).Store(dst + (nint)(k + kk) * rows);
            }
            for (int r = 0; r < rows; r++)
                for (int k = whole; k < inF; k++) dst[(nint)k * rows + r] = src[(nint)r * inF + k];
            b0 += rows;
        }
        Execute(xp, source, y, batch, outF, inF, accumulate, degree, groups);
    }

    /// <summary>
    /// y (+)= x W^T as <see cref="Run{TSource}"/> in row blocks of <see cref="RowBlock"/> (one call up to that many rows):
    /// a block's packed x stays in L2 while the panels stream past, for products of any batch.
    /// </summary>
    internal static void RunRowBlocks<TSource>(float* x, TSource source, float* y, int batch, int outF, int inF, bool accumulate, int degree)
        where TSource : struct, IPanelSource
    {
        for (int i0 = 0; i0 < batch; i0 += RowBlock)
            Run(x + (nint)i0 * inF, source, y + (nint)i0 * outF, Math.Min(RowBlock, batch - i0), outF, inF, accumulate, degree);
    }

    /// <summary>
    /// As <see cref="Run{TSource}"/> with x given k-major: x[b, k] = <paramref name="xt"/>[k x <paramref name="ldx"/> + b]
    /// (a product A^T B, whose rows are A's columns), so packing a group copies runs of its rows.
    /// </summary>
    internal static void RunTransposedX<TSource>(float* xt, int ldx, TSource source, float* y, int batch, int outF, int inF, bool accumulate, int degree)
        where TSource : struct, IPanelSource
    {
        int groups = (batch + MaxRows - 1) / MaxRows;
        float* xp = PackedSgemm.Buffer(ref t_x, (long)batch * inF + 512);
        for (int g = 0, b0 = 0; g < groups; g++)
        {
            int rows = GroupRows(batch, groups, g);
            float* dst = xp + (nint)b0 * inF;
            for (int k = 0; k < inF; k++)
            {
                float* src = xt + (nint)k * ldx + b0;
                for (int r = 0; r < rows; r++) dst[(nint)k * rows + r] = src[r];
            }
            b0 += rows;
        }
        Execute(xp, source, y, batch, outF, inF, accumulate, degree, groups);
    }

    private static void Execute<TSource>(float* xp, TSource source, float* y, int batch, int outF, int inF, bool accumulate, int degree, int groups)
        where TSource : struct, IPanelSource
    {
        var body = new Body<TSource> { Xp = xp, Source = source, Y = y, Batch = batch, Out = outF, In = inF, Accumulate = accumulate, Groups = groups };
        // Batches of up to 4 rows pair panels: a thread gets at least two.
        WorkerPool.Shared.For(Panels(outF), ref body, degree, batch <= PairedMaxRows ? 2 : 1);
    }

    private static int GroupRows(int batch, int groups, int g) => batch / groups + (g < batch % groups ? 1 : 0);

    private struct Body<TSource> : IRangeBody where TSource : struct, IPanelSource
    {
        public float* Xp, Y;
        public TSource Source;
        public int Batch, Out, In, Groups;
        public bool Accumulate;

        public readonly void Invoke(int start, int end)
        {
            // Per thread: two transposed k blocks (KB x 32 each) and the paused accumulators of every batch row (32
            // per panel, two panels).
            float* scratch = PackedSgemm.Buffer(ref t_scratch, 2 * KB * PanelOutputs + 2L * Batch * PanelOutputs);
            float* scratch1 = scratch + KB * PanelOutputs;
            float* acc = scratch1 + KB * PanelOutputs;
            float* acc1 = acc + Batch * PanelOutputs;
            for (int p = start; p < end;)
            {
                // Up to 4 rows, two panels side by side: 8-16 accumulators keep both FMA pipes busy (one panel at
                // batch 2 would be 4 chains, half the latency-bound rate).
                bool pair = Batch <= PairedMaxRows && p + 1 < end;
                CopyIn(p, acc);
                if (pair) CopyIn(p + 1, acc1);
                for (int k0 = 0; k0 < In; k0 += KB)
                {
                    int kb = Math.Min(KB, In - k0);
                    float* panel = Source.Block(p, k0, kb, scratch);
                    bool first = k0 == 0 && !Accumulate;
                    if (pair)
                    {
                        TilePair(Batch, Xp + (nint)k0 * Batch, panel, Source.Block(p + 1, k0, kb, scratch1), kb, acc, acc1, first);
                        continue;
                    }
                    for (int g = 0, b0 = 0; g < Groups; g++)
                    {
                        int rows = GroupRows(Batch, Groups, g);
                        Tile(rows, Xp + (nint)b0 * In + (nint)k0 * rows, panel, kb, acc + b0 * PanelOutputs, first);
                        b0 += rows;
                    }
                }
                CopyOut(p, acc);
                if (pair) CopyOut(p + 1, acc1);
                p += pair ? 2 : 1;
            }
        }

        private readonly void CopyIn(int p, float* acc)
        {
            if (!Accumulate) return;
            int o0 = p * PanelOutputs, valid = Math.Min(PanelOutputs, Out - o0);
            for (int b = 0; b < Batch; b++)
            {
                float* a = acc + b * PanelOutputs;
                float* yr = Y + (nint)b * Out + o0;
                if (valid == PanelOutputs) { Vector512.Load(yr).Store(a); Vector512.Load(yr + 16).Store(a + 16); }
                else for (int j = 0; j < PanelOutputs; j++) a[j] = j < valid ? yr[j] : 0f;
            }
        }

        private readonly void CopyOut(int p, float* acc)
        {
            int o0 = p * PanelOutputs, valid = Math.Min(PanelOutputs, Out - o0);
            for (int b = 0; b < Batch; b++)
            {
                float* a = acc + b * PanelOutputs;
                float* yr = Y + (nint)b * Out + o0;
                if (valid == PanelOutputs) { Vector512.Load(a).Store(yr); Vector512.Load(a + 16).Store(yr + 16); }
                else for (int j = 0; j < valid; j++) yr[j] = a[j];
            }
        }
    }

    /// <summary>Batches up to this many rows run two panels per tile.</summary>
    private const int PairedMaxRows = 4;

    private static void TilePair(int rows, float* xp, float* panel0, float* panel1, int kb, float* acc0, float* acc1, bool first)
    {
        switch (rows)
        {
            case 1: TilePair<R1>(xp, panel0, panel1, kb, acc0, acc1, first); break;
            case 2: TilePair<R2>(xp, panel0, panel1, kb, acc0, acc1, first); break;
            case 3: TilePair<R3>(xp, panel0, panel1, kb, acc0, acc1, first); break;
            default: TilePair<R4>(xp, panel0, panel1, kb, acc0, acc1, first); break;
        }
    }

    /// <summary>
    /// As <see cref="Tile{R}"/> for up to 4 rows over two panels (64 outputs): 4 panel loads and R broadcasts per
    /// 4R FMAs; acc0 / acc1 hold the two panels' accumulators, row r at r x 32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TilePair<R>(float* xp, float* panel0, float* panel1, int kb, float* acc0, float* acc1, bool first) where R : struct, IRows
    {
        int n = R.N;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        if (!first)
        {
            a00 = Vector512.Load(acc0); a01 = Vector512.Load(acc0 + 16); a02 = Vector512.Load(acc1); a03 = Vector512.Load(acc1 + 16);
            if (n > 1) { a10 = Vector512.Load(acc0 + 32); a11 = Vector512.Load(acc0 + 48); a12 = Vector512.Load(acc1 + 32); a13 = Vector512.Load(acc1 + 48); }
            if (n > 2) { a20 = Vector512.Load(acc0 + 64); a21 = Vector512.Load(acc0 + 80); a22 = Vector512.Load(acc1 + 64); a23 = Vector512.Load(acc1 + 80); }
            if (n > 3) { a30 = Vector512.Load(acc0 + 96); a31 = Vector512.Load(acc0 + 112); a32 = Vector512.Load(acc1 + 96); a33 = Vector512.Load(acc1 + 112); }
        }
        nint step = 0, end = (nint)kb * PanelOutputs;
        for (; step < end; step += PanelOutputs, xp += n)
        {
            var w0 = Vector512.Load(panel0 + step);
            var w1 = Vector512.Load(panel0 + step + 16);
            var w2 = Vector512.Load(panel1 + step);
            var w3 = Vector512.Load(panel1 + step + 16);
            var b = Vector512.Create(xp[0]);
            a00 = Vector512.FusedMultiplyAdd(b, w0, a00); a01 = Vector512.FusedMultiplyAdd(b, w1, a01);
            a02 = Vector512.FusedMultiplyAdd(b, w2, a02); a03 = Vector512.FusedMultiplyAdd(b, w3, a03);
            if (n > 1)
            {
                b = Vector512.Create(xp[1]);
                a10 = Vector512.FusedMultiplyAdd(b, w0, a10); a11 = Vector512.FusedMultiplyAdd(b, w1, a11);
                a12 = Vector512.FusedMultiplyAdd(b, w2, a12); a13 = Vector512.FusedMultiplyAdd(b, w3, a13);
            }
            if (n > 2)
            {
                b = Vector512.Create(xp[2]);
                a20 = Vector512.FusedMultiplyAdd(b, w0, a20); a21 = Vector512.FusedMultiplyAdd(b, w1, a21);
                a22 = Vector512.FusedMultiplyAdd(b, w2, a22); a23 = Vector512.FusedMultiplyAdd(b, w3, a23);
            }
            if (n > 3)
            {
                b = Vector512.Create(xp[3]);
                a30 = Vector512.FusedMultiplyAdd(b, w0, a30); a31 = Vector512.FusedMultiplyAdd(b, w1, a31);
                a32 = Vector512.FusedMultiplyAdd(b, w2, a32); a33 = Vector512.FusedMultiplyAdd(b, w3, a33);
            }
        }
        a00.Store(acc0); a01.Store(acc0 + 16); a02.Store(acc1); a03.Store(acc1 + 16);
        if (n > 1) { a10.Store(acc0 + 32); a11.Store(acc0 + 48); a12.Store(acc1 + 32); a13.Store(acc1 + 48); }
        if (n > 2) { a20.Store(acc0 + 64); a21.Store(acc0 + 80); a22.Store(acc1 + 64); a23.Store(acc1 + 80); }
        if (n > 3) { a30.Store(acc0 + 96); a31.Store(acc0 + 112); a32.Store(acc1 + 96); a33.Store(acc1 + 112); }
    }

    private static void Tile(int rows, float* xp, float* panel, int kb, float* acc, bool first)
    {
        switch (rows)
        {
            case 1: Tile<R1>(xp, panel, kb, acc, first); break;
            case 2: Tile<R2>(xp, panel, kb, acc, first); break;
            case 3: Tile<R3>(xp, panel, kb, acc, first); break;
            case 4: Tile<R4>(xp, panel, kb, acc, first); break;
            case 5: Tile<R5>(xp, panel, kb, acc, first); break;
            case 6: Tile<R6>(xp, panel, kb, acc, first); break;
            case 7: Tile<R7>(xp, panel, kb, acc, first); break;
            case 8: Tile<R8>(xp, panel, kb, acc, first); break;
            case 9: Tile<R9>(xp, panel, kb, acc, first); break;
            case 10: Tile<R10>(xp, panel, kb, acc, first); break;
            case 11: Tile<R11>(xp, panel, kb, acc, first); break;
            default: Tile<R12>(xp, panel, kb, acc, first); break;
        }
    }

    private interface IRows { static abstract int N { get; } }
    private struct R1 : IRows { public static int N => 1; }
    private struct R2 : IRows { public static int N => 2; }
    private struct R3 : IRows { public static int N => 3; }
    private struct R4 : IRows { public static int N => 4; }
    private struct R5 : IRows { public static int N => 5; }
    private struct R6 : IRows { public static int N => 6; }
    private struct R7 : IRows { public static int N => 7; }
    private struct R8 : IRows { public static int N => 8; }
    private struct R9 : IRows { public static int N => 9; }
    private struct R10 : IRows { public static int N => 10; }
    private struct R11 : IRows { public static int N => 11; }
    private struct R12 : IRows { public static int N => 12; }

    /// <summary>
    /// The register tile: R x rows (k-major at xp, R floats per feature) times one panel block (kb x 32 at panel);
    /// acc holds row r's 32 outputs at r x 32 (read unless <paramref name="first"/>, written back).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile<R>(float* xp, float* panel, int kb, float* acc, bool first) where R : struct, IRows
    {
        int n = R.N;
        Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default;
        Vector512<float> a30 = default, a31 = default, a40 = default, a41 = default, a50 = default, a51 = default;
        Vector512<float> a60 = default, a61 = default, a70 = default, a71 = default, a80 = default, a81 = default;
        Vector512<float> a90 = default, a91 = default, aa0 = default, aa1 = default, ab0 = default, ab1 = default;
        if (!first)
        {
            a00 = Vector512.Load(acc); a01 = Vector512.Load(acc + 16);
            if (n > 1) { a10 = Vector512.Load(acc + 32); a11 = Vector512.Load(acc + 48); }
            if (n > 2) { a20 = Vector512.Load(acc + 64); a21 = Vector512.Load(acc + 80); }
            if (n > 3) { a30 = Vector512.Load(acc + 96); a31 = Vector512.Load(acc + 112); }
            if (n > 4) { a40 = Vector512.Load(acc + 128); a41 = Vector512.Load(acc + 144); }
            if (n > 5) { a50 = Vector512.Load(acc + 160); a51 = Vector512.Load(acc + 176); }
            if (n > 6) { a60 = Vector512.Load(acc + 192); a61 = Vector512.Load(acc + 208); }
            if (n > 7) { a70 = Vector512.Load(acc + 224); a71 = Vector512.Load(acc + 240); }
            if (n > 8) { a80 = Vector512.Load(acc + 256); a81 = Vector512.Load(acc + 272); }
            if (n > 9) { a90 = Vector512.Load(acc + 288); a91 = Vector512.Load(acc + 304); }
            if (n > 10) { aa0 = Vector512.Load(acc + 320); aa1 = Vector512.Load(acc + 336); }
            if (n > 11) { ab0 = Vector512.Load(acc + 352); ab1 = Vector512.Load(acc + 368); }
        }
        float* end = panel + (nint)kb * PanelOutputs;
        for (; panel < end; panel += PanelOutputs, xp += n)
        {
            var w0 = Vector512.Load(panel);
            var w1 = Vector512.Load(panel + 16);
            var b = Vector512.Create(xp[0]); a00 = Vector512.FusedMultiplyAdd(b, w0, a00); a01 = Vector512.FusedMultiplyAdd(b, w1, a01);
            if (n > 1) { b = Vector512.Create(xp[1]); a10 = Vector512.FusedMultiplyAdd(b, w0, a10); a11 = Vector512.FusedMultiplyAdd(b, w1, a11); }
            if (n > 2) { b = Vector512.Create(xp[2]); a20 = Vector512.FusedMultiplyAdd(b, w0, a20); a21 = Vector512.FusedMultiplyAdd(b, w1, a21); }
            if (n > 3) { b = Vector512.Create(xp[3]); a30 = Vector512.FusedMultiplyAdd(b, w0, a30); a31 = Vector512.FusedMultiplyAdd(b, w1, a31); }
            if (n > 4) { b = Vector512.Create(xp[4]); a40 = Vector512.FusedMultiplyAdd(b, w0, a40); a41 = Vector512.FusedMultiplyAdd(b, w1, a41); }
            if (n > 5) { b = Vector512.Create(xp[5]); a50 = Vector512.FusedMultiplyAdd(b, w0, a50); a51 = Vector512.FusedMultiplyAdd(b, w1, a51); }
            if (n > 6) { b = Vector512.Create(xp[6]); a60 = Vector512.FusedMultiplyAdd(b, w0, a60); a61 = Vector512.FusedMultiplyAdd(b, w1, a61); }
            if (n > 7) { b = Vector512.Create(xp[7]); a70 = Vector512.FusedMultiplyAdd(b, w0, a70); a71 = Vector512.FusedMultiplyAdd(b, w1, a71); }
            if (n > 8) { b = Vector512.Create(xp[8]); a80 = Vector512.FusedMultiplyAdd(b, w0, a80); a81 = Vector512.FusedMultiplyAdd(b, w1, a81); }
            if (n > 9) { b = Vector512.Create(xp[9]); a90 = Vector512.FusedMultiplyAdd(b, w0, a90); a91 = Vector512.FusedMultiplyAdd(b, w1, a91); }
            if (n > 10) { b = Vector512.Create(xp[10]); aa0 = Vector512.FusedMultiplyAdd(b, w0, aa0); aa1 = Vector512.FusedMultiplyAdd(b, w1, aa1); }
            if (n > 11) { b = Vector512.Create(xp[11]); ab0 = Vector512.FusedMultiplyAdd(b, w0, ab0); ab1 = Vector512.FusedMultiplyAdd(b, w1, ab1); }
        }
        a00.Store(acc); a01.Store(acc + 16);
        if (n > 1) { a10.Store(acc + 32); a11.Store(acc + 48); }
        if (n > 2) { a20.Store(acc + 64); a21.Store(acc + 80); }
        if (n > 3) { a30.Store(acc + 96); a31.Store(acc + 112); }
        if (n > 4) { a40.Store(acc + 128); a41.Store(acc + 144); }
        if (n > 5) { a50.Store(acc + 160); a51.Store(acc + 176); }
        if (n > 6) { a60.Store(acc + 192); a61.Store(acc + 208); }
        if (n > 7) { a70.Store(acc + 224); a71.Store(acc + 240); }
        if (n > 8) { a80.Store(acc + 256); a81.Store(acc + 272); }
        if (n > 9) { a90.Store(acc + 288); a91.Store(acc + 304); }
        if (n > 10) { aa0.Store(acc + 320); aa1.Store(acc + 336); }
        if (n > 11) { ab0.Store(acc + 352); ab1.Store(acc + 368); }
    }
}
