using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Condense.Generators.Parsing;

/// <summary>The resolved model and every problem found on the way, before the generator/analyzer split.</summary>
internal readonly record struct ModelResolution(ModelSpec Spec, IReadOnlyList<DiagnosticInfo> Problems);

/// <summary>
/// Resolves a <c>[Compressible]</c> class (symbols and syntax) into a <see cref="ModelSpec"/> and its problems.
/// The one place that reads the DSL: the generator and <c>CompressionPlanAnalyzer</c> both call it, so the
/// analyzer's diagnostics always describe exactly what the generator would plan.
/// </summary>
internal static partial class ModelParser
{
    /// <summary>Diagnostics that only the generator reports ("cannot generate"); the analyzer reports the rest.</summary>
    public static bool IsReportedByGenerator(DiagnosticDescriptor descriptor) =>
        descriptor.Id == DiagnosticDescriptors.GeneratedMemberConflictId;

    /// <param name="semanticModel">A semantic model of a tree that declares <paramref name="type"/>.</param>
    public static ModelResolution Resolve(INamedTypeSymbol type, SemanticModel semanticModel, CancellationToken cancellationToken)
    {
        var problems = new List<DiagnosticInfo>();
        var models = new SemanticModelCache(semanticModel);

        var compressible = FindAttribute(type, KnownTypeNames.CompressibleAttribute);
        long maxBytes = NamedArgument(compressible, "MaxBytes") is { Value: long mb } ? mb : 0;
        double maxBits = NamedArgument(compressible, "MaxBitsPerWeight") is { Value: double bpw } ? bpw : 0;

        CheckPartial(type, problems, cancellationToken);
        if (!DerivesFrom(type, KnownTypeNames.Module))
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModelNotModule, IdentifierLocation(type, cancellationToken), type.Name));

        var layers = new List<LayerSpec>();
        foreach (var member in type.GetMembers())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var layer = ResolveMember(type, member, models, problems, cancellationToken);
            if (layer is not null) layers.Add(layer);
        }

        bool hasParameterlessConstructor = !type.IsAbstract &&
            type.InstanceConstructors.Any(c => c.Parameters.Length == 0);
        CheckGeneratedMemberConflicts(type, hasParameterlessConstructor, problems, cancellationToken);

        if (!problems.Any(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error) && layers.All(l => l.ShapeKnown))
            CheckBudget(type, compressible, maxBytes, maxBits, layers, problems, cancellationToken);

        bool canGenerate = compressible is not null
            && layers.All(l => l.ShapeKnown)
            && !problems.Any(p => p.Descriptor.DefaultSeverity == DiagnosticSeverity.Error);

        var spec = new ModelSpec(
            Namespace: type.ContainingNamespace is { IsGlobalNamespace: false } ns ? ns.ToDisplayString() : null,
            TypeName: type.Name,
            TypeParameters: TypeParameterList(type),
            HintName: HintName(type),
            Accessibility: AccessibilityText(type.DeclaredAccessibility),
            ContainingTypes: new EquatableArray<ContainingTypeSpec>(ContainingTypes(type)),
            MaxBytes: maxBytes,
            MaxBitsPerWeight: maxBits,
            HasParameterlessConstructor: hasParameterlessConstructor,
            Layers: new EquatableArray<LayerSpec>(layers),
            CanGenerate: canGenerate,
            Diagnostics: new EquatableArray<DiagnosticInfo>(problems.Where(p => IsReportedByGenerator(p.Descriptor))));
        return new ModelResolution(spec, problems);
    }

    private static void CheckPartial(INamedTypeSymbol type, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        for (var current = type; current is not null; current = current.ContainingType)
        {
            bool isPartial = current.DeclaringSyntaxReferences.Any(r =>
                r.GetSyntax(cancellationToken) is TypeDeclarationSyntax declaration &&
                declaration.Modifiers.Any(SyntaxKind.PartialKeyword));
            if (!isPartial)
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ModelNotPartial, IdentifierLocation(current, cancellationToken), type.Name, current.Name));
        }
    }

    private static void CheckGeneratedMemberConflicts(INamedTypeSymbol type, bool emitsLoad, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        foreach (var name in Emitting.ModelEmitter.GeneratedMemberNames)
        {
            if (name == "Load" && !emitsLoad) continue;
            foreach (var member in type.GetMembers(name))
            {
                if (member.IsImplicitlyDeclared) continue;
                var location = member.Locations.FirstOrDefault(l => l.IsInSource);
                problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GeneratedMemberConflict, location, type.Name, name));
                break;
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private static void CheckBudget(INamedTypeSymbol type, AttributeData? compressible, long maxBytes, double maxBits, List<LayerSpec> layers, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        long planned = layers.Sum(l => l.BytesAfter);
        long weightCount = layers.Sum(l => l.WeightCount);
        long weightBytes = layers.Sum(l => l.WeightBytesAfter);
        double bitsPerWeight = weightCount == 0 ? 0 : weightBytes * 8.0 / weightCount;
        var largest = string.Join(", ", layers
            .OrderByDescending(l => l.BytesAfter)
            .ThenBy(l => l.Path, System.StringComparer.Ordinal)
            .Take(3)
            .Select(l => l.Path + " (" + l.TechniqueText + ", " + Bytes(l.BytesAfter) + ")"));

        if (maxBytes > 0 && planned > maxBytes)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BudgetExceeded,
                ArgumentLocation(compressible, "MaxBytes", cancellationToken),
                type.Name, Bytes(planned), "MaxBytes", Bytes(maxBytes), largest));

        if (maxBits > 0 && bitsPerWeight > maxBits)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.BudgetExceeded,
                ArgumentLocation(compressible, "MaxBitsPerWeight", cancellationToken),
                type.Name, BitsText(bitsPerWeight) + " bits per weight", "MaxBitsPerWeight", BitsText(maxBits) + " bits per weight", largest));
    }

    private static string Bytes(long value) => value.ToString("N0", CultureInfo.InvariantCulture) + " bytes";

    private static string BitsText(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    internal static AttributeData? FindAttribute(ISymbol symbol, string metadataName)
    {
        foreach (var attribute in symbol.GetAttributes())
            if (attribute.AttributeClass is { } c && IsType(c, metadataName)) return attribute;
        return null;
    }

    private static TypedConstant? NamedArgument(AttributeData? attribute, string name)
    {
        if (attribute is null) return null;
        foreach (var pair in attribute.NamedArguments)
            if (pair.Key == name) return pair.Value;
        return null;
    }

    internal static bool IsType(ITypeSymbol type, string metadataName) =>
        type.TypeKind != TypeKind.Error &&
        string.Equals(type.OriginalDefinition.ToDisplayString(), metadataName, System.StringComparison.Ordinal);

    private static bool DerivesFrom(INamedTypeSymbol type, string metadataName)
    {
        for (var current = type.BaseType; current is not null; current = current.BaseType)
            if (IsType(current, metadataName)) return true;
        return false;
    }

    private static Location? IdentifierLocation(INamedTypeSymbol type, CancellationToken cancellationToken)
    {
        foreach (var reference in type.DeclaringSyntaxReferences)
            if (reference.GetSyntax(cancellationToken) is BaseTypeDeclarationSyntax declaration)
                return declaration.Identifier.GetLocation();
        return type.Locations.FirstOrDefault();
    }

    /// <summary>The expression of a named attribute argument, else the attribute itself.</summary>
    private static Location? ArgumentLocation(AttributeData? attribute, string name, CancellationToken cancellationToken)
    {
        if (attribute?.ApplicationSyntaxReference?.GetSyntax(cancellationToken) is not AttributeSyntax syntax) return null;
        foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
            if (argument.NameEquals?.Name.Identifier.ValueText == name) return argument.Expression.GetLocation();
        return syntax.GetLocation();
    }

    /// <summary>The expression of the attribute's first positional argument, else the attribute itself.</summary>
    private static Location? PositionalArgumentLocation(AttributeData attribute, CancellationToken cancellationToken)
    {
        if (attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken) is not AttributeSyntax syntax) return null;
        foreach (var argument in syntax.ArgumentList?.Arguments ?? default)
            if (argument.NameEquals is null && argument.NameColon is null) return argument.Expression.GetLocation();
        return syntax.GetLocation();
    }

    private static Location? AttributeLocation(AttributeData attribute, CancellationToken cancellationToken) =>
        attribute.ApplicationSyntaxReference?.GetSyntax(cancellationToken).GetLocation();

    private static string TypeParameterList(INamedTypeSymbol type) =>
        type.TypeParameters.Length == 0 ? "" : "<" + string.Join(", ", type.TypeParameters.Select(p => p.Name)) + ">";

    private static string HintName(INamedTypeSymbol type)
    {
        var parts = new List<string>();
        for (var current = type; current is not null; current = current.ContainingType)
            parts.Insert(0, current.MetadataName.Replace('`', '_'));
        if (type.ContainingNamespace is { IsGlobalNamespace: false } ns) parts.Insert(0, ns.ToDisplayString());
        return string.Join(".", parts) + ".g.cs";
    }

    private static ContainingTypeSpec[] ContainingTypes(INamedTypeSymbol type)
    {
        var result = new List<ContainingTypeSpec>();
        for (var current = type.ContainingType; current is not null; current = current.ContainingType)
        {
            string keyword = current switch
            {
                { IsRecord: true, TypeKind: TypeKind.Struct } => "record struct",
                { IsRecord: true } => "record",
                { TypeKind: TypeKind.Struct } => "struct",
                { TypeKind: TypeKind.Interface } => "interface",
                _ => "class",
            };
            result.Insert(0, new ContainingTypeSpec(keyword, current.Name + TypeParameterList(current)));
        }
        return result.ToArray();
    }

    private static string AccessibilityText(Accessibility accessibility) => accessibility switch
    {
        Accessibility.Public => "public",
        Accessibility.Internal => "internal",
        Accessibility.Private => "private",
        Accessibility.Protected => "protected",
        Accessibility.ProtectedOrInternal => "protected internal",
        Accessibility.ProtectedAndInternal => "private protected",
        _ => "internal",
    };

    /// <summary>
    /// Members of a partial model may live in other trees than the one the pipeline handed us. Getting their
    /// semantic model costs a bind, so it happens only for split models, once per tree.
    /// </summary>
    private sealed class SemanticModelCache(SemanticModel first)
    {
        private readonly Dictionary<SyntaxTree, SemanticModel> models = new() { [first.SyntaxTree] = first };

        public SemanticModel For(SyntaxTree tree)
        {
            if (!models.TryGetValue(tree, out var model))
                models[tree] = model = first.Compilation.GetSemanticModel(tree);
            return model;
        }
    }
}
