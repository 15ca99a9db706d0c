using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Quantization;

namespace Condense.Kernels.Jit;

/// <summary>
/// Batches of 2 to 15 rows for 8-bit codes with int8 activations: generated AVX-512 VNNI kernels that multiply the
/// codes as stored (one byte each, unsigned: vpdpbusd's first operand as is) and share each weight load across every
/// batch row of a tile. The managed batched kernels they replace need vpmaddubsw + vpmaddwd and the |u - 128| sign
/// trick per 64 codes and batch row; here it is one vpdpbusd.
/// </summary>
/// <remarks>
/// <para>Per 64-code step and weight row: one 64-byte load; lane l of vpdpbusd gets the exact integer sum of codes
/// 4l..4l+3 of the step times their activations, read from a per-call copy of the tile's int8 rows laid out unit by
/// unit (no reordering: 8-bit lanes need no even/odd split). A unit is U = 1, 2 or 4 steps whose integer lanes
/// accumulate before one vcvtdq2ps and one FMA per weight row and batch row with the lanes' group scales: U steps
/// lie in one group when groups are 64 U codes or more, so the float work is once per group (g128: per 128 codes,
/// g256: per 256), not once per step. One group per row accumulates integers over the whole row (no float work
/// in the loop at all; |lane| &lt;= In / 16 x 255 x 128 stays in int32 for rows up to a million codes), in units of
/// the most steps (up to 4) that divide the row.</para>
/// <para>Registers: R weight rows x M batch rows of integer lanes and (unless per row) as many float32 accumulators,
/// R weight vectors, one activation vector, the lane index: R (2M + 1) &lt;= 30, or R (M + 1) &lt;= 30 per row.
/// With one weight row per call (M = 8 with groups) each vpdpbusd takes its activations as a memory operand.</para>
/// <para>Zero points come out after the sums, as in the managed kernels: y = sx (sum - sum_g s_g z_g sum_g q), z = 128
/// when symmetric. The row's tail past its last whole unit is added in managed code, exact per group. Results do not
/// depend on the thread count, R or the tiles: each output's operations and their order depend only on its weight row
/// and batch row. Prefetch: the next block of rows into L2 as one linear front.</para>
/// </remarks>
internal static unsafe class VnniSmallBatch8
{
    /// <summary>Largest batch rows per tile (kernels are made for 1..8).</summary>
    public const int MaxTile = 8;

    /// <summary>
    /// Largest batch rows per tile of a product: 8 with one group per row (R = 3 weight rows per call), else 7 (R = 2).
    /// A tile of 8 with groups leaves registers for one weight row per call, whose every vpdpbusd loads its own 64
    /// activation bytes (8 per 64 weight bytes, from L2 once the tile's 32 KB of activations outgrow L1): hot, one
    /// thread, int8 g32 2048 x 4096 at batch 8 took 1.76 ms against 0.60 at batch 4 (R = 3). Two tiles of 4 reread the
    /// block's 12 rows from cache instead.
    /// </summary>
    public static int TileLimit(bool intOnly) => intOnly ? 8 : 7;

    /// <summary>Codes per step (one 64-byte load).</summary>
    public const int StepCodes = 64;

    private const int BlockRows = 12; // a multiple of every R (1..4)

    /// <summary>Most rows per call for a tile of <paramref name="m"/> batch rows; <paramref name="intOnly"/>: one group per row (no float accumulators).</summary>
    public static int RowsPerCall(int m, bool intOnly) => Math.Min(4, intOnly ? 30 / (m + 1) : 30 / (2 * m + 1));

    /// <summary>
    /// Steps per unit (per conversion) for groups of <paramref name="groupSize"/> codes: a whole group up to 4 steps.
    /// One group per row (<paramref name="groupsPerRow"/> 1) has no conversion in the loop: the most steps (up to 4)
    /// that divide the row, so that no whole step is left to the scalar tail (MiniLM's 384 inputs: 2).
    /// </summary>
    public static int UnitSteps(int groupSize, int groupsPerRow, int inFeatures) =>
        groupsPerRow == 1 ? (inFeatures % 256 == 0 ? 4 : inFeatures % 128 == 0 ? 2 : 1) :
        groupSize % 256 == 0 ? 4 : groupSize % 128 == 0 ? 2 : 1;

    private static readonly Lazy<nint[]?> s_code = new(Build);

    /// <summary>Index of a kernel in the flat code table (a multi-dimensional array's element access is a call through an IL stub).</summary>
    private static int CodeIndex(int variant, int m, int rows) => (variant * (MaxTile + 1) + m) * 5 + rows;

    [ThreadStatic] private static bool t_off;

    /// <summary>Tests and benchmarks: true keeps the calling thread's products off these kernels (on the managed batched kernels).</summary>
    internal static bool DisabledOverride { get => t_off; set => t_off = value; }

    /// <summary>True when the generated kernels run here (<see cref="VnniGemmKernel.CpuSupports"/>, generated code on, pages made).</summary>
    public static bool IsAvailable => KernelOptions.GeneratedCode && VnniGemmKernel.CpuSupports && s_code.Value is not null;

    /// <summary>
    /// True when a product of <paramref name="batch"/> rows runs here: 8-bit codes, 2..15 rows, at least one whole
    /// unit, and one group per row (rows below a million codes: int32 lanes) or groups of a multiple of 4 codes (a
    /// lane never straddles two groups) that divide the unit (every unit's lanes read the same scale pattern).
    /// </summary>
    public static bool Applies(int bits, int groupSize, int groupsPerRow, int inFeatures, int batch, int vectorBits) =>
        bits == 8 && batch is >= 2 and < 16 && vectorBits >= 512 && !t_off &&
        inFeatures >= StepCodes * UnitSteps(groupSize, groupsPerRow, inFeatures) &&
        (groupsPerRow == 1 ? inFeatures <= 1 << 20 : groupSize % 4 == 0 && StepCodes * UnitSteps(groupSize, groupsPerRow, inFeatures) % groupSize == 0) &&
        IsAvailable;

    // Kernel table index: 0/1/2 = U = 1/2/4 with float accumulators, 3/4/5 = the same with int32 lanes only (per row).
    private const int Variants = 6;

    private static int Variant(bool intOnly, int unitSteps) => (intOnly ? 3 : 0) + System.Numerics.BitOperations.Log2((uint)unitSteps);

    private static bool IntOnly(int variant) => variant >= 3;

    private static int VariantSteps(int variant) => 1 << (variant % 3);

    private static nint[]? Build()
    {
        if (!VnniGemmKernel.CpuSupports) return null;
        var a = new X86Assembler();
        var offsets = new int[Variants, MaxTile + 1, 5];
        for (int v = 0; v < Variants; v++)
            for (int m = 1; m <= MaxTile; m++)
                for (int r = 1; r <= RowsPerCall(m, IntOnly(v)); r++)
                {
                    while (a.Position % 64 != 0) a.Ret();
                    offsets[v, m, r] = a.Position;
                    Emit(a, r, m, VariantSteps(v), IntOnly(v));
                }
        var pages = (nint)ExecutableMemory.TryCreate(a.ToArray());
        if (pages == 0) return null;
        var code = new nint[Variants * (MaxTile + 1) * 5];
        for (int v = 0; v < Variants; v++)
            for (int m = 1; m <= MaxTile; m++)
                for (int r = 1; r <= RowsPerCall(m, IntOnly(v)); r++) code[CodeIndex(v, m, r)] = pages + offsets[v, m, r];
        return code;
    }

    private static Zmm Z(int index) => new(index);

    private static readonly Gpr[] s_rowPointers = [Gpr.Rsi, Gpr.R10, Gpr.R11, Gpr.Rbx];
    private static readonly Gpr[] s_scalePointers = [Gpr.R12, Gpr.R13, Gpr.R14, Gpr.R15];

    /// <summary>
    /// The kernel for <paramref name="rows"/> weight rows x <paramref name="m"/> batch rows and units of
    /// <paramref name="unitSteps"/> steps (arguments: <see cref="SmallBatchArgs"/>, Steps = whole units). zmm: 0..R-1
    /// weights (then the lane scales), R.. integer lanes, then float accumulators; 30 activations, 31 lane index.
    /// Output: Acc[r][m][16], float32 lane sums, or int32 lanes when <paramref name="intOnly"/>.
    /// </summary>
    internal static void Emit(X86Assembler a, int rows, int m, int unitSteps, bool intOnly)
    {
        int lanes = rows * m;
        if (rows < 1 || rows > 4 || rows + (intOnly ? 1 : 2) * lanes > 30)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "Too many accumulators for the registers.");
        Gpr[] w = s_rowPointers, s = s_scalePointers;
        EmitProlog(a, rows);
        int int0 = rows, float0 = rows + lanes;
        Zmm x = Z(30), index = Z(31);
        for (int i = 0; i < lanes; i++) a.Vpxord(Z(int0 + i), Z(int0 + i), Z(int0 + i));
        if (!intOnly)
        {
            // The float accumulators start from Acc (zeros, or the negated zero-point correction lanes: VnniSmallBatch4.FusedEpilogue).
            a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 48));
            for (int i = 0; i < lanes; i++) a.Vmovups(Z(float0 + i), new Mem(Gpr.R9, 64 * i));
        }

        int unitBytes = StepCodes * unitSteps;
        int loop = a.Position;
        // The next block's rows into L2 as one linear front (session 9). prefetcht0 6 KB ahead of each row (the 4-bit
        // kernels' choice) did not win here (session 11: with 4 KB rows it lands inside the call's own rows).
        for (int i = 0; i < rows * unitBytes; i += 64) a.Prefetcht1(new Mem(Gpr.Rax, i));
        for (int u = 0; u < unitSteps; u++)
        {
            for (int r = 0; r < rows; r++) a.Vmovdqu32(Z(r), new Mem(w[r], 64 * u));
            for (int c = 0; c < m; c++)
            {
                var activations = new Mem(Gpr.Rdx, c * unitBytes + 64 * u);
                if (rows == 1)
                {
                    a.Vpdpbusd(Z(int0 + c), Z(0), activations);
                    continue;
                }
                a.Vmovdqu32(x, activations);
                for (int r = 0; r < rows; r++) a.Vpdpbusd(Z(int0 + r * m + c), Z(r), x);
            }
        }
        if (!intOnly)
        {
            // One conversion and FMA per unit (a group, or the lanes' groups of one step), weight row and batch row.
            for (int r = 0; r < rows; r++) a.Vpermps(Z(r), index, new Mem(s[r], 0));
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < m; c++)
                {
                    Zmm lane = Z(int0 + r * m + c);
                    a.Vcvtdq2ps(lane, lane);
                    a.Vfmadd231ps(Z(float0 + r * m + c), lane, Z(r));
                    a.Vpxord(lane, lane, lane);
                }
            for (int r = 0; r < rows; r++) a.Add(s[r], Gpr.R8);
        }
        for (int r = 0; r < rows; r++) a.AddImm(w[r], unitBytes);
        a.AddImm(Gpr.Rax, rows * unitBytes);
        a.AddImm(Gpr.Rdx, m * unitBytes);
        a.Dec(Gpr.Rcx);
        a.JnzBack(loop);

        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 48));
        int first = intOnly ? int0 : float0;
        for (int i = 0; i < lanes; i++) a.Vmovdqu32(new Mem(Gpr.Rax, 64 * i), Z(first + i));
        a.Vzeroupper();
        a.Pop(Gpr.R15); a.Pop(Gpr.R14); a.Pop(Gpr.R13); a.Pop(Gpr.R12); a.Pop(Gpr.Rbx);
        a.Ret();
    }

    /// <summary>Saves rbx, r12-r15; loads the arguments; sets up the row and scale pointers, the prefetch front (rax) and the lane index (zmm31).</summary>
    private static void EmitProlog(X86Assembler a, int rows)
    {
        Gpr[] w = s_rowPointers, s = s_scalePointers;
        a.Push(Gpr.Rbx); a.Push(Gpr.R12); a.Push(Gpr.R13); a.Push(Gpr.R14); a.Push(Gpr.R15);
        a.MovLoad(Gpr.Rsi, new Mem(Gpr.Rdi, 0));
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 8));
        a.MovLoad(Gpr.Rdx, new Mem(Gpr.Rdi, 16));
        a.MovLoad(Gpr.R12, new Mem(Gpr.Rdi, 24));
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 32));
        a.MovLoad(Gpr.Rcx, new Mem(Gpr.Rdi, 40));
        a.MovLoad(Gpr.R8, new Mem(Gpr.Rdi, 64));
        for (int r = 1; r < rows; r++)
        {
            a.Mov(w[r], w[r - 1]); a.Add(w[r], Gpr.R9);
            a.Mov(s[r], s[r - 1]); a.Add(s[r], Gpr.Rax);
        }
        a.MovLoad(Gpr.Rax, new Mem(Gpr.Rdi, 80));
        a.MovLoad(Gpr.R9, new Mem(Gpr.Rdi, 56));
        a.Vmovdqu32(Z(31), new Mem(Gpr.R9, 0));
    }

    private static void Call(int variant, int m, int rows, SmallBatchArgs* args) =>
        ((delegate* unmanaged[SuppressGCTransition]<SmallBatchArgs*, void>)s_code.Value![CodeIndex(variant, m, rows)])(args);

    private struct Args
    {
        public byte* Packed;
        public Half* Scales;
        public byte* Zeros;
        public int GroupSize, GroupsPerRow, RowBytes, Out, In, Batch, Units, UnitSteps, Tiles;
        public bool IntOnly;
        public sbyte* Q, X;
        public int Padded, GroupStride;
        public float* RowScale, GroupSums, Y;
    }

    private struct Body : IRangeBody
    {
        public Args A;

        public readonly void Invoke(int start, int end)
        {
            for (int block = start; block < end; block++) Block(A, block);
        }
    }

    [ThreadStatic] private static float[]? t_scratch;

    /// <summary>Tile t of a batch split into <paramref name="tiles"/> tiles of nearly equal size: its first row and its rows.</summary>
    private static (int First, int Rows) Tile(int batch, int tiles, int t)
    {
        int size = batch / tiles, extra = batch % tiles;
        return (t * size + Math.Min(t, extra), size + (t < extra ? 1 : 0));
    }

    /// <summary>
    /// y[b, o] = sx_b (sum_k s_g(k) u[o, k] q[b, k] - sum_g s_g z_g sum_g q[b]) for 8-bit codes: <paramref name="q"/> holds
    /// the batch's int8 rows in natural order (row b at q + b * <paramref name="padded"/>), <paramref name="groupSums"/>
    /// their group sums (row b at groupSums + b * <paramref name="groupStride"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(in PackedWeightView w, sbyte* q, int padded, float* rowScale, float* groupSums, int groupStride, float* y, int batch)
    {
        int unitSteps = UnitSteps(w.GroupSize, w.GroupsPerRow, w.In), unit = unitSteps * StepCodes;
        int units = w.In / unit;
        int limit = TileLimit(w.GroupsPerRow == 1), tiles = (batch + limit - 1) / limit;
        long xBytes = (long)batch * units * unit;
        byte[] xBuffer = System.Buffers.ArrayPool<byte>.Shared.Rent(checked((int)xBytes + 64));
        try
        {
            fixed (byte* xb = xBuffer)
            {
                sbyte* x = (sbyte*)(((nint)xb + 63) & ~(nint)63);
                // Tile t (rows [b0, b0 + M)) at x + b0 * units * unit: unit j, row c at + (j M + c) unit, codes in order.
                for (int t = 0; t < tiles; t++)
                {
                    var (b0, rows) = Tile(batch, tiles, t);
                    sbyte* tile = x + (nint)b0 * units * unit;
                    for (int c = 0; c < rows; c++)
                    {
                        sbyte* src = q + (nint)(b0 + c) * padded;
                        for (int j = 0; j < units; j++)
                            Buffer.MemoryCopy(src + (nint)j * unit, tile + ((nint)j * rows + c) * unit, unit, unit);
                    }
                }
                var body = new Body
                {
                    A = new Args
                    {
                        Packed = w.Packed, Scales = w.Scales, Zeros = w.Zeros, GroupSize = w.GroupsPerRow == 1 ? w.In : w.GroupSize,
                        GroupsPerRow = w.GroupsPerRow, RowBytes = w.RowBytes, Out = w.Out, In = w.In, Batch = batch, Units = units,
                        UnitSteps = unitSteps, IntOnly = w.GroupsPerRow == 1, Tiles = tiles, Q = q, X = x, Padded = padded,
                        GroupStride = groupStride, RowScale = rowScale, GroupSums = groupSums, Y = y,
                    },
                };
                int count = (w.Out + BlockRows - 1) / BlockRows;
                int degree = (long)w.Out * w.In * batch < (1 << 16) ? 1 : int.MaxValue;
                WorkerPool.Shared.For(count, ref body, degree);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(xBuffer);
        }
    }

    /// <summary>Weight rows [12 block, 12 block + 12) for every batch row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block(in Args a, int block)
    {
        int o0 = block * BlockRows, rows = Math.Min(BlockRows, a.Out - o0);
        int gpr = a.GroupsPerRow, g = a.GroupSize, units = a.Units, unit = a.UnitSteps * StepCodes;
        // Lane scales: the row's float32 scales as they are, advanced unit / G per unit; lane l takes group 4l / G of
        // the unit's first step (0 for groups of a whole unit). One group per row has no scales in the loop.
        int need = BlockRows * MaxTile * 16 + 2 * (rows * gpr + 16) + 16;
        var scratch = t_scratch;
        if (scratch is null || scratch.Length < need) t_scratch = scratch = GC.AllocateArray<float>(Math.Max(need, 4096), pinned: true);
        float* acc = (float*)(((nint)Unsafe.AsPointer(ref scratch[0]) + 63) & ~(nint)63);
        float* sf = acc + BlockRows * MaxTile * 16;        // [rows][gpr] float32 scales, then 16 floats of padding (vpermps reads 16)
        float* szf = sf + rows * gpr + 16;                 // [rows][gpr] s_g * z_g
        // [rows][gpr] with no gap, as the block's float16 scales and zero points are: one stream each.
        VnniSmallBatch4.ConvertScales(a.Scales + (nint)o0 * gpr, sf, rows * gpr);
        VnniSmallBatch4.ScaleTimesZero(sf, a.Zeros == null ? null : a.Zeros + (nint)o0 * gpr, 128f, szf, rows * gpr);
        new Span<float>(sf + rows * gpr, 16).Clear();

        int* index = stackalloc int[16];
        for (int l = 0; l < 16; l++) index[l] = a.IntOnly ? 0 : 4 * l / g;
        SmallBatchArgs args = default;
        args.RowBytes = a.RowBytes;
        args.ScaleStride = (long)gpr * sizeof(float);
        args.ScaleAdvance = (a.IntOnly ? 0 : unit / g) * sizeof(float);
        args.Index = index;
        args.Steps = units;
        int tailStart = units * unit;
        int variant = Variant(a.IntOnly, a.UnitSteps);

        byte* nextBlock = a.Packed + (nint)(o0 + BlockRows) * a.RowBytes;
        bool fused = !a.IntOnly && VnniSmallBatch4.FusedEpilogue;
        float* sums = stackalloc float[BlockRows * MaxTile];
        if (fused) VnniSmallBatch4.PrefetchScales(a.Scales, a.Zeros, o0 + BlockRows, a.Out, gpr);
        for (int t = 0; t < a.Tiles; t++)
        {
            var (b0, m) = Tile(a.Batch, a.Tiles, t);
            int perCall = RowsPerCall(m, a.IntOnly);
            args.X = a.X + (nint)b0 * units * unit;
            byte* front = nextBlock;
            if (fused) VnniSmallBatch4.StartCorrections(acc, szf, gpr, a.GroupSums + (nint)b0 * a.GroupStride, a.GroupStride, rows, m);
            else if (!a.IntOnly) new Span<float>(acc, rows * m * 16).Clear();
            for (int r0 = 0; r0 < rows; r0 += perCall)
            {
                int n = Math.Min(perCall, rows - r0);
                args.W = a.Packed + (nint)(o0 + r0) * a.RowBytes;
                args.S = sf + r0 * gpr;
                args.Acc = acc + r0 * m * 16;
                args.Front = front;
                front += (nint)n * units * unit;
                Call(variant, m, n, &args);
            }
            if (fused)
            {
                for (int i = 0; i < rows * m; i += 16) VnniSmallBatch4.ReduceLanes16(acc + i * 16, sums + i);
                // (Every group's correction is in the sums: StartCorrections takes a row's partial chunk too.)
                for (int r = 0; r < rows; r++)
                {
                    int o = o0 + r;
                    for (int c = 0; c < m; c++)
                    {
                        int b = b0 + c;
                        float dot = sums[r * m + c];
                        if (tailStart < a.In) dot += Tail(a, o, b, tailStart, sf + r * gpr);
                        a.Y[(nint)b * a.Out + o] = a.RowScale[b] * dot;
                    }
                }
                continue;
            }
            for (int r = 0; r < rows; r++)
            {
                int o = o0 + r;
                for (int c = 0; c < m; c++)
                {
                    int b = b0 + c;
                    float* lanes = acc + (r * m + c) * 16;
                    float dot;
                    if (a.IntOnly)
                    {
                        // One group per row: the whole row's exact integer sum, scaled once.
                        long sum = Vector512.Sum(Vector512.WidenLower(Vector512.Load((int*)lanes)) + Vector512.WidenUpper(Vector512.Load((int*)lanes)));
                        if (tailStart < a.In) sum += TailSum(a, o, b, tailStart, a.In);
                        dot = sum * sf[r * gpr];
                    }
                    else
                    {
                        dot = Vector512.Sum(Vector512.Load(lanes));
                        if (tailStart < a.In) dot += Tail(a, o, b, tailStart, sf + r * gpr);
                    }
                    float correction = Dot(szf + r * gpr, a.GroupSums + (nint)b * a.GroupStride, gpr);
                    a.Y[(nint)b * a.Out + o] = a.RowScale[b] * (dot - correction);
                }
            }
        }
    }

    /// <summary>sum_g a[g] b[g] in 16 float32 lanes (fixed order for a given count), then the lanes added.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int count)
    {
        var sum = Vector512<float>.Zero;
        int g = 0;
        for (; g + 16 <= count; g += 16) sum = Vector512.FusedMultiplyAdd(Vector512.Load(a + g), Vector512.Load(b + g), sum);
        float result = Vector512.Sum(sum);
        for (; g < count; g++) result = MathF.FusedMultiplyAdd(a[g], b[g], result);
        return result;
    }

    /// <summary>The exact integer sum of codes [start, end) of row o times batch row b's activations.</summary>
    private static long TailSum(in Args a, int o, int b, int start, int end)
    {
        byte* row = a.Packed + (nint)o * a.RowBytes;
        sbyte* x = a.Q + (nint)b * a.Padded;
        long sum = 0;
        for (int k = start; k < end; k++) sum += row[k] * x[k];
        return sum;
    }

    /// <summary>Codes [start, In) of row o times batch row b: exact integer sums per group, each times its scale.</summary>
    private static float Tail(in Args a, int o, int b, int start, float* sf)
    {
        float result = 0f;
        for (int k = start; k < a.In;)
        {
            int group = k / a.GroupSize;
            int end = Math.Min(a.In, (group + 1) * a.GroupSize);
            result = MathF.FusedMultiplyAdd(TailSum(a, o, b, k, end), sf[group], result);
            k = end;
        }
        return result;
    }
}
