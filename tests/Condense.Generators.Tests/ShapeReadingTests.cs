using Condense.Generators.Parsing;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Condense.Generators.Tests;

/// <summary>
/// The parser reads literal layer arguments from syntax and binds everything else: each pair below writes the same
/// layer with literals and with constants (which must be bound), and the two must plan and report the same.
/// </summary>
public sealed class ShapeReadingTests
{
    [Theory]
    [InlineData("Linear", "new(64, 32)", "new(A, B)")]
    [InlineData("Linear", "new(64, 0x20)", "new(A, B)")]
    [InlineData("Linear", "new(64, 32, false)", "new(A, B, F)")]
    [InlineData("Linear", "new(64, 32, bias: false)", "new(A, B, bias: F)")]
    [InlineData("Linear", "new(outFeatures: 32, inFeatures: 64)", "new(outFeatures: B, inFeatures: A)")]
    [InlineData("Linear", "new(inFeatures: 64, 32)", "new(inFeatures: A, B)")]
    [InlineData("Linear", "new Linear(64, 32)", "new Linear(A, B)")]
    [InlineData("Linear?", "new Linear(64, 32, true)", "new Linear(A, B, T)")]
    [InlineData("Linear", "new Condense.Nn.Linear(64, 32)", "new Condense.Nn.Linear(A, B)")]
    [InlineData("Linear", "new(0, 32)", "new(Z, B)")]
    [InlineData("Linear", "new(64, 32, 1)", "new(A, B, One)")]
    [InlineData("Linear", "new(64)", "new(A)")]
    [InlineData("Linear", "new(64, 32, bias: false, bias: true)", "new(A, B, bias: F, bias: T)")]
    [InlineData("Linear", "new(64, 32, scale: 2)", "new(A, B, scale: One)")]
    [InlineData("Linear", "new(64, 32) { }", "new(A, B) { }")]
    [InlineData("Linear", "new(64L, 32)", "new(AL, B)")]
    [InlineData("Linear", "new Derived(64, 32)", "new Derived(A, B)")]
    [InlineData("Conv2d", "new(3, 8, 3)", "new(3, 8, K)")]
    [InlineData("Conv2d", "new(3, 8, kernelSize: 3, padding: 1)", "new(3, 8, kernelSize: K, padding: One)")]
    [InlineData("Conv2d", "new(3, 8, 3, 2, 1, false)", "new(3, 8, K, 2, One, F)")]
    [InlineData("Conv2d", "new(3, 8, padding: 1, kernelSize: 3, bias: false)", "new(3, 8, padding: One, kernelSize: K, bias: F)")]
    public void LiteralAndConstantArgumentsPlanTheSame(string type, string literal, string constant)
    {
        var fromLiterals = Resolve(type, literal);
        var fromConstants = Resolve(type, constant);

        Assert.Equal(fromConstants.Spec.Layers, fromLiterals.Spec.Layers);
        Assert.Equal(Problems(fromConstants), Problems(fromLiterals));
    }

    [Fact]
    public void ALocalTypeNamedLikeTheLayerIsBoundNotAssumed()
    {
        // 'new Linear(...)' here names the model's own Linear, which is not Condense's: the field's type says nothing.
        var resolution = Resolve("Condense.Nn.Linear", "new Linear(64, 32)", extraMember: "sealed class Linear : Condense.Nn.Linear { public Linear(int a, int b) : base(a, b) { } }");

        Assert.False(Assert.Single(resolution.Spec.Layers).ShapeKnown);
        Assert.Contains(resolution.Problems, p => p.Descriptor.Id == "CND0006");
    }

    [Fact]
    public void ArrayLengthFromALiteralAndFromAConstantAgree()
    {
        static string Source(string length) => $$"""
            using Condense;
            using Condense.Nn;

            [Compressible]
            public partial class Block : Module
            {
                [Quantize(4)] readonly Linear up = new(8, 8);
            }

            [Compressible]
            public partial class M : Module
            {
                const int N = 3;
                readonly Block[] blocks = new Block[{{length}}];
            }
            """;
        var literal = ResolveSource(Source("3"));
        var constant = ResolveSource(Source("N"));

        Assert.Equal(3, literal.Spec.Layers.Count);
        Assert.Equal(constant.Spec.Layers, literal.Spec.Layers);
    }

    private static ModelResolution Resolve(string type, string initializer, string extraMember = "") => ResolveSource($$"""
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class M : Module
        {
            const int A = 64, B = 32, Z = 0, K = 3, One = 1;
            const long AL = 64;
            const bool F = false, T = true;
            {{extraMember}}

            [Quantize(4)]
            readonly {{type}} layer = {{initializer}};
        }

        public sealed class Derived : Linear
        {
            public Derived(int inFeatures, int outFeatures) : base(inFeatures, outFeatures) { }
        }
        """);

    private static ModelResolution ResolveSource(string source)
    {
        var compilation = TestCompilation.Create(source);
        var tree = compilation.SyntaxTrees.Single();
        var semanticModel = compilation.GetSemanticModel(tree);
        var declaration = tree.GetRoot().DescendantNodes().OfType<ClassDeclarationSyntax>().Single(c => c.Identifier.ValueText == "M");
        return ModelParser.Resolve((INamedTypeSymbol)semanticModel.GetDeclaredSymbol(declaration)!, semanticModel, default);
    }

    private static string[] Problems(ModelResolution resolution) =>
        [.. resolution.Problems.Select(p => p.Descriptor.Id + ": " + p.ToDiagnostic().GetMessage(System.Globalization.CultureInfo.InvariantCulture))];
}
