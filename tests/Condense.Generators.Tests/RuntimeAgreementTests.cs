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

    public static TheoryData<string> Models => [Sources.FashionMlp, Sources.SmallCnn, Sources.ConstShapes, Sources.Nested, Sources.Asymmetric, Sources.DesignMlp, Sources.VisionCnn];

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
            Assert.Equal(layer.ComputeBytes(), (layer.BytesBefore, layer.BytesAfter));
            // The IDE table shows the runtime's own shape and technique text for each layer.
            Assert.Contains($"<term>{layer.Path}</term><description>{layer.Kind} {string.Join("x", layer.WeightShape)}: {layer.TechniqueText},", generated, StringComparison.Ordinal);
        }
        // Compress calls one typed method per layer, indexed in plan order.
        var calls = Regex.Matches(generated, @"session\.(\w+)(<global::Condense\.Quantization\.Bits(\d)>)?\(this\.@?(\w+)!?, (\d+)\);");
        Assert.Equal(plan.Layers.Select((l, i) => (l.Path, i, SessionMethod(l), l.Bits > 0 && l.Technique != LayerTechnique.MixedPrecision ? l.Bits.ToString(System.Globalization.CultureInfo.InvariantCulture) : "")),
            calls.Select(m => (m.Groups[4].Value, int.Parse(m.Groups[5].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups[1].Value, m.Groups[3].Value)));
    }

    private static string SessionMethod(LayerPlan layer) => layer.Technique switch
    {
        LayerTechnique.Quantize => "Quantize",
        LayerTechnique.LowRank => "LowRank",
        LayerTechnique.QuantizeWithLowRankCorrection => "QuantizeWithLowRankCorrection",
        LayerTechnique.SemiStructuredSparse => "SparsifySemiStructured",
        LayerTechnique.UnstructuredSparse => "SparsifyUnstructured",
        LayerTechnique.MixedPrecision => "MixedPrecision",
        _ => "KeepDense",
    };

    [Fact]
    public void TechniqueEnumsAgree()
    {
        // The catalogue is compiled into both assemblies; the runtime's and the generator's copies and both mirrors agree.
        static string[] Names(Type type) => Enum.GetValues(type).Cast<object>().Select(v => Convert.ToInt32(v, System.Globalization.CultureInfo.InvariantCulture) + "=" + v).ToArray();
        var runtimeCatalogue = typeof(LayerPlan).Assembly.GetType("Condense.Catalogue.StorageTechnique")!;
        var generatorCatalogue = typeof(ModelParser).Assembly.GetType("Condense.Catalogue.StorageTechnique")!;
        Assert.Equal(Names(runtimeCatalogue), Names(typeof(LayerTechnique)));
        Assert.Equal(Names(runtimeCatalogue), Names(typeof(GeneratorTechnique)));
        Assert.Equal(Names(runtimeCatalogue), Names(generatorCatalogue));
    }
}
