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

    /// <returns>Null for a second partial declaration that also carries [Compressible] (the compiler reports it, CS0579).</returns>
    private static ModelSpec? Transform(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
    {
        var type = (INamedTypeSymbol)context.TargetSymbol;
        // One model, one file: only the declaration that carries the type's first [Compressible] generates it;
        // a second one would add a file with the same hint name, and AddSource would throw (CS8785).
        if (ModelParser.FindAttribute(type, KnownTypeNames.CompressibleAttribute)?.ApplicationSyntaxReference is { } first &&
            (first.SyntaxTree != context.TargetNode.SyntaxTree || !context.TargetNode.Span.Contains(first.Span)))
            return null;
        return ModelParser.Resolve(type, context.SemanticModel, cancellationToken).Spec;
    }

    private static EquatableArray<DiagnosticInfo> SelectDiagnostics(ModelSpec? model, CancellationToken cancellationToken) =>
        model?.Diagnostics ?? EquatableArray<DiagnosticInfo>.Empty;

    private static ModelSpec? SelectOutput(ModelSpec? model, CancellationToken cancellationToken) =>
        model is null ? null : model with { Diagnostics = EquatableArray<DiagnosticInfo>.Empty };

    private static void ReportDiagnostics(SourceProductionContext context, EquatableArray<DiagnosticInfo> diagnostics)
    {
        foreach (var diagnostic in diagnostics)
            context.ReportDiagnostic(diagnostic.ToDiagnostic());
    }

    private static void Generate(SourceProductionContext context, ModelSpec? model)
    {
        if (model is null) return;
        // A plan with errors is the analyzer's to report. The members are still emitted, throwing the errors'
        // text, so that code calling Compress, Save or Load gets no follow-on errors (CS1061, CS0117).
        if (model.CanGenerate || model.InvalidPlan is not null)
            context.AddSource(model.HintName, ModelEmitter.Emit(model));
    }
}
