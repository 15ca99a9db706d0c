using Condense.Compression;
using Condense.Nn;
using Condense.Quantization;

namespace Condense.Tests.Compression;

/// <summary>Two quantized layers, symmetric and asymmetric, for <see cref="CompressionOptions.Rounding"/>.</summary>
[Compressible]
public sealed partial class RoundingModel : Module
{
    [Quantize(3, GroupSize = 64)] private readonly Linear sym = new(256, 64);
    [Quantize(3, GroupSize = 64, Symmetric = false)] private readonly Linear asym = new(64, 16);

    public Tensor Forward(Tensor x) => asym.Forward(sym.Forward(x));
}

public class RoundingOptionTests
{
    private static CompressionReport Compress(CompressionOptions? options)
    {
        var model = new RoundingModel();
        model.Initialize(5);
        return model.Compress(options);
    }

    [Fact]
    public void The_default_is_the_mse_clip_search_and_min_max_is_an_option_with_a_larger_error()
    {
        var byDefault = Compress(null);
        var clip = Compress(new CompressionOptions { Rounding = QuantizationRounding.MseClip });
        var minMax = Compress(new CompressionOptions { Rounding = QuantizationRounding.MinMax });
        Assert.Equal(QuantizationRounding.MseClip, new CompressionOptions().Rounding);
        for (int i = 0; i < byDefault.Layers.Count; i++)
        {
            Assert.Equal(clip.Layers[i].RelativeError, byDefault.Layers[i].RelativeError);
            // The plan (bytes) is the same; only the chosen scales differ.
            Assert.Equal(minMax.Layers[i].BytesAfter, clip.Layers[i].BytesAfter);
            Assert.True(clip.Layers[i].RelativeError < minMax.Layers[i].RelativeError,
                $"{clip.Layers[i].Path}: clip {clip.Layers[i].RelativeError} vs min/max {minMax.Layers[i].RelativeError}");
        }
    }
}
