using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>
/// Batched sparse rows (batch &gt;= 2): the activations are transposed into tiles xT[input, t] of T batch rows,
/// so each stored weight is one broadcast times contiguous vectors of T activations, with no gather at all.
/// Shared by CSR and N:M (whose packed positions are first decoded into column numbers).
/// </summary>
internal static unsafe class SparseBatched
{
    /// <summary>Largest tile: 32 batch rows keep a 4096-wide xT tile at 512 KiB, inside L2.</summary>
    public const int MaxTile = 32;

    /// <summary>Lanes of the widest accelerated float vector (1 when only the scalar path runs).</summary>
    public static int VectorWidth =>
        Vector512.IsHardwareAccelerated ? Vector512<float>.Count :
        Vector256.IsHardwareAccelerated ? Vector256<float>.Count :
        Vector128.IsHardwareAccelerated ? Vector128<float>.Count : 1;

    /// <summary>Tile width for <paramref name="rows"/> remaining batch rows: a multiple of the vector width, at most <see cref="MaxTile"/>.</summary>
    public static int TileWidth(int rows)
    {
        int w = VectorWidth;
        return Math.Min(Math.Max(MaxTile / w, 1) * w, (rows + w - 1) / w * w);
    }

    /// <summary>xT[i * T + t] = x[(first + t) * inFeatures + i] for t &lt; rows, zero for rows &lt;= t &lt; T.</summary>
    public static void PackTransposed(float* x, int inFeatures, int first, int rows, int tile, float* xT)
    {
        for (int t = 0; t < tile; t++)
        {
            float* dst = xT + t;
            if (t >= rows)
            {
                for (int i = 0; i < inFeatures; i++) dst[(nint)i * tile] = 0f;
                continue;
            }
            float* src = x + (nint)(first + t) * inFeatures;
            for (int i = 0; i < inFeatures; i++) dst[(nint)i * tile] = src[i];
        }
    }

    /// <summary>acc[t] = sum over j of values[j] * xT[columns[j] * T + t], for t &lt; T (T a multiple of the vector width).</summary>
    public static void RowProduct<TIndex>(float* values, TIndex* columns, int count, float* xT, int tile, float* acc)
        where TIndex : unmanaged
    {
        if (Vector512.IsHardwareAccelerated) RowProduct<F512, TIndex>(values, columns, count, xT, tile, acc);
        else if (Vector256.IsHardwareAccelerated) RowProduct<F256, TIndex>(values, columns, count, xT, tile, acc);
        else if (Vector128.IsHardwareAccelerated) RowProduct<F128, TIndex>(values, columns, count, xT, tile, acc);
        else RowProduct<F1, TIndex>(values, columns, count, xT, tile, acc);
    }

    /// <summary>Reads column <paramref name="j"/> of a u16, u32 or int32 index array.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Column<TIndex>(TIndex* columns, nint j) where TIndex : unmanaged
    {
        if (typeof(TIndex) == typeof(ushort)) return ((ushort*)columns)[j];
        if (typeof(TIndex) == typeof(uint)) return (nint)((uint*)columns)[j];
        return ((int*)columns)[j];
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowProduct<TV, TIndex>(float* values, TIndex* columns, int count, float* xT, int tile, float* acc)
        where TV : struct, IFloatVector<TV>
        where TIndex : unmanaged
    {
        int w = TV.Count;
        for (int t = 0; t < tile; t += w)
        {
            // Four independent chains hide the FMA latency; they are summed in a fixed order.
            TV a0 = TV.Zero, a1 = TV.Zero, a2 = TV.Zero, a3 = TV.Zero;
            float* xt = xT + t;
            int j = 0;
            for (; j + 4 <= count; j += 4)
            {
                a0 = TV.Fma(TV.Broadcast(values[j]), TV.Load(xt + Column(columns, j) * tile), a0);
                a1 = TV.Fma(TV.Broadcast(values[j + 1]), TV.Load(xt + Column(columns, j + 1) * tile), a1);
                a2 = TV.Fma(TV.Broadcast(values[j + 2]), TV.Load(xt + Column(columns, j + 2) * tile), a2);
                a3 = TV.Fma(TV.Broadcast(values[j + 3]), TV.Load(xt + Column(columns, j + 3) * tile), a3);
            }
            for (; j < count; j++)
                a0 = TV.Fma(TV.Broadcast(values[j]), TV.Load(xt + Column(columns, j) * tile), a0);
            TV.Store(TV.Add(TV.Add(a0, a1), TV.Add(a2, a3)), acc + t);
        }
    }
}
