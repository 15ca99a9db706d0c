namespace Condense.IO;

/// <summary>One tensor's entry in a safetensors header.</summary>
/// <param name="Name">The tensor's name (the header key).</param>
/// <param name="DType">Element type.</param>
/// <param name="Shape">Dimensions; empty for a 0-d scalar.</param>
/// <param name="Begin">First byte, relative to the start of the data buffer (after the header).</param>
/// <param name="End">One past the last byte, relative to the start of the data buffer.</param>
public sealed record SafeTensorInfo(string Name, SafeTensorDType DType, long[] Shape, long Begin, long End)
{
    /// <summary>Number of elements: the product of <see cref="Shape"/> (1 for a scalar, 0 if any dimension is 0).</summary>
    public long ElementCount => ProductOf(Shape);

    /// <summary>Bytes of data: <see cref="End"/> - <see cref="Begin"/>.</summary>
    public long ByteLength => End - Begin;

    /// <summary>The shape as text, e.g. <c>[2, 3]</c>, for messages.</summary>
    public string ShapeText => FormatShape(Shape);

    internal static long ProductOf(ReadOnlySpan<long> shape)
    {
        long product = 1;
        foreach (var dim in shape)
            product = checked(product * dim);
        return product;
    }

    internal static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}

/// <summary>
/// A safetensors file is malformed. The message names the file, the tensor when there is one,
/// and what was expected. (It derives from <see cref="IOException"/> because <see cref="InvalidDataException"/> is sealed.)
/// </summary>
public sealed class SafeTensorsFormatException : IOException
{
    /// <summary>Creates the exception; the message is built from the file, tensor and problem.</summary>
    public SafeTensorsFormatException(string filePath, string? tensorName, string problem, Exception? inner = null)
        : base(BuildMessage(filePath, tensorName, problem), inner)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file that failed validation.</summary>
    public string FilePath { get; }

    /// <summary>The tensor at fault, or null when the problem is in the file as a whole.</summary>
    public string? TensorName { get; }

    private static string BuildMessage(string filePath, string? tensorName, string problem) =>
        tensorName is null
            ? $"Invalid safetensors file '{filePath}': {problem}"
            : $"Invalid safetensors file '{filePath}', tensor '{tensorName}': {problem}";
}
