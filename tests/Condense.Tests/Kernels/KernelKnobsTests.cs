using System.Reflection;
using Condense.Kernels;

namespace Condense.Tests.Kernels;

public class KernelKnobsTests
{
    /// <summary>Sets a knob to a value its setter takes that differs from <paramref name="value"/>.</summary>
    private static void Change(PropertyInfo knob, object? value)
    {
        var type = knob.PropertyType;
        IEnumerable<object?> candidates =
            type == typeof(bool) ? [!(bool)value!] :
            type == typeof(int) ? new[] { 1, -1, 64, -64, 2, -2, 3 }.Select(d => (object?)((int)value! + d)).Concat(new object?[] { 1, 2, 4, 64 }) :
            type == typeof(long) ? [(long)value! + 1] :
            type.IsEnum ? Enum.GetValues(type).Cast<object?>() :
            type == typeof(Action) ? [new Action(() => { })] :
            throw new InvalidOperationException($"{knob.DeclaringType!.Name}.{knob.Name}: no test value for {type}");
        foreach (var candidate in candidates.Where(c => !Equals(c, value)))
        {
            try
            {
                knob.SetValue(null, candidate);
                return;
            }
            catch (TargetInvocationException e) when (e.InnerException is ArgumentOutOfRangeException) { }
        }
        throw new InvalidOperationException($"{knob.DeclaringType!.Name}.{knob.Name}: no other value taken");
    }

    [Fact]
    public void Save_restores_every_knob_changed_in_its_scope_also_when_the_scope_throws()
    {
        // The knobs the kernel tests set are all covered.
        var names = KernelKnobs.Knobs.Select(p => $"{p.DeclaringType!.Name}.{p.Name}").ToHashSet();
        foreach (var name in new[] { "KernelOptions.GeneratedCode", "KernelOptions.MaxVectorBits", "KernelOptions.QuantizedActivations",
                     "WorkerPool.TwoEnded", "WorkerPool.WorkerStarting", "VnniGemv.Enabled", "VnniGemv.OwnInt8RowSums", "VnniGemv.StreamingRows",
                     "VnniGemv.CacheResidentBytes", "VnniGemvLowBit.Enabled", "VnniSmallBatch4.DisabledOverride", "VnniSmallBatch4.OwnLaneTree",
                     "VnniSmallBatch8.DisabledOverride" })
            Assert.Contains(name, names);

        var before = KernelKnobs.Current();
        IReadOnlyDictionary<string, object?>? inside = null;
        var thrown = Assert.Throws<InvalidOperationException>((Action)(() =>
        {
            using var knobs = KernelKnobs.Save();
            Assert.Equal(before, knobs.Saved);
            foreach (var knob in KernelKnobs.Knobs) Change(knob, knob.GetValue(null));
            WorkerPool.Shared.MaxDegreeOfParallelism = WorkerPool.Shared.MaxDegreeOfParallelism + 1;
            inside = KernelKnobs.Current();
            throw new InvalidOperationException("thrown inside the scope");
        }));
        Assert.Equal("thrown inside the scope", thrown.Message);
        foreach (var (name, value) in before)
            Assert.False(Equals(value, inside![name]), $"{name} was not changed inside the scope: {value}");
        var after = KernelKnobs.Current();
        foreach (var (name, value) in before)
            Assert.True(Equals(value, after[name]), $"{name}: {after[name]} after the scope, {value} before");

        // Without an exception as well.
        using (KernelKnobs.Save())
        {
            foreach (var knob in KernelKnobs.Knobs) Change(knob, knob.GetValue(null));
            WorkerPool.Shared.MaxDegreeOfParallelism = WorkerPool.Shared.MaxDegreeOfParallelism + 1;
        }
        Assert.Equal(before, KernelKnobs.Current());
    }
}
