using Condense.Quantization;

namespace Condense.Tests.Quantization;

public class GroupQuantizedWeightValidationTests
{
    [Theory]
    [InlineData(0, 1, 17, true)]
    [InlineData(5, 1, 33, false)]
    [InlineData(2, 2, 80, true)]
    [InlineData(1, 1, 99, false)]
    public void NaN_and_infinite_weights_are_rejected_naming_row_and_column(int row, int column, int kind, bool sym)
    {
        const int o = 6, i = 128;
        var w = QuantTestData.Gaussian(1, o * i);
        float bad = (kind % 3) switch { 0 => float.NaN, 1 => float.PositiveInfinity, _ => float.NegativeInfinity };
        int col = column * kind % i;
        w[row * i + col] = bad;
        var e = Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize<Bits4>(w, o, i, 32, sym));
        Assert.Equal("weight", e.ParamName);
        Assert.Contains($"row {row}, column {col}]", e.Message);
        Assert.Contains(bad.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Fact]
    public void The_first_bad_row_is_reported_even_on_the_parallel_path()
    {
        const int o = 400, i = 1024;
        var w = QuantTestData.Gaussian(2, o * i);
        w[390 * i + 5] = float.NaN;
        w[17 * i + 1000] = float.PositiveInfinity;
        w[300 * i] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize<Bits8>(w, o, i, 0, false));
        Assert.Contains("row 17, column 1000]", e.Message);
    }

    [Fact]
    public void A_group_too_large_for_a_float16_scale_is_rejected()
    {
        var w = new float[32];
        w[20] = 1e30f;
        var e = Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize<Bits4>(w, 1, 32, 16, true));
        Assert.Contains("row 0, columns 16..31", e.Message);
        Assert.Contains("float16", e.Message);
    }

    [Theory]
    [InlineData(5, 0, 64, "bits 5 has no kernel")]
    [InlineData(4, 48, 96, "group size 48 has no kernel")]
    [InlineData(4, 64, 100, "does not divide the input size 100")]
    [InlineData(3, -16, 64, "group size -16 has no kernel")]
    public void Unsupported_schemes_are_rejected_with_the_catalogue_message(int bits, int group, int inFeatures, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize(new float[2 * inFeatures], 2, inFeatures, new QuantizationScheme(bits, group, true)));
        Assert.Contains(expected, e.Message);
        Assert.Equal("scheme", e.ParamName);
    }

    [Fact]
    public void Shape_mismatches_are_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize<Bits4>(new float[100], 3, 32, 16, true));
        Assert.Contains("expected OutFeatures x InFeatures = 3 x 32 = 96", e.Message);
        Assert.Equal("outFeatures", Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize<Bits4>([], 0, 32, 16, true)).ParamName);
        Assert.Equal("inFeatures", Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.Quantize<Bits4>([], 3, 0, 0, true)).ParamName);
    }

    [Fact]
    public void MatMulTransposed_and_Dequantize_validate_lengths()
    {
        var q = GroupQuantizedWeight.Quantize<Bits4>(QuantTestData.Gaussian(3, 4 * 32), 4, 32, 16, true);
        var ex = Assert.Throws<ArgumentException>(() => q.MatMulTransposed(new float[63], new float[8], 2));
        Assert.Equal("x", ex.ParamName);
        Assert.Contains("batch x InFeatures = 64", ex.Message);
        var ey = Assert.Throws<ArgumentException>(() => q.MatMulTransposed(new float[64], new float[7], 2));
        Assert.Equal("y", ey.ParamName);
        Assert.Contains("batch x OutFeatures = 8", ey.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => q.MatMulTransposed([], [], -1));
        q.MatMulTransposed([], [], 0); // an empty batch is valid and does nothing
        var ed = Assert.Throws<ArgumentException>(() => q.Dequantize(new float[127]));
        Assert.Equal("destination", ed.ParamName);
        Assert.Contains("= 128", ed.Message);
    }

    [Theory]
    [InlineData(3, 0, false, 5, 100)]
    [InlineData(4, 32, true, 7, 64)]
    [InlineData(2, 16, false, 3, 48)]
    [InlineData(8, 64, true, 2, 128)]
    public void FromParts_round_trips_the_stored_arrays(int bits, int group, bool sym, int o, int i)
    {
        var scheme = new QuantizationScheme(bits, group, sym);
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(4, o * i), o, i, scheme);
        var rebuilt = GroupQuantizedWeight.FromParts(o, i, scheme, q.Packed.ToArray(), q.Scales.ToArray(), q.ZeroPoints?.ToArray());
        Assert.Equal(q.Format, rebuilt.Format);
        Assert.Equal(q.ByteCount, rebuilt.ByteCount);
        var a = new float[o * i];
        var b = new float[o * i];
        q.Dequantize(a);
        rebuilt.Dequantize(b);
        Assert.Equal(a, b);
    }

    private static (QuantizationScheme Scheme, byte[] Packed, Half[] Scales, byte[]? Zeros) Parts(bool sym)
    {
        var scheme = new QuantizationScheme(3, 0, sym); // 5 x 100 at 3 bits: 38 bytes per row, 4 padding bits
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian(9, 500), 5, 100, scheme);
        return (scheme, q.Packed.ToArray(), q.Scales.ToArray(), q.ZeroPoints?.ToArray());
    }

    private static void AssertRejected(string param, string expectedText, QuantizationScheme scheme, byte[] packed, Half[] scales, byte[]? zeros)
    {
        var e = Assert.Throws<ArgumentException>(() => GroupQuantizedWeight.FromParts(5, 100, scheme, packed, scales, zeros));
        Assert.Equal(param, e.ParamName);
        Assert.Contains(expectedText, e.Message);
    }

    [Fact]
    public void FromParts_rejects_packed_arrays_of_the_wrong_length_or_with_padding_bits_set()
    {
        var (scheme, packed, scales, zeros) = Parts(false);
        AssertRejected("packed", "has 189 bytes", scheme, packed[..189], scales, zeros);
        AssertRejected("packed", "= 5 x 38 = 190", scheme, [.. packed, 0], scales, zeros);
        packed[2 * 38 + 37] |= 0x80;
        AssertRejected("packed", "row 2 has non-zero padding bits", scheme, packed, scales, zeros);
    }

    [Fact]
    public void FromParts_rejects_bad_scales()
    {
        var (scheme, packed, scales, zeros) = Parts(true);
        AssertRejected("scales", "expects one per group: 5 rows x 1 groups = 5", scheme, packed, scales[..4], zeros);
        foreach (var bad in new[] { Half.NaN, Half.PositiveInfinity })
        {
            var copy = scales.ToArray();
            copy[3] = bad;
            AssertRejected("scales", "scales[3] (row 3, group 0)", scheme, packed, copy, zeros);
        }

        // A symmetric scale may be negative (it puts a positive extreme on level -2^(b-1)); an asymmetric one may not.
        var negative = scales.ToArray();
        negative[3] = (Half)(-0.25f);
        Assert.Equal((Half)(-0.25f), GroupQuantizedWeight.FromParts(5, 100, scheme, packed, negative, zeros).Scales[3]);
        var (asymScheme, asymPacked, asymScales, asymZeros) = Parts(false);
        asymScales = asymScales.ToArray();
        asymScales[3] = (Half)(-0.25f);
        AssertRejected("scales", "scales[3] (row 3, group 0) is -0.25; expected a finite scale >= 0", asymScheme, asymPacked, asymScales, asymZeros);
    }

    [Fact]
    public void FromParts_rejects_bad_zero_points()
    {
        var (scheme, packed, scales, zeros) = Parts(false);
        AssertRejected("zeroPoints", "expects one per group: 5", scheme, packed, scales, null);
        AssertRejected("zeroPoints", "expects one per group: 5", scheme, packed, scales, zeros![..3]);
        zeros[4] = 8;
        AssertRejected("zeroPoints", "zeroPoints[4] (row 4, group 0) is 8; expected 0..7", scheme, packed, scales, zeros);

        var (symScheme, symPacked, symScales, _) = Parts(true);
        AssertRejected("zeroPoints", "stores no zero points", symScheme, symPacked, symScales, new byte[5]);
    }

    [Fact]
    public void FromParts_rejects_unsupported_schemes_and_null_arrays()
    {
        var (scheme, packed, scales, zeros) = Parts(false);
        AssertRejected("scheme", "bits 6 has no kernel", scheme with { Bits = 6 }, packed, scales, zeros);
        AssertRejected("scheme", "does not divide the input size 100", scheme with { GroupSize = 32 }, packed, scales, zeros);
        Assert.Throws<ArgumentNullException>(() => GroupQuantizedWeight.FromParts(5, 100, scheme, null!, scales, zeros));
        Assert.Throws<ArgumentNullException>(() => GroupQuantizedWeight.FromParts(5, 100, scheme, packed, null!, zeros));
    }
}
