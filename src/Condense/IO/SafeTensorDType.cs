namespace Condense.IO;

/// <summary>Element types of the safetensors format, spelled as they appear in the header.</summary>
public enum SafeTensorDType
{
    /// <summary>Boolean, one byte per element (0 or 1).</summary>
    BOOL,
    /// <summary>Unsigned 8-bit integer.</summary>
    U8,
    /// <summary>Signed 8-bit integer.</summary>
    I8,
    /// <summary>Unsigned 16-bit integer.</summary>
    U16,
    /// <summary>Signed 16-bit integer.</summary>
    I16,
    /// <summary>IEEE 754 half precision.</summary>
    F16,
    /// <summary>bfloat16 (the upper half of a float32).</summary>
    BF16,
    /// <summary>Unsigned 32-bit integer.</summary>
    U32,
    /// <summary>Signed 32-bit integer.</summary>
    I32,
    /// <summary>IEEE 754 single precision.</summary>
    F32,
    /// <summary>Unsigned 64-bit integer.</summary>
    U64,
    /// <summary>Signed 64-bit integer.</summary>
    I64,
    /// <summary>IEEE 754 double precision.</summary>
    F64,
}

/// <summary>Element sizes and header spellings of <see cref="SafeTensorDType"/>.</summary>
public static class SafeTensorDTypes
{
    /// <summary>Bytes per element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.BOOL or SafeTensorDType.U8 or SafeTensorDType.I8 => 1,
        SafeTensorDType.U16 or SafeTensorDType.I16 or SafeTensorDType.F16 or SafeTensorDType.BF16 => 2,
        SafeTensorDType.U32 or SafeTensorDType.I32 or SafeTensorDType.F32 => 4,
        SafeTensorDType.U64 or SafeTensorDType.I64 or SafeTensorDType.F64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a safetensors dtype."),
    };

    /// <summary>The header spelling of <paramref name="dtype"/> (e.g. <c>F32</c>).</summary>
    public static string Name(SafeTensorDType dtype) => dtype switch
    {
        SafeTensorDType.BOOL => "BOOL",
        SafeTensorDType.U8 => "U8",
        SafeTensorDType.I8 => "I8",
        SafeTensorDType.U16 => "U16",
        SafeTensorDType.I16 => "I16",
        SafeTensorDType.F16 => "F16",
        SafeTensorDType.BF16 => "BF16",
        SafeTensorDType.U32 => "U32",
        SafeTensorDType.I32 => "I32",
        SafeTensorDType.F32 => "F32",
        SafeTensorDType.U64 => "U64",
        SafeTensorDType.I64 => "I64",
        SafeTensorDType.F64 => "F64",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a safetensors dtype."),
    };

    /// <summary>Parses a header spelling (case-sensitive, as the reference implementation does).</summary>
    public static bool TryParse(string text, out SafeTensorDType dtype)
    {
        foreach (var candidate in All)
        {
            if (string.Equals(Name(candidate), text, StringComparison.Ordinal))
            {
                dtype = candidate;
                return true;
            }
        }
        dtype = default;
        return false;
    }

    /// <summary>Every supported dtype, in declaration order.</summary>
    public static IReadOnlyList<SafeTensorDType> All { get; } =
    [
        SafeTensorDType.BOOL, SafeTensorDType.U8, SafeTensorDType.I8, SafeTensorDType.U16, SafeTensorDType.I16,
        SafeTensorDType.F16, SafeTensorDType.BF16, SafeTensorDType.U32, SafeTensorDType.I32, SafeTensorDType.F32,
        SafeTensorDType.U64, SafeTensorDType.I64, SafeTensorDType.F64,
    ];

    /// <summary>Bytes that <paramref name="shape"/> elements of <paramref name="dtype"/> occupy; throws <see cref="OverflowException"/> past <see cref="long.MaxValue"/>.</summary>
    public static long ByteLength(SafeTensorDType dtype, ReadOnlySpan<long> shape) =>
        checked(SafeTensorInfo.ProductOf(shape) * ElementSize(dtype));
}
