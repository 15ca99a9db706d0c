namespace Condense;

/// <summary>How quantized values are chosen.</summary>
public enum QuantizationMethod
{
    /// <summary>Round each weight to the nearest level of its group's grid.</summary>
    RoundToNearest = 0,
    /// <summary>
    /// GPTQ: column by column, each rounding error spread over the columns not yet quantized through the inverse
    /// Hessian of the layer's inputs. Compress needs <c>CompressionOptions.Calibration</c> (CND0034 at the build when a
    /// call certainly has none); its settings are <c>CompressionOptions.Gptq</c>. Same stored format as round to nearest.
    /// </summary>
    Gptq = 1,
}

/// <summary>
/// Group-wise integer quantization of a layer's weight: each run of <see cref="GroupSize"/> consecutive input
/// weights of an output row shares one scale (and a zero point when not symmetric).
/// </summary>
[AttributeUsage(AttributeTargets.Field | AttributeTargets.Property, Inherited = false, AllowMultiple = false)]
public sealed class QuantizeAttribute : Attribute
{
    /// <param name="bits">Bits per stored weight: 2, 3, 4 or 8.</param>
    public QuantizeAttribute(int bits) => Bits = bits;

    /// <summary>Bits per stored weight.</summary>
    public int Bits { get; }

    /// <summary>Weights per group along the input dimension; 0 = one group per output row.</summary>
    public int GroupSize { get; set; }

    /// <summary>Symmetric grid around zero (one scale per group) or asymmetric (scale and zero point).</summary>
    public bool Symmetric { get; set; } = true;

    /// <summary>How quantized values are chosen.</summary>
    public QuantizationMethod Method { get; set; }
}
