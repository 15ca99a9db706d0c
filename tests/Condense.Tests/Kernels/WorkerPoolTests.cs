using Condense.Kernels;

namespace Condense.Tests.Kernels;

public class WorkerPoolTests
{
    private unsafe struct CountBody : IRangeBody
    {
        public int* Hits;
        public int* Calls;

        public readonly void Invoke(int start, int end)
        {
            Interlocked.Increment(ref *Calls);
            for (int i = start; i < end; i++) Interlocked.Increment(ref Hits[i]);
        }
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(2, 2)]
    [InlineData(3, 2)]
    [InlineData(7, 4)]
    [InlineData(1000, 2)]
    [InlineData(100_003, 3)]
    public unsafe void Every_index_runs_exactly_once(int count, int degree)
    {
        using var pool = new WorkerPool(degree);
        var hits = new int[count];
        int calls = 0;
        for (int round = 0; round < 20; round++)
        {
            Array.Clear(hits);
            calls = 0;
            fixed (int* h = hits)
            {
                var body = new CountBody { Hits = h, Calls = &calls };
                pool.For(count, ref body);
            }
            Assert.All(hits, h => Assert.Equal(1, h));
            Assert.InRange(calls, 1, count);
        }
    }

    [Fact]
    public void Zero_count_calls_nothing_and_negative_count_is_rejected()
    {
        bool called = false;
        WorkerPool.Shared.For(0, (_, _) => called = true);
        Assert.False(called);
        Assert.Throws<ArgumentOutOfRangeException>(() => WorkerPool.Shared.For(-1, (_, _) => { }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(0));
    }

    [Fact]
    public void An_exception_in_a_body_reaches_the_caller_after_all_chunks_ended_and_the_pool_still_works()
    {
        using var pool = new WorkerPool(2);
        int ran = 0;
        var ex = Assert.Throws<InvalidOperationException>(() => pool.For(64, (start, end) =>
        {
            Interlocked.Add(ref ran, end - start);
            if (start <= 40 && 40 < end) throw new InvalidOperationException("chunk with 40");
        }));
        Assert.Equal("chunk with 40", ex.Message);
        Assert.Equal(64, Volatile.Read(ref ran)); // the other chunks still ran to completion before the throw
        int after = 0;
        pool.For(64, (start, end) => Interlocked.Add(ref after, end - start));
        Assert.Equal(64, after);
    }

    [Fact]
    public void A_nested_call_runs_inline_and_covers_its_range()
    {
        using var pool = new WorkerPool(2);
        var inner = new int[16 * 10];
        pool.For(16, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                int outerThread = Environment.CurrentManagedThreadId;
                int row = i;
                pool.For(10, (s, e) =>
                {
                    Assert.Equal(outerThread, Environment.CurrentManagedThreadId); // inline: same thread
                    for (int j = s; j < e; j++) Interlocked.Increment(ref inner[row * 10 + j]);
                });
            }
        });
        Assert.All(inner, h => Assert.Equal(1, h));
    }

    [Fact]
    public void Uses_more_than_one_thread_when_allowed_and_one_when_degree_is_one()
    {
        using var pool = new WorkerPool(2);
        var threads = new HashSet<int>();
        // Chunks that wait for each other can only finish when two threads run them.
        using var barrier = new Barrier(2);
        pool.For(2, (start, end) =>
        {
            lock (threads) threads.Add(Environment.CurrentManagedThreadId);
            Assert.True(barrier.SignalAndWait(TimeSpan.FromSeconds(30)));
        });
        Assert.Equal(2, threads.Count);

        pool.MaxDegreeOfParallelism = 1;
        threads.Clear();
        pool.For(100, (start, end) => { lock (threads) threads.Add(Environment.CurrentManagedThreadId); });
        Assert.Equal([Environment.CurrentManagedThreadId], threads);
    }

    [Fact]
    public void A_new_pools_first_job_reaches_its_worker_even_when_the_worker_starts_late()
    {
        // Regression: a worker used to take the generation current when its thread first ran as "already seen", so a
        // job published before that moment was skipped by it, and chunks waiting for each other never finished.
        using var knobs = KernelKnobs.Save();
        WorkerPool.WorkerStarting = () => Thread.Sleep(200);
        using var pool = new WorkerPool(2);
        using var barrier = new Barrier(2);
        bool bothArrived = true;
        pool.For(2, (start, end) =>
        {
            if (!barrier.SignalAndWait(TimeSpan.FromSeconds(5))) bothArrived = false;
        });
        Assert.True(bothArrived, "the late worker never took the second chunk");
    }

    [Fact]
    public void A_stalled_worker_holds_back_one_small_chunk_while_the_caller_runs_the_rest()
    {
        // A worker descheduled mid-chunk (here: sleeping in its first chunk) keeps only what it claimed; the caller
        // must run every other chunk, and the stalled share must be at most 1/16 of the call at 2 threads (4 chunks per
        // thread held back 1/8).
        const int count = 64;
        using var pool = new WorkerPool(2);
        pool.For(2, (_, _) => { }); // start the worker
        int caller = Environment.CurrentManagedThreadId;
        var ranBy = new int[count];
        bool stalled = false;
        pool.For(count, (start, end) =>
        {
            int thread = Environment.CurrentManagedThreadId;
            for (int i = start; i < end; i++) ranBy[i] = thread;
            if (thread != caller && !Volatile.Read(ref stalled))
            {
                Volatile.Write(ref stalled, true);
                Thread.Sleep(300);
            }
            else if (thread == caller && !Volatile.Read(ref stalled))
            {
                // Hold the caller's first chunk until the worker has claimed one (a loaded machine may start it late),
                // so the worker always takes part.
                var wait = System.Diagnostics.Stopwatch.StartNew();
                while (!Volatile.Read(ref stalled) && wait.Elapsed < TimeSpan.FromSeconds(20)) Thread.Sleep(1);
            }
        });
        int byWorker = ranBy.Count(t => t != caller);
        Assert.True(Volatile.Read(ref stalled), "the worker never ran a chunk, so nothing was tested");
        Assert.InRange(byWorker, 1, count / 16);
        Assert.Equal(count - byWorker, ranBy.Count(t => t == caller));
    }

    [Theory]
    [InlineData(64, 2, false)]
    [InlineData(1024, 2, false)]
    [InlineData(2752, 2, false)]
    [InlineData(1000, 3, false)]
    [InlineData(40, 2, false)]
    [InlineData(17, 2, false)]
    [InlineData(64, 2, true)]
    [InlineData(1024, 2, true)]
    [InlineData(2752, 2, true)]
    [InlineData(4096, 2, true)]
    [InlineData(1000, 3, true)]
    [InlineData(40, 2, true)]
    [InlineData(17, 2, true)]
    public void Chunks_tile_the_range_and_the_last_ones_are_smaller_so_threads_finish_together(int count, int degree, bool twoEnded)
    {
        // The split is recorded from the calls themselves: every range a body saw, at this count and degree.
        using var knobs = KernelKnobs.Save();
        WorkerPool.TwoEnded = twoEnded;
        using var pool = new WorkerPool(degree);
        var ranges = new List<(int Start, int End)>();
        pool.For(count, (start, end) => { lock (ranges) ranges.Add((start, end)); });
        ranges.Sort();
        Assert.Equal(0, ranges[0].Start);
        Assert.Equal(count, ranges[^1].End);
        for (int k = 1; k < ranges.Count; k++) Assert.Equal(ranges[k - 1].End, ranges[k].Start);
        Assert.All(ranges, r => Assert.True(r.End > r.Start, $"empty chunk [{r.Start}, {r.End})"));
        int big = degree * WorkerPool.ChunksPerThread;
        // No chunk is larger than 1 / (degree x ChunksPerThread) of the call (rounded up): the stalled-worker bound.
        Assert.All(ranges, r => Assert.InRange(r.End - r.Start, 1, (count + big - 1) / big));
        if (count >= 2 * big)
        {
            // The chunks claimed last are at most half a regular chunk (a quarter from 4 x big indices on): the
            // thread that takes one finishes soon after the other instead of up to a whole chunk later. One-ended,
            // they end the range; two-ended, they sit where the caller's share (1 / degree of the range, claimed from
            // the start) meets the workers' (claimed from the end).
            int pieces = Math.Min(WorkerPool.TailPieces, count / big);
            int pieceBound = ((count + big - 1) / big + pieces - 1) / pieces;
            var last = twoEnded ? ranges.First(r => r.Start <= count / degree && count / degree < r.End) : ranges[^1];
            Assert.InRange(last.End - last.Start, 1, pieceBound);
            if (twoEnded) Assert.True(ranges[^1].End - ranges[^1].Start > pieceBound, "two-ended: the range's end is a whole chunk");
            Assert.Equal(big + degree * (pieces - 1), ranges.Count);
        }
        else
        {
            Assert.Equal(Math.Min(count, big), ranges.Count);
        }
        // The split is a function of (count, degree) only: a second call sees the same ranges.
        var again = new List<(int Start, int End)>();
        pool.For(count, (start, end) => { lock (again) again.Add((start, end)); });
        again.Sort();
        Assert.Equal(ranges, again);
    }

    [Fact]
    public void Two_ended_the_caller_claims_from_the_start_and_the_worker_from_the_end()
    {
        // Each thread's first chunk: the caller's must start the range, the worker's end it (so a weight called again
        // and again is read by the same core in the same rows). Each thread holds its first chunk until the other has
        // claimed one, so both take part however late either is scheduled (on a loaded machine the worker could
        // otherwise run every chunk before the caller claims its first).
        using var knobs = KernelKnobs.Save();
        WorkerPool.TwoEnded = true;
        const int count = 4096;
        using var pool = new WorkerPool(2);
        pool.For(2, (_, _) => { }); // start the worker
        for (int round = 0; round < 5; round++)
        {
            int caller = Environment.CurrentManagedThreadId;
            (int Start, int End) callerFirst = (-1, -1), workerFirst = (-1, -1);
            bool workerRan = false, callerRan = false;
            pool.For(count, (start, end) =>
            {
                if (Environment.CurrentManagedThreadId != caller)
                {
                    bool first;
                    lock (pool) if (first = workerFirst.Start < 0) workerFirst = (start, end);
                    Volatile.Write(ref workerRan, true);
                    var held = System.Diagnostics.Stopwatch.StartNew();
                    while (first && !Volatile.Read(ref callerRan) && held.Elapsed < TimeSpan.FromSeconds(20)) Thread.Sleep(1);
                    return;
                }
                if (callerFirst.Start >= 0) return;
                callerFirst = (start, end);
                Volatile.Write(ref callerRan, true);
                var wait = System.Diagnostics.Stopwatch.StartNew();
                while (!Volatile.Read(ref workerRan) && wait.Elapsed < TimeSpan.FromSeconds(20)) Thread.Sleep(1);
            });
            Assert.True(workerRan, "the worker never ran a chunk, so nothing was tested");
            Assert.True(callerRan, "the caller never ran a chunk, so nothing was tested");
            Assert.Equal(0, callerFirst.Start);
            Assert.Equal(count, workerFirst.End);
        }
    }

    private unsafe struct RangeLogBody : IRangeBody
    {
        public int* Hits;
        public System.Collections.Concurrent.ConcurrentBag<(int Start, int End, int Thread)> Ranges;

        public readonly void Invoke(int start, int end)
        {
            Ranges.Add((start, end, Environment.CurrentManagedThreadId));
            for (int i = start; i < end; i++) Interlocked.Increment(ref Hits[i]);
        }
    }

    [Theory]
    [InlineData(256, 2, 64, false)]
    [InlineData(256, 2, 64, true)]
    [InlineData(255, 2, 128, true)] // below two chunks: inline
    [InlineData(257, 2, 128, true)]
    [InlineData(4096, 2, 32, true)] // S1 8-bit at 128 KiB: the default split
    [InlineData(1000, 3, 7, false)]
    [InlineData(11008, 2, 512, true)]
    [InlineData(50, 2, 100, false)]
    public unsafe void A_minimum_chunk_gives_no_smaller_chunk_and_runs_every_index_once(int count, int degree, int minChunk, bool twoEnded)
    {
        using var knobs = KernelKnobs.Save();
        WorkerPool.TwoEnded = twoEnded;
        using var pool = new WorkerPool(degree);
        var hits = new int[count];
        for (int round = 0; round < 20; round++)
        {
            Array.Clear(hits);
            var ranges = new System.Collections.Concurrent.ConcurrentBag<(int Start, int End, int Thread)>();
            fixed (int* h = hits)
            {
                var body = new RangeLogBody { Hits = h, Ranges = ranges };
                pool.For(count, ref body, int.MaxValue, minChunk);
            }
            Assert.All(hits, h => Assert.Equal(1, h));
            if (count < 2 * minChunk)
            {
                // Fewer than two chunks' worth: one range on the calling thread.
                Assert.Equal((0, count, Environment.CurrentManagedThreadId), Assert.Single(ranges));
                continue;
            }
            Assert.All(ranges, r => Assert.True(r.End - r.Start >= minChunk, $"chunk [{r.Start}, {r.End}) of {count} is below {minChunk}"));
            Assert.InRange(ranges.Count, 2, count / minChunk);
            if (minChunk * 16 * degree <= count)
            {
                // Room for the default split: the same chunks as without a minimum.
                var plain = new System.Collections.Concurrent.ConcurrentBag<(int Start, int End, int Thread)>();
                fixed (int* h = hits)
                {
                    var body = new RangeLogBody { Hits = h, Ranges = plain };
                    pool.For(count, ref body, int.MaxValue);
                }
                Assert.Equal(plain.Select(r => (r.Start, r.End)).Order(), ranges.Select(r => (r.Start, r.End)).Order());
            }
        }
    }

    [Fact]
    public async Task Concurrent_callers_from_several_threads_all_complete_correctly()
    {
        using var pool = new WorkerPool(2);
        var totals = new long[4];
        var tasks = Enumerable.Range(0, 4).Select(t => Task.Run(() =>
        {
            for (int round = 0; round < 200; round++)
                pool.For(1000, (s, e) => { long sum = 0; for (int i = s; i < e; i++) sum += i; Interlocked.Add(ref totals[t], sum); });
        })).ToArray();
        await Task.WhenAll(tasks);
        Assert.All(totals, total => Assert.Equal(200L * 999 * 1000 / 2, total));
    }

    [Fact]
    public void Gemm_results_are_identical_at_every_degree()
    {
        var rng = new Rng(7);
        int m = 37, k = 129, n = 70;
        var a = new float[m * k];
        var b = new float[k * n];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextGaussian();
        for (int i = 0; i < b.Length; i++) b[i] = rng.NextGaussian();
        float[]? first = null;
        int saved = Gemm.MaxDegreeOfParallelism;
        try
        {
            foreach (int degree in new[] { 1, 2, 3, 8 })
            {
                Gemm.MaxDegreeOfParallelism = degree;
                var c = new float[m * n];
                Gemm.MatMul(a, b, c, m, k, n);
                first ??= c;
                Assert.Equal(first, c);
            }
        }
        finally
        {
            Gemm.MaxDegreeOfParallelism = saved;
        }
    }
}
