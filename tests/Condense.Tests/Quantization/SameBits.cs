namespace Condense.Tests.Quantization;

/// <summary>
/// Bit-for-bit comparison of two outputs: the kernels promise the same float bits as the path they replace (at any
/// thread count), not merely close values.
/// </summary>
internal static class SameBits
{
    /// <summary>Fails at the first element whose bits differ, naming it with <paramref name="where"/>(index) and both values.</summary>
    public static void Equal(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, Func<int, string> where)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{where(i)}: expected {expected[i]:R}, got {actual[i]:R}");
    }
}
