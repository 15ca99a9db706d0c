using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>How a quantized weight multiplies its float32 input.</summary>
public enum ActivationPrecision
{
    /// <summary>
    /// Each input row is quantized once per call to int8 with one scale per row (max |x| / 127, round half to
    /// even); the products are exact integer dot products of those int8 values with the weight codes, scaled by
    /// the group scales in float32. Fast (reads only the packed weights); adds a relative error of about
    /// 0.5 / 127 of the row's largest |x| per input value. Used only when the input is finite.
    /// </summary>
    Int8,

    /// <summary>
    /// Exact reference semantics: every weight enters as its exact dequantized value s (q - z) times the float32
    /// input, so results are dequantize-then-matmul up to the float32 summation order. The kernels decode the packed
    /// codes in registers (nothing is materialized beyond an L2-sized panel at large batches).
    /// </summary>
    Float32,
}

/// <summary>Process-wide settings of the CPU kernels.</summary>
public static class KernelOptions
{
    /// <summary>
    /// The activation precision group-quantized weights use when none is given per call (default
    /// <see cref="ActivationPrecision.Int8"/>). Set <see cref="ActivationPrecision.Float32"/> for reference results
    /// (no activation rounding); it reads the same packed bytes but multiplies in float32, so it costs more where the
    /// product is compute-bound (weights in cache, large batches).
    /// </summary>
    public static ActivationPrecision QuantizedActivations { get; set; } = ActivationPrecision.Int8;

    /// <summary>
    /// Whether kernels may use machine code generated at run time for instructions .NET has no intrinsic for (today:
    /// the AVX-512 VNNI vpdpbusd micro-kernels of the 8- and 4-bit products: the batch-1 GEMV, the small-batch and the
    /// batched GEMM, Linux x64 only). Default
    /// on, unless the environment variable CONDENSE_NO_JIT is 1 when the process starts. Off, or where the CPU, OS or
    /// a security policy does not allow it, the managed kernels run instead (8 bits: bit-identical results; 4 bits: the
    /// fused kernels, equal up to float32 rounding).
    /// </summary>
    public static bool GeneratedCode { get; set; } = Environment.GetEnvironmentVariable("CONDENSE_NO_JIT") != "1";

    /// <summary>
    /// Caps the SIMD width the kernels use (512, 256, 128, or 0 for the scalar reference). Tests use it to run
    /// every path on one machine; the default uses the widest the hardware accelerates.
    /// </summary>
    internal static int MaxVectorBits { get; set; } = 512;

    /// <summary>The widest accelerated vector width in bits allowed by <see cref="MaxVectorBits"/>, or 0.</summary>
    internal static int VectorBits =>
        MaxVectorBits >= 512 && Vector512.IsHardwareAccelerated ? 512
        : MaxVectorBits >= 256 && Vector256.IsHardwareAccelerated ? 256
        : MaxVectorBits >= 128 && Vector128.IsHardwareAccelerated ? 128
        : 0;
}
