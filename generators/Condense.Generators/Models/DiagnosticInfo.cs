using System.Collections.Immutable;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Condense.Generators.Models;

/// <summary>
/// A diagnostic as equatable data: the tree and span instead of a <see cref="Location"/>, the arguments already
/// formatted. Turned into a <see cref="Diagnostic"/> only when reported, which keeps <c>#pragma</c> suppression working.
/// </summary>
/// <param name="SuggestedValue">A replacement a code fix can offer (e.g. the nearest valid group size), or null.</param>
internal sealed record DiagnosticInfo(DiagnosticDescriptor Descriptor, SyntaxTree? Tree, TextSpan Span, EquatableArray<string> Arguments, string? SuggestedValue = null)
{
    /// <summary>The <see cref="Diagnostic.Properties"/> key under which <see cref="SuggestedValue"/> travels to code fixes.</summary>
    public const string SuggestedValueKey = "SuggestedValue";

    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, Location? location, params string[] arguments) =>
        new(descriptor, location?.SourceTree, location?.SourceSpan ?? default, new EquatableArray<string>(arguments));

    public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, SyntaxNode node, params string[] arguments) =>
        new(descriptor, node.SyntaxTree, node.Span, new EquatableArray<string>(arguments));

    public Diagnostic ToDiagnostic() =>
        Diagnostic.Create(
            Descriptor,
            Tree is null ? Location.None : Location.Create(Tree, Span),
            SuggestedValue is null ? null : ImmutableDictionary<string, string?>.Empty.Add(SuggestedValueKey, SuggestedValue),
            Arguments.Cast<object>().ToArray());
}
