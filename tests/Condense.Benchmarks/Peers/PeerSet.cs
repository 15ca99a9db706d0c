using System.Diagnostics;
using Condense.Benchmarks.Cases;
using Condense.Benchmarks.Harness;
using Condense.Nn;
using Condense.Quantization;
using Microsoft.ML.OnnxRuntime;

namespace Condense.Benchmarks.Peers;

/// <summary>One timed row of the peers table: numbers only, so the weights can be freed once a pairing has run.</summary>
internal sealed class PeerRow
{
    public required PeerSpec Spec { get; init; }
    public required string Peer { get; init; }
    public required string Shape { get; init; }
    public required int Batch { get; init; }
    public required bool Cold { get; init; }
    public string Mode => Cold ? "cold" : "hot";

    public List<double> CondenseTimes { get; } = [];
    public List<double> OrtTimes { get; } = [];
    public List<double> CondenseRoundMedians { get; } = [];
    public List<double> OrtRoundMedians { get; } = [];

    /// <summary>Max relative error against the float64 reference (max over copies / sessions at batch 1).</summary>
    public double CondenseError { get; set; }
    public double OrtError { get; set; }

    /// <summary>ORT time / Condense time: median over rounds of the same-round ratio (&gt; 1: Condense is faster).</summary>
    public double Ratio => Timing.Median(OrtRoundMedians.Select((t, r) => t / CondenseRoundMedians[r]));

    /// <summary>max / min of the per-round ratios: how much the rounds disagree.</summary>
    public double RatioSpread => Timing.Spread(OrtRoundMedians.Select((t, r) => t / CondenseRoundMedians[r]).ToList());
}

/// <summary>
/// One pairing on one shape: Condense's cold copies (the harness's <see cref="WeightSet"/>) and as many ONNX Runtime
/// sessions, each holding its own copy of the same codes, so both sides rotate over the same working set when cold.
/// Every session shares the environment's one intra-op pool (see <see cref="PeersMode"/>).
/// </summary>
internal sealed class PeerSet : IDisposable
{
    private const int MaxSessions = 4096;

    private readonly PeerSpec _spec;
    private readonly Shape _shape;
    private readonly WeightSet _condense;
    private readonly InferenceSession[] _sessions;
    private readonly float[] _decoded;
    private readonly Dictionary<int, Buffers> _buffers = [];
    private readonly RunOptions _runOptions = new();
    private int _nextCondense, _nextOrt;

    /// <summary>Per-batch input and outputs, shared by all copies; one IOBinding per session, bound once.</summary>
    private sealed class Buffers : IDisposable
    {
        public required float[] X, CondenseY, OrtY;
        public required OrtValue XValue, YValue;
        public required OrtIoBinding[] Bindings;

        public void Dispose()
        {
            foreach (var b in Bindings) b.Dispose();
            XValue.Dispose();
            YValue.Dispose();
        }
    }

    public PeerSet(PeerSpec spec, Shape shape, float[] dense, long coldBytes, SessionOptions options, IReadOnlyList<int> batches, Action<string> progress,
        Corruption corruption = Corruption.None)
    {
        _spec = spec;
        _shape = shape;
        progress($"{spec.Name} {shape.Id}: Condense copies");
        _condense = new WeightSet(spec.Format, shape, dense, coldBytes);
        var first = _condense.Copies[0];
        Peer = spec.PeerText(first);
        var model = spec.BuildModel(first, dense, out long ortBytes, corruption);
        OrtWeightBytes = ortBytes;
        // The harness's rotation rule (WeightSet): enough copies to cover the cold working set, at least two.
        int count = (int)Math.Clamp((coldBytes + ortBytes - 1) / Math.Max(1, ortBytes), 2, MaxSessions);
        _sessions = new InferenceSession[count];
        for (int i = 0; i < count; i++)
        {
            progress($"{spec.Name} {shape.Id}: ORT session {i + 1}/{count}");
            _sessions[i] = new InferenceSession(model, options);
        }
        _decoded = PeerCheck.Decode(first, dense);

        foreach (int batch in batches)
        {
            var x = RandomData.Activations(batch, shape.In);
            var yo = new float[(long)batch * shape.Out];
            var xValue = OrtValue.CreateTensorValueFromMemory(x, [batch, shape.In]);
            var yValue = OrtValue.CreateTensorValueFromMemory(yo, [batch, shape.Out]);
            var bindings = _sessions.Select(s =>
            {
                var b = s.CreateIoBinding();
                b.BindInput("A", xValue);
                b.BindOutput("Y", yValue);
                return b;
            }).ToArray();
            _buffers[batch] = new Buffers
            {
                X = x, CondenseY = new float[(long)batch * shape.Out], OrtY = yo, XValue = xValue, YValue = yValue, Bindings = bindings,
            };
        }
    }

    /// <summary>What ORT runs, e.g. <c>MatMulNBits b4 blk64 zp acc4</c>.</summary>
    public string Peer { get; }

    /// <summary>Bytes of ORT's initializers (one copy).</summary>
    public long OrtWeightBytes { get; }

    public int SessionCount => _sessions.Length;
    public int CondenseCopies => _condense.Copies.Length;

    /// <summary>
    /// Runs both sides on every batch and checks them against the float64 reference: every output column of the
    /// sampled rows (<see cref="PeerCheck.SampledRows"/>), every copy and session at batch 1, and Condense against ORT
    /// on every output. Returns the problems found (empty: the pairing may be timed).
    /// </summary>
    public List<string> Check(IReadOnlyList<PeerRow> rows)
    {
        var problems = new List<string>();
        double tol = _spec.Tolerance;
        foreach (var (batch, buf) in _buffers)
        {
            var refs = PeerCheck.SampledRows(batch)
                .Select(r => (r, PeerCheck.Reference(_decoded, _shape.Out, _shape.In, buf.X, r))).ToList();
            double errC = 0, errO = 0;
            int condenseCopies = batch == 1 ? _condense.Copies.Length : 1;
            for (int c = 0; c < condenseCopies; c++)
            {
                Array.Fill(buf.CondenseY, float.NaN);
                CallCondense(_condense.Copies[c], buf);
                errC = Math.Max(errC, PeerCheck.RelativeError(buf.CondenseY, _shape.Out, refs));
            }
            int sessions = batch == 1 ? _sessions.Length : 1;
            for (int s = 0; s < sessions; s++)
            {
                Array.Fill(buf.OrtY, float.NaN);
                _sessions[s].RunWithBinding(_runOptions, buf.Bindings[s]);
                errO = Math.Max(errO, PeerCheck.RelativeError(buf.OrtY, _shape.Out, refs));
            }
            // The cross-check compares copy 0 with session 0, the pair every hot row times.
            CallCondense(_condense.Copies[0], buf);
            _sessions[0].RunWithBinding(_runOptions, buf.Bindings[0]);
            double cross = PeerCheck.RelativeDifference(buf.CondenseY, buf.OrtY);

            string where = $"{_spec.Name} {_shape.Label} batch {batch}";
            if (!(errC <= tol)) problems.Add($"{where}: Condense max relative error {errC:G3} > {tol:G3} against the float64 reference");
            if (!(errO <= tol)) problems.Add($"{where}: ORT ({Peer}) max relative error {errO:G3} > {tol:G3} against the float64 reference");
            if (!(cross <= 2 * tol)) problems.Add($"{where}: Condense and ORT differ by {cross:G3} (relative, over all {batch} x {_shape.Out} outputs) > {2 * tol:G3}");
            foreach (var row in rows.Where(r => r.Batch == batch))
            {
                row.CondenseError = errC;
                row.OrtError = errO;
            }
        }
        return problems;
    }

    /// <summary>JIT warm-up for Condense (the harness's small problem, two passes and pauses) and a few ORT runs per batch.</summary>
    public void WarmUp()
    {
        for (int pass = 0; pass < 2; pass++)
        {
            foreach (int batch in _buffers.Keys)
            {
                var x = RandomData.Activations(batch, Shape.WarmUp.In);
                var y = new float[batch * Shape.WarmUp.Out];
                for (int i = 0; i < 35; i++) CallCondense(_condense.Small, x, y, batch);
                // And on the row's own weight: paths chosen by size (the managed batch-1 loop and the streaming
                // kernel above 4 MiB, the panels at batch 128) are not the small problem's, and without this the
                // first pairing of a run was timed partly in tier-0 code (int4 g128 S1 alone: hot 136-169 us against
                // 74-78 us with DOTNET_TieredCompilation=0). Batch 1 makes its 35 calls; a batched call already runs
                // its per-chunk methods dozens of times.
                var real = _buffers[batch];
                for (int i = 0, n = batch == 1 ? 35 : 3; i < n; i++) CallCondense(_condense.Copies[0], real);
            }
            Thread.Sleep(250);
        }
        foreach (var (_, buf) in _buffers)
            for (int i = 0; i < 3; i++) _sessions[0].RunWithBinding(_runOptions, buf.Bindings[0]);
        // One batched call per copy: what a weight builds on its first batched product (the 8-bit GEMM's repacked
        // panels) is built before timing, as ORT's sessions prepack their weights when they are created.
        foreach (var (batch, buf) in _buffers)
            if (batch > 1)
                foreach (var copy in _condense.Copies) CallCondense(copy, buf);
    }

    /// <summary>
    /// One round: each row's Condense calls and ORT calls, the order alternating by round so neither side always goes
    /// first. A hot row's side first runs untimed calls for <paramref name="warmSeconds"/>: a hot row follows a cold one
    /// (hundreds of MiB streamed through the caches), and without them both sides' per-call times fell for the whole
    /// timed window (session 16, per-call dumps of S1 int4 g32 hot: ORT 150 -> 88 us, Condense 140 -> 70 us over 60
    /// calls; the round medians then differed by 2x, the spread column's ~2). After 60 ms both are flat (ORT 82 us,
    /// Condense 60 us) and the spread is 1.02-1.06. The same warm-up on both sides.
    /// </summary>
    public void TimeRound(IReadOnlyList<PeerRow> rows, int round, double budgetSeconds, double warmSeconds)
    {
        foreach (var row in rows)
        {
            var buf = _buffers[row.Batch];
            Action condense = row.Cold
                ? () => CallCondense(_condense.Copies[_nextCondense++ % _condense.Copies.Length], buf)
                : () => CallCondense(_condense.Copies[0], buf);
            Action ort = row.Cold
                ? () => { int s = _nextOrt++ % _sessions.Length; _sessions[s].RunWithBinding(_runOptions, buf.Bindings[s]); }
                : () => _sessions[0].RunWithBinding(_runOptions, buf.Bindings[0]);
            for (int side = 0; side < 2; side++)
            {
                bool ortTurn = (side + round) % 2 == 1;
                // Both pools spin after a call: wait until the other side's workers have parked before timing this side.
                WaitForIdle();
                var call = ortTurn ? ort : condense;
                if (!row.Cold && warmSeconds > 0)
                {
                    long until = Stopwatch.GetTimestamp() + (long)(warmSeconds * Stopwatch.Frequency);
                    do call(); while (Stopwatch.GetTimestamp() < until);
                }
                var times = Timing.Sample(call, null, 3, 60, budgetSeconds);
                (ortTurn ? row.OrtTimes : row.CondenseTimes).AddRange(times);
                (ortTurn ? row.OrtRoundMedians : row.CondenseRoundMedians).Add(Timing.Median(times));
            }
        }
    }

    /// <summary>
    /// Sleeps in 5 ms slices until one slice costs the process under 0.5 ms of CPU (every pool thread parked), at least
    /// 20 ms and at most 250 ms. Session 16: ORT's intra-op worker spins ~30 ms after its last call (process CPU per
    /// 10 ms slice after ORT's side: 8-14 ms for three slices, then 0; after Condense's side, whose workers spin 1 ms:
    /// 0-2 ms), so the fixed 20 ms pause before it started Condense's timed calls with ORT's worker still spinning on
    /// one of the two cores: calls shorter than that window ran on one core (fp32 384x384 batch 4: 10.0 us against 5.1 us
    /// with ORT's spinning off). ORT's side did not suffer the same, as Condense's workers park within 1 ms.
    /// </summary>
    internal static void WaitForIdle()
    {
        Thread.Sleep(20);
        long deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 4;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            double cpu = Timing.ProcessSeconds();
            Thread.Sleep(5);
            if (Timing.ProcessSeconds() - cpu < 0.5e-3) return;
        }
    }

    private void CallCondense(IWeightStorage w, Buffers buf) => CallCondense(w, buf.X, buf.CondenseY, buf.CondenseY.Length / _shape.Out);

    private void CallCondense(IWeightStorage w, float[] x, float[] y, int batch)
    {
        if (_spec.Precision is { } precision && w is GroupQuantizedWeight q) q.MatMulTransposed(x, y, batch, precision);
        else w.MatMulTransposed(x, y, batch);
    }

    public void Dispose()
    {
        foreach (var b in _buffers.Values) b.Dispose();
        foreach (var s in _sessions) s.Dispose();
        _runOptions.Dispose();
    }
}
