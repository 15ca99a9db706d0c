using Condense.Kernels;
using Condense.Quantization;
using Condense.Tests.Kernels;

namespace Condense.Tests.Quantization;

public class TwoEndedClaimTests
{
    [Theory]
    [InlineData(8, 32, true, 53, 1024, 1)]
    [InlineData(8, 128, true, 300, 2048, 1)]
    [InlineData(8, 64, false, 97, 640, 1)]
    [InlineData(4, 64, false, 77, 2048, 1)]
    [InlineData(4, 32, true, 1031, 512, 1)]
    [InlineData(4, 128, false, 129, 1024, 3)]
    [InlineData(8, 32, true, 260, 512, 16)]
    public void Products_carry_the_same_bits_with_one_and_two_ended_claims_at_1_and_2_threads(int bits, int group, bool sym, int outF, int inF, int batch)
    {
        // Two-ended claims change which thread runs which rows and the chunk boundaries at the meeting point; every
        // output row is computed inside one index in a fixed order, so the bits may not change.
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(11 * group + outF + inF), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + 5 * outF + batch), batch * inF);
        using var knobs = KernelKnobs.Save();
        var results = new List<(string Route, float[] Y)>();
        foreach (int threads in new[] { 1, 2 })
            foreach (bool twoEnded in new[] { false, true })
            {
                WorkerPool.TwoEnded = twoEnded;
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var y = new float[batch * outF];
                q.MatMulTransposed(x, y, batch, ActivationPrecision.Int8);
                results.Add(($"{threads} threads, {(twoEnded ? "two" : "one")}-ended", y));
            }
        for (int i = 1; i < results.Count; i++)
            SameBits.Equal(results[0].Y, results[i].Y, r => $"{bits}-bit g{group} [{outF}, {inF}] batch {batch} output {r}: {results[0].Route} (expected) against {results[i].Route}");
    }

    [Theory]
    [InlineData(8, 128, true, 53, 1024)]
    [InlineData(8, 32, true, 300, 512)]
    [InlineData(8, 64, false, 97, 640)]
    [InlineData(4, 128, false, 130, 2048)]
    [InlineData(4, 64, false, 35, 4096)]
    [InlineData(4, 32, true, 1031, 512)]
    [InlineData(4, 128, true, 19, 6144)]
    [InlineData(2, 64, false, 261, 1024)]
    public void Batch_1_products_carry_the_same_bits_with_a_minimum_chunk_at_1_and_2_threads(int bits, int group, bool sym, int outF, int inF)
    {
        // Int8MatMul.MinChunkBytes changes the chunk boundaries of batch-1 calls and sends small weights to one thread;
        // every output row is computed alone, so the bits may not change and every row must be written.
        var q = GroupQuantizedWeight.Quantize(QuantTestData.Gaussian((ulong)(7 * group + outF + inF), outF * inF), outF, inF, new QuantizationScheme(bits, group, sym));
        var x = QuantTestData.Gaussian((ulong)(inF + 3 * outF), inF);
        using var knobs = KernelKnobs.Save();
        var results = new List<(string Route, float[] Y)>();
        foreach (int threads in new[] { 1, 2 })
            foreach (int minBytes in new[] { 0, 1024, 8192, 65536, 128 * 1024, 1 << 20 })
            {
                Int8MatMul.MinChunkBytes = minBytes;
                WorkerPool.Shared.MaxDegreeOfParallelism = threads;
                var y = new float[outF];
                Array.Fill(y, float.NaN);
                q.MatMulTransposed(x, y, 1, ActivationPrecision.Int8);
                results.Add(($"{threads} threads, min chunk {minBytes} B", y));
            }
        for (int i = 1; i < results.Count; i++)
            SameBits.Equal(results[0].Y, results[i].Y, r => $"{bits}-bit g{group} [{outF}, {inF}] output {r}: {results[0].Route} (expected) against {results[i].Route}");
        Assert.DoesNotContain(results[0].Y, float.IsNaN);
    }
}
