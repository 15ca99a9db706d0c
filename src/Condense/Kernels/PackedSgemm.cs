using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>
/// fp32 y[B, Out] = x[B, In] W[Out, In]^T at batches of two AVX-512 vectors (32 rows) and more: an 8 x 48 register
/// tile (24 zmm accumulators; 8 W rows broadcast, 3 vectors of batch) over packed panels of both operands.
/// </summary>
/// <remarks>
/// <para><b>Summation order.</b> Every output y[b, o] is one fused multiply-add chain over i = 0, 1, ..., In - 1 in
/// increasing order, starting from +0: exactly <see cref="DenseMatMul.Reference"/>. K blocking only pauses a chain
/// (its accumulator is stored to the y^T scratch after feature k1 - 1 and reloaded before feature k1); the thread
/// split assigns whole chunks of W rows; the tile shape and the batch grouping only choose which lanes run side by
/// side. So the result is the reference bit for bit at any thread count, batch grouping and block size.</para>
/// <para><b>Blocking</b> (BLIS-like, for a 32 KiB L1 and a 1 MiB L2 per core): x is packed once per call, group-major
/// (each group of 48 batch rows, or the last 32 or 16, is an In x width panel, so a tile reads one contiguous stream).
/// Each thread takes whole chunks of <see cref="NC"/> W rows (no barrier inside a call but the one after x packing).
/// Per chunk and block of <see cref="KP"/> features it packs the W block (64 x 512, 128 KiB, stays in L2) into 8-row
/// micro-panels [k][8] with an in-register 8 x 8 transpose; then per k block of <see cref="KC"/> features it runs
/// every batch group over it: the group's x slice (KC x 48 floats, 24 KiB) stays in L1 while the 8 micro-panels
/// stream from L2 as sequential broadcasts. Per k step a tile issues 3 vector loads and 8 broadcasts for 24 FMAs.
/// The next W block is prefetched into L2, a few rows per tile over every tile of a k block.</para>
/// <para>Before this kernel (session 7), the 8 x 32 tile broadcast from W in place: its 8 rows are In floats apart (a
/// multiple of 4 KiB for the benchmark shapes), so they fall into one L1 set, and x was read from L2 with a stride of
/// the whole padded batch; the profile showed the x loads stalling.</para>
/// </remarks>
internal static unsafe class PackedSgemm
{
    /// <summary>W rows per micro-panel (register tile height).</summary>
    private const int MR = 8;
    /// <summary>W rows per chunk: the unit of the thread split and of the y^T scratch.</summary>
    private const int NC = 64;
    /// <summary>Features per k block: a 48-wide x slice is KC x 48 x 4 = 24 KiB (L1).</summary>
    private const int KC = 128;
    /// <summary>Features per packed W block: 64 rows x 512 = 128 KiB (L2); each row segment read is 2 KiB, long enough for the hardware prefetcher.</summary>
    private const int KP = 512;
    /// <summary>Batch rows per group: 3 vectors.</summary>
    private const int NB = 48;

    /// <summary>Switch for tests and A/B measurements: off, the session-7 packed kernel runs instead.</summary>
    internal static bool Enabled { get; set; } = true;

    /// <summary>
    /// Session 11 knob (A/B): W chunks run side by side per packed W block, so one thread's pass reads the block's x
    /// rows from L3 once for this many chunks (1: the session-8 order, every chunk streams all of x from L3).
    /// </summary>
    internal static int ChunksPerPass { get; set; } = 4;

    /// <summary>
    /// Session 13 knob (A/B): features per k block, the length of one tile call (a multiple of 8 up to
    /// <see cref="KP"/>; default <see cref="KC"/>). Only where the chains pause changes: same bits at any value.
    /// </summary>
    internal static int KBlock { get; set; } = KC;

    /// <summary>
    /// Benchmark probe only (session 13, <c>--quick sgemm</c>'s <c>-packonly</c> variants): skip the tiles and the copy-out,
    /// so a call times x packing, W packing or decoding and the prefetches alone. The outputs are garbage while set.
    /// </summary>
    internal static bool ProbeSkipTiles { get; set; }


    /// <summary>Whether this kernel takes a batch at the given vector width: AVX-512 and at least two vectors of batch.</summary>
    internal static bool Applies(int batch, int bits) => Applies(batch, bits, 32);

    /// <summary>As <see cref="Applies(int, int)"/> from <paramref name="minBatch"/> rows (at least 16: the last batch group is 16 or 32 rows, padded).</summary>
    internal static bool Applies(int batch, int bits, int minBatch) => Enabled && bits == 512 && Avx512F.IsSupported && batch >= Math.Max(16, minBatch);

    [ThreadStatic] private static float[]? t_x;
    [ThreadStatic] private static float[]? t_w;
    [ThreadStatic] private static float[]? t_y;

    /// <summary>64-byte aligned pointer into a thread's pinned buffer of at least <paramref name="floats"/> floats (also <see cref="OutputLanesSgemm"/>'s).</summary>
    internal static float* Buffer(ref float[]? buffer, long floats)
    {
        if (buffer is null || buffer.LongLength < floats + 16)
            buffer = GC.AllocateUninitializedArray<float>((int)Math.Max(floats + 16, 1 << 12), pinned: true);
        nint p = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(buffer));
        return (float*)((p + 63) & ~(nint)63);
    }

    /// <summary>Padded batch: a whole number of 16-float vectors.</summary>
    private static int Padded(int batch) => (batch + 15) / 16 * 16;

    public static void Run(float* x, float* w, float* y, int batch, int outF, int inF, int degree)
    {
        var source = new DenseBlocks { W = w, In = inF };
        Run(x, ref source, y, batch, outF, inF, degree);
    }

    /// <summary>
    /// Where the W blocks come from: <see cref="Pack"/> fills micro-panels (<see cref="PackW"/>'s layout) from W rows
    /// [r0, r0 + rows) and features [p0, p0 + kp) (kp &lt;= <see cref="KP"/>, rows &lt;= <see cref="NC"/>, p0 a multiple
    /// of KP); <see cref="Prefetch"/> hints a row segment of a block the thread packs later. Per-thread state (scratch)
    /// belongs in thread-static buffers: one instance serves every thread.
    /// </summary>
    internal interface IWeightBlocks
    {
        void Pack(int r0, int rows, int p0, int kp, float* wp);
        void Prefetch(int row, int feature, int count);
    }

    /// <summary>Float32 W, row-major with row stride In.</summary>
    private struct DenseBlocks : IWeightBlocks
    {
        public float* W;
        public int In;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Pack(int r0, int rows, int p0, int kp, float* wp) => PackW(W + (nint)r0 * In + p0, In, rows, kp, wp);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Prefetch(int row, int feature, int count) => PrefetchRow(W + (nint)row * In + feature, count);
    }

    /// <summary>Features per packed W block (<see cref="IWeightBlocks.Pack"/>'s kp is at most this).</summary>
    internal const int BlockFeatures = KP;
    /// <summary>W rows per packed chunk (<see cref="IWeightBlocks.Pack"/>'s rows is at most this).</summary>
    internal const int ChunkRows = NC;

    /// <summary>y = x W^T with W's blocks from <paramref name="source"/>: same tiles, blocking and summation order as the dense product.</summary>
    internal static void Run<TW>(float* x, ref TW source, float* y, int batch, int outF, int inF, int degree) where TW : struct, IWeightBlocks
    {
        int padded = Padded(batch);
        float* xp = Buffer(ref t_x, (long)inF * padded);
        var pack = new PackXBody { X = x, Xp = xp, Batch = batch, Padded = padded, In = inF };
        long packedFloats = (long)inF * padded;
        WorkerPool.Shared.For((inF + PackRows - 1) / PackRows, ref pack, packedFloats < 1 << 16 ? 1 : degree);
        var body = new ChunkBody<TW> { Xp = xp, Source = source, Y = y, Batch = batch, Padded = padded, Out = outF, In = inF };
        WorkerPool.Shared.For((outF + NC - 1) / NC, ref body, degree);
    }

    private const int PackRows = 64; // input features per x packing chunk

    /// <summary>x [batch, In] to group-major panels: the group starting at batch row b0 with width nb holds x[b0 + j, i] at b0 * In + i * nb + j.</summary>
    private struct PackXBody : IRangeBody
    {
        public float* X, Xp;
        public int Batch, Padded, In;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(int start, int end)
        {
            int i0 = start * PackRows, i1 = Math.Min(In, end * PackRows);
            for (int b0 = 0; b0 < Padded; b0 += NB)
            {
                int nb = Math.Min(NB, Padded - b0);
                float* g = Xp + (nint)b0 * In;
                int real = Math.Min(nb, Batch - b0);
                int j0 = 0;
                // 8 batch rows x 8 features per transpose: g[i * nb + j] = x[b0 + j, i]; the rest below, element by element.
                int i8 = i0 + (i1 - i0) / 8 * 8;
                for (; j0 + 8 <= real; j0 += 8)
                {
                    float* s = X + (nint)(b0 + j0) * In;
                    for (int i = i0; i < i8; i += 8) Transpose8x8(s + i, In, g + (nint)i * nb + j0, nb);
                    for (int j = j0; j < j0 + 8; j++)
                        for (int i = i8; i < i1; i++) g[(nint)i * nb + j] = s[(nint)(j - j0) * In + i];
                }
                for (int j = j0; j < real; j++)
                {
                    float* s = X + (nint)(b0 + j) * In;
                    float* d = g + j;
                    for (int i = i0; i < i1; i++) d[(nint)i * nb] = s[i];
                }
                for (int j = real; j < nb; j++)
                    for (int i = i0; i < i1; i++) g[(nint)i * nb + j] = 0f;
            }
        }
    }

    private struct ChunkBody<TW> : IRangeBody where TW : struct, IWeightBlocks
    {
        public float* Xp, Y;
        public TW Source;
        public int Batch, Padded, Out, In;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(int start, int end)
        {
            // The pass's y^T scratch stays within 128 KiB of L2 (4 chunks at batch 128, 1 from batch 512 on).
            int pass = Math.Clamp(Math.Min(ChunksPerPass, (1 << 15) / (NC * Padded)), 1, Math.Max(1, ChunksPerPass));
            float* yts = Buffer(ref t_y, (long)pass * NC * Padded);
            float* wp = Buffer(ref t_w, NC * KP);
            int kcBlock = Math.Clamp(KBlock / 8 * 8, 8, KP);
            bool skipTiles = ProbeSkipTiles;
            int batchGroups = (Padded + NB - 1) / NB;
            // A pass: up to `pass` chunks side by side per W block (session 11), so the x rows of a block (KP x batch,
            // 256 KiB at batch 128) are read from L3 once per pass and from L2 by its other chunks. One chunk per pass
            // is the session-8 order. Each output's chain still runs over the features in order.
            for (int s0 = start; s0 < end; s0 += pass)
            {
                int s1 = Math.Min(end, s0 + pass);
                for (int p0 = 0; p0 < In; p0 += KP)
                {
                    int kp = Math.Min(KP, In - p0);
                    for (int c = s0; c < s1; c++)
                    {
                        int r0 = c * NC, rows = Math.Min(NC, Out - r0);
                        int groups = (rows + MR - 1) / MR, tiles = batchGroups * groups;
                        float* yt = yts + (nint)(c - s0) * NC * Padded;
                        Source.Pack(r0, rows, p0, kp, wp);
                        // The next W block this thread packs: the next chunk of the pass, else the pass's first chunk's
                        // next KP features, else the next pass's first block.
                        int nextC = c + 1 < s1 ? c + 1 : p0 + KP < In ? s0 : s1;
                        int nextP0 = c + 1 < s1 ? p0 : p0 + KP < In ? p0 + KP : 0;
                        bool hasNext = nextC < end;
                        int nextR0 = nextC * NC, nextRows = hasNext ? Math.Min(NC, Out - nextR0) : 0;
                        int nextKp = Math.Min(KP, In - nextP0);
                        for (int k0 = p0; k0 < p0 + kp; k0 += kcBlock)
                        {
                            int kc = Math.Min(kcBlock, p0 + kp - k0);
                            bool first = k0 == 0;
                            // The next block's prefetch spread over every tile of the k block (session 11; a burst of
                            // 64 lines per tile over the first batch group's tiles waited for the miss queue): tile t
                            // takes rows [nextRows t / T, nextRows (t + 1) / T), counted (the two divisions per tile
                            // showed in the profile): rb = the end so far, frac = nextRows t mod T.
                            int rbSpread = 0, frac = 0;
                            for (int b0 = 0; b0 < Padded; b0 += NB)
                            {
                                int nb = Math.Min(NB, Padded - b0);
                                float* xg = Xp + (nint)b0 * In + (nint)k0 * nb;
                                for (int g = 0; g < groups; g++)
                                {
                                    // The next block's lines for this k block's offset, a few rows per tile (a burst of
                                    // all 2,048 lines would fill the miss queue; without this prefetch a call ran ~2% slower).
                                    if (hasNext)
                                    {
                                        int ra = rbSpread;
                                        frac += nextRows;
                                        while (frac >= tiles) { frac -= tiles; rbSpread++; }
                                        int rb = rbSpread;
                                        for (int r = ra; r < rb; r++)
                                            Source.Prefetch(nextR0 + r, nextP0 + (k0 - p0), Math.Min(kcBlock, nextKp - (k0 - p0)));
                                    }
                                    float* acc = yt + (nint)g * MR * Padded + b0;
                                    float* panel = wp + g * MR * KP + (k0 - p0) * MR;
                                    if (skipTiles) continue;
                                    if (nb == 48) Tile8x3(panel, xg, kc, acc, Padded, first);
                                    else if (nb == 32) Tile8x2(panel, xg, kc, acc, Padded, first);
                                    else Tile8x1(panel, xg, kc, acc, Padded, first);
                                }
                            }
                        }
                    }
                }
                for (int c = s0; c < s1; c++)
                {
                    int r0 = c * NC, rows = Math.Min(NC, Out - r0);
                    float* yt = yts + (nint)(c - s0) * NC * Padded;
                    // y^T scratch -> y rows: contiguous writes, strided reads from L1/L2; 8 x 8 blocks, then the edges.
                    int b8 = 0, o8 = rows / 8 * 8;
                    if (o8 > 0)
                    {
                        for (; b8 + 8 <= Batch; b8 += 8)
                        {
                            float* yr = Y + (nint)b8 * Out + r0;
                            for (int o = 0; o < o8; o += 8) Transpose8x8(yt + (nint)o * Padded + b8, Padded, yr + o, Out);
                            for (int b = b8; b < b8 + 8; b++)
                                for (int o = o8; o < rows; o++) Y[(nint)b * Out + r0 + o] = yt[(nint)o * Padded + b];
                        }
                    }
                    for (int b = b8; b < Batch; b++)
                    {
                        float* yr = Y + (nint)b * Out + r0;
                        float* src = yt + b;
                        for (int o = 0; o < rows; o++) yr[o] = src[(nint)o * Padded];
                    }
                }
            }
        }
    }

    /// <summary>
    /// Benchmark probe (session 13, <c>--quick sgemm --tile</c>): the micro-kernel alone, <paramref name="reps"/> times
    /// over <paramref name="groups"/> 8-row micro-panels of <paramref name="kc"/> features and one x slice of
    /// <paramref name="vectors"/> batch vectors (1-3), with the accumulators in a y^T scratch of batch stride 128: the
    /// operands stay in L1 (1 panel, kc 128) or L2 (8 panels, kc 512). Returns the flops run.
    /// </summary>
    internal static double TileProbe(int vectors, int kc, int groups, int reps)
    {
        int nb = 16 * vectors;
        float* wp = Buffer(ref t_w, (long)groups * MR * KP);
        float* xg = Buffer(ref t_x, (long)KP * NB);
        float* acc = Buffer(ref t_y, (long)groups * MR * 128);
        for (int i = 0; i < groups * MR * KP; i++) wp[i] = 1e-3f * (i % 7);
        for (int i = 0; i < KP * NB; i++) xg[i] = 1e-3f * (i % 5);
        for (int r = 0; r < reps; r++)
            for (int g = 0; g < groups; g++)
            {
                float* panel = wp + g * MR * KP, a = acc + (nint)g * MR * 128;
                if (vectors == 3) Tile8x3(panel, xg, kc, a, 128, r == 0);
                else if (vectors == 2) Tile8x2(panel, xg, kc, a, 128, r == 0);
                else Tile8x1(panel, xg, kc, a, 128, r == 0);
            }
        return 2.0 * reps * groups * MR * nb * kc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRow(float* row, int floats)
    {
        for (int i = 0; i < floats; i += 16) Sse.Prefetch1(row + i);
    }

    /// <summary>
    /// W block (rows x kc, row stride ldw, kc &lt;= KP) into micro-panels: panel g holds W[g*8 + r, k] at g * 8 * KP + k * 8 + r;
    /// rows past <paramref name="rows"/> (the last chunk's) are zero, their outputs are never copied out.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackW(float* w, int ldw, int rows, int kc, float* wp)
    {
        int g = 0;
        for (; (g + 1) * MR <= rows; g++)
        {
            float* s = w + (nint)g * MR * ldw;
            float* d = wp + g * MR * KP;
            int k = 0;
            for (; k + 8 <= kc; k += 8) Transpose8x8(s + k, ldw, d + k * MR);
            for (; k < kc; k++)
                for (int r = 0; r < MR; r++) d[k * MR + r] = s[(nint)r * ldw + k];
        }
        if (g * MR < rows)
        {
            float* s = w + (nint)g * MR * ldw;
            float* d = wp + g * MR * KP;
            int real = rows - g * MR;
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++) d[k * MR + r] = r < real ? s[(nint)r * ldw + k] : 0f;
        }
    }

    /// <summary>d[k * 8 + r] = s[r * lds + k] for an 8 x 8 block: unpack, shuffle, then swap 128-bit halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(float* s, int lds, float* d) => Transpose8x8(s, lds, d, 8);

    /// <summary>d[k * ldd + r] = s[r * lds + k] for an 8 x 8 block (r, k &lt; 8): unpack, shuffle, then swap 128-bit halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(float* s, nint lds, float* d, nint ldd)
    {
        nint l = lds;
        var r0 = Avx.LoadVector256(s); var r1 = Avx.LoadVector256(s + l);
        var r2 = Avx.LoadVector256(s + 2 * l); var r3 = Avx.LoadVector256(s + 3 * l);
        var r4 = Avx.LoadVector256(s + 4 * l); var r5 = Avx.LoadVector256(s + 5 * l);
        var r6 = Avx.LoadVector256(s + 6 * l); var r7 = Avx.LoadVector256(s + 7 * l);
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + ldd, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + 2 * ldd, Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + 3 * ldd, Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + 4 * ldd, Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + 5 * ldd, Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + 6 * ldd, Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + 7 * ldd, Avx.Permute2x128(u3, u7, 0x31));
    }

    // The tiles: acc rows are ld floats apart (the y^T scratch), x rows nb floats apart (the group's panel), the W
    // micro-panel 8 floats per k. Not inlined: one body each keeps the JIT's register allocation per tile.

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x3(float* wp, float* xg, int kc, float* acc, int ld, bool first)
    {
        nint l = ld;
        Vector512<float> c00, c01, c02, c10, c11, c12, c20, c21, c22, c30, c31, c32,
            c40, c41, c42, c50, c51, c52, c60, c61, c62, c70, c71, c72;
        if (first)
        {
            c00 = c01 = c02 = c10 = c11 = c12 = c20 = c21 = c22 = c30 = c31 = c32 = Vector512<float>.Zero;
            c40 = c41 = c42 = c50 = c51 = c52 = c60 = c61 = c62 = c70 = c71 = c72 = Vector512<float>.Zero;
        }
        else
        {
            c00 = Vector512.Load(acc); c01 = Vector512.Load(acc + 16); c02 = Vector512.Load(acc + 32);
            c10 = Vector512.Load(acc + l); c11 = Vector512.Load(acc + l + 16); c12 = Vector512.Load(acc + l + 32);
            c20 = Vector512.Load(acc + 2 * l); c21 = Vector512.Load(acc + 2 * l + 16); c22 = Vector512.Load(acc + 2 * l + 32);
            c30 = Vector512.Load(acc + 3 * l); c31 = Vector512.Load(acc + 3 * l + 16); c32 = Vector512.Load(acc + 3 * l + 32);
            c40 = Vector512.Load(acc + 4 * l); c41 = Vector512.Load(acc + 4 * l + 16); c42 = Vector512.Load(acc + 4 * l + 32);
            c50 = Vector512.Load(acc + 5 * l); c51 = Vector512.Load(acc + 5 * l + 16); c52 = Vector512.Load(acc + 5 * l + 32);
            c60 = Vector512.Load(acc + 6 * l); c61 = Vector512.Load(acc + 6 * l + 16); c62 = Vector512.Load(acc + 6 * l + 32);
            c70 = Vector512.Load(acc + 7 * l); c71 = Vector512.Load(acc + 7 * l + 16); c72 = Vector512.Load(acc + 7 * l + 32);
        }
        float* end = wp + kc * MR;
        for (; wp < end; wp += MR, xg += 48)
        {
            var x0 = Vector512.Load(xg); var x1 = Vector512.Load(xg + 16); var x2 = Vector512.Load(xg + 32);
            var q = Vector512.Create(wp[0]);
            c00 = Avx512F.FusedMultiplyAdd(x0, q, c00); c01 = Avx512F.FusedMultiplyAdd(x1, q, c01); c02 = Avx512F.FusedMultiplyAdd(x2, q, c02);
            q = Vector512.Create(wp[1]);
            c10 = Avx512F.FusedMultiplyAdd(x0, q, c10); c11 = Avx512F.FusedMultiplyAdd(x1, q, c11); c12 = Avx512F.FusedMultiplyAdd(x2, q, c12);
            q = Vector512.Create(wp[2]);
            c20 = Avx512F.FusedMultiplyAdd(x0, q, c20); c21 = Avx512F.FusedMultiplyAdd(x1, q, c21); c22 = Avx512F.FusedMultiplyAdd(x2, q, c22);
            q = Vector512.Create(wp[3]);
            c30 = Avx512F.FusedMultiplyAdd(x0, q, c30); c31 = Avx512F.FusedMultiplyAdd(x1, q, c31); c32 = Avx512F.FusedMultiplyAdd(x2, q, c32);
            q = Vector512.Create(wp[4]);
            c40 = Avx512F.FusedMultiplyAdd(x0, q, c40); c41 = Avx512F.FusedMultiplyAdd(x1, q, c41); c42 = Avx512F.FusedMultiplyAdd(x2, q, c42);
            q = Vector512.Create(wp[5]);
            c50 = Avx512F.FusedMultiplyAdd(x0, q, c50); c51 = Avx512F.FusedMultiplyAdd(x1, q, c51); c52 = Avx512F.FusedMultiplyAdd(x2, q, c52);
            q = Vector512.Create(wp[6]);
            c60 = Avx512F.FusedMultiplyAdd(x0, q, c60); c61 = Avx512F.FusedMultiplyAdd(x1, q, c61); c62 = Avx512F.FusedMultiplyAdd(x2, q, c62);
            q = Vector512.Create(wp[7]);
            c70 = Avx512F.FusedMultiplyAdd(x0, q, c70); c71 = Avx512F.FusedMultiplyAdd(x1, q, c71); c72 = Avx512F.FusedMultiplyAdd(x2, q, c72);
        }
        c00.Store(acc); c01.Store(acc + 16); c02.Store(acc + 32);
        c10.Store(acc + l); c11.Store(acc + l + 16); c12.Store(acc + l + 32);
        c20.Store(acc + 2 * l); c21.Store(acc + 2 * l + 16); c22.Store(acc + 2 * l + 32);
        c30.Store(acc + 3 * l); c31.Store(acc + 3 * l + 16); c32.Store(acc + 3 * l + 32);
        c40.Store(acc + 4 * l); c41.Store(acc + 4 * l + 16); c42.Store(acc + 4 * l + 32);
        c50.Store(acc + 5 * l); c51.Store(acc + 5 * l + 16); c52.Store(acc + 5 * l + 32);
        c60.Store(acc + 6 * l); c61.Store(acc + 6 * l + 16); c62.Store(acc + 6 * l + 32);
        c70.Store(acc + 7 * l); c71.Store(acc + 7 * l + 16); c72.Store(acc + 7 * l + 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x2(float* wp, float* xg, int kc, float* acc, int ld, bool first)
    {
        nint l = ld;
        Vector512<float> c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71;
        if (first)
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = Vector512<float>.Zero;
            c40 = c41 = c50 = c51 = c60 = c61 = c70 = c71 = Vector512<float>.Zero;
        }
        else
        {
            c00 = Vector512.Load(acc); c01 = Vector512.Load(acc + 16);
            c10 = Vector512.Load(acc + l); c11 = Vector512.Load(acc + l + 16);
            c20 = Vector512.Load(acc + 2 * l); c21 = Vector512.Load(acc + 2 * l + 16);
            c30 = Vector512.Load(acc + 3 * l); c31 = Vector512.Load(acc + 3 * l + 16);
            c40 = Vector512.Load(acc + 4 * l); c41 = Vector512.Load(acc + 4 * l + 16);
            c50 = Vector512.Load(acc + 5 * l); c51 = Vector512.Load(acc + 5 * l + 16);
            c60 = Vector512.Load(acc + 6 * l); c61 = Vector512.Load(acc + 6 * l + 16);
            c70 = Vector512.Load(acc + 7 * l); c71 = Vector512.Load(acc + 7 * l + 16);
        }
        float* end = wp + kc * MR;
        for (; wp < end; wp += MR, xg += 32)
        {
            var x0 = Vector512.Load(xg); var x1 = Vector512.Load(xg + 16);
            var q = Vector512.Create(wp[0]);
            c00 = Avx512F.FusedMultiplyAdd(x0, q, c00); c01 = Avx512F.FusedMultiplyAdd(x1, q, c01);
            q = Vector512.Create(wp[1]);
            c10 = Avx512F.FusedMultiplyAdd(x0, q, c10); c11 = Avx512F.FusedMultiplyAdd(x1, q, c11);
            q = Vector512.Create(wp[2]);
            c20 = Avx512F.FusedMultiplyAdd(x0, q, c20); c21 = Avx512F.FusedMultiplyAdd(x1, q, c21);
            q = Vector512.Create(wp[3]);
            c30 = Avx512F.FusedMultiplyAdd(x0, q, c30); c31 = Avx512F.FusedMultiplyAdd(x1, q, c31);
            q = Vector512.Create(wp[4]);
            c40 = Avx512F.FusedMultiplyAdd(x0, q, c40); c41 = Avx512F.FusedMultiplyAdd(x1, q, c41);
            q = Vector512.Create(wp[5]);
            c50 = Avx512F.FusedMultiplyAdd(x0, q, c50); c51 = Avx512F.FusedMultiplyAdd(x1, q, c51);
            q = Vector512.Create(wp[6]);
            c60 = Avx512F.FusedMultiplyAdd(x0, q, c60); c61 = Avx512F.FusedMultiplyAdd(x1, q, c61);
            q = Vector512.Create(wp[7]);
            c70 = Avx512F.FusedMultiplyAdd(x0, q, c70); c71 = Avx512F.FusedMultiplyAdd(x1, q, c71);
        }
        c00.Store(acc); c01.Store(acc + 16);
        c10.Store(acc + l); c11.Store(acc + l + 16);
        c20.Store(acc + 2 * l); c21.Store(acc + 2 * l + 16);
        c30.Store(acc + 3 * l); c31.Store(acc + 3 * l + 16);
        c40.Store(acc + 4 * l); c41.Store(acc + 4 * l + 16);
        c50.Store(acc + 5 * l); c51.Store(acc + 5 * l + 16);
        c60.Store(acc + 6 * l); c61.Store(acc + 6 * l + 16);
        c70.Store(acc + 7 * l); c71.Store(acc + 7 * l + 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile8x1(float* wp, float* xg, int kc, float* acc, int ld, bool first)
    {
        nint l = ld;
        Vector512<float> c0, c1, c2, c3, c4, c5, c6, c7;
        if (first)
        {
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = Vector512<float>.Zero;
        }
        else
        {
            c0 = Vector512.Load(acc); c1 = Vector512.Load(acc + l); c2 = Vector512.Load(acc + 2 * l); c3 = Vector512.Load(acc + 3 * l);
            c4 = Vector512.Load(acc + 4 * l); c5 = Vector512.Load(acc + 5 * l); c6 = Vector512.Load(acc + 6 * l); c7 = Vector512.Load(acc + 7 * l);
        }
        float* end = wp + kc * MR;
        for (; wp < end; wp += MR, xg += 16)
        {
            var x0 = Vector512.Load(xg);
            c0 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[0]), c0);
            c1 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[1]), c1);
            c2 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[2]), c2);
            c3 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[3]), c3);
            c4 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[4]), c4);
            c5 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[5]), c5);
            c6 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[6]), c6);
            c7 = Avx512F.FusedMultiplyAdd(x0, Vector512.Create(wp[7]), c7);
        }
        c0.Store(acc); c1.Store(acc + l); c2.Store(acc + 2 * l); c3.Store(acc + 3 * l);
        c4.Store(acc + 4 * l); c5.Store(acc + 5 * l); c6.Store(acc + 6 * l); c7.Store(acc + 7 * l);
    }
}
