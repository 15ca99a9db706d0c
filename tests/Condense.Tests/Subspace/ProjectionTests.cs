using Condense.Kernels;
using Condense.Subspace;
using Condense.Tests.Quantization;

namespace Condense.Tests.Subspace;

public class ProjectionTests
{
    public static TheoryData<SubspaceProjection, ProjectionStorage> Kinds => new()
    {
        { SubspaceProjection.Dense, ProjectionStorage.Cached },
        { SubspaceProjection.Dense, ProjectionStorage.Streamed },
        { SubspaceProjection.Sparse, ProjectionStorage.Cached },
        { SubspaceProjection.Sparse, ProjectionStorage.Streamed },
        { SubspaceProjection.Fastfood, ProjectionStorage.Cached },
    };

    private static double Dot(float[] a, float[] b) => a.Zip(b, (p, q) => (double)p * q).Sum();

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ProjectTranspose_is_the_adjoint_of_Project(SubspaceProjection kind, ProjectionStorage storage)
    {
        foreach (var (bigD, d) in new[] { (1, 1), (7, 3), (100, 10), (4097, 33), (12000, 300), (70000, 50) })
        {
            var p = SubspaceProjections.Create(kind, bigD, d, 17, storage);
            var x = QuantTestData.Gaussian(1, d);
            var g = QuantTestData.Gaussian(2, bigD);
            var px = new float[bigD];
            var ptg = new float[d];
            p.Project(x, px);
            p.ProjectTranspose(g, ptg);
            double left = Dot(px, g), right = Dot(x, ptg);
            double scale = Math.Sqrt(Dot(px, px) * Dot(g, g)) + 1e-12;
            Assert.True(Math.Abs(left - right) <= 1e-5 * scale, $"{kind} D={bigD} d={d}: <Px, g> = {left}, <x, P^T g> = {right}");
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Project_and_its_transpose_accumulate(SubspaceProjection kind, ProjectionStorage storage)
    {
        var p = SubspaceProjections.Create(kind, 500, 20, 3, storage);
        var x = QuantTestData.Gaussian(4, 20);
        var g = QuantTestData.Gaussian(5, 500);
        var fresh = new float[500];
        p.Project(x, fresh);
        var offset = QuantTestData.Gaussian(6, 500);
        var accumulated = (float[])offset.Clone();
        p.Project(x, accumulated);
        for (int i = 0; i < 500; i++) Assert.Equal(offset[i] + fresh[i], accumulated[i], 1e-5f);

        var freshT = new float[20];
        p.ProjectTranspose(g, freshT);
        var accumulatedT = Enumerable.Repeat(1f, 20).ToArray();
        p.ProjectTranspose(g, accumulatedT);
        for (int j = 0; j < 20; j++) Assert.Equal(1f + freshT[j], accumulatedT[j], 1e-4f);
    }

    [Theory]
    [InlineData(SubspaceProjection.Dense)]
    [InlineData(SubspaceProjection.Sparse)]
    public void Streamed_gives_the_same_bits_as_cached(SubspaceProjection kind)
    {
        const int bigD = 70_000, d = 40;
        var cached = SubspaceProjections.Create(kind, bigD, d, 8, ProjectionStorage.Cached);
        var streamed = SubspaceProjections.Create(kind, bigD, d, 8, ProjectionStorage.Streamed);
        var x = QuantTestData.Gaussian(7, d);
        var g = QuantTestData.Gaussian(8, bigD);
        var a = new float[bigD];
        var b = new float[bigD];
        cached.Project(x, a);
        streamed.Project(x, b);
        Assert.Equal(a, b);
        var at = new float[d];
        var bt = new float[d];
        cached.ProjectTranspose(g, at);
        streamed.ProjectTranspose(g, bt);
        Assert.Equal(at, bt);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Same_seed_same_bits_at_1_and_2_threads_and_another_seed_differs(SubspaceProjection kind, ProjectionStorage storage)
    {
        // Long enough that Fastfood's blocks (L = 2^16) and the chunked projections split over the pool.
        int bigD = kind == SubspaceProjection.Fastfood ? 200_000 : 70_000, d = kind == SubspaceProjection.Fastfood ? 40_000 : 64;
        var x = QuantTestData.Gaussian(9, d);
        var g = QuantTestData.Gaussian(10, bigD);
        (float[] Px, float[] Ptg) Run(int threads, ulong seed)
        {
            int saved = WorkerPool.Shared.MaxDegreeOfParallelism;
            try
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var p = SubspaceProjections.Create(kind, bigD, d, seed, storage);
                var px = new float[bigD];
                var ptg = new float[d];
                p.Project(x, px);
                p.ProjectTranspose(g, ptg);
                return (px, ptg);
            }
            finally
            {
                WorkerPool.Shared.MaxDegreeOfParallelism = saved;
            }
        }
        var one = Run(1, 21);
        var two = Run(2, 21);
        Assert.Equal(one.Px, two.Px);
        Assert.Equal(one.Ptg, two.Ptg);
        var other = Run(2, 22);
        Assert.NotEqual(one.Px, other.Px);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Concurrent_callers_get_the_same_bits_as_one(SubspaceProjection kind, ProjectionStorage storage)
    {
        const int bigD = 70_000, d = 48;
        var p = SubspaceProjections.Create(kind, bigD, d, 12, storage);
        var x = QuantTestData.Gaussian(13, d);
        var g = QuantTestData.Gaussian(14, bigD);
        var expected = new float[bigD];
        var expectedT = new float[d];
        p.Project(x, expected);
        p.ProjectTranspose(g, expectedT);
        var results = new (float[] Px, float[] Ptg)[4];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            for (int round = 0; round < 3; round++)
            {
                var px = new float[bigD];
                var ptg = new float[d];
                p.Project(x, px);
                p.ProjectTranspose(g, ptg);
                results[i] = (px, ptg);
            }
        });
        foreach (var (px, ptg) in results)
        {
            Assert.Equal(expected, px);
            Assert.Equal(expectedT, ptg);
        }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Columns_have_unit_length(SubspaceProjection kind, ProjectionStorage storage)
    {
        const int bigD = 20_000, d = 24;
        var p = SubspaceProjections.Create(kind, bigD, d, 5, storage);
        for (int j = 0; j < d; j++)
        {
            var e = new float[d];
            e[j] = 1;
            var column = new float[bigD];
            p.Project(e, column);
            double norm = Math.Sqrt(Dot(column, column));
            // Dense and Sparse are normalized exactly; Fastfood in expectation (chi(D) / sqrt(D): 1 +- ~1%).
            double tolerance = kind == SubspaceProjection.Fastfood ? 0.05 : 1e-5;
            Assert.True(Math.Abs(norm - 1) <= tolerance, $"{kind} column {j}: norm {norm}");
        }
    }

    [Fact]
    public void Sparse_density_is_one_over_sqrt_D_and_entries_share_one_magnitude_per_column()
    {
        const int bigD = 40_000, d = 50;
        var p = new SparseProjection(bigD, d, 13);
        Assert.Equal(1 / Math.Sqrt(bigD), p.Density, 12);
        double expected = (double)d * bigD / Math.Sqrt(bigD); // 10,000
        Assert.InRange(p.NonZeroCount, expected * 0.95, expected * 1.05);
        var e = new float[d];
        e[3] = 1;
        var column = new float[bigD];
        p.Project(e, column);
        var nonZeros = column.Where(v => v != 0).ToArray();
        Assert.All(nonZeros, v => Assert.Equal(1 / Math.Sqrt(nonZeros.Length), Math.Abs(v), 6));
        Assert.Contains(nonZeros, v => v > 0);
        Assert.Contains(nonZeros, v => v < 0);
    }

    [Fact]
    public void Sparse_never_leaves_a_column_empty()
    {
        // D = 4: density 1/2, so about 1 column in 16 draws no entry and gets its one fallback entry.
        var p = new SparseProjection(4, 4, 1);
        var streamed = new SparseProjection(4, 4, 1, ProjectionStorage.Streamed);
        for (ulong seed = 0; seed < 20; seed++)
        {
            var q = new SparseProjection(4, 4, seed);
            for (int j = 0; j < 4; j++)
            {
                var e = new float[4];
                e[j] = 1;
                var column = new float[4];
                q.Project(e, column);
                Assert.Equal(1.0, Math.Sqrt(Dot(column, column)), 5);
            }
        }
        var x = new float[] { 1, -2, 3, 0.5f };
        var a = new float[4];
        var b = new float[4];
        p.Project(x, a);
        streamed.Project(x, b);
        Assert.Equal(a, b);
    }

    [Theory]
    [InlineData(SubspaceProjection.Fastfood, ProjectionStorage.Cached)]
    [InlineData(SubspaceProjection.Sparse, ProjectionStorage.Streamed)]
    [InlineData(SubspaceProjection.Dense, ProjectionStorage.Streamed)]
    public void Memory_stays_O_of_D_plus_d_where_promised(SubspaceProjection kind, ProjectionStorage storage)
    {
        // D x d floats would be 8 GB here (Sparse's cached non-zeros 9 MB): far above the bound of 16 bytes per D + d.
        int bigD = 200_000, d = kind == SubspaceProjection.Dense ? 100 : 10_000;
        var x = QuantTestData.Gaussian(15, d);
        var g = QuantTestData.Gaussian(16, bigD);
        var px = new float[bigD];
        var ptg = new float[d];
        // What the projection keeps (transient buffers of a call are pooled or collected); a first projection warms
        // the array pool so its buffers are not counted.
        var warm = SubspaceProjections.Create(kind, bigD, d, 2, storage);
        warm.Project(x, px);
        warm.ProjectTranspose(g, ptg);
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var p = SubspaceProjections.Create(kind, bigD, d, 1, storage);
        p.Project(x, px);
        p.ProjectTranspose(g, ptg);
        long retained = GC.GetTotalMemory(forceFullCollection: true) - before;
        Assert.True(retained < 16L * (bigD + d), $"{kind} ({storage}) keeps {retained} bytes for D = {bigD}, d = {d}");
        GC.KeepAlive(p);
    }

    [Fact]
    public void Fastfood_stacks_blocks_of_the_next_power_of_two_above_d()
    {
        var p = new FastfoodProjection(10_000, 300, 1);
        Assert.Equal(512, p.BlockLength);
        Assert.Equal(20, p.BlockCount);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Wrong_lengths_and_dimensions_are_named(SubspaceProjection kind, ProjectionStorage storage)
    {
        var p = SubspaceProjections.Create(kind, 100, 10, 1, storage);
        var e1 = Assert.Throws<ArgumentException>(() => p.Project(new float[9], new float[100]));
        Assert.Contains("coordinates has 9 values, expected d = 10", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => p.ProjectTranspose(new float[99], new float[10]));
        Assert.Contains("gradient has 99 values, expected D = 100", e2.Message);
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => SubspaceProjections.Create(kind, 5, 6, 1, storage));
        Assert.Contains("D = 5 is below d = 6", e3.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SubspaceProjections.Create(kind, 5, 0, 1, storage));
    }
}
