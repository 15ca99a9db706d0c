using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Condense.Kernels;

/// <summary>Vector width as a type, so the sparse and low-rank kernels are specialized per width by the JIT.</summary>
internal unsafe interface ISparseVec<TSelf> where TSelf : struct, ISparseVec<TSelf>
{
    static abstract int Count { get; }
    static abstract TSelf Zero { get; }
    static abstract TSelf Load(float* source);
    static abstract void Store(TSelf value, float* destination);
    static abstract TSelf Broadcast(float value);
    static abstract TSelf Fma(TSelf x, TSelf y, TSelf addend);
    static abstract TSelf Add(TSelf x, TSelf y);
    static abstract float Sum(TSelf x);
}

internal readonly unsafe struct SparseV512 : ISparseVec<SparseV512>
{
    public readonly Vector512<float> V;
    public SparseV512(Vector512<float> v) => V = v;
    public static int Count => Vector512<float>.Count;
    public static SparseV512 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV512 Load(float* source) => new(Vector512.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(SparseV512 value, float* destination) => value.V.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV512 Broadcast(float value) => new(Vector512.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV512 Fma(SparseV512 x, SparseV512 y, SparseV512 addend) => new(Vector512.FusedMultiplyAdd(x.V, y.V, addend.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV512 Add(SparseV512 x, SparseV512 y) => new(x.V + y.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(SparseV512 x) => Vector512.Sum(x.V);
}

internal readonly unsafe struct SparseV256 : ISparseVec<SparseV256>
{
    public readonly Vector256<float> V;
    public SparseV256(Vector256<float> v) => V = v;
    public static int Count => Vector256<float>.Count;
    public static SparseV256 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV256 Load(float* source) => new(Vector256.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(SparseV256 value, float* destination) => value.V.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV256 Broadcast(float value) => new(Vector256.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV256 Fma(SparseV256 x, SparseV256 y, SparseV256 addend) => new(Vector256.FusedMultiplyAdd(x.V, y.V, addend.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV256 Add(SparseV256 x, SparseV256 y) => new(x.V + y.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(SparseV256 x) => Vector256.Sum(x.V);
}

internal readonly unsafe struct SparseV128 : ISparseVec<SparseV128>
{
    public readonly Vector128<float> V;
    public SparseV128(Vector128<float> v) => V = v;
    public static int Count => Vector128<float>.Count;
    public static SparseV128 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV128 Load(float* source) => new(Vector128.Load(source));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(SparseV128 value, float* destination) => value.V.Store(destination);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV128 Broadcast(float value) => new(Vector128.Create(value));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV128 Fma(SparseV128 x, SparseV128 y, SparseV128 addend) => new(Vector128.FusedMultiplyAdd(x.V, y.V, addend.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV128 Add(SparseV128 x, SparseV128 y) => new(x.V + y.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(SparseV128 x) => Vector128.Sum(x.V);
}

/// <summary>One lane: the scalar path of the same generic kernels.</summary>
internal readonly unsafe struct SparseV1 : ISparseVec<SparseV1>
{
    public readonly float V;
    public SparseV1(float v) => V = v;
    public static int Count => 1;
    public static SparseV1 Zero => default;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV1 Load(float* source) => new(*source);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(SparseV1 value, float* destination) => *destination = value.V;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV1 Broadcast(float value) => new(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV1 Fma(SparseV1 x, SparseV1 y, SparseV1 addend) => new(MathF.FusedMultiplyAdd(x.V, y.V, addend.V));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static SparseV1 Add(SparseV1 x, SparseV1 y) => new(x.V + y.V);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(SparseV1 x) => x.V;
}
