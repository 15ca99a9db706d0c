using System.Runtime.InteropServices;
using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// Session 11's 8-bit batch-1 lean loops (groups of 2-4 steps in one integer chain, one-step groups 8 steps per loop
/// pass; the only 8-bit 1-row loops since the knob was retired in session 15): every plan they touch sums each lane as
/// the integer reference does, with and without shifted loads; the whole product matches the reference at 1 and 2
/// threads.
/// </summary>
public class GemvLeanInt8Tests
{
    public static TheoryData<int, int, int, int> Layouts()
    {
        var data = new TheoryData<int, int, int, int>();
        // group (0 = per row, virtual groups), In, rows, shift (dwords; 0 = plain loads)
        data.Add(64, 576, 3, 0);    // one step per group: 9 steps, 1 pass of 8 and 1 left
        data.Add(64, 1088, 2, 5);   // 17 steps: 2 passes of 8 and 1 left, rows 20 bytes past a line
        data.Add(64, 448, 2, 3);    // 7 steps: no loop pass
        data.Add(128, 1152, 3, 0);  // 2 steps per group: 9 groups, a loop of pairs and an odd one
        data.Add(128, 1024, 2, 7);  // 8 groups, shifted
        data.Add(192, 1152, 2, 0);  // 3 steps per group: 6 groups
        data.Add(256, 1280, 2, 2);  // 4 steps per group: 5 groups, shifted
        data.Add(512, 1536, 2, 0);  // 8 steps per group: two chains
        data.Add(0, 1088, 3, 0);    // per row as virtual groups of 4 steps (RowIntegerSums off): 4 of 4 and one of 1
        return data;
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public unsafe void Lean_8_bit_loops_sum_each_lane_as_the_integer_reference(int group, int inF, int rows, int shift)
    {
        if (!VnniGemv.IsSupported) return; // no AVX512-VNNI here: the managed loop runs
        int gpr = group == 0 ? 1 : inF / group;
        using var knobs = KernelKnobs.Save();
        bool savedRowInt = VnniGemv.RowIntegerSums;
        VnniGemv.RowIntegerSums = false;
        var layout = VnniGemv.LayoutFor(8, group == 0 ? inF : group, gpr, inF, inF, (gpr + 15) & ~15)!.Value with { Shift = shift };
        VnniGemv.RowIntegerSums = savedRowInt;
        int rowBytes = layout.RowBytes, bytes = rows * rowBytes;
        var rng = new Random(group + inF + shift);
        byte* wBase = (byte*)NativeMemory.AlignedAlloc((nuint)(bytes + 192), 64);
        sbyte* x = (sbyte*)NativeMemory.AlignedAlloc((nuint)(64 * layout.Units), 64);
        float* scales = (float*)NativeMemory.AlignedAlloc((nuint)(4 * rows * layout.ScaleStride), 64);
        float* actual = (float*)NativeMemory.AlignedAlloc((nuint)(4 * 64 * rows), 64);
        try
        {
            rng.NextBytes(new Span<byte>(wBase, bytes + 192));
            byte* w = wBase + 64 + 4 * shift;
            for (int i = 0; i < 64 * layout.Units; i++) x[i] = (sbyte)rng.Next(-127, 128);
            // Scales of +-1 and +-2 and integer sums below 2^22: every float step is exact, so any order gives these sums.
            for (int i = 0; i < rows * layout.ScaleStride; i++) scales[i] = (1 + rng.Next(2)) * (rng.Next(2) * 2 - 1);
            new Span<float>(actual, 64 * rows).Fill(float.NaN);
            VnniGemv.Kernel(layout)(w, x, scales, actual, VnniGemv.Constants, rows);
            for (int k = 0; k < rows; k++)
                for (int lane = 0; lane < 16; lane++)
                {
                    // Lane l of row k: over the steps u, scale[k, u / steps] times the 4 products of bytes 4l..4l+3.
                    double expected = 0;
                    for (int u = 0; u < layout.Units; u++)
                    {
                        long sum = 0;
                        for (int b = 0; b < 4; b++) sum += w[k * rowBytes + 64 * u + 4 * lane + b] * (long)x[64 * u + 4 * lane + b];
                        expected += scales[k * layout.ScaleStride + u / layout.Steps] * (double)sum;
                    }
                    float* f = actual + 64 * k + lane;
                    Assert.True(expected == (double)f[0] + f[16] + f[32] + f[48],
                        $"g{group} In {inF} shift {shift}: row {k} lane {lane}: {f[0]} + {f[16]} + {f[32]} + {f[48]} vs {expected}");
                }
        }
        finally
        {
            NativeMemory.AlignedFree(wBase);
            NativeMemory.AlignedFree(x);
            NativeMemory.AlignedFree(scales);
            NativeMemory.AlignedFree(actual);
        }
    }

    [Theory]
    [InlineData(64, 1024)]
    [InlineData(128, 1152)]
    [InlineData(256, 1280)]
    [InlineData(32, 1088)]
    public void The_product_gives_the_same_bits_at_1_and_2_threads_and_matches_the_reference(int group, int inF)
    {
        const int outF = 53; // three blocks of 16 and a partial one
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group * 7 + inF), outF * inF), outF, inF, new QuantizationScheme(8, group, true));
        var x = QuantTestData.Gaussian((ulong)inF + 1, inF);
        using var knobs = KernelKnobs.Save();
        // (The 8-bit managed loop sums in another order: its bits differ by float32 rounding; the reference bounds both.)
        var results = new List<float[]>();
        foreach (int threads in new[] { 1, 2 })
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = threads;
            var y = new float[outF];
            q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
            results.Add(y);
        }
        Assert.Equal(results[0], results[1]);
        Int8Reference.AssertMatches(q, x, 1, "lean 8-bit loops");
    }
}
