using System.Globalization;
using Condense.Compression;
using Condense.Nn;
using Xunit.Abstractions;

namespace Condense.Tests.Compression;

/// <summary>
/// The hostile-weight harness: every technique the runtime implements (Linear and Conv2d, top-level and nested,
/// 1x1 layers) x weights no training run should produce but some do (NaN, +-Inf, 1e30, +-3e38, float.MaxValue,
/// denormals, tiny values, zero rows, an all-zero layer, constant groups, one huge outlier). For each case Compress
/// either succeeds with finite stored weights and a finite report, or throws an exception that names the layer's
/// path, the offending value and a fix, leaving the model exactly as it was.
/// </summary>
public sealed class HostileWeightTests(ITestOutputHelper output)
{
    /// <summary>A hostile pattern: writes into a [rows, cols] weight and returns the values it wrote that an error should quote.</summary>
    internal sealed record Pattern(string Name, bool MustFail, Func<float[], int, int, Rng, float[]> Apply)
    {
        public override string ToString() => Name;
    }

    internal sealed record Subject(string Name, Func<Module> Create, Func<Module, CompressionReport> Compress, Func<string, bool> IsTarget);

    internal static readonly Pattern[] Patterns =
    [
        new("NaN", true, (w, r, c, _) => One(w, float.NaN)),
        new("+Inf", true, (w, r, c, _) => One(w, float.PositiveInfinity)),
        new("-Inf", true, (w, r, c, _) => One(w, float.NegativeInfinity)),
        new("one 1e30", false, (w, r, c, _) => One(w, 1e30f)),
        new("all +-1e30", false, (w, r, c, rng) => All(w, rng, 1e30f)),
        new("all +-3e38", false, (w, r, c, rng) => All(w, rng, 3e38f)),
        new("one float.MaxValue", false, (w, r, c, _) => One(w, float.MaxValue)),
        new("all +-float.MaxValue", false, (w, r, c, rng) => All(w, rng, float.MaxValue)),
        new("one outlier 1e6", false, (w, r, c, _) => One(w, 1e6f)),
        new("one outlier -1e4", false, (w, r, c, _) => One(w, -1e4f)),
        new("denormals", false, (w, r, c, rng) => Each(w, rng, 1e-45f, 1e-39f)),
        new("tiny |w| < 6e-8", false, (w, r, c, rng) => Each(w, rng, 1e-9f, 2.9e-8f)),
        new("zero row", false, (w, r, c, _) => { Array.Clear(w, 0, c); return []; }),
        new("all zero", false, (w, r, c, _) => { Array.Clear(w); return []; }),
        new("constant 0.37", false, (w, r, c, _) => { Array.Fill(w, 0.37f); return []; }),
        new("constant -1e-3", false, (w, r, c, _) => { Array.Fill(w, -1e-3f); return []; }),
        new("half rows tiny", false, (w, r, c, rng) => Each(w.AsSpan(0, (r + 1) / 2 * c), rng, 1e-9f, 2.9e-8f)),
    ];

    internal static readonly Subject[] Subjects =
    [
        new("HostileLinears", () => new HostileLinears(), m => ((HostileLinears)m).Compress(), _ => true),
        new("HostileStack", () => new HostileStack(), m => ((HostileStack)m).Compress(), p => p.StartsWith("blocks[1].", StringComparison.Ordinal)),
        new("HostileConvs", () => new HostileConvs(), m => ((HostileConvs)m).Compress(), _ => true),
        new("HostileTiny", () => new HostileTiny(), m => ((HostileTiny)m).Compress(), _ => true),
    ];

    /// <summary>Words of the fixes the messages suggest; every error must contain one.</summary>
    private static readonly string[] FixWords = ["[KeepDense]", "rescale", "check the training run"];

    private static float[] One(float[] w, float value)
    {
        w[w.Length / 2] = value;
        return [value];
    }

    private static float[] All(float[] w, Rng rng, float magnitude)
    {
        for (int i = 0; i < w.Length; i++) w[i] = rng.NextFloat() < 0.5f ? -magnitude : magnitude;
        return [magnitude, -magnitude];
    }

    private static float[] Each(Span<float> w, Rng rng, float low, float high)
    {
        var written = new float[w.Length];
        for (int i = 0; i < w.Length; i++)
        {
            float v = rng.NextUniform(low, high);
            w[i] = written[i] = rng.NextFloat() < 0.5f ? -v : v;
        }
        return written;
    }

    /// <summary>One case's outcome: null when it meets the contract, else what went wrong.</summary>
    internal sealed record Outcome(string Case, bool Threw, bool NamedLayer, string? Problem);

    internal static IEnumerable<(Subject Subject, string Path, Pattern Pattern)> Cases()
    {
        foreach (var subject in Subjects)
            foreach (var (path, _) in subject.Create().Layers.Where(l => subject.IsTarget(l.Path)))
                foreach (var pattern in Patterns)
                    yield return (subject, path, pattern);
    }

    internal static Outcome Run(Subject subject, string path, Pattern pattern)
    {
        string name = $"{subject.Name}.{path} <- {pattern.Name}";
        var model = subject.Create();
        model.Initialize(seed: 7);
        var layers = model.Layers.Select(l => (l.Path, Layer: (WeightedLayer)l.Layer)).ToArray();
        var target = layers.Single(l => l.Path == path).Layer;
        var rng = new Rng(Rng.Derive(11, name));
        float[] written = pattern.Apply(target.Weight.Data, target.OutFeatures, target.InFeatures, rng);
        var before = layers.Select(l => l.Layer.Weight.Data.Select(BitConverter.SingleToInt32Bits).ToArray()).ToArray();

        CompressionReport report;
        try
        {
            report = subject.Compress(model);
        }
        catch (Exception e)
        {
            bool named = e.Message.Contains($"'{path}'", StringComparison.Ordinal) || e.Message.Contains($"'{path}.weight'", StringComparison.Ordinal);
            var problems = new List<string>();
            if (e is not (InvalidDataException or InvalidOperationException or ArgumentException) || e is ArgumentOutOfRangeException)
                problems.Add($"escaped {e.GetType().Name}");
            if (!named) problems.Add("layer not named");
            var values = written.Select(v => v.ToString(CultureInfo.InvariantCulture)).Distinct().ToArray();
            if (values.Length > 0 && !values.Any(v => e.Message.Contains(v, StringComparison.Ordinal)))
                problems.Add("value not quoted");
            if (!FixWords.Any(f => e.Message.Contains(f, StringComparison.OrdinalIgnoreCase)))
                problems.Add("no fix");
            for (int i = 0; i < layers.Length; i++)
            {
                if (layers[i].Layer.CompressedWeight is not null) problems.Add($"{layers[i].Path} was swapped");
                else if (!layers[i].Layer.Weight.Data.Select(BitConverter.SingleToInt32Bits).SequenceEqual(before[i])) problems.Add($"{layers[i].Path} changed");
            }
            return new Outcome(name, true, named, problems.Count == 0 ? null : $"{string.Join(", ", problems)}: {e.GetType().Name}: {e.Message}");
        }

        var issues = new List<string>();
        if (pattern.MustFail) issues.Add("succeeded on non-finite weights");
        foreach (var (layerPath, layer) in layers)
        {
            var storage = layer.CompressedWeight;
            var restored = new float[(long)layer.OutFeatures * layer.InFeatures];
            if (storage is null) layer.Weight.Data.CopyTo(restored, 0);
            else storage.Dequantize(restored);
            int bad = Array.FindIndex(restored, v => !float.IsFinite(v));
            if (bad >= 0) issues.Add($"{layerPath} restores {restored[bad]} at {bad}");
        }
        foreach (var l in report.Layers)
            if (!double.IsFinite(l.RelativeError) || l.RelativeError < 0) issues.Add($"{l.Path} reports error {l.RelativeError}");
        return new Outcome(name, false, false, issues.Count == 0 ? null : string.Join("; ", issues));
    }

    [Fact]
    public void Every_hostile_case_compresses_cleanly_or_fails_naming_the_layer_the_value_and_a_fix()
    {
        var outcomes = Cases().Select(c => Run(c.Subject, c.Path, c.Pattern)).ToList();
        int threw = outcomes.Count(o => o.Threw), named = outcomes.Count(o => o.Threw && o.NamedLayer);
        output.WriteLine($"{outcomes.Count} cases: {outcomes.Count - threw} compressed, {threw} threw, {named} of them named the layer, {outcomes.Count(o => o.Problem is not null)} broke the contract.");
        var broken = outcomes.Where(o => o.Problem is not null).ToList();
        foreach (var o in broken) output.WriteLine($"{o.Case}: {o.Problem}");
        // The structure is what makes the harness worth running: 4 models, 42 target layers, 17 patterns.
        Assert.Equal(42 * Patterns.Length, outcomes.Count);
        Assert.True(broken.Count == 0, $"{broken.Count} of {outcomes.Count} hostile cases broke the contract, e.g.\n" +
            string.Join("\n", broken.Take(20).Select(o => $"{o.Case}: {o.Problem}")));
    }
}
