using System.Reflection;
using Condense.Calibration;
using Condense.Compression;
using Condense.Generators.Tests.Infrastructure;
using Condense.MixedPrecision;
using Condense.Nn;
using Condense.Quantization;
using Microsoft.CodeAnalysis;
using Module = Condense.Nn.Module;

namespace Condense.Generators.Tests;

/// <summary>
/// The way back to source: a model compressed with [MixedPrecision] writes a partial-class file of [Override] lines;
/// compiled with the model, the generator plans exactly the chosen bits, and Compress reproduces the same weights
/// without calibration data.
/// </summary>
public sealed class MixedPrecisionWriteBackTests
{
    private const string Source = """
        using Condense;
        using Condense.Nn;

        namespace Written.Models
        {
            public static partial class Zoo
            {
                [Compressible]
                [MixedPrecision(2, 4, 8, AverageBits = 4.2)]
                public sealed partial class Net : Module
                {
                    readonly Linear a = new(16, 64);
                    readonly Linear b = new(64, 64);
                    [Quantize(8)] readonly Linear c = new(64, 4);

                    public Tensor Forward(Tensor x) => c.Forward(Ops.Relu(b.Forward(Ops.Relu(a.Forward(x)))));
                }
            }
        }
        """;

    private static (Type Model, string Generated) Build(params string[] sources)
    {
        var compilation = TestCompilation.Create(sources);
        var cnd = TestCompilation.RunAnalyzer(compilation).Where(d => d.Id.StartsWith("CND", StringComparison.Ordinal)).ToList();
        Assert.True(cnd.Count == 0, string.Join("\n", cnd));
        var (result, output) = TestCompilation.RunGenerator(compilation);
        using var stream = new MemoryStream();
        var emit = output.Emit(stream);
        Assert.True(emit.Success, string.Join("\n", emit.Diagnostics));
        var type = Assembly.Load(stream.ToArray()).GetTypes().Single(t => t.Name == "Net");
        return (type, string.Join("\n", result.GeneratedTrees.Select(t => t.ToString())));
    }

    private static Module Create(Type type)
    {
        var model = (Module)Activator.CreateInstance(type)!;
        model.Initialize(seed: 31);
        return model;
    }

    private static CompressionReport Compress(Module model, CompressionOptions? options) =>
        (CompressionReport)model.GetType().GetMethod("Compress")!.Invoke(model, [options, null])!;

    [Fact]
    public void WrittenFileCompilesAndReproducesTheChosenPlan()
    {
        var (type, _) = Build(Source);
        var rng = new Rng(5);
        var inputs = new List<Tensor>();
        var labels = new List<int[]>();
        for (int b = 0; b < 4; b++)
        {
            var x = new float[32 * 16];
            rng.FillUniform(x, -1, 1);
            inputs.Add(new Tensor(x, 32, 16));
            labels.Add(Enumerable.Range(0, 32).Select(_ => (int)(rng.NextUInt64() % 4)).ToArray());
        }
        WriteBackReproduces(type, new CompressionOptions { Calibration = new CalibrationData(inputs, labels), MixedPrecision = new MixedPrecisionOptions { Samples = 8 } });
    }

    /// <summary>A chosen group size goes back to source as [Override(..., GroupSize = g)] and the next build plans it.</summary>
    [Fact]
    public void WrittenGroupSizeCompilesAndReproducesTheChosenFormat()
    {
        var (type, _) = Build(Source);
        var solution = WriteBackReproduces(type, new CompressionOptions
        {
            MixedPrecision = new MixedPrecisionOptions
            {
                Allocation = new Dictionary<string, int> { ["a"] = 4, ["b"] = 2 },
                AllocationGroupSizes = new Dictionary<string, int> { ["b"] = 16 },
            },
        });
        Assert.Equal(16, solution.Layers.Single(l => l.Path == "b").GroupSize);
        Assert.Contains("[global::Condense.Override(\"b\", Bits = 2, GroupSize = 16)]", solution.OverrideAttributes, StringComparison.Ordinal);
    }

    private static MixedPrecisionSolution WriteBackReproduces(Type type, CompressionOptions options)
    {
        var first = Create(type);
        var report = Compress(first, options);
        var solution = report.MixedPrecision!;
        Assert.Equal(report.TotalBytesAfter, solution.PredictedBytes);

        string file = solution.ToPartialClass(type);
        Assert.Contains("namespace Written.Models", file, StringComparison.Ordinal);
        Assert.Contains("partial class Zoo", file, StringComparison.Ordinal);

        // Next build: the generator plans the chosen bits (plain quantized layers), sized exactly as predicted.
        var (fixedType, generated) = Build(Source, file);
        Assert.DoesNotContain("ChooseMixedPrecision", generated, StringComparison.Ordinal);
        var plan = (CompressionPlan)fixedType.GetProperty("Plan")!.GetValue(null)!;
        Assert.Equal(solution.PredictedBytes, (long)fixedType.GetField("PlannedBytes")!.GetValue(null)!);
        foreach (var choice in solution.Layers)
        {
            var layer = plan.Find(choice.Path)!;
            Assert.Equal((LayerTechnique.Quantize, choice.Bits, choice.GroupSize, true), (layer.Technique, layer.Bits, layer.GroupSize, layer.Symmetric));
            Assert.Equal(choice.BytesAfter, layer.BytesAfter);
        }

        // And Compress, with no calibration data now, stores the very same weights.
        var second = Create(fixedType);
        var fixedReport = Compress(second, null);
        Assert.Null(fixedReport.MixedPrecision);
        Assert.Equal(report.TotalBytesAfter, fixedReport.TotalBytesAfter);
        for (int i = 0; i < first.Layers.Count; i++)
        {
            var a = (GroupQuantizedWeight)((WeightedLayer)first.Layers[i].Layer).CompressedWeight!;
            var b = (GroupQuantizedWeight)((WeightedLayer)second.Layers[i].Layer).CompressedWeight!;
            Assert.Equal(a.Scheme, b.Scheme);
            Assert.Equal(a.Packed, b.Packed);
            Assert.Equal(a.Scales, b.Scales);
        }
        return solution;
    }
}
