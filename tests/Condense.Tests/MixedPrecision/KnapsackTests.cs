using Condense.MixedPrecision;

namespace Condense.Tests.MixedPrecision;

public sealed class KnapsackTests
{
    /// <summary>Every small instance: the knapsack's cost equals the brute-force optimum and its plan fits.</summary>
    [Fact]
    public void OptimalAgainstBruteForceOnSmallInstances()
    {
        var rng = new Rng(42);
        int infeasible = 0, solved = 0;
        for (int instance = 0; instance < 400; instance++)
        {
            int items = 1 + (int)(rng.NextUInt64() % 6);
            int options = 1 + (int)(rng.NextUInt64() % 4);
            var bytes = new List<long[]>();
            var cost = new List<double[]>();
            for (int i = 0; i < items; i++)
            {
                var b = new long[options];
                var c = new double[options];
                for (int k = 0; k < options; k++)
                {
                    // Small integer sizes make equal byte totals (ties) common; costs are arbitrary, not monotone in size.
                    b[k] = (long)(rng.NextUInt64() % 12);
                    c[k] = Math.Round(rng.NextDouble() * 10, 1);
                }
                bytes.Add(b);
                cost.Add(c);
            }
            long capacity = (long)(rng.NextUInt64() % (ulong)(6 * items + 1));

            var (bestCost, feasible) = BruteForce(bytes, cost, capacity);
            var choice = MultipleChoiceKnapsack.Solve(bytes, cost, capacity);
            if (!feasible)
            {
                Assert.Null(choice);
                infeasible++;
                continue;
            }
            Assert.NotNull(choice);
            long used = 0;
            double total = 0;
            for (int i = 0; i < items; i++)
            {
                used += bytes[i][choice[i]];
                total += cost[i][choice[i]];
            }
            Assert.True(used <= capacity, $"instance {instance}: {used} bytes > capacity {capacity}");
            Assert.Equal(bestCost, total, 9);
            solved++;
        }
        // The generator must produce both kinds, or the test proves little.
        Assert.True(infeasible > 20 && solved > 200, $"{solved} solved, {infeasible} infeasible");
    }

    [Fact]
    public void ExactCapacityIsFeasibleAndOneByteLessIsNot()
    {
        long[][] bytes = [[4, 8], [4, 8]];
        double[][] cost = [[10, 1], [10, 2]];
        Assert.Equal([1, 0], MultipleChoiceKnapsack.Solve(bytes, cost, 12)!);
        Assert.Equal([1, 1], MultipleChoiceKnapsack.Solve(bytes, cost, 16)!);
        Assert.Null(MultipleChoiceKnapsack.Solve(bytes, cost, 7));
    }

    [Fact]
    public void RejectsRaggedOrNonFiniteInput()
    {
        Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve([[1, 2]], [[1.0]], 10));
        Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve([[1]], [[double.NaN]], 10));
        Assert.Throws<ArgumentException>(() => MultipleChoiceKnapsack.Solve([[-1]], [[1.0]], 10));
    }

    private static (double Cost, bool Feasible) BruteForce(List<long[]> bytes, List<double[]> cost, long capacity)
    {
        double best = double.PositiveInfinity;
        var index = new int[bytes.Count];
        while (true)
        {
            long used = 0;
            double total = 0;
            for (int i = 0; i < index.Length; i++)
            {
                used += bytes[i][index[i]];
                total += cost[i][index[i]];
            }
            if (used <= capacity) best = Math.Min(best, total);
            int j = 0;
            while (j < index.Length && ++index[j] == bytes[j].Length) index[j++] = 0;
            if (j == index.Length) break;
        }
        return (best, !double.IsPositiveInfinity(best));
    }
}
