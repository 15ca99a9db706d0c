using System.Buffers;
using System.Globalization;
using Condense.Kernels;
using Condense.Nn;

namespace Condense.Sparsity;

/// <summary>
/// An unstructured sparse weight matrix [OutFeatures, InFeatures] in compressed sparse row form: fp32 values,
/// column indices (u16 when InFeatures &lt;= 65536, u32 otherwise) strictly increasing within a row, and
/// OutFeatures + 1 int32 row pointers (docs/format.md).
/// </summary>
public sealed class CsrWeight : IWeightStorage
{
    /// <summary>Largest InFeatures stored with u16 column indices.</summary>
    public const int MaxInFeaturesForU16 = 65536;

    private readonly float[] _values;
    private readonly ushort[]? _columns16;
    private readonly uint[]? _columns32;
    private readonly int[] _rowPointers;

    private CsrWeight(int outFeatures, int inFeatures, float[] values, ushort[]? columns16, uint[]? columns32, int[] rowPointers)
    {
        OutFeatures = outFeatures;
        InFeatures = inFeatures;
        _values = values;
        // Batch-1 products stream the values and column indices from memory: 2 MiB pages read them faster (see HugePages).
        HugePages.Advise(values);
        if (columns16 is not null) HugePages.Advise(columns16);
        if (columns32 is not null) HugePages.Advise(columns32);
        _columns16 = columns16;
        _columns32 = columns32;
        _rowPointers = rowPointers;
    }

    /// <inheritdoc/>
    public int OutFeatures { get; }

    /// <inheritdoc/>
    public int InFeatures { get; }

    /// <summary>Stored weights (nnz).</summary>
    public int NonZeroCount => _values.Length;

    /// <summary>The nnz values, row by row (the stored array).</summary>
    public float[] Values => _values;

    /// <summary>u16 column of each value when InFeatures &lt;= 65536 (the stored array), else null.</summary>
    public ushort[]? ColumnIndices16 => _columns16;

    /// <summary>u32 column of each value when InFeatures &gt; 65536 (the stored array), else null.</summary>
    public uint[]? ColumnIndices32 => _columns32;

    /// <summary>OutFeatures + 1 offsets: row r's values are [RowPointers[r], RowPointers[r + 1]) (the stored array).</summary>
    public int[] RowPointers => _rowPointers;

    /// <inheritdoc/>
    public string Format => _columns16 is not null ? "csr-fp32-u16" : "csr-fp32-u32";

    /// <inheritdoc/>
    public long ByteCount => _values.LongLength * 4 + _values.LongLength * (_columns16 is not null ? 2 : 4) + _rowPointers.LongLength * 4;

    /// <summary>
    /// Keeps exactly nnz = Out * In - floor(<paramref name="fraction"/> * Out * In) weights: the largest |w|,
    /// ties broken by the lower flat index (row-major), so the result is the same on every run.
    /// </summary>
    /// <param name="dense">OutFeatures x InFeatures finite weights, row-major.</param>
    /// <param name="fraction">Fraction of weights removed, in [0, 1].</param>
    /// <exception cref="ArgumentException">A shape mismatch, a fraction outside [0, 1], or a NaN/Inf weight (row and column named).</exception>
    public static CsrWeight Prune(ReadOnlySpan<float> dense, int outFeatures, int inFeatures, double fraction)
    {
        if (!(fraction >= 0 && fraction <= 1))
            throw new ArgumentException(Invariant($"fraction is {fraction}; expected the fraction of weights to remove, in [0, 1]"), nameof(fraction));
        ValidateDense(dense, outFeatures, inFeatures);
        long total = (long)outFeatures * inFeatures;
        long keep = total - (long)Math.Floor(fraction * total);

        var (threshold, ties) = SelectThreshold(dense, keep);
        var rowPointers = new int[outFeatures + 1];
        var values = new float[keep];
        var columns16 = inFeatures <= MaxInFeaturesForU16 ? new ushort[keep] : null;
        var columns32 = columns16 is null ? new uint[keep] : null;
        int o = 0;
        long tiesLeft = ties;
        for (int r = 0; r < outFeatures; r++)
        {
            var row = dense.Slice(r * inFeatures, inFeatures);
            for (int c = 0; c < row.Length; c++)
            {
                uint key = Key(row[c]);
                if (key < threshold || (key == threshold && tiesLeft-- <= 0)) continue;
                values[o] = row[c];
                if (columns16 is not null) columns16[o] = (ushort)c;
                else columns32![o] = (uint)c;
                o++;
            }
            rowPointers[r + 1] = o;
        }
        return new CsrWeight(outFeatures, inFeatures, values, columns16, columns32, rowPointers);
    }

    /// <summary>Keeps every non-zero weight of a dense matrix.</summary>
    /// <exception cref="ArgumentException">A shape mismatch or a NaN/Inf weight (row and column named).</exception>
    public static CsrWeight FromDense(ReadOnlySpan<float> dense, int outFeatures, int inFeatures)
    {
        ValidateDense(dense, outFeatures, inFeatures);
        int nnz = 0;
        foreach (float w in dense) if (w != 0) nnz++;
        var rowPointers = new int[outFeatures + 1];
        var values = new float[nnz];
        var columns16 = inFeatures <= MaxInFeaturesForU16 ? new ushort[nnz] : null;
        var columns32 = columns16 is null ? new uint[nnz] : null;
        int o = 0;
        for (int r = 0; r < outFeatures; r++)
        {
            var row = dense.Slice(r * inFeatures, inFeatures);
            for (int c = 0; c < row.Length; c++)
            {
                if (row[c] == 0) continue;
                values[o] = row[c];
                if (columns16 is not null) columns16[o] = (ushort)c;
                else columns32![o] = (uint)c;
                o++;
            }
            rowPointers[r + 1] = o;
        }
        return new CsrWeight(outFeatures, inFeatures, values, columns16, columns32, rowPointers);
    }

    /// <summary>
    /// Keeps exactly the positions <paramref name="kept"/> flags (a pruning mask), with their values, even a kept
    /// value that happens to be zero: the stored non-zero pattern is the mask, not the values.
    /// </summary>
    /// <exception cref="ArgumentException">A shape mismatch, a mask of the wrong length, or a NaN/Inf weight (row and column named).</exception>
    public static CsrWeight FromMask(ReadOnlySpan<float> dense, int outFeatures, int inFeatures, ReadOnlySpan<bool> kept)
    {
        ValidateDense(dense, outFeatures, inFeatures);
        if (kept.Length != dense.Length)
            throw new ArgumentException(Invariant($"kept has {kept.Length} flags; expected one per weight, {dense.Length}"), nameof(kept));
        int nnz = 0;
        foreach (bool k in kept) if (k) nnz++;
        var rowPointers = new int[outFeatures + 1];
        var values = new float[nnz];
        var columns16 = inFeatures <= MaxInFeaturesForU16 ? new ushort[nnz] : null;
        var columns32 = columns16 is null ? new uint[nnz] : null;
        int o = 0;
        for (int r = 0; r < outFeatures; r++)
        {
            int start = r * inFeatures;
            for (int c = 0; c < inFeatures; c++)
            {
                if (!kept[start + c]) continue;
                values[o] = dense[start + c];
                if (columns16 is not null) columns16[o] = (ushort)c;
                else columns32![o] = (uint)c;
                o++;
            }
            rowPointers[r + 1] = o;
        }
        return new CsrWeight(outFeatures, inFeatures, values, columns16, columns32, rowPointers);
    }

    /// <summary>Rebuilds a CSR weight with u16 column indices (InFeatures &lt;= 65536) from its stored parts, validated (arrays not copied).</summary>
    /// <exception cref="ArgumentException">A part with the wrong length or a bad value, named with what was expected.</exception>
    public static CsrWeight FromParts(int outFeatures, int inFeatures, float[] values, ushort[] columnIndices, int[] rowPointers)
    {
        ArgumentNullException.ThrowIfNull(columnIndices);
        ValidateShape(outFeatures, inFeatures);
        if (inFeatures > MaxInFeaturesForU16)
            throw new ArgumentException(Invariant($"columnIndices is u16 but InFeatures is {inFeatures}; expected u32 column indices above {MaxInFeaturesForU16} inputs"), nameof(columnIndices));
        ValidateParts(outFeatures, inFeatures, values, columnIndices.LongLength, j => columnIndices[j], rowPointers);
        return new CsrWeight(outFeatures, inFeatures, values, columnIndices, null, rowPointers);
    }

    /// <summary>Rebuilds a CSR weight with u32 column indices (InFeatures &gt; 65536) from its stored parts, validated (arrays not copied).</summary>
    /// <exception cref="ArgumentException">A part with the wrong length or a bad value, named with what was expected.</exception>
    public static CsrWeight FromParts(int outFeatures, int inFeatures, float[] values, uint[] columnIndices, int[] rowPointers)
    {
        ArgumentNullException.ThrowIfNull(columnIndices);
        ValidateShape(outFeatures, inFeatures);
        if (inFeatures <= MaxInFeaturesForU16)
            throw new ArgumentException(Invariant($"columnIndices is u32 but InFeatures is {inFeatures}; expected u16 column indices up to {MaxInFeaturesForU16} inputs"), nameof(columnIndices));
        ValidateParts(outFeatures, inFeatures, values, columnIndices.LongLength, j => columnIndices[j], rowPointers);
        return new CsrWeight(outFeatures, inFeatures, values, null, columnIndices, rowPointers);
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
                if (_columns16 is not null) MatMul<ushort>(xp, yp, batch);
                else MatMul<uint>(xp, yp, batch);
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
        for (int r = 0; r < OutFeatures; r++)
            for (int j = _rowPointers[r]; j < _rowPointers[r + 1]; j++)
                destination[r * InFeatures + (int)(_columns16 is not null ? _columns16[j] : _columns32![j])] = _values[j];
    }

    private unsafe void MatMul<TIndex>(float* x, float* y, int batch) where TIndex : unmanaged
    {
        int outF = OutFeatures, inF = InFeatures;
        long perRow = Math.Max(1, _values.LongLength / outF);
        nint xa = (nint)x, ya = (nint)y;
        if (batch == 1)
        {
            // A struct body straight on the pool: no closure, and the arrays are pinned once per call.
            fixed (float* values = _values)
            fixed (ushort* c16 = _columns16)
            fixed (uint* c32 = _columns32)
            fixed (int* rowPointers = _rowPointers)
            {
                var body = new RowsBody<TIndex> { Values = values, Columns = c16 != null ? (TIndex*)c16 : (TIndex*)c32, RowPointers = rowPointers, X = x, Y = y };
                int degree = outF * perRow * 2 < SparseParallel.Threshold ? 1 : SparseParallel.MaxDegreeOfParallelism;
                WorkerPool.Shared.For(outF, ref body, Math.Max(1, degree));
            }
            return;
        }

        float[] xTBuffer = ArrayPool<float>.Shared.Rent(inF * SparseBatched.MaxTile);
        try
        {
            fixed (float* xT = xTBuffer)
            {
                nint xTa = (nint)xT;
                for (int firstBatch = 0; firstBatch < batch; firstBatch += SparseBatched.MaxTile)
                {
                    int rows = Math.Min(SparseBatched.MaxTile, batch - firstBatch);
                    int tile = SparseBatched.TileWidth(rows);
                    SparseBatched.PackTransposed(x, inF, firstBatch, rows, tile, xT);
                    int b0 = firstBatch;
                    SparseParallel.For(outF, perRow * tile, (start, end) =>
                    {
                        float* acc = stackalloc float[SparseBatched.MaxTile];
                        fixed (float* values = _values)
                        fixed (ushort* c16 = _columns16)
                        fixed (uint* c32 = _columns32)
                        {
                            TIndex* cols = c16 != null ? (TIndex*)c16 : (TIndex*)c32;
                            for (int r = start; r < end; r++)
                            {
                                int first = _rowPointers[r];
                                SparseBatched.RowProduct(values + first, cols + first, _rowPointers[r + 1] - first, (float*)xTa, tile, acc);
                                for (int t = 0; t < rows; t++) ((float*)ya)[(nint)(b0 + t) * outF + r] = acc[t];
                            }
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

    private unsafe struct RowsBody<TIndex> : IRangeBody where TIndex : unmanaged
    {
        public float* Values, X, Y;
        public TIndex* Columns;
        public int* RowPointers;

        public readonly void Invoke(int start, int end) => SparseCsrKernels.Rows(Values, Columns, RowPointers, X, Y, start, end);
    }

    // |w| as ordered bits: for non-negative finite floats, the uint order is the value order.
    private static uint Key(float w) => BitConverter.SingleToUInt32Bits(w) & 0x7FFF_FFFFu;

    /// <summary>The keep-th largest key and how many weights equal to it are kept (radix select on the top and low 16 bits).</summary>
    private static (uint Threshold, long Ties) SelectThreshold(ReadOnlySpan<float> dense, long keep)
    {
        if (keep == 0) return (uint.MaxValue, 0);
        var high = new long[1 << 16];
        foreach (float w in dense) high[Key(w) >> 16]++;
        long above = 0;
        int bin = (1 << 16) - 1;
        for (; bin > 0 && above + high[bin] < keep; bin--) above += high[bin];

        var low = new long[1 << 16];
        foreach (float w in dense)
        {
            uint key = Key(w);
            if (key >> 16 == (uint)bin) low[key & 0xFFFF]++;
        }
        int lowBin = (1 << 16) - 1;
        for (; lowBin > 0 && above + low[lowBin] < keep; lowBin--) above += low[lowBin];
        return (((uint)bin << 16) | (uint)lowBin, keep - above);
    }

    private static void ValidateShape(int outFeatures, int inFeatures)
    {
        if (outFeatures <= 0)
            throw new ArgumentException(Invariant($"outFeatures is {outFeatures}; expected a positive number of weight rows"), nameof(outFeatures));
        if (inFeatures <= 0)
            throw new ArgumentException(Invariant($"inFeatures is {inFeatures}; expected a positive number of weight columns"), nameof(inFeatures));
        if ((long)outFeatures * inFeatures > int.MaxValue)
            throw new ArgumentException(Invariant($"a [{outFeatures}, {inFeatures}] weight is too large; expected at most {int.MaxValue} values"), nameof(outFeatures));
    }

    private static void ValidateDense(ReadOnlySpan<float> dense, int outFeatures, int inFeatures)
    {
        ValidateShape(outFeatures, inFeatures);
        long expected = (long)outFeatures * inFeatures;
        if (dense.Length != expected)
            throw new ArgumentException(Invariant($"dense has {dense.Length} values; expected OutFeatures x InFeatures = {outFeatures} x {inFeatures} = {expected}"), nameof(dense));
        for (int i = 0; i < dense.Length; i++)
            if (!float.IsFinite(dense[i]))
                throw new ArgumentException(Invariant($"dense[row {i / inFeatures}, column {i % inFeatures}] is {dense[i]}; expected finite weights"), nameof(dense));
    }

    private static void ValidateParts(int outFeatures, int inFeatures, float[] values, long columnCount, Func<int, uint> column, int[] rowPointers)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(rowPointers);
        if (rowPointers.LongLength != outFeatures + 1L)
            throw new ArgumentException(Invariant($"rowPointers has {rowPointers.LongLength} values; [{outFeatures}, {inFeatures}] expects OutFeatures + 1 = {outFeatures + 1L}"), nameof(rowPointers));
        if (rowPointers[0] != 0)
            throw new ArgumentException(Invariant($"rowPointers[0] is {rowPointers[0]}; expected 0"), nameof(rowPointers));
        for (int r = 0; r < outFeatures; r++)
            if (rowPointers[r + 1] < rowPointers[r])
                throw new ArgumentException(Invariant($"rowPointers[{r + 1}] is {rowPointers[r + 1]}, below rowPointers[{r}] = {rowPointers[r]}; expected non-decreasing offsets"), nameof(rowPointers));
        int nnz = rowPointers[outFeatures];
        if (values.LongLength != nnz)
            throw new ArgumentException(Invariant($"values has {values.LongLength} values; rowPointers[{outFeatures}] says nnz = {nnz}"), nameof(values));
        if (columnCount != nnz)
            throw new ArgumentException(Invariant($"columnIndices has {columnCount} values; rowPointers[{outFeatures}] says nnz = {nnz}"), "columnIndices");
        for (int j = 0; j < nnz; j++)
            if (!float.IsFinite(values[j]))
                throw new ArgumentException(Invariant($"values[{j}] is {values[j]}; expected a finite value"), nameof(values));
        for (int r = 0; r < outFeatures; r++)
        {
            long previous = -1;
            for (int j = rowPointers[r]; j < rowPointers[r + 1]; j++)
            {
                uint c = column(j);
                if (c >= (uint)inFeatures)
                    throw new ArgumentException(Invariant($"columnIndices[{j}] (row {r}) is {c}; expected a column below InFeatures = {inFeatures}"), "columnIndices");
                if (c <= previous)
                    throw new ArgumentException(Invariant($"columnIndices[{j}] (row {r}) is {c} after {previous}; expected strictly increasing columns within a row"), "columnIndices");
                previous = c;
            }
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
