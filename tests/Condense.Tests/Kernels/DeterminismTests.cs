using Condense.Kernels;
using Condense.LowRank;
using Condense.Nn;
using Condense.Quantization;
using Condense.Sparsity;
using Condense.Tests.Quantization;

namespace Condense.Tests.Kernels;

/// <summary>
/// docs/format.md promises the same bits at any thread count and for any number of concurrent callers: every weight
/// storage is run at 1, 2 and 3 threads and from 4 threads at once, and every result must equal the single-threaded
/// one bit for bit. Shapes include row counts that are not multiples of the kernels' tiles, and batches around the
/// kernels' tile heights.
/// </summary>
public class DeterminismTests
{
    private static readonly int[] Batches = [1, 2, 3, 5, 8, 17, 64];

    // (OutFeatures, InFeatures): the 256 x 256, a prime row count, and a short layer with many columns.
    private static readonly (int Out, int In)[] Shapes = [(256, 256), (509, 768), (61, 1024)];

    /// <summary>One storage kind: how to build it for a shape and how to multiply with it.</summary>
    private sealed record Kind(string Name, Func<float[], int, int, IWeightStorage> Build, ActivationPrecision? Activations = null)
    {
        public void Multiply(IWeightStorage storage, ReadOnlySpan<float> x, Span<float> y, int batch)
        {
            switch (storage)
            {
                case GroupQuantizedWeight q when Activations is { } a: q.MatMulTransposed(x, y, batch, a); break;
                case LowRankCorrectedWeight c when Activations is { } a: c.MatMulTransposed(x, y, batch, a); break;
                default: storage.MatMulTransposed(x, y, batch); break;
            }
        }
    }

    private static readonly Kind[] Kinds =
    [
        new("fp32", (w, o, i) => new DenseWeight(w, o, i)),
        new("int4-g32-int8", (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(4, 32, true)), ActivationPrecision.Int8),
        new("int4-g32-float32", (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(4, 32, true)), ActivationPrecision.Float32),
        new("int8-g64-asym-int8", (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(8, 64, false)), ActivationPrecision.Int8),
        new("int8-g64-asym-float32", (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(8, 64, false)), ActivationPrecision.Float32),
        new("int3-g16-int8", (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(3, 16, false)), ActivationPrecision.Int8),
        new("int2-row-int8", (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(2, 0, false)), ActivationPrecision.Int8),
        new("2:4-fp32", (w, o, i) => NmSparseWeight.Prune(w, o, i, 2, 4)),
        new("2:8-fp32", (w, o, i) => NmSparseWeight.Prune(w, o, i, 2, 8)),
        new("2:4-int8", (w, o, i) => NmSparseWeight.Prune(w, o, i, 2, 4, new QuantizationScheme(8, 0, true))),
        new("1:4-int4-g64", (w, o, i) => NmSparseWeight.Prune(w, o, i, 1, 4, new QuantizationScheme(4, 64, false))),
        new("csr-90", (w, o, i) => CsrWeight.Prune(w, o, i, 0.9)),
        new("lowrank-r8", (w, o, i) => LowRankWeight.FromDense(w, o, i, 8)),
        new("lowrank-r24", (w, o, i) => LowRankWeight.FromDense(w, o, i, 24)),
        new("int4+lowrank-int8", (w, o, i) => LowRankCorrectedWeight.Fit(w, o, i, new QuantizationScheme(4, 64, true), 8), ActivationPrecision.Int8),
        new("int4+lowrank-float32", (w, o, i) => LowRankCorrectedWeight.Fit(w, o, i, new QuantizationScheme(4, 64, true), 8), ActivationPrecision.Float32),
    ];

    public static TheoryData<string> KindNames() => new(Kinds.Select(k => k.Name));

    private static Kind Find(string name) => Kinds.Single(k => k.Name == name);

    // Built once per kind and shape: the SVD and pruning are not what these tests are about.
    private static readonly Dictionary<(string, int, int), IWeightStorage> s_storages = [];

    private static IWeightStorage Storage(Kind kind, int outF, int inF)
    {
        lock (s_storages)
        {
            if (!s_storages.TryGetValue((kind.Name, outF, inF), out var storage))
                s_storages[(kind.Name, outF, inF)] = storage = kind.Build(QuantTestData.Gaussian((ulong)(outF * 31 + inF), outF * inF, 0.05f), outF, inF);
            return storage;
        }
    }

    /// <summary>Sets every thread cap the kernels read (the pool's, and the sparse and training GEMM caps) for one call.</summary>
    internal static T AtDegree<T>(int degree, Func<T> run)
    {
        int pool = WorkerPool.Shared.MaxDegreeOfParallelism, sparse = SparseParallel.MaxDegreeOfParallelism, gemm = Gemm.MaxDegreeOfParallelism;
        try
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = degree;
            SparseParallel.MaxDegreeOfParallelism = degree;
            Gemm.MaxDegreeOfParallelism = degree;
            return run();
        }
        finally
        {
            WorkerPool.Shared.MaxDegreeOfParallelism = pool;
            SparseParallel.MaxDegreeOfParallelism = sparse;
            Gemm.MaxDegreeOfParallelism = gemm;
        }
    }

    private static string FirstDifference(float[] expected, float[] actual, int outF)
    {
        int count = 0, first = -1;
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                count++;
                if (first < 0) first = i;
            }
        return count == 0 ? "" : $"{count} of {expected.Length} outputs differ, first [{first / outF}, {first % outF}]: {expected[first]:R} vs {actual[first]:R}";
    }

    [Theory]
    [MemberData(nameof(KindNames))]
    public void Results_are_bitwise_identical_at_1_2_and_3_threads(string name)
    {
        var kind = Find(name);
        var failures = new List<string>();
        foreach (var (outF, inF) in Shapes)
        {
            var storage = Storage(kind, outF, inF);
            KernelWidths.ForEach(bits =>
            {
                foreach (int batch in Batches)
                {
                    var x = QuantTestData.Gaussian((ulong)(batch * 7 + inF), batch * inF);
                    float[] Run() { var y = new float[batch * outF]; kind.Multiply(storage, x, y, batch); return y; }
                    var one = AtDegree(1, Run);
                    foreach (int degree in new[] { 2, 3 })
                    {
                        string difference = FirstDifference(one, AtDegree(degree, Run), outF);
                        if (difference.Length > 0) failures.Add($"[{outF}, {inF}] {bits}-bit batch {batch}, 1 vs {degree} threads: {difference}");
                    }
                }
            });
        }
        Assert.True(failures.Count == 0, $"{name}:\n" + string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(KindNames))]
    public void Results_are_bitwise_identical_at_1_2_and_3_threads_while_a_busy_sibling_thread_competes(string name)
    {
        // A spinning thread per core makes the OS deschedule pool workers mid-chunk, so the caller takes over the
        // chunks they would have run: which thread runs a chunk then varies from call to call, and must not matter.
        var kind = Find(name);
        const int outF = 509, inF = 768;
        var storage = Storage(kind, outF, inF);
        var failures = new List<string>();
        using var stop = new CancellationTokenSource();
        var siblings = Enumerable.Range(0, Environment.ProcessorCount).Select(_ => new Thread(() =>
        {
            long spins = 0;
            while (!stop.IsCancellationRequested) spins++;
            GC.KeepAlive(spins);
        }) { IsBackground = true }).ToArray();
        foreach (var sibling in siblings) sibling.Start();
        try
        {
            foreach (int batch in new[] { 1, 5, 17, 64 })
            {
                var x = QuantTestData.Gaussian((ulong)(batch * 13 + inF), batch * inF);
                float[] Run() { var y = new float[batch * outF]; kind.Multiply(storage, x, y, batch); return y; }
                var one = AtDegree(1, Run);
                for (int round = 0; round < 3; round++)
                    foreach (int degree in new[] { 2, 3 })
                    {
                        string difference = FirstDifference(one, AtDegree(degree, Run), outF);
                        if (difference.Length > 0) failures.Add($"batch {batch}, 1 vs {degree} threads, round {round}: {difference}");
                    }
            }
        }
        finally
        {
            stop.Cancel();
            foreach (var sibling in siblings) sibling.Join();
        }
        Assert.True(failures.Count == 0, $"{name}:\n" + string.Join("\n", failures));
    }

    [Theory]
    [MemberData(nameof(KindNames))]
    public void Results_do_not_depend_on_where_the_input_and_output_lie_in_memory(string name)
    {
        // A model's activations are fresh arrays at addresses that differ from call to call (and between callers):
        // a kernel whose summation order follows the address alignment would give other bits for the same values.
        var kind = Find(name);
        var failures = new List<string>();
        foreach (var (outF, inF) in Shapes)
        {
            var storage = Storage(kind, outF, inF);
            KernelWidths.ForEach(bits =>
            {
                foreach (int batch in new[] { 1, 3, 17 })
                {
                    var x = QuantTestData.Gaussian((ulong)(batch * 5 + inF), batch * inF);
                    var expected = new float[batch * outF];
                    kind.Multiply(storage, x, expected, batch);
                    for (int offset = 1; offset < 16; offset += 3)
                    {
                        var xs = new float[x.Length + 16];
                        var ys = new float[expected.Length + 16];
                        x.CopyTo(xs, offset);
                        kind.Multiply(storage, xs.AsSpan(offset, x.Length), ys.AsSpan(offset, expected.Length), batch);
                        string difference = FirstDifference(expected, ys.AsSpan(offset, expected.Length).ToArray(), outF);
                        if (difference.Length > 0) failures.Add($"[{outF}, {inF}] {bits}-bit batch {batch}, x and y {offset} floats further: {difference}");
                    }
                }
            });
        }
        Assert.True(failures.Count == 0, $"{name}:\n" + string.Join("\n", failures));
    }

    /// <summary>Runs <paramref name="call"/>(thread, round) on 4 threads released together, <paramref name="rounds"/> rounds each.</summary>
    private static void FromFourThreads(Action<int, int> call, int rounds)
    {
        using var start = new Barrier(4);
        var errors = new Exception?[4];
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            try
            {
                start.SignalAndWait();
                for (int round = 0; round < rounds; round++) call(t, round);
            }
            catch (Exception e)
            {
                errors[t] = e;
            }
        })).ToArray();
        foreach (var thread in threads) thread.Start();
        foreach (var thread in threads) thread.Join();
        foreach (var error in errors)
            if (error is not null) throw new AggregateException(error);
    }

    [Theory]
    [MemberData(nameof(KindNames))]
    public void Concurrent_callers_of_one_storage_get_the_single_threaded_bits(string name)
    {
        var kind = Find(name);
        const int outF = 256, inF = 256;
        var storage = Storage(kind, outF, inF);
        int[] batches = [1, 3, 17, 64];
        var inputs = batches.Select(b => QuantTestData.Gaussian((ulong)(b * 11), b * inF)).ToArray();
        var expected = inputs.Select((x, i) => { var y = new float[batches[i] * outF]; kind.Multiply(storage, x, y, batches[i]); return y; }).ToArray();

        // 400 calls: the split-dependent low-rank kernel gave other bits in 40 to 80 of them (a busy pool runs a call inline).
        const int rounds = 100;
        int mismatches = 0;
        string first = "";
        FromFourThreads((t, round) =>
        {
            int i = (t + round) % batches.Length;
            var y = new float[batches[i] * outF];
            kind.Multiply(storage, inputs[i], y, batches[i]);
            string difference = FirstDifference(expected[i], y, outF);
            if (difference.Length > 0 && Interlocked.Increment(ref mismatches) == 1) first = $"batch {batches[i]}: {difference}";
        }, rounds);
        Assert.True(mismatches == 0, $"{name}: {mismatches} of {4 * rounds} concurrent calls differ from the single-threaded result; {first}");
    }

    /// <summary>A model of Linear layers, each on a different storage, as a compressed model's Forward runs them.</summary>
    private sealed class Stack
    {
        private readonly Linear[] _layers = Build();

        private static Linear[] Build()
        {
            int[] widths = [256, 256, 512, 256, 256, 256, 192, 128];
            // Null: a layer left dense, as layers without a compression attribute are (training GEMM forward).
            Func<float[], int, int, IWeightStorage>?[] storages =
            [
                (w, o, i) => LowRankWeight.FromDense(w, o, i, 8),
                (w, o, i) => GroupQuantizedWeight.Quantize(w, o, i, new QuantizationScheme(4, 32, true)),
                (w, o, i) => NmSparseWeight.Prune(w, o, i, 2, 4),
                (w, o, i) => CsrWeight.Prune(w, o, i, 0.8),
                (w, o, i) => LowRankCorrectedWeight.Fit(w, o, i, new QuantizationScheme(4, 64, true), 8),
                (w, o, i) => new DenseWeight(w, o, i),
                null,
            ];
            var layers = new Linear[storages.Length];
            for (int l = 0; l < layers.Length; l++)
            {
                int inF = widths[l], outF = widths[l + 1];
                layers[l] = new Linear(inF, outF);
                if (storages[l] is { } build) layers[l].SetCompressedWeight(build(layers[l].Weight.Data.ToArray(), outF, inF));
            }
            return layers;
        }

        /// <summary>Runs the layers (ReLU between them) under the process-wide <see cref="KernelOptions.QuantizedActivations"/>.</summary>
        public float[] Forward(float[] x, int batch)
        {
            using (Tensor.NoGrad())
            {
                var h = new Tensor(x, batch, _layers[0].InFeatures);
                for (int l = 0; l < _layers.Length; l++)
                {
                    h = _layers[l].Forward(h);
                    if (l < _layers.Length - 1) h = Ops.Relu(h);
                }
                return h.Data.ToArray();
            }
        }
    }

    [Theory]
    [InlineData(ActivationPrecision.Int8)]
    [InlineData(ActivationPrecision.Float32)]
    public void Forward_of_one_compressed_model_from_4_threads_equals_the_single_threaded_result(ActivationPrecision activations)
    {
        using var knobs = KernelKnobs.Save();
        KernelOptions.QuantizedActivations = activations;
        var model = new Stack();
        int[] batches = [1, 2, 17, 64];
        var inputs = batches.Select(b => QuantTestData.Gaussian((ulong)(b * 13 + 1), b * 256)).ToArray();
        var expected = inputs.Select((x, i) => model.Forward(x, batches[i])).ToArray();

        const int rounds = 200;
        int mismatches = 0;
        string first = "";
        FromFourThreads((t, round) =>
        {
            int i = (t + round) % batches.Length;
            var y = model.Forward(inputs[i], batches[i]);
            string difference = FirstDifference(expected[i], y, 128);
            if (difference.Length > 0 && Interlocked.Increment(ref mismatches) == 1) first = $"batch {batches[i]}: {difference}";
        }, rounds);
        Assert.True(mismatches == 0, $"{activations}: {mismatches} of {4 * rounds} concurrent Forward calls differ from the single-threaded result; {first}");
    }

    [Fact]
    public void Fastfood_from_4_threads_equals_the_single_threaded_result()
    {
        // L = 2^16: every pass goes to the worker pool.
        const int d = (1 << 16) - 3, bigD = 1 << 16;
        var p = new Fastfood(d, bigD, 5);
        var x = QuantTestData.Gaussian(8, d);
        var y = QuantTestData.Gaussian(9, bigD);
        var px = new float[bigD];
        var pty = new float[d];
        p.Apply(x, px);
        p.ApplyTranspose(y, pty);

        int mismatches = 0;
        FromFourThreads((t, round) =>
        {
            if ((t + round) % 2 == 0)
            {
                var result = new float[bigD];
                p.Apply(x, result);
                if (!result.AsSpan().SequenceEqual(px)) Interlocked.Increment(ref mismatches);
            }
            else
            {
                var result = new float[d];
                p.ApplyTranspose(y, result);
                if (!result.AsSpan().SequenceEqual(pty)) Interlocked.Increment(ref mismatches);
            }
        }, rounds: 25);
        Assert.Equal(0, mismatches);
    }
}
