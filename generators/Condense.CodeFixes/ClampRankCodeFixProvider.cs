using System.Collections.Immutable;
using System.Composition;
using System.Threading;
using System.Threading.Tasks;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Condense.CodeFixes;

/// <summary>
/// CND0012 and CND0013: replaces a rank with the one the analyzer suggests (the largest valid rank, the largest
/// rank that saves bytes, or 1). The analyzer computed it from the kernel catalogue; the fix only applies it.
/// </summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(ClampRankCodeFixProvider)), Shared]
public sealed class ClampRankCodeFixProvider : CodeFixProvider
{
    public override ImmutableArray<string> FixableDiagnosticIds { get; } =
        ImmutableArray.Create(DiagnosticDescriptors.InvalidRankId, DiagnosticDescriptors.RankSavesNothingId);

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null) return;
        foreach (var diagnostic in context.Diagnostics)
        {
            if (!diagnostic.Properties.TryGetValue(DiagnosticInfo.SuggestedValueKey, out var suggested) ||
                !int.TryParse(suggested, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int rank))
                continue;
            if (root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true) is not ExpressionSyntax expression) continue;
            context.RegisterCodeFix(
                CodeAction.Create("Clamp the rank to " + suggested, ct => ReplaceAsync(context.Document, expression, rank, ct), equivalenceKey: nameof(ClampRankCodeFixProvider) + suggested),
                diagnostic);
        }
    }

    private static async Task<Document> ReplaceAsync(Document document, ExpressionSyntax expression, int rank, CancellationToken cancellationToken)
    {
        var root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        var literal = SyntaxFactory.LiteralExpression(SyntaxKind.NumericLiteralExpression, SyntaxFactory.Literal(rank)).WithTriviaFrom(expression);
        return document.WithSyntaxRoot(root!.ReplaceNode(expression, literal));
    }
}
