using System.Buffers;
using System.Globalization;
using Condense.Kernels;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Sparsity;

/// <summary>
/// A weight matrix [OutFeatures, InFeatures] pruned to an N:M pattern (2:4, 1:4 or 2:8): in every block of M
/// consecutive inputs of a row only N weights are kept. Each row stores its K = InFeatures * N / M kept values
/// (the "compressed row", fp32 or group-quantized to 4/8 bits) and, per kept value, its position inside its block
/// in log2(M) bits, packed low bits first, rows byte-aligned (docs/format.md).
/// </summary>
public sealed class NmSparseWeight : IWeightStorage
{
    private readonly byte[] _indices;
    private readonly float[]? _values;
    private readonly GroupQuantizedWeight? _quantizedValues;
    private readonly int _indexRowBytes;

    private NmSparseWeight(int outFeatures, int inFeatures, int n, int m, byte[] indices, float[]? values, GroupQuantizedWeight? quantizedValues)
    {
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        N = n;
        M = m;
        CompressedWidth = inFeatures / m * n;
        _indices = indices;
        _values = values;
        // Batch-1 products stream the kept values and their indices from memory: 2 MiB pages read them faster (see HugePages).
        HugePages.Advise(indices);
        if (values is not null) HugePages.Advise(values);
        _quantizedValues = quantizedValues;
        _indexRowBytes = IndexRowBytes(CompressedWidth, m);
    }

    /// <summary>Weights kept per block.</summary>
    public int N { get; }

    /// <summary>Block length.</summary>
    public int M { get; }

    /// <summary>K = InFeatures * N / M: kept values per row.</summary>
    public int CompressedWidth { get; }

    /// <summary>Bits per stored position: log2(M).</summary>
    public int IndexBits => M == 8 ? 3 : 2;

    /// <summary>
    /// Positions inside their block, log2(M) bits per kept value, packed little-endian low bits first; each row is
    /// ceil8(K * log2(M)) bytes with zero padding bits; positions increase within a block (the stored array).
    /// </summary>
    public byte[] Indices => _indices;

    /// <summary>The fp32 compressed rows [OutFeatures, K] (the stored array), or null when the values are quantized.</summary>
    public float[]? Values => _values;

    /// <summary>The compressed rows [OutFeatures, K] group-quantized to 4 or 8 bits, or null when the values are fp32.</summary>
    public GroupQuantizedWeight? QuantizedValues => _quantizedValues;

    /// <inheritdoc/>
    public int OutFeatures { get; }

    /// <inheritdoc/>
    public int InFeatures { get; }

    /// <inheritdoc/>
    public string Format => string.Create(CultureInfo.InvariantCulture,
        $"{N}:{M}-{(_quantizedValues is null ? "fp32" : _quantizedValues.Scheme.FormatName)}");

    /// <inheritdoc/>
    public long ByteCount => _indices.LongLength + (_values is not null ? _values.LongLength * 4 : _quantizedValues!.ByteCount);

    /// <summary>Bytes of one row's packed positions: ceil8(K * log2(M)).</summary>
    internal static int IndexRowBytes(int compressedWidth, int m) => (int)(((long)compressedWidth * (m == 8 ? 3 : 2) + 7) / 8);

    /// <summary>
    /// Prunes a row-major dense matrix to N:M: in each block of M inputs the N largest |w| are kept (ties go to the
    /// lower index); the kept values stay fp32, or are group-quantized as K-wide rows with <paramref name="values"/>.
    /// </summary>
    /// <param name="dense">OutFeatures x InFeatures finite weights, row-major.</param>
    /// <param name="n">Kept per block: 2:4, 1:4 or 2:8.</param>
    /// <param name="m">Block length: 4 or 8; must divide <paramref name="inFeatures"/>.</param>
    /// <param name="values">Null for fp32 values; otherwise 4 or 8 bits with a group size dividing K (or 0).</param>
    /// <exception cref="ArgumentException">An unsupported pattern or scheme, a shape mismatch, or a NaN/Inf weight (row and column named).</exception>
    public static NmSparseWeight Prune(ReadOnlySpan<float> dense, int outFeatures, int inFeatures, int n, int m, QuantizationScheme? values = null)
    {
        ValidateShape(outFeatures, inFeatures, n, m);
        int k = inFeatures / m * n;
        if (values is { } scheme) ValidateValueScheme(scheme, k);
        long expected = (long)outFeatures * inFeatures;
        if (dense.Length != expected)
            throw new ArgumentException(Invariant($"dense has {dense.Length} values; expected OutFeatures x InFeatures = {outFeatures} x {inFeatures} = {expected}"), nameof(dense));
        for (int i = 0; i < dense.Length; i++)
            if (!float.IsFinite(dense[i]))
                throw new ArgumentException(Invariant($"dense[row {i / inFeatures}, column {i % inFeatures}] is {dense[i]}; expected finite weights"), nameof(dense));

        int rowBytes = IndexRowBytes(k, m);
        var indices = new byte[checked(outFeatures * rowBytes)];
        var kept = new float[checked(outFeatures * k)];
        unsafe
        {
            fixed (float* densePointer = dense)
            {
                nint address = (nint)densePointer;
                SparseParallel.For(outFeatures, inFeatures, (start, end) =>
                {
                    int[] positions = ArrayPool<int>.Shared.Rent(k);
                    try
                    {
                        for (int r = start; r < end; r++)
                        {
                            PruneRow(new ReadOnlySpan<float>((float*)address + (nint)r * inFeatures, inFeatures), n, m,
                                kept.AsSpan(r * k, k), positions.AsSpan(0, k));
                            if (m == 8) PackedBits.PackRow<Bits3>(positions.AsSpan(0, k), indices.AsSpan(r * rowBytes, rowBytes));
                            else PackedBits.PackRow<Bits2>(positions.AsSpan(0, k), indices.AsSpan(r * rowBytes, rowBytes));
                        }
                    }
                    finally
                    {
                        ArrayPool<int>.Shared.Return(positions);
                    }
                });
            }
        }

        if (values is { } valueScheme)
        {
            GroupQuantizedWeight quantized;
            try
            {
                quantized = GroupQuantizedWeight.Quantize(kept, outFeatures, k, valueScheme);
            }
            catch (ArgumentException e)
            {
                // The quantizer sees the compressed [Out, K] rows: say so, or its column numbers would read as inputs.
                throw new ArgumentException(Invariant($"quantizing the kept values ({k} per row; the columns below count kept values, not inputs): {e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal)}"), nameof(dense), e);
            }
            return new NmSparseWeight(outFeatures, inFeatures, n, m, indices, null, quantized);
        }
        return new NmSparseWeight(outFeatures, inFeatures, n, m, indices, kept, null);
    }

    /// <summary>Rebuilds an N:M weight with fp32 values from its stored parts, validating every length and value (arrays not copied).</summary>
    /// <param name="indices">OutFeatures x ceil8(K * log2(M)) bytes of packed positions.</param>
    /// <param name="values">OutFeatures x K finite values.</param>
    /// <exception cref="ArgumentException">A part with the wrong length or a bad value, named with what was expected.</exception>
    public static NmSparseWeight FromParts(int outFeatures, int inFeatures, int n, int m, byte[] indices, float[] values)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(values);
        ValidateShape(outFeatures, inFeatures, n, m);
        int k = inFeatures / m * n;
        ValidateIndices(outFeatures, inFeatures, n, m, indices);
        long expected = (long)outFeatures * k;
        if (values.LongLength != expected)
            throw new ArgumentException(Invariant($"values has {values.LongLength} values; {n}:{m} [{outFeatures}, {inFeatures}] expects OutFeatures x K = {outFeatures} x {k} = {expected}"), nameof(values));
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new ArgumentException(Invariant($"values[{i}] (row {i / k}, kept value {i % k}) is {values[i]}; expected a finite value"), nameof(values));
        return new NmSparseWeight(outFeatures, inFeatures, n, m, indices, values, null);
    }

    /// <summary>Rebuilds an N:M weight whose K-wide compressed rows are group-quantized (4 or 8 bits).</summary>
    /// <param name="indices">OutFeatures x ceil8(K * log2(M)) bytes of packed positions.</param>
    /// <param name="values">The quantized compressed rows: [OutFeatures, K], 4 or 8 bits.</param>
    /// <exception cref="ArgumentException">A part with the wrong length or shape, named with what was expected.</exception>
    public static NmSparseWeight FromParts(int outFeatures, int inFeatures, int n, int m, byte[] indices, GroupQuantizedWeight values)
    {
        ArgumentNullException.ThrowIfNull(indices);
        ArgumentNullException.ThrowIfNull(values);
        ValidateShape(outFeatures, inFeatures, n, m);
        int k = inFeatures / m * n;
        ValidateIndices(outFeatures, inFeatures, n, m, indices);
        if (values.OutFeatures != outFeatures || values.InFeatures != k)
            throw new ArgumentException(Invariant($"values is [{values.OutFeatures}, {values.InFeatures}]; {n}:{m} [{outFeatures}, {inFeatures}] expects the compressed rows [OutFeatures, K] = [{outFeatures}, {k}]"), nameof(values));
        ValidateValueScheme(values.Scheme, k);
        return new NmSparseWeight(outFeatures, inFeatures, n, m, indices, null, values);
    }

    /// <inheritdoc/>
    public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(batch);
        long expectedX = (long)batch * InFeatures, expectedY = (long)batch * OutFeatures;
        if (x.Length != expectedX)
            throw new ArgumentException(Invariant($"x has {x.Length} values; {Format} [{OutFeatures}, {InFeatures}] with batch {batch} expects batch x InFeatures = {expectedX}"), nameof(x));
        if (y.Length != expectedY)
            throw new ArgumentException(Invariant($"y has {y.Length} values; {Format} [{OutFeatures}, {InFeatures}] with batch {batch} expects batch x OutFeatures = {expectedY}"), nameof(y));
        if (batch == 0) return;
        unsafe
        {
            fixed (float* xp = x, yp = y)
            {
                switch (N, M)
                {
                    case (2, 4): MatMul<Nm2Of4>(xp, yp, batch); break;
                    case (1, 4): MatMul<Nm1Of4>(xp, yp, batch); break;
                    default: MatMul<Nm2Of8>(xp, yp, batch); break;
                }
            }
        }
    }

    /// <inheritdoc/>
    public void Dequantize(Span<float> destination)
    {
        long expected = (long)OutFeatures * InFeatures;
        if (destination.Length != expected)
            throw new ArgumentException(Invariant($"destination has {destination.Length} values; {Format} [{OutFeatures}, {InFeatures}] expects OutFeatures x InFeatures = {expected}"), nameof(destination));
        destination.Clear();
        int k = CompressedWidth;
        var row = new float[k];
        for (int r = 0; r < OutFeatures; r++)
        {
            ReadValues(r, row);
            var indexRow = new ReadOnlySpan<byte>(_indices, r * _indexRowBytes, _indexRowBytes);
            for (int j = 0; j < k; j++)
                destination[r * InFeatures + j / N * M + PackedBits.ReadLevel(indexRow, j, IndexBits)] = row[j];
        }
    }

    private unsafe void ReadValues(int row, Span<float> destination)
    {
        if (_values is not null)
        {
            _values.AsSpan(row * CompressedWidth, CompressedWidth).CopyTo(destination);
            return;
        }
        fixed (float* d = destination) QuantizedRows.DequantizeRow(_quantizedValues!, row, d);
    }

    private unsafe void MatMul<TP>(float* x, float* y, int batch) where TP : struct, INmPattern
    {
        int k = CompressedWidth, outF = OutFeatures, inF = InFeatures;
        nint xa = (nint)x, ya = (nint)y;
        if (batch == 1 && _values is not null)
        {
            // A struct body straight on the pool: no closure, the arrays pinned once per call.
            fixed (byte* indices = _indices)
            fixed (float* values = _values)
            {
                var body = new FloatRowsBody<TP>
                {
                    Values = values, Indices = indices, IndicesEnd = indices + _indices.Length, RowBytes = _indexRowBytes,
                    K = k, X = x, Y = y,
                };
                int degree = (long)outF * k < SparseParallel.Threshold ? 1 : SparseParallel.MaxDegreeOfParallelism;
                WorkerPool.Shared.For(outF, ref body, Math.Max(1, degree));
            }
            return;
        }

        if (batch == 1)
        {
            SparseParallel.For(outF, k, (start, end) =>
            {
                float[]? buffer = _values is null ? ArrayPool<float>.Shared.Rent(k) : null;
                try
                {
                    fixed (byte* indices = _indices)
                    fixed (float* values = _values)
                    fixed (float* scratch = buffer)
                    {
                        byte* indicesEnd = indices + _indices.Length;
                        for (int r = start; r < end; r++)
                        {
                            float* v = values + (nint)r * k;
                            if (values == null)
                            {
                                QuantizedRows.DequantizeRow(_quantizedValues!, r, scratch);
                                v = scratch;
                            }
                            ((float*)ya)[r] = SparseNmKernels.RowDot<TP>(v, indices + (nint)r * _indexRowBytes, indicesEnd, k, (float*)xa);
                        }
                    }
                }
                finally
                {
                    if (buffer is not null) ArrayPool<float>.Shared.Return(buffer);
                }
            });
            return;
        }

        float[] xTBuffer = ArrayPool<float>.Shared.Rent(inF * SparseBatched.MaxTile);
        try
        {
            fixed (float* xT = xTBuffer)
            {
                nint xTa = (nint)xT;
                for (int first = 0; first < batch; first += SparseBatched.MaxTile)
                {
                    int rows = Math.Min(SparseBatched.MaxTile, batch - first);
                    int tile = SparseBatched.TileWidth(rows);
                    SparseBatched.PackTransposed(x, inF, first, rows, tile, xT);
                    int firstRow = first;
                    SparseParallel.For(outF, (long)k * tile, (start, end) =>
                    {
                        float[]? buffer = _values is null ? ArrayPool<float>.Shared.Rent(k) : null;
                        int[] columnBuffer = ArrayPool<int>.Shared.Rent(k);
                        try
                        {
                            float* acc = stackalloc float[SparseBatched.MaxTile];
                            fixed (byte* indices = _indices)
                            fixed (float* values = _values)
                            fixed (float* scratch = buffer)
                            fixed (int* columns = columnBuffer)
                            {
                                for (int r = start; r < end; r++)
                                {
                                    float* v = values + (nint)r * k;
                                    if (values == null)
                                    {
                                        QuantizedRows.DequantizeRow(_quantizedValues!, r, scratch);
                                        v = scratch;
                                    }
                                    SparseNmKernels.DecodeColumns<TP>(indices + (nint)r * _indexRowBytes, k, columns);
                                    SparseBatched.RowProduct(v, columns, k, (float*)xTa, tile, acc);
                                    for (int t = 0; t < rows; t++) ((float*)ya)[(nint)(firstRow + t) * outF + r] = acc[t];
                                }
                            }
                        }
                        finally
                        {
                            if (buffer is not null) ArrayPool<float>.Shared.Return(buffer);
                            ArrayPool<int>.Shared.Return(columnBuffer);
                        }
                    });
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(xTBuffer);
        }
    }

    private unsafe struct FloatRowsBody<TP> : IRangeBody where TP : struct, INmPattern
    {
        public float* Values, X, Y;
        public byte* Indices, IndicesEnd;
        public int RowBytes, K;

        public readonly void Invoke(int start, int end) =>
            SparseNmKernels.Rows<TP>(Values, Indices, IndicesEnd, RowBytes, K, X, Y, start, end);
    }

    /// <summary>Keeps the N largest |w| of each block (ties to the lower index), in position order.</summary>
    private static void PruneRow(ReadOnlySpan<float> row, int n, int m, Span<float> kept, Span<int> positions)
    {
        int o = 0;
        for (int start = 0; start < row.Length; start += m)
        {
            for (int i = 0; i < m; i++)
            {
                float a = Math.Abs(row[start + i]);
                // Rank = how many block entries beat this one: larger magnitude, or equal and earlier.
                int rank = 0;
                for (int j = 0; j < m; j++)
                {
                    float b = Math.Abs(row[start + j]);
                    if (b > a || (b == a && j < i)) rank++;
                }
                if (rank < n)
                {
                    kept[o] = row[start + i];
                    positions[o] = i;
                    o++;
                }
            }
        }
    }

    private static void ValidateShape(int outFeatures, int inFeatures, int n, int m)
    {
        if (!((n == 2 && m == 4) || (n == 1 && m == 4) || (n == 2 && m == 8)))
            throw new ArgumentException(Invariant($"the N:M pattern {n}:{m} has no kernel; expected 2:4, 1:4 or 2:8"), nameof(n));
        if (outFeatures <= 0)
            throw new ArgumentException(Invariant($"outFeatures is {outFeatures}; expected a positive number of weight rows"), nameof(outFeatures));
        if (inFeatures <= 0 || inFeatures % m != 0)
            throw new ArgumentException(Invariant($"inFeatures is {inFeatures}; the {n}:{m} pattern expects a positive multiple of M = {m}"), nameof(inFeatures));
        if ((long)outFeatures * inFeatures > int.MaxValue)
            throw new ArgumentException(Invariant($"a [{outFeatures}, {inFeatures}] weight is too large; expected at most {int.MaxValue} values"), nameof(outFeatures));
    }

    private static void ValidateValueScheme(QuantizationScheme scheme, int k)
    {
        if (scheme.Bits != 4 && scheme.Bits != 8)
            throw new ArgumentException(Invariant($"N:M values quantized to {scheme.Bits} bits have no kernel; expected 4 or 8 bits (or fp32 values)"), "values");
        string? problem = Catalogue.KernelCatalogue.QuantizationProblem(scheme.Bits, scheme.GroupSize, k);
        if (problem is not null)
            throw new ArgumentException(Invariant($"N:M values are quantized over the compressed rows of K = {k} values: {problem}"), "values");
    }

    private static void ValidateIndices(int outFeatures, int inFeatures, int n, int m, byte[] indices)
    {
        int k = inFeatures / m * n;
        int bits = m == 8 ? 3 : 2;
        int rowBytes = IndexRowBytes(k, m);
        long expected = (long)outFeatures * rowBytes;
        if (indices.LongLength != expected)
            throw new ArgumentException(Invariant($"indices has {indices.LongLength} bytes; {n}:{m} [{outFeatures}, {inFeatures}] expects OutFeatures x ceil8(K x {bits} bits) = {outFeatures} x {rowBytes} = {expected}"), nameof(indices));
        int paddingBits = (int)((long)rowBytes * 8 - (long)k * bits);
        for (int r = 0; r < outFeatures; r++)
        {
            var row = new ReadOnlySpan<byte>(indices, r * rowBytes, rowBytes);
            if (paddingBits > 0 && (row[rowBytes - 1] >> (8 - paddingBits)) != 0)
                throw new ArgumentException(Invariant($"indices row {r} has non-zero padding bits in its last byte (0x{row[rowBytes - 1]:X2}); the top {paddingBits} bits must be zero"), nameof(indices));
            if (n < 2) continue;
            for (int j = 0; j < k; j += n)
            {
                int previous = PackedBits.ReadLevel(row, j, bits);
                for (int t = 1; t < n; t++)
                {
                    int position = PackedBits.ReadLevel(row, j + t, bits);
                    if (position <= previous)
                        throw new ArgumentException(Invariant($"indices row {r}, block {j / n} has positions {previous} then {position}; expected strictly increasing positions inside a block"), nameof(indices));
                    previous = position;
                }
            }
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
