using System.Reflection;
using Condense.Kernels;
using Condense.Kernels.Jit;
using Condense.Quantization;

namespace Condense.Tests.Kernels;

/// <summary>
/// Saves every process-wide knob of the kernel classes that tests switch (every static property with a getter and a
/// setter, public or internal, of <see cref="Classes"/>, and <see cref="WorkerPool.Shared"/>'s thread count) and puts
/// them all back on Dispose: <c>using var knobs = KernelKnobs.Save();</c> in place of a save and a finally per knob,
/// so a test that sets a knob cannot leak it into later tests. Restores run in a fixed order (<see cref="Classes"/>'
/// order, then property name, ordinal; the pool's degree last); a setter that drops compiled kernels may drop them.
/// Thread-static knobs (VnniSmallBatch4/8.DisabledOverride, Int8Gemm's overrides) are saved and restored on the calling thread.
/// The knobs are process-wide: this is safe because AssemblyInfo.cs runs test classes one at a time (no parallel tests).
/// </summary>
internal sealed class KernelKnobs : IDisposable
{
    /// <summary>The classes whose static knobs are saved.</summary>
    internal static readonly Type[] Classes =
        [typeof(KernelOptions), typeof(WorkerPool), typeof(VnniGemv), typeof(VnniGemvLowBit), typeof(VnniSmallBatch4), typeof(VnniSmallBatch8), typeof(Int8Gemm), typeof(Int8MatMul)];

    /// <summary>The static knobs, in restore order.</summary>
    internal static readonly PropertyInfo[] Knobs = Classes.SelectMany(KnobsOf).ToArray();

    private static IEnumerable<PropertyInfo> KnobsOf(Type type) => type
        .GetProperties(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
        .Where(p => p.GetMethod is { IsPrivate: false } && p.SetMethod is { IsPrivate: false } && p.GetIndexParameters().Length == 0)
        .OrderBy(p => p.Name, StringComparer.Ordinal);

    private readonly object?[] _values;
    private readonly int _poolDegree;
    private bool _disposed;

    private KernelKnobs()
    {
        _values = Knobs.Select(p => p.GetValue(null)).ToArray();
        _poolDegree = WorkerPool.Shared.MaxDegreeOfParallelism;
    }

    /// <summary>Snapshots every knob; Dispose restores them.</summary>
    internal static KernelKnobs Save() => new();

    /// <summary>The knob values as saved, by "Class.Property" (and "WorkerPool.Shared.MaxDegreeOfParallelism").</summary>
    internal IReadOnlyDictionary<string, object?> Saved => Named(_values, _poolDegree);

    /// <summary>The current values, keyed as <see cref="Saved"/>.</summary>
    internal static IReadOnlyDictionary<string, object?> Current() =>
        Named(Knobs.Select(p => p.GetValue(null)).ToArray(), WorkerPool.Shared.MaxDegreeOfParallelism);

    private static Dictionary<string, object?> Named(object?[] values, int poolDegree)
    {
        var named = new Dictionary<string, object?>();
        for (int i = 0; i < Knobs.Length; i++) named.Add($"{Knobs[i].DeclaringType!.Name}.{Knobs[i].Name}", values[i]);
        named.Add("WorkerPool.Shared.MaxDegreeOfParallelism", poolDegree);
        return named;
    }

    /// <summary>Sets every knob back to its saved value (all of them, in <see cref="Knobs"/>' order).</summary>
    internal void Restore()
    {
        for (int i = 0; i < Knobs.Length; i++) Knobs[i].SetValue(null, _values[i]);
        WorkerPool.Shared.MaxDegreeOfParallelism = _poolDegree;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Restore();
    }
}
