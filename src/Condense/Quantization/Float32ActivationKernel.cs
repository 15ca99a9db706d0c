using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;

namespace Condense.Quantization;

/// <summary>
/// y = x W'^T for a group-quantized W with float32 activations (<see cref="ActivationPrecision.Float32"/>): the
/// packed codes are decoded in registers into the exact dequantized weights s * (q - z), which are multiplied into
/// the float32 inputs with fused multiply-adds, four weight rows at a time.
/// </summary>
/// <remarks>
/// <para>Exactness: (q - z) has at most 9 bits and s is a float16, so s * (q - z) is exact in float32; the kernel
/// forms it either from a 16-entry table (2, 3 and 4 bits: entry j = j s + (-z s); j s is exact, at most 4 bits
/// times s's 11-bit significand, and the sum rounds to the exact result, which is representable) picked by vpermps, or as fma(q, s, -z s) (8 bits, and 4 bits with AVX2). Each product
/// w x is therefore the dequantize-then-matmul product; only the float32 summation order differs (lanes of one
/// vector, then a horizontal sum), so results stay within float rounding of the reference.</para>
/// <para>Decoding one vector of codes: the chunk's bytes are broadcast to every lane, each lane shifts its own code
/// down (vpsrlvd; 3 bits first gather the two bytes a code spans with vpshufb), and the table lookup ignores the
/// bits above the code (the table repeats for 2 and 3 bits). With AVX-512, 4-bit lanes take codes in the order
/// 0, 8, 1, 9, ... (even lanes read the low 32 bits of the chunk, odd lanes the high 32), so the inputs are copied
/// once per call into that order.</para>
/// <para>Batches of <see cref="GemmMinBatch"/> and more dequantize a panel of up to 64 rows into a float32 buffer and
/// run the dense GEMM micro-kernel on it, whose results equal the fma-chain reference on those weights bit for
/// bit.</para>
/// <para>Batch 1 with 4- or 8-bit codes and AVX-512 takes the bit-plane kernel instead (Float32ActivationKernel.Planes.cs):
/// a different summation order, with the zero point folded into group sums of x.</para>
/// <para>Threads split whole row tiles, and every output is computed in one fixed order, so results do not depend
/// on the thread count.</para>
/// </remarks>
internal static unsafe partial class Float32ActivationKernel
{
    /// <summary>Weight rows decoded together: each input vector loaded once feeds four rows.</summary>
    private const int TileRows = 4;

    /// <summary>Batch rows per pass of the 256-bit register kernel (4 rows x 3 inputs = 12 accumulators, AVX2's 16 registers).</summary>
    private const int TileBatch = 3;

    /// <summary>
    /// Batch rows per pass of the 512-bit kernel: 4 rows x 4 inputs = 16 accumulators of AVX-512's 32 registers. Each
    /// pass decodes the 4 rows again, so at batch 16 four passes decode a tile 4 times instead of 6 (5 x 3 + 1).
    /// </summary>
    private const int TileBatch512 = 4;

    /// <summary>Floats per weight row in a tile's result block (the widest pass).</summary>
    private const int ResultStride = TileBatch512;

    /// <summary>Batches at least this large take the dequantized-panel GEMM.</summary>
    /// <remarks>
    /// Measured on S1 (4096x4096, int4-g64 and int8-g32, 2 threads, loaded machine): the register kernel (one decode
    /// per 3 inputs) beat the panel GEMM at batch 4, 8 and 16 (the GEMM pads the batch to a 16-lane vector) and
    /// matched it at 32 and 128. Session 18 (peers, 1 thread CPU time, 384x384, 1536x384, 384x1536, 3072x768): from 24
    /// rows PackedSgemm's tiles (the last batch group padded to 32) win: int4 g64 batch 24 / 28 cold 0.77-0.87 /
    /// 0.73-0.82 -> 0.98-1.02 / 1.06-1.14x ORT, hot 0.64-0.71 / 0.62-0.69 -> 0.82-0.84 / 0.90-0.93x; g128 about even;
    /// at 17-20 the register kernel is still ahead (b17 0.88-1.05 against 0.81-0.85).
    /// </remarks>
    internal static int GemmMinBatch { get; set; } = 24;

    /// <summary>Target float32 weights of one dequantized panel (rounded to whole 8-row tiles, at most <see cref="DenseMatMul.PackedRowsMax"/> rows).</summary>
    /// <remarks>
    /// The dense GEMM streams every k block of the packed x once per panel, so x's traffic falls with the panel's rows:
    /// 64-row panels (1 MiB at In = 4096) beat the earlier 16-row, L2-sized ones by 1.35x (4-bit) and 1.42x (8-bit) at
    /// batch 128 on 1024x4096 g64 (2 threads, loaded machine, best of 15 alternating rounds); 32 rows gained nothing.
    /// </remarks>
    internal static int PanelFloats { get; set; } = 1 << 20;

    /// <summary>
    /// Batches of <see cref="GemmMinBatch"/> and more with AVX-512: decode each 64-row x 512-feature block straight into
    /// <see cref="PackedSgemm"/>'s micro-panels and run its 8 x 48 tiles (true), or dequantize 64-row panels and run
    /// <see cref="DenseMatMul.PackedRows"/> (false; the AVX2 path and the session-8 kernel). Same bits either way.
    /// </summary>
    internal static bool PanelsOnPackedSgemm { get; set; } = true;

    private const long SerialWork = 1 << 15; // multiply-adds below which a thread hand-off costs more than it saves

    [ThreadStatic] private static float[]? t_scales;
    [ThreadStatic] private static byte[]? t_stage;

    /// <summary>The vector width the kernel runs at under <see cref="KernelOptions.VectorBits"/>: 512, 256, or 0 (not supported: the caller's scalar path).</summary>
    public static int Width
    {
        get
        {
            int bits = KernelOptions.VectorBits;
            if (bits >= 512 && Avx512F.IsSupported && Avx512BW.IsSupported) return 512;
            if (bits >= 256 && Avx2.IsSupported && Fma.IsSupported) return 256;
            return 0;
        }
    }

    /// <summary>Runs y = x W'^T; false (y untouched) when no vector path applies.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Run(in PackedWeightView w, float* x, float* y, int batch)
    {
        int width = Width;
        if (width == 0) return false;
        int degreeAll = (long)w.Out * w.In * batch < SerialWork ? 1 : int.MaxValue;
        if (BitPlanesApply(w, batch, width) && RunBitPlanes(w, x, y, degreeAll)) return true;
        if (batch >= GemmMinBatch && PanelsOnPackedSgemm && PackedSgemm.Applies(batch, width, GemmMinBatch))
        {
            RunPackedSgemm(w, x, y, batch, degreeAll);
            return true;
        }
        if (batch >= GemmMinBatch && Avx2.IsSupported)
        {
            float* xp = DenseMatMul.PackInputs(x, batch, w.In, width, degreeAll, out int padded);
            // Panel rows: a multiple of the 8-row micro-tile, about PanelFloats float32 weights (64 rows up to In = 16384).
            int panelRows = Math.Clamp(PanelFloats / Math.Max(1, w.In) / 8 * 8, 8, DenseMatMul.PackedRowsMax);
            var panelBody = new PanelBody
            {
                Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes,
                Out = w.Out, In = w.In, Xp = xp, Padded = padded, Batch = batch, Y = y, Width = width, PanelRows = panelRows,
                ChunksPerGroup = w.GroupsPerRow == 1 ? (w.In + 7) / 8 : w.GroupSize / 8,
            };
            WorkerPool.Shared.For((w.Out + panelRows - 1) / panelRows, ref panelBody, degreeAll);
            return true;
        }

        int lanes = width / 32;
        int chunks = (w.In + lanes - 1) / lanes;
        int kp = chunks * lanes;
        bool interleave4 = width == 512 && w.Bits == 4;
        float[] xBuffer = ArrayPool<float>.Shared.Rent(batch * kp + 16);
        try
        {
            fixed (float* xbRaw = xBuffer)
            {
                float* xb = (float*)(((nint)xbRaw + 63) & ~(nint)63);
                if (xb + (nint)batch * kp > xbRaw + xBuffer.Length) xb = xbRaw; // alignment is a nicety, not a requirement
                for (int b = 0; b < batch; b++) CopyInputs(x + (nint)b * w.In, w.In, xb + (nint)b * kp, kp, interleave4);
                int degree = degreeAll;
                var body = new Body
                {
                    Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes,
                    Out = w.Out, In = w.In, X = xb, Kp = kp, Batch = batch, Y = y, Width = width,
                    ChunksPerGroup = w.GroupsPerRow == 1 ? chunks : w.GroupSize / lanes,
                };
                WorkerPool.Shared.For((w.Out + TileRows - 1) / TileRows, ref body, degree);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(xBuffer);
        }
        return true;
    }

    /// <summary>One input row into the kernel's order, zero-filled to whole vectors (zeros times finite weights add nothing).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyInputs(float* x, int n, float* destination, int padded, bool interleave4)
    {
        if (!interleave4)
        {
            Buffer.MemoryCopy(x, destination, (long)padded * sizeof(float), (long)n * sizeof(float));
            new Span<float>(destination + n, padded - n).Clear();
            return;
        }
        // Lane 2m holds code m of the 16-code chunk, lane 2m + 1 code 8 + m.
        for (int c = 0; c < padded; c += 16)
        {
            float* d = destination + c;
            for (int m = 0; m < 8; m++)
            {
                int i0 = c + m, i1 = c + 8 + m;
                d[2 * m] = i0 < n ? x[i0] : 0f;
                d[2 * m + 1] = i1 < n ? x[i1] : 0f;
            }
        }
    }

    private struct Body : IRangeBody
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int Bits, GroupsPerRow, RowBytes, Out, In, Kp, Batch, Width, ChunksPerGroup;
        public float* X, Y;

        public readonly void Invoke(int start, int end)
        {
            switch (Width, Bits)
            {
                case (512, 2): Rows<Dec512x2>(this, start, end); break;
                case (512, 3): Rows<Dec512x3>(this, start, end); break;
                case (512, 4): Rows<Dec512x4>(this, start, end); break;
                case (512, _): Rows<Dec512x8>(this, start, end); break;
                case (_, 2): Rows<Dec256x2>(this, start, end); break;
                case (_, 3): Rows<Dec256x3>(this, start, end); break;
                case (_, 4): Rows<Dec256x4>(this, start, end); break;
                default: Rows<Dec256x8>(this, start, end); break;
            }
        }
    }

    private struct PanelBody : IRangeBody
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int Bits, GroupsPerRow, RowBytes, Out, In, Padded, Batch, Width, PanelRows, ChunksPerGroup;
        public float* Xp, Y;

        public readonly void Invoke(int start, int end)
        {
            switch (Bits)
            {
                case 2: Panels<Dec256x2>(this, start, end); break;
                case 3: Panels<Dec256x3>(this, start, end); break;
                case 4: Panels<Dec256x4>(this, start, end); break;
                default: Panels<Dec256x8>(this, start, end); break;
            }
        }
    }

    [ThreadStatic] private static float[]? t_panel;

    private static void RunPackedSgemm(in PackedWeightView w, float* x, float* y, int batch, int degree)
    {
        switch (w.Bits)
        {
            case 2: RunPackedSgemm<Dec256x2>(w, x, y, batch, degree); break;
            case 3: RunPackedSgemm<Dec256x3>(w, x, y, batch, degree); break;
            case 4: RunPackedSgemm<Dec256x4>(w, x, y, batch, degree); break;
            default: RunPackedSgemm<Dec256x8>(w, x, y, batch, degree); break;
        }
    }

    private static void RunPackedSgemm<TDec>(in PackedWeightView w, float* x, float* y, int batch, int degree) where TDec : struct, IDecoder256
    {
        var source = new DecodedBlocks<TDec>
        {
            Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes,
            Out = w.Out, In = w.In, ChunksPerGroup = w.GroupsPerRow == 1 ? (w.In + 7) / 8 : w.GroupSize / 8,
        };
        PackedSgemm.Run(x, ref source, y, batch, w.Out, w.In, degree);
    }

    [ThreadStatic] private static float[]? t_block;

    /// <summary>
    /// <see cref="PackedSgemm"/>'s W blocks from the codes: 8 rows at a time, each row's block segment decoded (exactly,
    /// the panel path's decoder and per-group tables) into a small row-major scratch that stays in L1, then transposed
    /// into the 8-row micro-panel by <see cref="PackedSgemm.PackW"/>.
    /// </summary>
    private struct DecodedBlocks<TDec> : PackedSgemm.IWeightBlocks where TDec : struct, IDecoder256
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int Bits, GroupsPerRow, RowBytes, Out, In, ChunksPerGroup;

        /// <summary>Row stride of the scratch: a block row, room for a last chunk stored whole, and not a multiple of 4 KiB.</summary>
        private const int Ld = PackedSgemm.BlockFeatures + 16;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Pack(int r0, int rows, int p0, int kp, float* wp)
        {
            int gpr = GroupsPerRow, cpg = ChunksPerGroup;
            var buffer = t_block;
            int need = 8 * Ld + 34 * gpr + 64 + RowBytes + 256;
            if (buffer is null || buffer.Length < need) t_block = buffer = GC.AllocateArray<float>(need, pinned: true);
            float* scratch = (float*)(((nint)Unsafe.AsPointer(ref buffer[0]) + 63) & ~(nint)63);
            float* sf = scratch + 8 * Ld, nz = sf + 8 * gpr, tmp = nz + 8 * gpr;
            float* sT = tmp + 64, nT = sT + 8 * gpr; // [group][row] copies of sf, nz (ScaleLoads)
            byte* staged = (byte*)(nT + 8 * gpr);
            int chunks = (In + 7) / 8;
            long extent = (long)(chunks - 1) * TDec.ChunkBytes + TDec.ReadBytes;
            long total = (long)Out * RowBytes;
            int symmetricZero = 1 << (Bits - 1);
            nint cb = TDec.ChunkBytes;
            int c0 = p0 / 8, c1 = Math.Min(chunks, (p0 + kp + 7) / 8);
            // Groups the block touches (p0 is a multiple of 512, so of every group size up to 512 and of 8).
            int g0 = gpr == 1 ? 0 : c0 / cpg, g1 = gpr == 1 ? 1 : Math.Min(gpr, (c1 + cpg - 1) / cpg), gc = g1 - g0;
            for (int t = 0; t < rows; t += 8)
            {
                int tileRows = Math.Min(8, rows - t);
                float* panel = wp + (nint)t * PackedSgemm.BlockFeatures;
                for (int k = 0; k < tileRows; k++)
                {
                    int r = r0 + t + k;
                    RowScales(Scales + (nint)r * gpr + g0, Zeros == null ? null : Zeros + (nint)r * gpr + g0, symmetricZero, sf + k * gc, nz + k * gc, gc);
                }
                int cs = c0;
                if (Bits == 4 && tileRows == 8 && (RowBytes & 3) == 0)
                {
                    // 4-bit whole tiles straight into the micro-panels' order (session 10: 26.9 ms against 29.4 for
                    // the row-major decode below, S1 b128), in the lean loop (session 13).
                    int cEnd = Math.Min(c1, (p0 + kp) / 8);
                    TransposeScales(sf, nz, sT, nT, gc);
                    bool rowWise = gpr == 1;
                    cs = PackFourLean(Packed + (nint)(r0 + t) * RowBytes, RowBytes / 4, (long)(r0 + t + 7) * RowBytes, total, c0, cEnd, p0,
                        rowWise ? 0 : c0 / cpg - g0, rowWise ? int.MaxValue : cpg - c0 % cpg, cpg, sT, nT, tmp, panel);
                }
                if (cs >= c1) continue;
                // The rest (all of it for other widths and short tiles): each row decoded row-major into the L1
                // scratch (chunk cs at offset 0), then transposed into the micro-panel from feature cs * 8 on.
                for (int k = 0; k < tileRows; k++)
                {
                    int r = r0 + t + k;
                    byte* row = Packed + (nint)r * RowBytes;
                    if ((long)r * RowBytes + extent > total)
                    {
                        System.Buffer.MemoryCopy(row, staged, RowBytes, RowBytes);
                        new Span<byte>(staged + RowBytes, 64).Clear();
                        row = staged;
                    }
                    float* dst = scratch + (nint)k * Ld - (nint)cs * 8;
                    nint c = cs;
                    for (int g = gpr == 1 ? 0 : cs / cpg; g < g1; g++)
                    {
                        var (a, b) = TDec.Prepare(sf + k * gc + (g - g0), nz + k * gc + (g - g0));
                        for (nint e = gpr == 1 ? c1 : Math.Min((nint)(g + 1) * cpg, c1); c < e; c++)
                            TDec.Decode(row + c * cb, a, b).Store(dst + c * 8);
                    }
                }
                int skip = cs * 8 - p0;
                PackedSgemm.PackW(scratch, Ld, tileRows, kp - skip, panel + (nint)skip * 8);
            }
        }

        /// <summary>
        /// 4-bit codes of 8 whole rows, 8 chunks (64 features) at a time: the rows' 32-byte code runs are transposed
        /// (8 x 8 dwords) so one dword vector holds a chunk of all 8 rows; each pair of features is then one 512-bit
        /// shift, mask, convert and fma(q, s, -z s) per 16 weights, stored straight into the micro-panel's [k][8]
        /// order (no row-major pass). The weights are exact, so the bits equal the row-major decode's.
        /// 8 rows from <paramref name="base0"/> (dword stride <paramref name="lds"/>), chunks [c0, cEnd) whose 32-byte
        /// reads stay inside the codes; scales [group][row] in <paramref name="sT"/>, <paramref name="nT"/> from group
        /// <paramref name="g"/> (relative to the block's first), with <paramref name="left"/> chunks of it still to come.
        /// Returns the first chunk not done. Lean (session 13): the scales broadcast from memory on a group change (no
        /// <c>vgatherdps</c>), the group counted instead of divided, and its own register allocation (not inlined: inlined
        /// into <c>Pack</c>, the session-10 loop kept its vectors on the stack).
        /// </summary>
        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private static int PackFourLean(byte* base0, int lds, long lastRow, long total, int c0, int cEnd, int p0, int g, int left, int cpg,
            float* sT, float* nT, float* tmp, float* panel)
        {
            var mask = Vector512.Create(15u);
            var sh0 = Vector512.Create(0u, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
            var sh1 = Vector512.Create(8u, 8, 8, 8, 8, 8, 8, 8, 12, 12, 12, 12, 12, 12, 12, 12);
            var sh2 = Vector512.Create(16u, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20, 20, 20, 20, 20);
            var sh3 = Vector512.Create(24u, 24, 24, 24, 24, 24, 24, 24, 28, 28, 28, 28, 28, 28, 28, 28);
            var s = Avx512F.BroadcastVector256ToVector512((double*)(sT + g * 8)).AsSingle();
            var z = Avx512F.BroadcastVector256ToVector512((double*)(nT + g * 8)).AsSingle();
            int c = c0;
            for (; c + 8 <= cEnd && lastRow + (long)c * 4 + 32 <= total; c += 8)
            {
                PackedSgemm.Transpose8x8((float*)(base0 + (nint)c * 4), lds, tmp);
                float* dst = panel + ((nint)c * 8 - p0) * 8;
                uint* q = (uint*)tmp;
                for (int j = 0; j < 8; j++, dst += 64, q += 8)
                {
                    if (left == 0)
                    {
                        g++;
                        left = cpg;
                        s = Avx512F.BroadcastVector256ToVector512((double*)(sT + g * 8)).AsSingle();
                        z = Avx512F.BroadcastVector256ToVector512((double*)(nT + g * 8)).AsSingle();
                    }
                    left--;
                    // Chunk c + j of all 8 rows in both halves; lanes 0-7 take feature 2i, lanes 8-15 feature 2i + 1.
                    var d = Avx512F.BroadcastVector256ToVector512((double*)q).AsUInt32();
                    Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single((Avx512F.ShiftRightLogicalVariable(d, sh0) & mask).AsInt32()), s, z).Store(dst);
                    Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single((Avx512F.ShiftRightLogicalVariable(d, sh1) & mask).AsInt32()), s, z).Store(dst + 16);
                    Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single((Avx512F.ShiftRightLogicalVariable(d, sh2) & mask).AsInt32()), s, z).Store(dst + 32);
                    Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single((Avx512F.ShiftRightLogicalVariable(d, sh3) & mask).AsInt32()), s, z).Store(dst + 48);
                }
            }
            return c;
        }

        /// <summary>8 rows' scales [row][group] (gc groups each) to [group][row]: 8 x 8 transposes, the rest element by element.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void TransposeScales(float* sf, float* nz, float* sT, float* nT, int gc)
        {
            int g = 0;
            for (; g + 8 <= gc; g += 8)
            {
                PackedSgemm.Transpose8x8(sf + g, gc, sT + g * 8, 8);
                PackedSgemm.Transpose8x8(nz + g, gc, nT + g * 8, 8);
            }
            for (; g < gc; g++)
                for (int k = 0; k < 8; k++)
                {
                    sT[g * 8 + k] = sf[k * gc + g];
                    nT[g * 8 + k] = nz[k * gc + g];
                }
        }

        /// <summary>
        /// Hints (session 13; before, the decoded source had no prefetch): the code bytes of row <paramref name="row"/>'s features
        /// [feature, feature + count) and, at a block's first k block, the row's scale and zero-point line for the block.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Prefetch(int row, int feature, int count)
        {
            byte* codes = Packed + (nint)row * RowBytes + (nint)(feature / 8) * TDec.ChunkBytes;
            nint bytes = (nint)((count + 7) / 8) * TDec.ChunkBytes;
            for (nint i = 0; i < bytes; i += 64) Sse.Prefetch1(codes + i);
            if (feature % PackedSgemm.BlockFeatures == 0)
            {
                int g = GroupsPerRow == 1 ? 0 : feature / 8 / ChunksPerGroup;
                Sse.Prefetch1(Scales + (nint)row * GroupsPerRow + g);
                if (Zeros != null) Sse.Prefetch1(Zeros + (nint)row * GroupsPerRow + g);
            }
        }
    }

    /// <summary>Each panel of rows: dequantized (exactly) into float32, then the dense packed GEMM chunk.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Panels<TDec>(in PanelBody p, int start, int end) where TDec : struct, IDecoder256
    {
        int gpr = p.GroupsPerRow;
        var scales = t_scales;
        if (scales is null || scales.Length < 2 * gpr + 16)
            t_scales = scales = GC.AllocateArray<float>(Math.Max(2 * gpr + 16, 1024), pinned: true);
        float* sf = (float*)Unsafe.AsPointer(ref scales[0]);
        float* nz = sf + gpr;
        // A row's last chunk is stored whole (up to 7 floats past the row): rows are decoded in order, so the next
        // row overwrites them, and the panel has room after its last row.
        int need = p.PanelRows * p.In + 16;
        var panelArray = t_panel;
        if (panelArray is null || panelArray.Length < need)
            t_panel = panelArray = GC.AllocateArray<float>(need, pinned: true);
        float* panel = (float*)Unsafe.AsPointer(ref panelArray[0]);
        var stage = t_stage;
        if (stage is null || stage.Length < p.RowBytes + 64)
            t_stage = stage = GC.AllocateArray<byte>(Math.Max(p.RowBytes + 64, 4096), pinned: true);
        byte* staged = (byte*)Unsafe.AsPointer(ref stage[0]);
        int chunks = (p.In + 7) / 8;
        long extent = (long)(chunks - 1) * TDec.ChunkBytes + TDec.ReadBytes;
        long total = (long)p.Out * p.RowBytes;
        int symmetricZero = 1 << (p.Bits - 1);
        nint cb = TDec.ChunkBytes;
        for (int panelIndex = start; panelIndex < end; panelIndex++)
        {
            int r0 = panelIndex * p.PanelRows, rows = Math.Min(p.PanelRows, p.Out - r0);
            for (int k = 0; k < rows; k++)
            {
                int r = r0 + k;
                byte* row = p.Packed + (nint)r * p.RowBytes;
                if ((long)r * p.RowBytes + extent > total)
                {
                    Buffer.MemoryCopy(row, staged, p.RowBytes, p.RowBytes);
                    new Span<byte>(staged + p.RowBytes, 64).Clear();
                    row = staged;
                }
                RowScales(p.Scales + (nint)r * gpr, p.Zeros == null ? null : p.Zeros + (nint)r * gpr, symmetricZero, sf, nz, gpr);
                float* dst = panel + (nint)k * p.In;
                nint c = 0;
                for (int g = 0; g < gpr; g++)
                {
                    var (a, b) = TDec.Prepare(sf + g, nz + g);
                    for (nint e = Math.Min(c + p.ChunksPerGroup, chunks); c < e; c++)
                        TDec.Decode(row + c * cb, a, b).Store(dst + c * 8);
                }
            }
            DenseMatMul.PackedRows(p.Xp, panel, p.Y, p.Batch, p.Padded, p.Out, p.In, r0, rows, p.Width);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<TDec>(in Body p, int startTile, int endTile)
        where TDec : struct, IDecoder
    {
        int gpr = p.GroupsPerRow;
        var scales = t_scales;
        if (scales is null || scales.Length < 2 * TileRows * gpr + 16)
            t_scales = scales = GC.AllocateArray<float>(Math.Max(2 * TileRows * gpr + 16, 1024), pinned: true);
        float* sf = (float*)Unsafe.AsPointer(ref scales[0]);
        float* nz = sf + TileRows * gpr;

        // A row whose last chunk would read past the end of the packed array is decoded from a zero-padded copy.
        int lanes = TDec.Lanes;
        long extent = (long)(p.Kp / lanes - 1) * TDec.ChunkBytes + TDec.ReadBytes;
        long total = (long)p.Out * p.RowBytes;
        var stage = t_stage;
        if (stage is null || stage.Length < TileRows * (p.RowBytes + 64))
            t_stage = stage = GC.AllocateArray<byte>(Math.Max(TileRows * (p.RowBytes + 64), 4096), pinned: true);
        byte* staged = (byte*)Unsafe.AsPointer(ref stage[0]);

        int symmetricZero = 1 << (p.Bits - 1);
        float* result = stackalloc float[TileRows * ResultStride];
        int tileBatch = TDec.Lanes == 16 ? TileBatch512 : TileBatch;
        var rowPointers = stackalloc byte*[TileRows];
        for (int tile = startTile; tile < endTile; tile++)
        {
            int r0 = tile * TileRows;
            int rows = Math.Min(TileRows, p.Out - r0);
            for (int k = 0; k < TileRows; k++)
            {
                // A short last tile repeats its last row (computed, not stored).
                int r = r0 + Math.Min(k, rows - 1);
                byte* row = p.Packed + (nint)r * p.RowBytes;
                if ((long)r * p.RowBytes + extent > total)
                {
                    byte* copy = staged + (nint)k * (p.RowBytes + 64);
                    Buffer.MemoryCopy(row, copy, p.RowBytes, p.RowBytes);
                    new Span<byte>(copy + p.RowBytes, 64).Clear();
                    row = copy;
                }
                rowPointers[k] = row;
                RowScales(p.Scales + (nint)r * gpr, p.Zeros == null ? null : p.Zeros + (nint)r * gpr, symmetricZero, sf + k * gpr, nz + k * gpr, gpr);
            }

            for (int b0 = 0; b0 < p.Batch; b0 += tileBatch)
            {
                int n = Math.Min(tileBatch, p.Batch - b0);
                float* xb = p.X + (nint)b0 * p.Kp;
                switch (n)
                {
                    case 1: TDec.Tile<One>(rowPointers, sf, nz, gpr, p.ChunksPerGroup, xb, p.Kp, result); break;
                    case 2: TDec.Tile<Two>(rowPointers, sf, nz, gpr, p.ChunksPerGroup, xb, p.Kp, result); break;
                    case 3: TDec.Tile<Three>(rowPointers, sf, nz, gpr, p.ChunksPerGroup, xb, p.Kp, result); break;
                    default: TDec.Tile<Four>(rowPointers, sf, nz, gpr, p.ChunksPerGroup, xb, p.Kp, result); break;
                }
                for (int k = 0; k < rows; k++)
                    for (int j = 0; j < n; j++)
                        p.Y[(nint)(b0 + j) * p.Out + r0 + k] = result[k * ResultStride + j];
            }
        }
    }

    /// <summary>Float scales and -z s per group: both exact (float16 to float32, and z &lt;= 255 times an 11-bit significand).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowScales(Half* scales, byte* zeros, int symmetricZero, float* s, float* nz, int count)
    {
        int g = 0;
        if (Avx2.IsSupported)
        {
            // float16 to float32: (h & 0x7FFF) << 13 read as float, times 2^112, exact for normal and subnormal halves.
            var magic = Vector256.Create(5.192297e33f); // 2^112
            var mask = Vector256.Create(0x7FFFu);
            var sign = Vector256.Create(0x8000u);
            var zs = Vector256.Create((float)symmetricZero);
            for (; g + 8 <= count; g += 8)
            {
                var h = Avx2.ConvertToVector256Int32((ushort*)scales + g).AsUInt32();
                var f = (((h & mask) << 13) | ((h & sign) << 16)).AsSingle() * magic;
                f.Store(s + g);
                var z = zeros == null ? zs : Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(zeros + g));
                (-(z * f)).Store(nz + g);
            }
            if (g < count)
            {
                // The last 1-7 groups as one more vector from zero-padded copies: (float)Half is a software conversion,
                // and rows of 4-6 groups (In 512 or 768 at g128) spent a large part of a batch-1 call in it (session 17).
                int n = count - g;
                var hv = Vector128<ushort>.Zero;
                ulong zv = 0;
                for (int i = 0; i < n; i++)
                {
                    ((ushort*)&hv)[i] = ((ushort*)scales)[g + i];
                    if (zeros != null) ((byte*)&zv)[i] = zeros[g + i];
                }
                var h = Avx2.ConvertToVector256Int32((ushort*)&hv).AsUInt32();
                var f = (((h & mask) << 13) | ((h & sign) << 16)).AsSingle() * magic;
                var z = zeros == null ? zs : Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32((byte*)&zv));
                var t = -(z * f);
                for (int i = 0; i < n; i++)
                {
                    s[g + i] = f.GetElement(i);
                    nz[g + i] = t.GetElement(i);
                }
                return;
            }
        }
        for (; g < count; g++)
        {
            float f = (float)scales[g];
            s[g] = f;
            nz[g] = -((zeros == null ? symmetricZero : zeros[g]) * f);
        }
    }

    private interface IBatchCount { static abstract int Count { get; } }
    private struct One : IBatchCount { public static int Count => 1; }
    private struct Two : IBatchCount { public static int Count => 2; }
    private struct Three : IBatchCount { public static int Count => 3; }
    private struct Four : IBatchCount { public static int Count => 4; } // 512-bit tiles only

    /// <summary>One bit width at one vector width: how a chunk of codes becomes exact float32 weights.</summary>
    private interface IDecoder
    {
        /// <summary>Codes per vector.</summary>
        static abstract int Lanes { get; }
        /// <summary>Packed bytes of one chunk of <see cref="Lanes"/> codes.</summary>
        static abstract int ChunkBytes { get; }
        /// <summary>Bytes a decode reads from the chunk's start (at least <see cref="ChunkBytes"/>).</summary>
        static abstract int ReadBytes { get; }
        static abstract void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount;
    }

    private interface IDecoder512 : IDecoder
    {
        /// <summary>Per group: a table (entry j = s (j - z) for the lookup decoders) or s and -z s.</summary>
        /// <remarks>
        /// Takes pointers so the JIT folds both broadcasts into the multiply and the add as {1to16} memory operands:
        /// by value, each became a vmovss plus a register vbroadcastss on the shuffle port the decode's vpermps
        /// needs, and with groups of 64 (4 chunks) that per-group prologue doubled the cost per chunk (measured in
        /// a register-and-L1 loop of the 4-bit tile: 4.8 -> 2.5 cycles per 16 codes and row; docs/benchmarks.md, session 7).
        /// </remarks>
        static abstract (Vector512<float> A, Vector512<float> B) Prepare(float* s, float* nz);
        static abstract Vector512<float> Decode(byte* chunk, Vector512<float> a, Vector512<float> b);
    }

    private interface IDecoder256 : IDecoder
    {
        static abstract (Vector256<float> A, Vector256<float> B) Prepare(float* s, float* nz);
        static abstract Vector256<float> Decode(byte* chunk, Vector256<float> a, Vector256<float> b);
    }

    // 2 bits, 16 codes = 4 bytes: broadcast, lane i shifts by 2i; table entry j is for code j & 3.
    private struct Dec512x2 : IDecoder512
    {
        public static int Lanes => 16;
        public static int ChunkBytes => 4;
        public static int ReadBytes => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float> A, Vector512<float> B) Prepare(float* s, float* nz) =>
            (Vector512.Create(0f, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3) * Vector512.Create(*s) + Vector512.Create(*nz), default);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Decode(byte* chunk, Vector512<float> a, Vector512<float> b)
        {
            var v = Vector512.Create(*(uint*)chunk);
            var index = Avx512F.ShiftRightLogicalVariable(v, Vector512.Create(0u, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
            return Avx512F.PermuteVar16x32(a, index.AsInt32());
        }

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile512<Dec512x2, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 3 bits, 16 codes = 6 bytes: the qword broadcast to every 128-bit lane, vpshufb gathers the two bytes code i
    // spans into lane i, which shifts by 3i mod 8; table entry j is for code j & 7.
    private struct Dec512x3 : IDecoder512
    {
        public static int Lanes => 16;
        public static int ChunkBytes => 6;
        public static int ReadBytes => 8;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float> A, Vector512<float> B) Prepare(float* s, float* nz) =>
            (Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7) * Vector512.Create(*s) + Vector512.Create(*nz), default);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Decode(byte* chunk, Vector512<float> a, Vector512<float> b)
        {
            var v = Vector512.Create(*(ulong*)chunk).AsByte();
            var gathered = Avx512BW.Shuffle(v, Vector512.Create(
                (byte)0, 1, 0x80, 0x80, 0, 1, 0x80, 0x80, 0, 1, 0x80, 0x80, 1, 2, 0x80, 0x80,
                1, 2, 0x80, 0x80, 1, 2, 0x80, 0x80, 2, 3, 0x80, 0x80, 2, 3, 0x80, 0x80,
                3, 4, 0x80, 0x80, 3, 4, 0x80, 0x80, 3, 4, 0x80, 0x80, 4, 5, 0x80, 0x80,
                4, 5, 0x80, 0x80, 4, 5, 0x80, 0x80, 5, 6, 0x80, 0x80, 5, 6, 0x80, 0x80));
            var index = Avx512F.ShiftRightLogicalVariable(gathered.AsUInt32(), Vector512.Create(0u, 3, 6, 1, 4, 7, 2, 5, 0, 3, 6, 1, 4, 7, 2, 5));
            return Avx512F.PermuteVar16x32(a, index.AsInt32());
        }

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile512<Dec512x3, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 4 bits, 16 codes = 8 bytes: the qword broadcast, even lanes see its low dword and odd lanes its high one; lane
    // 2m and 2m + 1 shift by 4m, giving codes m and 8 + m (the inputs are copied in that order).
    private struct Dec512x4 : IDecoder512
    {
        public static int Lanes => 16;
        public static int ChunkBytes => 8;
        public static int ReadBytes => 8;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float> A, Vector512<float> B) Prepare(float* s, float* nz) =>
            (Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * Vector512.Create(*s) + Vector512.Create(*nz), default);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Decode(byte* chunk, Vector512<float> a, Vector512<float> b)
        {
            var v = Vector512.Create(*(ulong*)chunk).AsUInt32();
            var index = Avx512F.ShiftRightLogicalVariable(v, Vector512.Create(0u, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28));
            return Avx512F.PermuteVar16x32(a, index.AsInt32());
        }

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile512<Dec512x4, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 8 bits: widen 16 bytes to 16 ints, convert, fma(q, s, -z s).
    private struct Dec512x8 : IDecoder512
    {
        public static int Lanes => 16;
        public static int ChunkBytes => 16;
        public static int ReadBytes => 16;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector512<float> A, Vector512<float> B) Prepare(float* s, float* nz) => (Vector512.Create(*s), Vector512.Create(*nz));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Decode(byte* chunk, Vector512<float> a, Vector512<float> b) =>
            Vector512.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(chunk))), a, b);

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile512<Dec512x8, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 2 bits with AVX2, 8 codes = 2 bytes; table entry j is for code j & 3.
    private struct Dec256x2 : IDecoder256
    {
        public static int Lanes => 8;
        public static int ChunkBytes => 2;
        public static int ReadBytes => 2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float> A, Vector256<float> B) Prepare(float* s, float* nz) =>
            (Vector256.Create(0f, 1, 2, 3, 0, 1, 2, 3) * Vector256.Create(*s) + Vector256.Create(*nz), default);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Decode(byte* chunk, Vector256<float> a, Vector256<float> b)
        {
            var v = Vector256.Create((uint)*(ushort*)chunk);
            var index = Avx2.ShiftRightLogicalVariable(v, Vector256.Create(0u, 2, 4, 6, 8, 10, 12, 14));
            return Avx2.PermuteVar8x32(a, index.AsInt32());
        }

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile256<Dec256x2, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 3 bits with AVX2, 8 codes = 3 bytes (a 4-byte read): lane i shifts by 3i; the 8-entry table is the code's.
    private struct Dec256x3 : IDecoder256
    {
        public static int Lanes => 8;
        public static int ChunkBytes => 3;
        public static int ReadBytes => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float> A, Vector256<float> B) Prepare(float* s, float* nz) =>
            (Vector256.Create(0f, 1, 2, 3, 4, 5, 6, 7) * Vector256.Create(*s) + Vector256.Create(*nz), default);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Decode(byte* chunk, Vector256<float> a, Vector256<float> b)
        {
            var v = Vector256.Create(*(uint*)chunk);
            var index = Avx2.ShiftRightLogicalVariable(v, Vector256.Create(0u, 3, 6, 9, 12, 15, 18, 21));
            return Avx2.PermuteVar8x32(a, index.AsInt32());
        }

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile256<Dec256x3, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 4 bits with AVX2 (vpermps has 8 entries): lane i shifts by 4i, masks, converts, fma(q, s, -z s).
    private struct Dec256x4 : IDecoder256
    {
        public static int Lanes => 8;
        public static int ChunkBytes => 4;
        public static int ReadBytes => 4;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float> A, Vector256<float> B) Prepare(float* s, float* nz) => (Vector256.Create(*s), Vector256.Create(*nz));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Decode(byte* chunk, Vector256<float> a, Vector256<float> b)
        {
            var v = Vector256.Create(*(uint*)chunk);
            var q = Avx2.ShiftRightLogicalVariable(v, Vector256.Create(0u, 4, 8, 12, 16, 20, 24, 28)) & Vector256.Create(15u);
            return Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(q.AsInt32()), a, b);
        }

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile256<Dec256x4, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    // 8 bits with AVX2: widen 8 bytes, convert, fma(q, s, -z s).
    private struct Dec256x8 : IDecoder256
    {
        public static int Lanes => 8;
        public static int ChunkBytes => 8;
        public static int ReadBytes => 8;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static (Vector256<float> A, Vector256<float> B) Prepare(float* s, float* nz) => (Vector256.Create(*s), Vector256.Create(*nz));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Decode(byte* chunk, Vector256<float> a, Vector256<float> b) =>
            Vector256.FusedMultiplyAdd(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(chunk)), a, b);

        public static void Tile<TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result) where TB : struct, IBatchCount =>
            Tile256<Dec256x8, TB>(rows, sf, nz, gpr, cpg, x, kp, result);
    }

    /// <summary>
    /// Four weight rows against up to three input rows: per chunk, each row's weights are decoded once and multiplied
    /// into every input; each (row, input) pair keeps one vector of partial sums, added up at the end.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile512<TDec, TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result)
        where TDec : struct, IDecoder512 where TB : struct, IBatchCount
    {
        byte* p0 = rows[0], p1 = rows[1], p2 = rows[2], p3 = rows[3];
        float* x1 = x + kp, x2 = x1 + kp, x3 = x2 + kp;
        nint cb = TDec.ChunkBytes;
        var a00 = Vector512<float>.Zero; var a10 = a00; var a20 = a00; var a30 = a00;
        var a01 = a00; var a11 = a00; var a21 = a00; var a31 = a00;
        var a02 = a00; var a12 = a00; var a22 = a00; var a32 = a00;
        var a03 = a00; var a13 = a00; var a23 = a00; var a33 = a00;
        nint c = 0;
        for (int g = 0; g < gpr; g++)
        {
            var (t0, u0) = TDec.Prepare(sf + g, nz + g);
            var (t1, u1) = TDec.Prepare(sf + gpr + g, nz + gpr + g);
            var (t2, u2) = TDec.Prepare(sf + 2 * gpr + g, nz + 2 * gpr + g);
            var (t3, u3) = TDec.Prepare(sf + 3 * gpr + g, nz + 3 * gpr + g);
            for (nint e = c + cpg; c < e; c++)
            {
                nint o = c * cb, i = c * 16;
                var w0 = TDec.Decode(p0 + o, t0, u0);
                var w1 = TDec.Decode(p1 + o, t1, u1);
                var w2 = TDec.Decode(p2 + o, t2, u2);
                var w3 = TDec.Decode(p3 + o, t3, u3);
                var xv = Vector512.Load(x + i);
                a00 = Vector512.FusedMultiplyAdd(w0, xv, a00);
                a10 = Vector512.FusedMultiplyAdd(w1, xv, a10);
                a20 = Vector512.FusedMultiplyAdd(w2, xv, a20);
                a30 = Vector512.FusedMultiplyAdd(w3, xv, a30);
                if (TB.Count > 1)
                {
                    xv = Vector512.Load(x1 + i);
                    a01 = Vector512.FusedMultiplyAdd(w0, xv, a01);
                    a11 = Vector512.FusedMultiplyAdd(w1, xv, a11);
                    a21 = Vector512.FusedMultiplyAdd(w2, xv, a21);
                    a31 = Vector512.FusedMultiplyAdd(w3, xv, a31);
                }
                if (TB.Count > 2)
                {
                    xv = Vector512.Load(x2 + i);
                    a02 = Vector512.FusedMultiplyAdd(w0, xv, a02);
                    a12 = Vector512.FusedMultiplyAdd(w1, xv, a12);
                    a22 = Vector512.FusedMultiplyAdd(w2, xv, a22);
                    a32 = Vector512.FusedMultiplyAdd(w3, xv, a32);
                }
                if (TB.Count > 3)
                {
                    xv = Vector512.Load(x3 + i);
                    a03 = Vector512.FusedMultiplyAdd(w0, xv, a03);
                    a13 = Vector512.FusedMultiplyAdd(w1, xv, a13);
                    a23 = Vector512.FusedMultiplyAdd(w2, xv, a23);
                    a33 = Vector512.FusedMultiplyAdd(w3, xv, a33);
                }
            }
        }
        // Row k, input j at result[k * ResultStride + j].
        result[0] = Vector512.Sum(a00); result[4] = Vector512.Sum(a10); result[8] = Vector512.Sum(a20); result[12] = Vector512.Sum(a30);
        if (TB.Count > 1) { result[1] = Vector512.Sum(a01); result[5] = Vector512.Sum(a11); result[9] = Vector512.Sum(a21); result[13] = Vector512.Sum(a31); }
        if (TB.Count > 2) { result[2] = Vector512.Sum(a02); result[6] = Vector512.Sum(a12); result[10] = Vector512.Sum(a22); result[14] = Vector512.Sum(a32); }
        if (TB.Count > 3) { result[3] = Vector512.Sum(a03); result[7] = Vector512.Sum(a13); result[11] = Vector512.Sum(a23); result[15] = Vector512.Sum(a33); }
    }

    /// <inheritdoc cref="Tile512{TDec, TB}"/>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile256<TDec, TB>(byte** rows, float* sf, float* nz, int gpr, int cpg, float* x, int kp, float* result)
        where TDec : struct, IDecoder256 where TB : struct, IBatchCount
    {
        byte* p0 = rows[0], p1 = rows[1], p2 = rows[2], p3 = rows[3];
        float* x1 = x + kp, x2 = x1 + kp;
        nint cb = TDec.ChunkBytes;
        var a00 = Vector256<float>.Zero; var a10 = a00; var a20 = a00; var a30 = a00;
        var a01 = a00; var a11 = a00; var a21 = a00; var a31 = a00;
        var a02 = a00; var a12 = a00; var a22 = a00; var a32 = a00;
        nint c = 0;
        for (int g = 0; g < gpr; g++)
        {
            var (t0, u0) = TDec.Prepare(sf + g, nz + g);
            var (t1, u1) = TDec.Prepare(sf + gpr + g, nz + gpr + g);
            var (t2, u2) = TDec.Prepare(sf + 2 * gpr + g, nz + 2 * gpr + g);
            var (t3, u3) = TDec.Prepare(sf + 3 * gpr + g, nz + 3 * gpr + g);
            for (nint e = c + cpg; c < e; c++)
            {
                nint o = c * cb, i = c * 8;
                var w0 = TDec.Decode(p0 + o, t0, u0);
                var w1 = TDec.Decode(p1 + o, t1, u1);
                var w2 = TDec.Decode(p2 + o, t2, u2);
                var w3 = TDec.Decode(p3 + o, t3, u3);
                var xv = Vector256.Load(x + i);
                a00 = Vector256.FusedMultiplyAdd(w0, xv, a00);
                a10 = Vector256.FusedMultiplyAdd(w1, xv, a10);
                a20 = Vector256.FusedMultiplyAdd(w2, xv, a20);
                a30 = Vector256.FusedMultiplyAdd(w3, xv, a30);
                if (TB.Count > 1)
                {
                    xv = Vector256.Load(x1 + i);
                    a01 = Vector256.FusedMultiplyAdd(w0, xv, a01);
                    a11 = Vector256.FusedMultiplyAdd(w1, xv, a11);
                    a21 = Vector256.FusedMultiplyAdd(w2, xv, a21);
                    a31 = Vector256.FusedMultiplyAdd(w3, xv, a31);
                }
                if (TB.Count > 2)
                {
                    xv = Vector256.Load(x2 + i);
                    a02 = Vector256.FusedMultiplyAdd(w0, xv, a02);
                    a12 = Vector256.FusedMultiplyAdd(w1, xv, a12);
                    a22 = Vector256.FusedMultiplyAdd(w2, xv, a22);
                    a32 = Vector256.FusedMultiplyAdd(w3, xv, a32);
                }
            }
        }
        // Row k, input j at result[k * ResultStride + j]; Rows never passes more than TileBatch (3) inputs here.
        result[0] = Vector256.Sum(a00); result[4] = Vector256.Sum(a10); result[8] = Vector256.Sum(a20); result[12] = Vector256.Sum(a30);
        if (TB.Count > 1) { result[1] = Vector256.Sum(a01); result[5] = Vector256.Sum(a11); result[9] = Vector256.Sum(a21); result[13] = Vector256.Sum(a31); }
        if (TB.Count > 2) { result[2] = Vector256.Sum(a02); result[6] = Vector256.Sum(a12); result[10] = Vector256.Sum(a22); result[14] = Vector256.Sum(a32); }
    }
}
