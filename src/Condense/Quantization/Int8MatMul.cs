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
/// With AVX-512 <see cref="FusedInt8Dot"/> decodes the packed rows in registers; the other widths unpack every
/// weight row once per call into one byte per code (L1-resident).
/// </summary>
/// <remarks>
/// <para>With row scale sx, codes u, zero point z and group scale s:
/// y[b, o] = sx * (sum_g s_g * dot_g(u, q) - sum_g s_g * z_g * sum_g(q)), the zero point folded through the
/// per-group input sums computed once per call.</para>
/// <para>Every SIMD chunk of 64 (32, 16) codes yields 16 (8, 4) integer lane sums of 4 consecutive codes; each lane
/// lies inside one group (G &gt;= 16), so the lanes are converted to float and multiplied by their group's scale
/// (a permute of the row's float scales). Integer sums are exact; only the float accumulation order depends on
/// the vector width. Threads split weight rows, so results do not depend on the thread count.</para>
/// <para>8-bit codes reach 255, which would saturate the 16-bit pair sums of vpmaddubsw: those paths multiply
/// |u - 128| by the input with u - 128's sign, and fold the 128 into the zero point.</para>
/// </remarks>
internal static unsafe class Int8MatMul
{
    private const long SerialWork = 1 << 16;

    [ThreadStatic] private static byte[]? t_scratch;

    public ref struct Weight
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros; // null when symmetric
        public int Bits, GroupSize, GroupsPerRow, RowBytes, Out, In;
    }

    /// <summary>Runs the product; false (y untouched) when an input row holds a NaN or infinity.</summary>
    public static bool Run(in Weight w, float* x, float* y, int batch)
    {
        int bits = KernelOptions.VectorBits;
        bool fused = bits == 512 && FusedInt8Dot.IsSupported(w.Bits);
        int natural = CodeUnpack.PaddedLength(w.In);
        int unit = fused ? FusedInt8Dot.UnitCodes(w.Bits) : 64;
        int padded = (w.In + unit - 1) / unit * unit;
        // Group sums padded to 16 with zeros: the fused kernel folds the zero points 16 groups at a time.
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
                for (int b = 0; b < batch; b++)
                {
                    sbyte* qr = q + (nint)b * padded;
                    rowScale[b] = Int8Activations.QuantizeRow(x + (nint)b * w.In, w.In, w.GroupSize, qr, groupSums + (nint)b * groupStride, bits);
                    if (float.IsNaN(rowScale[b])) return false;
                    if (fused)
                    {
                        new Span<sbyte>(qr + natural, padded - natural).Clear();
                        FusedInt8Dot.Interleave(qr, padded, FusedInt8Dot.Parts(w.Bits));
                    }
                }

                int degree = (long)w.Out * w.In * batch < SerialWork ? 1 : int.MaxValue;
                if (fused)
                {
                    var args = new FusedInt8Dot.Args
                    {
                        Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, Bits = w.Bits, GroupSize = w.GroupSize,
                        GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes, Out = w.Out, In = w.In, Batch = batch,
                        Q = q, Padded = padded, RowScale = rowScale, GroupSums = groupSums, GroupStride = groupStride,
                        CodeOffset = FusedInt8Dot.CodeOffset(w.Bits, batch, w.GroupSize, w.GroupsPerRow), Y = y,
                    };
                    var fusedBody = new FusedBody { Args = args };
                    WorkerPool.Shared.For(w.Out, ref fusedBody, degree);
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

    private struct FusedBody : IRangeBody
    {
        public FusedInt8Dot.Args Args;

        public readonly void Invoke(int start, int end) => FusedInt8Dot.Rows(Args, start, end);
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
        bool vnni256 = vectorBits == 256 && AvxVnni.IsSupported;
        // Paths built on vpmaddubsw multiply |u - 128| for 8-bit codes (see remarks); the fold adds the 128 back.
        int codeOffset = p.Bits == 8 && vectorBits >= 128 && !vnni256 ? 128 : 0;
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
                if (vectorBits == 512) Dot512(codes, p.Padded, x0, p.Padded, rows, sf, log2G, signed8, dots);
                else if (vectorBits == 256) Dot256(codes, p.Padded, x0, p.Padded, rows, sf, log2G, signed8, vnni256, dots);
                else if (vectorBits == 128) Dot128(codes, p.Padded, x0, p.Padded, rows, sf, log2G, signed8, dots);
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

    /// <summary>float16 to float32: (h &amp; 0x7FFF) &lt;&lt; 13 read as float, times 2^112, is exact for normal and subnormal halves.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ConvertScales(Half* scales, float* destination, int count, int vectorBits)
    {
        int g = 0;
        if (vectorBits >= 128)
        {
            var magic = Vector128.Create(5.192297e33f); // 2^112
            var mask = Vector128.Create(0x7FFFu);
            for (; g + 8 <= count; g += 8)
            {
                var h = Vector128.Load((ushort*)scales + g);
                var lo = (Vector128.WidenLower(h) & mask) << 13;
                var hi = (Vector128.WidenUpper(h) & mask) << 13;
                (lo.AsSingle() * magic).Store(destination + g);
                (hi.AsSingle() * magic).Store(destination + g + 4);
            }
        }
        for (; g < count; g++) destination[g] = (float)scales[g];
    }

    private static readonly Vector512<int>[] s_index512 = [Index512(4), Index512(5), Index512(6)];
    private static readonly Vector256<int>[] s_index256 = [Index256(4), Index256(5)];

    private static Vector512<int> Index512(int log2G)
    {
        var a = new int[16];
        for (int j = 0; j < 16; j++) a[j] = (4 * j) >> log2G;
        return Vector512.Create(a);
    }

    private static Vector256<int> Index256(int log2G)
    {
        var a = new int[8];
        for (int j = 0; j < 8; j++) a[j] = (4 * j) >> log2G;
        return Vector256.Create(a);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot512(byte* codes, int padded, sbyte* x, int xStride, int rows, float* sf, int log2G, bool signed8, float* result)
    {
        int chunks = padded / 64;
        var ones = Vector512.Create((short)1);
        sbyte* x0 = x, x1 = x + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
        var a0 = Vector512<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
        if (log2G >= 6)
        {
            // Groups of 64 codes or more: integer lanes accumulate over the whole group (or 4096 chunks of a
            // row group, far from overflow) and are scaled once.
            int span = log2G == 31 ? 4096 : 1 << (log2G - 6);
            for (int c0 = 0; c0 < chunks; c0 += span)
            {
                int c1 = Math.Min(chunks, c0 + span);
                var i0 = Vector512<int>.Zero; var i1 = i0; var i2 = i0; var i3 = i0;
                for (int c = c0; c < c1; c++)
                {
                    var weights = Weights512(codes, c, signed8, out var negative);
                    i0 += Lanes512(weights, Vector512.Load(x0 + 64 * c), signed8, negative, ones);
                    if (rows > 1) i1 += Lanes512(weights, Vector512.Load(x1 + 64 * c), signed8, negative, ones);
                    if (rows > 2) i2 += Lanes512(weights, Vector512.Load(x2 + 64 * c), signed8, negative, ones);
                    if (rows > 3) i3 += Lanes512(weights, Vector512.Load(x3 + 64 * c), signed8, negative, ones);
                }
                var scale = Vector512.Create(sf[(c0 << 6) >> log2G]);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i0), scale, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i1), scale, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i2), scale, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(i3), scale, a3);
            }
        }
        else
        {
            // Groups of 16 or 32 codes: each chunk's 16 lanes get their own group's scale.
            Vector512<int> index = s_index512[log2G - 4];
            for (int c = 0; c < chunks; c++)
            {
                var scale = Avx512F.PermuteVar16x32(Vector512.Load(sf + ((c << 6) >> log2G)), index);
                var weights = Weights512(codes, c, signed8, out var negative);
                a0 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes512(weights, Vector512.Load(x0 + 64 * c), signed8, negative, ones)), scale, a0);
                if (rows > 1) a1 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes512(weights, Vector512.Load(x1 + 64 * c), signed8, negative, ones)), scale, a1);
                if (rows > 2) a2 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes512(weights, Vector512.Load(x2 + 64 * c), signed8, negative, ones)), scale, a2);
                if (rows > 3) a3 = Vector512.FusedMultiplyAdd(Vector512.ConvertToSingle(Lanes512(weights, Vector512.Load(x3 + 64 * c), signed8, negative, ones)), scale, a3);
            }
        }
        result[0] = Vector512.Sum(a0); result[1] = Vector512.Sum(a1); result[2] = Vector512.Sum(a2); result[3] = Vector512.Sum(a3);
    }

    /// <summary>Chunk c's 64 unpacked codes (8 bits: |u - 128| with the sign of u - 128 in <paramref name="negative"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Weights512(byte* codes, int c, bool signed8, out Vector512<sbyte> negative)
    {
        negative = default;
        var u = Vector512.Load(codes + 64 * c);
        if (!signed8) return u;
        var s = (u ^ Vector512.Create((byte)0x80)).AsSByte();
        negative = Vector512.LessThan(s, Vector512<sbyte>.Zero);
        return Vector512.Abs(s).AsByte();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Lanes512(Vector512<byte> weights, Vector512<sbyte> x, bool signed8, Vector512<sbyte> negative, Vector512<short> ones)
    {
        if (signed8) x = Vector512.ConditionalSelect(negative, -x, x);
        return Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(weights, x), ones);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot256(byte* codes, int padded, sbyte* x, int xStride, int rows, float* sf, int log2G, bool signed8, bool vnni, float* result)
    {
        int chunks = padded / 32;
        Vector256<int> index = log2G == 4 ? s_index256[0] : Vector256<int>.Zero;
        var ones = Vector256.Create((short)1);
        var bias = Vector256.Create((byte)0x80);
        sbyte* x0 = x, x1 = x + xStride, x2 = x1 + xStride, x3 = x2 + xStride;
        var a0 = Vector256<float>.Zero; var a1 = a0; var a2 = a0; var a3 = a0;
        for (int c = 0; c < chunks; c++)
        {
            var u = Vector256.Load(codes + 32 * c);
            var scale = Avx2.PermuteVar8x32(Vector256.Load(sf + ((c << 5) >> log2G)), index);
            Vector256<byte> weights = u;
            Vector256<sbyte> sign = default;
            if (signed8)
            {
                sign = (u ^ bias).AsSByte();
                weights = Vector256.Abs(sign).AsByte();
            }
            a0 = Lane256(weights, Vector256.Load(x0 + 32 * c), signed8, sign, vnni, ones, scale, a0);
            if (rows > 1) a1 = Lane256(weights, Vector256.Load(x1 + 32 * c), signed8, sign, vnni, ones, scale, a1);
            if (rows > 2) a2 = Lane256(weights, Vector256.Load(x2 + 32 * c), signed8, sign, vnni, ones, scale, a2);
            if (rows > 3) a3 = Lane256(weights, Vector256.Load(x3 + 32 * c), signed8, sign, vnni, ones, scale, a3);
        }
        result[0] = Vector256.Sum(a0); result[1] = Vector256.Sum(a1); result[2] = Vector256.Sum(a2); result[3] = Vector256.Sum(a3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Lane256(Vector256<byte> weights, Vector256<sbyte> x, bool signed8, Vector256<sbyte> sign, bool vnni, Vector256<short> ones, Vector256<float> scale, Vector256<float> acc)
    {
        Vector256<int> lanes;
        if (vnni)
        {
            // vpdpbusd: unsigned codes times signed inputs, summed in 32 bits without saturation.
            lanes = AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, weights, x);
        }
        else
        {
            if (signed8) x = Avx2.Sign(x, sign);
            lanes = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(weights, x), ones);
        }
        return Vector256.FusedMultiplyAdd(Vector256.ConvertToSingle(lanes), scale, acc);
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
