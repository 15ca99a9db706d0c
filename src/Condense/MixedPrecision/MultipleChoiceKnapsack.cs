using System.Globalization;

namespace Condense.MixedPrecision;

/// <summary>
/// Exact multiple-choice knapsack: pick one option per item so the summed bytes stay within a capacity and the summed
/// cost is smallest. A dynamic programme over the items keeps, after each item, the Pareto front of partial plans
/// (fewer bytes or lower cost, never both worse); every optimal plan extends a front member, so the result is optimal.
/// </summary>
/// <remarks>
/// The front holds at most one state per distinct byte total, and states that cannot fit even with the cheapest
/// remaining options are dropped, so networks of hundreds of layers with four bit widths solve in milliseconds.
/// Ties are broken deterministically (fewer bytes first, then the earlier option), so the same inputs give the same
/// choice on every machine.
/// </remarks>
public static class MultipleChoiceKnapsack
{
    /// <summary>The optimal choice per item, or null when even the smallest options exceed <paramref name="capacity"/>.</summary>
    /// <param name="bytes">bytes[i][k]: the size of option k of item i (non-negative).</param>
    /// <param name="cost">cost[i][k]: the cost of option k of item i (finite).</param>
    /// <param name="capacity">Upper bound on the summed bytes.</param>
    /// <exception cref="ArgumentException">Ragged or empty option lists, negative bytes or non-finite costs.</exception>
    public static int[]? Solve(IReadOnlyList<long[]> bytes, IReadOnlyList<double[]> cost, long capacity)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        ArgumentNullException.ThrowIfNull(cost);
        if (bytes.Count != cost.Count)
            throw new ArgumentException($"{bytes.Count} items have sizes but {cost.Count} have costs.", nameof(cost));
        int items = bytes.Count;
        var minimumAfter = new long[items + 1];
        for (int i = items - 1; i >= 0; i--)
        {
            if (bytes[i] is not { Length: > 0 } b || cost[i] is not { } c || c.Length != b.Length)
                throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"Item {i} needs one size and one cost per option, at least one option."), nameof(bytes));
            for (int k = 0; k < b.Length; k++)
            {
                if (b[k] < 0) throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"Item {i} option {k} has negative size {b[k]}."), nameof(bytes));
                if (!double.IsFinite(c[k])) throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"Item {i} option {k} has cost {c[k]}."), nameof(cost));
            }
            minimumAfter[i] = checked(minimumAfter[i + 1] + b.Min());
        }
        if (minimumAfter[0] > capacity) return null;

        // Per item: the front after it, each state pointing at its parent in the previous front.
        var fronts = new List<State[]>(items);
        var front = new[] { new State(0, 0, -1, -1) };
        for (int i = 0; i < items; i++)
        {
            var candidates = new List<State>(front.Length * bytes[i].Length);
            for (int s = 0; s < front.Length; s++)
                for (int k = 0; k < bytes[i].Length; k++)
                {
                    long total = front[s].Bytes + bytes[i][k];
                    if (total + minimumAfter[i + 1] > capacity) continue;
                    candidates.Add(new State(total, front[s].Cost + cost[i][k], s, k));
                }
            candidates.Sort(static (a, b) =>
            {
                int c = a.Bytes.CompareTo(b.Bytes);
                if (c == 0) c = a.Cost.CompareTo(b.Cost);
                if (c == 0) c = a.Choice.CompareTo(b.Choice);
                return c == 0 ? a.Parent.CompareTo(b.Parent) : c;
            });
            var next = new List<State>();
            double best = double.PositiveInfinity;
            foreach (var state in candidates)
            {
                // Sorted by bytes: a state survives only if it is strictly cheaper than every smaller one.
                if (state.Cost < best)
                {
                    next.Add(state);
                    best = state.Cost;
                }
            }
            front = next.ToArray();
            fronts.Add(front);
        }

        // The front's costs fall as bytes rise: its last state is the cheapest plan that fits.
        var choice = new int[items];
        int index = front.Length - 1;
        for (int i = items - 1; i >= 0; i--)
        {
            var state = fronts[i][index];
            choice[i] = state.Choice;
            index = state.Parent;
        }
        return choice;
    }

    private readonly record struct State(long Bytes, double Cost, int Parent, int Choice);
}
