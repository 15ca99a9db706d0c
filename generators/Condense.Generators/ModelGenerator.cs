using System.Threading;
using Condense.Generators.Emitting;
using Condense.Generators.Models;
using Condense.Generators.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Condense.Generators;

/// <summary>
/// Emits the plan, layer registry, Compress, Save and Load of every <c>[Compressible]</c> model. The pipeline
/// only; parsing lives in <see cref="ModelParser"/>, emission in <see cref="ModelEmitter"/>.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed class ModelGenerator : IIncrementalGenerator
{
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        var models = context.SyntaxProvider
            .ForAttributeWithMetadataName(KnownTypeNames.CompressibleAttribute, IsClassDeclaration, Transform)
            .WithTrackingName(TrackingNames.Models);

        var diagnostics = models
            .Select(SelectDiagnostics)
            .WithTrackingName(TrackingNames.Diagnostics);

        var output = models
            .Select(SelectOutput)
            .WithTrackingName(TrackingNames.Output);

        context.RegisterSourceOutput(diagnostics, ReportDiagnostics);
        context.RegisterSourceOutput(output, Generate);
    }

    private static bool IsClassDeclaration(SyntaxNode node, CancellationToken cancellationToken) => node is ClassDeclarationSyntax;

    private static ModelSpec Transform(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken) =>
        ModelParser.Resolve((INamedTypeSymbol)context.TargetSymbol, context.SemanticModel, cancellationToken).Spec;

    private static EquatableArray<DiagnosticInfo> SelectDiagnostics(ModelSpec model, CancellationToken cancellationToken) => model.Diagnostics;

    private static ModelSpec SelectOutput(ModelSpec model, CancellationToken cancellationToken) =>
        model with { Diagnostics = EquatableArray<DiagnosticInfo>.Empty };

    private static void ReportDiagnostics(SourceProductionContext context, EquatableArray<DiagnosticInfo> diagnostics)
    {
        foreach (var diagnostic in diagnostics)
            context.ReportDiagnostic(diagnostic.ToDiagnostic());
    }

    private static void Generate(SourceProductionContext context, ModelSpec model)
    {
        // A plan with errors is the analyzer's to report; generating anyway would only add follow-on errors.
        if (!model.CanGenerate) return;
        context.AddSource(model.HintName, ModelEmitter.Emit(model));
    }
}
