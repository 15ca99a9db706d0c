using System.Collections.Immutable;
using System.Composition;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using Condense.Generators.Diagnostics;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Condense.CodeFixes;

/// <summary>CND0005, CND0014, CND0015: removes the conflicting attribute the diagnostic is reported on.</summary>
[ExportCodeFixProvider(LanguageNames.CSharp, Name = nameof(RemoveAttributeCodeFixProvider)), Shared]
public sealed class RemoveAttributeCodeFixProvider : CodeFixProvider
{
    public override ImmutableArray<string> FixableDiagnosticIds { get; } = ImmutableArray.Create(
        DiagnosticDescriptors.KeepDenseWithCompressionId, DiagnosticDescriptors.NoKernelForCombinationId, DiagnosticDescriptors.SameFamilyTwiceId);

    public override FixAllProvider GetFixAllProvider() => WellKnownFixAllProviders.BatchFixer;

    public override async Task RegisterCodeFixesAsync(CodeFixContext context)
    {
        var root = await context.Document.GetSyntaxRootAsync(context.CancellationToken).ConfigureAwait(false);
        if (root is null) return;
        foreach (var diagnostic in context.Diagnostics)
        {
            var attribute = root.FindNode(diagnostic.Location.SourceSpan, getInnermostNodeForTie: true).AncestorsAndSelf().OfType<AttributeSyntax>().FirstOrDefault();
            if (attribute?.Parent is not AttributeListSyntax) continue;
            context.RegisterCodeFix(
                CodeAction.Create("Remove [" + attribute.Name + "]", ct => RemoveAsync(context.Document, attribute, ct), equivalenceKey: nameof(RemoveAttributeCodeFixProvider) + attribute.Name),
                diagnostic);
        }
    }

    private static async Task<Document> RemoveAsync(Document document, AttributeSyntax attribute, CancellationToken cancellationToken)
    {
        var root = await document.GetSyntaxRootAsync(cancellationToken).ConfigureAwait(false);
        var list = (AttributeListSyntax)attribute.Parent!;
        if (list.Attributes.Count > 1)
            return document.WithSyntaxRoot(root!.ReplaceNode(list, list.WithAttributes(list.Attributes.Remove(attribute))));

        // The list goes with its line: what came before it (blank lines, indentation) moves to the next token.
        var annotation = new SyntaxAnnotation();
        var next = list.GetLastToken().GetNextToken();
        var marked = root!.ReplaceSyntax(
            new[] { list }, (_, rewritten) => rewritten.WithAdditionalAnnotations(annotation),
            new[] { next }, (_, rewritten) => rewritten.WithLeadingTrivia(list.GetLeadingTrivia()),
            Enumerable.Empty<SyntaxTrivia>(), (_, rewritten) => rewritten);
        return document.WithSyntaxRoot(marked.RemoveNode(marked.GetAnnotatedNodes(annotation).Single(), SyntaxRemoveOptions.KeepNoTrivia)!);
    }
}
