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
    /// <param name="MustFail">Non-finite weights: Compress must refuse them.</param>
    /// <param name="ZeroesGroups">Writes whole rows of |w| &lt; 3e-8: a quantized layer must report zeroed groups (others none).</param>
    internal sealed record Pattern(string Name, bool MustFail, Func<float[], int, int, Rng, float[]> Apply, bool ZeroesGroups = false)
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
        new("denormals", false, (w, r, c, rng) => Each(w, rng, 1e-45f, 1e-39f), ZeroesGroups: true),
        new("tiny |w| < 6e-8", false, (w, r, c, rng) => Each(w, rng, 1e-9f, 2.9e-8f), ZeroesGroups: true),
        new("zero row", false, (w, r, c, _) => { Array.Clear(w, 0, c); return []; }),
        new("all zero", false, (w, r, c, _) => { Array.Clear(w); return []; }),
        new("constant 0.37", false, (w, r, c, _) => { Array.Fill(w, 0.37f); return []; }),
        new("constant -1e-3", false, (w, r, c, _) => { Array.Fill(w, -1e-3f); return []; }),
        new("half rows tiny", false, (w, r, c, rng) => Each(w.AsSpan(0, (r + 1) / 2 * c), rng, 1e-9f, 2.9e-8f), ZeroesGroups: true),
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
        {
            if (!double.IsFinite(l.RelativeError) || l.RelativeError < 0) issues.Add($"{l.Path} reports error {l.RelativeError}");
            var plan = report.Plan.Find(l.Path)!;
            bool quantized = plan.Technique is LayerTechnique.Quantize or LayerTechnique.QuantizeWithLowRankCorrection ||
                             (plan.Technique == LayerTechnique.SemiStructuredSparse && plan.Bits > 0);
            bool expectZeroed = quantized && pattern.ZeroesGroups && l.Path == path;
            if (expectZeroed != l.ZeroedGroups > 0) issues.Add($"{l.Path} reports {l.ZeroedGroups} zeroed groups");
            if (expectZeroed && !report.ToString().Contains($"warning: layer '{path}': {l.ZeroedGroups} quantization group(s)", StringComparison.Ordinal))
                issues.Add($"{l.Path}: the report's text does not flag its zeroed groups");
        }
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

/// <summary>Single hostile cases with their exact messages and report entries.</summary>
public sealed class HostileWeightMessageTests
{
    private static WeightedLayer Layer(Module model, string path) => (WeightedLayer)model.Layers.Single(l => l.Path == path).Layer;

    [Fact]
    public void A_group_scale_beyond_float16_names_the_nested_layer_the_group_the_value_and_the_fix()
    {
        var model = new Condense.Tests.EndToEnd.PlanStack();
        model.Initialize(seed: 3);
        var up = Layer(model, "blocks[0].mlp.up");
        up.Weight.Data[3 * up.InFeatures + 5] = 1e30f;
        var before = up.Weight.Data.ToArray();

        var e = Assert.Throws<InvalidDataException>(() => model.Compress());
        Assert.StartsWith("Layer 'blocks[0].mlp.up' (int8 g16 sym) cannot be compressed: weight row 3, columns 0..15: the weight 1E+30", e.Message);
        Assert.Contains("above the float16 maximum 65504", e.Message);
        Assert.Contains("or mark the layer [KeepDense]", e.Message);
        Assert.IsType<ArgumentException>(e.InnerException);
        Assert.All(model.Layers, l => Assert.Null(((WeightedLayer)l.Layer).CompressedWeight));
        Assert.Equal(before, up.Weight.Data);
    }

    [Fact]
    public void LowRank_of_weights_near_float_max_names_the_layer_instead_of_crashing_in_the_eigen_solver()
    {
        var model = new HostileLinears();
        model.Initialize(seed: 3);
        var weight = Layer(model, "lowRank").Weight.Data;
        for (int i = 0; i < weight.Length; i++) weight[i] = i % 3 == 0 ? -3e38f : 3e38f;

        var e = Assert.Throws<InvalidDataException>(() => model.Compress());
        Assert.StartsWith("Layer 'lowRank' (low-rank r4) cannot be compressed: weight[row 0, column 0] is -3E+38", e.Message);
        Assert.Contains("[KeepDense]", e.Message);
    }

    [Fact]
    public void Quantized_N_M_values_say_their_columns_count_kept_values()
    {
        var model = new HostileLinears();
        model.Initialize(seed: 3);
        Layer(model, "nm24q4").Weight.Data[2 * 32 + 9] = 1e6f;

        var e = Assert.Throws<InvalidDataException>(() => model.Compress());
        Assert.StartsWith("Layer 'nm24q4' (2:4 sparse int4 g16 sym) cannot be compressed: quantizing the kept values (16 per row;", e.Message);
        Assert.Contains("weight row 2, columns 0..15: the weight 1000000", e.Message);
    }

    [Fact]
    public void Groups_that_quantize_to_zero_are_counted_and_flagged_in_the_report()
    {
        var model = new HostileLinears();
        model.Initialize(seed: 3);
        // q4g32: one group per row; rows 0 and 1 scaled below half the smallest float16 scale (~3e-8).
        var weight = Layer(model, "q4g32").Weight.Data;
        for (int i = 0; i < 2 * 32; i++) weight[i] *= 1e-8f;
        // q4g16asym: only the second group of row 5.
        var asym = Layer(model, "q4g16asym").Weight.Data;
        for (int i = 5 * 32 + 16; i < 6 * 32; i++) asym[i] *= 1e-8f;

        var report = model.Compress();
        var zeroed = report.Layers.ToDictionary(l => l.Path, l => l.ZeroedGroups);
        Assert.Equal(2, zeroed["q4g32"]);
        Assert.Equal(1, zeroed["q4g16asym"]);
        Assert.All(zeroed.Where(z => z.Key is not ("q4g32" or "q4g16asym")), z => Assert.Equal(0, z.Value));
        string text = report.ToString();
        Assert.Contains("zeroed groups", text);
        Assert.Contains("warning: layer 'q4g32': 2 quantization group(s)", text);
        Assert.Contains("warning: layer 'q4g16asym': 1 quantization group(s)", text);
        Assert.DoesNotContain("warning: layer 'q8row'", text);
    }
}
