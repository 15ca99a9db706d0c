using Condense.Catalogue;
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
    private const string Sparsity = "Sparsity";
    private const string LowRank = "LowRank";
    private const string Combination = "Combination";
    private const string Override = "Override";

    public const string ModelNotPartialId = "CND0001";
    public const string ModelNotModuleId = "CND0002";
    public const string UnsupportedBitsId = "CND0003";
    public const string UnsupportedGroupSizeId = "CND0004";
    public const string KeepDenseWithCompressionId = "CND0005";
    public const string ShapeNotConstantId = "CND0006";
    public const string BudgetExceededId = "CND0007";
    public const string AttributeOnNonLayerId = "CND0008";
    public const string GeneratedMemberConflictId = "CND0009";
    public const string InvalidSparsityPatternId = "CND0010";
    public const string InvalidSparsityFractionId = "CND0011";
    public const string InvalidRankId = "CND0012";
    public const string RankSavesNothingId = "CND0013";
    public const string NoKernelForCombinationId = "CND0014";
    public const string SameFamilyTwiceId = "CND0015";
    public const string MixedPrecisionInfeasibleId = "CND0016";
    public const string MixedPrecisionBudgetNeedsNoCompressionId = "CND0017";
    public const string OverrideMatchesNothingId = "CND0018";
    public const string DuplicateLayerPathId = "CND0019";
    public const string InvalidSubspaceId = "CND0020";
    public const string IncompatibleLayerHandledId = "CND0021";
    public const string OverrideConflictId = "CND0022";
    public const string NestedModelUnresolvableId = "CND0023";
    public const string AttributeOutsideModelId = "CND0024";
    public const string LayerTooLargeId = "CND0025";
    public const string LayersNotRegisteredId = "CND0026";
    public const string InvalidPruningScheduleId = "CND0028";
    public const string InvalidGlobalSparsityId = "CND0029";
    public const string SubspaceSavesLittleId = "CND0030";
    public const string DenseProjectionTooLargeId = "CND0031";
    public const string SubspaceCombinationId = "CND0032";
    public const string SubspaceConflictId = "CND0033";
    public const string CalibrationMissingId = "CND0034";
    public const string CalibrationNeedsForwardId = "CND0035";
    public const string DataAwareMethodInvalidId = "CND0036";
    public const string MixedPrecisionWithoutForwardId = "CND0037";
    public const string MixedPrecisionMissesNestedLayersId = "CND0040";

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
        CatalogueMessages.CannotQuantize,
        "Condense only plans bit widths that its kernel catalogue has packed kernels for.");

    /// <summary>CND0004. Message: "Layer '{0}' cannot be quantized: {1}".</summary>
    public static readonly DiagnosticDescriptor UnsupportedGroupSize = Create(
        UnsupportedGroupSizeId, Quantization, DiagnosticSeverity.Error,
        "Group size has no kernel or does not divide the layer's input size",
        CatalogueMessages.CannotQuantize,
        "A group size must be one the kernel catalogue supports, and must divide the layer's input size (a Conv2d's InChannels x KernelSize x KernelSize) so that every group is full.");

    /// <summary>CND0005. Message: "Layer '{0}' is marked [KeepDense] and [{1}]: keep one of the two attributes".</summary>
    public static readonly DiagnosticDescriptor KeepDenseWithCompression = Create(
        KeepDenseWithCompressionId, Usage, DiagnosticSeverity.Error,
        "[KeepDense] combined with a compression attribute",
        CatalogueMessages.KeepDenseWithOther,
        "[KeepDense] states that a layer stays float32, which contradicts any compression attribute on the same layer.");

    /// <summary>CND0006. Message: "The shape of layer '{0}' is not known at compile time: {1}; model '{2}' checks this layer when Compress runs, with the messages the build would give; give it constant arguments to check it now".</summary>
    public static readonly DiagnosticDescriptor ShapeNotConstant = Create(
        ShapeNotConstantId, Usage, DiagnosticSeverity.Warning,
        "Layer shape is not known at compile time",
        "The shape of layer '{0}' is not known at compile time: {1}; model '{2}' checks this layer when Compress runs, with the messages the build would give; give it constant arguments to check it now",
        "Condense reads each layer's shape from its initializer ('new Linear(784, 256)', 'new(inFeatures: Hidden * 4, outFeatures: Hidden)'). When an argument is not a compile-time constant, the shape-independent checks still run at build time and the rest run in Compress (CompressionPlan.WithShapesFrom), which throws with the same message the analyzer would report.");

    /// <summary>CND0007. Message: "Model '{0}' exceeds its budget: the plan needs {1}, but {2} allows {3}; the largest layers are {4}. Quantize more layers, use fewer bits, or raise {2}".</summary>
    public static readonly DiagnosticDescriptor BudgetExceeded = Create(
        BudgetExceededId, Budget, DiagnosticSeverity.Error,
        "Compression plan exceeds the model's budget",
        KernelCatalogue.BudgetExceededMessage,
        "MaxBytes and MaxBitsPerWeight on [Compressible] are checked against the plan's exact byte count (packed weights, scales, zero points, sparsity indices, low-rank factors and biases) at build time.");

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

    /// <summary>CND0010. Message: "Layer '{0}' cannot be sparsified: {1}" (N:M invalid, without kernel, or not tiling the input).</summary>
    public static readonly DiagnosticDescriptor InvalidSparsityPattern = Create(
        InvalidSparsityPatternId, Sparsity, DiagnosticSeverity.Error,
        "N:M sparsity pattern is invalid, has no kernel, or does not tile the layer's input",
        CatalogueMessages.CannotSparsify,
        "Semi-structured sparsity keeps N of every M consecutive inputs: it needs 0 < N < M, a pattern from the kernel catalogue (2:4, 1:4, 2:8), and an input size that is a multiple of M.");

    /// <summary>CND0011. Message: "Layer '{0}' cannot be sparsified: {1}" (fraction outside [0, 1), or neither/both of fraction and N:M).</summary>
    public static readonly DiagnosticDescriptor InvalidSparsityFraction = Create(
        InvalidSparsityFractionId, Sparsity, DiagnosticSeverity.Error,
        "Sparsity fraction outside [0, 1) or ambiguous [Sparsify]",
        CatalogueMessages.CannotSparsify,
        "[Sparsify(fraction)] removes that fraction of a layer's weights, which must be in [0, 1); [Sparsify] must set either a fraction or N and M, not both and not neither.");

    /// <summary>CND0012. Message: "Layer '{0}' cannot use [{1}({2})]: {3}".</summary>
    public static readonly DiagnosticDescriptor InvalidRank = Create(
        InvalidRankId, LowRank, DiagnosticSeverity.Error,
        "Rank outside [1, min(in, out) - 1]",
        CatalogueMessages.InvalidRank,
        "Low-rank factors U [out, r] and V [r, in] need 1 <= r < min(in, out); a rank at or above that is not an approximation. The code fix clamps the rank.");

    /// <summary>CND0013 (warning). Message: "Layer '{0}': [LowRank({1})] saves nothing: ...".</summary>
    public static readonly DiagnosticDescriptor RankSavesNothing = Create(
        RankSavesNothingId, LowRank, DiagnosticSeverity.Warning,
        "Low-rank factors are not smaller than the dense weight",
        CatalogueMessages.RankSavesNothing,
        "Factors of rank r take (in + out) x r floats, the dense weight in x out: at r >= in x out / (in + out) the layer grows. The code fix clamps the rank to the largest one that saves bytes.");

    /// <summary>CND0014. Message: "Layer '{0}' cannot combine {1}: {2}".</summary>
    public static readonly DiagnosticDescriptor NoKernelForCombination = Create(
        NoKernelForCombinationId, Combination, DiagnosticSeverity.Error,
        "Combination of techniques has no kernel",
        CatalogueMessages.NoKernel,
        "Only the combinations in the kernel catalogue have kernels: [Quantize] + [LowRankCorrection], and [Sparsify(N, M)] + [Quantize(4 or 8)]. The code fix removes the conflicting attribute.");

    /// <summary>CND0015. Message: "Layer '{0}' has both [{1}] and [{2}], two {3} attributes: keep one".</summary>
    public static readonly DiagnosticDescriptor SameFamilyTwice = Create(
        SameFamilyTwiceId, Combination, DiagnosticSeverity.Error,
        "Two attributes of the same technique family",
        CatalogueMessages.SameFamily,
        "A layer has at most one attribute of each family (quantization, low rank, sparsity): [LowRank] and [LowRankCorrection] describe two different storages of the same weight. The code fix removes one.");

    /// <summary>CND0016. Message: "Model '{0}': [MixedPrecision] {1}".</summary>
    public static readonly DiagnosticDescriptor MixedPrecisionInfeasible = Create(
        MixedPrecisionInfeasibleId, Budget, DiagnosticSeverity.Error,
        "Mixed-precision budget cannot be reached",
        "Model '{0}': [MixedPrecision] {1}",
        "[MixedPrecision] chooses bits per layer under MaxBytes or AverageBits at Compress time; the build checks that its candidate bits have kernels and that the budget is reachable with the smallest of them (one group per row).");

    /// <summary>CND0017 (warning). Message: "Model '{0}': [MixedPrecision] {1}".</summary>
    public static readonly DiagnosticDescriptor MixedPrecisionBudgetNeedsNoCompression = Create(
        MixedPrecisionBudgetNeedsNoCompressionId, Budget, DiagnosticSeverity.Warning,
        "Mixed-precision budget needs no compression",
        "Model '{0}': [MixedPrecision] {1}",
        "A budget at or above the model's float32 size leaves the solver nothing to decide.");

    /// <summary>CND0018. Message: "[Override(\"{0}\")] on model '{1}' {2}".</summary>
    public static readonly DiagnosticDescriptor OverrideMatchesNothing = Create(
        OverrideMatchesNothingId, Override, DiagnosticSeverity.Error,
        "Override pattern is invalid or matches no layer",
        "[Override(\"{0}\")] on model '{1}' {2}",
        "Every [Override] must match at least one layer path of the model at build time: a rule that silently matches nothing is how plans go wrong unnoticed.");

    /// <summary>CND0019. Message: "Model '{0}' names layer '{1}' twice: {2}".</summary>
    public static readonly DiagnosticDescriptor DuplicateLayerPath = Create(
        DuplicateLayerPathId, Usage, DiagnosticSeverity.Error,
        "Layer reached by two paths",
        "Model '{0}' names layer '{1}' twice: {2}",
        "Every layer has exactly one path in the plan; a second path to the same layer would compress and save it twice.");

    /// <summary>CND0020. Message: "{0} cannot be trained in a subspace of dimension {1}: {2}".</summary>
    public static readonly DiagnosticDescriptor InvalidSubspace = Create(
        InvalidSubspaceId, Usage, DiagnosticSeverity.Error,
        "Subspace dimension outside [1, parameters - 1]",
        CatalogueMessages.InvalidSubspace,
        "[Subspace(d)] trains theta0 + P d with d of length d: it must be at least 1 and below the number of parameters it covers (the layer's, or the whole model's on the class).");

    /// <summary>CND0021 (warning). Message: "{0}; OnIncompatible = {1} {2}".</summary>
    public static readonly DiagnosticDescriptor IncompatibleLayerHandled = Create(
        IncompatibleLayerHandledId, Usage, DiagnosticSeverity.Warning,
        "Layer adjusted or skipped by OnIncompatible",
        CatalogueMessages.IncompatibleHandled,
        "With [Compressible(OnIncompatible = Skip)] a layer whose settings do not fit its shape stays float32; with Adjust the nearest setting that fits is used. Each such layer gets this warning, naming the change.");

    /// <summary>CND0022. Message: "Layer '{0}' is matched by [Override(\"{1}\")] and [Override(\"{2}\")], which both set {3}: make the patterns disjoint".</summary>
    public static readonly DiagnosticDescriptor OverrideConflict = Create(
        OverrideConflictId, Override, DiagnosticSeverity.Error,
        "Two overrides set the same property of a layer",
        "Layer '{0}' is matched by [Override(\"{1}\")] and [Override(\"{2}\")], which both set {3}: make the patterns disjoint",
        "Condense has no precedence rule between overrides (no 'first wins' or 'last wins'): two overrides that set the same property of the same layer are an error.");

    /// <summary>CND0023. Message: "Nested model '{0}' of '{1}' cannot be planned: {2}".</summary>
    public static readonly DiagnosticDescriptor NestedModelUnresolvable = Create(
        NestedModelUnresolvableId, Usage, DiagnosticSeverity.Error,
        "Nested model or array of blocks cannot be planned at build time",
        "Nested model '{0}' of '{1}' cannot be planned: {2}",
        "A nested [Compressible] model is flattened into the parent's plan at build time: an array of blocks needs a length known at compile time ('new Block[12]' with a constant, or explicit elements), and a model cannot contain itself.");

    /// <summary>CND0024. Message: "'{0}' is marked [{1}], but '{2}' is not a [Compressible] model, so nothing would compress it: add [Compressible] to '{2}' (and make it partial), or remove the attribute".</summary>
    public static readonly DiagnosticDescriptor AttributeOutsideModel = Create(
        AttributeOutsideModelId, Usage, DiagnosticSeverity.Error,
        "Compression attribute in a class that is not a [Compressible] model",
        "'{0}' is marked [{1}], but '{2}' is not a [Compressible] model, so nothing would compress it: add [Compressible] to '{2}' (and make it partial), or remove the attribute",
        "Only [Compressible] models are planned and compressed (a nested block must be [Compressible] itself). A layer attribute in any other class would silently do nothing, which is the failure Condense exists to prevent.");

    /// <summary>CND0025. Message: the catalogue's <c>LayerSizeProblem</c> text, the same the Linear and Conv2d constructors throw.</summary>
    public static readonly DiagnosticDescriptor LayerTooLarge = Create(
        LayerTooLargeId, Usage, DiagnosticSeverity.Error,
        "Layer too large for the runtime",
        "{0}",
        "A layer's dense weight is one float array, and a .NET array holds at most 2,147,483,591 values. A larger layer cannot be created (its constructor throws the same message), and its byte counts would not fit the plan's arithmetic.");

    /// <summary>CND0026. Message: "Member '{0}' of model '{1}' holds layers that Condense does not list, so they are not compressed, saved, loaded, initialized or returned by Parameters(): {2}".</summary>
    public static readonly DiagnosticDescriptor LayersNotRegistered = Create(
        LayersNotRegisteredId, Usage, DiagnosticSeverity.Warning,
        "Member holds layers that Condense does not list",
        "Member '{0}' of model '{1}' holds layers that Condense does not list, so they are not compressed, saved, loaded, initialized or returned by Parameters(): {2}",
        "The generated layer registry lists Linear and Conv2d fields, fields of other Layer subclasses (LayerNorm, Embedding, your own) as parameter layers, one-dimensional arrays of these with a length known at build time, and nested [Compressible] models (and arrays of them). Any other member that holds layers, such as a field typed as plain Layer or Module, a Module that is not [Compressible], a List<Linear> or an array whose length is only known at run time, would be left out of training, compression, Save and Load; this warning says so.");

    /// <summary>CND0028. Message: "Layer '{0}' cannot be pruned gradually: {1}".</summary>
    public static readonly DiagnosticDescriptor InvalidPruningSchedule = Create(
        InvalidPruningScheduleId, Sparsity, DiagnosticSeverity.Error,
        "Gradual pruning schedule or criterion invalid",
        "Layer '{0}' cannot be pruned gradually: {1}",
        "[Sparsify(fraction, StartStep = t0, EndStep = t1, Frequency = dt)] ramps the layer's sparsity from 0 to the fraction on the cubic schedule of Zhu and Gupta between t0 and t1, recomputing the mask every dt steps: it needs 0 <= t0 < t1 and dt >= 1, applies to unstructured fractions only, and layers sharing a global threshold share one schedule.");

    /// <summary>CND0029. Message: "Layer '{0}' cannot use Scope = Global: {1}".</summary>
    public static readonly DiagnosticDescriptor InvalidGlobalSparsity = Create(
        InvalidGlobalSparsityId, Sparsity, DiagnosticSeverity.Error,
        "Global sparsity scope or layer floor invalid",
        "Layer '{0}' cannot use Scope = Global: {1}",
        "Scope = Global prunes every such layer of the model with one magnitude threshold, each keeping at least LayerFloor of its weights: it needs an unstructured fraction, at least two global layers, a LayerFloor in [0, 1) whose sum over the layers fits the weights kept, and LayerFloor only with Scope = Global.");

    /// <summary>CND0030. Message: "{0} trains a subspace of dimension {1} over {2} parameters, more than half of them, so it saves little: {3}".</summary>
    public static readonly DiagnosticDescriptor SubspaceSavesLittle = Create(
        SubspaceSavesLittleId, Usage, DiagnosticSeverity.Warning,
        "Subspace dimension above half the parameters it covers",
        "{0} trains a subspace of dimension {1} over {2} parameters, more than half of them, so it saves little: {3}",
        "A subspace model is stored as its d coordinates (4 d bytes) and trains d numbers instead of D. With d above D / 2 the file is more than half the dense weights and the subspace constrains little, while each step still pays for the projection; a smaller d, or plain training, serves better.");

    /// <summary>CND0031. Message: "{0} uses a Dense projection of {1} x {2}, which the subspace model caches in {3} bytes (D x d x 4), above the {4}-byte limit: use Projection = SubspaceProjection.Fastfood or SubspaceProjection.Sparse, which keep O(D + d)".</summary>
    public static readonly DiagnosticDescriptor DenseProjectionTooLarge = Create(
        DenseProjectionTooLargeId, Usage, DiagnosticSeverity.Warning,
        "Dense subspace projection too large to cache",
        "{0} uses a Dense projection of {1} x {2}, which the subspace model caches in {3} bytes (D x d x 4), above the {4}-byte limit: use Projection = SubspaceProjection.Fastfood or SubspaceProjection.Sparse, which keep O(D + d)",
        "Reparameterize() caches a Dense projection P as D x d float32 numbers. Above 256 MiB that memory is likely to dominate the process; Fastfood (O(D log d) per step) and Sparse regenerate P from the seed and keep O(D + d).");

    /// <summary>CND0032. Message: "Layer '{0}' cannot combine [Subspace] with its other attributes: {1}".</summary>
    public static readonly DiagnosticDescriptor SubspaceCombination = Create(
        SubspaceCombinationId, Combination, DiagnosticSeverity.Error,
        "[Subspace] combined with a training-time attribute",
        "Layer '{0}' cannot combine [Subspace] with its other attributes: {1}",
        "[Subspace] changes how a layer trains; the layer's storage attributes ([Quantize], [LowRank], [LowRankCorrection], one-shot [Sparsify], [KeepDense]) apply when the materialized model is compressed, so they combine with it. A gradual pruning schedule also changes the weights while they train, which a subspace overwrites at every step, so the two are refused together.");

    /// <summary>CND0033. Message: "Model '{0}' declares conflicting subspaces: {1}".</summary>
    public static readonly DiagnosticDescriptor SubspaceConflict = Create(
        SubspaceConflictId, Usage, DiagnosticSeverity.Error,
        "Conflicting [Subspace] declarations",
        "Model '{0}' declares conflicting subspaces: {1}",
        "[Subspace] on the class is one global subspace over every parameter; on layers it is one subspace per layer, with one policy (OtherLayers) for the layers none covers. A model declares one or the other, and its layers agree on the policy.");

    /// <summary>CND0034. Message: "Compress of model '{0}' is called without calibration data, but data-aware {1} cannot be compressed without it: {2}".</summary>
    public static readonly DiagnosticDescriptor CalibrationMissing = Create(
        CalibrationMissingId, Usage, DiagnosticSeverity.Error,
        "Compress called without calibration data on a data-aware plan",
        "Compress of model '{0}' is called without calibration data, but data-aware {1} cannot be compressed without it: {2}",
        "[Quantize(Method = Gptq)] and [LowRank(r, Method = ActivationAwareSvd)] choose the compressed weights from the inputs each layer sees, which Compress records by running the model's Forward over CompressionOptions.Calibration. A call with no options, null, or a new CompressionOptions { ... } that does not set Calibration is certain to throw at Compress; the build reports it at the call, naming the layers.");

    /// <summary>CND0035. Message: "Compress of model '{0}' cannot record the inputs of {1}: '{0}' declares no 'public Tensor Forward(Tensor x)'; {2}".</summary>
    public static readonly DiagnosticDescriptor CalibrationNeedsForward = Create(
        CalibrationNeedsForwardId, Usage, DiagnosticSeverity.Error,
        "Data-aware plan on a model without Forward(Tensor)",
        "Compress of model '{0}' cannot record the inputs of {1}: '{0}' declares no 'public Tensor Forward(Tensor x)'; {2}",
        "Calibration runs the model's own Tensor Forward(Tensor) over the calibration batches and observes each data-aware layer's input. A model without one can still hold such layers when a containing model, which has a Forward, compresses it; calling its own Compress is certain to throw, so the build reports the call.");

    /// <summary>CND0036. Message: "Layer '{0}' cannot use {1}: {2}".</summary>
    public static readonly DiagnosticDescriptor DataAwareMethodInvalid = Create(
        DataAwareMethodInvalidId, Combination, DiagnosticSeverity.Error,
        "Compression method invalid or not applicable",
        "Layer '{0}' cannot use {1}: {2}",
        "Method = QuantizationMethod.Gptq applies to [Quantize] alone or with [LowRankCorrection] (GPTQ's error feedback assumes every weight is kept); Method = LowRankMethod.ActivationAwareSvd applies to [LowRank]. A value outside the enum is reported too, rather than compressed as the default.");
    /// <summary>CND0037 (warning). Message: "Model '{0}' has [MixedPrecision] but declares no Tensor Forward(Tensor) ...".</summary>
    public static readonly DiagnosticDescriptor MixedPrecisionWithoutForward = Create(
        MixedPrecisionWithoutForwardId, Budget, DiagnosticSeverity.Warning,
        "[MixedPrecision] on a model without Forward",
        "Model '{0}' has [MixedPrecision] but declares no Tensor Forward(Tensor): Compress measures each layer's sensitivity by running the model, so it can only apply bits given in CompressionOptions.MixedPrecision.Allocation; declare Forward, or fix the bits with [Override]",
        "[MixedPrecision] chooses bits per layer from the trace of the loss Hessian, estimated by running the model's Forward and Backward over calibration data. The generated Compress calls an instance Tensor Forward(Tensor) on the model or a base class; without one, only an allocation given at run time can be applied.");

    /// <summary>CND0040 (warning). Message: "Model '{0}': [MixedPrecision] gives no bits to '{1}'{2} ...".</summary>
    public static readonly DiagnosticDescriptor MixedPrecisionMissesNestedLayers = Create(
        MixedPrecisionMissesNestedLayersId, Budget, DiagnosticSeverity.Warning,
        "[MixedPrecision] does not reach a nested block's unannotated layers",
        "Model '{0}': [MixedPrecision] gives no bits to '{1}'{2}: a nested block's layer without a compression attribute stays float32; give it bits with [Override(\"{1}\", Bits = b)] on this model, annotate it in its block, or declare the layers in this model so the allocation can choose",
        "[MixedPrecision] chooses bits for the model's own layers that have no compression attribute. Layers of a nested [Compressible] block follow that block's own plan: an unannotated one stays float32, so its bytes count against the budget and no bits are chosen for it.");

    private static DiagnosticDescriptor Create(string id, string category, DiagnosticSeverity severity, string title, string message, string description) =>
        new(id, title, message, category, severity, isEnabledByDefault: true, description, HelpLinkBase + id + ".md");
}
