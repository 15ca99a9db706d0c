using Condense.MiniLM;

namespace Condense.MiniLM.Tests;

/// <summary>The retrieval-agreement measure of the results table.</summary>
public sealed class NeighbourOverlapTests
{
    // Unit vectors on a circle at the given angles (degrees): neighbours by angle distance.
    private static float[][] Circle(params double[] degrees) =>
        degrees.Select(d => new[] { (float)Math.Cos(d * Math.PI / 180), (float)Math.Sin(d * Math.PI / 180) }).ToArray();

    [Fact]
    public void Overlap_counts_the_shared_top_k_neighbours_excluding_the_sentence_itself()
    {
        var a = Circle(0, 12, 20, 100, 200);
        Assert.Equal(1.0, NeighbourOverlap.TopK(a, a, 2));
        // Moving sentence 3 from 100 to 15 degrees changes every list but its own.
        var b = Circle(0, 12, 20, 15, 200);
        // top-2 in a: 0 {1,2}, 1 {2,0}, 2 {1,0}, 3 {2,1}, 4 {3,0}; in b: 0 {1,3}, 1 {3,2}, 2 {3,1}, 3 {1,2}, 4 {0,1}.
        double expected = (0.5 + 0.5 + 0.5 + 1.0 + 0.5) / 5;
        Assert.Equal(expected, NeighbourOverlap.TopK(a, b, 2), 12);
        Assert.Throws<ArgumentException>(() => NeighbourOverlap.TopK(a, a.Take(4).ToArray(), 2));
        Assert.Throws<ArgumentException>(() => NeighbourOverlap.TopK(a, a, 5));
    }

    [Fact]
    public void Median_gap_is_the_cosine_step_between_the_kth_and_next_neighbour()
    {
        // Four points at 0, 90, 180, 270 degrees: each has neighbours at cos 0, 0, -1, so the gap after the first is 0
        // and after the second is 1.
        var square = Circle(0, 90, 180, 270);
        Assert.Equal(0.0, NeighbourOverlap.MedianGap(square, 1), 6);
        Assert.Equal(1.0, NeighbourOverlap.MedianGap(square, 2), 6);
    }
}
