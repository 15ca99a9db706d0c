using System.Globalization;
using System.Text;
using Condense.Compression;

namespace Condense.MixedPrecision;

/// <summary>The bits chosen for one <c>[MixedPrecision]</c> layer.</summary>
/// <param name="Path">The layer's path.</param>
/// <param name="LayerIndex">Its index in the plan.</param>
/// <param name="Bits">The chosen bit width (one symmetric scale per row).</param>
/// <param name="BytesAfter">Exact bytes of the layer once compressed at <paramref name="Bits"/> (bias included).</param>
/// <param name="Omega">The layer's sensitivity at <paramref name="Bits"/>; NaN for an allocation given without a measurement.</param>
/// <param name="Trace">The Hutchinson estimate of the trace of the layer's Hessian block; NaN without a trace measurement.</param>
/// <param name="GroupSize">The chosen group size (0 = one scale per row).</param>
public sealed record LayerBitChoice(string Path, int LayerIndex, int Bits, long BytesAfter, double Omega, double Trace, int GroupSize = 0)
{
    /// <summary>The format in short: the bits, and the group size when there is one (<c>3</c>, <c>3 g32</c>).</summary>
    public string FormatText => GroupSize == 0 ? Bits.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{Bits} g{GroupSize}");
}

/// <summary>
/// A bit allocation of a plan's <c>[MixedPrecision]</c> layers: the chosen bits per layer, the predicted bytes of the
/// compressed model (exact: Compress checks that the stored weights take exactly these bytes), and the way back to
/// source: <see cref="OverrideAttributes"/> to paste, or <see cref="WritePartialClass"/> for a file the next build
/// checks like any other plan.
/// </summary>
public sealed class MixedPrecisionSolution
{
    internal MixedPrecisionSolution(CompressionPlan plan, string budget, SensitivityLoss? loss, SensitivityMethod method, IReadOnlyList<LayerBitChoice> layers)
    {
        Method = method;
        ModelName = plan.ModelName;
        Budget = budget;
        Loss = loss;
        Layers = layers;
        var chosen = layers.ToDictionary(l => l.LayerIndex);
        PredictedBytes = plan.Layers.Select((l, i) => chosen.TryGetValue(i, out var c) ? c.BytesAfter : l.BytesAfter).Sum();
        long weights = layers.Sum(l => plan.Layers[l.LayerIndex].WeightCount);
        long weightBytes = layers.Sum(l => l.BytesAfter - plan.Layers[l.LayerIndex].BiasBytes);
        AverageBits = weights == 0 ? 0 : weightBytes * 8.0 / weights;
        TotalOmega = layers.Sum(l => l.Omega);
    }

    /// <summary>The model class's name.</summary>
    public string ModelName { get; }

    /// <summary>The budget the allocation meets, e.g. <c>MaxBytes = 120,000</c>.</summary>
    public string Budget { get; }

    /// <summary>The loss whose Hessian ranked the layers; null for an allocation given in the options.</summary>
    public SensitivityLoss? Loss { get; }

    /// <summary>How the sensitivities were obtained (meaningful when <see cref="Loss"/> is not null).</summary>
    public SensitivityMethod Method { get; }

    /// <summary>One entry per <c>[MixedPrecision]</c> layer, in plan order.</summary>
    public IReadOnlyList<LayerBitChoice> Layers { get; }

    /// <summary>Exact bytes of the whole compressed model (every planned layer, biases included).</summary>
    public long PredictedBytes { get; }

    /// <summary>Stored bits per weight of the <c>[MixedPrecision]</c> layers (scales included, biases excluded).</summary>
    public double AverageBits { get; }

    /// <summary>The objective the allocation minimizes: the sum of the chosen Omega (NaN without a measurement).</summary>
    public double TotalOmega { get; }

    /// <summary>The chosen bits by layer path (what <see cref="MixedPrecisionOptions.Allocation"/> takes).</summary>
    public IReadOnlyDictionary<string, int> BitsByPath => Layers.ToDictionary(l => l.Path, l => l.Bits, StringComparer.Ordinal);

    /// <summary>The chosen group sizes by layer path, 0 = one scale per row (what <see cref="MixedPrecisionOptions.AllocationGroupSizes"/> takes).</summary>
    public IReadOnlyDictionary<string, int> GroupSizesByPath => Layers.ToDictionary(l => l.Path, l => l.GroupSize, StringComparer.Ordinal);

    /// <summary>
    /// The chosen plan as attribute lines to paste on the model class, one <c>[Override("path", Bits = b)]</c> per layer.
    /// With every <c>[MixedPrecision]</c> layer overridden, the build checks these bits and the budget like any
    /// fixed plan, and Compress no longer needs calibration data.
    /// </summary>
    public string OverrideAttributes => string.Join("\n", Layers.Select(l =>
        string.Create(CultureInfo.InvariantCulture, $"[global::Condense.Override({Literal(l.Path)}, Bits = {l.Bits}{(l.GroupSize == 0 ? "" : $", GroupSize = {l.GroupSize}")})]")));

    /// <summary>
    /// A C# file declaring another part of <paramref name="modelType"/> (same namespace, same containing types) that
    /// carries <see cref="OverrideAttributes"/>: C# merges the attributes of partial declarations, so adding the file
    /// to the project fixes the chosen bits, and the generator checks and sizes them at the next build.
    /// </summary>
    /// <param name="modelType">The model class (<c>typeof(MyModel)</c>); it and its containing types are partial.</param>
    public string ToPartialClass(Type modelType)
    {
        ArgumentNullException.ThrowIfNull(modelType);
        if (modelType.Name.Split('`')[0] != ModelName)
            throw new ArgumentException($"This allocation is for model '{ModelName}', not '{modelType.Name}'.", nameof(modelType));
        var chain = new List<Type>();
        for (var t = modelType; t is not null; t = t.DeclaringType) chain.Insert(0, t);
        var sb = new StringBuilder();
        sb.Append("// Written by Condense: the bits [MixedPrecision] chose for ").Append(ModelName).Append(string.Create(CultureInfo.InvariantCulture,
            $" ({Budget}; {PredictedBytes:N0} bytes, {AverageBits:0.###} bits per weight over its layers)")).Append(".\n");
        sb.Append("// With this file in the project the build checks these bits like any other plan; delete it to choose again.\n");
        if (Loss is { } loss)
            sb.Append(Method switch
            {
                SensitivityMethod.MeasuredLoss => "// Sensitivity: measured increase of the ",
                SensitivityMethod.HessianQuadratic => "// Sensitivity: 1/2 dW^T H dW along each format's quantization error, H the Hessian of the ",
                _ => "// Sensitivity: Hessian trace of the ",
            }).Append(LossText(loss)).Append(Method switch
            {
                SensitivityMethod.MeasuredLoss => " per layer and width",
                SensitivityMethod.HessianQuadratic => "",
                _ => " (HAWQ-V2)",
            }).Append(", solved as an exact knapsack.\n");
        int indent = 0;
        if (!string.IsNullOrEmpty(modelType.Namespace))
        {
            sb.Append("namespace ").Append(modelType.Namespace).Append("\n{\n");
            indent++;
        }
        for (int i = 0; i < chain.Count; i++)
        {
            var t = chain[i];
            if (i == chain.Count - 1)
                foreach (var line in OverrideAttributes.Split('\n')) sb.Append(' ', 4 * indent).Append(line).Append('\n');
            sb.Append(' ', 4 * indent).Append("partial ").Append(Keyword(t)).Append(' ').Append(DeclaredName(t)).Append('\n');
            sb.Append(' ', 4 * indent).Append("{\n");
            indent++;
        }
        for (int i = indent - 1; i >= 0; i--) sb.Append(' ', 4 * i).Append("}\n");
        return sb.ToString();
    }

    /// <summary>Writes <see cref="ToPartialClass"/> to <paramref name="path"/> (e.g. <c>MyModel.MixedPrecision.cs</c> beside the model).</summary>
    public void WritePartialClass(Type modelType, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        File.WriteAllText(path, ToPartialClass(modelType));
    }

    /// <summary>A table: per layer the chosen bits, bytes, trace and Omega; then the predicted total and the budget.</summary>
    public override string ToString()
    {
        var inv = CultureInfo.InvariantCulture;
        int w = Math.Max(5, Layers.Count == 0 ? 5 : Layers.Max(l => l.Path.Length));
        var sb = new StringBuilder();
        sb.Append(inv, $"{"layer".PadRight(w)}  {"bits",7} {"bytes",12} {"trace",12} {"omega",12}\n");
        foreach (var l in Layers)
            sb.Append(inv, $"{l.Path.PadRight(w)}  {l.FormatText,7} {l.BytesAfter,12:N0} {l.Trace,12:G4} {l.Omega,12:G4}\n");
        sb.Append(inv, $"predicted bytes {PredictedBytes:N0} ({AverageBits:0.###} bits per weight over the mixed layers), budget {Budget}\n");
        return sb.ToString();
    }

    private static string LossText(SensitivityLoss loss) => loss switch
    {
        SensitivityLoss.CrossEntropy => "cross-entropy on the labelled calibration data",
        SensitivityLoss.OutputKl => "KL divergence to the float32 model's outputs on the calibration data",
        _ => "squared distance to the float32 model's outputs on the calibration data",
    };

    // Records are told apart by their compiler-generated clone method; a trimmed app that removed it would get
    // "class" for a record container, which the compiler then reports at once: the file is source, not run.
    [System.Diagnostics.CodeAnalysis.UnconditionalSuppressMessage("Trimming", "IL2070", Justification = "Only picks the declaration keyword of a file written for the developer's source tree.")]
    private static string Keyword(Type t) =>
        t.IsValueType ? (t.GetMethod("<Clone>$") is not null || t.GetMethod("PrintMembers", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance) is not null ? "record struct" : "struct")
        : t.GetMethod("<Clone>$") is not null ? "record" : t.IsInterface ? "interface" : "class";

    private static string DeclaredName(Type t)
    {
        string name = t.Name.Split('`')[0];
        // Generic arguments declared by this type itself (not by its containing types).
        int inherited = t.DeclaringType?.GetGenericArguments().Length ?? 0;
        var own = t.GetGenericArguments().Skip(inherited).Select(a => a.Name).ToArray();
        return own.Length == 0 ? name : name + "<" + string.Join(", ", own) + ">";
    }

    private static string Literal(string text) => "\"" + text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
