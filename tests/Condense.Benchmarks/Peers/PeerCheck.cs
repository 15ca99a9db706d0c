using System.Numerics;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Benchmarks.Peers;

/// <summary>
/// The float64 reference both sides are checked against before anything is timed. The weights are decoded here from
/// the stored parts by docs/format.md's rules (codes low bits first, w = (q - z) * s, z = 2^(b-1) when symmetric),
/// independently of Condense's kernels and of ORT; a layout mistake in either shows up as an error of order 1.
/// </summary>
internal static class PeerCheck
{
    /// <summary>The weights [Out, In] as float32: exact, since (q - z) has at most 9 bits and s is a float16.</summary>
    public static float[] Decode(IWeightStorage storage, float[] dense)
    {
        if (storage is not GroupQuantizedWeight w) return dense;
        int n = w.OutFeatures, k = w.InFeatures, bits = w.Scheme.Bits;
        if (bits is not (4 or 8)) throw new NotSupportedException($"{w.Format}: the peers reference decodes 4 and 8 bits only");
        int group = w.Scheme.GroupSize == 0 ? k : w.Scheme.GroupSize;
        int groupsPerRow = k / group;
        int rowBytes = k * bits / 8;
        var decoded = new float[(long)n * k];
        Parallel.For(0, n, o =>
        {
            for (int i = 0; i < k; i++)
            {
                byte b = w.Packed[(long)o * rowBytes + i * bits / 8];
                int q = bits == 8 ? b : (i % 2 == 0 ? b & 0xF : b >> 4);
                long g = (long)o * groupsPerRow + i / group;
                int z = w.ZeroPoints is null ? 1 << (bits - 1) : w.ZeroPoints[g];
                decoded[(long)o * k + i] = (q - z) * (float)w.Scales[g];
            }
        });
        return decoded;
    }

    /// <summary>
    /// The batch rows checked against the reference: first, second, middle and last. Every output column of those
    /// rows is checked; a full float64 GEMM at batch 128 on S2 would cost more than the whole timed run.
    /// </summary>
    public static int[] SampledRows(int batch) => new[] { 0, 1, batch / 2, batch - 1 }.Where(r => r < batch).Distinct().ToArray();

    /// <summary>ref[row, o] = sum_i x[row, i] * w[o, i] in float64 (products of two floats are exact in float64).</summary>
    public static double[] Reference(float[] weights, int outFeatures, int inFeatures, float[] x, int row)
    {
        var reference = new double[outFeatures];
        var xd = new double[inFeatures];
        for (int i = 0; i < inFeatures; i++) xd[i] = x[(long)row * inFeatures + i];
        Parallel.For(0, outFeatures, o =>
        {
            var wRow = weights.AsSpan((int)((long)o * inFeatures), inFeatures);
            var acc = Vector<double>.Zero;
            int width = Vector<double>.Count, i = 0;
            Span<double> wd = stackalloc double[width];
            for (; i + width <= inFeatures; i += width)
            {
                for (int j = 0; j < width; j++) wd[j] = wRow[i + j];
                acc += new Vector<double>(wd) * new Vector<double>(xd, i);
            }
            double sum = Vector.Sum(acc);
            for (; i < inFeatures; i++) sum += wRow[i] * xd[i];
            reference[o] = sum;
        });
        return reference;
    }

    /// <summary>
    /// max |y - ref| / max |ref| over the sampled rows: the error relative to the output's scale (an element-wise
    /// relative error is meaningless for outputs near zero).
    /// </summary>
    public static double RelativeError(float[] y, int outFeatures, IReadOnlyList<(int Row, double[] Reference)> references)
    {
        double maxError = 0, maxRef = 0;
        foreach (var (row, reference) in references)
            for (int o = 0; o < outFeatures; o++)
            {
                double v = y[(long)row * outFeatures + o];
                double e = double.IsFinite(v) ? Math.Abs(v - reference[o]) : double.PositiveInfinity;
                maxError = Math.Max(maxError, e);
                maxRef = Math.Max(maxRef, Math.Abs(reference[o]));
            }
        return maxRef == 0 ? maxError : maxError / maxRef;
    }

    /// <summary>max |a - b| / max |b| over every output: the two sides agree on the rows the reference does not cover.</summary>
    public static double RelativeDifference(float[] a, float[] b)
    {
        double maxError = 0, maxRef = 0;
        for (long i = 0; i < a.LongLength; i++)
        {
            double e = double.IsFinite(a[i]) ? Math.Abs((double)a[i] - b[i]) : double.PositiveInfinity;
            maxError = Math.Max(maxError, e);
            maxRef = Math.Max(maxRef, Math.Abs((double)b[i]));
        }
        return maxRef == 0 ? maxError : maxError / maxRef;
    }
}
