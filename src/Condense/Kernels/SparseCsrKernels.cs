using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Condense.Kernels;

/// <summary>CSR rows at batch 1: sum over the row's non-zeros of value * x[column], with u16 or u32 columns.</summary>
internal static unsafe class SparseCsrKernels
{
    /// <summary>sum over j &lt; count of values[j] * x[columns[j]].</summary>
    public static float RowDot<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        if (Avx2.IsSupported) return RowDotAvx2(values, columns, count, x);
        if (Vector128.IsHardwareAccelerated) return RowDotVector128(values, columns, count, x);
        return RowDotScalar(values, columns, count, x);
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> LoadColumns<TIndex>(TIndex* columns) where TIndex : unmanaged
    {
        if (typeof(TIndex) == typeof(ushort)) return Avx2.ConvertToVector256Int32((ushort*)columns);
        return Vector256.Load((int*)columns);
    }

    // .NET 10 exposes no 512-bit gather, so AVX-512 machines use the 256-bit one too, four chains deep.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float RowDotAvx2<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        var acc0 = Vector256<float>.Zero;
        var acc1 = Vector256<float>.Zero;
        var acc2 = Vector256<float>.Zero;
        var acc3 = Vector256<float>.Zero;
        int j = 0;
        for (; j + 32 <= count; j += 32)
        {
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j), Avx2.GatherVector256(x, LoadColumns(columns + j), 4), acc0);
            acc1 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j + 8), Avx2.GatherVector256(x, LoadColumns(columns + j + 8), 4), acc1);
            acc2 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j + 16), Avx2.GatherVector256(x, LoadColumns(columns + j + 16), 4), acc2);
            acc3 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j + 24), Avx2.GatherVector256(x, LoadColumns(columns + j + 24), 4), acc3);
        }
        for (; j + 8 <= count; j += 8)
            acc0 = Vector256.FusedMultiplyAdd(Vector256.Load(values + j), Avx2.GatherVector256(x, LoadColumns(columns + j), 4), acc0);
        float sum = Vector256.Sum((acc0 + acc1) + (acc2 + acc3));
        for (; j < count; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[SparseBatched.Column(columns, j)], sum);
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float RowDotVector128<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        var acc = Vector128<float>.Zero;
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            var gathered = Vector128.Create(
                x[SparseBatched.Column(columns, j)], x[SparseBatched.Column(columns, j + 1)],
                x[SparseBatched.Column(columns, j + 2)], x[SparseBatched.Column(columns, j + 3)]);
            acc = Vector128.FusedMultiplyAdd(Vector128.Load(values + j), gathered, acc);
        }
        float sum = Vector128.Sum(acc);
        for (; j < count; j++)
            sum = MathF.FusedMultiplyAdd(values[j], x[SparseBatched.Column(columns, j)], sum);
        return sum;
    }
}
