using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Condense.Catalogue;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace Condense.Generators.Parsing;

internal static partial class ModelParser
{
    /// <summary>A layer's shape as read from its initializer, or why it could not be read.</summary>
    /// <param name="TooLargeWeights">When the weight has more values than one array can hold (CND0025): their number, else 0.</param>
    /// <param name="TooLargeShape">The weight's shape as text when it is too large, e.g. <c>46341 x 46341</c>.</param>
    private readonly record struct Shape(int OutFeatures, int InFeatures, int KernelSize, bool HasBias, string? Problem, Location? ProblemLocation,
        long TooLargeWeights = 0, string? TooLargeShape = null);

    /// <summary>Most layers a plan may list: a guard against lengths like int.MaxValue while typing.</summary>
    private const int MaxLayers = 1 << 16;

    /// <summary>A layer while its model is being resolved; never part of a pipeline model.</summary>
    private sealed class LayerEntry
    {
        public string Path = "";
        public string AccessName = "";
        public bool IsNullable;
        public LayerKind Kind;
        public bool ShapeKnown;
        public int OutFeatures, InFeatures, KernelSize;
        public bool HasBias;
        public LayerSettings Settings = new();
        /// <summary>The layer attributes by <see cref="KnownTypeNames.LayerAttributes"/> index; null for a nested model's layer.</summary>
        public AttributeData?[]? Attributes;
        /// <summary>Already checked (a nested model's layer, checked by the nested model itself).</summary>
        public bool Checked;
        public AttributeData? OverriddenBy;
        public bool HasError;
        /// <summary>The weight has more values than the runtime can allocate (CND0025): an error whatever the settings.</summary>
        public bool TooLarge;
        public long BytesBefore, BytesAfter;
        /// <summary>[Subspace] on the layer: Projection, Seed, and OtherLayers when set (else null).</summary>
        public int SubspaceProjection;
        public ulong SubspaceSeed;
        public int? SubspaceOtherLayers;

        public bool HasAnyAttribute => Settings.KeepDense || Settings.Quantize || Settings.LowRank || Settings.LowRankCorrection || Settings.Sparsify || Settings.Subspace;

        public LayerEntry Prefixed(string prefix) => new()
        {
            Path = prefix + Path, AccessName = AccessName, IsNullable = IsNullable, Kind = Kind, ShapeKnown = ShapeKnown,
            OutFeatures = OutFeatures, InFeatures = InFeatures, KernelSize = KernelSize, HasBias = HasBias,
            Settings = Settings, Checked = true, HasError = HasError, TooLarge = TooLarge, BytesBefore = BytesBefore, BytesAfter = BytesAfter,
            SubspaceProjection = SubspaceProjection, SubspaceSeed = SubspaceSeed, SubspaceOtherLayers = SubspaceOtherLayers,
        };

        public LayerSpec ToSpec()
        {
            var s = Settings;
            return new LayerSpec(
                Path: Path, AccessName: AccessName, IsNullable: IsNullable, Kind: Kind, ShapeKnown: ShapeKnown,
                OutFeatures: OutFeatures, InFeatures: InFeatures, KernelSize: KernelSize, HasBias: HasBias,
                Technique: (LayerTechnique)s.Technique,
                Bits: s.Quantize || s.MixedPrecision ? s.Bits : 0,
                GroupSize: s.Quantize ? s.GroupSize : 0,
                Symmetric: !s.Quantize || s.Symmetric,
                BytesBefore: BytesBefore, BytesAfter: BytesAfter,
                Rank: s.LowRank ? s.Rank : s.LowRankCorrection ? s.CorrectionRank : 0,
                SparsityN: s.Sparsify && s.HasSparsityPattern ? s.SparsityN : 0,
                SparsityM: s.Sparsify && s.HasSparsityPattern ? s.SparsityM : 0,
                SparsityFraction: s.Sparsify && s.HasSparsityFraction && !s.HasSparsityPattern ? s.SparsityFraction : 0,
                SubspaceDimension: s.Subspace ? s.SubspaceDimension : 0,
                SubspaceProjection: s.Subspace ? SubspaceProjection : 0,
                SubspaceSeed: s.Subspace ? SubspaceSeed : 0,
                GlobalSparsity: s.Technique == StorageTechnique.UnstructuredSparse && s.SparsityScope == 1,
                LayerFloor: s.Technique == StorageTechnique.UnstructuredSparse && s.SparsityScope == 1 ? s.LayerFloor : 0,
                PruneStartStep: s.Technique == StorageTechnique.UnstructuredSparse && s.HasPruningSchedule ? s.PruneStartStep : 0,
                PruneEndStep: s.Technique == StorageTechnique.UnstructuredSparse && s.HasPruningSchedule ? s.PruneEndStep : 0,
                PruneFrequency: s.Technique == StorageTechnique.UnstructuredSparse && s.HasPruningSchedule ? s.PruneFrequency : 0,
                QuantizationMethod: s.Technique is StorageTechnique.Quantize or StorageTechnique.QuantizeWithLowRankCorrection && s.QuantizeMethod == 1 ? 1 : 0,
                LowRankMethod: s.Technique == StorageTechnique.LowRank && s.LowRankMethod == 1 ? 1 : 0);
        }
    }

    /// <summary>The layers and layer-holding members of one model, flattened.</summary>
    private sealed class ModelLayers
    {
        public readonly List<LayerEntry> Layers = new();
        public readonly List<MemberSpec> Members = new();
        /// <summary>Members with layers outside the plan (LayerNorm, Embedding, user layers), and nested models that have some.</summary>
        public readonly List<ParameterMemberSpec> ParameterMembers = new();
        public bool HasErrors;
        /// <summary>Nested members whose model has errors of its own, as <c>member ('Type')</c>: the reason this plan is invalid when it has no error itself.</summary>
        public readonly List<string> FailedNested = new();
    }

    /// <summary>State shared while resolving a model and the models nested in it.</summary>
    private sealed class ResolveContext(SemanticModelCache models, CancellationToken cancellationToken)
    {
        public readonly SemanticModelCache Models = models;
        public readonly CancellationToken CancellationToken = cancellationToken;
        public readonly Dictionary<INamedTypeSymbol, ModelLayers> Nested = new(SymbolEqualityComparer.Default);
        public readonly HashSet<INamedTypeSymbol> Stack = new(SymbolEqualityComparer.Default);
        /// <summary>The models being resolved, outermost first (the same set as <see cref="Stack"/>), to name a cycle.</summary>
        public readonly List<INamedTypeSymbol> Order = new();
        /// <summary>Via[i] is the member of Order[i] through which Order[i + 1] is being resolved.</summary>
        public readonly List<ISymbol> Via = new();
        /// <summary>The outermost model's problems: a cycle through it is reported there, not only inside a nested model's scratch list.</summary>
        public List<DiagnosticInfo>? TopProblems;
    }

    /// <summary>Resolves one member into layers (direct, nested or array), reporting misplaced attributes.</summary>
    private static void ResolveMember(INamedTypeSymbol model, ISymbol member, ResolveContext context, ModelLayers result, List<DiagnosticInfo> problems)
    {
        var cancellationToken = context.CancellationToken;
        var attributes = new AttributeData?[KnownTypeNames.LayerAttributes.Length];
        bool anyAttribute = false;
        // One pass over the member's attributes; the first of each kind wins, as FindAttribute would return it.
        foreach (var attribute in member.GetAttributes())
        {
            if (attribute.AttributeClass is not { } attributeClass) continue;
            for (int i = 0; i < attributes.Length; i++)
                if (attributes[i] is null && IsType(attributeClass, KnownTypeNames.LayerAttributes[i].MetadataName))
                {
                    attributes[i] = attribute;
                    anyAttribute = true;
                    break;
                }
        }
        // [Subspace] on the model class is model-wide, not a misplaced layer attribute.
        if (member is INamedTypeSymbol) return;
        if (!anyAttribute && IsGeneratedByCondense(member)) return;

        ITypeSymbol? memberType = member switch
        {
            IFieldSymbol { IsImplicitlyDeclared: false } field => field.Type,
            IPropertySymbol { IsIndexer: false } property => property.Type,
            _ => null,
        };
        LayerKind? kind = memberType is null ? null
            : IsType(memberType, KnownTypeNames.Linear) ? LayerKind.Linear
            : IsType(memberType, KnownTypeNames.Conv2d) ? LayerKind.Conv2d
            : null;
        if (kind is null || member.IsStatic)
        {
            var nestedType = memberType is null || member.IsStatic ? null : NestedModelType(memberType, out _);
            // An array of Linear or Conv2d stored in the model (not a computed view of other layers) is a list of layers.
            var arrayKind = memberType is null || member.IsStatic || nestedType is not null || !IsStored(member, cancellationToken) ? null : LayerArrayKind(memberType);
            if (anyAttribute && arrayKind is null)
            {
                string what = member.IsStatic && (kind is not null || NestedModelType(memberType, out _) is not null) ? "static"
                    : memberType is null ? "not a field or property"
                    : nestedType is not null ? "a nested model (put the attributes on its layers, or use [Override] on '" + model.Name + "')"
                    : "of type '" + memberType.ToDisplayString() + "'";
                for (int i = 0; i < attributes.Length; i++)
                    if (attributes[i] is { } attribute)
                        problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AttributeOnNonLayer, AttributeLocation(attribute, cancellationToken),
                            KnownTypeNames.LayerAttributes[i].Name, member.Name, what));
            }
            if (nestedType is not null)
                ResolveNestedMember(model, member, memberType!, nestedType, context, result, problems);
            else if (arrayKind is not null)
                ResolveLayerArray(model, member, (IArrayTypeSymbol)memberType!, arrayKind.Value, attributes, context, result, problems);
            else if (memberType is not null && !member.IsStatic && IsStored(member, cancellationToken) && IsParameterLayerOrArray(memberType))
                ResolveParameterLayer(model, member, memberType, context, result, problems);
            else if (memberType is not null && !member.IsStatic && IsStored(member, cancellationToken) && UnregisteredReason(memberType, 0) is { } why)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LayersNotRegistered, member.Locations.FirstOrDefault(l => l.IsInSource), member.Name, model.Name, why));
            return;
        }

        if (AliasedLayer(model, member, cancellationToken) is { } aliased)
        {
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateLayerPath, member.Locations.FirstOrDefault(l => l.IsInSource),
                model.Name, aliased, "'" + member.Name + "' returns '" + aliased + "', so the layer would be compressed and saved under both paths; remove '" + member.Name + "' from the model or make it a method"));
            result.HasErrors = true;
            return;
        }

        var shape = ResolveShape(member, (INamedTypeSymbol)memberType!, kind.Value, context.Models, cancellationToken);
        var entry = LayerFromShape(model, member.Name, shape, kind.Value, attributes, problems);
        entry.AccessName = SyntaxFacts.GetKeywordKind(member.Name) != SyntaxKind.None ? "@" + member.Name : member.Name;
        entry.IsNullable = memberType!.NullableAnnotation == NullableAnnotation.Annotated;
        result.Members.Add(new MemberSpec(MemberKind.Layer, entry.Path, entry.AccessName, entry.IsNullable, 1, 0, result.Layers.Count));
        result.Layers.Add(entry);
    }

    /// <summary>A layer entry from its shape, reporting CND0006 (shape unknown) or CND0025 (too large for the runtime).</summary>
    private static LayerEntry LayerFromShape(INamedTypeSymbol model, string path, Shape shape, LayerKind kind, AttributeData?[] attributes, List<DiagnosticInfo> problems)
    {
        if (shape.Problem is not null)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ShapeNotConstant, shape.ProblemLocation, path, shape.Problem, model.Name));
        bool tooLarge = shape.TooLargeWeights > 0;
        if (tooLarge)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LayerTooLarge, shape.ProblemLocation,
                KernelCatalogue.LayerSizeProblem(path, shape.TooLargeShape ?? "", shape.TooLargeWeights) ?? ""));
        return new LayerEntry
        {
            Path = path,
            AccessName = "",
            Kind = kind,
            // A too-large layer plans no bytes: they would not fit the plan's arithmetic, and the layer cannot exist.
            ShapeKnown = shape.Problem is null && !tooLarge,
            OutFeatures = tooLarge ? 0 : shape.OutFeatures,
            InFeatures = tooLarge ? 0 : shape.InFeatures,
            KernelSize = tooLarge ? 0 : shape.KernelSize,
            HasBias = shape.HasBias,
            Settings = ReadSettings(attributes),
            SubspaceProjection = SubspaceProjectionOf(attributes[5]),
            SubspaceSeed = SubspaceSeedOf(attributes[5]),
            SubspaceOtherLayers = SubspaceOtherLayersOf(attributes[5]),
            Attributes = attributes,
            TooLarge = tooLarge,
            HasError = tooLarge,
        };
    }

    /// <summary>Linear or Conv2d when the type is a one-dimensional array of them, else null.</summary>
    private static LayerKind? LayerArrayKind(ITypeSymbol type) =>
        type is IArrayTypeSymbol { Rank: 1, ElementType: var element }
            ? IsType(element, KnownTypeNames.Linear) ? LayerKind.Linear : IsType(element, KnownTypeNames.Conv2d) ? LayerKind.Conv2d : null
            : null;

    /// <summary>
    /// A field, or a property with storage (auto-property): what the model holds. A property with a body only
    /// returns something held elsewhere, so it is neither registered nor reported.
    /// </summary>
    private static bool IsStored(ISymbol member, CancellationToken cancellationToken) => member switch
    {
        IFieldSymbol { IsImplicitlyDeclared: false, IsConst: false } => true,
        IPropertySymbol { IsIndexer: false } => member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken) is PropertyDeclarationSyntax
        {
            ExpressionBody: null, AccessorList: { } accessors,
        } && accessors.Accessors.All(a => a.Body is null && a.ExpressionBody is null),
        _ => false,
    };

    /// <summary>
    /// Why a member of this type holds layers that the generated registry cannot list (CND0026), or null when it
    /// holds none: a Layer that is not Linear or Conv2d, a Module that is not [Compressible], or a collection
    /// (other than a one-dimensional array, resolved elsewhere) of anything that holds layers.
    /// </summary>
    private static string? UnregisteredReason(ITypeSymbol type, int depth)
    {
        if (depth > 4 || type is ITypeParameterSymbol) return null;
        if (type is INamedTypeSymbol { TypeKind: TypeKind.Class } named && !IsPlannable(named))
        {
            if (IsType(named, KnownTypeNames.Layer) || IsType(named, KnownTypeNames.WeightedLayer))
                return "its declared type '" + named.Name + "' does not say which layer it is; declare it as Linear or Conv2d";
            if (DerivesFrom(named, KnownTypeNames.Layer) && !IsParameterLayer(named))
                return "'" + named.ToDisplayString() + "' is a layer that Condense cannot plan (only Linear and Conv2d are planned); " +
                       "build it from Linear and Conv2d layers, or train, save and load its parameters yourself and suppress CND0026 for this member";
            if (IsType(named, KnownTypeNames.Module))
                return "its declared type 'Module' does not say which model it is; declare it as its [Compressible] model type";
            if (DerivesFrom(named, KnownTypeNames.Module))
                return "'" + named.ToDisplayString() + "' is a Module that is not [Compressible]; mark '" + named.Name + "' [Compressible] and partial so its layers are planned with this model";
        }
        var inner = type switch
        {
            IArrayTypeSymbol array => System.Collections.Immutable.ImmutableArray.Create(array.ElementType),
            INamedTypeSymbol { IsGenericType: true, TypeKind: not TypeKind.Delegate } generic => generic.TypeArguments,
            _ => System.Collections.Immutable.ImmutableArray<ITypeSymbol>.Empty,
        };
        foreach (var element in inner)
        {
            if (UnregisteredReason(element, depth + 1) is { } reason) return reason;
            if (IsPlannable(element))
                return "'" + type.ToDisplayString() + "' is a collection whose layers Condense cannot list; use a one-dimensional array ('" +
                       element.ToDisplayString() + "[]') with a length known at build time";
        }
        return null;
    }

    /// <summary>A Linear, a Conv2d, a [Compressible] model, a layer outside the plan, or a one-dimensional array of them.</summary>
    private static bool IsPlannable(ITypeSymbol type) =>
        IsType(type, KnownTypeNames.Linear) || IsType(type, KnownTypeNames.Conv2d) || LayerArrayKind(type) is not null || NestedModelType(type, out _) is not null ||
        IsParameterLayerOrArray(type);

    /// <summary>
    /// A concrete layer type the plan does not compress (LayerNorm, Embedding, a user's Layer subclass): its
    /// parameters are registered dense through the generated <c>ParameterLayers</c>. Not Linear or Conv2d (planned),
    /// not the base types Layer and WeightedLayer (they do not say which layer a member holds).
    /// </summary>
    private static bool IsParameterLayer(ITypeSymbol type) =>
        type is INamedTypeSymbol { TypeKind: TypeKind.Class } named &&
        DerivesFrom(named, KnownTypeNames.Layer) && !IsType(named, KnownTypeNames.WeightedLayer) &&
        !DerivesFrom(named, KnownTypeNames.WeightedLayer);

    private static bool IsParameterLayerOrArray(ITypeSymbol type) =>
        IsParameterLayer(type) || type is IArrayTypeSymbol { Rank: 1, ElementType: var element } && IsParameterLayer(element);

    /// <summary>A layer outside the plan, or an array of them with a length known at build time: listed by ParameterLayers.</summary>
    private static void ResolveParameterLayer(INamedTypeSymbol model, ISymbol member, ITypeSymbol memberType, ResolveContext context, ModelLayers result, List<DiagnosticInfo> problems)
    {
        string name = member.Name;
        string access = SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;
        bool nullable = memberType.NullableAnnotation == NullableAnnotation.Annotated;
        if (memberType is not IArrayTypeSymbol array)
        {
            result.ParameterMembers.Add(new ParameterMemberSpec(MemberKind.Layer, name, access, nullable, 0));
            return;
        }
        var initializer = ArrayInitializer(member, context, array.ElementType.Name);
        if (initializer.Problem is not null)
        {
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LayersNotRegistered, member.Locations.FirstOrDefault(l => l.IsInSource), name, model.Name, initializer.Problem));
            return;
        }
        result.ParameterMembers.Add(new ParameterMemberSpec(MemberKind.LayerArray, name, access, nullable, initializer.Length));
    }

    /// <summary>An array of Linear or Conv2d: one layer per element, <c>heads[0]</c>, <c>heads[1]</c>, ..., with the array's attributes.</summary>
    private static void ResolveLayerArray(INamedTypeSymbol model, ISymbol member, IArrayTypeSymbol arrayType, LayerKind kind, AttributeData?[] attributes, ResolveContext context, ModelLayers result, List<DiagnosticInfo> problems)
    {
        var cancellationToken = context.CancellationToken;
        var location = member.Locations.FirstOrDefault(l => l.IsInSource);
        var initializer = ArrayInitializer(member, context, kind == LayerKind.Linear ? "Linear" : "Conv2d");
        if (initializer.Problem is not null)
        {
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LayersNotRegistered, location, member.Name, model.Name, initializer.Problem));
            return;
        }
        int length = initializer.Length;
        if ((long)length + result.Layers.Count > MaxLayers)
        {
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LayersNotRegistered, location, member.Name, model.Name,
                "its " + length.ToString(CultureInfo.InvariantCulture) + " layers would give the model more than " + MaxLayers.ToString("N0", CultureInfo.InvariantCulture) +
                " layers; a plan lists every layer, so keep the length realistic"));
            return;
        }
        var elementType = (INamedTypeSymbol)arrayType.ElementType;
        var declaredElementType = (member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken) switch
        {
            VariableDeclaratorSyntax variable => (variable.Parent as VariableDeclarationSyntax)?.Type,
            PropertyDeclarationSyntax property => property.Type,
            _ => null,
        } as ArrayTypeSyntax)?.ElementType;
        string name = member.Name;
        string access = SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;
        if (initializer.Elements is null && length > 0)
        {
            // 'new Linear[3]': the elements are assigned at run time, so their shapes are checked when Compress runs.
            string range = name + "[" + (length == 1 ? "0" : "0.." + (length - 1).ToString(CultureInfo.InvariantCulture)) + "]";
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ShapeNotConstant, initializer.Location ?? location, range,
                "the elements are assigned at run time; list them in the initializer ('{ new(...), new(...) }')", model.Name));
        }
        result.Members.Add(new MemberSpec(MemberKind.LayerArray, name, access, arrayType.NullableAnnotation == NullableAnnotation.Annotated, 1, length, result.Layers.Count));
        for (int i = 0; i < length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string path = name + "[" + i.ToString(CultureInfo.InvariantCulture) + "]";
            // Without elements the one CND0006 above covers them all.
            var shape = initializer.Elements is { } elements
                ? ShapeOf(elements[i], declaredElementType, elementType, kind, context.Models, cancellationToken)
                : new Shape(0, 0, 0, false, null, null);
            var entry = LayerFromShape(model, path, shape, kind, attributes, problems);
            if (initializer.Elements is null) entry.ShapeKnown = false;
            entry.AccessName = access;
            result.Layers.Add(entry);
        }
    }

    /// <summary>Reads the layer attributes into catalogue settings; an attribute the compiler rejects is left out.</summary>
    private static LayerSettings ReadSettings(AttributeData?[] attributes)
    {
        var s = new LayerSettings();
        if (attributes[0] is { } quantize && PositionalInt(quantize) is int bits)
        {
            s.Quantize = true;
            s.Bits = bits;
            s.GroupSize = NamedArgument(quantize, "GroupSize") is { Value: int g } ? g : 0;
            s.Symmetric = NamedArgument(quantize, "Symmetric") is not { Value: false };
        }
        s.KeepDense = attributes[1] is not null;
        if (attributes[2] is { } lowRank && PositionalInt(lowRank) is int rank)
        {
            s.LowRank = true;
            s.Rank = rank;
        }
        if (attributes[3] is { } correction && PositionalInt(correction) is int correctionRank)
        {
            s.LowRankCorrection = true;
            s.CorrectionRank = correctionRank;
        }
        if (attributes[4] is { AttributeConstructor: not null } sparsify)
        {
            s.Sparsify = true;
            if (sparsify.ConstructorArguments.Length == 1 && sparsify.ConstructorArguments[0].Value is double fraction)
            {
                s.HasSparsityFraction = true;
                s.SparsityFraction = fraction;
            }
            var n = NamedArgument(sparsify, "N");
            var m = NamedArgument(sparsify, "M");
            if (n is not null || m is not null)
            {
                s.HasSparsityPattern = true;
                s.SparsityN = n is { Value: int nv } ? nv : 0;
                s.SparsityM = m is { Value: int mv } ? mv : 0;
            }
        }
        if (attributes[5] is { } subspace && PositionalInt(subspace) is int dimension)
        {
            s.Subspace = true;
            s.SubspaceDimension = dimension;
        }
        ReadDeclaredOptions(attributes, s);
        return s;
    }

    /// <summary>[Subspace(Projection = ...)]: the enum's value, 0 (Dense) when absent.</summary>
    private static int SubspaceProjectionOf(AttributeData? subspace) =>
        NamedArgument(subspace, "Projection") is { Value: int projection } ? projection : 0;

    /// <summary>[Subspace(Seed = ...)], 0 when absent.</summary>
    private static ulong SubspaceSeedOf(AttributeData? subspace) =>
        NamedArgument(subspace, "Seed") is { Value: ulong seed } ? seed : 0;

    /// <summary>[Subspace(OtherLayers = ...)], null when absent.</summary>
    private static int? SubspaceOtherLayersOf(AttributeData? subspace) =>
        NamedArgument(subspace, "OtherLayers") is { Value: int other } ? other : null;

    private static int? PositionalInt(AttributeData attribute) =>
        attribute.AttributeConstructor is not null && attribute.ConstructorArguments.Length == 1 && attribute.ConstructorArguments[0].Value is int value ? value : null;

    /// <summary>The [Compressible] model type of a nested member (or of an array's elements), else null.</summary>
    private static INamedTypeSymbol? NestedModelType(ITypeSymbol? type, out bool isArray)
    {
        isArray = false;
        if (type is IArrayTypeSymbol { Rank: 1 } array)
        {
            isArray = true;
            type = array.ElementType;
        }
        return type is INamedTypeSymbol named && named.TypeKind == TypeKind.Class &&
               FindAttribute(named, KnownTypeNames.CompressibleAttribute) is not null && DerivesFrom(named, KnownTypeNames.Module)
            ? named
            : null;
    }

    private static void ResolveNestedMember(INamedTypeSymbol model, ISymbol member, ITypeSymbol memberType, INamedTypeSymbol nestedType, ResolveContext context, ModelLayers result, List<DiagnosticInfo> problems)
    {
        var cancellationToken = context.CancellationToken;
        var location = member.Locations.FirstOrDefault(l => l.IsInSource);
        void Fail(string why)
        {
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NestedModelUnresolvable, location, member.Name, model.Name, why));
            result.HasErrors = true;
        }

        if (nestedType.IsGenericType)
        {
            Fail("generic nested models are not supported; derive a non-generic class from '" + nestedType.Name + "'");
            return;
        }
        if (context.Stack.Contains(nestedType))
        {
            int start = context.Order.FindIndex(t => SymbolEqualityComparer.Default.Equals(t, nestedType));
            if (start < 0 || start == context.Order.Count - 1)
            {
                Fail("'" + nestedType.Name + "' contains itself, so its layers cannot be listed");
                return;
            }
            // Models that contain each other: name the whole cycle, e.g. A.b -> B.a -> A.
            var steps = new List<string>();
            for (int i = start; i < context.Order.Count - 1; i++) steps.Add(context.Order[i].Name + "." + context.Via[i].Name);
            steps.Add(model.Name + "." + member.Name);
            steps.Add(nestedType.Name);
            string why = "'" + nestedType.Name + "' contains itself through " + string.Join(" -> ", steps) +
                         ", so its layers cannot be listed; remove one of these references (a model cannot hold a model that holds it)";
            Fail(why);
            // Inside a nested model this lands in a scratch list; the outermost model must see it on its own member.
            if (start == 0 && context.TopProblems is { } top && context.Via.Count > 0)
                top.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NestedModelUnresolvable, context.Via[0].Locations.FirstOrDefault(l => l.IsInSource),
                    context.Via[0].Name, context.Order[0].Name, why));
            return;
        }
        bool isArray = memberType is IArrayTypeSymbol;
        int length = 0;
        if (isArray)
        {
            var (known, problem) = ArrayLength(member, context, nestedType.Name);
            if (problem is not null)
            {
                Fail(problem);
                return;
            }
            length = known;
        }

        // A block's class-level [Subspace] is a global subspace of that block as a model of its own; the containing
        // model plans its own subspaces, so it would be ignored here: say so instead.
        if (FindAttribute(nestedType, KnownTypeNames.SubspaceAttribute) is not null)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.SubspaceConflict, location, model.Name,
                "member '" + member.Name + "' holds '" + nestedType.Name + "', whose [Subspace] on the class is a global subspace of '" + nestedType.Name +
                "' reparameterized on its own, not of '" + model.Name + "'; put [Subspace] on '" + model.Name + "' (one subspace over every layer) or on the layers of '" +
                nestedType.Name + "' (one per layer), and remove it from the class '" + nestedType.Name + "'"));

        context.Via.Add(member);
        var nested = ResolveNested(nestedType, context);
        context.Via.RemoveAt(context.Via.Count - 1);
        if (nested.HasErrors) result.FailedNested.Add("'" + member.Name + "' ('" + nestedType.Name + "')");
        if (isArray && (long)length * nested.Layers.Count + result.Layers.Count > MaxLayers)
        {
            Fail("array '" + member.Name + "' of " + length.ToString(CultureInfo.InvariantCulture) + " blocks would give the model more than " +
                 MaxLayers.ToString("N0", CultureInfo.InvariantCulture) + " layers; a plan lists every layer, so keep the length realistic");
            return;
        }
        result.HasErrors |= nested.HasErrors;
        string name = member.Name;
        string access = SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;
        bool nullable = memberType.NullableAnnotation == NullableAnnotation.Annotated;
        result.Members.Add(new MemberSpec(isArray ? MemberKind.Array : MemberKind.Nested, name, access, nullable, nested.Layers.Count, length, result.Layers.Count));
        if (nested.ParameterMembers.Count > 0)
            result.ParameterMembers.Add(new ParameterMemberSpec(isArray ? MemberKind.Array : MemberKind.Nested, name, access, nullable, length));
        if (!isArray)
        {
            foreach (var layer in nested.Layers) result.Layers.Add(layer.Prefixed(name + "."));
            return;
        }
        for (int i = 0; i < length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string prefix = name + "[" + i.ToString(CultureInfo.InvariantCulture) + "].";
            foreach (var layer in nested.Layers) result.Layers.Add(layer.Prefixed(prefix));
        }
    }

    /// <summary>A nested model's layers, resolved once per type (its own diagnostics are reported on its own declaration).</summary>
    private static ModelLayers ResolveNested(INamedTypeSymbol type, ResolveContext context)
    {
        if (context.Nested.TryGetValue(type, out var cached)) return cached;
        context.Stack.Add(type);
        context.Order.Add(type);
        var scratch = new List<DiagnosticInfo>();
        var layers = ResolveModelLayers(type, context, scratch);
        layers.HasErrors |= scratch.Any(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error);
        context.Stack.Remove(type);
        context.Order.RemoveAt(context.Order.Count - 1);
        context.Nested[type] = layers;
        return layers;
    }

    /// <summary>The length of an array of blocks from its initializer: <c>new Block[N]</c> with constant N, or explicit elements.</summary>
    private static (int Length, string? Problem) ArrayLength(ISymbol member, ResolveContext context, string elementType)
    {
        var initializer = ArrayInitializer(member, context, elementType);
        return (initializer.Length, initializer.Problem);
    }

    /// <summary>An array's initializer as written.</summary>
    /// <param name="Elements">The element expressions when they are listed, null for <c>new T[N]</c>.</param>
    /// <param name="Location">The initializer.</param>
    private readonly record struct ArrayInit(int Length, IReadOnlyList<ExpressionSyntax>? Elements, string? Problem, Location? Location);

    /// <summary>
    /// An array member's length and elements from its initializer: <c>new T[N]</c> with a constant N, or the
    /// elements listed (<c>new T[] { ... }</c>, <c>new[] { ... }</c>, <c>{ ... }</c>, <c>[ ... ]</c>).
    /// </summary>
    /// <param name="example">The element type as the fix should spell it, e.g. <c>Block</c>.</param>
    private static ArrayInit ArrayInitializer(ISymbol member, ResolveContext context, string example)
    {
        var syntax = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(context.CancellationToken);
        var initializer = syntax switch
        {
            VariableDeclaratorSyntax variable => variable.Initializer?.Value,
            PropertyDeclarationSyntax property => property.Initializer?.Value,
            _ => null,
        };
        string hint = "initialize it as 'new " + example + "[N]' with a constant N (and assign the elements in the constructor), or list the elements ('[new(...), new(...)]')";
        var location = initializer?.GetLocation();
        ArrayInit Listed(IReadOnlyList<ExpressionSyntax> elements) => new(elements.Count, elements, null, location);
        ArrayInit Problem(string text) => new(0, null, text, location);
        switch (initializer)
        {
            case null:
                return Problem("array '" + member.Name + "' has no initializer, so its length is not known at compile time; " + hint);
            case ArrayCreationExpressionSyntax creation when creation.Initializer is { } elements:
                return Listed(elements.Expressions);
            case ArrayCreationExpressionSyntax creation when creation.Type.RankSpecifiers.Count == 1 && creation.Type.RankSpecifiers[0].Sizes.Count == 1:
                var size = creation.Type.RankSpecifiers[0].Sizes[0];
                if (size is LiteralExpressionSyntax { Token.Value: int literal } && literal >= 0) return new(literal, null, null, location);
                var constant = context.Models.For(size.SyntaxTree).GetConstantValue(size, context.CancellationToken);
                if (constant.HasValue && constant.Value is int n && n >= 0) return new(n, null, null, location);
                return Problem("the length '" + size.ToString() + "' of array '" + member.Name + "' is not a compile-time constant; " + hint);
            case ImplicitArrayCreationExpressionSyntax implicitCreation:
                return Listed(implicitCreation.Initializer.Expressions);
            // 'Block[] blocks = { new(), new() };': an array initializer without 'new'.
            case InitializerExpressionSyntax arrayInitializer when arrayInitializer.IsKind(SyntaxKind.ArrayInitializerExpression):
                return Listed(arrayInitializer.Expressions);
            case CollectionExpressionSyntax collection when collection.Elements.All(e => e is ExpressionElementSyntax):
                return Listed(collection.Elements.Select(e => ((ExpressionElementSyntax)e).Expression).ToList());
            default:
                return Problem("the length of array '" + member.Name + "' is not known at compile time; " + hint);
        }
    }

    /// <summary>The layer a property only returns (<c>Linear Alias => hidden;</c>), else null.</summary>
    private static string? AliasedLayer(INamedTypeSymbol model, ISymbol member, CancellationToken cancellationToken)
    {
        if (member is not IPropertySymbol) return null;
        if (member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken) is not PropertyDeclarationSyntax property || property.Initializer is not null) return null;
        var body = property.ExpressionBody?.Expression
                   ?? property.AccessorList?.Accessors.FirstOrDefault(a => a.IsKind(SyntaxKind.GetAccessorDeclaration))?.ExpressionBody?.Expression;
        string? name = body switch
        {
            IdentifierNameSyntax identifier => identifier.Identifier.ValueText,
            MemberAccessExpressionSyntax { Expression: ThisExpressionSyntax, Name: IdentifierNameSyntax identifier } => identifier.Identifier.ValueText,
            _ => null,
        };
        if (name is null || name == member.Name) return null;
        foreach (var target in model.GetMembers(name))
        {
            var type = target switch { IFieldSymbol f => f.Type, IPropertySymbol p => p.Type, _ => null };
            if (type is not null && !target.IsStatic && (IsType(type, KnownTypeNames.Linear) || IsType(type, KnownTypeNames.Conv2d))) return name;
        }
        return null;
    }

    /// <summary>A layer's exact bytes, from the kernel catalogue shared with the runtime (tests compare the two).</summary>
    internal static (long Before, long After) ComputeBytes(LayerTechnique technique, int outFeatures, int inFeatures, bool hasBias, int bits, int groupSize, bool symmetric) =>
        KernelCatalogue.LayerBytes(outFeatures, inFeatures, hasBias, technique == LayerTechnique.Quantize, bits, groupSize, symmetric);

    /// <summary>The valid group size closest to the requested one (the larger on a tie: fewer scales to store).</summary>
    internal static int NearestGroupSize(int requested, int inFeatures) => KernelCatalogue.NearestGroupSize(requested, inFeatures);

    private static Shape ResolveShape(ISymbol member, INamedTypeSymbol memberType, LayerKind kind, SemanticModelCache models, CancellationToken cancellationToken)
    {
        var syntax = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken);
        var (declaredType, initializer) = syntax switch
        {
            VariableDeclaratorSyntax variable => ((variable.Parent as VariableDeclarationSyntax)?.Type, variable.Initializer?.Value),
            PropertyDeclarationSyntax property => (property.Type, property.Initializer?.Value),
            _ => (null, null),
        };
        string typeName = kind == LayerKind.Linear ? "Linear" : "Conv2d";
        if (initializer is null)
            return Unknown("it has no initializer; declare it as '" + member.Name + " = new " + typeName + "(...)' with constant arguments", member.Locations.FirstOrDefault(l => l.IsInSource));
        return ShapeOf(initializer, declaredType, memberType, kind, models, cancellationToken);
    }

    /// <summary>A layer's shape from the expression that creates it (a member's initializer or an array element).</summary>
    private static Shape ShapeOf(ExpressionSyntax initializer, TypeSyntax? declaredType, INamedTypeSymbol memberType, LayerKind kind, SemanticModelCache models, CancellationToken cancellationToken)
    {
        string typeName = kind == LayerKind.Linear ? "Linear" : "Conv2d";
        // Binding an initializer costs more than everything else the parser does; literal arguments need none.
        var values = LiteralArguments(initializer, declaredType, memberType);
        if (values is null)
        {
            var operation = models.For(initializer.SyntaxTree).GetOperation(initializer, cancellationToken);
            while (operation is IConversionOperation conversion) operation = conversion.Operand;
            if (operation is not IObjectCreationOperation { Constructor: { } constructor } creation ||
                !IsType(constructor.ContainingType, kind == LayerKind.Linear ? KnownTypeNames.Linear : KnownTypeNames.Conv2d))
                return Unknown("its initializer is not 'new " + typeName + "(...)'", initializer.GetLocation());

            values = new Dictionary<string, object?>(System.StringComparer.Ordinal);
            foreach (var argument in creation.Arguments)
            {
                if (argument.Parameter is not { } parameter) continue;
                var constant = argument.Value.ConstantValue;
                if (!constant.HasValue)
                    return Unknown("argument '" + parameter.Name + "' is not a compile-time constant", argument.Syntax.GetLocation());
                values[parameter.Name] = constant.Value;
            }
        }

        var location = initializer.GetLocation();
        bool hasBias = values.TryGetValue("bias", out var biasValue) ? biasValue is true : true;
        if (kind == LayerKind.Linear)
        {
            if (!TryPositive(values, "inFeatures", out int inFeatures, out var problem) || !TryPositive(values, "outFeatures", out int outFeatures, out problem))
                return Unknown(problem!, location);
            long weights = KernelCatalogue.WeightCount(outFeatures, inFeatures);
            if (weights > KernelCatalogue.MaxWeightsPerLayer)
                return new Shape(outFeatures, inFeatures, 0, hasBias, null, location, weights, Format(outFeatures) + " x " + Format(inFeatures));
            return new Shape(outFeatures, inFeatures, 0, hasBias, null, null);
        }
        else
        {
            if (!TryPositive(values, "inChannels", out int inChannels, out var problem) ||
                !TryPositive(values, "outChannels", out int outChannels, out problem) ||
                !TryPositive(values, "kernelSize", out int kernelSize, out problem))
                return Unknown(problem!, location);
            long columns = KernelCatalogue.SaturatingProduct(KernelCatalogue.SaturatingProduct(inChannels, kernelSize), kernelSize);
            long weights = KernelCatalogue.WeightCount(outChannels, columns);
            if (weights > KernelCatalogue.MaxWeightsPerLayer)
                return new Shape(outChannels, 0, kernelSize, hasBias, null, location, weights,
                    Format(outChannels) + " x " + Format(inChannels) + " x " + Format(kernelSize) + " x " + Format(kernelSize));
            return new Shape(outChannels, (int)columns, kernelSize, hasBias, null, null);
        }
    }

    private static Shape Unknown(string problem, Location? location) => new(0, 0, 0, false, problem, location);

    private static string Format(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// The constructor's argument values (defaults included) of <c>new(...)</c>, or <c>new T(...)</c> with T
    /// written as in the declaration, when every argument is an int or bool literal and the arity and names leave
    /// exactly one constructor: then overload resolution has only that candidate, and binding would give the same
    /// values. Anything else returns null, and the caller binds.
    /// </summary>
    private static Dictionary<string, object?>? LiteralArguments(ExpressionSyntax initializer, TypeSyntax? declaredType, INamedTypeSymbol type)
    {
        ArgumentListSyntax? argumentList;
        switch (initializer)
        {
            case ImplicitObjectCreationExpressionSyntax { Initializer: null } implicitCreation:
                argumentList = implicitCreation.ArgumentList;
                break;
            case ObjectCreationExpressionSyntax { Initializer: null } creation when declaredType is not null &&
                // Written the same in the same class, the name binds to the declared type.
                creation.Type.IsEquivalentTo(declaredType is NullableTypeSyntax nullable ? nullable.ElementType : declaredType, topLevel: false):
                argumentList = creation.ArgumentList;
                break;
            default:
                return null;
        }
        if (argumentList is null) return null;
        var arguments = argumentList.Arguments;

        IMethodSymbol? match = null;
        foreach (var constructor in type.InstanceConstructors)
        {
            bool? fits = Fits(constructor, arguments);
            if (fits is null) return null;
            if (fits == false) continue;
            if (match is not null) return null;
            match = constructor;
        }
        if (match is null || match.DeclaredAccessibility != Accessibility.Public) return null;

        var values = new Dictionary<string, object?>(System.StringComparer.Ordinal);
        var parameters = match.Parameters;
        for (int i = 0; i < arguments.Count; i++)
        {
            var argument = arguments[i];
            var parameter = argument.NameColon is { } nameColon ? Parameter(parameters, nameColon.Name.Identifier.ValueText)! : parameters[i];
            object? value = argument.Expression switch
            {
                LiteralExpressionSyntax { RawKind: (int)SyntaxKind.NumericLiteralExpression, Token.Value: int number }
                    when parameter.Type.SpecialType == SpecialType.System_Int32 => number,
                LiteralExpressionSyntax { RawKind: (int)SyntaxKind.TrueLiteralExpression or (int)SyntaxKind.FalseLiteralExpression } literal
                    when parameter.Type.SpecialType == SpecialType.System_Boolean => literal.IsKind(SyntaxKind.TrueLiteralExpression),
                _ => null,
            };
            if (value is null) return null;
            values[parameter.Name] = value;
        }
        foreach (var parameter in parameters)
            if (!values.ContainsKey(parameter.Name)) values[parameter.Name] = parameter.ExplicitDefaultValue;
        return values;

        // False: the compiler cannot apply this constructor (too many arguments, an unknown name, a required
        // parameter left out). Null: it might, in ways this does not model (params, ref, named before positional).
        static bool? Fits(IMethodSymbol constructor, SeparatedSyntaxList<ArgumentSyntax> arguments)
        {
            var parameters = constructor.Parameters;
            if (constructor.IsVararg || parameters.Length > 64) return null;
            foreach (var parameter in parameters)
                if (parameter.IsParams || parameter.RefKind != RefKind.None) return null;
            if (arguments.Count > parameters.Length) return false;
            ulong given = 0;
            bool named = false;
            for (int i = 0; i < arguments.Count; i++)
            {
                var argument = arguments[i];
                if (!argument.RefKindKeyword.IsKind(SyntaxKind.None)) return null;
                int index = i;
                if (argument.NameColon is { } nameColon)
                {
                    named = true;
                    index = -1;
                    for (int p = 0; p < parameters.Length; p++)
                        if (parameters[p].Name == nameColon.Name.Identifier.ValueText) index = p;
                    if (index < 0) return false;
                }
                else if (named) return null;
                if ((given & (1UL << index)) != 0) return null;
                given |= 1UL << index;
            }
            for (int p = 0; p < parameters.Length; p++)
            {
                if ((given & (1UL << p)) != 0) continue;
                var parameter = parameters[p];
                if (!parameter.IsOptional) return false;
                // Caller-info and [Optional] defaults are not the declared default.
                if (!parameter.HasExplicitDefaultValue || !parameter.GetAttributes().IsEmpty) return null;
            }
            return true;
        }

        static IParameterSymbol? Parameter(System.Collections.Immutable.ImmutableArray<IParameterSymbol> parameters, string name)
        {
            foreach (var parameter in parameters)
                if (parameter.Name == name) return parameter;
            return null;
        }
    }

    private static bool TryPositive(Dictionary<string, object?> values, string name, out int value, out string? problem)
    {
        value = values.TryGetValue(name, out var v) && v is int i ? i : 0;
        problem = value > 0 ? null : "argument '" + name + "' is " + (v is null ? "missing" : System.Convert.ToString(v, CultureInfo.InvariantCulture)) + ", not a positive size";
        return problem is null;
    }
}
