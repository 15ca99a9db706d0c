using Condense.Kernels.Jit;
using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;

namespace Condense.Quantization;

/// <summary>
/// y = x W'^T for a group-quantized W with int8 activations: every input row is quantized once per call and the
/// products are integer dot products of codes and int8 inputs; group scales and zero points are applied in float32.
/// The fused kernels decode the packed rows in registers: <see cref="FusedInt8Dot"/> with AVX-512 and
/// <see cref="FusedInt8Dot256"/> with AVX2 (AVX-VNNI when present); the 128-bit and scalar paths unpack every
/// weight row once per call into one byte per code (L1-resident).
/// </summary>
/// <remarks>
/// <para>With row scale sx, codes u, zero point z and group scale s:
/// y[b, o] = sx * (sum_g s_g * dot_g(u, q) - sum_g s_g * z_g * sum_g(q)), the zero point folded through the
/// per-group input sums computed once per call.</para>
/// <para>Every 128-bit chunk of 16 codes yields 4 integer lane sums of 4 consecutive codes; each lane lies inside
/// one group (G &gt;= 16), so the lanes are converted to float and multiplied by their group's scale. Integer sums
/// are exact; only the float accumulation order depends on the vector width. Threads split weight rows, so results
/// do not depend on the thread count.</para>
/// <para>8-bit codes reach 255, which would saturate the 16-bit pair sums of pmaddubsw: that path multiplies
/// |u - 128| by the input with u - 128's sign, and folds the 128 into the zero point.</para>
/// </remarks>
internal static unsafe class Int8MatMul
{
    private const long SerialWork = 1 << 16;

    // Batch 1 on the pool: the fewest bytes of packed codes per chunk (0: no floor, the pool's 8 chunks per thread and
    // 4 pieces). A hot call on a small weight spends more on its chunks than on its rows: 256 x 1024 8-bit, hot, was
    // 3.6 us on one thread (one chunk) and 4.3-4.6 us on two threads in 22 chunks of ~12 rows, 7.0 us when the caller
    // ran them all. With a floor, small weights get fewer, larger chunks, and the ones below two chunks stay on the
    // calling thread. Chunk boundaries do not change a row's result (rows are computed alone), so no bits change.
    // Session 15 (ws16/hot2): default 128 KiB; `--gemv-min-chunk-kib n` in the benchmarks, CONDENSE_GEMV_MIN_CHUNK_KIB=n
    // at process start (0: no floor). 2 threads, hot, int4 g64 (paired in one process, the lead): 256 x 1024 1.53x,
    // 384 x 1536 1.37x, 1536 x 384 1.19x, 1024 x 2048 1.13x; 2048 x 2048 and 512 x 4096 hot and cold 1.01-1.08x; the S1
    // and S2 splits are the same as without the floor.
    internal static int MinChunkBytes { get; set; } =
        int.TryParse(Environment.GetEnvironmentVariable("CONDENSE_GEMV_MIN_CHUNK_KIB"), out int kib) && kib >= 0 ? kib * 1024 : 128 * 1024;

    private static int MinChunkRows(in PackedWeightView w) =>
        MinChunkBytes <= 0 ? 1 : (int)Math.Max(1, (MinChunkBytes + (long)w.RowBytes - 1) / w.RowBytes);

    [ThreadStatic] private static byte[]? t_scratch;

    /// <summary>Runs the product; false (y untouched) when an input row holds a NaN or infinity.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Run(in PackedWeightView w, float* x, float* y, int batch)
    {
        int bits = KernelOptions.VectorBits;
        // 8-bit codes at larger batches: the 16-bit GEMM over decoded panels (Int8Gemm), from natural-order rows.
        bool gemm = w.GemmPanels != null && GroupQuantizedWeight.GemmApplies(w.Bits, w.GroupSize, w.GroupsPerRow, w.In, batch, w.Out);
        // 4-bit codes at 2..15 rows: generated VNNI kernels over the packed codes, each weight load shared by the batch.
        bool small4 = !gemm && VnniSmallBatch4.Applies(w.Bits, w.GroupSize, w.GroupsPerRow, w.In, w.Out, batch, bits);
        // 8-bit codes at 2..15 rows: the same with the codes multiplied as stored (VnniSmallBatch8).
        bool small8 = !gemm && !small4 && VnniSmallBatch8.Applies(w.Bits, w.GroupSize, w.GroupsPerRow, w.In, batch, bits);
        bool fused = !gemm && !small4 && !small8 && bits == 512 && FusedInt8Dot.IsSupported(w.Bits) && !Prefers256(w.Bits, w.GroupSize, w.GroupsPerRow, batch);
        bool fused256 = !gemm && !small4 && !small8 && !fused && bits >= 256 && FusedInt8Dot256.IsSupported;
        int natural = CodeUnpack.PaddedLength(w.In);
        bool pairs = fused256 && FusedInt8Dot256.PairedUnits(w.Bits, w.GroupSize, w.GroupsPerRow);
        bool wide4 = fused && FusedInt8Dot.UsesWide4(w.Bits, w.GroupSize, w.GroupsPerRow, batch);
        int unit = wide4 ? FusedInt8Dot.Wide4Codes : fused ? FusedInt8Dot.UnitCodes(w.Bits) : fused256 ? FusedInt8Dot256.PadCodes(w.Bits, w.GroupSize, w.GroupsPerRow) : 64;
        int padded = (w.In + unit - 1) / unit * unit;
        padded = Math.Max(padded, natural); // activation quantization zero-fills up to a multiple of 64
        // Group sums padded to 16 with zeros: the fused kernels fold the zero points 16 (8) groups at a time.
        int groupStride = (w.GroupsPerRow + 15) & ~15;
        byte[] qBuffer = ArrayPool<byte>.Shared.Rent(batch * padded + 64);
        float[] fBuffer = ArrayPool<float>.Shared.Rent(batch * (groupStride + 1));
        try
        {
            fixed (byte* qb = qBuffer)
            fixed (float* fb = fBuffer)
            {
                sbyte* q = (sbyte*)(((nint)qb + 63) & ~(nint)63);
                float* rowScale = fb, groupSums = fb + batch;
                new Span<float>(groupSums, batch * groupStride).Clear();
                if (gemm)
                {
                    // The GEMM reads the rows as quantized (no interleave): rows are independent, so both threads
                    // quantize (serial, it was ~3% of a 2-thread 4096 x 4096 product at 128 rows).
                    var quantize = new QuantizeBody { X = x, In = w.In, GroupSize = w.GroupSize, Q = q, Padded = padded, RowScale = rowScale, GroupSums = groupSums, GroupStride = groupStride, Bits = bits };
                    WorkerPool.Shared.For(batch, ref quantize, (long)batch * w.In < SerialWork ? 1 : int.MaxValue);
                    for (int b = 0; b < batch; b++)
                        if (float.IsNaN(rowScale[b])) return false;
                    Int8Gemm.Run(w.GemmPanels, w.GemmTerms, w.GroupSize, w.GroupsPerRow, w.Out, w.In, q, padded, rowScale, y, batch,
                        w.GemmVnni, groupSums, groupStride, w.Bits);
                    return true;
                }
                for (int b = 0; b < batch; b++)
                {
                    sbyte* qr = q + (nint)b * padded;
                    rowScale[b] = Int8Activations.QuantizeRow(x + (nint)b * w.In, w.In, w.GroupSize, qr, groupSums + (nint)b * groupStride, bits);
                    if (float.IsNaN(rowScale[b])) return false;
                    if (fused)
                    {
                        new Span<sbyte>(qr + natural, padded - natural).Clear();
                        if (wide4) FusedInt8Dot.InterleaveWide4(qr, padded);
                        else FusedInt8Dot.Interleave(qr, padded, FusedInt8Dot.Parts(w.Bits));
                    }
                    else if (fused256)
                    {
                        new Span<sbyte>(qr + natural, padded - natural).Clear();
                        FusedInt8Dot256.Interleave(qr, padded, w.Bits, pairs);
                    }
                }

                if (small8)
                {
                    VnniSmallBatch8.Run(w, q, padded, rowScale, groupSums, groupStride, y, batch);
                    return true;
                }
                if (small4)
                {
                    VnniSmallBatch4.Run(w, q, padded, rowScale, groupSums, groupStride, y, batch);
                    return true;
                }

                int degree = (long)w.Out * w.In * batch < SerialWork ? 1 : int.MaxValue;
                if (fused)
                {
                    // 8- and 4-bit batch 1 with AVX512-VNNI: the emitted vpdpbusd loop, codes unshifted (VnniGemv).
                    nint vnni512 = VnniGemv.Prepare(w.Bits, batch, w.GroupSize, w.GroupsPerRow, w.In, w.RowBytes, groupStride, bits, w.Out,
                        symmetric: w.Zeros == null);
                    var args = new FusedInt8Dot.Args
                    {
                        Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupSize = w.GroupSize,
                        GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes, Out = w.Out, In = w.In, Batch = batch,
                        Q = q, Padded = padded, RowScale = rowScale, GroupSums = groupSums, GroupStride = groupStride,
                        CodeOffset = vnni512 != 0 ? 0 : FusedInt8Dot.CodeOffset(w.Bits, batch, w.GroupSize, w.GroupsPerRow), Y = y,
                        VnniKernel = vnni512,
                    };
                    if (batch == 1)
                    {
                        // 2- and 3-bit codes with AVX512-VNNI: the emitted loop of the managed loop's decode and float
                        // order (VnniGemvLowBit), the same bits.
                        nint lowBit = vnni512 == 0 ? VnniGemvLowBit.Prepare(w.Bits, batch, w.GroupSize, w.GroupsPerRow, w.In, w.RowBytes, groupStride, bits) : 0;
                        if (lowBit != 0)
                        {
                            var lowBitBody = new LowBitBody { Args = args with { VnniKernel = lowBit } };
                            WorkerPool.Shared.For(w.Out, ref lowBitBody, degree, MinChunkRows(w));
                            return true;
                        }
                        var fusedBody = new FusedBody { Args = args };
                        WorkerPool.Shared.For(w.Out, ref fusedBody, degree, MinChunkRows(w));
                        return true;
                    }
                    // Batches: the tile layout is built once here, not by every chunk of rows.
                    long tileBytes = FusedInt8Dot.TileBytes(batch, padded);
                    sbyte[] tileBuffer = ArrayPool<sbyte>.Shared.Rent(checked((int)tileBytes + 64));
                    try
                    {
                        fixed (sbyte* tb = tileBuffer)
                        {
                            args.Tiles = (sbyte*)(((nint)tb + 63) & ~(nint)63);
                            FusedInt8Dot.BuildTiles(q, batch, padded, unit, args.Tiles);
                            // Threads take whole row blocks: a chunk smaller than a block repeats the per-block set-up
                            // for a few rows (a 64-row layer at batch 256 ran slower on 2 threads than on 1).
                            var blockBody = new FusedBlockBody { Args = args };
                            WorkerPool.Shared.For((w.Out + FusedInt8Dot.RowBlock - 1) / FusedInt8Dot.RowBlock, ref blockBody, degree);
                        }
                    }
                    finally
                    {
                        ArrayPool<sbyte>.Shared.Return(tileBuffer);
                    }
                    return true;
                }

                if (fused256)
                {
                    var args = new FusedInt8Dot256.Args
                    {
                        Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupSize = w.GroupSize,
                        GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes, Out = w.Out, In = w.In, Batch = batch,
                        Q = q, Padded = padded, RowScale = rowScale, GroupSums = groupSums, GroupStride = groupStride, Y = y,
                    };
                    var body256 = new Fused256Body { Args = args };
                    WorkerPool.Shared.For(w.Out, ref body256, degree);
                    return true;
                }

                var body = new Body
                {
                    Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupSize = w.GroupSize,
                    GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes, Out = w.Out, In = w.In,
                    Q = q, Padded = padded, RowScale = rowScale, GroupSums = groupSums, GroupStride = groupStride, Y = y, Batch = batch, VectorBits = bits,
                };
                WorkerPool.Shared.For(w.Out, ref body, degree);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(qBuffer);
            ArrayPool<float>.Shared.Return(fBuffer);
        }
        return true;
    }

    /// <summary>
    /// True when the 256-bit kernel runs where the AVX-512 one could: with AVX-VNNI, for 8-bit groups of exactly one
    /// 256-bit unit (g32, <see cref="FusedInt8Dot256.PairedUnits"/>) at batch 2 and more.
    /// </summary>
    /// <remarks>
    /// Measured on the AMD EPYC (Zen 5) development VM, S2 (11008x4096) with 2 threads, cold, the two kernels
    /// alternated in one process (30 rounds): int8-g32 256/512-bit time 1.06 at batch 1 (the AVX-512 batch-1 loop
    /// itself uses 256-bit vpdpbusd), 0.86 at batch 2, 0.79 at batch 4, about 0.95 at 8 and 16; int4-g64 1.47 at
    /// batch 1 and 1.00 at batches 2 and 4. Elsewhere (g128, per-row groups, 2 and 3 bits) the zmm kernel was as fast
    /// or faster: one ymm vpdpbusd costs about what one zmm vpmaddubsw costs here, and zmm needs fewer instructions
    /// per code unless two groups share one conversion and FMA.
    /// </remarks>
    internal static bool Prefers256(int bits, int groupSize, int groupsPerRow, int batch) => Override256 switch
    {
        > 0 => true,
        < 0 => false,
        _ => FusedInt8Dot256.UsesVnni && FusedInt8Dot256.PairedUnits(bits, groupSize, groupsPerRow) && bits == 8 && batch >= 2,
    };

    /// <summary>Tests and measurements: 1 runs the 256-bit kernel wherever AVX-512 would run, -1 never, 0 follows <see cref="Prefers256"/>.</summary>
    internal static int Override256 { get; set; }

    /// <summary>Rows [start, end) quantized as the serial loop does: each row's scale, codes and group sums depend on that row only.</summary>
    private struct QuantizeBody : IRangeBody
    {
        public float* X, RowScale, GroupSums;
        public sbyte* Q;
        public int In, GroupSize, Padded, GroupStride, Bits;

        public readonly void Invoke(int start, int end)
        {
            for (int b = start; b < end; b++)
                RowScale[b] = Int8Activations.QuantizeRow(X + (nint)b * In, In, GroupSize, Q + (nint)b * Padded, GroupSums + (nint)b * GroupStride, Bits);
        }
    }

    private struct Fused256Body : IRangeBody
    {
        public FusedInt8Dot256.Args Args;

        public readonly void Invoke(int start, int end) => FusedInt8Dot256.Rows(Args, start, end);
    }

    private struct FusedBody : IRangeBody
    {
        public FusedInt8Dot.Args Args;

        public readonly void Invoke(int start, int end) => FusedInt8Dot.Rows(Args, start, end);
    }

    private struct LowBitBody : IRangeBody
    {
        public FusedInt8Dot.Args Args;

        public readonly void Invoke(int start, int end) => VnniGemvLowBit.Run(Args, start, end);
    }

    private struct FusedBlockBody : IRangeBody
    {
        public FusedInt8Dot.Args Args;

        public readonly void Invoke(int start, int end) =>
            FusedInt8Dot.Rows(Args, start * FusedInt8Dot.RowBlock, Math.Min(Args.Out, end * FusedInt8Dot.RowBlock));
    }

    private struct Body : IRangeBody
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int Bits, GroupSize, GroupsPerRow, RowBytes, Out, In, Padded, GroupStride, Batch, VectorBits;
        public sbyte* Q;
        public float* RowScale, GroupSums, Y;

        public readonly void Invoke(int start, int end) => Rows(this, start, end);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows(in Body p, int start, int end)
    {
        int gpr = p.GroupsPerRow;
        int scratchBytes = p.Padded + 64 + 2 * (gpr + 16) * sizeof(float);
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < scratchBytes)
            t_scratch = scratch = GC.AllocateArray<byte>(Math.Max(scratchBytes, 64 * 1024), pinned: true);
        byte* basePtr = (byte*)Unsafe.AsPointer(ref scratch[0]);
        byte* codes = (byte*)(((nint)basePtr + 63) & ~(nint)63);
        float* sf = (float*)(codes + p.Padded);
        float* szf = sf + gpr + 16;
        new Span<float>(sf + gpr, 16).Clear();

        int vectorBits = p.VectorBits;
        // The SSSE3 path multiplies |u - 128| for 8-bit codes (see remarks); the fold adds the 128 back.
        int codeOffset = p.Bits == 8 && vectorBits >= 128 ? 128 : 0;
        bool signed8 = codeOffset != 0;
        int log2G = p.GroupSize == p.In && gpr == 1 ? 31 : System.Numerics.BitOperations.Log2((uint)p.GroupSize);
        int symmetricZero = 1 << (p.Bits - 1);
        float* dots = stackalloc float[4];

        for (int r = start; r < end; r++)
        {
            byte* packedRow = p.Packed + (nint)r * p.RowBytes;
            CodeUnpack.Row(packedRow, p.RowBytes, p.Bits, p.In, codes, vectorBits);
            ConvertScales(p.Scales + (nint)r * gpr, sf, gpr, vectorBits);
            byte* zeros = p.Zeros == null ? null : p.Zeros + (nint)r * gpr;
            if (zeros != null) ScaleTimesZero(sf, zeros, codeOffset, szf, gpr);

            int b = 0;
            for (; b < p.Batch; b += 4)
            {
                int rows = Math.Min(4, p.Batch - b);
                sbyte* x0 = p.Q + (nint)b * p.Padded;
                if (vectorBits >= 128) Dot128(codes, p.Padded, x0, p.Padded, rows, sf, log2G, signed8, dots);
                else DotScalar(codes, p.In, x0, p.Padded, rows, sf, p.GroupSize, gpr, dots);
                for (int k = 0; k < rows; k++)
                {
                    var gs = new ReadOnlySpan<float>(p.GroupSums + (nint)(b + k) * p.GroupStride, gpr);
                    // Symmetric grids share one zero point: sum_g s_g z gs_g = z * dot(s, gs).
                    float correction = zeros == null
                        ? (symmetricZero - codeOffset) * TensorPrimitives.Dot(new ReadOnlySpan<float>(sf, gpr), gs)
                        : TensorPrimitives.Dot(new ReadOnlySpan<float>(szf, gpr), gs);
                    p.Y[(nint)(b + k) * p.Out + r] = p.RowScale[b + k] * (dots[k] - correction);
                }
            }
        }
    }

    /// <summary>destination[g] = scale[g] * (zero[g] - offset).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaleTimesZero(float* scales, byte* zeros, int offset, float* destination, int count)
    {
        int g = 0;
        if (Vector128.IsHardwareAccelerated)
        {
            var off = Vector128.Create(offset);
            for (; g + 4 <= count; g += 4)
            {
                var z = Vector128.CreateScalar(*(uint*)(zeros + g)).AsByte();
                var zi = Vector128.WidenLower(Vector128.WidenLower(z)).AsInt32() - off;
                (Vector128.ConvertToSingle(zi) * Vector128.Load(scales + g)).Store(destination + g);
            }
        }
        for (; g < count; g++) destination[g] = scales[g] * (zeros[g] - offset);
    }

    /// <summary>
    /// float16 to float32: (h &amp; 0x7FFF) &lt;&lt; 13 read as float, times 2^112, is exact for normal and subnormal halves;
    /// the sign bit moves to bit 31 (symmetric scales may be negative).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ConvertScales(Half* scales, float* destination, int count, int vectorBits)
    {
        int g = 0;
        if (vectorBits >= 128)
        {
            var magic = Vector128.Create(5.192297e33f); // 2^112
            var mask = Vector128.Create(0x7FFFu);
            var sign = Vector128.Create(0x8000u);
            for (; g + 8 <= count; g += 8)
            {
                var h = Vector128.Load((ushort*)scales + g);
                var wl = Vector128.WidenLower(h);
                var wh = Vector128.WidenUpper(h);
                var lo = ((wl & mask) << 13) | ((wl & sign) << 16);
                var hi = ((wh & mask) << 13) | ((wh & sign) << 16);
                (lo.AsSingle() * magic).Store(destination + g);
                (hi.AsSingle() * magic).Store(destination + g + 4);
            }
        }
        for (; g < count; g++) destination[g] = (float)scales[g];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot128(byte* codes, int padded, sbyte* x, int xStride, int rows, float* sf, int log2G, bool signed8, float* result)
    {
        int chunks = padded / 16;
        var ones = Vector128.Create((short)1);
        var bias = Vector128.Create((byte)0x80);
        var a = stackalloc float[4];
        for (int k = 0; k < rows; k++)
        {
            sbyte* xr = x + (nint)k * xStride;
            var acc = Vector128<float>.Zero;
            for (int c = 0; c < chunks; c++)
            {
                var u = Vector128.Load(codes + 16 * c);
                var xv = Vector128.Load(xr + 16 * c);
                Vector128<int> lanes;
                if (Ssse3.IsSupported)
                {
                    var weights = u;
                    if (signed8)
                    {
                        var sign = (u ^ bias).AsSByte();
                        weights = Ssse3.Abs(sign);
                        xv = Ssse3.Sign(xv, sign);
                    }
                    lanes = Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(weights, xv), ones);
                }
                else
                {
                    // Portable widening path (e.g. Arm64): exact 16- and 32-bit products.
                    Vector128<short> wl = Vector128.WidenLower(u).AsInt16(), wh = Vector128.WidenUpper(u).AsInt16();
                    if (signed8) { wl -= Vector128.Create((short)128); wh -= Vector128.Create((short)128); }
                    Vector128<short> xl = Vector128.WidenLower(xv), xh = Vector128.WidenUpper(xv);
                    Vector128<short> pl = wl * xl, ph = wh * xh; // |w x| <= 128 * 127 fits 16 bits
                    // Lane j must hold codes 4j..4j+3: pair-sum then pair-sum again.
                    Vector128<int> sl = Vector128.WidenLower(pl) + Vector128.WidenUpper(pl), sh = Vector128.WidenLower(ph) + Vector128.WidenUpper(ph);
                    lanes = Vector128.Create(Vector128.Sum(sl), Vector128.Sum(sh), 0, 0);
                }
                var scale = Vector128.Create(sf[(c << 4) >> log2G]);
                acc = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(lanes), scale, acc);
            }
            a[k] = Vector128.Sum(acc);
        }
        for (int k = 0; k < rows; k++) result[k] = a[k];
    }

    /// <summary>The scalar reference: exact integer dot per group, then acc = fma(dot_g, s_g, acc) over groups in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void DotScalar(byte* codes, int n, sbyte* x, int xStride, int rows, float* sf, int groupSize, int groups, float* result)
    {
        for (int k = 0; k < rows; k++)
        {
            sbyte* xr = x + (nint)k * xStride;
            float acc = 0f;
            for (int g = 0; g < groups; g++)
            {
                int sum = 0;
                for (int i = g * groupSize, e = i + groupSize; i < e; i++) sum += codes[i] * xr[i];
                acc = MathF.FusedMultiplyAdd(sum, sf[g], acc);
            }
            result[k] = acc;
        }
    }
}
