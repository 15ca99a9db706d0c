using System.Runtime.InteropServices;
using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

/// <summary>
/// The 8-bit batch-1 loop for rows that start off a cache line (VnniGemv.Layout.Shift: whole-line loads joined by
/// valignd): the same sums, bit for bit, as the plain loop on an aligned copy of the rows, at every dword shift and
/// for every 8-bit float plan, with bytes before the first row and after the last one that must not leak in; and the
/// whole product on managed codes that start off a line, with the shifted loads on and off, at 1 and 2 threads.
/// Session 11: the same for 4-bit rows (their results also the managed loop's), and the 4-bit GFNI nibble split
/// (vgf2p8affineqb) against the shift and mask.
/// </summary>
public class GemvShiftedLoadTests
{
    public static TheoryData<int, int, int, int> Layouts()
    {
        var data = new TheoryData<int, int, int, int>();
        // bits, group (0 = per row), In, rows
        data.Add(8, 64, 576, 3);      // one step per group (StepFma): 9 steps, 2 chunks of 4 and 1 left
        data.Add(8, 32, 1088, 2);     // two groups per step (Permuted): 17 steps, 2 chunks of 8 and 1 left
        data.Add(8, 128, 1152, 3);    // 2 steps per group: 9 groups, a loop of pairs and an odd one
        data.Add(8, 256, 1280, 2);    // 4 steps per group: 5 groups
        data.Add(8, 0, 1088, 3);      // per row: 17 steps as 4 virtual groups of 4 and one of 1
        data.Add(8, 0, 128, 5);       // per row: 2 steps, no loop
        // 4 bits (a step: 128 codes in one line; session 11)
        data.Add(4, 32, 1152, 3);     // four groups per step (Permuted): 9 steps, 2 chunks of 4 and 1 left
        data.Add(4, 64, 2176, 2);     // two groups per step (Permuted): 17 steps, 2 chunks of 8 and 1 left
        data.Add(4, 128, 1152, 3);    // one step per group (StepFma): 9 steps
        data.Add(4, 256, 1280, 2);    // 2 steps per group: 5 groups, a loop of pairs and an odd one
        data.Add(4, 512, 2560, 2);    // 4 steps per group: 5 groups
        data.Add(4, 0, 1152, 3);      // per row: 9 steps as virtual groups of 4, 4 and 1
        data.Add(4, 0, 256, 5);       // per row: 2 steps, no loop
        return data;
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public unsafe void Every_shift_gives_the_sums_of_the_plain_loop_on_an_aligned_copy(int bits, int group, int inF, int rows)
    {
        if (!VnniGemv.IsSupported) return; // no AVX512-VNNI here: the managed loop runs
        int gpr = group == 0 ? 1 : inF / group;
        var plain = VnniGemv.LayoutFor(bits, group == 0 ? inF : group, gpr, inF, inF * bits / 8, (gpr + 15) & ~15)!.Value;
        Assert.Equal(0, plain.RowBytes % 64);
        int rowBytes = plain.RowBytes, bytes = rows * rowBytes, xBytes = plain.StepCodes * plain.Units;
        var rng = new Random(group + inF + bits);
        byte* aligned = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        byte* shiftedBase = (byte*)NativeMemory.AlignedAlloc((nuint)(bytes + 128), 64);
        sbyte* x = (sbyte*)NativeMemory.AlignedAlloc((nuint)xBytes, 64);
        float* scales = (float*)NativeMemory.AlignedAlloc((nuint)(4 * rows * plain.ScaleStride), 64);
        float* expected = (float*)NativeMemory.AlignedAlloc((nuint)(4 * 64 * rows), 64);
        float* actual = (float*)NativeMemory.AlignedAlloc((nuint)(4 * 64 * rows), 64);
        try
        {
            rng.NextBytes(new Span<byte>(aligned, bytes));
            for (int i = 0; i < xBytes; i++) x[i] = (sbyte)rng.Next(-127, 128);
            for (int i = 0; i < rows * plain.ScaleStride; i++) scales[i] = (float)(rng.NextDouble() - 0.5);
            VnniGemv.Kernel(plain)(aligned, x, scales, expected, VnniGemv.Constants, rows);
            for (int shift = 1; shift < 16; shift++)
            {
                // Codes 4 x shift bytes past a line; the bytes around them (read, then dropped by valignd) are 0xFF.
                new Span<byte>(shiftedBase, bytes + 128).Fill(0xFF);
                byte* w = shiftedBase + 64 + 4 * shift;
                Buffer.MemoryCopy(aligned, w, bytes, bytes);
                new Span<float>(actual, 64 * rows).Fill(float.NaN);
                var kernel = VnniGemv.Kernel(plain with { Shift = shift });
                Assert.True(kernel != null);
                kernel(w, x, scales, actual, VnniGemv.Constants, rows);
                for (int i = 0; i < 64 * rows; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                        $"{bits}-bit g{group} In {inF} shift {shift} dwords: row {i / 64} float {i % 64}: {actual[i]} vs {expected[i]}");
            }
        }
        finally
        {
            NativeMemory.AlignedFree(aligned);
            NativeMemory.AlignedFree(shiftedBase);
            NativeMemory.AlignedFree(x);
            NativeMemory.AlignedFree(scales);
            NativeMemory.AlignedFree(expected);
            NativeMemory.AlignedFree(actual);
        }
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public unsafe void The_GFNI_nibble_split_gives_the_sums_of_the_shift_and_mask_at_1_2_and_4_rows_per_pass(int bits, int group, int inF, int rows)
    {
        if (bits != 4 || !VnniGemv.IsSupported || !System.Runtime.Intrinsics.X86.Gfni.V512.IsSupported) return;
        int gpr = group == 0 ? 1 : inF / group;
        var plain = VnniGemv.LayoutFor(bits, group == 0 ? inF : group, gpr, inF, inF * bits / 8, (gpr + 15) & ~15)!.Value with { Gfni = false };
        rows = 4; // a whole pass at 1, 2 and 4 rows
        int bytes = rows * plain.RowBytes, xBytes = plain.StepCodes * plain.Units;
        var rng = new Random(group + inF);
        var w = new byte[bytes];
        var x = new sbyte[xBytes];
        var scales = new float[rows * plain.ScaleStride];
        rng.NextBytes(w);
        for (int i = 0; i < xBytes; i++) x[i] = (sbyte)rng.Next(-128, 128);
        for (int i = 0; i < scales.Length; i++) scales[i] = (float)(rng.NextDouble() - 0.5);
        var expected = new float[64 * rows];
        var actual = new float[64 * rows];
        fixed (byte* pw = w)
        fixed (sbyte* px = x)
        fixed (float* ps = scales, pe = expected, pa = actual)
        {
            VnniGemv.Kernel(plain)(pw, px, ps, pe, VnniGemv.Constants, rows);
            foreach (int perPass in new[] { 1, 2, 4 })
            {
                Array.Fill(actual, float.NaN);
                var layout = plain with { Gfni = true, Rows = perPass };
                Assert.NotEqual(VnniGemv.Emit(plain with { Rows = perPass }), VnniGemv.Emit(layout));
                VnniGemv.Kernel(layout)(pw, px, ps, pa, VnniGemv.Constants, rows);
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(expected[i]) == BitConverter.SingleToInt32Bits(actual[i]),
                        $"g{group} In {inF} {perPass} rows per pass: row {i / 64} float {i % 64}: {actual[i]} vs {expected[i]}");
            }
        }
    }

    [Fact]
    public void Four_bit_layouts_take_the_GFNI_split_where_the_CPU_has_it_and_the_knob_allows()
    {
        using (KernelKnobs.Save())
        {
            VnniGemv.GfniNibbles = true;
            Assert.Equal(System.Runtime.Intrinsics.X86.Gfni.V512.IsSupported, VnniGemv.LayoutFor(4, 64, 16, 1024, 512, 16)!.Value.Gfni);
            Assert.False(VnniGemv.LayoutFor(8, 64, 16, 1024, 1024, 16)!.Value.Gfni);
            VnniGemv.GfniNibbles = false;
            Assert.False(VnniGemv.LayoutFor(4, 64, 16, 1024, 512, 16)!.Value.Gfni);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(VnniGemv.LayoutFor(8, 64, 16, 1024, 1024, 16)!.Value with { Gfni = true }));
    }

    [Theory]
    [InlineData(19, 0)]  // 2 loop passes of 8 steps and 3 left
    [InlineData(5, 0)]   // no loop pass
    [InlineData(19, 5)]  // the same, rows 20 bytes past a line
    public unsafe void Per_row_8_bit_sums_the_whole_row_in_integers_then_scales_once(int units, int shift)
    {
        if (!VnniGemv.IsSupported) return;
        const int rows = 3;
        int rowBytes = 64 * units;
        var layout = VnniGemv.LayoutFor(8, rowBytes, 1, rowBytes, rowBytes, 16)!.Value;
        Assert.Equal(VnniGemv.Plan.RowInt, layout.Plan);
        var kernel = VnniGemv.Kernel(layout with { Shift = shift });
        Assert.True(kernel != null);
        var rng = new Random(units);
        var w = new byte[rows * rowBytes + 128];
        var xs = new sbyte[rowBytes];
        var scales = new float[rows * layout.ScaleStride];
        rng.NextBytes(w);
        for (int i = 0; i < xs.Length; i++) xs[i] = (sbyte)rng.Next(-127, 128);
        for (int k = 0; k < rows; k++) scales[k * layout.ScaleStride] = (1 + rng.Next(2)) * (rng.Next(2) * 2 - 1);
        var lanes = new float[rows * 64];
        fixed (byte* pw = w)
        fixed (sbyte* px = xs)
        fixed (float* ps = scales)
        fixed (float* pl = lanes)
        {
            // The rows 4 x shift bytes past a line of the array (shift 0: wherever the array starts).
            byte* start = shift == 0 ? pw : (byte*)(((nint)pw + 63) & ~(nint)63) + 4 * shift;
            int offset = (int)(start - pw);
            kernel(start, px, ps, pl, VnniGemv.Constants, rows);
            for (int k = 0; k < rows; k++)
                for (int lane = 0; lane < 16; lane++)
                {
                    long sum = 0;
                    for (int u = 0; u < units; u++)
                        for (int b = 0; b < 4; b++)
                        {
                            int i = 64 * u + 4 * lane + b;
                            sum += w[offset + k * rowBytes + i] * (long)xs[i];
                        }
                    // |sum| < 2^22 and scales of +-1, +-2: exact.
                    Assert.Equal(scales[k * layout.ScaleStride] * (double)sum, lanes[64 * k + lane]);
                    for (int f = 1; f < 4; f++) Assert.Equal(0f, lanes[64 * k + 16 * f + lane]);
                }
        }
    }

    [Fact]
    public void Shifts_are_only_made_for_rows_of_whole_lines_read_one_at_a_time()
    {
        var g64 = VnniGemv.LayoutFor(8, 64, 16, 1024, 1024, 16)!.Value;
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(g64 with { Shift = 16 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(g64 with { Shift = 2, RowBytes = 1000 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(g64 with { Shift = 2, Rows = 2 }));
        var four = VnniGemv.LayoutFor(4, 64, 16, 1024, 512, 16)!.Value;
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(four with { Shift = 2, Rows = 4 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => VnniGemv.Emit(four with { Shift = 2, RowBytes = 544 }));
        Assert.NotEmpty(VnniGemv.Emit(four with { Shift = 2 }));
        Assert.NotEmpty(VnniGemv.Emit(g64 with { Shift = 2 }));
    }

    [Theory]
    [InlineData(8, 32, 1024)]
    [InlineData(8, 64, 1024)]
    [InlineData(8, 128, 1152)]
    [InlineData(8, 0, 1088)]
    [InlineData(4, 32, 1024)]
    [InlineData(4, 64, 1152)]
    [InlineData(4, 128, 1152)]
    [InlineData(4, 256, 1280)]
    [InlineData(4, 0, 1152)]
    public unsafe void Codes_that_start_off_a_line_give_the_bits_of_codes_on_a_line_at_1_and_2_threads(int bits, int group, int inF)
    {
        const int outF = 37; // two blocks of 16 and a partial one
        // 4 bits: asymmetric (zero points), and the managed loop's bits too (the generated loop's 4-bit results are its).
        var source = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(group + inF), outF * inF), outF, inF, new QuantizationScheme(bits, group, bits == 8));
        // Codes on the pinned heap (never moved) at an address off a line (the layout managed arrays usually get: the
        // shifted whole-line kernel where the layout allows one) and on a line (the plain kernel).
        GroupQuantizedWeight Placed(bool onLine)
        {
            var packed = PinnedAt(source.Packed.Length, onLine);
            source.Packed.CopyTo(packed, 0);
            return GroupQuantizedWeight.FromParts(outF, inF, source.Scheme, packed, source.Scales, source.ZeroPoints);
        }
        var q = Placed(onLine: false);
        var aligned = Placed(onLine: true);
        var x = QuantTestData.Gaussian((ulong)inF, inF);
        var results = new List<float[]>();
        using var knobs = KernelKnobs.Save();
        bool savedGenerated = KernelOptions.GeneratedCode;
        foreach (var weight in new[] { q, aligned })
            foreach (int threads in new[] { 1, 2 })
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var y = new float[outF];
                weight.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                results.Add(y);
            }
        if (bits == 4)
        {
            KernelOptions.GeneratedCode = false;
            var managed = new float[outF];
            q.MatMulTransposed(x, managed, 1, ActivationPrecision.Int8);
            results.Add(managed);
            KernelOptions.GeneratedCode = savedGenerated;
        }
        Int8Reference.AssertMatches(q, x, 1, "shifted loads");
        for (int i = 1; i < results.Count; i++) Assert.Equal(results[0], results[i]);
    }

    /// <summary>A pinned array of <paramref name="length"/> bytes whose data starts on a 64-byte line or not.</summary>
    private static unsafe byte[] PinnedAt(int length, bool onLine)
    {
        var tried = new List<byte[]>(); // kept alive so the next one lands elsewhere
        for (int attempt = 0; attempt < 256; attempt++)
        {
            var candidate = GC.AllocateArray<byte>(length, pinned: true);
            fixed (byte* p = candidate)
                if (((nint)p % 64 == 0) == onLine) return candidate;
            tried.Add(candidate);
        }
        throw new InvalidOperationException($"no pinned array {(onLine ? "on" : "off")} a cache line in 256 tries");
    }
}
