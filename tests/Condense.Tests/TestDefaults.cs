using System.Runtime.CompilerServices;
using Condense.Quantization;

namespace Condense.Tests;

/// <summary>Settings the whole test assembly starts from.</summary>
internal static class TestDefaults
{
    /// <summary>
    /// Batch-1 products run without the chunk-size floor (<see cref="Int8MatMul.MinChunkBytes"/>, 128 KiB in the
    /// product): the kernel tests use small weights, and at 2 threads they are meant to split them into chunks whose
    /// boundaries fall inside 16-row blocks, as large weights do in the product. With the floor those weights would
    /// run on the caller alone and the "2 threads" cases would repeat the 1-thread ones. The floor itself is tested
    /// (TwoEndedClaimTests, WorkerPoolTests) with its default among other values.
    /// </summary>
    [ModuleInitializer]
    internal static void Initialize() => Int8MatMul.MinChunkBytes = 0;
}
