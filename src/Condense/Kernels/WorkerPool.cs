using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace Condense.Kernels;

/// <summary>A chunk of work for <see cref="WorkerPool.For{TBody}(int, ref TBody)"/>: runs indices [start, end).</summary>
public interface IRangeBody
{
    /// <summary>Processes the indices <paramref name="start"/> (inclusive) to <paramref name="end"/> (exclusive).</summary>
    void Invoke(int start, int end);
}

/// <summary>
/// A persistent pool of worker threads for the kernels: <see cref="For{TBody}(int, ref TBody)"/> splits
/// [0, count) into contiguous chunks that the calling thread and the parked workers claim.
/// </summary>
/// <remarks>
/// <para>Each index is run exactly once, in exactly one chunk; chunk boundaries never depend on timing. Kernels
/// compute every output inside one index, in a fixed order, so their results do not depend on the split.</para>
/// <para>Workers spin briefly after a call (back-to-back kernel calls then cost a few microseconds) and then
/// block. A call made from inside a body, or while another thread is using the pool, runs inline on the
/// calling thread. The first exception thrown by a body is rethrown to the caller after all chunks ended.</para>
/// <para>A call allocates nothing: the body is a struct passed by reference and lives on the caller's stack
/// while the workers run it.</para>
/// </remarks>
public sealed unsafe class WorkerPool : IDisposable
{
    // Chunks per participating thread. A worker the OS deschedules mid-chunk (a loaded machine) holds that chunk
    // until it runs again, while the caller takes every chunk still unclaimed: the work held hostage is one chunk,
    // 1 / (degree x ChunksPerThread) of the call. 8 halves the old 4's hostage (a GEMV on 4096 x 4096 at 2 threads:
    // 4 MiB of weight instead of 8) for 16 claims per call, a few hundred nanoseconds. (At load 20-28 the 4-versus-8
    // difference was inside the noise of whole-call timings; the stalled-worker test checks the bound itself.)
    // A knob since session 15 (`--gemv-chunks n` in the benchmarks; tests restore it): a hot 2-thread GEMV call pays
    // per chunk a claim, a Run set-up and a restart of the weight stream, and a row read by the other core than last
    // time; quiet A/B runs decide whether 8 is still the right count there.
    internal static int ChunksPerThread
    {
        get => s_chunksPerThread;
        set => s_chunksPerThread = value is >= 1 and <= 64 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "1..64 chunks per thread.");
    }
    private static int s_chunksPerThread = 8;

    // The last `degree` of those chunks are cut into up to TailPieces pieces each (when the count allows whole
    // indices). With equal chunks, the thread that claims the last one finishes up to a whole chunk after the other
    // (1/16 of a 2-thread call: measured 9-10% of a 128-row GEMM call's samples in that wait); with quarter chunks at
    // the end the threads finish within a quarter chunk of each other, for 6 more claims. The pieces are smaller than
    // the chunks before them, so the hostage bound above still holds. Boundaries depend on count and degree only.
    // (With TwoEnded claims the cut chunks are the ones where the caller's and the workers' claims meet.)
    // A knob since session 15 (`--gemv-pieces n`): finer pieces where the two-ended claims meet move fewer rows between
    // the cores from call to call (the meeting point varies with timing) for a few more claims.
    internal static int TailPieces
    {
        get => s_tailPieces;
        set => s_tailPieces = value is >= 1 and <= 64 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "1..64 pieces.");
    }
    private static int s_tailPieces = 4;

    // The caller's wait for the other threads' last chunks: spin on `pause` this long before yielding its core. The
    // wait is normally a fraction of a chunk (microseconds); SpinWait's yields after ~10 spins made the caller a
    // sched_yield away from noticing the end of a call. Past this, a worker was probably descheduled, and yielding
    // may give it the core back.
    private static readonly long s_waitSpinTicks = System.Diagnostics.Stopwatch.Frequency / 5_000; // 200 us

    // Spinning time before a worker parks: covers the gap between consecutive layer calls, including the serial
    // ops between them (a transformer's GELU and LayerNorm). With 100 us, MiniLM one sentence at a time (quiet
    // machine, 2 threads) ran no faster than on one thread: the workers parked between the small projections and
    // each call paid their wake-up; 1 ms took int4 from 1.01x to 1.26x ONNX Runtime (which spins too), int8 from
    // 1.44x to 1.64x. The cost is at most 1 ms of a spinning core after the last call of a burst.
    private static readonly long s_spinTicks = System.Diagnostics.Stopwatch.Frequency / 1_000; // 1 ms

    /// <summary>
    /// Two-ended claims (default on; the environment variable CONDENSE_POOL_TWO_ENDED=0 turns it off when the process
    /// starts; a benchmark knob): the caller claims chunks from the start of the range upward, the workers from its end
    /// downward, and the pieces (<see cref="TailPieces"/>) sit where they are expected to meet (after the caller's
    /// 1 / degree share, <see cref="TwoEndedRange"/>) instead of at the end. A weight called again and again then has
    /// most of its rows read by the same core on every call, instead of rows moving between cores with the order in
    /// which chunks happened to be claimed. Chunk boundaries are still a function of (count, degree) only and no larger
    /// than before, so a stalled worker still holds one chunk and results do not change (kernels do not depend on the
    /// split).
    /// </summary>
    /// <remarks>
    /// Measured (session 13, S1 int8 g32 hot, 2 threads; see docs/kernels.md "Per-call cost at 2 threads"): with one
    /// claim counter each thread's span of a call was 145-165 us; with each thread on a fixed half 117-135 us.
    /// </remarks>
    internal static bool TwoEnded { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_POOL_TWO_ENDED") != "0";

    [ThreadStatic] private static bool t_insideBody;

    // A timeline of the calls for the benchmarks (`--pool-trace n` in gemv-ab): off (null) by default, then each mark is
    // one static read and a branch. On, every mark stores (Stopwatch timestamp, code) into the array: code = kind |
    // thread << 4 (0 caller, 1 worker) | chunk << 8 | generation << 32. Marks past the array's end are dropped.
    internal enum TraceKind { Enter = 0, Published = 1, WorkerSeen = 2, ChunkStart = 3, ChunkEnd = 4, Waited = 5 }
    private static long[]? s_trace;
    private static int s_traceNext;

    /// <summary>Benchmark hook: starts a trace of up to <paramref name="marks"/> marks (0 stops tracing).</summary>
    internal static void StartTrace(int marks)
    {
        s_trace = marks > 0 ? new long[2 * marks] : null;
        s_traceNext = 0;
    }

    /// <summary>Benchmark hook: the marks so far, (timestamp, code) pairs; see <see cref="TraceKind"/>.</summary>
    internal static long[] TraceMarks() => s_trace is { } t ? t.AsSpan(0, Math.Min(Volatile.Read(ref s_traceNext), t.Length)).ToArray() : [];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mark(TraceKind kind, bool worker, int chunk, long generation)
    {
        if (s_trace is { } t) MarkSlow(t, kind, worker, chunk, generation);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MarkSlow(long[] t, TraceKind kind, bool worker, int chunk, long generation)
    {
        long now = System.Diagnostics.Stopwatch.GetTimestamp();
        int i = Interlocked.Add(ref s_traceNext, 2) - 2;
        if (i + 1 >= t.Length) return;
        t[i] = now;
        t[i + 1] = (long)kind | (worker ? 1L << 4 : 0) | (long)(chunk & 0xFFFFFF) << 8 | generation << 32;
    }

    private static readonly Lazy<WorkerPool> s_shared = new(() => new WorkerPool(Environment.ProcessorCount));

    /// <summary>The process-wide pool the kernels use (Environment.ProcessorCount threads including the caller).</summary>
    public static WorkerPool Shared => s_shared.Value;

    private readonly object _gate = new();
    private readonly List<Thread> _threads = [];
    private int _maxDegree;
    private int _sleepers;
    private int _busy;
    private volatile bool _disposed;

    // Job: high 32 bits = generation, low 32 bits = next unclaimed chunk. Claiming CASes the whole word, so a
    // worker that woke late for an old generation can never claim a chunk of a newer job.
    private long _state;
    private delegate*<void*, int, int, void> _invoke;
    private void* _body;
    private int _count;
    private int _chunks;
    private int _big;
    private int _pieces;
    private int _degree;
    private bool _twoEnded;
    private int _done;
    private ExceptionDispatchInfo? _error;

    /// <summary>Creates a pool that uses at most <paramref name="maxDegreeOfParallelism"/> threads per call, the caller included.</summary>
    public WorkerPool(int maxDegreeOfParallelism)
    {
        MaxDegreeOfParallelism = maxDegreeOfParallelism;
    }

    /// <summary>
    /// Threads per call, the calling thread included (at least 1). Workers are started lazily up to this
    /// number minus one; lowering it leaves extra workers parked.
    /// </summary>
    public int MaxDegreeOfParallelism
    {
        get => Volatile.Read(ref _maxDegree);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1, nameof(MaxDegreeOfParallelism));
            Volatile.Write(ref _maxDegree, value);
        }
    }

    /// <summary>Runs <paramref name="body"/> over [0, <paramref name="count"/>) split into contiguous chunks.</summary>
    /// <remarks>The split is fixed for a given count and degree; chunks may run on any thread and in any order.</remarks>
    public void For<TBody>(int count, ref TBody body) where TBody : struct, IRangeBody => For(count, ref body, int.MaxValue);

    /// <summary>As <see cref="For{TBody}(int, ref TBody)"/>, with at most <paramref name="maxDegree"/> threads for this call.</summary>
    public void For<TBody>(int count, ref TBody body, int maxDegree) where TBody : struct, IRangeBody => For(count, ref body, maxDegree, 1);

    /// <summary>
    /// As <see cref="For{TBody}(int, ref TBody, int)"/>, with no chunk (piece) smaller than <paramref name="minChunk"/>
    /// indices where the count allows: fewer chunks, and fewer threads when the count has fewer than two such chunks
    /// (then the call runs inline). For callers whose indices are cheap (a hot GEMV on a small weight: each chunk pays a
    /// claim and the kernel's set-up, ~0.15 us, against ~0.2 us of rows). Boundaries depend on (count, degree, minChunk)
    /// only.
    /// </summary>
    internal void For<TBody>(int count, ref TBody body, int maxDegree, int minChunk) where TBody : struct, IRangeBody
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (count == 0) return;
        minChunk = Math.Max(1, minChunk);
        int degree = Math.Min(Math.Min(MaxDegreeOfParallelism, maxDegree), count / minChunk);
        if (degree <= 1 || t_insideBody || _disposed || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            RunInline(count, ref body);
            return;
        }

        try
        {
            if (s_trace is not null) Mark(TraceKind.Enter, false, 0, (Volatile.Read(ref _state) >> 32) + 1);
            EnsureWorkers(degree - 1);
            int perThread = ChunksPerThread;
            int big = Math.Min(count / minChunk, degree * perThread);
            int pieces = big < degree * perThread ? 1 : (int)Math.Min(TailPieces, count / ((long)big * minChunk));
            int chunks = big + degree * (pieces - 1);
            _twoEnded = TwoEnded && chunks <= MaxTwoEndedChunks;
            _invoke = &Invoke<TBody>;
            _body = Unsafe.AsPointer(ref body);
            _count = count;
            _chunks = chunks;
            _big = big;
            _pieces = pieces;
            _degree = degree;
            _done = 0;
            _error = null;
            long generation = (Volatile.Read(ref _state) >> 32) + 1;
            // Publishing the new generation (with chunk 0 unclaimed) releases the job fields written above.
            Interlocked.Exchange(ref _state, generation << 32);
            Mark(TraceKind.Published, false, 0, generation);
            if (Volatile.Read(ref _sleepers) > 0)
                lock (_gate) Monitor.PulseAll(_gate);

            Participate(generation, worker: false);
            WaitForChunks(chunks);
            Mark(TraceKind.Waited, false, 0, generation);
            // Close the job before its fields are reused: a worker holding a stale view can no longer claim a chunk.
            Interlocked.Exchange(ref _state, (generation << 32) | int.MaxValue);
            _body = null;
            _error?.Throw();
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>Runs <paramref name="body"/>(start, end) over [0, <paramref name="count"/>) split into contiguous chunks.</summary>
    /// <remarks>Convenience overload for code outside hot loops: the delegate is the only allocation.</remarks>
    public void For(int count, Action<int, int> body) => For(count, body, int.MaxValue);

    /// <summary>As <see cref="For(int, Action{int, int})"/>, with at most <paramref name="maxDegree"/> threads for this call.</summary>
    public void For(int count, Action<int, int> body, int maxDegree)
    {
        ArgumentNullException.ThrowIfNull(body);
        var wrapper = new ActionBody(body);
        For(count, ref wrapper, maxDegree);
    }

    /// <summary>Stops the workers (they finish the current call first). The shared pool is never disposed.</summary>
    public void Dispose()
    {
        if (ReferenceEquals(this, s_shared.IsValueCreated ? s_shared.Value : null)) return;
        _disposed = true;
        lock (_gate) Monitor.PulseAll(_gate);
    }

    private static void Invoke<TBody>(void* body, int start, int end) where TBody : struct, IRangeBody =>
        Unsafe.AsRef<TBody>(body).Invoke(start, end);

    private void RunInline<TBody>(int count, ref TBody body) where TBody : struct, IRangeBody
    {
        // One chunk on this thread: bodies must not depend on chunk boundaries (kernels give each output to one index).
        bool outer = !t_insideBody;
        t_insideBody = true;
        try
        {
            body.Invoke(0, count);
        }
        finally
        {
            if (outer) t_insideBody = false;
        }
    }

    private void WaitForChunks(int chunks)
    {
        if (Volatile.Read(ref _done) >= chunks) return;
        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + s_waitSpinTicks;
        while (Volatile.Read(ref _done) < chunks)
        {
            Thread.SpinWait(1);
            if (System.Diagnostics.Stopwatch.GetTimestamp() > deadline) break;
        }
        var spinner = new SpinWait();
        while (Volatile.Read(ref _done) < chunks) spinner.SpinOnce(sleep1Threshold: -1);
    }

    /// <summary>
    /// Chunk <paramref name="chunk"/>'s range: the first big - degree chunks are count / big indices each, the last
    /// degree of them are cut into <paramref name="pieces"/> pieces. A function of (count, degree) only.
    /// </summary>
    internal static (int Start, int End) ChunkRange(int count, int big, int degree, int pieces, int chunk) =>
        CutRange(count, big, degree, pieces, big - degree, chunk);

    /// <summary>Most chunks a two-ended job may have: the front and back claim counts share the state's low 31 bits.</summary>
    private const int MaxTwoEndedChunks = 0x7FFF;

    /// <summary>
    /// <see cref="TwoEnded"/> jobs: chunk <paramref name="chunk"/>'s range. As <see cref="ChunkRange"/>, big chunks of
    /// count / big indices, but the <paramref name="degree"/> big chunks cut into <paramref name="pieces"/> pieces are
    /// the ones after the first big / degree - 1, where the caller's claims from the start are expected to meet the
    /// workers' claims from the end (the caller's share of the call). A function of (count, degree) only.
    /// </summary>
    internal static (int Start, int End) TwoEndedRange(int count, int big, int degree, int pieces, int chunk) =>
        CutRange(count, big, degree, pieces, big / degree - 1, chunk);

    // Big chunks of count / big indices, except the degree big chunks from cutAt on, each cut into pieces pieces
    // (chunk indices past the pieces continue with the big chunks after them).
    private static (int Start, int End) CutRange(int count, int big, int degree, int pieces, int cutAt, int chunk)
    {
        int j = chunk - cutAt;
        if (pieces <= 1 || j < 0) return ((int)((long)count * chunk / big), (int)((long)count * (chunk + 1) / big));
        if (j >= degree * pieces)
        {
            int b = chunk - degree * (pieces - 1);
            return ((int)((long)count * b / big), (int)((long)count * (b + 1) / big));
        }
        int cut = cutAt + j / pieces, piece = j % pieces;
        int s = (int)((long)count * cut / big), e = (int)((long)count * (cut + 1) / big);
        return (s + (int)((long)(e - s) * piece / pieces), s + (int)((long)(e - s) * (piece + 1) / pieces));
    }

    private void Participate(long generation, bool worker)
    {
        var invoke = _invoke;
        void* body = _body;
        int count = _count, chunks = _chunks, big = _big, pieces = _pieces, degree = _degree;
        bool twoEnded = _twoEnded;
        // Two-ended: the low 16 bits count the claims from the start, the next 15 those from the end.
        long claim = twoEnded && worker ? 1L << 16 : 1;
        while (true)
        {
            long state = Volatile.Read(ref _state);
            if (state >> 32 != generation) return;
            int chunk;
            if (twoEnded)
            {
                int front = (int)state & 0xFFFF, back = (int)(state >> 16) & 0x7FFF;
                if (front + back >= chunks) return;
                chunk = worker ? chunks - 1 - back : front;
            }
            else
            {
                chunk = (int)state;
                if (chunk >= chunks) return;
            }
            if (Interlocked.CompareExchange(ref _state, state + claim, state) != state) continue;
            var (start, end) = twoEnded ? TwoEndedRange(count, big, degree, pieces, chunk) : ChunkRange(count, big, degree, pieces, chunk);
            t_insideBody = true;
            Mark(TraceKind.ChunkStart, worker, chunk, generation);
            try
            {
                invoke(body, start, end);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
            }
            finally
            {
                t_insideBody = false;
                Mark(TraceKind.ChunkEnd, worker, chunk, generation);
                // Reported per chunk, at once: a worker descheduled after its chunk then holds nothing back.
                Interlocked.Increment(ref _done);
            }
        }
    }

    private void EnsureWorkers(int wanted)
    {
        if (_threads.Count >= wanted) return;
        lock (_gate)
        {
            // The generation before the caller publishes its job: a worker that starts late must still take that job,
            // so it may not read "the current generation" as already seen when it first runs.
            long seen = Volatile.Read(ref _state) >> 32;
            while (_threads.Count < wanted)
            {
                var thread = new Thread(() => WorkerLoop(seen)) { IsBackground = true, Name = $"Condense worker {_threads.Count + 1}" };
                _threads.Add(thread);
                thread.Start();
            }
        }
    }

    /// <summary>Test hook: runs on each new worker thread before it looks for work (lets tests start a worker late).</summary>
    internal static Action? WorkerStarting { get; set; }

    private void WorkerLoop(long seen)
    {
        WorkerStarting?.Invoke();
        while (!_disposed)
        {
            long generation = Volatile.Read(ref _state) >> 32;
            long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + s_spinTicks;
            while (generation == seen && System.Diagnostics.Stopwatch.GetTimestamp() < deadline)
            {
                // No Thread.Yield here: measured at load 20-28, yielding every 20 us made a 4096 x 4096 int4 GEMV 2.4x
                // and a 1536 x 384 one 2.3x slower (a yielded worker gets its core back late, probably while holding a chunk).
                Thread.SpinWait(4);
                generation = Volatile.Read(ref _state) >> 32;
            }

            if (generation == seen)
            {
                lock (_gate)
                {
                    // The interlocked increment orders "I am asleep" before the re-check of the generation; the
                    // caller publishes the generation before it reads _sleepers, so no wake-up is lost.
                    Interlocked.Increment(ref _sleepers);
                    while ((generation = Volatile.Read(ref _state) >> 32) == seen && !_disposed)
                        Monitor.Wait(_gate);
                    Interlocked.Decrement(ref _sleepers);
                }
                if (_disposed) return;
            }

            seen = generation;
            Mark(TraceKind.WorkerSeen, true, 0, generation);
            // Job fields were written before the generation was published; a stale read only fails the claim CAS.
            Participate(generation, worker: true);
        }
    }

    private readonly struct ActionBody(Action<int, int> body) : IRangeBody
    {
        public void Invoke(int start, int end) => body(start, end);
    }
}
