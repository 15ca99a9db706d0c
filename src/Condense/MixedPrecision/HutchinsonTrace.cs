using System.Globalization;

namespace Condense.MixedPrecision;

/// <summary>One block's trace estimate: the mean of v_i^T (H v)_i over the samples and its standard error.</summary>
/// <param name="Trace">The estimate of Tr(H_ii).</param>
/// <param name="StandardError">Sample standard deviation / sqrt(samples); 0 with one sample.</param>
/// <param name="Samples">Rademacher vectors drawn.</param>
public readonly record struct TraceEstimate(double Trace, double StandardError, int Samples);

/// <summary>
/// Hutchinson's estimator of the traces of the diagonal blocks of a symmetric matrix H known only through products
/// H v: Tr(H_ii) = E[v_i^T (H v)_i] for v with independent Rademacher (+1/-1) entries. One product per sample serves
/// every block at once (the cross terms v_i^T H_ij v_j have mean zero because the blocks' signs are independent), or
/// each block has its own product with the others zero, which removes the cross terms' variance.
/// </summary>
/// <remarks>
/// Each sample's vector is drawn from a stream derived from (seed, sample, block), never from a shared generator, so
/// the estimate is the same bits whatever the thread count or the order the blocks are visited in.
/// </remarks>
public static class HutchinsonTrace
{
    /// <summary>Estimates Tr(H_ii) for each block.</summary>
    /// <param name="blockSizes">Length of each block of the vector.</param>
    /// <param name="multiply">Writes H v (one array per block) into its second argument, given v (one array per block).</param>
    /// <param name="samples">Rademacher vectors to average (at least 1).</param>
    /// <param name="seed">Seeds every vector.</param>
    /// <param name="onSample">Called after each sample with its 0-based index.</param>
    /// <param name="separateBlocks">
    /// One product per block and sample, the other blocks zero (as HAWQ-V2): no cross-term variance, at L times the cost.
    /// False: one product per sample serves every block (cheaper, noisier for blocks with small traces).
    /// </param>
    public static TraceEstimate[] Estimate(IReadOnlyList<int> blockSizes, Action<float[][], double[][]> multiply, int samples, ulong seed, Action<int>? onSample = null,
        bool separateBlocks = false)
    {
        ArgumentNullException.ThrowIfNull(blockSizes);
        ArgumentNullException.ThrowIfNull(multiply);
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "Hutchinson's estimator needs at least one sample.");
        int blocks = blockSizes.Count;
        var v = new float[blocks][];
        var hv = new double[blocks][];
        for (int i = 0; i < blocks; i++)
        {
            if (blockSizes[i] < 0) throw new ArgumentOutOfRangeException(nameof(blockSizes), blockSizes[i], $"Block {i} has a negative size.");
            v[i] = new float[blockSizes[i]];
            hv[i] = new double[blockSizes[i]];
        }
        var sum = new double[blocks];
        var sumSquares = new double[blocks];
        for (int s = 0; s < samples; s++)
        {
            for (int i = 0; i < blocks; i++) FillRademacher(v[i], RademacherSeed(seed, s, i));
            if (separateBlocks)
            {
                // Block i alone: the same vector as the joint product would use, the others zeroed for this product.
                var single = new float[blocks][];
                for (int i = 0; i < blocks; i++)
                {
                    for (int j = 0; j < blocks; j++) single[j] = j == i ? v[j] : new float[v[j].Length];
                    foreach (var h in hv) Array.Clear(h);
                    multiply(single, hv);
                    Accumulate(v[i], hv[i], ref sum[i], ref sumSquares[i]);
                }
            }
            else
            {
                foreach (var h in hv) Array.Clear(h);
                multiply(v, hv);
                for (int i = 0; i < blocks; i++) Accumulate(v[i], hv[i], ref sum[i], ref sumSquares[i]);
            }
            onSample?.Invoke(s);
        }
        var result = new TraceEstimate[blocks];
        for (int i = 0; i < blocks; i++)
        {
            double mean = sum[i] / samples;
            double variance = samples > 1 ? Math.Max(0, (sumSquares[i] - samples * mean * mean) / (samples - 1)) : 0;
            result[i] = new TraceEstimate(mean, Math.Sqrt(variance / samples), samples);
        }
        return result;
    }

    /// <summary>Estimates Tr(A_i) for each block from quadratic forms v_i^T A_i v_i, one per block and sample.</summary>
    /// <param name="quadraticForm">Returns v^T A_i v for block i (its first argument) and a vector of that block's length.</param>
    public static TraceEstimate[] Estimate(IReadOnlyList<int> blockSizes, Func<int, float[], double> quadraticForm, int samples, ulong seed, Action<int>? onSample = null)
    {
        ArgumentNullException.ThrowIfNull(quadraticForm);
        return Estimate(blockSizes, (v, hv) =>
        {
            // Only one block is non-zero per call (separate blocks): put its form where Accumulate reads it.
            int block = Array.FindIndex(v, b => b.Any(x => x != 0));
            if (block < 0) return;
            double q = quadraticForm(block, v[block]);
            Array.Clear(hv[block]);
            hv[block][0] = q * v[block][0];
        }, samples, seed, onSample, separateBlocks: true);
    }

    /// <summary>
    /// Estimates each block's trace and diagonal from block products: Tr(A_i) = E[v_i^T A_i v_i] and
    /// diag(A_i) = E[v_i ⊙ A_i v_i] over the same Rademacher vectors as the other overloads (the traces agree with theirs
    /// up to how the product is computed).
    /// </summary>
    /// <param name="product">Writes A_i v (its third argument) for block i (its first) and vector v (its second); returns v^T A_i v.</param>
    public static (TraceEstimate[] Traces, double[][] Diagonals) EstimateWithDiagonal(IReadOnlyList<int> blockSizes, Func<int, float[], double[], double> product,
        int samples, ulong seed, Action<int>? onSample = null)
    {
        ArgumentNullException.ThrowIfNull(blockSizes);
        ArgumentNullException.ThrowIfNull(product);
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "Hutchinson's estimator needs at least one sample.");
        int blocks = blockSizes.Count;
        var diagonals = new double[blocks][];
        var sum = new double[blocks];
        var sumSquares = new double[blocks];
        for (int i = 0; i < blocks; i++)
        {
            if (blockSizes[i] < 0) throw new ArgumentOutOfRangeException(nameof(blockSizes), blockSizes[i], $"Block {i} has a negative size.");
            diagonals[i] = new double[blockSizes[i]];
        }
        for (int s = 0; s < samples; s++)
        {
            for (int i = 0; i < blocks; i++)
            {
                var v = new float[blockSizes[i]];
                var av = new double[blockSizes[i]];
                FillRademacher(v, RademacherSeed(seed, s, i));
                double q = product(i, v, av);
                sum[i] += q;
                sumSquares[i] += q * q;
                var d = diagonals[i];
                for (int j = 0; j < d.Length; j++) d[j] += v[j] * av[j];
            }
            onSample?.Invoke(s);
        }
        var traces = new TraceEstimate[blocks];
        for (int i = 0; i < blocks; i++)
        {
            double mean = sum[i] / samples;
            double variance = samples > 1 ? Math.Max(0, (sumSquares[i] - samples * mean * mean) / (samples - 1)) : 0;
            traces[i] = new TraceEstimate(mean, Math.Sqrt(variance / samples), samples);
            for (int j = 0; j < diagonals[i].Length; j++) diagonals[i][j] /= samples;
        }
        return (traces, diagonals);
    }

    private static void Accumulate(float[] v, double[] hv, ref double sum, ref double sumSquares)
    {
        double q = 0;
        for (int j = 0; j < v.Length; j++) q += v[j] * hv[j];
        sum += q;
        sumSquares += q * q;
    }

    /// <summary>The seed of block <paramref name="block"/>'s vector in sample <paramref name="sample"/>.</summary>
    public static ulong RademacherSeed(ulong seed, int sample, int block) =>
        Rng.Derive(seed, string.Create(CultureInfo.InvariantCulture, $"hutchinson sample {sample} block {block}"));

    /// <summary>Fills <paramref name="destination"/> with independent +1/-1 entries, one random bit each.</summary>
    public static void FillRademacher(Span<float> destination, ulong seed)
    {
        var rng = new Rng(seed);
        for (int start = 0; start < destination.Length; start += 64)
        {
            ulong bits = rng.NextUInt64();
            int count = Math.Min(64, destination.Length - start);
            for (int j = 0; j < count; j++) destination[start + j] = ((bits >> j) & 1) == 0 ? 1f : -1f;
        }
    }
}
