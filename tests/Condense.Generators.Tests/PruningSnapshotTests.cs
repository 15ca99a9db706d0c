using Condense.Generators.Tests.Infrastructure;

namespace Condense.Generators.Tests;

/// <summary>The generated plan, Compress and typed PruningSchedule of models with gradual and global pruning.</summary>
public sealed class PruningSnapshotTests
{
    [Fact]
    public void GradualAndGlobalPruning() => Snapshot.VerifyGenerator(
    [
        """
        using Condense;
        using Condense.Nn;
        namespace Samples.Pruning;

        [Compressible]
        public partial class Block : Module
        {
            [Sparsify(0.8, Scope = SparsityScope.Global, LayerFloor = 0.05, StartStep = 100, EndStep = 900, Frequency = 50)]
            readonly Linear up = new(64, 256);

            [Sparsify(0.8, Scope = SparsityScope.Global, LayerFloor = 0.05, StartStep = 100, EndStep = 900, Frequency = 50)]
            readonly Linear down = new(256, 64);
        }

        [Compressible]
        public partial class PrunedNet : Module
        {
            [Sparsify(0.9, StartStep = 200, EndStep = 1400, Frequency = 50)]
            readonly Linear input = new(784, 64);

            readonly Block[] blocks = new Block[2];

            [Sparsify(0.5)]
            readonly Linear output = new(64, 10);
        }
        """,
    ]);
}
