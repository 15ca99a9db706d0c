using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>A float vector width as a type, so one generic kernel is specialized by the JIT per width.</summary>
internal unsafe interface IFloatVector<TSelf> where TSelf : struct, IFloatVector<TSelf>
{
    static abstract int Count { get; }
    static abstract TSelf Zero { get; }
    static abstract TSelf Load(float* source);
    static abstract void Store(TSelf value, float* destination);
    static abstract TSelf Broadcast(float value);
    static abstract TSelf Fma(TSelf x, TSelf y, TSelf addend);
    static abstract TSelf Add(TSelf x, TSelf y);
    static abstract float Sum(TSelf value);
}

internal readonly unsafe struct F512 : IFloatVector<F512>
{
    private readonly Vector512<float> _v;
    private F512(Vector512<float> v) => _v = v;
    public static int Count => Vector512<float>.Count;
    public static F512 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F512 Load(float* source) => new(Vector512.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(F512 value, float* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F512 Broadcast(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F512 Fma(F512 x, F512 y, F512 addend) => new(Vector512.FusedMultiplyAdd(x._v, y._v, addend._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F512 Add(F512 x, F512 y) => new(x._v + y._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(F512 value) => Vector512.Sum(value._v);
}

internal readonly unsafe struct F256 : IFloatVector<F256>
{
    private readonly Vector256<float> _v;
    private F256(Vector256<float> v) => _v = v;
    public static int Count => Vector256<float>.Count;
    public static F256 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F256 Load(float* source) => new(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(F256 value, float* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F256 Broadcast(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F256 Fma(F256 x, F256 y, F256 addend) => new(Vector256.FusedMultiplyAdd(x._v, y._v, addend._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F256 Add(F256 x, F256 y) => new(x._v + y._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(F256 value) => Vector256.Sum(value._v);
}

internal readonly unsafe struct F128 : IFloatVector<F128>
{
    private readonly Vector128<float> _v;
    private F128(Vector128<float> v) => _v = v;
    public static int Count => Vector128<float>.Count;
    public static F128 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F128 Load(float* source) => new(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(F128 value, float* destination) => value._v.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F128 Broadcast(float value) => new(Vector128.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F128 Fma(F128 x, F128 y, F128 addend) => new(Vector128.FusedMultiplyAdd(x._v, y._v, addend._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F128 Add(F128 x, F128 y) => new(x._v + y._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(F128 value) => Vector128.Sum(value._v);
}

/// <summary>One lane: the scalar path of the same generic kernels.</summary>
internal readonly unsafe struct F1 : IFloatVector<F1>
{
    private readonly float _v;
    private F1(float v) => _v = v;
    public static int Count => 1;
    public static F1 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F1 Load(float* source) => new(*source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(F1 value, float* destination) => *destination = value._v;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F1 Broadcast(float value) => new(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F1 Fma(F1 x, F1 y, F1 addend) => new(MathF.FusedMultiplyAdd(x._v, y._v, addend._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static F1 Add(F1 x, F1 y) => new(x._v + y._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(F1 value) => value._v;
}
