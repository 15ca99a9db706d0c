using Condense.Quantization;

namespace Condense.Tests.Quantization;

/// <summary><see cref="GroupQuantizedWeight.ZeroedGroups"/>: groups with a non-zero weight that dequantize to all zeros.</summary>
public class ZeroedGroupTests
{
    [Theory]
    [InlineData(2, 16, true)]
    [InlineData(3, 16, false)]
    [InlineData(4, 32, true)]
    [InlineData(4, 0, false)]
    [InlineData(8, 0, true)]
    [InlineData(8, 16, false)]
    public void The_count_equals_the_groups_whose_dequantized_weights_are_all_zero(int bits, int groupSize, bool symmetric)
    {
        const int rows = 24, cols = 64;
        // Each row has its own magnitude, from 1e-9 to ~1e-7: around half the smallest float16 scale (2.98e-8),
        // where a group flips between quantizing to zero and keeping a level. Row 0 is exactly zero (not counted).
        var w = QuantTestData.Gaussian(7, rows * cols);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) w[r * cols + c] *= r == 0 ? 0f : 1e-9f * MathF.Pow(1.25f, r);
        var q = GroupQuantizedWeight.Quantize(w, rows, cols, new QuantizationScheme(bits, groupSize, symmetric));

        var back = new float[w.Length];
        q.Dequantize(back);
        int group = groupSize == 0 ? cols : groupSize, expected = 0;
        for (int start = 0; start < w.Length; start += group)
        {
            var original = w.Skip(start).Take(group);
            if (original.Any(x => x != 0) && back.Skip(start).Take(group).All(x => x == 0)) expected++;
        }

        Assert.InRange(expected, 1, q.GroupCount - 1);
        Assert.Equal(expected, q.ZeroedGroups);
    }

    [Fact]
    public void Ordinary_weights_and_zero_groups_have_none()
    {
        var w = QuantTestData.Gaussian(3, 8 * 32, 0.05f);
        Array.Clear(w, 0, 32);
        Assert.Equal(0, GroupQuantizedWeight.Quantize(w, 8, 32, new QuantizationScheme(4, 16, true)).ZeroedGroups);
    }
}
