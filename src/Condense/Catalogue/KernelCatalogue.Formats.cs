// Compiled into both the runtime and the generator/analyzers (see KernelCatalogue.cs): exact byte counts of
// every storage format of docs/format.md and the agreed formats brief. Keep it netstandard2.0-compatible C#.
namespace Condense.Catalogue;

public static partial class KernelCatalogue
{
    /// <summary>CND0007: the model, the plan's size, the budget's name, the budget, the largest layers.</summary>
    public const string BudgetExceededMessage = "Model '{0}' exceeds its budget: the plan needs {1}, but {2} allows {3}; the largest layers are {4}. Quantize more layers, use fewer bits, or raise {2}";

    /// <summary>Semi-structured N:M sparsity patterns with a kernel, as (N, M): N of every M consecutive inputs are kept.</summary>
    public static readonly int[][] SupportedSparsityPatterns = { new[] { 2, 4 }, new[] { 1, 4 }, new[] { 2, 8 } };

    /// <summary>Bit widths the kept values of an N:M layer can be quantized to.</summary>
    public static readonly int[] SemiStructuredValueBits = { 4, 8 };

    /// <summary>Whether N:M has a kernel.</summary>
    public static bool IsSupportedSparsityPattern(int n, int m)
    {
        foreach (var p in SupportedSparsityPatterns)
            if (p[0] == n && p[1] == m) return true;
        return false;
    }

    /// <summary>The supported patterns as text, e.g. <c>2:4, 1:4, 2:8</c>.</summary>
    public static string SupportedSparsityPatternsText
    {
        get
        {
            var parts = new string[SupportedSparsityPatterns.Length];
            for (int i = 0; i < parts.Length; i++) parts[i] = Format(SupportedSparsityPatterns[i][0]) + ":" + Format(SupportedSparsityPatterns[i][1]);
            return string.Join(", ", parts);
        }
    }

    /// <summary>Kept values per row of an N:M layer: K = In x N / M.</summary>
    public static int SemiStructuredKeptPerRow(int inFeatures, int n, int m) => m <= 0 ? 0 : (int)((long)inFeatures * n / m);

    /// <summary>Bits of one N:M position index: log2(M).</summary>
    public static int SemiStructuredIndexBits(int m)
    {
        int bits = 0;
        while ((1 << bits) < m) bits++;
        return bits;
    }

    /// <summary>
    /// Exact bytes of an N:M sparse weight: per-row byte-aligned position indices plus the kept values, float32
    /// (<paramref name="valueBits"/> = 0) or group-quantized over the K-wide compressed rows.
    /// </summary>
    public static long SemiStructuredSparseBytes(int outFeatures, int inFeatures, int n, int m, int valueBits, int groupSize, bool symmetric)
    {
        int kept = SemiStructuredKeptPerRow(inFeatures, n, m);
        long indices = outFeatures * (((long)kept * SemiStructuredIndexBits(m) + 7) / 8);
        long values = valueBits == 0
            ? (long)outFeatures * kept * Float32Bytes
            : GroupQuantizedBytes(outFeatures, kept, valueBits, groupSize, symmetric);
        return indices + values;
    }

    /// <summary>Weights an unstructured layer keeps: Out x In - floor(fraction x Out x In).</summary>
    public static long UnstructuredKeptCount(int outFeatures, int inFeatures, double fraction)
    {
        long total = (long)outFeatures * inFeatures;
        return total - (long)System.Math.Floor(fraction * total);
    }

    /// <summary>Exact bytes of a CSR weight: float32 values, 16-bit column indices (32-bit past 65,536 columns), int32 row pointers.</summary>
    public static long UnstructuredSparseBytes(int outFeatures, int inFeatures, double fraction)
    {
        long kept = UnstructuredKeptCount(outFeatures, inFeatures, fraction);
        return kept * Float32Bytes + kept * (inFeatures <= 65536 ? 2 : 4) + ((long)outFeatures + 1) * 4;
    }

    /// <summary>Exact bytes of low-rank float32 factors U [Out, r] and V [r, In].</summary>
    public static long LowRankBytes(int outFeatures, int inFeatures, int rank) => ((long)outFeatures * rank + (long)rank * inFeatures) * Float32Bytes;

    /// <summary>The largest rank whose factors are smaller than the dense matrix: r &lt; In x Out / (In + Out).</summary>
    public static int LargestSavingRank(int outFeatures, int inFeatures)
    {
        long product = (long)outFeatures * inFeatures, sum = (long)outFeatures + inFeatures;
        return sum == 0 ? 0 : (int)((product - 1) / sum);
    }

    /// <summary>Exact bytes of a weight stored as <paramref name="technique"/> (bias excluded).</summary>
    public static long WeightBytes(StorageTechnique technique, int outFeatures, int inFeatures, LayerSettings settings)
    {
        switch (technique)
        {
            case StorageTechnique.Quantize:
                return GroupQuantizedBytes(outFeatures, inFeatures, settings.Bits, settings.GroupSize, settings.Symmetric);
            case StorageTechnique.LowRank:
                return LowRankBytes(outFeatures, inFeatures, settings.Rank);
            case StorageTechnique.QuantizeWithLowRankCorrection:
                return GroupQuantizedBytes(outFeatures, inFeatures, settings.Bits, settings.GroupSize, settings.Symmetric) + LowRankBytes(outFeatures, inFeatures, settings.CorrectionRank);
            case StorageTechnique.SemiStructuredSparse:
                return SemiStructuredSparseBytes(outFeatures, inFeatures, settings.SparsityN, settings.SparsityM, settings.Bits, settings.GroupSize, settings.Symmetric);
            case StorageTechnique.UnstructuredSparse:
                return UnstructuredSparseBytes(outFeatures, inFeatures, settings.SparsityFraction);
            case StorageTechnique.MixedPrecision:
                // The minimum reachable size: the smallest candidate bit width, one group per row.
                return GroupQuantizedBytes(outFeatures, inFeatures, settings.Bits, 0, true);
            default:
                return DenseBytes(outFeatures, inFeatures);
        }
    }

    /// <summary>Exact bytes of a layer before (float32) and after compression, bias included in both.</summary>
    public static (long Before, long After) LayerBytes(StorageTechnique technique, int outFeatures, int inFeatures, bool hasBias, LayerSettings settings)
    {
        long bias = hasBias ? (long)outFeatures * Float32Bytes : 0;
        return (DenseBytes(outFeatures, inFeatures) + bias, WeightBytes(technique, outFeatures, inFeatures, settings) + bias);
    }
}
