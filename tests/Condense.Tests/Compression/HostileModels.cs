using Condense.Nn;

namespace Condense.Tests.Compression;

// Models for the hostile-weight harness (HostileWeightTests): one layer per technique the runtime implements, so a
// hostile pattern written into one layer shows whether Compress's error names that layer and nothing else.

/// <summary>Every Linear technique on a [8, 32] weight (two groups of 16 per row).</summary>
[Compressible]
public sealed partial class HostileLinears : Module
{
    [Quantize(2, GroupSize = 16)] private readonly Linear q2g16 = new(32, 8);
    [Quantize(3, GroupSize = 16, Symmetric = false)] private readonly Linear q3g16asym = new(32, 8);
    [Quantize(4, GroupSize = 32)] private readonly Linear q4g32 = new(32, 8);
    [Quantize(4, GroupSize = 16, Symmetric = false)] private readonly Linear q4g16asym = new(32, 8);
    [Quantize(4)] private readonly Linear q4row = new(32, 8);
    [Quantize(8)] private readonly Linear q8row = new(32, 8);
    [Quantize(8, Symmetric = false)] private readonly Linear q8rowasym = new(32, 8, bias: false);
    [LowRank(4)] private readonly Linear lowRank = new(32, 8);
    [Quantize(4, GroupSize = 16), LowRankCorrection(4)] private readonly Linear corrected = new(32, 8);
    [Quantize(2, GroupSize = 16, Symmetric = false), LowRankCorrection(2)] private readonly Linear corrected2asym = new(32, 8);
    [Sparsify(N = 2, M = 4)] private readonly Linear nm24 = new(32, 8);
    [Sparsify(N = 2, M = 8), Quantize(8)] private readonly Linear nm28q8 = new(32, 8);
    [Sparsify(N = 2, M = 4), Quantize(4, GroupSize = 16)] private readonly Linear nm24q4 = new(32, 8);
    [Sparsify(0.5)] private readonly Linear csr = new(32, 8);
    [KeepDense] private readonly Linear dense = new(32, 8);
}

/// <summary>The same layers nested in an array of blocks: their paths are <c>blocks[i].name</c> and Compress goes through Apply.</summary>
[Compressible]
public sealed partial class HostileStack : Module
{
    private readonly HostileLinears[] blocks = [new HostileLinears(), new HostileLinears()];
}

/// <summary>Conv2d layers (weights [Out, In, K, K] compressed as [Out, In*K*K]).</summary>
[Compressible]
public sealed partial class HostileConvs : Module
{
    [Quantize(8)] private readonly Conv2d convQ8 = new(2, 4, 3);
    [Quantize(4, GroupSize = 16, Symmetric = false)] private readonly Conv2d convQ4g16asym = new(4, 8, 2);
    [LowRank(2)] private readonly Conv2d convLowRank = new(2, 4, 3);
    [Quantize(8), LowRankCorrection(2)] private readonly Conv2d convCorrected = new(2, 4, 3);
    [Sparsify(0.5)] private readonly Conv2d convCsr = new(2, 4, 3);
    [KeepDense] private readonly Conv2d convDense = new(2, 4, 3);
}

/// <summary>1x1 layers (one value is the whole group, row and matrix) and a one-row layer; low rank needs two (CND0012).</summary>
[Compressible]
public sealed partial class HostileTiny : Module
{
    [Quantize(8)] private readonly Linear tinyQ8 = new(1, 1);
    [Quantize(2, Symmetric = false)] private readonly Linear tinyQ2asym = new(1, 1);
    [Quantize(4, GroupSize = 16)] private readonly Linear oneRowQ4 = new(16, 1);
    [Sparsify(0.5)] private readonly Linear tinyCsr = new(1, 1);
    [KeepDense] private readonly Linear tinyDense = new(1, 1);
    [Quantize(8)] private readonly Conv2d tinyConv = new(1, 1, 1);
}
