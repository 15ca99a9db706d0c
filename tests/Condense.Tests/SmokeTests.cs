using Condense.Catalogue;

namespace Condense.Tests;

public class KernelCatalogueTests
{
    [Theory]
    [InlineData(256, 784, 4, 16, true, 256 * 392 + 256 * 49 * 2)]
    [InlineData(10, 100, 3, 0, false, 10 * 38 + 10 * 2 + 10 * 1)]
    [InlineData(128, 256, 8, 64, false, 128 * 256 + 128 * 4 * 3)]
    public void GroupQuantizedBytes_counts_values_scales_and_zero_points(int rows, int cols, int bits, int group, bool sym, long expected) =>
        Assert.Equal(expected, KernelCatalogue.GroupQuantizedBytes(rows, cols, bits, group, sym));

    [Fact]
    public void QuantizationProblem_names_valid_group_sizes_when_one_does_not_divide()
    {
        var problem = KernelCatalogue.QuantizationProblem(4, 64, 784);
        Assert.NotNull(problem);
        Assert.Contains("does not divide the input size 784", problem);
        Assert.Contains("16", problem);
        Assert.Null(KernelCatalogue.QuantizationProblem(4, 16, 784));
        Assert.Contains("bits 5", KernelCatalogue.QuantizationProblem(5, 0, 784));
    }
}
