using Microsoft.CodeAnalysis;

namespace Condense.Generators.Diagnostics;

/// <summary>
/// Every diagnostic Condense reports, shared by the analyzers and the generator. IDs are sequential and never
/// reused; each one has a page at <c>docs/diagnostics/CNDxxxx.md</c> and a line in AnalyzerReleases.Unshipped.md.
/// </summary>
internal static class DiagnosticDescriptors
{
    private const string HelpLinkBase = "https://github.com/condense-dotnet/condense/blob/main/docs/diagnostics/";
    private const string Usage = "Usage";
    private const string Quantization = "Quantization";
    private const string Budget = "Budget";

    public const string ModelNotPartialId = "CND0001";
    public const string ModelNotModuleId = "CND0002";
    public const string UnsupportedBitsId = "CND0003";
    public const string UnsupportedGroupSizeId = "CND0004";
    public const string KeepDenseWithCompressionId = "CND0005";
    public const string ShapeNotConstantId = "CND0006";
    public const string BudgetExceededId = "CND0007";
    public const string AttributeOnNonLayerId = "CND0008";
    public const string GeneratedMemberConflictId = "CND0009";

    /// <summary>CND0001. Message: "Model '{0}' must be partial so Condense can generate its code: add 'partial' to the declaration of '{1}'".</summary>
    public static readonly DiagnosticDescriptor ModelNotPartial = Create(
        ModelNotPartialId, Usage, DiagnosticSeverity.Error,
        "[Compressible] model must be partial",
        "Model '{0}' must be partial so Condense can generate its code: add 'partial' to the declaration of '{1}'",
        "The generator adds the plan, the layer registry, Compress, Save and Load to the model class itself, which needs the class and every type that contains it to be declared partial.");

    /// <summary>CND0002. Message: "Model '{0}' must derive from Condense.Nn.Module: change its declaration to 'partial class {0} : Module'".</summary>
    public static readonly DiagnosticDescriptor ModelNotModule = Create(
        ModelNotModuleId, Usage, DiagnosticSeverity.Error,
        "[Compressible] model must derive from Condense.Nn.Module",
        "Model '{0}' must derive from Condense.Nn.Module: change its declaration to 'partial class {0} : Module'",
        "The generated layer registry overrides Module.Layers, which parameters, initialization, Save and Load build on.");

    /// <summary>CND0003. Message: "Layer '{0}' cannot be quantized: {1}".</summary>
    public static readonly DiagnosticDescriptor UnsupportedBits = Create(
        UnsupportedBitsId, Quantization, DiagnosticSeverity.Error,
        "Bit width has no quantization kernel",
        "Layer '{0}' cannot be quantized: {1}",
        "Condense only plans bit widths that its kernel catalogue has packed kernels for.");

    /// <summary>CND0004. Message: "Layer '{0}' cannot be quantized: {1}".</summary>
    public static readonly DiagnosticDescriptor UnsupportedGroupSize = Create(
        UnsupportedGroupSizeId, Quantization, DiagnosticSeverity.Error,
        "Group size has no kernel or does not divide the layer's input size",
        "Layer '{0}' cannot be quantized: {1}",
        "A group size must be one the kernel catalogue supports, and must divide the layer's input size (a Conv2d's InChannels x KernelSize x KernelSize) so that every group is full.");

    /// <summary>CND0005. Message: "Layer '{0}' is marked [KeepDense] and [{1}]: keep one of the two attributes".</summary>
    public static readonly DiagnosticDescriptor KeepDenseWithCompression = Create(
        KeepDenseWithCompressionId, Usage, DiagnosticSeverity.Error,
        "[KeepDense] combined with a compression attribute",
        "Layer '{0}' is marked [KeepDense] and [{1}]: keep one of the two attributes",
        "[KeepDense] states that a layer stays float32, which contradicts any compression attribute on the same layer.");

    /// <summary>CND0006. Message: "The shape of layer '{0}' is not known at compile time: {1}; Condense generates no code for model '{2}' until every layer's shape is a constant".</summary>
    public static readonly DiagnosticDescriptor ShapeNotConstant = Create(
        ShapeNotConstantId, Usage, DiagnosticSeverity.Warning,
        "Layer shape is not known at compile time",
        "The shape of layer '{0}' is not known at compile time: {1}; Condense generates no code for model '{2}' until every layer's shape is a constant",
        "Condense reads each layer's shape from its initializer ('new Linear(784, 256)', 'new(inFeatures: Hidden * 4, outFeatures: Hidden)'); every argument must be a compile-time constant so that the plan and its exact byte counts can be checked at build time.");

    /// <summary>CND0007. Message: "Model '{0}' exceeds its budget: the plan needs {1}, but {2} allows {3}; the largest layers are {4}. Quantize more layers, use fewer bits, or raise {2}".</summary>
    public static readonly DiagnosticDescriptor BudgetExceeded = Create(
        BudgetExceededId, Budget, DiagnosticSeverity.Error,
        "Compression plan exceeds the model's budget",
        "Model '{0}' exceeds its budget: the plan needs {1}, but {2} allows {3}; the largest layers are {4}. Quantize more layers, use fewer bits, or raise {2}",
        "MaxBytes and MaxBitsPerWeight on [Compressible] are checked against the plan's exact byte count (packed weights, scales, zero points and biases) at build time.");

    /// <summary>CND0008. Message: "[{0}] on '{1}' has no effect: '{1}' is {2}, not a non-static Condense.Nn.Linear or Condense.Nn.Conv2d field or property; remove the attribute or change the member".</summary>
    public static readonly DiagnosticDescriptor AttributeOnNonLayer = Create(
        AttributeOnNonLayerId, Usage, DiagnosticSeverity.Error,
        "Compression attribute on a member that is not a layer",
        "[{0}] on '{1}' has no effect: '{1}' is {2}, not a non-static Condense.Nn.Linear or Condense.Nn.Conv2d field or property; remove the attribute or change the member",
        "Compression attributes only apply to the Linear and Conv2d layers of a [Compressible] model.");

    /// <summary>CND0009 (reported by the generator). Message: "Model '{0}' already declares '{1}', which Condense generates: rename or remove it".</summary>
    public static readonly DiagnosticDescriptor GeneratedMemberConflict = Create(
        GeneratedMemberConflictId, Usage, DiagnosticSeverity.Error,
        "Model declares a member that Condense generates",
        "Model '{0}' already declares '{1}', which Condense generates: rename or remove it",
        "The generator adds Plan, PlannedBytes, DenseBytes, Layers, Compress, Save and Load to every [Compressible] model; it cannot generate them next to a member with the same name.");

    private static DiagnosticDescriptor Create(string id, string category, DiagnosticSeverity severity, string title, string message, string description) =>
        new(id, title, message, category, severity, isEnabledByDefault: true, description, HelpLinkBase + id + ".md");
}
