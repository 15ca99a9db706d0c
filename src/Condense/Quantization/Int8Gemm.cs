using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;
using Condense.Kernels.Jit;

namespace Condense.Quantization;

/// <summary>
/// The int8-activation GEMM for 8-bit codes at larger batches (AVX-512BW): a register-blocked micro-kernel over panels
/// of 64 weight rows, widened once per call and chunk into signed 16-bit pairs and reused by every batch row.
/// </summary>
/// <remarks>
/// <para>Why 16 bits: without an EVEX vpdpbusd intrinsic (.NET exposes only the VEX AvxVnni form), the 8-bit products
/// must go through vpmaddubsw or vpmaddwd. vpmaddubsw's 16-bit pair sums saturate for full-range 8-bit codes times
/// int8 activations (2 x 255 x 127 &gt; 2^15), and its exact workaround (|u - 128| with the sign moved onto the
/// activation) costs a compare and a select per code and batch row. vpmaddwd on 16-bit operands is exact for any
/// code and zero point and needs one add: 32 products per vpmaddwd + vpaddd, which measured 83 GMAC/s per Zen 4 core
/// (vpdpbusd would do 226).</para>
/// <para>Layout: the weight's codes are repacked once (<see cref="BuildPanels"/>, kept by the weight) so that the two
/// codes of input pair kp of 64 consecutive rows are adjacent: panel p, pair kp, row o at byte 2 (kp * 64 + o). Per
/// call and chunk of 128 inputs, 32 such bytes widen (vpmovzxbw) and lose their zero point into one vector of 16 rows'
/// pairs in an L1 buffer, without a transpose; the activations are laid out as
/// int32 pairs interleaved by tiles of batch rows (<see cref="BuildTiles"/>), so one broadcast gives one batch row's
/// pair. Each vpmaddwd then adds the products of 16 rows with one batch row into 16 int32 lanes: no horizontal sums
/// and no zero-point fold (the zero point is subtracted when the panel is widened).</para>
/// <para>Rounding: integer sums are exact per group (or per row: one group, at most 65,536 inputs, so within int32);
/// each group's sum is converted to float and accumulated as acc = fma(sum_g, s_g, acc) in group order, and the
/// result is scaled by the row's activation scale. Every output depends only on its own row and batch row, so the
/// result does not depend on the thread count, the tile a batch row falls in, or the batch size.</para>
/// <para>VNNI: where <see cref="VnniGemmKernel"/> is available (AVX-512 VNNI, Linux x64, <see cref="KernelOptions.GeneratedCode"/>),
/// the same product runs on generated vpdpbusd micro-kernels over a second repacked copy: quads of 4 consecutive codes
/// per row (<see cref="BuildQuadPanels"/>), read in place with no widening; the weight codes are vpdpbusd's unsigned
/// operand and the int8 activations its signed one, and the zero point is taken out as z x (sum of the group's
/// activations), computed once per call (see <see cref="VnniGemmKernel"/>). The integer sums are the same numbers, the
/// float32 steps the same operations in the same order, so results are bit-identical to the managed kernels.</para>
/// <para>VNNI, one group per row (DynamicQuantizeMatMul's case): each thread takes whole 64-row panels; per panel, one
/// generated call per tile of up to 6 batch rows runs the whole input length with its 24 accumulators in registers,
/// reading the quantized activation rows in place (no tile copy per call) and the panel from L2 in line order, then
/// the tile's outputs are scaled (<see cref="VnniRowPanel"/>). The activation rows are quantized on the pool's threads
/// (rows are independent). Loop order: panels outside, tiles inside, so a panel is read from memory once and from L2
/// by the other tiles; all batch rows' activations (128 x 4,096 bytes at 128 rows) stay in L2 across panels.</para>
/// </remarks>
internal static unsafe class Int8Gemm
{
    /// <summary>Weight rows per panel: 4 vectors of 16 int32 lanes.</summary>
    public const int PanelRows = 64;

    /// <summary>Batch rows per tile with one group per row (24 int32 accumulators).</summary>
    private const int RowTile = 6;

    /// <summary>Batch rows per tile with groups (12 int32 + 12 float32 accumulators).</summary>
    private const int GroupTile = 3;

    /// <summary>
    /// Inputs / 4 per chunk of the VNNI group kernel's panel (rounded down to whole groups, at least one group): every
    /// batch tile runs over one chunk before the next. Default 32 (128 inputs); knob for A/B runs (environment
    /// variable CONDENSE_VNNI_CHUNK_QUADS at start-up). Chunks are whole groups, so any value gives the same bits.
    /// </summary>
    internal static int VnniChunkQuads { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_VNNI_CHUNK_QUADS"), out int quads) && quads > 0 ? quads : 32;

    /// <summary>The most batch tiles for which a panel runs its whole input length as one chunk (knob; 0 turns it off).</summary>
    internal static int VnniWholeRowMaxTiles { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_VNNI_WHOLE_ROW_TILES"), out int tiles) && tiles >= 0 ? tiles : 4;

    /// <summary>The largest panel row (one 64-row panel's codes over all inputs) run as one chunk: 64 KiB.</summary>
    private const long VnniWholeRowMaxBytes = 64 << 10;

    /// <summary>The smallest batch the dispatch sends here.</summary>
    public const int DefaultMinBatch = 16;

    [ThreadStatic] private static int t_minBatch;

    /// <summary>
    /// Tests: the smallest batch the calling thread's products send here (0 = <see cref="DefaultMinBatch"/>). Per thread,
    /// so a test running the kernel at small batches does not change what concurrent tests run.
    /// </summary>
    internal static int MinBatchOverride { get => t_minBatch; set => t_minBatch = value; }

    private static int MinBatch => t_minBatch > 0 ? t_minBatch : DefaultMinBatch;

    [ThreadStatic] private static bool t_managedOnly;

    /// <summary>
    /// Tests: true keeps the calling thread's products on the managed (vpmaddwd) kernels even where the generated VNNI
    /// kernels are available, so both can be compared in one process. Per thread, like <see cref="MinBatchOverride"/>.
    /// </summary>
    internal static bool ManagedOnlyOverride { get => t_managedOnly; set => t_managedOnly = value; }

    /// <summary>
    /// True when a product with these groups runs on the generated VNNI kernels (which read the quad panels,
    /// <see cref="BuildQuadPanels"/>): available here, not switched off for this thread, and groups of whole quads.
    /// </summary>
    public static bool UsesVnni(int groupSize, int groupsPerRow) =>
        !t_managedOnly && (groupsPerRow == 1 || groupSize % 4 == 0) && VnniGemmKernel.IsAvailable;

    /// <summary>
    /// True when <see cref="Run"/> handles this product on this machine: 8-bit codes, and 2-, 3- and 4-bit codes where
    /// the generated VNNI kernels run (<see cref="UsesVnni"/>; their codes are expanded to bytes in the quad panels, 2 and
    /// 3 bits by the caller before <see cref="BuildQuadPanels"/>).
    /// </summary>
    public static bool Applies(int bits, int groupsPerRow, int inFeatures, int batch, int vectorBits) =>
        (bits == 8 || bits is 2 or 3 or 4 && UsesVnni(groupsPerRow == 1 ? inFeatures : inFeatures / groupsPerRow, groupsPerRow)) &&
        batch >= MinBatch && vectorBits >= 512 && Vector512.IsHardwareAccelerated && Avx512BW.IsSupported &&
        (groupsPerRow > 1 || inFeatures <= 65536);

    private struct Args
    {
        public bool Vnni;         // quad panels and the generated kernels (Panels/Terms in the VNNI layouts)
        public bool Nibbles;      // VNNI: 4-bit quad panels, two codes per byte (BuildQuadPanels with bits 4)
        public float* GroupSums;  // VNNI: per batch row b, the int8 sums of its groups at GroupSums[b * GroupStride + g]
        public int GroupStride;
        public byte* Panels;
        public float* Terms;      // per panel: gpr x 64 float32 scales, then gpr x 64 zero-point pairs (BuildTerms)
        public int GroupSize, GroupsPerRow, Out, In, Batch, Pairs, Tile, ChunkPairs;
        public int* X;            // activation tiles: tile t, pair kp, row c at X[(t * Pairs + kp) * Tile + c]
        public float* RowScale;
        public float* Y;
    }

    private struct Body : IRangeBody
    {
        public Args A;

        public readonly void Invoke(int start, int end)
        {
            if (A.Vnni && A.GroupsPerRow == 1) for (int p = start; p < end; p++) VnniRowPanel(A, p);
            else if (A.Vnni) for (int p = start; p < end; p++) VnniPanel(A, p);
            else for (int p = start; p < end; p++) Panel(A, p);
        }
    }

    [ThreadStatic] private static int[]? t_scratch;

    /// <summary>
    /// y[b, o] for 8-bit codes from int8 activation rows <paramref name="q"/> (row b at q + b * <paramref name="qStride"/>,
    /// natural order, zero beyond In up to a multiple of 4) with scales <paramref name="rowScale"/>. With
    /// <paramref name="vnni"/>, <paramref name="panels"/> and <paramref name="terms"/> are the VNNI layouts
    /// (<see cref="BuildQuadPanels"/>, <see cref="BuildTerms"/> with vnni) and <paramref name="groupSums"/> holds the
    /// int8 sums of each row's groups (row b at groupSums + b * <paramref name="groupStride"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(byte* panels, float* terms, int groupSize, int groupsPerRow, int outF, int inF,
        sbyte* q, int qStride, float* rowScale, float* y, int batch, bool vnni = false, float* groupSums = null, int groupStride = 0, int bits = 8)
    {
        if (vnni)
        {
            RunVnni(panels, terms, groupSize, groupsPerRow, outF, inF, q, qStride, rowScale, y, batch, groupSums, groupStride, bits == 4);
            return;
        }
        bool perRow = groupsPerRow == 1;
        int tile = perRow ? RowTile : GroupTile;
        int pairs = (inF + 1) / 2;
        int tiles = (batch + tile - 1) / tile;
        // Chunks of 128 inputs (a whole group when larger): the panel chunk (32 KiB at most) and a tile's activations
        // stay in L1 while the micro-kernel runs; a group never straddles two chunks.
        int chunkPairs = Math.Max(64, groupSize / 2);
        long xInts = (long)tiles * pairs * tile;
        int[] xBuffer = ArrayPool<int>.Shared.Rent(checked((int)xInts + 16));
        try
        {
            fixed (int* xb = xBuffer)
            {
                int* x = (int*)(((nint)xb + 63) & ~(nint)63);
                BuildTiles(q, qStride, batch, pairs, tile, x);

                var body = new Body
                {
                    A = new Args
                    {
                        Panels = panels, Terms = terms, GroupSize = perRow ? inF : groupSize, GroupsPerRow = groupsPerRow,
                        Out = outF, In = inF, Batch = batch, Pairs = pairs, Tile = tile, ChunkPairs = chunkPairs,
                        X = x, RowScale = rowScale, Y = y,
                    },
                };
                int count = (outF + PanelRows - 1) / PanelRows;
                int degree = (long)outF * inF * batch < (1 << 16) ? 1 : int.MaxValue;
                WorkerPool.Shared.For(count, ref body, degree);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(xBuffer);
        }
    }

    /// <summary>
    /// Activation pairs by tiles of <paramref name="tile"/> batch rows: x[(t * pairs + kp) * tile + c] holds inputs 2kp
    /// (low half) and 2kp + 1 of batch row t * tile + c; rows past the batch repeat its last row (results not stored).
    /// </summary>
    internal static void BuildTiles(sbyte* q, int qStride, int batch, int pairs, int tile, int* x)
    {
        int tiles = (batch + tile - 1) / tile;
        for (int t = 0; t < tiles; t++)
            for (int c = 0; c < tile; c++)
            {
                sbyte* src = q + (nint)Math.Min(t * tile + c, batch - 1) * qStride;
                int* dst = x + (nint)t * pairs * tile + c;
                for (int kp = 0; kp < pairs; kp++)
                    dst[(nint)kp * tile] = (src[2 * kp + 1] << 16) + (src[2 * kp] & 0xFFFF);
            }
    }

    /// <summary>Rows [64p, 64p + 64) for every batch row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panel(in Args a, int p)
    {
        int o0 = p * PanelRows, rows = Math.Min(PanelRows, a.Out - o0);
        int gpr = a.GroupsPerRow, tile = a.Tile, tiles = (a.Batch + tile - 1) / tile;
        bool perRow = gpr == 1;
        int chunkPairs = a.ChunkPairs;
        int panelInts = chunkPairs * PanelRows;
        int scaleFloats = gpr * PanelRows;
        int accInts = tiles * tile * PanelRows * (perRow ? 1 : 2);
        int need = panelInts + accInts + 64;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<int>(Math.Max(need, 16384), pinned: true);
        int* panel = (int*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* sp = a.Terms + (nint)p * 2 * scaleFloats;
        int* zp = (int*)(sp + scaleFloats);
        int* acc = panel + panelInts;
        new Span<int>(acc, accInts).Clear();

        for (int kp0 = 0; kp0 < a.Pairs; kp0 += chunkPairs)
        {
            int n = Math.Min(chunkPairs, a.Pairs - kp0);
            WidenPanel(a.Panels + (nint)p * a.Pairs * PanelRows * 2, kp0, n, perRow ? a.Pairs : a.GroupSize / 2, zp, panel);
            for (int t = 0; t < tiles; t++)
            {
                int* xt = a.X + ((nint)t * a.Pairs + kp0) * tile;
                if (perRow) RowKernel(panel, xt, n, acc + t * tile * PanelRows);
                else
                {
                    int groupPairs = a.GroupSize / 2;
                    float* fa = (float*)(acc + tiles * tile * PanelRows) + t * tile * PanelRows;
                    GroupKernel(panel, xt, n, groupPairs, sp + (kp0 / groupPairs) * PanelRows, fa);
                }
            }
        }

        // y[b, o0 + o] = sx_b * s_o * sum (per row), or sx_b * sum_g s_g sum_g (groups).
        for (int b = 0; b < a.Batch; b++)
        {
            var sx = Vector512.Create(a.RowScale[b]);
            float* yb = a.Y + (nint)b * a.Out + o0;
            for (int v = 0; v < PanelRows / 16; v++)
            {
                int left = rows - 16 * v;
                if (left <= 0) break;
                Vector512<float> r;
                if (perRow) r = sx * (Vector512.Load(sp + 16 * v) * Vector512.ConvertToSingle(Vector512.Load(acc + b * PanelRows + 16 * v)));
                else r = sx * Vector512.Load((float*)(acc + tiles * tile * PanelRows) + b * PanelRows + 16 * v);
                if (left >= 16) r.Store(yb + 16 * v);
                else for (int i = 0; i < left; i++) yb[16 * v + i] = r[i];
            }
        }
    }

    /// <summary>float16 bits to float32, exact for finite values (the same trick as the other int8 kernels' scale conversion).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HalfToFloat(ushort h)
    {
        float magnitude = BitConverter.Int32BitsToSingle((h & 0x7FFF) << 13) * 5.192297e33f; // 2^112
        return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(magnitude) | ((h & 0x8000) << 16));
    }

    /// <summary>
    /// panel[kp * 64 + o] = (u[o, 2kp] - z) | (u[o, 2kp + 1] - z) &lt;&lt; 16 for pairs [kp0, kp0 + n) of one repacked panel
    /// (<paramref name="codes"/>), z from <paramref name="zp"/> (group of pair kp: kp / <paramref name="groupPairs"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenPanel(byte* codes, int kp0, int n, int groupPairs, int* zp, int* panel)
    {
        byte* src = codes + (nint)kp0 * PanelRows * 2;
        for (int j = 0; j < n; j++, src += 2 * PanelRows, panel += PanelRows)
        {
            int* z = zp + (kp0 + j) / groupPairs * PanelRows;
            for (int v = 0; v < PanelRows / 16; v++)
            {
                var w = Avx512BW.ConvertToVector512Int16(Vector256.Load(src + 32 * v));
                (w - Vector512.Load(z + 16 * v).AsInt16()).AsInt32().Store(panel + 16 * v);
            }
        }
    }

    /// <summary>Floats of the scale and zero-point terms of an [<paramref name="outF"/>, gpr groups] weight (<see cref="BuildTerms"/>).</summary>
    public static long TermFloats(int outF, int groupsPerRow) => (long)(outF + PanelRows - 1) / PanelRows * 2 * groupsPerRow * PanelRows;

    /// <summary>
    /// Per panel of 64 rows: the float32 scales s[g * 64 + o], then the zero points as 16-bit pairs z | z &lt;&lt; 16 at
    /// [gpr * 64 + g * 64 + o] (128 when symmetric); rows past Out get scale 0. With <paramref name="vnni"/> the zero
    /// points are stored as int32 -z instead (the generated kernels start each group's sum at -z sum q).
    /// </summary>
    public static void BuildTerms(Half* scales, byte* zeros, int outF, int groupsPerRow, float* terms, bool vnni = false, int bits = 8)
    {
        int symmetricZero = 1 << (bits - 1);
        int gpr = groupsPerRow, count = (outF + PanelRows - 1) / PanelRows;
        for (int p = 0; p < count; p++)
        {
            float* sp = terms + (nint)p * 2 * gpr * PanelRows;
            int* zp = (int*)(sp + gpr * PanelRows);
            for (int o = 0; o < PanelRows; o++)
            {
                int r = p * PanelRows + o;
                for (int g = 0; g < gpr; g++)
                {
                    sp[g * PanelRows + o] = r < outF ? HalfToFloat(((ushort*)scales)[(nint)r * gpr + g]) : 0f;
                    int zero = zeros == null || r >= outF ? symmetricZero : zeros[(nint)r * gpr + g];
                    zp[g * PanelRows + o] = vnni ? -zero : zero | zero << 16;
                }
            }
        }
    }

    /// <summary>Bytes of the repacked copy of an [<paramref name="outF"/>, <paramref name="inF"/>] 8-bit weight.</summary>
    public static long PanelBytes(int outF, int inF) => (long)(outF + PanelRows - 1) / PanelRows * ((inF + 1) / 2) * PanelRows * 2;

    /// <summary>
    /// Repacks 8-bit rows (row o at packed + o * inF) into panels of 64 rows: panel p, pair kp, row o at byte
    /// 2 (p * pairs * 64 + kp * 64 + o) holds codes 2kp and 2kp + 1 of row 64p + o; rows past Out and the missing
    /// code of an odd row are zero (their activations or outputs are unused).
    /// </summary>
    public static void BuildPanels(byte* packed, int outF, int inF, byte* panels)
    {
        int pairs = (inF + 1) / 2, count = (outF + PanelRows - 1) / PanelRows;
        var body = new BuildBody { Packed = packed, Out = outF, In = inF, Pairs = pairs, Panels = panels };
        WorkerPool.Shared.For(count, ref body);
    }

    private struct BuildBody : IRangeBody
    {
        public byte* Packed, Panels;
        public int Out, In, Pairs;

        public readonly void Invoke(int start, int end)
        {
            for (int p = start; p < end; p++)
            {
                ushort* dst = (ushort*)(Panels + (nint)p * Pairs * PanelRows * 2);
                for (int o = 0; o < PanelRows; o++)
                {
                    int r = p * PanelRows + o;
                    byte* row = Packed + (nint)r * In;
                    for (int kp = 0; kp < Pairs; kp++)
                    {
                        int lo = r < Out ? row[2 * kp] : 0;
                        int hi = r < Out && 2 * kp + 1 < In ? row[2 * kp + 1] : 0;
                        dst[(nint)kp * PanelRows + o] = (ushort)(lo | hi << 8);
                    }
                }
            }
        }
    }

    /// <summary>One group per row: 6 batch rows x 64 weight rows of int32 sums over pairs [0, n) of the chunk.</summary>
    // Not inlined, no calls inside: the JIT keeps the 24 accumulators in registers (SysV has no callee-saved vectors).
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void RowKernel(int* w, int* x, int n, int* acc)
    {
        var a00 = Vector512.Load(acc); var a01 = Vector512.Load(acc + 16); var a02 = Vector512.Load(acc + 32); var a03 = Vector512.Load(acc + 48);
        var a10 = Vector512.Load(acc + 64); var a11 = Vector512.Load(acc + 80); var a12 = Vector512.Load(acc + 96); var a13 = Vector512.Load(acc + 112);
        var a20 = Vector512.Load(acc + 128); var a21 = Vector512.Load(acc + 144); var a22 = Vector512.Load(acc + 160); var a23 = Vector512.Load(acc + 176);
        var a30 = Vector512.Load(acc + 192); var a31 = Vector512.Load(acc + 208); var a32 = Vector512.Load(acc + 224); var a33 = Vector512.Load(acc + 240);
        var a40 = Vector512.Load(acc + 256); var a41 = Vector512.Load(acc + 272); var a42 = Vector512.Load(acc + 288); var a43 = Vector512.Load(acc + 304);
        var a50 = Vector512.Load(acc + 320); var a51 = Vector512.Load(acc + 336); var a52 = Vector512.Load(acc + 352); var a53 = Vector512.Load(acc + 368);
        for (int kp = 0; kp < n; kp++, w += PanelRows, x += RowTile)
        {
            var w0 = Vector512.Load(w).AsInt16();
            var w1 = Vector512.Load(w + 16).AsInt16();
            var w2 = Vector512.Load(w + 32).AsInt16();
            var w3 = Vector512.Load(w + 48).AsInt16();
            var b = Vector512.Create(x[0]).AsInt16();
            a00 += Avx512BW.MultiplyAddAdjacent(w0, b); a01 += Avx512BW.MultiplyAddAdjacent(w1, b);
            a02 += Avx512BW.MultiplyAddAdjacent(w2, b); a03 += Avx512BW.MultiplyAddAdjacent(w3, b);
            b = Vector512.Create(x[1]).AsInt16();
            a10 += Avx512BW.MultiplyAddAdjacent(w0, b); a11 += Avx512BW.MultiplyAddAdjacent(w1, b);
            a12 += Avx512BW.MultiplyAddAdjacent(w2, b); a13 += Avx512BW.MultiplyAddAdjacent(w3, b);
            b = Vector512.Create(x[2]).AsInt16();
            a20 += Avx512BW.MultiplyAddAdjacent(w0, b); a21 += Avx512BW.MultiplyAddAdjacent(w1, b);
            a22 += Avx512BW.MultiplyAddAdjacent(w2, b); a23 += Avx512BW.MultiplyAddAdjacent(w3, b);
            b = Vector512.Create(x[3]).AsInt16();
            a30 += Avx512BW.MultiplyAddAdjacent(w0, b); a31 += Avx512BW.MultiplyAddAdjacent(w1, b);
            a32 += Avx512BW.MultiplyAddAdjacent(w2, b); a33 += Avx512BW.MultiplyAddAdjacent(w3, b);
            b = Vector512.Create(x[4]).AsInt16();
            a40 += Avx512BW.MultiplyAddAdjacent(w0, b); a41 += Avx512BW.MultiplyAddAdjacent(w1, b);
            a42 += Avx512BW.MultiplyAddAdjacent(w2, b); a43 += Avx512BW.MultiplyAddAdjacent(w3, b);
            b = Vector512.Create(x[5]).AsInt16();
            a50 += Avx512BW.MultiplyAddAdjacent(w0, b); a51 += Avx512BW.MultiplyAddAdjacent(w1, b);
            a52 += Avx512BW.MultiplyAddAdjacent(w2, b); a53 += Avx512BW.MultiplyAddAdjacent(w3, b);
        }
        a00.Store(acc); a01.Store(acc + 16); a02.Store(acc + 32); a03.Store(acc + 48);
        a10.Store(acc + 64); a11.Store(acc + 80); a12.Store(acc + 96); a13.Store(acc + 112);
        a20.Store(acc + 128); a21.Store(acc + 144); a22.Store(acc + 160); a23.Store(acc + 176);
        a30.Store(acc + 192); a31.Store(acc + 208); a32.Store(acc + 224); a33.Store(acc + 240);
        a40.Store(acc + 256); a41.Store(acc + 272); a42.Store(acc + 288); a43.Store(acc + 304);
        a50.Store(acc + 320); a51.Store(acc + 336); a52.Store(acc + 352); a53.Store(acc + 368);
    }

    /// <summary>
    /// Groups of <paramref name="groupPairs"/> pairs: 3 batch rows x 64 weight rows, int32 sums per group, then
    /// acc = fma(float(sum), s_g, acc) with s_g the group's scales at <paramref name="s"/> (64 per group).
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void GroupKernel(int* w, int* x, int n, int groupPairs, float* s, float* acc)
    {
        var f00 = Vector512.Load(acc); var f01 = Vector512.Load(acc + 16); var f02 = Vector512.Load(acc + 32); var f03 = Vector512.Load(acc + 48);
        var f10 = Vector512.Load(acc + 64); var f11 = Vector512.Load(acc + 80); var f12 = Vector512.Load(acc + 96); var f13 = Vector512.Load(acc + 112);
        var f20 = Vector512.Load(acc + 128); var f21 = Vector512.Load(acc + 144); var f22 = Vector512.Load(acc + 160); var f23 = Vector512.Load(acc + 176);
        for (int g0 = 0; g0 < n; g0 += groupPairs, s += PanelRows)
        {
            Vector512<int> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<int> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<int> a20 = default, a21 = default, a22 = default, a23 = default;
            for (int kp = 0; kp < groupPairs; kp++, w += PanelRows, x += GroupTile)
            {
                var w0 = Vector512.Load(w).AsInt16();
                var w1 = Vector512.Load(w + 16).AsInt16();
                var w2 = Vector512.Load(w + 32).AsInt16();
                var w3 = Vector512.Load(w + 48).AsInt16();
                var b = Vector512.Create(x[0]).AsInt16();
                a00 += Avx512BW.MultiplyAddAdjacent(w0, b); a01 += Avx512BW.MultiplyAddAdjacent(w1, b);
                a02 += Avx512BW.MultiplyAddAdjacent(w2, b); a03 += Avx512BW.MultiplyAddAdjacent(w3, b);
                b = Vector512.Create(x[1]).AsInt16();
                a10 += Avx512BW.MultiplyAddAdjacent(w0, b); a11 += Avx512BW.MultiplyAddAdjacent(w1, b);
                a12 += Avx512BW.MultiplyAddAdjacent(w2, b); a13 += Avx512BW.MultiplyAddAdjacent(w3, b);
                b = Vector512.Create(x[2]).AsInt16();
                a20 += Avx512BW.MultiplyAddAdjacent(w0, b); a21 += Avx512BW.MultiplyAddAdjacent(w1, b);
                a22 += Avx512BW.MultiplyAddAdjacent(w2, b); a23 += Avx512BW.MultiplyAddAdjacent(w3, b);
            }
            var s0 = Vector512.Load(s); var s1 = Vector512.Load(s + 16); var s2 = Vector512.Load(s + 32); var s3 = Vector512.Load(s + 48);
            f00 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a00), s0, f00); f01 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a01), s1, f01);
            f02 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a02), s2, f02); f03 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a03), s3, f03);
            f10 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a10), s0, f10); f11 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a11), s1, f11);
            f12 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a12), s2, f12); f13 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a13), s3, f13);
            f20 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a20), s0, f20); f21 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a21), s1, f21);
            f22 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a22), s2, f22); f23 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(a23), s3, f23);
        }
        f00.Store(acc); f01.Store(acc + 16); f02.Store(acc + 32); f03.Store(acc + 48);
        f10.Store(acc + 64); f11.Store(acc + 80); f12.Store(acc + 96); f13.Store(acc + 112);
        f20.Store(acc + 128); f21.Store(acc + 144); f22.Store(acc + 160); f23.Store(acc + 176);
    }

    // ---- VNNI: generated vpdpbusd kernels over quad panels ----

    /// <summary>Bytes of the quad-panel copy of an [<paramref name="outF"/>, <paramref name="inF"/>] 8-bit (or 4-bit) weight.</summary>
    public static long QuadPanelBytes(int outF, int inF, int bits = 8) =>
        (long)(outF + PanelRows - 1) / PanelRows * ((inF + 3) / 4) * QuadPanelRowBytes(bits == 4);

    /// <summary>Bytes of one quad of a 64-row panel: 256, or 128 with two 4-bit codes per byte.</summary>
    private static int QuadPanelRowBytes(bool nibbles) => nibbles ? PanelRows * 2 : PanelRows * 4;

    /// <summary>
    /// Repacks 8-bit rows (row o at packed + o * inF) into panels of 64 rows of one byte per code for the VNNI kernels:
    /// panel p, quad kq, row o, code j at byte 4 (p * quads * 64 + kq * 64 + o) + j holds code 4kq + j of row 64p + o,
    /// so one 64-byte load gives 16 rows' quads in 16 int32 lanes; rows past Out and codes past In are zero.
    /// 4-bit rows (<paramref name="bits"/> 4: row o at packed + o * ceil(inF / 2), low nibble first) keep two codes per
    /// byte: quad kq of panel p takes 128 bytes at (p * quads + kq) * 128, whose byte 64h + 4o + j holds code 4kq + j of
    /// row 64p + 32h + o (o &lt; 16) in its low nibble and of row 64p + 32h + 16 + o in its high nibble; the kernels
    /// split each 64-byte load into two vectors with a shift and a mask (half the bytes read from memory).
    /// </summary>
    public static void BuildQuadPanels(byte* packed, int outF, int inF, byte* panels, int bits = 8)
    {
        int quads = (inF + 3) / 4, count = (outF + PanelRows - 1) / PanelRows;
        var body = new QuadBuildBody { Packed = packed, Out = outF, In = inF, Quads = quads, Panels = panels, Bits = bits };
        WorkerPool.Shared.For(count, ref body);
    }

    private struct QuadBuildBody : IRangeBody
    {
        public byte* Packed, Panels;
        public int Out, In, Quads, Bits;

        public readonly void Invoke(int start, int end)
        {
            int rowBytes = Bits == 4 ? (In + 1) / 2 : In;
            for (int p = start; p < end; p++)
            {
                if (Bits == 4)
                {
                    byte* nib = Panels + (nint)p * Quads * PanelRows * 2;
                    for (int h = 0; h < 2; h++)
                        for (int o = 0; o < 16; o++)
                        {
                            int lo = p * PanelRows + 32 * h + o, hi = lo + 16;
                            for (int kq = 0; kq < Quads; kq++)
                                for (int j = 0; j < 4; j++)
                                {
                                    int k = 4 * kq + j;
                                    int a = lo >= Out || k >= In ? 0 : Packed[(nint)lo * rowBytes + (k >> 1)] >> 4 * (k & 1) & 0xF;
                                    int b = hi >= Out || k >= In ? 0 : Packed[(nint)hi * rowBytes + (k >> 1)] >> 4 * (k & 1) & 0xF;
                                    nib[(nint)kq * PanelRows * 2 + 64 * h + 4 * o + j] = (byte)(a | b << 4);
                                }
                        }
                    continue;
                }
                byte* dst = Panels + (nint)p * Quads * PanelRows * 4;
                for (int o = 0; o < PanelRows; o++)
                {
                    int r = p * PanelRows + o;
                    byte* row = Packed + (nint)r * rowBytes;
                    for (int kq = 0; kq < Quads; kq++)
                        for (int j = 0; j < 4; j++)
                        {
                            int k = 4 * kq + j;
                            int code = r >= Out || k >= In ? 0 : row[k];
                            dst[((nint)kq * PanelRows + o) * 4 + j] = (byte)code;
                        }
                }
            }
        }
    }

    /// <summary>
    /// Activation quads by tiles of <paramref name="tile"/> batch rows: x[(t * quads + kq) * tile + c] holds inputs
    /// 4kq..4kq+3 of batch row t * tile + c (its int8 bytes as one int32); rows past the batch repeat its last row.
    /// </summary>
    internal static void BuildQuadTiles(sbyte* q, int qStride, int batch, int quads, int tile, int* x)
    {
        int tiles = (batch + tile - 1) / tile;
        for (int t = 0; t < tiles; t++)
            for (int c = 0; c < tile; c++)
            {
                int* src = (int*)(q + (nint)Math.Min(t * tile + c, batch - 1) * qStride);
                int* dst = x + (nint)t * quads * tile + c;
                for (int kq = 0; kq < quads; kq++) dst[(nint)kq * tile] = Unsafe.ReadUnaligned<int>(src + kq);
            }
    }

    /// <summary>
    /// One group per row on the generated kernels: the quantized rows are read in place (no tile copy), and each thread
    /// takes whole 64-row panels, every batch tile of a panel in turn (<see cref="VnniRowPanel"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunVnniRows(byte* panels, float* terms, int outF, int inF, sbyte* q, int qStride, float* rowScale,
        float* y, int batch, float* groupSums, int groupStride, bool nibbles)
    {
        var body = new Body
        {
            A = new Args
            {
                Vnni = true, Nibbles = nibbles, GroupSums = groupSums, GroupStride = groupStride, Panels = panels, Terms = terms,
                GroupSize = (inF + 3) / 4, GroupsPerRow = 1, Out = outF, In = inF, Batch = batch, Pairs = (inF + 3) / 4,
                Tile = VnniGemmKernel.RowTile, X = (int*)q, ChunkPairs = qStride, RowScale = rowScale, Y = y,
            },
        };
        int count = (outF + PanelRows - 1) / PanelRows;
        int degree = (long)outF * inF * batch < (1 << 16) ? 1 : int.MaxValue;
        WorkerPool.Shared.For(count, ref body, degree);
    }

    /// <summary>
    /// Rows [64p, 64p + 64) for every batch row, one group per row: per tile of up to 6 batch rows one generated call
    /// over the whole panel, then y[b, o] = sx_b * (s_o * float(sum u q - z_o sum q)): the managed kernel's expression
    /// on the same integers. In <paramref name="a"/>: Pairs = quads, X = the quantized rows, ChunkPairs = their stride.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void VnniRowPanel(in Args a, int p)
    {
        int o0 = p * PanelRows, rows = Math.Min(PanelRows, a.Out - o0);
        int* accBuffer = stackalloc int[VnniGemmKernel.RowTile * PanelRows + 16];
        int* acc = (int*)(((nint)accBuffer + 63) & ~(nint)63);
        float* sp = a.Terms + (nint)p * 2 * PanelRows;
        int* zn = (int*)(sp + PanelRows);
        VnniRowArgs args = default;
        args.W = a.Panels + (nint)p * a.Pairs * QuadPanelRowBytes(a.Nibbles);
        args.XStride = a.ChunkPairs;
        args.Acc = acc;
        args.Quads = a.Pairs;
        args.NibbleMask = VnniGemmKernel.NibbleMask;
        for (int b0 = 0; b0 < a.Batch; b0 += VnniGemmKernel.RowTile)
        {
            int tile = Math.Min(VnniGemmKernel.RowTile, a.Batch - b0);
            args.X = (sbyte*)a.X + (nint)b0 * a.ChunkPairs;
            VnniGemmKernel.RowPanel(&args, tile, a.Nibbles);
            for (int c = 0; c < tile; c++)
            {
                int b = b0 + c;
                var sx = Vector512.Create(a.RowScale[b]);
                var sumq = Vector512.Create((int)a.GroupSums[(nint)b * a.GroupStride]);
                float* yb = a.Y + (nint)b * a.Out + o0;
                for (int v = 0; v < PanelRows / 16; v++)
                {
                    int left = rows - 16 * v;
                    if (left <= 0) break;
                    var exact = Vector512.Load(acc + c * PanelRows + 16 * v) + Vector512.Load(zn + 16 * v) * sumq;
                    var r = sx * (Vector512.Load(sp + 16 * v) * Vector512.ConvertToSingle(exact));
                    if (left >= 16) r.Store(yb + 16 * v);
                    else for (int i = 0; i < left; i++) yb[16 * v + i] = r[i];
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunVnni(byte* panels, float* terms, int groupSize, int groupsPerRow, int outF, int inF,
        sbyte* q, int qStride, float* rowScale, float* y, int batch, float* groupSums, int groupStride, bool nibbles)
    {
        if (groupsPerRow == 1)
        {
            RunVnniRows(panels, terms, outF, inF, q, qStride, rowScale, y, batch, groupSums, groupStride, nibbles);
            return;
        }
        int tile = VnniGemmKernel.GroupTile;
        int quads = (inF + 3) / 4;
        int tiles = (batch + tile - 1) / tile;
        // Chunks of at least 32 quads (128 inputs) and whole groups: the panel chunk (8 KiB or one group) stays in L1
        // while every tile runs over it.
        int groupQuads = groupSize / 4;
        int chunkQuads = groupQuads * Math.Max(1, VnniChunkQuads / groupQuads);
        // Few tiles (a sentence's 7-21 tokens: 2-4 tiles): the panel's whole input length in one chunk when it fits
        // in L2 many times over, so each tile makes one kernel call per panel instead of one per 128 inputs (MiniLM
        // one sentence at a time: 4% less processor time, alternating passes). Many tiles keep the L1-sized chunk.
        if (tiles <= VnniWholeRowMaxTiles && (long)quads * QuadPanelRowBytes(nibbles) <= VnniWholeRowMaxBytes) chunkQuads = Math.Max(chunkQuads, quads);
        long xInts = (long)tiles * quads * tile;
        long sumInts = (long)tiles * groupsPerRow * tile;
        int[] xBuffer = ArrayPool<int>.Shared.Rent(checked((int)(xInts + sumInts) + 16));
        try
        {
            fixed (int* xb = xBuffer)
            {
                int* x = (int*)(((nint)xb + 63) & ~(nint)63);
                int* sums = x + xInts;
                BuildQuadTiles(q, qStride, batch, quads, tile, x);
                // sums[(t * gpr + g) * tile + c]: the group sums of batch row t * tile + c (last row repeated).
                for (int t = 0; t < tiles; t++)
                    for (int g = 0; g < groupsPerRow; g++)
                        for (int c = 0; c < tile; c++)
                            sums[((nint)t * groupsPerRow + g) * tile + c] = (int)groupSums[(nint)Math.Min(t * tile + c, batch - 1) * groupStride + g];

                var body = new Body
                {
                    A = new Args
                    {
                        Vnni = true, Nibbles = nibbles, GroupSums = (float*)sums, GroupStride = groupStride,
                        Panels = panels, Terms = terms, GroupSize = groupQuads, GroupsPerRow = groupsPerRow,
                        Out = outF, In = inF, Batch = batch, Pairs = quads, Tile = tile, ChunkPairs = chunkQuads,
                        X = x, RowScale = rowScale, Y = y,
                    },
                };
                int count = (outF + PanelRows - 1) / PanelRows;
                int degree = (long)outF * inF * batch < (1 << 16) ? 1 : int.MaxValue;
                WorkerPool.Shared.For(count, ref body, degree);
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(xBuffer);
        }
    }

    /// <summary>
    /// Rows [64p, 64p + 64) for every batch row on the generated group kernel. In <paramref name="a"/>: Pairs = quads,
    /// ChunkPairs = quads per chunk, GroupSize = quads per group, GroupSums = the tiled int32 group sums.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void VnniPanel(in Args a, int p)
    {
        int o0 = p * PanelRows, rows = Math.Min(PanelRows, a.Out - o0);
        int gpr = a.GroupsPerRow, tile = a.Tile, tiles = (a.Batch + tile - 1) / tile;
        int quads = a.Pairs, chunkQuads = a.ChunkPairs, groupQuads = a.GroupSize;
        int scaleFloats = gpr * PanelRows;
        int accInts = tiles * tile * PanelRows;
        int need = accInts + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need)
            t_scratch = scratch = GC.AllocateArray<int>(Math.Max(need, 16384), pinned: true);
        int* acc = (int*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* sp = a.Terms + (nint)p * 2 * scaleFloats;
        int* zn = (int*)(sp + scaleFloats);
        int* sums = (int*)a.GroupSums;
        int quadBytes = QuadPanelRowBytes(a.Nibbles);
        byte* panel = a.Panels + (nint)p * quads * quadBytes;
        new Span<int>(acc, accInts).Clear(); // int32 zeros and float32 zeros are the same bits

        VnniArgs args = default;
        for (int kq0 = 0; kq0 < quads; kq0 += chunkQuads)
        {
            int n = Math.Min(chunkQuads, quads - kq0);
            args.W = panel + (nint)kq0 * quadBytes;
            args.NibbleMask = VnniGemmKernel.NibbleMask;
            for (int t = 0; t < tiles; t++)
            {
                args.X = a.X + ((nint)t * quads + kq0) * tile;
                args.Acc = acc + t * tile * PanelRows;
                int g0 = kq0 / groupQuads;
                args.Scales = sp + g0 * PanelRows;
                args.ZeroNeg = zn + g0 * PanelRows;
                args.SumQ = sums + ((nint)t * gpr + g0) * tile;
                args.Count = n / groupQuads;
                args.GroupQuads = groupQuads;
                VnniGemmKernel.Group(&args, Math.Min(tile, a.Batch - t * tile), a.Nibbles);
            }
        }

        // y[b, o0 + o] = sx_b * sum_g s_g sum_g: the managed kernel's expression on the same integers.
        for (int b = 0; b < a.Batch; b++)
        {
            var sx = Vector512.Create(a.RowScale[b]);
            float* yb = a.Y + (nint)b * a.Out + o0;
            for (int v = 0; v < PanelRows / 16; v++)
            {
                int left = rows - 16 * v;
                if (left <= 0) break;
                var r = sx * Vector512.Load((float*)acc + b * PanelRows + 16 * v);
                if (left >= 16) r.Store(yb + 16 * v);
                else for (int i = 0; i < left; i++) yb[16 * v + i] = r[i];
            }
        }
    }
}
