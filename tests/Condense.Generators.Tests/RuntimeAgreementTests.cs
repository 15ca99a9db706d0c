using System.Reflection;
using System.Text.RegularExpressions;
using Condense.Compression;
using Condense.Generators.Parsing;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;
using GeneratorKind = Condense.Generators.Models.LayerKind;
using GeneratorTechnique = Condense.Generators.Models.LayerTechnique;

namespace Condense.Generators.Tests;

/// <summary>The generator's numbers and texts are the runtime's: one catalogue, no second formula.</summary>
public sealed class RuntimeAgreementTests
{
    public static TheoryData<int, int, bool, int, int, bool> Layers => new()
    {
        { 256, 784, true, 4, 16, true },
        { 100, 100, true, 3, 0, false },
        { 7, 33, false, 2, 0, true },
        { 16, 256, true, 2, 128, false },
        { 10, 800, false, 8, 32, true },
    };

    [Theory]
    [MemberData(nameof(Layers))]
    public void ByteCountsMatchLayerPlanComputeBytes(int outFeatures, int inFeatures, bool bias, int bits, int groupSize, bool symmetric)
    {
        foreach (var (generator, runtime) in new[] { (GeneratorTechnique.Quantize, LayerTechnique.Quantize), (GeneratorTechnique.Dense, LayerTechnique.Dense) })
            Assert.Equal(
                LayerPlan.ComputeBytes(runtime, outFeatures, inFeatures, bias, bits, groupSize, symmetric),
                ModelParser.ComputeBytes(generator, outFeatures, inFeatures, bias, bits, groupSize, symmetric));
    }

    public static TheoryData<string> Models => [Sources.FashionMlp, Sources.SmallCnn, Sources.ConstShapes, Sources.Nested, Sources.Asymmetric];

    /// <summary>Compiles and loads the generated code, then checks its Plan with the runtime's own CompressionPlan.</summary>
    [Theory]
    [MemberData(nameof(Models))]
    public void GeneratedPlanAgreesWithTheRuntime(string source)
    {
        var (result, output) = TestCompilation.RunGenerator(TestCompilation.Create(source));
        using var stream = new MemoryStream();
        var emit = output.Emit(stream);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        var assembly = Assembly.Load(stream.ToArray());

        string generated = result.Results.Single().GeneratedSources.Single().SourceText.ToString();
        var model = assembly.GetTypes().Single(t => t.GetProperty("Plan", BindingFlags.Public | BindingFlags.Static) is not null);
        var plan = (CompressionPlan)model.GetProperty("Plan")!.GetValue(null)!;

        Assert.Equal(model.Name, plan.ModelName);
        Assert.Equal((long)model.GetField("PlannedBytes")!.GetValue(null)!, plan.TotalBytesAfter);
        Assert.Equal((long)model.GetField("DenseBytes")!.GetValue(null)!, plan.TotalBytesBefore);
        foreach (var layer in plan.Layers)
        {
            Assert.Equal(
                LayerPlan.ComputeBytes(layer.Technique, layer.OutFeatures, layer.InFeatures, layer.HasBias, layer.Bits, layer.GroupSize, layer.Symmetric),
                (layer.BytesBefore, layer.BytesAfter));
            // The IDE table shows the runtime's own shape and technique text for each layer.
            Assert.Contains($"<term>{layer.Path}</term><description>{layer.Kind} {string.Join("x", layer.WeightShape)}: {layer.TechniqueText},", generated, StringComparison.Ordinal);
        }
        // Compress calls one typed method per layer, indexed in plan order.
        var calls = Regex.Matches(generated, @"session\.(Quantize<global::Condense\.Quantization\.Bits(\d)>|KeepDense)\(this\.@?(\w+)!?, (\d+)\);");
        Assert.Equal(plan.Layers.Select((l, i) => (l.Path, i, l.Technique == LayerTechnique.Quantize ? l.Bits.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")),
            calls.Select(m => (m.Groups[3].Value, int.Parse(m.Groups[4].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups[2].Value)));
    }
}
