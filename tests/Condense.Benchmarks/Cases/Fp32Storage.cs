using Condense.Benchmarks.Harness;
using Condense.Nn;
using Condense.Kernels;

namespace Condense.Benchmarks.Cases;

/// <summary>
/// The fp32 baseline every "x fp32" is measured against. The only file to touch when the fp32 kernel changes:
/// with CONDENSE_KERNELS_V2 it is <c>Condense.Kernels.DenseWeight</c>, before that a small adapter over
/// <see cref="Gemm"/>.
/// </summary>
internal static class Fp32Storage
{
    public static readonly WeightFormat Format = new(
        BenchCase.Fp32Name,
#if CONDENSE_KERNELS_V2
        // Adjust this line if DenseWeight's factory has another shape: (dense [out, in], out, in) -> storage.
        (dense, outFeatures, inFeatures) => new DenseWeight(dense, outFeatures, inFeatures),
        // A copy of the array: a storage that keeps the caller's array must not make the cold copies share it.
        Copy: (w, dense) => new DenseWeight((float[])dense.Clone(), w.OutFeatures, w.InFeatures),
#else
        GemmDenseWeight.Create,
        Copy: (w, _) => ((GemmDenseWeight)w).Clone(),
#endif
        Batch1Target: Target.Bandwidth(85));

#if !CONDENSE_KERNELS_V2
    /// <summary>
    /// fp32 storage over <see cref="Gemm.MatMul"/>: W^T is kept [In, Out] so a call streams it directly
    /// (Gemm.MatMulTransposedB would re-transpose the whole weight on every call).
    /// </summary>
    private sealed class GemmDenseWeight : IWeightStorage
    {
        private readonly float[] _transposed;

        private GemmDenseWeight(float[] transposed, int outFeatures, int inFeatures)
        {
            _transposed = transposed;
            OutFeatures = outFeatures;
            InFeatures = inFeatures;
        }

        public int OutFeatures { get; }
        public int InFeatures { get; }
        public string Format => "fp32 (Gemm adapter)";
        public long ByteCount => (long)OutFeatures * InFeatures * sizeof(float);

        public static IWeightStorage Create(float[] dense, int outFeatures, int inFeatures) =>
            new GemmDenseWeight(Transpose(dense, outFeatures, inFeatures), outFeatures, inFeatures);

        public GemmDenseWeight Clone() => new((float[])_transposed.Clone(), OutFeatures, InFeatures);

        public void MatMulTransposed(ReadOnlySpan<float> x, Span<float> y, int batch) =>
            Gemm.MatMul(x, _transposed, y, batch, InFeatures, OutFeatures);

        public void Dequantize(Span<float> destination)
        {
            for (int o = 0; o < OutFeatures; o++)
                for (int i = 0; i < InFeatures; i++)
                    destination[o * InFeatures + i] = _transposed[(long)i * OutFeatures + o];
        }

        private static float[] Transpose(float[] dense, int rows, int cols)
        {
            var result = GC.AllocateUninitializedArray<float>(dense.Length);
            Parallel.For(0, rows, r =>
            {
                for (int c = 0; c < cols; c++)
                    result[(long)c * rows + r] = dense[(long)r * cols + c];
            });
            return result;
        }
    }
#endif
}
