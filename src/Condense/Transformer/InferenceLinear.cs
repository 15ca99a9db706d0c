using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Transformer;

/// <summary>
/// Inference-only (NoGrad) ways of running an encoder layer's Linear layers with fewer calls and passes, each with
/// the bits of <see cref="Linear.Forward"/>: the query, key and value projections as one product, and a compressed
/// layer's product without its bias, so the bias is added in the pass that follows (GELU, residual + LayerNorm).
/// </summary>
/// <remarks>
/// Every helper returns null where it does not apply (a dense layer, an input observer for calibration, storages of
/// different formats); the caller then runs <see cref="Linear.Forward"/>.
/// </remarks>
internal static class InferenceLinear
{
    /// <summary>The three projections' rows stacked [3C, C], built from the storages it names.</summary>
    private sealed record MergedQkv(IWeightStorage Query, IWeightStorage Key, IWeightStorage Value, GroupQuantizedWeight Weight);

    // Keyed by the query layer; an entry whose storages are no longer the layers' (recompressed, reloaded) is rebuilt.
    private static readonly ConditionalWeakTable<Linear, MergedQkv> s_merged = new();

    /// <summary>
    /// Q, K and V of <paramref name="hidden"/> [rows, C] as one product with the three weights stacked: rows
    /// [rows, 3C], query in columns [0, C), key in [C, 2C), value in [2C, 3C), biases added. One call instead of three:
    /// one activation quantization, one dispatch of the workers, 3x the weight rows to split between them.
    /// </summary>
    /// <returns>
    /// An array from <see cref="System.Buffers.ArrayPool{T}.Shared"/> (possibly longer than rows x 3C; return it when
    /// done), or null unless the three layers hold group-quantized weights of one scheme and shape and nothing observes their
    /// inputs. Each output row of a group-quantized product depends only on its weight row and the input (threads
    /// split weight rows; the kernel choice depends on the input width, the rows and the scheme, not on the number
    /// of weight rows), so stacking gives the bits of the three calls (tested).
    /// </returns>
    /// <remarks>The stacked copy costs the three weights' bytes once more (2 x 221 KB per MiniLM layer at int4 g64 with its GEMM copy).</remarks>
    internal static float[]? ProjectQkv(Tensor hidden, Linear query, Linear key, Linear value)
    {
        if (query.InputObserver != null || key.InputObserver != null || value.InputObserver != null) return null;
        if (query.CompressedWeight is not GroupQuantizedWeight q || key.CompressedWeight is not GroupQuantizedWeight k ||
            value.CompressedWeight is not GroupQuantizedWeight v)
            return null;
        int channels = q.InFeatures, width = q.OutFeatures;
        if (q.Scheme != k.Scheme || q.Scheme != v.Scheme || k.InFeatures != channels || v.InFeatures != channels ||
            k.OutFeatures != width || v.OutFeatures != width || (q.ZeroPoints is null) != (k.ZeroPoints is null) ||
            (q.ZeroPoints is null) != (v.ZeroPoints is null) || hidden.Rank != 2 || hidden.Shape[1] != channels)
            return null;
        if (!s_merged.TryGetValue(query, out var merged) || !ReferenceEquals(merged.Query, q) || !ReferenceEquals(merged.Key, k) ||
            !ReferenceEquals(merged.Value, v))
        {
            merged = new MergedQkv(q, k, v, Stack(q, k, v));
            s_merged.AddOrUpdate(query, merged);
        }
        int rows = hidden.Shape[0], stride = 3 * width;
        // Rented (the caller returns it once attention has read it: a third of a layer's allocations) and not zeroed:
        // the product overwrites every value it owns (IWeightStorage.MatMulTransposed).
        var y = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, rows * stride));
        if (rows == 0) return y;
        merged.Weight.MatMulTransposed(hidden.Data.AsSpan(0, rows * channels), y.AsSpan(0, rows * stride), rows);
        // As Ops.StorageLinear's bias add (TensorPrimitives.Add per row), on each third of the row.
        Span<Tensor?> biases = [query.Bias, key.Bias, value.Bias];
        for (int part = 0; part < 3; part++)
        {
            if (biases[part] is not { } bias) continue;
            for (int r = 0; r < rows; r++)
            {
                var slice = y.AsSpan(r * stride + part * width, width);
                TensorPrimitives.Add(slice, bias.Data, slice);
            }
        }
        return y;
    }

    private static GroupQuantizedWeight Stack(GroupQuantizedWeight q, GroupQuantizedWeight k, GroupQuantizedWeight v)
    {
        static T[] Concat<T>(T[] a, T[] b, T[] c)
        {
            var all = new T[a.Length + b.Length + c.Length];
            a.CopyTo(all, 0);
            b.CopyTo(all, a.Length);
            c.CopyTo(all, a.Length + b.Length);
            return all;
        }
        // Rows are stored one after another (codes, then one scale and zero point per group, row-major), so stacking
        // the weights is stacking their arrays.
        return GroupQuantizedWeight.FromParts(3 * q.OutFeatures, q.InFeatures, q.Scheme, Concat(q.Packed, k.Packed, v.Packed),
            Concat(q.Scales, k.Scales, v.Scales), q.ZeroPoints is null ? null : Concat(q.ZeroPoints, k.ZeroPoints!, v.ZeroPoints!));
    }

    /// <summary>
    /// x W'^T of a compressed layer without its bias into a rented array (its first rows x Out values; the caller returns
    /// it to <see cref="System.Buffers.ArrayPool{T}.Shared"/>), or null where <see cref="ProductWithoutBias(Linear, Tensor)"/> would be.
    /// </summary>
    internal static float[]? PooledProductWithoutBias(Linear layer, Tensor x)
    {
        if (layer.InputObserver != null || layer.CompressedWeight is not { } storage) return null;
        if (x.Rank != 2 || x.Shape[1] != storage.InFeatures) return null;
        int rows = x.Shape[0];
        var y = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, rows * storage.OutFeatures));   // overwritten
        if (rows > 0) storage.MatMulTransposed(x.Data.AsSpan(0, rows * storage.InFeatures), y.AsSpan(0, rows * storage.OutFeatures), rows);
        return y;
    }

    /// <summary>
    /// <see cref="ProductWithoutBias(Linear, Tensor)"/> of the first rows x In values of <paramref name="x"/>; null for a
    /// dense layer or an observed input.
    /// </summary>
    internal static Tensor? ProductOfRowsWithoutBias(Linear layer, float[] x, int rows)
    {
        if (layer.InputObserver != null || layer.CompressedWeight is not { } storage) return null;
        var y = new Tensor(GC.AllocateUninitializedArray<float>(rows * storage.OutFeatures), rows, storage.OutFeatures);   // overwritten
        if (rows > 0) storage.MatMulTransposed(x.AsSpan(0, rows * storage.InFeatures), y.Data, rows);
        return y;
    }

    /// <summary>
    /// x W'^T of a compressed layer without its bias (the caller adds it in its next pass, as Ops.StorageLinear
    /// would: one TensorPrimitives.Add per row, before anything else); null for a dense layer or an observed input.
    /// </summary>
    internal static Tensor? ProductWithoutBias(Linear layer, Tensor x)
    {
        if (layer.InputObserver != null || layer.CompressedWeight is not { } storage) return null;
        if (x.Rank != 2 || x.Shape[1] != storage.InFeatures) return null;   // Forward names the problem
        int rows = x.Shape[0];
        var y = new Tensor(GC.AllocateUninitializedArray<float>(rows * storage.OutFeatures), rows, storage.OutFeatures);   // overwritten
        if (rows > 0) storage.MatMulTransposed(x.Data.AsSpan(0, rows * storage.InFeatures), y.Data, rows);
        return y;
    }
}
