using System.Globalization;
using System.Text;
using Condense.Quantization;
using Xunit.Abstractions;

namespace Condense.Tests.Quantization;

/// <summary>
/// Round-to-nearest error against the plain min/max observer grid (PyTorch's per-channel MinMaxObserver: symmetric
/// scale absmax / ((2^b - 1) / 2) on levels -2^(b-1)..2^(b-1)-1, asymmetric (max - min) / (2^b - 1) with an
/// integer zero point), re-derived here in float32 independently of the runtime.
/// </summary>
public class RoundingQualityTests(ITestOutputHelper output)
{
    private const int Rows = 16, Columns = 512;
    private static readonly int[] BitWidths = [2, 3, 4, 8];
    private static readonly int[] GroupSizes = [16, 32, 64, 128, 0];
    private static readonly string[] Distributions = ["gaussian", "laplace", "student-t3"];

    public static TheoryData<int, int, bool, string> Configurations()
    {
        var data = new TheoryData<int, int, bool, string>();
        foreach (int bits in BitWidths)
            foreach (int group in GroupSizes)
                foreach (bool sym in new[] { true, false })
                    foreach (string dist in Distributions)
                        data.Add(bits, group, sym, dist);
        return data;
    }

    private static float[] Weights(string distribution, int bits, int group, bool sym)
    {
        ulong state = (ulong)(bits * 7_919 + group * 131 + (sym ? 3 : 0) + distribution.Length * 1_000_003);
        var w = new float[Rows * Columns];
        for (int i = 0; i < w.Length; i++)
        {
            double u = 1.0 - QuantTestData.NextDouble(ref state);
            w[i] = distribution switch
            {
                // Box-Muller.
                "gaussian" => (float)(0.02 * Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * QuantTestData.NextDouble(ref state))),
                // Inverse CDF with a random sign.
                "laplace" => (float)(0.02 * -Math.Log(u) * (QuantTestData.NextDouble(ref state) < 0.5 ? -1 : 1)),
                // Student-t with 3 degrees of freedom: a normal over sqrt(chi^2_3 / 3); an off-center shift for asymmetric grids.
                _ => (float)(0.01 * StudentT3(ref state) + (sym ? 0 : 0.005)),
            };
        }
        return w;
    }

    private static double Normal(ref ulong state)
    {
        double u = 1.0 - QuantTestData.NextDouble(ref state);
        return Math.Sqrt(-2 * Math.Log(u)) * Math.Cos(2 * Math.PI * QuantTestData.NextDouble(ref state));
    }

    private static double StudentT3(ref ulong state)
    {
        double z = Normal(ref state), chi = 0;
        for (int k = 0; k < 3; k++) { double n = Normal(ref state); chi += n * n; }
        return z / Math.Sqrt(chi / 3);
    }

    /// <summary>The observer grid: float32 scale and zero point, q = clamp(round(w / s) + zp).</summary>
    private static float[] MinMaxObserver(float[] w, int bits, int group, bool sym)
    {
        int g = group == 0 ? Columns : group;
        var result = new float[w.Length];
        int qmin = sym ? -(1 << (bits - 1)) : 0, qmax = sym ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
        for (int start = 0; start < w.Length; start += g)
        {
            float lo = 0f, hi = 0f;
            for (int i = start; i < start + g; i++) { lo = Math.Min(lo, w[i]); hi = Math.Max(hi, w[i]); }
            float scale;
            int zp;
            if (sym)
            {
                scale = Math.Max(hi, -lo) / ((qmax - qmin) / 2f);
                zp = 0;
            }
            else
            {
                scale = (hi - lo) / (qmax - qmin);
                zp = scale == 0 ? 0 : Math.Clamp(qmin - (int)MathF.Round(lo / scale), qmin, qmax);
            }
            for (int i = start; i < start + g; i++)
                result[i] = scale == 0 ? 0 : scale * (Math.Clamp((int)MathF.Round(w[i] / scale) + zp, qmin, qmax) - zp);
        }
        return result;
    }

    /// <summary>Condense before this change: symmetric levels +-(2^(b-1) - 1) (one code unused), scales rounded up to float16.</summary>
    private static float[] PreviousGrid(float[] w, int bits, int group, bool sym)
    {
        int g = group == 0 ? Columns : group;
        var result = new float[w.Length];
        int maxLevel = (1 << bits) - 1;
        for (int start = 0; start < w.Length; start += g)
        {
            double lo = 0, hi = 0;
            for (int i = start; i < start + g; i++) { lo = Math.Min(lo, w[i]); hi = Math.Max(hi, w[i]); }
            double exact = sym ? Math.Max(hi, -lo) / ((1 << (bits - 1)) - 1) : (hi - lo) / maxLevel;
            var h = (Half)exact;
            float s = (float)((double)h < exact ? Half.BitIncrement(h) : h);
            int zero = sym ? 1 << (bits - 1) : s == 0 ? 0 : (int)Math.Clamp(Math.Round(-lo / s), 0, maxLevel);
            for (int i = start; i < start + g; i++)
                result[i] = s == 0 ? 0 : s * (Math.Clamp((int)MathF.Round(w[i] / s) + zero, 0, maxLevel) - zero);
        }
        return result;
    }

    private static double RelativeError(float[] w, float[] restored)
    {
        double num = 0, den = 0;
        for (int i = 0; i < w.Length; i++)
        {
            double d = (double)w[i] - restored[i];
            num += d * d;
            den += (double)w[i] * w[i];
        }
        return Math.Sqrt(num / den);
    }

    private static double Condense(float[] w, int bits, int group, bool sym, QuantizationRounding rounding)
    {
        var q = GroupQuantizedWeight.Quantize(w, Rows, Columns, new QuantizationScheme(bits, group, sym), rounding);
        var back = new float[w.Length];
        q.Dequantize(back);
        return RelativeError(w, back);
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public void Round_to_nearest_is_never_worse_than_the_min_max_observer_and_the_search_never_worse_than_min_max(int bits, int group, bool sym, string distribution)
    {
        var w = Weights(distribution, bits, group, sym);
        double observer = RelativeError(w, MinMaxObserver(w, bits, group, sym));
        double minMax = Condense(w, bits, group, sym, QuantizationRounding.MinMax);
        double clip = Condense(w, bits, group, sym, QuantizationRounding.MseClip);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"observer {observer:G5} minmax {minMax:G5} mse-clip {clip:G5}"));
        Assert.True(clip <= observer, $"MSE clip {clip} > min/max observer {observer}");
        Assert.True(clip <= minMax, $"MSE clip {clip} > plain min/max {minMax}");
    }

    /// <summary>
    /// The search finds a strictly better grid than the observer on nearly every configuration (it can only tie where
    /// the groups are so small and the bits so many that no clipping pays), and so does the default rounding.
    /// </summary>
    [Fact]
    public void The_search_is_strictly_better_than_the_observer_on_nearly_every_configuration()
    {
        var table = new StringBuilder("bits group scheme dist        observer  before(x obs)  minmax(x obs)  mse-clip(x obs)\n");
        int total = 0, better = 0;
        foreach (int bits in BitWidths)
            foreach (int group in GroupSizes)
                foreach (bool sym in new[] { true, false })
                    foreach (string dist in Distributions)
                    {
                        var w = Weights(dist, bits, group, sym);
                        double observer = RelativeError(w, MinMaxObserver(w, bits, group, sym));
                        double before = RelativeError(w, PreviousGrid(w, bits, group, sym));
                        double minMax = Condense(w, bits, group, sym, QuantizationRounding.MinMax);
                        var q = GroupQuantizedWeight.Quantize(w, Rows, Columns, new QuantizationScheme(bits, group, sym));
                        var back = new float[w.Length];
                        q.Dequantize(back);
                        double clip = RelativeError(w, back);
                        total++;
                        if (clip < observer) better++;
                        table.Append(string.Create(CultureInfo.InvariantCulture,
                            $"int{bits} {(group == 0 ? "row" : "g" + group),-5} {(sym ? "sym " : "asym")}   {dist,-10}  {observer:F5}   {before / observer:F3}          {minMax / observer:F3}          {clip / observer:F3}\n"));
                    }
        output.WriteLine(table.ToString());
        Assert.True(better >= total * 9 / 10, $"the default rounding beat the observer on {better} of {total} configurations");
    }
}
