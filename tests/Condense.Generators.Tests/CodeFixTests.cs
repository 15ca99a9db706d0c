using Condense.CodeFixes;
using Condense.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CodeActions;
using Microsoft.CodeAnalysis.CodeFixes;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace Condense.Generators.Tests;

/// <summary>Code fixes applied through a workspace, then re-analyzed: the fixed model has no diagnostics left.</summary>
public sealed class CodeFixTests
{
    [Fact]
    public void MakePartialFixesTheModelAndItsContainingType() => VerifyFix(
        new MakePartialCodeFixProvider(),
        """
        using Condense;
        using Condense.Nn;

        class Outer
        {
            [Compressible]
            public sealed class Mlp : Module
            {
                readonly Linear hidden = new(4, 4);
            }
        }
        """,
        """
        using Condense;
        using Condense.Nn;

        partial class Outer
        {
            [Compressible]
            public sealed partial class Mlp : Module
            {
                readonly Linear hidden = new(4, 4);
            }
        }
        """);

    [Fact]
    public void GroupSizeIsRoundedToTheNearestValidDivisor() => VerifyFix(
        new NearestGroupSizeCodeFixProvider(),
        Sources.FashionMlp.Replace("GroupSize = 16", "GroupSize = 64").Replace("GroupSize = 64)]\n    readonly Linear hidden2", "GroupSize = 48)]\n    readonly Linear hidden2"),
        // 784: only 0 and 16 divide it, 16 is nearest to 64; 48 has no kernel, 32 and 64 both divide 256 and are as near: the larger wins.
        Sources.FashionMlp);

    [Fact]
    public void RankIsClampedToTheLargestValidRank() => VerifyFix(
        new ClampRankCodeFixProvider(),
        """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [LowRank(10)] readonly Linear head = new(100, 10);
            [Quantize(4), LowRankCorrection(0)] readonly Linear hidden = new(64, 64);
        }
        """,
        """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [LowRank(9)] readonly Linear head = new(100, 10);
            [Quantize(4), LowRankCorrection(1)] readonly Linear hidden = new(64, 64);
        }
        """);

    [Fact]
    public void RankThatSavesNothingIsClampedToOneThatSaves() => VerifyFix(
        new ClampRankCodeFixProvider(),
        """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [LowRank(60)] readonly Linear hidden = new(100, 100);
        }
        """,
        """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [LowRank(49)] readonly Linear hidden = new(100, 100);
        }
        """);

    [Fact]
    public void ConflictingAttributesAreRemoved() => VerifyFix(
        new RemoveAttributeCodeFixProvider(),
        """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [Quantize(4), KeepDense]
            readonly Linear a = new(64, 64);

            [LowRank(8)]
            [LowRankCorrection(8)]
            readonly Linear b = new(128, 128);

            [Sparsify(N = 2, M = 4), Quantize(3)]
            readonly Linear c = new(128, 100);
        }
        """,
        """
        using Condense;
        using Condense.Nn;

        [Compressible]
        public partial class Mlp : Module
        {
            [Quantize(4)]
            readonly Linear a = new(64, 64);

            [LowRank(8)]
            readonly Linear b = new(128, 128);

            [Sparsify(N = 2, M = 4)]
            readonly Linear c = new(128, 100);
        }
        """);

    [Fact]
    public void NearestGroupSizeUsesTheCatalogue()
    {
        Assert.Equal(16, Condense.Generators.Parsing.ModelParser.NearestGroupSize(64, 784));
        Assert.Equal(64, Condense.Generators.Parsing.ModelParser.NearestGroupSize(48, 256));
        Assert.Equal(0, Condense.Generators.Parsing.ModelParser.NearestGroupSize(16, 27));
        Assert.Equal(256, Condense.Generators.Parsing.ModelParser.NearestGroupSize(1000, 0));
    }

    /// <summary>Applies <paramref name="fix"/> to every diagnostic it can fix until none is left, then compares the text.</summary>
    private static void VerifyFix(CodeFixProvider fix, string source, string expected)
    {
        using var workspace = new AdhocWorkspace();
        var project = workspace.AddProject("Tests", LanguageNames.CSharp)
            .WithParseOptions(TestCompilation.ParseOptions)
            .WithCompilationOptions(new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable))
            .WithMetadataReferences(TestCompilation.Create().References);
        var document = project.AddDocument("Model.cs", SourceText.From(source));

        for (int round = 0; ; round++)
        {
            Assert.True(round < 10, "the fix does not converge");
            var compilation = document.Project.GetCompilationAsync().GetAwaiter().GetResult()!;
            var fixable = TestCompilation.RunAnalyzer(compilation).Where(d => fix.FixableDiagnosticIds.Contains(d.Id)).ToList();
            if (fixable.Count == 0) break;

            var actions = new List<CodeAction>();
            var context = new CodeFixContext(document, fixable[0], (action, _) => actions.Add(action), CancellationToken.None);
            fix.RegisterCodeFixesAsync(context).GetAwaiter().GetResult();
            var operation = Assert.Single(actions).GetOperationsAsync(CancellationToken.None).GetAwaiter().GetResult()
                .OfType<ApplyChangesOperation>().Single();
            document = operation.ChangedSolution.GetDocument(document.Id)!;
        }

        var fixedCompilation = document.Project.GetCompilationAsync().GetAwaiter().GetResult()!;
        Assert.Empty(TestCompilation.RunAnalyzer(fixedCompilation));
        Assert.Equal(expected.Replace("\r\n", "\n"), document.GetTextAsync().GetAwaiter().GetResult().ToString().Replace("\r\n", "\n"));
    }
}
