namespace Condense.Generators.Models;

/// <summary>Mirrors <c>Condense.Compression.LayerKind</c> (the runtime is not referenced by the generator).</summary>
internal enum LayerKind
{
    Linear = 0,
    Conv2d = 1,
}

/// <summary>Mirrors <c>Condense.Compression.LayerTechnique</c> and <c>Condense.Catalogue.StorageTechnique</c> (same values).</summary>
internal enum LayerTechnique
{
    Dense = 0,
    Quantize = 1,
    LowRank = 2,
    QuantizeWithLowRankCorrection = 3,
    SemiStructuredSparse = 4,
    UnstructuredSparse = 5,
    MixedPrecision = 6,
}

/// <summary>What a member of the model contributes to its layer registry.</summary>
internal enum MemberKind
{
    /// <summary>A Linear or Conv2d.</summary>
    Layer = 0,
    /// <summary>A field or property whose type is itself a [Compressible] model.</summary>
    Nested = 1,
    /// <summary>An array of [Compressible] models with a length known at build time.</summary>
    Array = 2,
    /// <summary>An array of Linear or Conv2d with a length known at build time: one layer per element, <c>heads[0]</c>, ...</summary>
    LayerArray = 3,
}

/// <summary>One member of the model that holds layers, in declaration order.</summary>
/// <param name="Name">The member name as a path segment.</param>
/// <param name="AccessName">The member name as written in C# (escaped with <c>@</c> when it is a keyword).</param>
/// <param name="LayerCount">Layers of the member (per block for an array).</param>
/// <param name="ArrayLength">Blocks of an array, else 0.</param>
/// <param name="FirstLayer">Index of the member's first layer in the flattened plan.</param>
internal sealed record MemberSpec(MemberKind Kind, string Name, string AccessName, bool IsNullable, int LayerCount, int ArrayLength, int FirstLayer);

/// <summary>
/// A member that holds layers outside the compression plan (LayerNorm, Embedding, a user's Layer subclass) or a
/// nested model that has some: listed by the generated <c>ParameterLayers</c>, trained, saved and loaded dense.
/// </summary>
/// <param name="Kind">Layer (one layer), LayerArray, Nested or Array (of nested models).</param>
/// <param name="ArrayLength">Elements of an array, else 0.</param>
internal sealed record ParameterMemberSpec(MemberKind Kind, string Name, string AccessName, bool IsNullable, int ArrayLength);

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
/// <param name="Layers">Every layer, flattened to full paths (<c>blocks[3].mlp.up</c>), in declaration order.</param>
/// <param name="Members">The members that hold those layers: direct layers, nested models, arrays of nested models.</param>
/// <param name="CanGenerate">False when the plan has errors: the generator then emits only throwing members (<see cref="ModelSpec.InvalidPlan"/>), or nothing for a class that is not partial.</param>
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
    int OnIncompatible,
    int SubspaceDimension,
    EquatableArray<int> MixedPrecisionBits,
    double AverageBits,
    bool HasParameterlessConstructor,
    EquatableArray<LayerSpec> Layers,
    EquatableArray<MemberSpec> Members,
    bool CanGenerate,
    EquatableArray<DiagnosticInfo> Diagnostics)
{
    /// <summary>
    /// Set when the plan has errors but the class can still be extended: the generator then emits the same members,
    /// throwing this message, so that the CND error is the only error the user sees (no CS1061 on Compress).
    /// </summary>
    public InvalidPlanSpec? InvalidPlan { get; init; }

    /// <summary>Members holding layers outside the plan, in declaration order (empty for most models: nothing extra is generated then).</summary>
    public EquatableArray<ParameterMemberSpec> ParameterMembers { get; init; } = EquatableArray<ParameterMemberSpec>.Empty;

    /// <summary>[Subspace(Projection = ...)] on the class (mirrors <c>Condense.SubspaceProjection</c>).</summary>
    public int SubspaceProjection { get; init; }

    /// <summary>[Subspace(Seed = ...)] on the class.</summary>
    public ulong SubspaceSeed { get; init; }

    /// <summary>The layers outside every per-layer subspace train (<c>UncoveredLayers.Trained</c>) rather than stay frozen.</summary>
    public bool SubspaceOtherLayersTrained { get; init; }

    /// <summary>The model declares <c>Tensor Forward(Tensor)</c>: <c>Reparameterize</c> and <c>LoadSubspace</c> then use it.</summary>
    public bool HasForward { get; init; }

    /// <summary>The model declares <c>[Subspace]</c>, on the class or on some layer: it gets <c>Reparameterize</c> and <c>LoadSubspace</c>.</summary>
    public bool HasSubspace
    {
        get
        {
            if (SubspaceDimension > 0) return true;
            foreach (var layer in Layers)
                if (layer.SubspaceDimension > 0) return true;
            return false;
        }
    }

    /// <summary>4 bytes per coordinate of every declared subspace: the payload of a saved subspace model.</summary>
    public long SubspaceCoordinateBytes
    {
        get
        {
            long coordinates = SubspaceDimension;
            foreach (var layer in Layers) coordinates += layer.SubspaceDimension;
            return 4 * coordinates;
        }
    }

    /// <summary>Sum of the layers' bytes once compressed.</summary>
    public long PlannedBytes
    {
        get
        {
            // Saturating, never wrapping: a sum past long.MaxValue must still exceed any budget.
            long total = 0;
            foreach (var layer in Layers) total = Condense.Catalogue.KernelCatalogue.SaturatingAdd(total, layer.BytesAfter);
            return total;
        }
    }

    /// <summary>Some layer's shape is only known at run time (CND0006): the generated code resolves the plan first.</summary>
    public bool HasUnknownShapes
    {
        get
        {
            foreach (var layer in Layers)
                if (!layer.ShapeKnown) return true;
            return false;
        }
    }

    /// <summary>Some layer prunes with Scope = Global: Compress chooses their kept weights together.</summary>
    public bool HasGlobalSparsity
    {
        get
        {
            foreach (var layer in Layers)
                if (layer.GlobalSparsity) return true;
            return false;
        }
    }

    /// <summary>Some layer declares a gradual pruning schedule: the model gets <c>CreatePruningSchedule()</c>.</summary>
    public bool HasPruningSchedule
    {
        get
        {
            foreach (var layer in Layers)
                if (layer.PruneEndStep > 0) return true;
            return false;
        }
    }

    /// <summary>Some member is a nested model, an array of them or an array of layers: Layers is then built as a list, with run-time checks.</summary>
    public bool HasNestedModels
    {
        get
        {
            foreach (var member in Members)
                if (member.Kind != MemberKind.Layer) return true;
            return false;
        }
    }

    /// <summary>Sum of the layers' float32 bytes.</summary>
    public long DenseBytes
    {
        get
        {
            long total = 0;
            foreach (var layer in Layers) total = Condense.Catalogue.KernelCatalogue.SaturatingAdd(total, layer.BytesBefore);
            return total;
        }
    }
}

/// <summary>What the generator needs to emit the members of a model whose plan has errors.</summary>
/// <param name="Message">The build errors, as the members throw them.</param>
/// <param name="IsModule">The class derives from Module, so Layers is an override.</param>
/// <param name="ConflictingMembers">Generated member names the class already declares (CND0009): left out.</param>
internal sealed record InvalidPlanSpec(string Message, bool IsModule, EquatableArray<string> ConflictingMembers);

/// <summary>One type around the model, e.g. <c>partial class Outer</c>.</summary>
/// <param name="Keyword">class, struct, record, record struct or interface.</param>
/// <param name="Name">The name with its type parameter list, e.g. <c>Outer&lt;T&gt;</c>.</param>
internal sealed record ContainingTypeSpec(string Keyword, string Name);

/// <summary>One layer of the plan, with its exact byte counts computed from the kernel catalogue.</summary>
/// <param name="Path">The layer's full path in the model, e.g. <c>hidden1</c> or <c>blocks[3].mlp.up</c>.</param>
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
    long BytesAfter,
    int Rank = 0,
    int SparsityN = 0,
    int SparsityM = 0,
    double SparsityFraction = 0,
    int SubspaceDimension = 0,
    bool GlobalSparsity = false,
    double LayerFloor = 0,
    int PruneStartStep = 0,
    int PruneEndStep = 0,
    int PruneFrequency = 0,
    int SubspaceProjection = 0,
    ulong SubspaceSeed = 0,
    int QuantizationMethod = 0,
    int LowRankMethod = 0)
{
    /// <summary>
    /// Data-aware (mirrors <c>LayerPlan.NeedsCalibration</c>): GPTQ on a quantized layer, activation-aware SVD on a
    /// low-rank one. The generated Compress records this layer's inputs first.
    /// </summary>
    public bool NeedsCalibration =>
        (Technique is LayerTechnique.Quantize or LayerTechnique.QuantizeWithLowRankCorrection && QuantizationMethod == 1)
        || (Technique == LayerTechnique.LowRank && LowRankMethod == 1);

    /// <summary>The data-aware method as text (<c>GPTQ</c>, <c>activation-aware SVD</c>), the same as <c>LayerPlan.CalibratedMethodText</c>.</summary>
    public string? CalibratedMethodText => !NeedsCalibration ? null : Technique == LayerTechnique.LowRank ? "activation-aware SVD" : "GPTQ";

    /// <summary>Stored bytes of the weight alone (bias excluded), as planned.</summary>
    public long WeightBytesAfter => BytesAfter - (HasBias ? (long)OutFeatures * Condense.Catalogue.KernelCatalogue.Float32Bytes : 0);

    /// <summary>Number of weights (bias excluded).</summary>
    public long WeightCount => (long)OutFeatures * InFeatures;

    /// <summary>The weight's shape as text: <c>256x784</c>, or <c>16x3x3x3</c> for a Conv2d.</summary>
    public string ShapeText => !ShapeKnown ? "unknown"
        : Kind == LayerKind.Conv2d && KernelSize > 0
        ? Format(OutFeatures) + "x" + Format(InFeatures / (KernelSize * KernelSize)) + "x" + Format(KernelSize) + "x" + Format(KernelSize)
        : Format(OutFeatures) + "x" + Format(InFeatures);

    /// <summary>The technique as text, the same as <c>LayerPlan.TechniqueText</c> (tests compare them): <c>int4 g64 sym</c> or <c>fp32</c>.</summary>
    public string TechniqueText
    {
        get
        {
            string quantized = "int" + Format(Bits) + " " + (GroupSize == 0 ? "per-row" : "g" + Format(GroupSize)) + " " + (Symmetric ? "sym" : "asym");
            string text = Technique switch
            {
                LayerTechnique.Quantize => quantized,
                LayerTechnique.LowRank => "low-rank r" + Format(Rank),
                LayerTechnique.QuantizeWithLowRankCorrection => quantized + " + low-rank r" + Format(Rank),
                LayerTechnique.SemiStructuredSparse => Format(SparsityN) + ":" + Format(SparsityM) + " sparse " + (Bits == 0 ? "fp32" : quantized),
                LayerTechnique.UnstructuredSparse => "csr " + SparsityFraction.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture) + " sparse" + (GlobalSparsity ? " global" : ""),
                LayerTechnique.MixedPrecision => "mixed precision (from int" + Format(Bits) + ")",
                _ => "fp32",
            };
            return SubspaceDimension > 0 ? text + " subspace d" + Format(SubspaceDimension) : text;
        }
    }

    private static string Format(int value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
