using Condense.Benchmarks.Harness;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Benchmarks.Cases;

/// <summary>Group-quantized storages (<see cref="GroupQuantizedWeight"/>) and their BENCHMARKS.md targets.</summary>
internal static class QuantizedFormats
{
    public static WeightFormat Of(int bits, int groupSize, bool symmetric)
    {
        var scheme = new QuantizationScheme(bits, groupSize, symmetric);
        return new WeightFormat(
            scheme.FormatName,
            (dense, outFeatures, inFeatures) => GroupQuantizedWeight.Quantize(dense, outFeatures, inFeatures, scheme),
            Copy,
            Batch1Target: TargetFor(bits, groupSize));
    }

    public static readonly WeightFormat Int8G32 = Of(8, 32, symmetric: true);
    public static readonly WeightFormat Int4G32Sym = Of(4, 32, symmetric: true);
    public static readonly WeightFormat Int4G32 = Of(4, 32, symmetric: false);
    public static readonly WeightFormat Int4G64 = Of(4, 64, symmetric: false);
    public static readonly WeightFormat Int4G128 = Of(4, 128, symmetric: false);
    public static readonly WeightFormat Int3G128 = Of(3, 128, symmetric: false);
    public static readonly WeightFormat Int2G64 = Of(2, 64, symmetric: false);
    public static readonly WeightFormat Int2G128 = Of(2, 128, symmetric: false);

    /// <summary>Every quantized format the full run measures.</summary>
    public static readonly WeightFormat[] All = [Int8G32, Int4G32Sym, Int4G32, Int4G64, Int4G128, Int3G128, Int2G64, Int2G128];

    private static Target? TargetFor(int bits, int groupSize) => bits switch
    {
        8 => Target.BandwidthAndSpeedUp(85, 3.3),
        4 when groupSize is >= 32 and <= 128 => Target.BandwidthAndSpeedUp(80, 5.5),
        3 => Target.Bandwidth(75),
        2 => Target.Bandwidth(70),
        _ => null,
    };

    // A memory copy of the parts: seconds cheaper than quantizing again for every copy of the cold rotation.
    private static IWeightStorage Copy(IWeightStorage storage, float[] dense)
    {
        var w = (GroupQuantizedWeight)storage;
        return GroupQuantizedWeight.FromParts(w.OutFeatures, w.InFeatures, w.Scheme,
            (byte[])w.Packed.Clone(), (Half[])w.Scales.Clone(), (byte[]?)w.ZeroPoints?.Clone());
    }
}
