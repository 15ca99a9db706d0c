using System.Collections.Immutable;
using System.Linq;
using Condense.Generators.Diagnostics;
using Condense.Generators.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Condense.Generators.Analyzers;

/// <summary>
/// Checks every <c>[Compressible]</c> model's plan at build time (every diagnostic except CND0009, which only the generator reports) through the same
/// <see cref="ModelParser"/> the generator uses, so what it reports is what the generator would plan.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class CompressionPlanAnalyzer : DiagnosticAnalyzer
{
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(
        DiagnosticDescriptors.ModelNotPartial,
        DiagnosticDescriptors.ModelNotModule,
        DiagnosticDescriptors.UnsupportedBits,
        DiagnosticDescriptors.UnsupportedGroupSize,
        DiagnosticDescriptors.KeepDenseWithCompression,
        DiagnosticDescriptors.ShapeNotConstant,
        DiagnosticDescriptors.BudgetExceeded,
        DiagnosticDescriptors.AttributeOnNonLayer,
        DiagnosticDescriptors.InvalidSparsityPattern,
        DiagnosticDescriptors.InvalidSparsityFraction,
        DiagnosticDescriptors.InvalidRank,
        DiagnosticDescriptors.RankSavesNothing,
        DiagnosticDescriptors.NoKernelForCombination,
        DiagnosticDescriptors.SameFamilyTwice,
        DiagnosticDescriptors.MixedPrecisionInfeasible,
        DiagnosticDescriptors.MixedPrecisionBudgetNeedsNoCompression,
        DiagnosticDescriptors.OverrideMatchesNothing,
        DiagnosticDescriptors.DuplicateLayerPath,
        DiagnosticDescriptors.InvalidSubspace,
        DiagnosticDescriptors.IncompatibleLayerHandled,
        DiagnosticDescriptors.OverrideConflict,
        DiagnosticDescriptors.NestedModelUnresolvable,
        DiagnosticDescriptors.AttributeOutsideModel,
        DiagnosticDescriptors.LayerTooLarge,
        DiagnosticDescriptors.LayersNotRegistered,
        DiagnosticDescriptors.NotAvailableYet,
        DiagnosticDescriptors.InvalidPruningSchedule,
        DiagnosticDescriptors.InvalidGlobalSparsity,
        DiagnosticDescriptors.SubspaceSavesLittle,
        DiagnosticDescriptors.DenseProjectionTooLarge,
        DiagnosticDescriptors.SubspaceCombination,
        DiagnosticDescriptors.SubspaceConflict,
        DiagnosticDescriptors.MixedPrecisionWithoutForward);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var compressible = start.Compilation.GetTypeByMetadataName(KnownTypeNames.CompressibleAttribute);
            if (compressible is null) return;
            var layerAttributes = KnownTypeNames.LayerAttributes
                .Select(a => start.Compilation.GetTypeByMetadataName(a.MetadataName))
                .Where(a => a is not null)
                .Select(a => a!)
                .ToImmutableArray();
            start.RegisterSyntaxNodeAction(node => AnalyzeClass(node, compressible), SyntaxKind.ClassDeclaration);
            start.RegisterSyntaxNodeAction(node => AnalyzeAttributesOutsideModels(node, compressible, layerAttributes), SyntaxKind.ClassDeclaration);
        });
    }

    private static void AnalyzeClass(SyntaxNodeAnalysisContext context, INamedTypeSymbol compressible)
    {
        var declaration = (ClassDeclarationSyntax)context.Node;
        if (declaration.AttributeLists.Count == 0) return;
        if (context.SemanticModel.GetDeclaredSymbol(declaration, context.CancellationToken) is not { } type) return;

        // Analyze a partial model once: at the declaration that carries its first [Compressible], as the generator
        // does (two declarations may both carry one; the compiler reports the second, CS0579).
        var attribute = type.GetAttributes().FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, compressible));
        if (attribute?.ApplicationSyntaxReference is not { } reference ||
            reference.SyntaxTree != declaration.SyntaxTree || !declaration.Span.Contains(reference.Span)) return;

        var resolution = ModelParser.Resolve(type, context.SemanticModel, context.CancellationToken);
        foreach (var problem in resolution.Problems)
            if (!ModelParser.IsReportedByGenerator(problem.Descriptor))
                context.ReportDiagnostic(problem.ToDiagnostic());
    }

    /// <summary>CND0024: a layer attribute on a member of a class that no [Compressible] declaration makes a model.</summary>
    private static void AnalyzeAttributesOutsideModels(SyntaxNodeAnalysisContext context, INamedTypeSymbol compressible, ImmutableArray<INamedTypeSymbol> layerAttributes)
    {
        var declaration = (ClassDeclarationSyntax)context.Node;
        // Cheap syntactic filter first: most classes have no attributed fields or properties.
        bool anyAttributedMember = false;
        foreach (var member in declaration.Members)
            if (member is FieldDeclarationSyntax { AttributeLists.Count: > 0 } or PropertyDeclarationSyntax { AttributeLists.Count: > 0 })
            {
                anyAttributedMember = true;
                break;
            }
        if (!anyAttributedMember) return;
        if (context.SemanticModel.GetDeclaredSymbol(declaration, context.CancellationToken) is not { } type) return;
        foreach (var attribute in type.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, compressible)) return;

        foreach (var member in declaration.Members)
        {
            SyntaxList<AttributeListSyntax> lists;
            string name;
            switch (member)
            {
                case FieldDeclarationSyntax field when field.AttributeLists.Count > 0 && field.Declaration.Variables.Count > 0:
                    lists = field.AttributeLists;
                    name = field.Declaration.Variables[0].Identifier.ValueText;
                    break;
                case PropertyDeclarationSyntax property when property.AttributeLists.Count > 0:
                    lists = property.AttributeLists;
                    name = property.Identifier.ValueText;
                    break;
                default:
                    continue;
            }
            foreach (var list in lists)
                foreach (var syntax in list.Attributes)
                {
                    if (context.SemanticModel.GetSymbolInfo(syntax, context.CancellationToken).Symbol is not IMethodSymbol { ContainingType: { } attributeType }) continue;
                    foreach (var known in layerAttributes)
                        if (SymbolEqualityComparer.Default.Equals(attributeType, known))
                        {
                            string shortName = attributeType.Name.EndsWith("Attribute", System.StringComparison.Ordinal)
                                ? attributeType.Name.Substring(0, attributeType.Name.Length - "Attribute".Length)
                                : attributeType.Name;
                            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.AttributeOutsideModel, syntax.GetLocation(), name, shortName, type.Name));
                        }
                }
        }
    }
}
