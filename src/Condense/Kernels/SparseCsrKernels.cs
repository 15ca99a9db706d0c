using System.Runtime.CompilerServices;

namespace Condense.Kernels;

/// <summary>CSR rows at batch 1: sum over the row's non-zeros of value * x[column], with u16 or u32 columns.</summary>
internal static unsafe class SparseCsrKernels
{
    /// <summary>sum over j &lt; count of values[j] * x[columns[j]].</summary>
    /// <remarks>
    /// Four scalar chains of indexed loads: measured 1.7x faster than the AVX2 hardware gather on the target
    /// (Zen 5); .NET 10 has no 512-bit gather. The cost is the indexed loads, which SIMD does not reduce.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float RowDot<TIndex>(float* values, TIndex* columns, int count, float* x) where TIndex : unmanaged
    {
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int j = 0;
        for (; j + 4 <= count; j += 4)
        {
            a0 = MathF.FusedMultiplyAdd(values[j], x[SparseBatched.Column(columns, j)], a0);
            a1 = MathF.FusedMultiplyAdd(values[j + 1], x[SparseBatched.Column(columns, j + 1)], a1);
            a2 = MathF.FusedMultiplyAdd(values[j + 2], x[SparseBatched.Column(columns, j + 2)], a2);
            a3 = MathF.FusedMultiplyAdd(values[j + 3], x[SparseBatched.Column(columns, j + 3)], a3);
        }
        for (; j < count; j++) a0 = MathF.FusedMultiplyAdd(values[j], x[SparseBatched.Column(columns, j)], a0);
        return (a0 + a1) + (a2 + a3);
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
}
