using System.Runtime.Intrinsics;
using Condense.Quantization;

namespace Condense.Tests.Quantization;

/// <summary>
/// The batch-1 GEMV's per-block set-up: <c>FusedInt8Dot.ScaleRows</c> (16 rows' float32 scales and zero-point
/// corrections at once) gives ScaleRow's bits row by row, and <c>TransposeSum</c> (16 horizontal sums by one
/// transpose-add) gives Vector512.Sum's bits: the generated and managed loops stay bit-identical through them.
/// </summary>
public unsafe class ScaleRowsTests
{
    [Theory]
    [InlineData(1)]    // per row
    [InlineData(3)]    // MiniLM In = 384, g128: no whole 16-group chunk
    [InlineData(12)]   // 384 / 32
    [InlineData(16)]
    [InlineData(24)]   // a whole chunk and a partial one
    [InlineData(32)]
    [InlineData(128)]  // 4096 / 32
    [InlineData(130)]
    public void Block_scales_and_corrections_equal_ScaleRow_row_by_row(int groupsPerRow)
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) return; // ScaleRows then calls ScaleRow itself
        var rng = new Random(groupsPerRow);
        int stride = ((groupsPerRow + 15) & ~15) + 16;
        foreach (bool symmetric in new[] { true, false })
            foreach (int count in new[] { 1, 2, 3, 4, 9, 14, FusedInt8Dot.ScaleBlock }) // a whole block too (per row: one vector)
            {
                int n = count * groupsPerRow;
                var scales = new Half[n];
                var zeros = new byte[n];
                // Scales of both signs over many binades, subnormal halves included; zero points 0..15.
                for (int i = 0; i < n; i++)
                {
                    scales[i] = (Half)((rng.NextDouble() - 0.5) * Math.Pow(2, rng.Next(-20, 6)));
                    zeros[i] = (byte)rng.Next(16);
                }
                var sums = new float[(groupsPerRow + 15) & ~15];
                for (int g = 0; g < groupsPerRow; g++) sums[g] = rng.Next(-2000, 2000);
                var expectScales = new float[stride];
                var blockScales = new float[FusedInt8Dot.ScaleBlock * stride + 16];
                var work = new float[FusedInt8Dot.ScaleRowsWork(groupsPerRow) + 16];
                var corrections = new float[FusedInt8Dot.ScaleBlock];
                fixed (Half* s = scales)
                fixed (byte* z = zeros)
                fixed (float* q = sums, e = expectScales, b = blockScales, w0 = work, c = corrections)
                {
                    float* w = (float*)(((nint)w0 + 63) & ~(nint)63);
                    byte* zp = symmetric ? null : z;
                    FusedInt8Dot.ScaleRows(s, zp, 8, 0, b, stride, q, groupsPerRow, count, w, c);
                    for (int k = 0; k < count; k++)
                    {
                        float expect = FusedInt8Dot.ScaleRow(s + k * groupsPerRow, zp == null ? null : zp + k * groupsPerRow, 8, 0, e, q, groupsPerRow);
                        Assert.True(BitConverter.SingleToInt32Bits(expect) == BitConverter.SingleToInt32Bits(c[k]),
                            $"groups {groupsPerRow}, {count} rows, {(symmetric ? "symmetric" : "zero points")}: row {k} correction {c[k]:R}, ScaleRow {expect:R}");
                        for (int g = 0; g < groupsPerRow; g++)
                            Assert.True(BitConverter.SingleToInt32Bits(e[g]) == BitConverter.SingleToInt32Bits(b[k * stride + g]),
                                $"groups {groupsPerRow}, row {k}, group {g}: scale {b[k * stride + g]:R}, ScaleRow {e[g]:R}");
                    }
                }
            }
    }

    [Fact]
    public void Transpose_sum_gives_each_row_the_bits_of_Vector512_Sum()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) return; // only the AVX-512 loops call it
        var rng = new Random(5);
        var rows = stackalloc Vector512<float>[17];
        var v = (Vector512<float>*)(((nint)rows + 63) & ~(nint)63);
        for (int trial = 0; trial < 2000; trial++)
        {
            var lanes = new float[16];
            for (int r = 0; r < 16; r++)
            {
                // Mixed magnitudes and signs: a different addition order changes the rounding in most trials.
                for (int i = 0; i < 16; i++) lanes[i] = (float)((rng.NextDouble() - 0.5) * Math.Pow(10, rng.Next(-3, 5)));
                v[r] = Vector512.Create(lanes);
            }
            var sums = FusedInt8Dot.TransposeSum(v);
            for (int r = 0; r < 16; r++)
                Assert.True(BitConverter.SingleToInt32Bits(Vector512.Sum(v[r])) == BitConverter.SingleToInt32Bits(sums[r]),
                    $"trial {trial}, row {r}: {sums[r]:R} against Vector512.Sum {Vector512.Sum(v[r]):R}");
        }
    }
}
