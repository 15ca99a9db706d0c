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
        DiagnosticDescriptors.NestedModelUnresolvable);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var compressible = start.Compilation.GetTypeByMetadataName(KnownTypeNames.CompressibleAttribute);
            if (compressible is null) return;
            start.RegisterSyntaxNodeAction(node => AnalyzeClass(node, compressible), SyntaxKind.ClassDeclaration);
        });
    }

    private static void AnalyzeClass(SyntaxNodeAnalysisContext context, INamedTypeSymbol compressible)
    {
        var declaration = (ClassDeclarationSyntax)context.Node;
        if (declaration.AttributeLists.Count == 0) return;
        if (context.SemanticModel.GetDeclaredSymbol(declaration, context.CancellationToken) is not { } type) return;

        // Analyze a partial model once: at the declaration that carries [Compressible], as the generator does.
        var attribute = type.GetAttributes().FirstOrDefault(a =>
            SymbolEqualityComparer.Default.Equals(a.AttributeClass, compressible) &&
            a.ApplicationSyntaxReference is { } reference &&
            reference.SyntaxTree == declaration.SyntaxTree &&
            declaration.Span.Contains(reference.Span));
        if (attribute is null) return;

        var resolution = ModelParser.Resolve(type, context.SemanticModel, context.CancellationToken);
        foreach (var problem in resolution.Problems)
            if (!ModelParser.IsReportedByGenerator(problem.Descriptor))
                context.ReportDiagnostic(problem.ToDiagnostic());
    }
}
