using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>
/// A Fastfood random projection P: R^d -> R^D (Le, Sarlos, Smola 2013), as used for random-subspace training
/// (Li et al. 2018, intrinsic dimension): ceil(D / L) stacked blocks V = (1/sqrt(L)) S H G Pi H B of size L, the
/// next power of two &gt;= d, with the input zero-padded to L and the output truncated to D. B is random +-1, Pi a
/// random permutation built from cache- and register-sized pieces (below), G Gaussian and S rescales row i to a
/// chi(L)-distributed norm, so P's entries behave like independent N(0, 1) draws. The diagonals come from the seed
/// alone: same seed, same projection; the D x d matrix is never formed. Each Apply costs 2 FWHTs of length L per block.
/// <para>Pi views the vector as an R x C matrix (C = R or 2R) cut into blocks of W = min(16, R) consecutive floats.
/// It shuffles each row (a random order of the row's blocks, and inside each block one of 256 random lane
/// permutations, chosen at random per block), transposes, and shuffles each row of the C x R result the same way
/// with its own draws. Output (c, r) thus reads one element of every source row, at independent random offsets.
/// Each step moves whole 16-float blocks through registers (a lane permutation and a 16 x 16 transpose), where a
/// flat random permutation of 2^20 floats is a random gather over 4 MiB; it is still an exact permutation, so the
/// adjoint applies the inverse steps.</para>
/// <para>A block costs four passes over L floats: B and the FWHT stages that fit in L2 (512 KiB blocks); the
/// remaining FWHT stages; Pi and G, W rows at a time through a small per-thread buffer, with the second FWHT's
/// in-L2 stages; its remaining stages with S (B for the adjoint) on the way out. The output doubles as a work buffer
/// when it holds the whole block. Every path (AVX-512, AVX2, SSE, scalar) gives the same bits: the FWHT stages run in
/// the same order per element, Pi is exact and each diagonal is one rounded multiply. Long blocks (L &gt;= 2^16)
/// split each pass over the shared <see cref="WorkerPool"/>.</para>
/// </summary>
public sealed unsafe class Fastfood
{
    // Lane permutations per block of Pi: a choice costs one byte per 16 floats and the table stays in L1.
    private const int LaneTables = 256;

    // Shortest block length that splits its passes over the worker pool: below it a pass is a few microseconds.
    private const int ParallelLength = 1 << 16;

    // B as bits (1 = -1), G as bfloat16, S as a float base plus bfloat16 deviations: 4.1 MiB at L = 2^20 instead of
    // 12 MiB of floats, which keeps the whole working set of a call in L3 (deviations are ~1e-3 of S for large L, so S
    // keeps about 20 significant bits).
    private readonly ulong[][] _signBits;
    private readonly ushort[][] _gaussians;
    private readonly ushort[][] _gaussiansAdjoint; // G moved through Pi^T (bfloat16): the adjoint applies it after Pi^T, reading it in order
    private readonly float[] _scaleBase;
    private readonly ushort[][] _scaleDeviations;
    private readonly int[][] _rowCodes;    // per row of the R x C view and block: (block order << 8) | lane table
    private readonly int[][] _columnCodes; // the same for the C x R transposed view
    private readonly int[][] _columnInverse; // per row of the C x R view and target block: (source block << 8) | lane table
    private readonly int[][] _lanes;       // LaneTables permutations of W lanes
    private readonly int[][] _lanesInverse;
    private readonly int _rows, _columns, _width;

    /// <summary>Draws the projection's diagonals and permutations from <paramref name="seed"/>.</summary>
    /// <param name="inputDimension">d &gt;= 1.</param>
    /// <param name="outputDimension">D &gt;= d.</param>
    /// <param name="seed">Same seed, same projection.</param>
    /// <exception cref="ArgumentException">d &lt; 1, D &lt; d, or d above 2^30.</exception>
    public Fastfood(int inputDimension, int outputDimension, ulong seed)
    {
        if (inputDimension < 1 || inputDimension > 1 << 30)
            throw new ArgumentException(Invariant($"inputDimension is {inputDimension}; expected 1..2^30"), nameof(inputDimension));
        if (outputDimension < inputDimension)
            throw new ArgumentException(Invariant($"outputDimension is {outputDimension}; expected at least inputDimension = {inputDimension}"), nameof(outputDimension));
        InputDimension = inputDimension;
        OutputDimension = outputDimension;
        Seed = seed;
        BlockLength = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)inputDimension);
        BlockCount = (int)(((long)outputDimension + BlockLength - 1) / BlockLength);

        int l = BlockLength;
        var rng = new Rng(seed);
        int log = System.Numerics.BitOperations.Log2((uint)l);
        _columns = 1 << ((log + 1) / 2);
        _rows = l / _columns;
        _width = Math.Min(16, _rows);
        _signBits = new ulong[BlockCount][];
        _rowCodes = new int[BlockCount][];
        _columnCodes = new int[BlockCount][];
        _columnInverse = new int[BlockCount][];
        _lanes = new int[BlockCount][];
        _lanesInverse = new int[BlockCount][];
        _gaussians = new ushort[BlockCount][];
        _gaussiansAdjoint = new ushort[BlockCount][];
        _scaleBase = new float[BlockCount];
        _scaleDeviations = new ushort[BlockCount][];
        for (int k = 0; k < BlockCount; k++)
        {
            var signs = new ulong[(l + 63) / 64];
            for (int i = 0; i < l; i++) signs[i >> 6] |= (rng.NextUInt64() & 1) << (i & 63);
            _rowCodes[k] = Codes(rng, _rows, _columns / _width);
            _columnCodes[k] = Codes(rng, _columns, _rows / _width);
            _columnInverse[k] = InverseCodes(_columnCodes[k], _columns, _rows / _width);
            (_lanes[k], _lanesInverse[k]) = LanePermutations(rng, _width);
            var gaussians = new ushort[l];
            double frobenius = 0;
            for (int i = 0; i < l; i++)
            {
                gaussians[i] = ToBFloat16(rng.NextGaussian());
                double g = FromBFloat16(gaussians[i]);
                frobenius += g * g;
            }
            // Row norms of H G Pi H B are sqrt(L) ||G||_F; S brings row i to s_i ~ chi(L), like a Gaussian row.
            double normalize = 1 / (Math.Sqrt(frobenius) * Math.Sqrt(l));
            var scales = new double[l];
            for (int i = 0; i < l; i++) scales[i] = Math.Sqrt(2 * Gamma(rng, l / 2.0)) * normalize;
            float scaleBase = (float)scales.Average();
            var deviations = new ushort[l];
            for (int i = 0; i < l; i++) deviations[i] = ToBFloat16((float)(scales[i] - scaleBase));
            _signBits[k] = signs;
            _gaussians[k] = gaussians;
            var map = Permutation(k);
            var adjoint = new ushort[l];
            for (int i = 0; i < l; i++) adjoint[map[i]] = gaussians[i];
            _gaussiansAdjoint[k] = adjoint;
            _scaleBase[k] = scaleBase;
            _scaleDeviations[k] = deviations;
        }
    }

    /// <summary>d: the input length of <see cref="Apply"/>.</summary>
    public int InputDimension { get; }

    /// <summary>D: the output length of <see cref="Apply"/>.</summary>
    public int OutputDimension { get; }

    /// <summary>The seed the projection was drawn from.</summary>
    public ulong Seed { get; }

    /// <summary>L: the next power of two &gt;= d.</summary>
    public int BlockLength { get; }

    /// <summary>ceil(D / L).</summary>
    public int BlockCount { get; }

    /// <summary>y = P x: d values in, D values out.</summary>
    /// <exception cref="ArgumentException">A length other than d or D (named).</exception>
    public void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        CheckLength(x.Length, InputDimension, nameof(x), "InputDimension d");
        CheckLength(y.Length, OutputDimension, nameof(y), "OutputDimension D");
        Run(x, y, transpose: false);
    }

    /// <summary>x = P^T y, the exact adjoint of <see cref="Apply"/>: D values in, d values out.</summary>
    /// <exception cref="ArgumentException">A length other than D or d (named).</exception>
    public void ApplyTranspose(ReadOnlySpan<float> y, Span<float> x)
    {
        CheckLength(y.Length, OutputDimension, nameof(y), "OutputDimension D");
        CheckLength(x.Length, InputDimension, nameof(x), "InputDimension d");
        Run(y, x, transpose: true);
    }

    /// <summary>Pi of block <paramref name="block"/> as an index map: (Pi v)[i] = v[map[i]] (for tests and references).</summary>
    internal int[] Permutation(int block)
    {
        int l = BlockLength, w = _width, rows = _rows, columns = _columns;
        int[] rowCodes = _rowCodes[block], columnCodes = _columnCodes[block], lanes = _lanes[block];
        var map = new int[l];
        for (int i = 0; i < l; i++)
        {
            // Output (c, r) of the C x R result takes u[c, rho_c(r)], u[c, r'] = t[r', c], t[r', c] = a[r', sigma_r'(c)].
            int c = i / rows, code = columnCodes[i / w], source = (code >> 8) * w + lanes[(code & 255) * w + i % w];
            int r = source, rowCode = rowCodes[(r * columns + c) / w];
            map[i] = r * columns + (rowCode >> 8) * w + lanes[(rowCode & 255) * w + c % w];
        }
        return map;
    }

    /// <summary>The diagonals B, G and S of block <paramref name="block"/> (for tests and references).</summary>
    internal (float[] Signs, float[] Gaussians, float[] Scales) Diagonals(int block)
    {
        int l = BlockLength;
        var signs = new float[l];
        var gaussians = new float[l];
        var scales = new float[l];
        for (int i = 0; i < l; i++)
        {
            signs[i] = ((_signBits[block][i >> 6] >> (i & 63)) & 1) == 0 ? 1f : -1f;
            gaussians[i] = FromBFloat16(_gaussians[block][i]);
            scales[i] = _scaleBase[block] + FromBFloat16(_scaleDeviations[block][i]);
        }
        return (signs, gaussians, scales);
    }

    /// <summary>Round to nearest even bfloat16 (the high 16 bits of a float).</summary>
    private static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
    }

    private static float FromBFloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    private void Run(ReadOnlySpan<float> input, Span<float> output, bool transpose)
    {
        int l = BlockLength, bits = KernelOptions.VectorBits;
        if (bits >= 512 && l >= Vector512<float>.Count) Run<HadamardF512>(input, output, transpose, bits);
        else if (bits >= 256 && l >= Vector256<float>.Count) Run<HadamardF256>(input, output, transpose, bits);
        else if (bits >= 128 && l >= Vector128<float>.Count) Run<HadamardF128>(input, output, transpose, bits);
        else Run<HadamardF1>(input, output, transpose, bits);
    }

    private void Run<TV>(ReadOnlySpan<float> input, Span<float> output, bool transpose, int bits) where TV : struct, IFastfoodVec<TV>
    {
        int l = BlockLength;
        fixed (float* ip = input, op = output)
        {
            if (l < ParallelLength && BlockCount > 1 && WorkerPool.Shared.MaxDegreeOfParallelism > 1)
            {
                // Short blocks (a subspace of d = 1e4 over D = 2e5 is 13 blocks of 2^14): one pass is a few microseconds,
                // too short to split, so whole blocks go to the workers instead. The adjoint's blocks write their own
                // d-vectors, summed afterwards in block order: the same additions in the same order as one thread.
                float* partials = transpose ? PartialScratch(BlockCount * InputDimension) : null;
                var blocks = new BlockJob<TV> { Owner = this, Input = ip, Output = op, Partials = partials, Transpose = transpose, Bits = bits };
                WorkerPool.Shared.For(BlockCount, ref blocks);
                if (transpose)
                {
                    var x = new Span<float>(op, InputDimension);
                    new ReadOnlySpan<float>(partials, InputDimension).CopyTo(x);
                    for (int k = 1; k < BlockCount; k++)
                        System.Numerics.Tensors.TensorPrimitives.Add(x, new ReadOnlySpan<float>(partials + (nint)k * InputDimension, InputDimension), x);
                }
                return;
            }
            for (int k = 0; k < BlockCount; k++)
                RunBlock<TV>(k, ip, transpose ? op : op + (nint)k * l, transpose, accumulate: transpose && k > 0, bits);
        }
    }

    /// <summary>Whole blocks per index, for <see cref="Run{TV}"/>'s short-block path.</summary>
    private struct BlockJob<TV> : IRangeBody where TV : struct, IFastfoodVec<TV>
    {
        public Fastfood Owner;
        public float* Input, Output, Partials;
        public bool Transpose;
        public int Bits;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(int start, int end)
        {
            int l = Owner.BlockLength, d = Owner.InputDimension;
            for (int k = start; k < end; k++)
                Owner.RunBlock<TV>(k, Input, Transpose ? Partials + (nint)k * d : Output + (nint)k * l, Transpose, accumulate: false, Bits);
        }
    }

    /// <summary>
    /// Block <paramref name="k"/>: forward, y[kL, kL + Count) = V_k x into <paramref name="destination"/> (the block's
    /// slice of y); adjoint, V_k^T y_k into the d values at <paramref name="destination"/>, added to them when
    /// <paramref name="accumulate"/>. Uses the calling thread's scratch.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBlock<TV>(int k, float* ip, float* destination, bool transpose, bool accumulate, int bits) where TV : struct, IFastfoodVec<TV>
    {
        int l = BlockLength;
        float* a = Scratch(l, out float* u);
        fixed (ulong* signs = _signBits[k])
        fixed (ushort* gaussians = _gaussians[k], gaussiansAdjoint = _gaussiansAdjoint[k], scales = _scaleDeviations[k])
        fixed (int* rowCodes = _rowCodes[k], columnCodes = _columnCodes[k], columnInverse = _columnInverse[k], lanes = _lanes[k], lanesInverse = _lanesInverse[k])
        {
            int offset = k * l;
            var job = new Job<TV>
            {
                Signs = signs, Gaussians = gaussians, GaussiansAdjoint = gaussiansAdjoint, Scales = scales, ScaleBase = _scaleBase[k],
                RowCodes = rowCodes, ColumnCodes = columnCodes, ColumnInverse = columnInverse, Lanes = lanes, LanesInverse = lanesInverse,
                Length = l, Rows = _rows, Columns = _columns, Width = _width,
                Vector512Permute = bits >= 512 && _width == 16 && Avx512F.IsSupported,
                InputDimension = InputDimension, Count = Math.Min(l, OutputDimension - offset),
            };
            job.Block = Math.Min(l, Math.Max(Hadamard.L2Bytes / sizeof(float), _width * _columns));
            job.L1 = Math.Min(job.Block, Hadamard.L1Bytes / sizeof(float));
            // Whole rows of the C x R view per unit, so a unit's rows are finished when its wide stages are.
            job.Unit = Math.Min(job.Block, Math.Max(1024, _rows));
            int wideUnits = job.Block < l ? job.Block / job.Unit : 0;
            if (transpose)
            {
                // S y -> A (first H) -> Out (G and Pi^T through a per-thread strip, second H) -> B -> x.
                job.Source = ip + offset;
                job.Destination = destination;
                job.Accumulate = accumulate;
                job.A = a;
                // x doubles as the last work buffer when it is the whole result: one 4 MiB buffer less in cache at 2^20.
                job.Out = BlockCount == 1 && InputDimension == l ? destination : u;
                Phase(ref job, Step.ScaleAndTransform, l / job.Block);
                Phase(ref job, Step.Wide, wideUnits);
                Phase(ref job, Step.UnshuffleAndTransform, l / job.Block);
                Phase(ref job, Step.WideAndSigns, wideUnits);
            }
            else
            {
                // B x -> A (first H) -> Out (Pi and G through a per-thread strip, second H) -> S -> y.
                job.Source = ip;
                job.Destination = destination;
                job.A = a;
                job.Out = job.Count == l ? destination : u;
                Phase(ref job, Step.SignsAndTransform, l / job.Block);
                Phase(ref job, Step.Wide, wideUnits);
                Phase(ref job, Step.ShuffleAndTransform, l / job.Block);
                Phase(ref job, Step.WideAndScales, wideUnits);
            }
        }
    }

    private static void Phase<TV>(ref Job<TV> job, Step step, int count) where TV : struct, IFastfoodVec<TV>
    {
        if (count == 0) return;
        job.Step = step;
        if (job.Length >= ParallelLength) WorkerPool.Shared.For(count, ref job);
        else job.Invoke(0, count);
    }

    private enum Step
    {
        SignsAndTransform, Wide, ShuffleAndTransform, WideAndScales,
        ScaleAndTransform, UnshuffleAndTransform, WideAndSigns,
    }

    // The hot methods below are AggressiveOptimization: their Tier-0 code (every vector wrapper a call) is several
    // times slower, and a training run's first steps, or a short benchmark, would otherwise run it for a while.

    /// <summary>One Fastfood block's passes; Invoke runs items [start, end) of the current step.</summary>
    private struct Job<TV> : IRangeBody where TV : struct, IFastfoodVec<TV>
    {
        public float* A, Out, Source, Destination;
        public ulong* Signs;
        public ushort* Gaussians, GaussiansAdjoint, Scales;
        public float ScaleBase;
        public int* RowCodes, ColumnCodes, ColumnInverse, Lanes, LanesInverse;
        public int Length, Rows, Columns, Width, InputDimension, Count, Block, L1, Unit;
        public bool Vector512Permute, Accumulate;
        public Step Step;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public readonly void Invoke(int start, int end)
        {
            switch (Step)
            {
                case Step.SignsAndTransform:
                    // Forward, first H: a = H (B x), x zero-padded to L; blocks of Block floats up to their last in-block stage.
                    for (int b = start; b < end; b++)
                    {
                        int q0 = b * Block;
                        SignsPadded(A + q0, Source + q0, Signs, q0, Math.Clamp(InputDimension - q0, 0, Block), Block);
                        Transform(A + q0, false);
                    }
                    break;
                case Step.Wide:
                    {
                        var sink = new InPlace();
                        Wide(A, Length, Block, start * Unit, end * Unit, ref sink);
                    }
                    break;
                case Step.ShuffleAndTransform:
                    // Forward, Pi then G then the second H: W rows of u at a time go through a small per-thread buffer
                    // (L1/L2) straight into the row shuffle of Out, instead of through a 4 MiB transposed copy.
                    for (int b = start; b < end; b++)
                    {
                        int q0 = b * Block;
                        float* strip = StripScratch(Width * Rows);
                        for (int c = q0 / Rows; c < (q0 + Block) / Rows; c += Width)
                        {
                            float* u = strip - (nint)c * Rows; // u row c lands at strip row 0
                            int v = c / Width;
                            if (Vector512Permute)
                            {
                                RowsToColumns512(A, u, RowCodes, Lanes, Rows, Columns, v, v + 1);
                                GatherColumns512(u, Out, ColumnCodes, Lanes, Gaussians, Rows, c * Rows, (c + Width) * Rows);
                            }
                            else
                            {
                                RowsToColumns(A, u, RowCodes, Lanes, Rows, Columns, Width, v, v + 1);
                                GatherColumns(u, Out, ColumnCodes, Lanes, Gaussians, Rows, Width, c * Rows, (c + Width) * Rows);
                            }
                        }
                        Transform(Out + q0, true);
                    }
                    break;
                case Step.WideAndScales:
                    {
                        var sink = new ScaleSink(Scales, ScaleBase, Destination, Count);
                        Wide(Out, Length, Block, start * Unit, end * Unit, ref sink);
                    }
                    break;
                case Step.ScaleAndTransform:
                    // Adjoint, first H: b = H (S y_k), y_k zero-padded to L.
                    for (int b = start; b < end; b++)
                    {
                        int q0 = b * Block;
                        ScalesPadded(A + q0, Source + q0, Scales + q0, ScaleBase, Math.Clamp(Count - q0, 0, Block), Block);
                        Transform(A + q0, false);
                    }
                    break;
                case Step.UnshuffleAndTransform:
                    // Adjoint, G then Pi^T then the second H: for each strip of W output rows, one W-float block of every
                    // row of the C x R view (scattered 64-byte loads) goes through a small per-thread buffer.
                    for (int b = start; b < end; b++)
                    {
                        int q0 = b * Block, stripLength = Width * Columns;
                        float* strip = StripScratch(Width * Columns);
                        for (int z = q0 / stripLength; z < (q0 + Block) / stripLength; z++)
                        {
                            float* u = strip - (nint)z * Width; // the C x W strip as columns [W z, W z + W) of a row stride W
                            if (Vector512Permute)
                            {
                                ScatterStrip512(A, strip, ColumnInverse, LanesInverse, Rows, Columns, z);
                                ColumnsToRows512(u, Out, RowCodes, LanesInverse, 16, Columns, z, z + 1);
                            }
                            else
                            {
                                ScatterStrip(A, strip, ColumnInverse, Lanes, Rows, Columns, Width, z);
                                ColumnsToRows(u, Out, RowCodes, Lanes, Width, Columns, Width, z, z + 1);
                            }
                        }
                        Transform(Out + q0, true, GaussiansAdjoint + q0);
                    }
                    break;
                case Step.WideAndSigns:
                    {
                        var sink = new SignSink(Signs, Destination, InputDimension, Accumulate);
                        Wide(Out, Length, Block, start * Unit, end * Unit, ref sink);
                    }
                    break;
            }
        }

        /// <summary>
        /// All stages below Block on one block, after multiplying it by <paramref name="diagonal"/> (bfloat16) if given, in
        /// the first pass, which reads it in order; when Block is L and <paramref name="last"/>, hands the result to the step's sink.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Transform(float* block, bool last, ushort* diagonal = null)
        {
            int w = TV.Count;
            for (int b = 0; b < Block; b += L1)
            {
                float* p = block + b;
                if (diagonal is null) for (int i = 0; i < L1; i += w) TV.Store(TV.InRegister(TV.Load(p + i)), p + i);
                else for (int i = 0; i < L1; i += w) TV.Store(TV.InRegister(TV.Multiply(TV.Load(p + i), TV.LoadBFloat16(diagonal + b + i))), p + i);
                Hadamard.Passes<TV, float>(p, L1, w, L1);
            }
            Hadamard.Passes<TV, float>(block, Block, L1, Block);
            if (!last || Block < Length) return;
            if (Step == Step.ShuffleAndTransform)
            {
                var sink = new ScaleSink(Scales, ScaleBase, Destination, Count);
                for (int i = 0; i < Block; i += w) sink.Put(TV.Load(block + i), block + i, i);
            }
            else
            {
                var sink = new SignSink(Signs, Destination, InputDimension, Accumulate);
                for (int i = 0; i < Block; i += w) sink.Put(TV.Load(block + i), block + i, i);
            }
        }

        /// <summary>destination[i] = B[q0 + i] source[i] for i &lt; valid, 0 up to length.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void SignsPadded(float* destination, float* source, ulong* signs, int q0, int valid, int length)
        {
            int w = TV.Count, i = 0;
            for (; i + w <= valid; i += w) TV.Store(TV.NegateWhere(TV.Load(source + i), SignBits(signs, q0 + i)), destination + i);
            for (; i < valid; i++) destination[i] = (SignBits(signs, q0 + i) & 1) != 0 ? -source[i] : source[i];
            for (; i < length; i++) destination[i] = 0;
        }

        /// <summary>destination[i] = (base + deviation[i]) source[i] for i &lt; valid, 0 up to length.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void ScalesPadded(float* destination, float* source, ushort* deviations, float scaleBase, int valid, int length)
        {
            int w = TV.Count, i = 0;
            TV broadcast = TV.Create(scaleBase);
            for (; i + w <= valid; i += w) TV.Store(TV.Multiply(TV.Add(broadcast, TV.LoadBFloat16(deviations + i)), TV.Load(source + i)), destination + i);
            for (; i < valid; i++) destination[i] = (scaleBase + FromBFloat16(deviations[i])) * source[i];
            for (; i < length; i++) destination[i] = 0;
        }

        /// <summary>The sign bits of indices q, q + 1, ... in the low bits (q a multiple of the width).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static uint SignBits(ulong* signs, int q) => (uint)(signs[q >> 6] >> (q & 63));

        /// <summary>The stages from, 2 from, ... &lt; n, for the offsets [j0, j1) of every from-sized group; the last radix pass goes to the sink.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void Wide<TSink>(float* x, int n, int from, int j0, int j1, ref TSink sink) where TSink : struct, ISink
        {
            int w = TV.Count;
            for (int h = from; h < n;)
            {
                int radix = Math.Min(3, System.Numerics.BitOperations.Log2((uint)(n / h)));
                int span = h << radix;
                bool last = span == n;
                for (int g = 0; g < n; g += span)
                    for (int hi = 0; hi < h; hi += from)
                        for (int j = j0; j < j1; j += w)
                        {
                            int q = g + hi + j;
                            float* p = x + q;
                            if (radix == 3)
                            {
                                TV v0 = TV.Load(p), v1 = TV.Load(p + h), v2 = TV.Load(p + 2 * h), v3 = TV.Load(p + 3 * h);
                                TV v4 = TV.Load(p + 4 * h), v5 = TV.Load(p + 5 * h), v6 = TV.Load(p + 6 * h), v7 = TV.Load(p + 7 * h);
                                Butterfly(ref v0, ref v1); Butterfly(ref v2, ref v3); Butterfly(ref v4, ref v5); Butterfly(ref v6, ref v7);
                                Butterfly(ref v0, ref v2); Butterfly(ref v1, ref v3); Butterfly(ref v4, ref v6); Butterfly(ref v5, ref v7);
                                Butterfly(ref v0, ref v4); Butterfly(ref v1, ref v5); Butterfly(ref v2, ref v6); Butterfly(ref v3, ref v7);
                                Put(v0, p, q, last, ref sink); Put(v1, p + h, q + h, last, ref sink);
                                Put(v2, p + 2 * h, q + 2 * h, last, ref sink); Put(v3, p + 3 * h, q + 3 * h, last, ref sink);
                                Put(v4, p + 4 * h, q + 4 * h, last, ref sink); Put(v5, p + 5 * h, q + 5 * h, last, ref sink);
                                Put(v6, p + 6 * h, q + 6 * h, last, ref sink); Put(v7, p + 7 * h, q + 7 * h, last, ref sink);
                            }
                            else if (radix == 2)
                            {
                                TV v0 = TV.Load(p), v1 = TV.Load(p + h), v2 = TV.Load(p + 2 * h), v3 = TV.Load(p + 3 * h);
                                Butterfly(ref v0, ref v1); Butterfly(ref v2, ref v3);
                                Butterfly(ref v0, ref v2); Butterfly(ref v1, ref v3);
                                Put(v0, p, q, last, ref sink); Put(v1, p + h, q + h, last, ref sink);
                                Put(v2, p + 2 * h, q + 2 * h, last, ref sink); Put(v3, p + 3 * h, q + 3 * h, last, ref sink);
                            }
                            else
                            {
                                TV v0 = TV.Load(p), v1 = TV.Load(p + h);
                                Butterfly(ref v0, ref v1);
                                Put(v0, p, q, last, ref sink); Put(v1, p + h, q + h, last, ref sink);
                            }
                        }
                h = span;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Put<TSink>(TV v, float* at, int index, bool last, ref TSink sink) where TSink : struct, ISink
        {
            if (last) sink.Put(v, at, index);
            else TV.Store(v, at);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Butterfly(ref TV a, ref TV b)
        {
            TV sum = TV.Add(a, b);
            b = TV.Subtract(a, b);
            a = sum;
        }

        private interface ISink
        {
            /// <summary>Takes the finished vector for indices [index, index + Count); <paramref name="at"/> is its scratch slot.</summary>
            void Put(TV value, float* at, int index);
        }

        private readonly struct InPlace : ISink
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(TV value, float* at, int index) => TV.Store(value, at);
        }

        /// <summary>Forward output: destination[i] = S[i] v[i] for i &lt; count (the last block may be cut short).</summary>
        private readonly struct ScaleSink(ushort* deviations, float scaleBase, float* destination, int count) : ISink
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(TV value, float* at, int index)
            {
                if (index + TV.Count <= count)
                    TV.Store(TV.Multiply(TV.Add(TV.Create(scaleBase), TV.LoadBFloat16(deviations + index)), value), destination + index);
                else if (index < count)
                {
                    TV.Store(value, at);
                    for (int i = index; i < count; i++) destination[i] = (scaleBase + FromBFloat16(deviations[i])) * at[i - index];
                }
            }
        }

        /// <summary>Adjoint output: x[i] (+)= B[i] v[i] for i &lt; d (blocks after the first accumulate).</summary>
        private readonly struct SignSink(ulong* signs, float* destination, int count, bool accumulate) : ISink
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            public void Put(TV value, float* at, int index)
            {
                if (index + TV.Count <= count)
                {
                    TV product = TV.NegateWhere(value, SignBits(signs, index));
                    TV.Store(accumulate ? TV.Add(TV.Load(destination + index), product) : product, destination + index);
                }
                else if (index < count)
                {
                    TV.Store(value, at);
                    for (int i = index; i < count; i++)
                    {
                        float product = (SignBits(signs, i) & 1) != 0 ? -at[i - index] : at[i - index];
                        destination[i] = accumulate ? destination[i] + product : product;
                    }
                }
            }
        }
    }

    /// <summary>u[w v + l, r] = a[r, w pi_r(v) + lambda_(r,v)(l)] for the block columns [v0, v1): shuffle rows, transpose.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowsToColumns(float* a, float* u, int* codes, int* lanes, int rows, int columns, int w, int v0, int v1)
    {
        int blocks = columns / w;
        for (int v = v0; v < v1; v++)
            for (int r = 0; r < rows; r++)
            {
                int code = codes[r * blocks + v];
                float* src = a + (nint)r * columns + (code >> 8) * w;
                int* lane = lanes + (code & 255) * w;
                for (int l = 0; l < w; l++) u[(nint)(v * w + l) * rows + r] = src[lane[l]];
            }
    }

    /// <summary>The inverse of <see cref="RowsToColumns"/>: a[r, w pi_r(v) + lambda_(r,v)(l)] = u[w v + l, r].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ColumnsToRows(float* u, float* a, int* codes, int* lanes, int rows, int columns, int w, int s0, int s1)
    {
        int blocks = columns / w;
        for (int r = s0 * w; r < s1 * w; r++)
            for (int v = 0; v < blocks; v++)
            {
                int code = codes[r * blocks + v];
                nint at = (nint)r * columns + (code >> 8) * w;
                int* lane = lanes + (code & 255) * w;
                for (int l = 0; l < w; l++) a[at + lane[l]] = u[(nint)(v * w + l) * rows + r];
            }
    }

    /// <summary>out[q] = g[q] u[c, w rho_c(v) + mu_(c,v)(m)] for q = c R + w v + m in [q0, q1): shuffle each row of u, times G.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatherColumns(float* u, float* output, int* codes, int* lanes, ushort* g, int rows, int w, int q0, int q1)
    {
        for (int q = q0; q < q1; q += w)
        {
            int code = codes[q / w];
            float* src = u + (q & ~(rows - 1)) + (code >> 8) * w;
            int* lane = lanes + (code & 255) * w;
            for (int m = 0; m < w; m++) output[q + m] = FromBFloat16(g[q + m]) * src[lane[m]];
        }
    }

    /// <summary>
    /// The adjoint of <see cref="GatherColumns"/>'s shuffle (G comes later) for the columns [w z, w z + w) of u: strip[c w + mu(m)] = y[q],
    /// q = c R + w v + m with rho_c(v) = z (<paramref name="inverseCodes"/> holds v and the lane table per (c, z)).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScatterStrip(float* y, float* strip, int* inverseCodes, int* lanes, int rows, int columns, int w, int z)
    {
        int blocks = rows / w;
        for (int c = 0; c < columns; c++)
        {
            int code = inverseCodes[c * blocks + z];
            nint q = (nint)c * rows + (code >> 8) * w;
            int* lane = lanes + (code & 255) * w;
            for (int m = 0; m < w; m++) strip[c * w + lane[m]] = y[q + m];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> BFloat16x16(ushort* source) =>
        Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe()), 16).AsSingle();

    /// <summary>AVX-512 <see cref="GatherColumns"/> for 16-float blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatherColumns512(float* u, float* output, int* codes, int* lanes, ushort* g, int rows, int q0, int q1)
    {
        for (int q = q0; q < q1; q += 16)
        {
            int code = codes[q >> 4];
            var v = Avx512F.PermuteVar16x32(Vector512.Load(u + (q & ~(rows - 1)) + ((code >> 8) << 4)), Vector512.Load(lanes + ((code & 255) << 4)));
            (BFloat16x16(g + q) * v).Store(output + q);
        }
    }

    /// <summary>AVX-512 <see cref="ScatterStrip"/> for 16-float blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScatterStrip512(float* y, float* strip, int* inverseCodes, int* lanesInverse, int rows, int columns, int z)
    {
        int blocks = rows >> 4;
        for (int c = 0; c < columns; c++)
        {
            if (c + PrefetchRows < columns && Sse.IsSupported)
            {
                // One block per row, rows 4 KiB apart at 2^20: request the one PrefetchRows rows ahead now.
                int ahead = inverseCodes[(c + PrefetchRows) * blocks + z];
                Sse.Prefetch0(y + (nint)(c + PrefetchRows) * rows + ((ahead >> 8) << 4));
            }
            int code = inverseCodes[c * blocks + z];
            nint q = (nint)c * rows + ((code >> 8) << 4);
            Avx512F.PermuteVar16x32(Vector512.Load(y + q), Vector512.Load(lanesInverse + ((code & 255) << 4))).Store(strip + ((nint)c << 4));
        }
    }

    /// <summary>
    /// AVX-512 <see cref="RowsToColumns"/> for the block columns [v0, v1), one 16x16 register transpose per tile. Each
    /// job writes whole rows of u in order and reads scattered 64-byte blocks: loads overlap, scattered stores would not.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowsToColumns512(float* a, float* u, int* codes, int* lanes, int rows, int columns, int v0, int v1)
    {
        int blocks = columns >> 4;
        for (int v = v0; v < v1; v++)
        {
            for (int r0 = 0; r0 < rows; r0 += 16)
            {
                float* src = a + (nint)r0 * columns;
                int* code = codes + (nint)r0 * blocks;
                if (r0 + PrefetchRows < rows && Sse.IsSupported)
                {
                    // The blocks this loop reads are scattered one per row: request the ones PrefetchRows rows ahead now.
                    float* ahead = src + PrefetchRows * (nint)columns;
                    int* aheadCode = code + PrefetchRows * blocks;
                    for (int t = 0; t < 16; t++) Sse.Prefetch0(ahead + t * (nint)columns + ((aheadCode[t * blocks + v] >> 8) << 4));
                }
                var t0 = Avx512F.PermuteVar16x32(Vector512.Load(src + 0 * (nint)columns + ((code[0 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[0 * blocks + v] & 255) << 4)));
                var t1 = Avx512F.PermuteVar16x32(Vector512.Load(src + 1 * (nint)columns + ((code[1 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[1 * blocks + v] & 255) << 4)));
                var t2 = Avx512F.PermuteVar16x32(Vector512.Load(src + 2 * (nint)columns + ((code[2 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[2 * blocks + v] & 255) << 4)));
                var t3 = Avx512F.PermuteVar16x32(Vector512.Load(src + 3 * (nint)columns + ((code[3 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[3 * blocks + v] & 255) << 4)));
                var t4 = Avx512F.PermuteVar16x32(Vector512.Load(src + 4 * (nint)columns + ((code[4 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[4 * blocks + v] & 255) << 4)));
                var t5 = Avx512F.PermuteVar16x32(Vector512.Load(src + 5 * (nint)columns + ((code[5 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[5 * blocks + v] & 255) << 4)));
                var t6 = Avx512F.PermuteVar16x32(Vector512.Load(src + 6 * (nint)columns + ((code[6 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[6 * blocks + v] & 255) << 4)));
                var t7 = Avx512F.PermuteVar16x32(Vector512.Load(src + 7 * (nint)columns + ((code[7 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[7 * blocks + v] & 255) << 4)));
                var t8 = Avx512F.PermuteVar16x32(Vector512.Load(src + 8 * (nint)columns + ((code[8 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[8 * blocks + v] & 255) << 4)));
                var t9 = Avx512F.PermuteVar16x32(Vector512.Load(src + 9 * (nint)columns + ((code[9 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[9 * blocks + v] & 255) << 4)));
                var t10 = Avx512F.PermuteVar16x32(Vector512.Load(src + 10 * (nint)columns + ((code[10 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[10 * blocks + v] & 255) << 4)));
                var t11 = Avx512F.PermuteVar16x32(Vector512.Load(src + 11 * (nint)columns + ((code[11 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[11 * blocks + v] & 255) << 4)));
                var t12 = Avx512F.PermuteVar16x32(Vector512.Load(src + 12 * (nint)columns + ((code[12 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[12 * blocks + v] & 255) << 4)));
                var t13 = Avx512F.PermuteVar16x32(Vector512.Load(src + 13 * (nint)columns + ((code[13 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[13 * blocks + v] & 255) << 4)));
                var t14 = Avx512F.PermuteVar16x32(Vector512.Load(src + 14 * (nint)columns + ((code[14 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[14 * blocks + v] & 255) << 4)));
                var t15 = Avx512F.PermuteVar16x32(Vector512.Load(src + 15 * (nint)columns + ((code[15 * blocks + v] >> 8) << 4)), Vector512.Load(lanes + ((code[15 * blocks + v] & 255) << 4)));
                Transpose16(ref t0, ref t1, ref t2, ref t3, ref t4, ref t5, ref t6, ref t7, ref t8, ref t9, ref t10, ref t11, ref t12, ref t13, ref t14, ref t15);
                float* dst = u + (nint)(v << 4) * rows + r0;
                t0.Store(dst + 0 * (nint)rows);
                t1.Store(dst + 1 * (nint)rows);
                t2.Store(dst + 2 * (nint)rows);
                t3.Store(dst + 3 * (nint)rows);
                t4.Store(dst + 4 * (nint)rows);
                t5.Store(dst + 5 * (nint)rows);
                t6.Store(dst + 6 * (nint)rows);
                t7.Store(dst + 7 * (nint)rows);
                t8.Store(dst + 8 * (nint)rows);
                t9.Store(dst + 9 * (nint)rows);
                t10.Store(dst + 10 * (nint)rows);
                t11.Store(dst + 11 * (nint)rows);
                t12.Store(dst + 12 * (nint)rows);
                t13.Store(dst + 13 * (nint)rows);
                t14.Store(dst + 14 * (nint)rows);
                t15.Store(dst + 15 * (nint)rows);
            }
        }
    }

    // Software prefetch distances of the two transposing kernels (scattered loads the hardware prefetchers cannot predict).
    private const int PrefetchRows = 32, PrefetchTiles = 2;

    /// <summary>AVX-512 <see cref="ColumnsToRows"/> for 16-float blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ColumnsToRows512(float* u, float* a, int* codes, int* lanesInverse, int rows, int columns, int s0, int s1)
    {
        int blocks = columns >> 4;
        for (int s = s0; s < s1; s++)
        {
            int r0 = s << 4;
            float* dst = a + (nint)r0 * columns;
            int* code = codes + (nint)r0 * blocks;
            for (int v = 0; v < blocks; v++)
            {
                float* src = u + (nint)(v << 4) * rows + r0;
                if (v + PrefetchTiles < blocks && Sse.IsSupported)
                {
                    // Each tile reads 16 rows of u 4 KiB apart (at 2^20): request the tile PrefetchTiles ahead now.
                    float* ahead = src + (nint)(PrefetchTiles << 4) * rows;
                    for (int l = 0; l < 16; l++) Sse.Prefetch0(ahead + l * (nint)rows);
                }
                var t0 = Vector512.Load(src + 0 * (nint)rows);
                var t1 = Vector512.Load(src + 1 * (nint)rows);
                var t2 = Vector512.Load(src + 2 * (nint)rows);
                var t3 = Vector512.Load(src + 3 * (nint)rows);
                var t4 = Vector512.Load(src + 4 * (nint)rows);
                var t5 = Vector512.Load(src + 5 * (nint)rows);
                var t6 = Vector512.Load(src + 6 * (nint)rows);
                var t7 = Vector512.Load(src + 7 * (nint)rows);
                var t8 = Vector512.Load(src + 8 * (nint)rows);
                var t9 = Vector512.Load(src + 9 * (nint)rows);
                var t10 = Vector512.Load(src + 10 * (nint)rows);
                var t11 = Vector512.Load(src + 11 * (nint)rows);
                var t12 = Vector512.Load(src + 12 * (nint)rows);
                var t13 = Vector512.Load(src + 13 * (nint)rows);
                var t14 = Vector512.Load(src + 14 * (nint)rows);
                var t15 = Vector512.Load(src + 15 * (nint)rows);
                Transpose16(ref t0, ref t1, ref t2, ref t3, ref t4, ref t5, ref t6, ref t7, ref t8, ref t9, ref t10, ref t11, ref t12, ref t13, ref t14, ref t15);
                Avx512F.PermuteVar16x32(t0, Vector512.Load(lanesInverse + ((code[0 * blocks + v] & 255) << 4))).Store(dst + 0 * (nint)columns + ((code[0 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t1, Vector512.Load(lanesInverse + ((code[1 * blocks + v] & 255) << 4))).Store(dst + 1 * (nint)columns + ((code[1 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t2, Vector512.Load(lanesInverse + ((code[2 * blocks + v] & 255) << 4))).Store(dst + 2 * (nint)columns + ((code[2 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t3, Vector512.Load(lanesInverse + ((code[3 * blocks + v] & 255) << 4))).Store(dst + 3 * (nint)columns + ((code[3 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t4, Vector512.Load(lanesInverse + ((code[4 * blocks + v] & 255) << 4))).Store(dst + 4 * (nint)columns + ((code[4 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t5, Vector512.Load(lanesInverse + ((code[5 * blocks + v] & 255) << 4))).Store(dst + 5 * (nint)columns + ((code[5 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t6, Vector512.Load(lanesInverse + ((code[6 * blocks + v] & 255) << 4))).Store(dst + 6 * (nint)columns + ((code[6 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t7, Vector512.Load(lanesInverse + ((code[7 * blocks + v] & 255) << 4))).Store(dst + 7 * (nint)columns + ((code[7 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t8, Vector512.Load(lanesInverse + ((code[8 * blocks + v] & 255) << 4))).Store(dst + 8 * (nint)columns + ((code[8 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t9, Vector512.Load(lanesInverse + ((code[9 * blocks + v] & 255) << 4))).Store(dst + 9 * (nint)columns + ((code[9 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t10, Vector512.Load(lanesInverse + ((code[10 * blocks + v] & 255) << 4))).Store(dst + 10 * (nint)columns + ((code[10 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t11, Vector512.Load(lanesInverse + ((code[11 * blocks + v] & 255) << 4))).Store(dst + 11 * (nint)columns + ((code[11 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t12, Vector512.Load(lanesInverse + ((code[12 * blocks + v] & 255) << 4))).Store(dst + 12 * (nint)columns + ((code[12 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t13, Vector512.Load(lanesInverse + ((code[13 * blocks + v] & 255) << 4))).Store(dst + 13 * (nint)columns + ((code[13 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t14, Vector512.Load(lanesInverse + ((code[14 * blocks + v] & 255) << 4))).Store(dst + 14 * (nint)columns + ((code[14 * blocks + v] >> 8) << 4));
                Avx512F.PermuteVar16x32(t15, Vector512.Load(lanesInverse + ((code[15 * blocks + v] & 255) << 4))).Store(dst + 15 * (nint)columns + ((code[15 * blocks + v] >> 8) << 4));
            }
        }
    }

    // Index vectors of vpermt2ps that swap bit s of the register number with bit s of the lane (one transpose round).
    private static readonly Vector512<int> s_lo8 = SwapIndex(8, false), s_hi8 = SwapIndex(8, true), s_lo4 = SwapIndex(4, false), s_hi4 = SwapIndex(4, true);
    private static readonly Vector512<int> s_lo2 = SwapIndex(2, false), s_hi2 = SwapIndex(2, true), s_lo1 = SwapIndex(1, false), s_hi1 = SwapIndex(1, true);

    private static Vector512<int> SwapIndex(int s, bool high)
    {
        Span<int> index = stackalloc int[16];
        for (int lane = 0; lane < 16; lane++)
            index[lane] = high ? ((lane & s) == 0 ? lane ^ s : 16 + lane) : ((lane & s) == 0 ? lane : 16 + (lane ^ s));
        return Vector512.Create<int>(index);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Swap(ref Vector512<float> a, ref Vector512<float> b, Vector512<int> lo, Vector512<int> hi)
    {
        var low = Avx512F.PermuteVar16x32x2(a, lo, b);
        b = Avx512F.PermuteVar16x32x2(a, hi, b);
        a = low;
    }

    /// <summary>Register t_i lane l becomes register t_l lane i.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16(ref Vector512<float> t0, ref Vector512<float> t1, ref Vector512<float> t2, ref Vector512<float> t3, ref Vector512<float> t4, ref Vector512<float> t5, ref Vector512<float> t6, ref Vector512<float> t7, ref Vector512<float> t8, ref Vector512<float> t9, ref Vector512<float> t10, ref Vector512<float> t11, ref Vector512<float> t12, ref Vector512<float> t13, ref Vector512<float> t14, ref Vector512<float> t15)
    {
        Vector512<int> lo8 = s_lo8, hi8 = s_hi8, lo4 = s_lo4, hi4 = s_hi4;
        Vector512<int> lo2 = s_lo2, hi2 = s_hi2, lo1 = s_lo1, hi1 = s_hi1;
        Swap(ref t0, ref t8, lo8, hi8);
        Swap(ref t1, ref t9, lo8, hi8);
        Swap(ref t2, ref t10, lo8, hi8);
        Swap(ref t3, ref t11, lo8, hi8);
        Swap(ref t4, ref t12, lo8, hi8);
        Swap(ref t5, ref t13, lo8, hi8);
        Swap(ref t6, ref t14, lo8, hi8);
        Swap(ref t7, ref t15, lo8, hi8);
        Swap(ref t0, ref t4, lo4, hi4);
        Swap(ref t1, ref t5, lo4, hi4);
        Swap(ref t2, ref t6, lo4, hi4);
        Swap(ref t3, ref t7, lo4, hi4);
        Swap(ref t8, ref t12, lo4, hi4);
        Swap(ref t9, ref t13, lo4, hi4);
        Swap(ref t10, ref t14, lo4, hi4);
        Swap(ref t11, ref t15, lo4, hi4);
        Swap(ref t0, ref t2, lo2, hi2);
        Swap(ref t1, ref t3, lo2, hi2);
        Swap(ref t4, ref t6, lo2, hi2);
        Swap(ref t5, ref t7, lo2, hi2);
        Swap(ref t8, ref t10, lo2, hi2);
        Swap(ref t9, ref t11, lo2, hi2);
        Swap(ref t12, ref t14, lo2, hi2);
        Swap(ref t13, ref t15, lo2, hi2);
        Swap(ref t0, ref t1, lo1, hi1);
        Swap(ref t2, ref t3, lo1, hi1);
        Swap(ref t4, ref t5, lo1, hi1);
        Swap(ref t6, ref t7, lo1, hi1);
        Swap(ref t8, ref t9, lo1, hi1);
        Swap(ref t10, ref t11, lo1, hi1);
        Swap(ref t12, ref t13, lo1, hi1);
        Swap(ref t14, ref t15, lo1, hi1);
    }

    /// <summary>Per row: a random order of its blocks (high bits) and a random lane table (low 8 bits) per block.</summary>
    private static int[] Codes(Rng rng, int count, int blocks)
    {
        var codes = new int[count * blocks];
        var order = new int[blocks];
        for (int r = 0; r < count; r++)
        {
            for (int v = 0; v < blocks; v++) order[v] = v;
            rng.Shuffle<int>(order);
            for (int v = 0; v < blocks; v++) codes[r * blocks + v] = order[v] << 8 | (int)(rng.NextUInt64() & (LaneTables - 1));
        }
        return codes;
    }

    /// <summary>Per row and target block: the source block (high bits) and its lane table, the inverse of <see cref="Codes"/>' order.</summary>
    private static int[] InverseCodes(int[] codes, int count, int blocks)
    {
        var inverse = new int[codes.Length];
        for (int r = 0; r < count; r++)
            for (int v = 0; v < blocks; v++)
            {
                int code = codes[r * blocks + v];
                inverse[r * blocks + (code >> 8)] = v << 8 | (code & (LaneTables - 1));
            }
        return inverse;
    }

    private static (int[] Lanes, int[] Inverse) LanePermutations(Rng rng, int width)
    {
        var lanes = new int[LaneTables * width];
        var inverse = new int[LaneTables * width];
        for (int k = 0; k < LaneTables; k++)
        {
            var table = lanes.AsSpan(k * width, width);
            for (int l = 0; l < width; l++) table[l] = l;
            rng.Shuffle<int>(table);
            for (int l = 0; l < width; l++) inverse[k * width + table[l]] = l;
        }
        return (lanes, inverse);
    }

    // Two L-float work buffers per calling thread, 64-byte aligned and reused: a 2^20 projection would otherwise allocate 8 MiB a call.
    [ThreadStatic] private static float[]? t_scratch;

    // W rows of the transposed view per worker thread for the forward's fused Pi (64 KiB at 2^20).
    [ThreadStatic] private static float[]? t_strip;

    // The adjoint's per-block d-vectors on the short-block parallel path (BlockCount x d floats, about D).
    [ThreadStatic] private static float[]? t_partials;

    private static float* PartialScratch(int length)
    {
        if (t_partials is null || t_partials.Length < length + 16) t_partials = GC.AllocateUninitializedArray<float>(length + 16, pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(t_partials));
        return (float*)((start + 63) & ~(nint)63);
    }

    private static float* StripScratch(int length)
    {
        if (t_strip is null || t_strip.Length < length + 16) t_strip = GC.AllocateUninitializedArray<float>(length + 16, pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(t_strip));
        return (float*)((start + 63) & ~(nint)63);
    }

    private static float* Scratch(int length, out float* second)
    {
        int padded = (length + 15) & ~15;
        if (t_scratch is null || t_scratch.Length < 2 * padded + 16)
            t_scratch = GC.AllocateUninitializedArray<float>(2 * padded + 16, pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(t_scratch));
        float* first = (float*)((start + 63) & ~(nint)63);
        second = first + padded;
        return first;
    }

    /// <summary>A Gamma(shape, 1) draw (Marsaglia and Tsang 2000; shape &lt; 1 boosted by U^(1/shape)).</summary>
    private static double Gamma(Rng rng, double shape)
    {
        if (shape < 1)
            return Gamma(rng, shape + 1) * Math.Pow(1.0 - rng.NextDouble(), 1 / shape);
        double d = shape - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double z = rng.NextGaussian(), v = 1 + c * z;
            if (v <= 0) continue;
            v = v * v * v;
            double u = 1.0 - rng.NextDouble();
            if (Math.Log(u) < 0.5 * z * z + d - d * v + d * Math.Log(v)) return d * v;
        }
    }

    private static void CheckLength(int length, int expected, string name, string what)
    {
        if (length != expected)
            throw new ArgumentException(Invariant($"{name} has {length} values; expected {what} = {expected}"), name);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
