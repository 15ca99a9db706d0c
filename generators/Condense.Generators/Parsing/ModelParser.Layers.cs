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
    private readonly record struct Shape(int OutFeatures, int InFeatures, int KernelSize, bool HasBias, string? Problem, Location? ProblemLocation);

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
        public long BytesBefore, BytesAfter;

        public bool HasAnyAttribute => Settings.KeepDense || Settings.Quantize || Settings.LowRank || Settings.LowRankCorrection || Settings.Sparsify || Settings.Subspace;

        public LayerEntry Prefixed(string prefix) => new()
        {
            Path = prefix + Path, AccessName = AccessName, IsNullable = IsNullable, Kind = Kind, ShapeKnown = ShapeKnown,
            OutFeatures = OutFeatures, InFeatures = InFeatures, KernelSize = KernelSize, HasBias = HasBias,
            Settings = Settings, Checked = true, HasError = HasError, BytesBefore = BytesBefore, BytesAfter = BytesAfter,
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
                GlobalSparsity: s.Technique == StorageTechnique.UnstructuredSparse && s.SparsityScope == 1,
                LayerFloor: s.Technique == StorageTechnique.UnstructuredSparse && s.SparsityScope == 1 ? s.LayerFloor : 0,
                PruneStartStep: s.Technique == StorageTechnique.UnstructuredSparse && s.HasPruningSchedule ? s.PruneStartStep : 0,
                PruneEndStep: s.Technique == StorageTechnique.UnstructuredSparse && s.HasPruningSchedule ? s.PruneEndStep : 0,
                PruneFrequency: s.Technique == StorageTechnique.UnstructuredSparse && s.HasPruningSchedule ? s.PruneFrequency : 0);
        }
    }

    /// <summary>The layers and layer-holding members of one model, flattened.</summary>
    private sealed class ModelLayers
    {
        public readonly List<LayerEntry> Layers = new();
        public readonly List<MemberSpec> Members = new();
        public bool HasErrors;
    }

    /// <summary>State shared while resolving a model and the models nested in it.</summary>
    private sealed class ResolveContext(SemanticModelCache models, CancellationToken cancellationToken)
    {
        public readonly SemanticModelCache Models = models;
        public readonly CancellationToken CancellationToken = cancellationToken;
        public readonly Dictionary<INamedTypeSymbol, ModelLayers> Nested = new(SymbolEqualityComparer.Default);
        public readonly HashSet<INamedTypeSymbol> Stack = new(SymbolEqualityComparer.Default);
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
            if (anyAttribute)
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
        if (shape.Problem is not null)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ShapeNotConstant, shape.ProblemLocation, member.Name, shape.Problem, model.Name));

        var entry = new LayerEntry
        {
            Path = member.Name,
            AccessName = SyntaxFacts.GetKeywordKind(member.Name) != SyntaxKind.None ? "@" + member.Name : member.Name,
            IsNullable = memberType!.NullableAnnotation == NullableAnnotation.Annotated,
            Kind = kind.Value,
            ShapeKnown = shape.Problem is null,
            OutFeatures = shape.OutFeatures,
            InFeatures = shape.InFeatures,
            KernelSize = shape.KernelSize,
            HasBias = shape.HasBias,
            Settings = ReadSettings(attributes),
            Attributes = attributes,
        };
        result.Members.Add(new MemberSpec(MemberKind.Layer, entry.Path, entry.AccessName, entry.IsNullable, 1, 0, result.Layers.Count));
        result.Layers.Add(entry);
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
            Fail("'" + nestedType.Name + "' contains itself, so its layers cannot be listed");
            return;
        }
        bool isArray = memberType is IArrayTypeSymbol;
        int length = 0;
        if (isArray)
        {
            var (known, problem) = ArrayLength(member, context);
            if (problem is not null)
            {
                Fail(problem);
                return;
            }
            length = known;
        }

        var nested = ResolveNested(nestedType, context);
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
        var scratch = new List<DiagnosticInfo>();
        var layers = ResolveModelLayers(type, context, scratch);
        layers.HasErrors |= scratch.Any(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error);
        context.Stack.Remove(type);
        context.Nested[type] = layers;
        return layers;
    }

    /// <summary>The length of an array of blocks from its initializer: <c>new Block[N]</c> with constant N, or explicit elements.</summary>
    private static (int Length, string? Problem) ArrayLength(ISymbol member, ResolveContext context)
    {
        var syntax = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(context.CancellationToken);
        var initializer = syntax switch
        {
            VariableDeclaratorSyntax variable => variable.Initializer?.Value,
            PropertyDeclarationSyntax property => property.Initializer?.Value,
            _ => null,
        };
        const string Hint = "initialize it as 'new T[N]' with a constant N (and assign the blocks in the constructor), or list the blocks ('[new(), new()]')";
        switch (initializer)
        {
            case null:
                return (0, "array '" + member.Name + "' has no initializer, so its length is not known at compile time; " + Hint);
            case ArrayCreationExpressionSyntax creation when creation.Initializer is { } elements:
                return (elements.Expressions.Count, null);
            case ArrayCreationExpressionSyntax creation when creation.Type.RankSpecifiers.Count == 1 && creation.Type.RankSpecifiers[0].Sizes.Count == 1:
                var size = creation.Type.RankSpecifiers[0].Sizes[0];
                if (size is LiteralExpressionSyntax { Token.Value: int literal }) return (literal, null);
                var constant = context.Models.For(size.SyntaxTree).GetConstantValue(size, context.CancellationToken);
                if (constant.HasValue && constant.Value is int n && n >= 0) return (n, null);
                return (0, "the length '" + size.ToString() + "' of array '" + member.Name + "' is not a compile-time constant; " + Hint);
            case ImplicitArrayCreationExpressionSyntax implicitCreation:
                return (implicitCreation.Initializer.Expressions.Count, null);
            case CollectionExpressionSyntax collection when collection.Elements.All(e => e is ExpressionElementSyntax):
                return (collection.Elements.Count, null);
            default:
                return (0, "the length of array '" + member.Name + "' is not known at compile time; " + Hint);
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
            return new Shape(outFeatures, inFeatures, 0, hasBias, null, null);
        }
        else
        {
            if (!TryPositive(values, "inChannels", out int inChannels, out var problem) ||
                !TryPositive(values, "outChannels", out int outChannels, out problem) ||
                !TryPositive(values, "kernelSize", out int kernelSize, out problem))
                return Unknown(problem!, location);
            long columns = (long)inChannels * kernelSize * kernelSize;
            if (columns > int.MaxValue)
                return Unknown("inChannels x kernelSize x kernelSize = " + columns.ToString(CultureInfo.InvariantCulture) + " is too large", location);
            return new Shape(outChannels, (int)columns, kernelSize, hasBias, null, null);
        }

        static Shape Unknown(string problem, Location? location) => new(0, 0, 0, false, problem, location);
    }

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
