// This file is compiled into both the runtime (Condense) and the generator/analyzers
// (Condense.Generators): it is the one source of truth for which settings have a kernel and
// for the exact byte count of every storage format. Keep it netstandard2.0-compatible C#.
namespace Condense.Catalogue;

/// <summary>Which compression settings Condense has kernels for, and what each one costs in bytes.</summary>
public static partial class KernelCatalogue
{
    /// <summary>Bit widths with a packed group-quantized kernel.</summary>
    public static readonly int[] SupportedBits = { 2, 3, 4, 8 };

    /// <summary>Group sizes with a kernel, besides 0 (one group per output row).</summary>
    public static readonly int[] SupportedGroupSizes = { 16, 32, 64, 128, 256 };

    /// <summary>Bytes of one float32 value.</summary>
    public const int Float32Bytes = 4;

    /// <summary>Bytes of one stored scale (float16).</summary>
    public const int ScaleBytes = 2;

    /// <summary>Bytes of one stored zero point (uint8, asymmetric grids only).</summary>
    public const int ZeroPointBytes = 1;

    public static bool IsSupportedBits(int bits) => System.Array.IndexOf(SupportedBits, bits) >= 0;

    public static bool IsSupportedGroupSize(int groupSize) =>
        groupSize == 0 || System.Array.IndexOf(SupportedGroupSizes, groupSize) >= 0;

    /// <summary>Why (bits, group size) cannot quantize a layer with <paramref name="inFeatures"/> inputs, or null when it can.</summary>
    public static string? QuantizationProblem(int bits, int groupSize, int inFeatures)
    {
        if (!IsSupportedBits(bits))
            return "bits " + Format(bits) + " has no kernel; supported bit widths are " + Join(SupportedBits);
        if (!IsSupportedGroupSize(groupSize))
            return "group size " + Format(groupSize) + " has no kernel; supported group sizes are 0 (one group per row), " + Join(SupportedGroupSizes);
        if (groupSize > 0 && inFeatures % groupSize != 0)
            return "group size " + Format(groupSize) + " does not divide the input size " + Format(inFeatures) +
                   "; valid group sizes for it are " + ValidGroupSizesText(inFeatures);
        return null;
    }

    /// <summary>The catalogue group sizes that divide <paramref name="inFeatures"/>, always including 0.</summary>
    public static int[] ValidGroupSizes(int inFeatures)
    {
        var result = new System.Collections.Generic.List<int> { 0 };
        foreach (var g in SupportedGroupSizes)
            if (inFeatures > 0 && inFeatures % g == 0) result.Add(g);
        return result.ToArray();
    }

    /// <summary>Number of groups along one output row.</summary>
    public static int GroupsPerRow(int inFeatures, int groupSize) => groupSize == 0 ? 1 : inFeatures / groupSize;

    /// <summary>Bytes of one packed row: rows are byte-aligned, values packed little-endian, low bits first.</summary>
    public static long PackedRowBytes(int inFeatures, int bits) => ((long)inFeatures * bits + 7) / 8;

    /// <summary>Exact bytes of a group-quantized weight matrix: packed values, float16 scales, uint8 zero points.</summary>
    public static long GroupQuantizedBytes(int outFeatures, int inFeatures, int bits, int groupSize, bool symmetric)
    {
        long groups = (long)outFeatures * GroupsPerRow(inFeatures, groupSize);
        return outFeatures * PackedRowBytes(inFeatures, bits)
               + groups * ScaleBytes
               + (symmetric ? 0 : groups * ZeroPointBytes);
    }

    /// <summary>
    /// Exact bytes of a layer before and after compression: its weight (dense, or group-quantized when
    /// <paramref name="quantized"/>) plus a float32 bias. The generator and the runtime both call this.
    /// </summary>
    public static (long Before, long After) LayerBytes(int outFeatures, int inFeatures, bool hasBias, bool quantized, int bits, int groupSize, bool symmetric)
    {
        long bias = hasBias ? (long)outFeatures * Float32Bytes : 0;
        long before = DenseBytes(outFeatures, inFeatures) + bias;
        long after = quantized ? GroupQuantizedBytes(outFeatures, inFeatures, bits, groupSize, symmetric) + bias : before;
        return (before, after);
    }

    /// <summary>Exact bytes of a dense float32 matrix.</summary>
    public static long DenseBytes(int outFeatures, int inFeatures) => (long)outFeatures * inFeatures * Float32Bytes;

    private static string Format(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Format(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Join(int[] values)
    {
        var parts = new string[values.Length];
        for (int i = 0; i < values.Length; i++) parts[i] = Format(values[i]);
        return string.Join(", ", parts);
    }

    private static string ValidGroupSizesText(int inFeatures)
    {
        var valid = ValidGroupSizes(inFeatures);
        return valid.Length == 1 ? "only 0 (one group per row)" : "0 (one group per row), " + Join(SliceFrom1(valid));
    }

    private static int[] SliceFrom1(int[] values)
    {
        var r = new int[values.Length - 1];
        System.Array.Copy(values, 1, r, 0, r.Length);
        return r;
    }
}
