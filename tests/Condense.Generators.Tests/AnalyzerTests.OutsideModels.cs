namespace Condense.Generators.Tests;

public sealed partial class AnalyzerTests
{
    [Fact]
    public void CND0024_LayerAttributeInAClassThatIsNotAModel()
    {
        var d = Verify("""
            public sealed partial class Encoder : Module
            {
                [{|CND0024:Quantize(4, GroupSize = 64)|}] readonly Linear proj = new(512, 512);
                [{|CND0024:KeepDense|}] public Linear Head { get; } = new(512, 10);
                readonly Linear plain = new(512, 512);
                [System.Obsolete] readonly int unrelated = 3;
            }
            """);
        Assert.Equal(
            "'proj' is marked [Quantize], but 'Encoder' is not a [Compressible] model, so nothing would compress it: add [Compressible] to 'Encoder' (and make it partial), or remove the attribute",
            Message(d[0]));
    }

    [Fact]
    public void CND0024_NotReportedWhenAnotherPartOfTheClassIsCompressible() => Verify("""
        [Compressible]
        public sealed partial class Encoder : Module
        {
        }

        public sealed partial class Encoder
        {
            [Quantize(8)] readonly Linear proj = new(64, 64);
        }
        """);
}
