using System.Globalization;

namespace Condense.Compression;

/// <summary>Validation shared by compression and model loading.</summary>
internal static class TensorChecks
{
    /// <summary>Throws naming the tensor and the multi-dimensional index of the first NaN or infinity.</summary>
    public static void ThrowIfNotFinite(ReadOnlySpan<float> values, string tensorName, int[] shape)
    {
        // Every Load and Compress runs this over every weight: the vectorized test is the common path, the scalar
        // loop only finds the index to name.
        if (System.Numerics.Tensors.TensorPrimitives.IsFiniteAll(values)) return;
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsFinite(values[i])) continue;
            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                $"Tensor '{tensorName}' contains {values[i]} at [{string.Join(", ", Unravel(i, shape))}]; weights must be finite (check the training run that produced them)."));
        }
    }

    private static int[] Unravel(int index, int[] shape)
    {
        var result = new int[Math.Max(shape.Length, 1)];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            int size = Math.Max(shape[d], 1);
            result[d] = index % size;
            index /= size;
        }
        if (shape.Length == 0) result[0] = index;
        return result;
    }
}
