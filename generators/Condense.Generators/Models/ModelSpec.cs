namespace Condense.Generators.Models;

/// <summary>Mirrors <c>Condense.Compression.LayerKind</c> (the runtime is not referenced by the generator).</summary>
internal enum LayerKind
{
    Linear = 0,
    Conv2d = 1,
}

/// <summary>Mirrors <c>Condense.Compression.LayerTechnique</c>.</summary>
internal enum LayerTechnique
{
    Dense = 0,
    Quantize = 1,
}

/// <summary>
/// Everything the emitter needs to know about one <c>[Compressible]</c> model.
/// </summary>
/// <remarks>
/// This is a pipeline model: it must stay equatable (primitives, strings, enums, <see cref="EquatableArray{T}"/>)
/// so the incremental generator can cache it. Never put an ISymbol, SyntaxNode, Location, SemanticModel or
/// Compilation in it (IncrementalityTests walks it to make sure).
/// </remarks>
/// <param name="Namespace">The namespace without <c>global::</c>, or null for the global namespace.</param>
/// <param name="TypeName">The model's simple name, e.g. <c>FashionMlp</c>.</param>
/// <param name="TypeParameters">The type parameter list as written in a declaration, e.g. <c>&lt;T&gt;</c>, or empty.</param>
/// <param name="HintName">The generated file's hint name, e.g. <c>Samples.FashionMlp.g.cs</c>.</param>
/// <param name="Accessibility">The model's declared accessibility as C# keywords, e.g. <c>public</c>.</param>
/// <param name="ContainingTypes">Outermost first.</param>
/// <param name="HasParameterlessConstructor">Whether <c>Load</c> can create the model with <c>new T()</c>.</param>
/// <param name="CanGenerate">False when the plan has errors or unknown shapes: the generator then emits nothing.</param>
/// <param name="Diagnostics">The diagnostics the generator itself reports ("cannot generate" cases only).</param>
internal sealed record ModelSpec(
    string? Namespace,
    string TypeName,
    string TypeParameters,
    string HintName,
    string Accessibility,
    EquatableArray<ContainingTypeSpec> ContainingTypes,
    long MaxBytes,
    double MaxBitsPerWeight,
    bool HasParameterlessConstructor,
    EquatableArray<LayerSpec> Layers,
    bool CanGenerate,
    EquatableArray<DiagnosticInfo> Diagnostics)
{
    /// <summary>Sum of the layers' bytes once compressed.</summary>
    public long PlannedBytes
    {
        get
        {
            long total = 0;
            foreach (var layer in Layers) total += layer.BytesAfter;
            return total;
        }
    }

    /// <summary>Sum of the layers' float32 bytes.</summary>
    public long DenseBytes
    {
        get
        {
            long total = 0;
            foreach (var layer in Layers) total += layer.BytesBefore;
            return total;
        }
    }
}

/// <summary>One type around the model, e.g. <c>partial class Outer</c>.</summary>
/// <param name="Keyword">class, struct, record, record struct or interface.</param>
/// <param name="Name">The name with its type parameter list, e.g. <c>Outer&lt;T&gt;</c>.</param>
internal sealed record ContainingTypeSpec(string Keyword, string Name);

/// <summary>One layer of the plan, with its exact byte counts computed from the kernel catalogue.</summary>
/// <param name="Path">The layer's path in the model (its member name).</param>
/// <param name="AccessName">The member name as written in C# (escaped with <c>@</c> when it is a keyword).</param>
/// <param name="IsNullable">The member's type is annotated nullable, so the emitter adds <c>!</c>.</param>
/// <param name="ShapeKnown">False when the shape could not be read at compile time (CND0006); sizes are then 0.</param>
internal sealed record LayerSpec(
    string Path,
    string AccessName,
    bool IsNullable,
    LayerKind Kind,
    bool ShapeKnown,
    int OutFeatures,
    int InFeatures,
    int KernelSize,
    bool HasBias,
    LayerTechnique Technique,
    int Bits,
    int GroupSize,
    bool Symmetric,
    long BytesBefore,
    long BytesAfter)
{
    /// <summary>Stored bytes of the weight alone (bias excluded), as planned.</summary>
    public long WeightBytesAfter => BytesAfter - (HasBias ? (long)OutFeatures * Condense.Catalogue.KernelCatalogue.Float32Bytes : 0);

    /// <summary>Number of weights (bias excluded).</summary>
    public long WeightCount => (long)OutFeatures * InFeatures;

    /// <summary>The weight's shape as text: <c>256x784</c>, or <c>16x3x3x3</c> for a Conv2d.</summary>
    public string ShapeText => Kind == LayerKind.Conv2d && KernelSize > 0
        ? Format(OutFeatures) + "x" + Format(InFeatures / (KernelSize * KernelSize)) + "x" + Format(KernelSize) + "x" + Format(KernelSize)
        : Format(OutFeatures) + "x" + Format(InFeatures);

    /// <summary>The technique as text, the same as <c>LayerPlan.TechniqueText</c>: <c>int4 g64 sym</c> or <c>fp32</c>.</summary>
    public string TechniqueText => Technique == LayerTechnique.Quantize
        ? "int" + Format(Bits) + " " + (GroupSize == 0 ? "per-row" : "g" + Format(GroupSize)) + " " + (Symmetric ? "sym" : "asym")
        : "fp32";

    private static string Format(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
