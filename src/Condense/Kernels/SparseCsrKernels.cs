using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>CSR rows at batch 1: sum over the row's non-zeros of value * x[column], with u16 or u32 columns.</summary>
/// <remarks>
/// The cost is one indexed load of x per non-zero (x, 16 KiB for 4096 inputs, stays in L1): the kernel is bound by
/// those loads, not by the 6 bytes per non-zero it streams. With AVX2 half the x values come from 8-wide hardware
/// gathers (8 values and 8 columns in one load each) and half from scalar loads. Without AVX2 eight scalar chains
/// walk the row with pointers (the indexed form cost a sign extension and a move per value).
/// </remarks>
internal static unsafe class SparseCsrKernels
{
    /// <summary>sum over j &lt; count of values[j] * x[columns[j]], at the widest width <see cref="KernelOptions"/> allows.</summary>
    public static float RowDot<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged =>
        KernelOptions.VectorBits >= 256 && Avx2.IsSupported
            ? RowDotGather(values, columns, count, x)
            : RowDotChains(values, columns, count, x);

    /// <summary>Rows [start, end) of y = W x at batch 1: one row dot product per row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows<TIndex>(float* values, TIndex* columns, int* rowPointers, float* x, float* y, int start, int end) where TIndex : unmanaged
    {
        if (KernelOptions.VectorBits >= 256 && Avx2.IsSupported)
        {
            for (int r = start; r < end; r++)
            {
                int first = rowPointers[r];
                y[r] = RowDotGather(values + first, columns + first, rowPointers[r + 1] - first, x);
            }
            return;
        }
        for (int r = start; r < end; r++)
        {
            int first = rowPointers[r];
            y[r] = RowDotChains(values + first, columns + first, rowPointers[r + 1] - first, x);
        }
    }

    /// <summary>The scalar reference: one chain in storage order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float RowDotScalar<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        float sum = 0f;
        for (int j = 0; j < count; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[SparseBatched.Column(columns, j)], sum);
        return sum;
    }

    /// <summary>Eight scalar chains (the FMA latency needs them), walking the row with pointers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float RowDotChains<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        float* v = values, end = values + count;
        TIndex* c = columns;
        for (; v + 8 <= end; v += 8, c += 8)
        {
            a0 = MathF.FusedMultiplyAdd(v[0], x[SparseBatched.Column(c, 0)], a0);
            a1 = MathF.FusedMultiplyAdd(v[1], x[SparseBatched.Column(c, 1)], a1);
            a2 = MathF.FusedMultiplyAdd(v[2], x[SparseBatched.Column(c, 2)], a2);
            a3 = MathF.FusedMultiplyAdd(v[3], x[SparseBatched.Column(c, 3)], a3);
            a4 = MathF.FusedMultiplyAdd(v[4], x[SparseBatched.Column(c, 4)], a4);
            a5 = MathF.FusedMultiplyAdd(v[5], x[SparseBatched.Column(c, 5)], a5);
            a6 = MathF.FusedMultiplyAdd(v[6], x[SparseBatched.Column(c, 6)], a6);
            a7 = MathF.FusedMultiplyAdd(v[7], x[SparseBatched.Column(c, 7)], a7);
        }
        for (; v < end; v++, c++) a0 = MathF.FusedMultiplyAdd(v[0], x[SparseBatched.Column(c, 0)], a0);
        return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    }

    /// <summary>
    /// Per 16 non-zeros one 8-wide gather and eight scalar loads of x: the gather and the scalar loads go through
    /// different paths of the core, so mixing them beats either alone (on the target, Zen 5, u16 columns: about 15%
    /// over gathers only and 25% over eight scalar chains). The tail is one more gather and at most 7 scalar loads spread over the four chains. Software prefetch
    /// measured no gain here: the kernel is bound by the loads of x, not by the 6 bytes per non-zero it streams.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float RowDotGather<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        var a0 = Vector256<float>.Zero;
        var a1 = Vector256<float>.Zero;
        float b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        int j = 0;
        for (; j + 16 <= count; j += 16)
        {
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j), Avx2.GatherVector256(x, Columns8(columns, j), 4), a0);
            if (typeof(TIndex) == typeof(ushort))
            {
                // Four u16 columns per 64-bit load; x read with integer loads, paired into 64-bit lanes and multiplied as
                // one vector: the integer side of the core takes this half, beside the gather and the vector loads.
                ushort* c16 = (ushort*)columns + j + 8;
                uint* xi = (uint*)x;
                ulong w0 = Unsafe.ReadUnaligned<ulong>(c16), w1 = Unsafe.ReadUnaligned<ulong>(c16 + 4);
                ulong p0 = xi[(nint)(ushort)w0] | ((ulong)xi[(nint)(ushort)(w0 >> 16)] << 32);
                ulong p1 = xi[(nint)(ushort)(w0 >> 32)] | ((ulong)xi[(nint)(w0 >> 48)] << 32);
                ulong p2 = xi[(nint)(ushort)w1] | ((ulong)xi[(nint)(ushort)(w1 >> 16)] << 32);
                ulong p3 = xi[(nint)(ushort)(w1 >> 32)] | ((ulong)xi[(nint)(w1 >> 48)] << 32);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j + 8), Vector256.Create(p0, p1, p2, p3).AsSingle(), a1);
                continue;
            }
            float* v = values + j + 8;
            TIndex* c = columns + j + 8;
            b0 = MathF.FusedMultiplyAdd(v[0], x[SparseBatched.Column(c, 0)], b0);
            b1 = MathF.FusedMultiplyAdd(v[1], x[SparseBatched.Column(c, 1)], b1);
            b2 = MathF.FusedMultiplyAdd(v[2], x[SparseBatched.Column(c, 2)], b2);
            b3 = MathF.FusedMultiplyAdd(v[3], x[SparseBatched.Column(c, 3)], b3);
            b0 = MathF.FusedMultiplyAdd(v[4], x[SparseBatched.Column(c, 4)], b0);
            b1 = MathF.FusedMultiplyAdd(v[5], x[SparseBatched.Column(c, 5)], b1);
            b2 = MathF.FusedMultiplyAdd(v[6], x[SparseBatched.Column(c, 6)], b2);
            b3 = MathF.FusedMultiplyAdd(v[7], x[SparseBatched.Column(c, 7)], b3);
        }
        if (j + 8 <= count)
        {
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j), Avx2.GatherVector256(x, Columns8(columns, j), 4), a1);
            j += 8;
        }
        // At most 7 left, spread over the four scalar chains (two dependent FMAs each at most).
        if (j < count) b0 = MathF.FusedMultiplyAdd(values[j], x[SparseBatched.Column(columns, j)], b0);
        if (j + 1 < count) b1 = MathF.FusedMultiplyAdd(values[j + 1], x[SparseBatched.Column(columns, j + 1)], b1);
        if (j + 2 < count) b2 = MathF.FusedMultiplyAdd(values[j + 2], x[SparseBatched.Column(columns, j + 2)], b2);
        if (j + 3 < count) b3 = MathF.FusedMultiplyAdd(values[j + 3], x[SparseBatched.Column(columns, j + 3)], b3);
        if (j + 4 < count) b0 = MathF.FusedMultiplyAdd(values[j + 4], x[SparseBatched.Column(columns, j + 4)], b0);
        if (j + 5 < count) b1 = MathF.FusedMultiplyAdd(values[j + 5], x[SparseBatched.Column(columns, j + 5)], b1);
        if (j + 6 < count) b2 = MathF.FusedMultiplyAdd(values[j + 6], x[SparseBatched.Column(columns, j + 6)], b2);
        return Vector256.Sum(a0 + a1) + ((b0 + b1) + (b2 + b3));
    }

    /// <summary>Eight columns starting at j, widened to int32 (u32 columns are below InFeatures &lt;= int.MaxValue).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Columns8<TIndex>(TIndex* columns, int j) where TIndex : unmanaged
    {
        if (typeof(TIndex) == typeof(ushort)) return Avx2.ConvertToVector256Int32((ushort*)columns + j);
        return Vector256.Load((int*)columns + j);
    }
}
