using Condense.Catalogue;
using Condense.Kernels;

namespace Condense.Tests.Kernels;

public class DenseWeightTests
{
    public static TheoryData<int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int>();
        foreach (int batch in new[] { 1, 2, 3, 4, 5, 7, 9 })
            foreach (var (o, i) in new[] { (1, 1), (3, 5), (4, 16), (5, 17), (9, 33), (13, 100), (8, 513), (7, 1031) })
                data.Add(batch, o, i);
        // The dot-product tiles (batch 4 to 31): 4 x 4 tiles with remainders of 3, 2 and 1 rows, and rows longer
        // than one k block (4096) so the accumulators round-trip through the scratch.
        foreach (int batch in new[] { 8, 11, 16, 18, 19 })
            foreach (var (o, i) in new[] { (5, 17), (9, 100), (7, 1031) })
                data.Add(batch, o, i);
        data.Add(16, 6, 4096 + 16 + 3);
        data.Add(7, 5, 2 * 4096 + 33);
        data.Add(128, 37, 300);
        data.Add(128, 64, 1100);
        return data;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public unsafe void Every_width_matches_the_scalar_fma_chain_within_reassociation_error(int batch, int outF, int inF)
    {
        var rng = new Rng((ulong)(batch * 100_000 + outF * 1000 + inF));
        var w = new float[outF * inF];
        var x = new float[batch * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        var expected = new float[batch * outF];
        fixed (float* px = x, pw = w, py = expected)
            DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
        var storage = new DenseWeight(w, outF, inF);
        KernelWidths.ForEach(bits =>
        {
            var y = new float[batch * outF];
            storage.MatMulTransposed(x, y, batch);
            for (int b = 0; b < batch; b++)
                for (int o = 0; o < outF; o++)
                {
                    double magnitude = 0;
                    for (int i = 0; i < inF; i++) magnitude += Math.Abs((double)x[b * inF + i] * w[o * inF + i]);
                    // Reassociating a float32 sum of n terms moves it by at most ~n * 2^-24 * sum |terms|.
                    double tolerance = bits == 0 ? 0 : (inF + 16) * Math.Pow(2, -24) * magnitude;
                    Assert.True(Math.Abs(y[b * outF + o] - expected[b * outF + o]) <= tolerance,
                        $"width {bits}, b={b}, o={o}: {y[b * outF + o]} vs {expected[b * outF + o]} (tolerance {tolerance})");
                }
        });
    }

    [Theory]
    [InlineData(32, 21, 70)]
    [InlineData(40, 9, 1031)]
    [InlineData(130, 37, 300)]
    [InlineData(64, 77, 2100)]
    [InlineData(16, 45, 4096)]
    [InlineData(15, 23, 333)]
    [InlineData(8, 19, 517)]
    [InlineData(14, 70, 129)]
    public unsafe void Large_batches_equal_the_scalar_fma_chain_bit_for_bit(int batch, int outF, int inF)
    {
        // The packed kernel runs each output's fma chain in reference order; any reordering shows up in the last bits.
        var rng = new Rng((ulong)(batch * 7 + outF * 1000 + inF));
        var w = new float[outF * inF];
        var x = new float[batch * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        var expected = new float[batch * outF];
        fixed (float* px = x, pw = w, py = expected)
            DenseMatMul.Reference(px, pw, py, batch, outF, inF, 0, outF);
        var storage = new DenseWeight(w, outF, inF);
        KernelWidths.ForEach(bits =>
        {
            // One full vector of batch (16 at 512 bits, 8 at 256) takes the packed kernel too; smaller batches
            // take the dot-product tiles, which reassociate.
            int v = bits / 32;
            bool packed = bits != 0 && (batch >= 2 * v || (batch + v - 1) / v * v * 7 <= batch * 8);
            Assert.Equal(packed, DenseMatMul.UsesPackedKernel(batch, bits));
            if (bits != 0 && !packed) return;
            var y = new float[batch * outF];
            storage.MatMulTransposed(x, y, batch);
            Assert.Equal(expected, y);
        });
    }

    [Theory]
    [InlineData(1, 37, 1031)]
    [InlineData(2, 37, 1031)]
    [InlineData(3, 37, 1031)]
    [InlineData(1, 9, 4096 + 16 * 9 + 5)]
    [InlineData(2, 13, 300)]
    [InlineData(3, 5, 17)]
    [InlineData(1, 130, 4100)]
    public unsafe void Batch_1_to_3_row_stream_equals_the_four_row_tile_bit_for_bit_at_every_width_and_thread_count(int batch, int outF, int inF)
    {
        // The one-row stream (weights from 8 MiB) and the 4-row tile (smaller ones) must give the same bits: which
        // shape runs depends on the weight's size, never on what the caller sees.
        var rng = new Rng((ulong)(batch * 31 + outF * 1000 + inF));
        var w = new float[outF * inF];
        var x = new float[batch * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        var storage = new DenseWeight(w, outF, inF);
        int savedRows = DenseMatMul.GemvRowsSideBySide, savedDegree = WorkerPool.Shared.MaxDegreeOfParallelism;
        bool savedPanels = DenseWeight.PanelCopies;
        try
        {
            // The GEMV's shapes, not the panel copy small weights take at 512 bits (OutputLanesSgemmTests).
            DenseWeight.PanelCopies = false;
            KernelWidths.ForEach(bits =>
            {
                float[]? first = null;
                foreach (int rows in new[] { 4, 1, 0 })
                    foreach (int degree in new[] { 1, 2, 3 })
                    {
                        DenseMatMul.GemvRowsSideBySide = rows;
                        WorkerPool.Shared.MaxDegreeOfParallelism = degree;
                        var y = new float[batch * outF];
                        storage.MatMulTransposed(x, y, batch);
                        first ??= y;
                        Assert.True(first.AsSpan().SequenceEqual(y), $"width {bits}, {rows} row(s) side by side, {degree} thread(s): bits differ");
                    }
                if (batch != 1 || bits == 0) return;
                // The packed batch-1 layout (4 rows interleaved block by block) at this width, through the kernel entry.
                DenseMatMul.GemvRowsSideBySide = 0;
                var packed = new float[w.Length];
                var yp = new float[outF];
                fixed (float* pw = w, pp = packed, px = x, py = yp)
                {
                    DenseMatMul.PackRows4(pw, pp, outF, inF, bits);
                    foreach (int degree in new[] { 1, 2, 3 })
                    {
                        WorkerPool.Shared.MaxDegreeOfParallelism = degree;
                        Array.Clear(yp);
                        DenseMatMul.MatMulTransposed(px, pw, py, 1, outF, inF, pp, bits);
                        Assert.True(first!.AsSpan().SequenceEqual(yp), $"width {bits}, packed layout, {degree} thread(s): bits differ");
                    }
                }
            });
        }
        finally
        {
            DenseMatMul.GemvRowsSideBySide = savedRows;
            WorkerPool.Shared.MaxDegreeOfParallelism = savedDegree;
            DenseWeight.PanelCopies = savedPanels;
        }
    }

    [Fact]
    public void A_large_weight_at_batch_1_reads_its_packed_copy_with_the_same_bits_at_every_width()
    {
        // 8.1 MiB: over the packing threshold; 517 rows (a leftover row past the last 4-row tile), 4100 columns (a tail).
        int outF = 517, inF = 4100;
        Assert.True((long)outF * inF * sizeof(float) >= DenseMatMul.GemvStreamMinBytes);
        var rng = new Rng(29);
        var w = new float[outF * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        var x = new float[inF];
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        var before = (float[])w.Clone();
        var storage = new DenseWeight(w, outF, inF, packForBatch1: true);
        int savedRows = DenseMatMul.GemvRowsSideBySide;
        try
        {
            KernelWidths.ForEach(bits =>
            {
                DenseMatMul.GemvRowsSideBySide = 4; // the row-major 4-row tile: no packed copy
                var expected = new float[outF];
                storage.MatMulTransposed(x, expected, 1);
                DenseMatMul.GemvRowsSideBySide = 0;
                var y = new float[outF];
                storage.MatMulTransposed(x, y, 1);
                if (bits != 0) Assert.True(storage.HasPackedCopy, $"width {bits}: no packed copy was built");
                Assert.Equal(expected, y);
            });
        }
        finally
        {
            DenseMatMul.GemvRowsSideBySide = savedRows;
        }
        Assert.Equal(before, storage.Weight); // the row-major array the caller gave is untouched
    }

    [Theory]
    [InlineData(37, 16)]
    [InlineData(37, 17)]
    [InlineData(6, 32)]
    [InlineData(7, 48)]
    [InlineData(13, 64)]
    [InlineData(3, 31)]
    [InlineData(5, 1031)]
    [InlineData(9, 4096 + 16 * 9 + 5)]
    [InlineData(2, 15)]
    public unsafe void Batch_1_row_stream_with_aligned_loads_gives_the_tiles_bits_at_every_misalignment_of_w_and_x(int outF, int inF)
    {
        // The 512-bit row stream reads W with 64 B aligned loads whatever line offset a row starts at (a managed
        // array's data is 16 B off a line, rows of odd length start anywhere): every misalignment of W (0-15 floats)
        // and of x must give the 4-row tile's bits (row-major loads from each row's first float) at 1-3 threads.
        // NaN around both arrays: the aligned loads read past the row's ends within its first and last line, and
        // those lanes must not reach any result.
        var rng = new Rng((ulong)(outF * 7919 + inF));
        int count = outF * inF, guard = 32;
        float* wBase = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)((count + 2 * guard) * sizeof(float)), 64);
        float* xBase = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)((inF + 2 * guard) * sizeof(float)), 64);
        var values = new float[count];
        var xv = new float[inF];
        for (int k = 0; k < count; k++) values[k] = rng.NextGaussian();
        for (int k = 0; k < inF; k++) xv[k] = rng.NextGaussian();
        int savedRows = DenseMatMul.GemvRowsSideBySide, savedDegree = WorkerPool.Shared.MaxDegreeOfParallelism;
        try
        {
            KernelWidths.ForEach(bits =>
            {
                foreach (int wOff in Enumerable.Range(0, 16))
                    foreach (int xOff in new[] { 0, 5, wOff })
                    {
                        new Span<float>(wBase, count + 2 * guard).Fill(float.NaN);
                        new Span<float>(xBase, inF + 2 * guard).Fill(float.NaN);
                        float* w = wBase + guard + wOff, x = xBase + guard + xOff;
                        values.CopyTo(new Span<float>(w, count));
                        xv.CopyTo(new Span<float>(x, inF));
                        DenseMatMul.GemvRowsSideBySide = 4;
                        WorkerPool.Shared.MaxDegreeOfParallelism = 1;
                        var expected = new float[outF];
                        fixed (float* pe = expected) DenseMatMul.MatMulTransposed(x, w, pe, 1, outF, inF);
                        Assert.All(expected, e => Assert.False(float.IsNaN(e)));
                        DenseMatMul.GemvRowsSideBySide = 1;
                        foreach (int degree in new[] { 1, 2, 3 })
                        {
                            WorkerPool.Shared.MaxDegreeOfParallelism = degree;
                            var y = new float[outF];
                            fixed (float* py = y) DenseMatMul.MatMulTransposed(x, w, py, 1, outF, inF);
                            Assert.True(expected.AsSpan().SequenceEqual(y),
                                $"width {bits}, W +{wOff} floats, x +{xOff}, {degree} thread(s): bits differ");
                        }
                    }
            });
        }
        finally
        {
            DenseMatMul.GemvRowsSideBySide = savedRows;
            WorkerPool.Shared.MaxDegreeOfParallelism = savedDegree;
            System.Runtime.InteropServices.NativeMemory.AlignedFree(wBase);
            System.Runtime.InteropServices.NativeMemory.AlignedFree(xBase);
        }
    }

    [Fact]
    public void A_packed_copy_starts_on_a_cache_line()
    {
        int outF = 517, inF = 4100;
        var storage = new DenseWeight(new float[outF * inF], outF, inF, packForBatch1: true);
        storage.MatMulTransposed(new float[inF], new float[outF], 1);
        if (KernelOptions.VectorBits == 0) return;
        Assert.True(storage.HasPackedCopy);
        Assert.Equal(0, storage.PackedCopyAddress!.Value & 63);
    }

    [Fact]
    public void A_small_weight_gets_no_packed_copy()
    {
        var storage = new DenseWeight(new float[64 * 100], 64, 100, packForBatch1: true);
        storage.MatMulTransposed(new float[100], new float[64], 1);
        Assert.False(storage.HasPackedCopy);
    }

    [Fact]
    public void A_large_weight_keeps_one_copy_unless_packing_was_asked_for()
    {
        // The second copy doubles the weight's memory: only a caller who asked for it pays.
        int outF = 512, inF = 4100;
        Assert.True((long)outF * inF * sizeof(float) >= DenseMatMul.GemvStreamMinBytes);
        var storage = new DenseWeight(new float[outF * inF], outF, inF);
        Assert.False(storage.PacksForBatch1);
        storage.MatMulTransposed(new float[inF], new float[outF], 1);
        Assert.False(storage.HasPackedCopy);
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        var rng = new Rng(3);
        int outF = 130, inF = 4100;
        var w = new float[outF * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        var storage = new DenseWeight(w, outF, inF);
        foreach (int batch in new[] { 1, 16, 48 })
        {
            var x = new float[batch * inF];
            for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
            var one = new float[batch * outF];
            var many = new float[batch * outF];
            int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
            try
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = 1;
                storage.MatMulTransposed(x, one, batch);
                WorkerPool.Shared.MaxDegreeOfParallelism = 3;
                storage.MatMulTransposed(x, many, batch);
            }
            finally
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = saved;
            }
            Assert.Equal(one, many);
        }
    }

    [Fact]
    public unsafe void A_large_weight_is_backed_by_huge_pages_and_keeps_its_values()
    {
        if (!Smaps.TransparentHugePagesAvailable) return; // no transparent huge pages on this system: the advice is a no-op by design
        int outF = 1024, inF = 4096; // 16 MiB: several whole 2 MiB pages whatever the array's alignment
        var rng = new Rng(11);
        var w = new float[outF * inF];
        for (int k = 0; k < w.Length; k++) w[k] = rng.NextGaussian();
        var before = (float[])w.Clone();
        var x = new float[inF];
        for (int k = 0; k < x.Length; k++) x[k] = rng.NextGaussian();
        var expected = new float[outF];
        new DenseWeight(before, outF, inF).MatMulTransposed(x, expected, 1);

        var storage = new DenseWeight(w, outF, inF);
        Assert.Equal(before, w);
        var y = new float[outF];
        storage.MatMulTransposed(x, y, 1);
        Assert.Equal(expected, y);
        long address;
        fixed (float* p = w) address = (long)p + w.Length * sizeof(float) / 2;
        long hugeKiB = Smaps.AnonHugePagesKiB(address);
        // The kernel may refuse the collapse (before Linux 6.1, or no free 2 MiB page): then a second advice fails
        // too, and only the values are this test's business. When it accepts, the pages must really be huge.
        if (hugeKiB < 2048 && !HugePages.Advise(w)) return;
        hugeKiB = Smaps.AnonHugePagesKiB(address);
        Assert.True(hugeKiB >= 2048,
            $"the 16 MiB weight's mapping has no huge page after DenseWeight advised it (smaps AnonHugePages {hugeKiB} KiB)");
    }

    [Fact]
    public void Storage_reports_catalogue_bytes_and_validates_lengths()
    {
        var storage = new DenseWeight(new float[12], 3, 4);
        Assert.Equal(KernelCatalogue.DenseBytes(3, 4), storage.ByteCount);
        Assert.Equal("fp32", storage.Format);
        var ex = Assert.Throws<ArgumentException>(() => storage.MatMulTransposed(new float[7], new float[6], 2));
        Assert.Contains("expects batch x InFeatures = 8", ex.Message);
        Assert.Throws<ArgumentException>(() => storage.MatMulTransposed(new float[8], new float[5], 2));
        Assert.Throws<ArgumentException>(() => new DenseWeight(new float[11], 3, 4));
        var copy = new float[12];
        storage.Dequantize(copy);
        Assert.Equal(storage.Weight, copy);
    }
}
