using System.Globalization;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>
/// In-place fast Walsh-Hadamard transform in natural (Sylvester) order: x := H_n x with H_1 = [1] and
/// H_2n = [[H_n, H_n], [H_n, -H_n]], for any power-of-two length n. Unnormalized (H H x = n x), or normalized by
/// 1/sqrt(n) (an orthogonal, self-inverse map).
/// </summary>
/// <remarks>
/// The stages below the vector width run inside registers (one shuffle and one multiply-add by +-1 each); the wider
/// stages run as radix-8 passes over whole vectors; stages are grouped so that each block of 32 KiB (L1), then
/// 512 KiB (L2), gets all of its stages while it is in cache. Every element sees exactly the scalar butterfly
/// sequence, so all paths give bit-identical results.
/// </remarks>
public static class Hadamard
{
    internal const int L1Bytes = 32 << 10;
    internal const int L2Bytes = 512 << 10;

    /// <summary>Unnormalized transform in place.</summary>
    /// <exception cref="ArgumentException">The length is not a power of two (the length is named).</exception>
    public static unsafe void Transform(Span<float> data)
    {
        CheckLength(data.Length);
        fixed (float* x = data)
        {
            int n = data.Length;
            if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count) Run<HadamardF512, float>(x, n);
            else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count) Run<HadamardF256, float>(x, n);
            else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count) Run<HadamardF128, float>(x, n);
            else Scalar(x, n);
        }
    }

    /// <summary>Unnormalized transform in place.</summary>
    /// <exception cref="ArgumentException">The length is not a power of two (the length is named).</exception>
    public static unsafe void Transform(Span<double> data)
    {
        CheckLength(data.Length);
        fixed (double* x = data)
        {
            int n = data.Length;
            if (Vector512.IsHardwareAccelerated && n >= Vector512<double>.Count) Run<HadamardD512, double>(x, n);
            else if (Vector256.IsHardwareAccelerated && n >= Vector256<double>.Count) Run<HadamardD256, double>(x, n);
            else if (Vector128.IsHardwareAccelerated && n >= Vector128<double>.Count) Run<HadamardD128, double>(x, n);
            else Scalar(x, n);
        }
    }

    /// <summary>Transform scaled by 1/sqrt(n), in place: orthogonal and its own inverse.</summary>
    /// <exception cref="ArgumentException">The length is not a power of two (the length is named).</exception>
    public static void TransformNormalized(Span<float> data)
    {
        Transform(data);
        System.Numerics.Tensors.TensorPrimitives.Multiply(data, (float)(1 / Math.Sqrt(data.Length)), data);
    }

    /// <summary>Transform scaled by 1/sqrt(n), in place: orthogonal and its own inverse.</summary>
    /// <exception cref="ArgumentException">The length is not a power of two (the length is named).</exception>
    public static void TransformNormalized(Span<double> data)
    {
        Transform(data);
        System.Numerics.Tensors.TensorPrimitives.Multiply(data, 1 / Math.Sqrt(data.Length), data);
    }

    /// <summary>The scalar reference: stage by stage, (a, b) -> (a + b, a - b).</summary>
    internal static unsafe void Scalar<T>(T* x, int n) where T : unmanaged, System.Numerics.IFloatingPoint<T>
    {
        for (int h = 1; h < n; h <<= 1)
            for (int g = 0; g < n; g += 2 * h)
                for (int j = g; j < g + h; j++)
                {
                    T a = x[j], b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
    }

    private static void CheckLength(int length)
    {
        if (length <= 0 || (length & (length - 1)) != 0)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"data has length {length}; the Walsh-Hadamard transform expects a power of two (1, 2, 4, ...)"), "data");
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Run<TV, T>(T* x, int n) where TV : struct, IHadamardVec<TV, T> where T : unmanaged
    {
        int w = TV.Count;
        int l1 = Math.Max(w, Math.Min(n, L1Bytes / sizeof(T)));
        int l2 = Math.Max(l1, Math.Min(n, L2Bytes / sizeof(T)));
        for (int b = 0; b < n; b += l1)
        {
            T* block = x + b;
            for (int i = 0; i < l1; i += w) TV.Store(TV.InRegister(TV.Load(block + i)), block + i);
            Passes<TV, T>(block, l1, w, l1);
        }
        for (int b = 0; b < n; b += l2) Passes<TV, T>(x + b, l2, l1, l2);
        Passes<TV, T>(x, n, l2, n);
    }

    /// <summary>Applies the stages of strides hFrom, 2 hFrom, ..., &lt; hTo to a block, up to three per pass.</summary>
    internal static unsafe void Passes<TV, T>(T* x, int length, int hFrom, int hTo) where TV : struct, IHadamardVec<TV, T> where T : unmanaged
    {
        for (int h = hFrom; h < hTo;)
        {
            int remaining = System.Numerics.BitOperations.Log2((uint)(hTo / h));
            if (remaining >= 3) { Radix8<TV, T>(x, length, h); h <<= 3; }
            else if (remaining == 2) { Radix4<TV, T>(x, length, h); h <<= 2; }
            else { Radix2<TV, T>(x, length, h); h <<= 1; }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Butterfly<TV, T>(ref TV a, ref TV b) where TV : struct, IHadamardVec<TV, T> where T : unmanaged
    {
        TV sum = TV.Add(a, b);
        b = TV.Subtract(a, b);
        a = sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Radix8<TV, T>(T* x, int length, int h) where TV : struct, IHadamardVec<TV, T> where T : unmanaged
    {
        int w = TV.Count;
        for (int g = 0; g < length; g += 8 * h)
            for (int j = 0; j < h; j += w)
            {
                T* p = x + g + j;
                TV v0 = TV.Load(p), v1 = TV.Load(p + h), v2 = TV.Load(p + 2 * h), v3 = TV.Load(p + 3 * h);
                TV v4 = TV.Load(p + 4 * h), v5 = TV.Load(p + 5 * h), v6 = TV.Load(p + 6 * h), v7 = TV.Load(p + 7 * h);
                Butterfly<TV, T>(ref v0, ref v1); Butterfly<TV, T>(ref v2, ref v3); Butterfly<TV, T>(ref v4, ref v5); Butterfly<TV, T>(ref v6, ref v7);
                Butterfly<TV, T>(ref v0, ref v2); Butterfly<TV, T>(ref v1, ref v3); Butterfly<TV, T>(ref v4, ref v6); Butterfly<TV, T>(ref v5, ref v7);
                Butterfly<TV, T>(ref v0, ref v4); Butterfly<TV, T>(ref v1, ref v5); Butterfly<TV, T>(ref v2, ref v6); Butterfly<TV, T>(ref v3, ref v7);
                TV.Store(v0, p); TV.Store(v1, p + h); TV.Store(v2, p + 2 * h); TV.Store(v3, p + 3 * h);
                TV.Store(v4, p + 4 * h); TV.Store(v5, p + 5 * h); TV.Store(v6, p + 6 * h); TV.Store(v7, p + 7 * h);
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Radix4<TV, T>(T* x, int length, int h) where TV : struct, IHadamardVec<TV, T> where T : unmanaged
    {
        int w = TV.Count;
        for (int g = 0; g < length; g += 4 * h)
            for (int j = 0; j < h; j += w)
            {
                T* p = x + g + j;
                TV v0 = TV.Load(p), v1 = TV.Load(p + h), v2 = TV.Load(p + 2 * h), v3 = TV.Load(p + 3 * h);
                Butterfly<TV, T>(ref v0, ref v1); Butterfly<TV, T>(ref v2, ref v3);
                Butterfly<TV, T>(ref v0, ref v2); Butterfly<TV, T>(ref v1, ref v3);
                TV.Store(v0, p); TV.Store(v1, p + h); TV.Store(v2, p + 2 * h); TV.Store(v3, p + 3 * h);
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Radix2<TV, T>(T* x, int length, int h) where TV : struct, IHadamardVec<TV, T> where T : unmanaged
    {
        int w = TV.Count;
        for (int g = 0; g < length; g += 2 * h)
            for (int j = 0; j < h; j += w)
            {
                T* p = x + g + j;
                TV v0 = TV.Load(p), v1 = TV.Load(p + h);
                Butterfly<TV, T>(ref v0, ref v1);
                TV.Store(v0, p); TV.Store(v1, p + h);
            }
    }
}
