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

/// <summary>CND0004: replaces the group size with the nearest one that has a kernel and divides the layer's input.</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(NearestGroupSizeCodeFixProvider)), Shared]
public sealed class NearestGroupSizeCodeFixProvider : CodeFixProvider
{
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(DiagnosticDescriptors.UnsupportedGroupSizeId);

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null) return;
        foreach (var diagnostic in context.Diagnostics)
        {
            // The analyzer computed the suggestion from the kernel catalogue; the fix only applies it.
            if (!diagnostic.Properties.TryGetValue(DiagnosticInfo.SuggestedValueKey, out var suggested) ||
                !int.TryParse(suggested, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int groupSize))
                continue;
            if (root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true) is not ExpressionSyntax expression) continue;
            context.RegisterCodeFix(
                CodeAction.Create(
                    "Use group size " + suggested + (groupSize == 0 ? " (one group per row)" : ""),
                    ct => ReplaceAsync(context.Document, expression, groupSize, ct),
                    equivalenceKey: nameof(NearestGroupSizeCodeFixProvider) + suggested),
                diagnostic);
        }
    }

    private static async Task<Document> ReplaceAsync(Document document, ExpressionSyntax expression, int groupSize, CancellationToken cancellationToken)
    {
        var root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        var literal = SyntaxFactory.LiteralExpression(SyntaxKind.NumericLiteralExpression, SyntaxFactory.Literal(groupSize))
            .WithTriviaFrom(expression);
        return document.WithSyntaxRoot(root!.ReplaceNode(expression, literal));
    }
}
