using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>A vector of T for the Walsh-Hadamard kernels, with the stages narrower than the vector done in-register.</summary>
internal unsafe interface IHadamardVec<TSelf, T> where TSelf : struct, IHadamardVec<TSelf, T> where T : unmanaged
{
    static abstract int Count { get; }
    static abstract TSelf Load(T* source);
    static abstract void Store(TSelf value, T* destination);
    static abstract TSelf Add(TSelf a, TSelf b);
    static abstract TSelf Subtract(TSelf a, TSelf b);
    static abstract TSelf Multiply(TSelf a, TSelf b);

    /// <summary>All stages with stride &lt; Count: per stage, lane i becomes partner + v * (bit set ? -1 : 1), the exact scalar a + b / a - b.</summary>
    static abstract TSelf InRegister(TSelf v);
}

internal readonly unsafe struct HadamardF512 : IFastfoodVec<HadamardF512>
{
    private readonly Vector512<float> _v;
    private HadamardF512(Vector512<float> v) => _v = v;
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF512 Load(float* source) => new(Vector512.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardF512 value, float* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF512 Add(HadamardF512 a, HadamardF512 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF512 Subtract(HadamardF512 a, HadamardF512 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF512 Multiply(HadamardF512 a, HadamardF512 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF512 NegateWhere(HadamardF512 v, uint bits)
    {
        var lane = Vector512.Create(1u, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768);
        var flip = Vector512.Equals(Vector512.Create(bits) & lane, lane) & Vector512.Create(0x80000000u);
        return new((v._v.AsUInt32() ^ flip).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF512 LoadBFloat16(ushort* source) =>
        new(Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(source).ToVector512Unsafe()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF512 Create(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF512 InRegister(HadamardF512 value)
    {
        var v = value._v;
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1f, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1),
            Vector512.Shuffle(v, Vector512.Create(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14)));
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1f, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1),
            Vector512.Shuffle(v, Vector512.Create(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)));
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1f, 1, 1, 1, -1, -1, -1, -1, 1, 1, 1, 1, -1, -1, -1, -1),
            Vector512.Shuffle(v, Vector512.Create(4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11)));
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1f, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1),
            Vector512.Shuffle(v, Vector512.Create(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7)));
        return new(v);
    }
}

internal readonly unsafe struct HadamardF256 : IFastfoodVec<HadamardF256>
{
    private readonly Vector256<float> _v;
    private HadamardF256(Vector256<float> v) => _v = v;
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF256 Load(float* source) => new(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardF256 value, float* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF256 Add(HadamardF256 a, HadamardF256 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF256 Subtract(HadamardF256 a, HadamardF256 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF256 Multiply(HadamardF256 a, HadamardF256 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF256 NegateWhere(HadamardF256 v, uint bits)
    {
        var lane = Vector256.Create(1u, 2, 4, 8, 16, 32, 64, 128);
        var flip = Vector256.Equals(Vector256.Create(bits) & lane, lane) & Vector256.Create(0x80000000u);
        return new((v._v.AsUInt32() ^ flip).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF256 LoadBFloat16(ushort* source) =>
        new(Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(source).ToVector256Unsafe()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF256 Create(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF256 InRegister(HadamardF256 value)
    {
        var v = value._v;
        v = Vector256.FusedMultiplyAdd(v, Vector256.Create(1f, -1, 1, -1, 1, -1, 1, -1), Vector256.Shuffle(v, Vector256.Create(1, 0, 3, 2, 5, 4, 7, 6)));
        v = Vector256.FusedMultiplyAdd(v, Vector256.Create(1f, 1, -1, -1, 1, 1, -1, -1), Vector256.Shuffle(v, Vector256.Create(2, 3, 0, 1, 6, 7, 4, 5)));
        v = Vector256.FusedMultiplyAdd(v, Vector256.Create(1f, 1, 1, 1, -1, -1, -1, -1), Vector256.Shuffle(v, Vector256.Create(4, 5, 6, 7, 0, 1, 2, 3)));
        return new(v);
    }
}

internal readonly unsafe struct HadamardF128 : IFastfoodVec<HadamardF128>
{
    private readonly Vector128<float> _v;
    private HadamardF128(Vector128<float> v) => _v = v;
    public static int Count => Vector128<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF128 Load(float* source) => new(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardF128 value, float* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF128 Add(HadamardF128 a, HadamardF128 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF128 Subtract(HadamardF128 a, HadamardF128 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF128 Multiply(HadamardF128 a, HadamardF128 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF128 NegateWhere(HadamardF128 v, uint bits)
    {
        var lane = Vector128.Create(1u, 2, 4, 8);
        var flip = Vector128.Equals(Vector128.Create(bits) & lane, lane) & Vector128.Create(0x80000000u);
        return new((v._v.AsUInt32() ^ flip).AsSingle());
    }
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF128 LoadBFloat16(ushort* source) =>
        new(Vector128.ShiftLeft(Vector128.WidenLower(Vector128.CreateScalarUnsafe(*(ulong*)source).AsUInt16()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF128 Create(float value) => new(Vector128.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardF128 InRegister(HadamardF128 value)
    {
        var v = value._v;
        v = Vector128.FusedMultiplyAdd(v, Vector128.Create(1f, -1, 1, -1), Vector128.Shuffle(v, Vector128.Create(1, 0, 3, 2)));
        v = Vector128.FusedMultiplyAdd(v, Vector128.Create(1f, 1, -1, -1), Vector128.Shuffle(v, Vector128.Create(2, 3, 0, 1)));
        return new(v);
    }
}

internal readonly unsafe struct HadamardD512 : IHadamardVec<HadamardD512, double>
{
    private readonly Vector512<double> _v;
    private HadamardD512(Vector512<double> v) => _v = v;
    public static int Count => Vector512<double>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD512 Load(double* source) => new(Vector512.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardD512 value, double* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD512 Add(HadamardD512 a, HadamardD512 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD512 Subtract(HadamardD512 a, HadamardD512 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD512 Multiply(HadamardD512 a, HadamardD512 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardD512 InRegister(HadamardD512 value)
    {
        var v = value._v;
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1.0, -1, 1, -1, 1, -1, 1, -1), Vector512.Shuffle(v, Vector512.Create(1L, 0, 3, 2, 5, 4, 7, 6)));
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1.0, 1, -1, -1, 1, 1, -1, -1), Vector512.Shuffle(v, Vector512.Create(2L, 3, 0, 1, 6, 7, 4, 5)));
        v = Vector512.FusedMultiplyAdd(v, Vector512.Create(1.0, 1, 1, 1, -1, -1, -1, -1), Vector512.Shuffle(v, Vector512.Create(4L, 5, 6, 7, 0, 1, 2, 3)));
        return new(v);
    }
}

internal readonly unsafe struct HadamardD256 : IHadamardVec<HadamardD256, double>
{
    private readonly Vector256<double> _v;
    private HadamardD256(Vector256<double> v) => _v = v;
    public static int Count => Vector256<double>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD256 Load(double* source) => new(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardD256 value, double* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD256 Add(HadamardD256 a, HadamardD256 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD256 Subtract(HadamardD256 a, HadamardD256 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD256 Multiply(HadamardD256 a, HadamardD256 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardD256 InRegister(HadamardD256 value)
    {
        var v = value._v;
        v = Vector256.FusedMultiplyAdd(v, Vector256.Create(1.0, -1, 1, -1), Vector256.Shuffle(v, Vector256.Create(1L, 0, 3, 2)));
        v = Vector256.FusedMultiplyAdd(v, Vector256.Create(1.0, 1, -1, -1), Vector256.Shuffle(v, Vector256.Create(2L, 3, 0, 1)));
        return new(v);
    }
}

internal readonly unsafe struct HadamardD128 : IHadamardVec<HadamardD128, double>
{
    private readonly Vector128<double> _v;
    private HadamardD128(Vector128<double> v) => _v = v;
    public static int Count => Vector128<double>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD128 Load(double* source) => new(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardD128 value, double* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD128 Add(HadamardD128 a, HadamardD128 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD128 Subtract(HadamardD128 a, HadamardD128 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardD128 Multiply(HadamardD128 a, HadamardD128 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HadamardD128 InRegister(HadamardD128 value)
    {
        var v = value._v;
        v = Vector128.FusedMultiplyAdd(v, Vector128.Create(1.0, -1), Vector128.Shuffle(v, Vector128.Create(1L, 0)));
        return new(v);
    }
}

/// <summary>One float: the scalar path of kernels written over <see cref="IHadamardVec{TSelf, T}"/> (no in-register stages).</summary>
internal readonly unsafe struct HadamardF1 : IFastfoodVec<HadamardF1>
{
    private readonly float _v;
    private HadamardF1(float v) => _v = v;
    public static int Count => 1;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 Load(float* source) => new(*source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(HadamardF1 value, float* destination) => *destination = value._v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 Add(HadamardF1 a, HadamardF1 b) => new(a._v + b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 Subtract(HadamardF1 a, HadamardF1 b) => new(a._v - b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 Multiply(HadamardF1 a, HadamardF1 b) => new(a._v * b._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 NegateWhere(HadamardF1 v, uint bits) => new((bits & 1) != 0 ? -v._v : v._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 LoadBFloat16(ushort* source) => new(BitConverter.UInt32BitsToSingle((uint)*source << 16));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 Create(float value) => new(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static HadamardF1 InRegister(HadamardF1 value) => value;
}

/// <summary>The extra float operations of the Fastfood passes: packed sign flips and bfloat16 diagonals.</summary>
internal unsafe interface IFastfoodVec<TSelf> : IHadamardVec<TSelf, float> where TSelf : struct, IFastfoodVec<TSelf>
{
    /// <summary>Negates lane i where bit i of <paramref name="bits"/> is set (exact, like a multiply by -1).</summary>
    static abstract TSelf NegateWhere(TSelf v, uint bits);

    /// <summary>Count bfloat16 values widened to float (exact: the 16 bits become the high half).</summary>
    static abstract TSelf LoadBFloat16(ushort* source);

    /// <summary>All lanes <paramref name="value"/>.</summary>
    static abstract TSelf Create(float value);
}
