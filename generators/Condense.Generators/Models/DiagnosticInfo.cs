using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Condense.Generators.Models;

/// <summary>
/// A diagnostic as equatable data: the tree and span instead of a <see cref="Location"/>, the arguments already
/// formatted. Turned into a <see cref="Diagnostic"/> only when reported, which keeps <c>#pragma</c> suppression working.
/// </summary>
internal sealed record DiagnosticInfo(DiagnosticDescriptor Descriptor, SyntaxTree? Tree, TextSpan Span, EquatableArray<string> Arguments)
{
    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, Location? location, params string[] arguments) =>
        new(descriptor, location?.SourceTree, location?.SourceSpan ?? default, new EquatableArray<string>(arguments));

    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, SyntaxNode node, params string[] arguments) =>
        new(descriptor, node.SyntaxTree, node.Span, new EquatableArray<string>(arguments));

    public Diagnostic ToDiagnostic() =>
        Diagnostic.Create(Descriptor, Tree is null ? Location.None : Location.Create(Tree, Span), Arguments.Cast<object>().ToArray());
}
