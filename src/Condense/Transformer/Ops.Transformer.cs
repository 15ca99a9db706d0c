using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Condense.Kernels;
using Condense.Transformer;

namespace Condense;

// Transformer ops, llm.c style: one forward and its backward next to each other, each checked by finite differences
// (tests/Condense.Tests/Transformer). Hidden states are [rows, channels] with rows = batch * sequence, so every
// Linear runs on the existing Gemm or compressed kernel without a reshape.
public static partial class Ops
{
    // Rows below this run on the calling thread: a dispatch costs more than a few short rows.
    private const int ParallelRowElements = 1 << 15;

    /// <summary>
    /// Layer normalization over the last dimension (Ba, Kiros and Hinton; BERT's <c>LayerNorm</c>):
    /// y = (x - mean) / sqrt(var + epsilon) * weight + bias, with the biased variance.
    /// </summary>
    /// <param name="x">[..., C].</param>
    /// <param name="weight">[C] (gamma).</param>
    /// <param name="bias">[C] (beta).</param>
    /// <param name="epsilon">Added to the variance; BERT uses 1e-12.</param>
    public static Tensor LayerNorm(Tensor x, Tensor weight, Tensor bias, float epsilon = 1e-12f)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(weight);
        ArgumentNullException.ThrowIfNull(bias);
        int channels = x.Rank == 0 ? 0 : x.Shape[^1];
        if (x.Rank == 0 || channels == 0 || weight.Rank != 1 || weight.Shape[0] != channels || bias.Rank != 1 || bias.Shape[0] != channels)
            throw new ArgumentException($"LayerNorm: expected x [..., C] with C > 0, weight [C] and bias [C]; got {Tensor.FormatShape(x.Shape)}, {Tensor.FormatShape(weight.Shape)} and {Tensor.FormatShape(bias.Shape)}.");
        if (!(epsilon >= 0f) || float.IsInfinity(epsilon))
            throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "LayerNorm: epsilon must be finite and >= 0.");
        int rows = x.Length / channels;
        var y = new Tensor(new float[x.Length], x.Shape);
        var mean = new float[rows];
        var rstd = new float[rows];
        float[] xs = x.Data, ys = y.Data, w = weight.Data, b = bias.Data;
        ForRows(rows, channels, (start, end) =>
        {
            for (int r = start; r < end; r++)
                (mean[r], rstd[r]) = LayerNormRow(xs.AsSpan(r * channels, channels), ys.AsSpan(r * channels, channels), w, b, epsilon);
        });
        return Tensor.Record(y, () => LayerNormBackward(x, weight, bias, y.Grad!.Data, mean, rstd, rows, channels), x, weight, bias);
    }

    /// <summary>
    /// One row of <see cref="LayerNorm(Tensor, Tensor, Tensor, float)"/>; <paramref name="output"/> may be <paramref name="row"/>.
    /// mean = sum / C; d = x - mean; variance = sum of d d / C (each d d an fma into its lane); y = fma(d s, w, b) with
    /// s = 1 / sqrt(variance + epsilon). Both sums run in 16 lanes (element i into lane i mod 16, in order) and then
    /// <see cref="SumLanes(Vector512{float})"/>' tree, so the 512-bit path and the lane-by-lane one (<see cref="LayerNormRowLanes"/>) give
    /// the same bits. Session 19: three masked passes instead of five TensorPrimitives calls per row (MiniLM one
    /// sentence at a time, 1 thread, alternating A/B: int8 0.482 -> 0.472 ms, int4 0.550 -> 0.539 ms per sentence).
    /// </summary>
    private static (float Mean, float Rstd) LayerNormRow(ReadOnlySpan<float> row, Span<float> output, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float epsilon)
    {
        return Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? LayerNormRow512(row, output, w, b, epsilon) : LayerNormRowLanes(row, output, w, b, epsilon);
    }

    /// <summary>The 512-bit <see cref="LayerNormRow"/>; the last partial vector through masked loads and stores.</summary>
    internal static unsafe (float Mean, float Rstd) LayerNormRow512(ReadOnlySpan<float> row, Span<float> output, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float epsilon)
    {
        int n = row.Length, whole = n & ~15, rest = n - whole;
        var lanes = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(rest)).AsSingle();
        fixed (float* px = row, py = output, pw = w, pb = b)
        {
            var sum = Vector512<float>.Zero;
            for (int i = 0; i < whole; i += 16) sum += Vector512.Load(px + i);
            if (rest > 0) sum += Avx512F.MaskLoad(px + whole, lanes, Vector512<float>.Zero);
            float mean = SumLanes(sum) / n;
            var m = Vector512.Create(mean);
            var squares = Vector512<float>.Zero;
            for (int i = 0; i < whole; i += 16)
            {
                var d = Vector512.Load(px + i) - m;
                d.Store(py + i);
                squares = Vector512.FusedMultiplyAdd(d, d, squares);
            }
            if (rest > 0)
            {
                var d = Avx512F.MaskLoad(px + whole, lanes, Vector512<float>.Zero) - m;
                Avx512F.MaskStore(py + whole, lanes, d);
                squares = Vector512.FusedMultiplyAdd(Vector512.ConditionalSelect(lanes, d, Vector512<float>.Zero), d, squares);
            }
            float s = 1f / MathF.Sqrt(SumLanes(squares) / n + epsilon);
            var scale = Vector512.Create(s);
            for (int i = 0; i < whole; i += 16)
                Vector512.FusedMultiplyAdd(Vector512.Load(py + i) * scale, Vector512.Load(pw + i), Vector512.Load(pb + i)).Store(py + i);
            if (rest > 0)
            {
                var d = Avx512F.MaskLoad(py + whole, lanes, Vector512<float>.Zero);
                var y = Vector512.FusedMultiplyAdd(d * scale, Avx512F.MaskLoad(pw + whole, lanes, Vector512<float>.Zero), Avx512F.MaskLoad(pb + whole, lanes, Vector512<float>.Zero));
                Avx512F.MaskStore(py + whole, lanes, y);
            }
            return (mean, s);
        }
    }

    /// <summary><see cref="LayerNormRow"/> lane by lane: the same operations and summation order as <see cref="LayerNormRow512"/>.</summary>
    internal static (float Mean, float Rstd) LayerNormRowLanes(ReadOnlySpan<float> row, Span<float> output, ReadOnlySpan<float> w, ReadOnlySpan<float> b, float epsilon)
    {
        int n = row.Length;
        Span<float> sum = stackalloc float[16];
        sum.Clear();
        for (int i = 0; i < n; i++) sum[i & 15] += row[i];
        float mean = SumLanes(sum) / n;
        Span<float> squares = stackalloc float[16];
        squares.Clear();
        for (int i = 0; i < n; i++)
        {
            float d = row[i] - mean;
            output[i] = d;
            squares[i & 15] = MathF.FusedMultiplyAdd(d, d, squares[i & 15]);
        }
        float s = 1f / MathF.Sqrt(SumLanes(squares) / n + epsilon);
        for (int i = 0; i < n; i++) output[i] = MathF.FusedMultiplyAdd(output[i] * s, w[i], b[i]);
        return (mean, s);
    }

    /// <summary>
    /// Inference only (records nothing): x = LayerNorm(x + residual) in place, with the bits of
    /// <c>LayerNorm(Add(x, residual))</c>. x must be a fresh tensor nothing else reads (a Linear's output).
    /// </summary>
    /// <param name="rowBias">
    /// A Linear layer's bias [C] added to every row of x first (x is then the layer's product without its bias,
    /// <see cref="InferenceLinear.ProductWithoutBias"/>), or null.
    /// </param>
    internal static Tensor ResidualLayerNormInPlace(Tensor x, Tensor residual, Tensor weight, Tensor bias, float epsilon, Tensor? rowBias = null)
    {
        int channels = x.Shape[^1];
        if (!x.Shape.AsSpan().SequenceEqual(residual.Shape) || weight.Length != channels || bias.Length != channels || (rowBias != null && rowBias.Length != channels))
            throw ShapeError(nameof(LayerNorm), "x and residual of equal shapes [..., C], weight, bias and the row bias [C]", x, residual);
        ResidualLayerNormRowsInPlace(x.Data, residual.Data, x.Length / channels, channels, weight.Data, bias.Data, epsilon, rowBias?.Data);
        return x;
    }

    /// <summary>
    /// <see cref="ResidualLayerNormInPlace"/> on the first rows x channels values of arrays (e.g. pooled buffers longer
    /// than that): the same split and operations, so the same bits. Lengths are the caller's to check.
    /// </summary>
    internal static void ResidualLayerNormRowsInPlace(float[] xs, float[] rs, int rows, int channels, float[] w, float[] b, float epsilon, float[]? rb)
    {
        ForRows(rows, channels, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                var row = xs.AsSpan(r * channels, channels);
                // The bits of Ops.StorageLinear's bias add, then Ops.Add, then LayerNorm: the same adds in the same order.
                if (rb != null) TensorPrimitives.Add(row, rb, row);
                TensorPrimitives.Add(row, rs.AsSpan(r * channels, channels), row);
                LayerNormRow(row, row, w, b, epsilon);
            }
        });
    }

    private static void LayerNormBackward(Tensor x, Tensor weight, Tensor bias, float[] dy, float[] mean, float[] rstd, int rows, int channels)
    {
        float[] xs = x.Data, w = weight.Data;
        if (x.RequiresGrad)
        {
            // Rows are independent, so splitting them over threads gives the same bits at any thread count.
            var gx = Gradient(x);
            ForRows(rows, channels, (start, end) =>
            {
                var norm = new float[channels];
                var dnorm = new float[channels];
                for (int r = start; r < end; r++)
                {
                    var row = xs.AsSpan(r * channels, channels);
                    var d = dy.AsSpan(r * channels, channels);
                    TensorPrimitives.Subtract(row, mean[r], norm);
                    TensorPrimitives.Multiply(norm, rstd[r], norm);
                    TensorPrimitives.Multiply(d, w, dnorm);
                    float dnormMean = TensorPrimitives.Sum(dnorm) / channels;
                    float dnormNormMean = TensorPrimitives.Dot(dnorm, norm) / channels;
                    // dx = (dnorm - mean(dnorm) - norm * mean(dnorm * norm)) * rstd
                    TensorPrimitives.Subtract(dnorm, dnormMean, dnorm);
                    TensorPrimitives.MultiplyAdd(norm, -dnormNormMean, dnorm, dnorm);
                    var g = gx.AsSpan(r * channels, channels);
                    TensorPrimitives.MultiplyAdd(dnorm, rstd[r], g, g);
                }
            });
        }
        // The parameter gradients sum over rows in row order on one thread: the same bits at any thread count.
        if (weight.RequiresGrad)
        {
            var gw = weight.GradSpan();
            var norm = new float[channels];
            for (int r = 0; r < rows; r++)
            {
                TensorPrimitives.Subtract(xs.AsSpan(r * channels, channels), mean[r], norm);
                TensorPrimitives.Multiply(norm, rstd[r], norm);
                TensorPrimitives.FusedMultiplyAdd(dy.AsSpan(r * channels, channels), norm, gw, gw);
            }
        }
        if (bias.RequiresGrad) SumRowsInto(dy, bias.GradSpan(), rows, channels);
    }

    /// <summary>
    /// GELU in its exact form, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as BERT and PyTorch's default
    /// <c>gelu</c> compute it (<see cref="Gelu"/> is the tanh approximation). erf is evaluated with a rational
    /// approximation whose absolute error is below 1.5e-7 (Abramowitz and Stegun 7.1.26), under float32's resolution near 1.
    /// </summary>
    public static Tensor GeluErf(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Tensor(new float[x.Length], x.Shape);
        float[] xs = x.Data, ys = y.Data;
        ForChunks(xs.Length, (start, end) => GeluErfForward(xs.AsSpan(start, end - start), ys.AsSpan(start, end - start)));
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            var gx = x.GradSpan();
            // d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density.
            for (int i = 0; i < xs.Length; i++)
            {
                float v = xs[i];
                float phi = MathF.Exp(-0.5f * v * v) * 0.3989422804014327f;
                gx[i] += dy[i] * (NormalCdf(v) + v * phi);
            }
        }, x);
    }

    // Abramowitz and Stegun 7.1.26: erfc(z) ~ t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2), t = 1 / (1 + p z), z >= 0.
    private const float ErfP = 0.3275911f;
    private const float ErfA1 = 0.254829592f, ErfA2 = -0.284496736f, ErfA3 = 1.421413741f, ErfA4 = -1.453152027f, ErfA5 = 1.061405429f;
    private const float InverseSqrt2 = 0.70710678118654752f;

    /// <summary>Phi(x) = 0.5 (1 + erf(x / sqrt 2)): the scalar reference of the vectorized forward.</summary>
    internal static float NormalCdf(float x)
    {
        float z = MathF.Abs(x) * InverseSqrt2;
        float t = 1f / (1f + ErfP * z);
        float erfc = t * (ErfA1 + t * (ErfA2 + t * (ErfA3 + t * (ErfA4 + t * ErfA5)))) * MathF.Exp(-z * z);
        float half = 0.5f - 0.5f * erfc;   // Phi(|x|) - 0.5
        return 0.5f + MathF.CopySign(half, x);
    }

    /// <summary>
    /// Inference only (records nothing): x = x Phi(x) in place, with the bits of <see cref="GeluErf"/>. x must be a
    /// fresh tensor nothing else reads (a Linear's output).
    /// </summary>
    /// <param name="x">[..., N], overwritten.</param>
    /// <param name="rowBias">
    /// A Linear layer's bias [N] added to every row first, as Ops.StorageLinear adds it (x is then the layer's product
    /// without its bias, <see cref="InferenceLinear.ProductWithoutBias"/>): one pass over the rows instead of two.
    /// </param>
    internal static Tensor GeluErfInPlace(Tensor x, Tensor? rowBias = null)
    {
        float[] xs = x.Data;
        int width = x.Rank == 0 ? 1 : x.Shape[^1];
        if (rowBias != null && rowBias.Length != width)
            throw ShapeError(nameof(GeluErf), "x [..., N] and the row bias [N]", x, rowBias);
        int rows = width == 0 ? 0 : x.Length / width;
        GeluErfRowsInPlace(xs, rows, width, rowBias?.Data);
        return x;
    }

    /// <summary>
    /// <see cref="GeluErfInPlace(Tensor, Tensor?)"/> on the first rows x width values of an array (e.g. a pooled
    /// buffer longer than that): the same split and operations, so the same bits.
    /// </summary>
    internal static void GeluErfRowsInPlace(float[] xs, int rows, int width, float[]? rb)
    {
        Action<int, int> body = (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                var row = xs.AsSpan(r * width, width);
                // Element-wise: any split of the rows gives the bits of one pass (the vector kernel equals the passes).
                GeluErfForward(row, row, rb);
            }
        };
        // GELU costs ~2 ns per value (erf's polynomial, a division, exp): from a few thousand values a second thread
        // pays for its dispatch. A sentence of 13 tokens has 13 x 1536 of them in each MiniLM layer, which ran on
        // one thread (11-15% of the sentence's time) under the element-wise ops' threshold.
        if ((long)rows * width < GeluParallelElements || rows < 2) body(0, rows);
        else WorkerPool.Shared.For(rows, body, Gemm.MaxDegreeOfParallelism);
    }

    // The size from which the in-place GELU splits its rows over threads.
    private const int GeluParallelElements = 1 << 12;

    /// <summary>
    /// y = GELU(x + bias) over spans (no bias: <paramref name="bias"/> empty); y may be x. With 512-bit vectors each vector
    /// goes through every step in registers (one pass over memory instead of twenty); the steps and their order are those
    /// of <see cref="GeluErfPasses"/>, so the bits are the same (tested), and the tail of fewer than 16 values takes the
    /// passes. The bias is added as each vector is read: the IEEE sums of a separate add, one pass over the row fewer
    /// (session 19, a compressed intermediate layer's bias: MiniLM 1 thread, alternating A/B, 1-2% per sentence).
    /// </summary>
    private static unsafe void GeluErfForward(ReadOnlySpan<float> x, Span<float> y, ReadOnlySpan<float> bias = default)
    {
        bool biased = !bias.IsEmpty;
        int done = 0;
        if (Vector512.IsHardwareAccelerated && x.Length >= Vector512<float>.Count)
        {
            int count = x.Length - x.Length % Vector512<float>.Count;
            fixed (float* px = x, py = y, pb = bias)
                for (; done < count; done += Vector512<float>.Count)
                {
                    var v = Vector512.Load(px + done);
                    if (biased) v += Vector512.Load(pb + done);
                    Vector512.Store(GeluErf512(v), py + done);
                }
        }
        if (done == x.Length) return;
        if (!biased)
        {
            GeluErfPasses(x[done..], y[done..]);
            return;
        }
        var tail = y[done..];
        TensorPrimitives.Add(x[done..], bias[done..], tail);
        GeluErfPasses(tail, tail);
    }

    /// <summary>One vector of <see cref="GeluErfPasses"/>, step for step (unfused multiply-adds, as TensorPrimitives.MultiplyAdd).</summary>
    private static Vector512<float> GeluErf512(Vector512<float> x)
    {
        var z = Vector512.Abs(x) * InverseSqrt2;
        var t = Vector512.Create(1f) / (z * ErfP + Vector512.Create(1f));
        var y = t * ErfA5 + Vector512.Create(ErfA4);
        y = y * t + Vector512.Create(ErfA3);
        y = y * t + Vector512.Create(ErfA2);
        y = y * t + Vector512.Create(ErfA1);
        y *= t;
        var e = ExpNonPositive512(-(z * z));
        y = y * e * -0.5f + Vector512.Create(0.5f);
        y = Vector512.CopySign(y, x) + Vector512.Create(0.5f);
        return y * x;
    }

    /// <summary>y = x Phi(x) over spans, in blocks that stay in L1; each step is one vectorized pass. y may be x.</summary>
    internal static void GeluErfPasses(ReadOnlySpan<float> x, Span<float> y)
    {
        const int Block = 512;
        Span<float> z = stackalloc float[Block];
        Span<float> t = stackalloc float[Block];
        Span<float> copy = stackalloc float[Block];
        for (int start = 0; start < x.Length; start += Block)
        {
            int n = Math.Min(Block, x.Length - start);
            // The last steps read x after y was written: a copy of the block keeps an in-place call exact.
            var xs = copy[..n];
            x.Slice(start, n).CopyTo(xs);
            var ys = y.Slice(start, n);
            var zs = z[..n];
            var ts = t[..n];
            TensorPrimitives.Abs(xs, zs);
            TensorPrimitives.Multiply(zs, InverseSqrt2, zs);            // z = |x| / sqrt 2
            TensorPrimitives.Multiply(zs, ErfP, ts);
            TensorPrimitives.Add(ts, 1f, ts);
            TensorPrimitives.Divide(1f, ts, ts);                         // t = 1 / (1 + p z)
            TensorPrimitives.Multiply(ts, ErfA5, ys);
            TensorPrimitives.Add(ys, ErfA4, ys);
            TensorPrimitives.MultiplyAdd(ys, ts, ErfA3, ys);
            TensorPrimitives.MultiplyAdd(ys, ts, ErfA2, ys);
            TensorPrimitives.MultiplyAdd(ys, ts, ErfA1, ys);
            TensorPrimitives.Multiply(ys, ts, ys);                       // the polynomial
            TensorPrimitives.Multiply(zs, zs, zs);
            TensorPrimitives.Negate(zs, zs);
            ExpNonPositive(zs);
            TensorPrimitives.Multiply(ys, zs, ys);                       // erfc(z)
            TensorPrimitives.Multiply(ys, -0.5f, ys);
            TensorPrimitives.Add(ys, 0.5f, ys);                          // Phi(|x|) - 0.5
            TensorPrimitives.CopySign(ys, xs, ys);
            TensorPrimitives.Add(ys, 0.5f, ys);                          // Phi(x)
            TensorPrimitives.Multiply(ys, xs, ys);
        }
    }

    // GELU's exp(-z^2) is ExpNonPositive512 / ExpNonPositive (float32 throughout, ~1 ulp), not Vector512.Exp /
    // TensorPrimitives.Exp, which evaluate float exp in float64 (two 8-lane halves per vector and a narrowing): -4.5%
    // per MiniLM sentence, cosine to ORT unchanged to 1e-5 (session 12, docs/kernels.md). The vector kernel and the
    // passes use the same operations, so they give the same bits.
    // exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 in two parts (Cody and Waite), exp(r) by the degree-6
    // polynomial of Cephes' expf: 1 + r + r^2 (p0 + r (p1 + ...)). x is clamped to ln(float.MinNormal), so 2^n is a
    // normal float built from its exponent bits and exp(x) >= 1.2e-38 where it would be smaller (GELU multiplies it by
    // a value below 1 and adds 0.5: no visible difference).
    private const float ExpLowest = -87.33654f, Log2E = 1.44269504088896341f, Ln2Hi = 0.693359375f, Ln2Lo = -2.12194440e-4f;
    private const float ExpP0 = 1.9875691500e-4f, ExpP1 = 1.3981999507e-3f, ExpP2 = 8.3334519073e-3f, ExpP3 = 4.1665795894e-2f,
        ExpP4 = 1.6666665459e-1f, ExpP5 = 5.0000001201e-1f;

    /// <summary>exp(x) for x &lt;= 0 (NaN stays NaN), 16 lanes; the same operations as <see cref="ExpNonPositive(Span{float})"/>.</summary>
    private static Vector512<float> ExpNonPositive512(Vector512<float> x)
    {
        x = Vector512.ConditionalSelect(Vector512.LessThan(x, Vector512.Create(ExpLowest)), Vector512.Create(ExpLowest), x);
        var n = Vector512.Round(x * Log2E);
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(ExpP0), r, Vector512.Create(ExpP1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(ExpP2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(ExpP3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(ExpP4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(ExpP5));
        var er = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512.Create(1f);
        var scale = ((Vector512.ConvertToInt32(n) + Vector512.Create(127)) << 23).AsSingle();
        return er * scale;
    }

    /// <summary>exp(x) in place for x &lt;= 0: <see cref="ExpNonPositive512"/> lane by lane (the same bits).</summary>
    private static void ExpNonPositive(Span<float> xs)
    {
        for (int i = 0; i < xs.Length; i++) xs[i] = ExpNonPositiveScalar(xs[i]);
    }

    /// <summary>One lane of <see cref="ExpNonPositive512"/>.</summary>
    private static float ExpNonPositiveScalar(float x)
    {
        {
            x = x < ExpLowest ? ExpLowest : x;
            float n = MathF.Round(x * Log2E);
            float r = MathF.FusedMultiplyAdd(n, -Ln2Hi, x);
            r = MathF.FusedMultiplyAdd(n, -Ln2Lo, r);
            float p = MathF.FusedMultiplyAdd(ExpP0, r, ExpP1);
            p = MathF.FusedMultiplyAdd(p, r, ExpP2);
            p = MathF.FusedMultiplyAdd(p, r, ExpP3);
            p = MathF.FusedMultiplyAdd(p, r, ExpP4);
            p = MathF.FusedMultiplyAdd(p, r, ExpP5);
            float er = MathF.FusedMultiplyAdd(p, r * r, r) + 1f;
            return er * BitConverter.Int32BitsToSingle(((int)n + 127) << 23);
        }
    }

    /// <summary>tanh(x), element-wise (BERT's pooler).</summary>
    public static Tensor Tanh(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Tensor(new float[x.Length], x.Shape);
        TensorPrimitives.Tanh(x.Data, y.Data);
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            var gx = x.GradSpan();
            var ys = y.Data;
            for (int i = 0; i < ys.Length; i++) gx[i] += dy[i] * (1f - ys[i] * ys[i]);
        }, x);
    }

    /// <summary>Softmax over the last dimension, shifted by the row maximum so large values do not overflow.</summary>
    /// <param name="x">[..., N] with N > 0.</param>
    public static Tensor Softmax(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank == 0 || x.Shape[^1] == 0)
            throw new ArgumentException($"Softmax: expected x [..., N] with N > 0; got {Tensor.FormatShape(x.Shape)}.");
        int n = x.Shape[^1], rows = x.Length / n;
        var y = new Tensor(new float[x.Length], x.Shape);
        float[] xs = x.Data, ys = y.Data;
        ForRows(rows, n, (start, end) =>
        {
            for (int r = start; r < end; r++) SoftmaxRow(xs.AsSpan(r * n, n), ys.AsSpan(r * n, n));
        });
        return Tensor.Record(y, () => SoftmaxBackward(y, x, 1f, rows, n), x);
    }

    /// <summary>
    /// Attention probabilities: softmax over keys of <c>scale * scores</c>, with masked keys given probability
    /// exactly 0. A key is masked when <paramref name="keyMask"/> is 0 at it (a padded position) or, with
    /// <paramref name="causal"/>, when it comes after the query. A query with no visible key gets a row of zeros.
    /// </summary>
    /// <param name="scores">[B, H, Tq, Tk] (query-key dot products).</param>
    /// <param name="keyMask">[B * Tk], 1 for a real token and 0 for padding (a Hugging Face <c>attention_mask</c>), or null for none.</param>
    /// <param name="causal">Whether query i sees only keys j &lt;= i (needs Tq == Tk).</param>
    /// <param name="scale">Multiplies the scores first; 1 / sqrt(head size) in attention.</param>
    public static Tensor AttentionSoftmax(Tensor scores, int[]? keyMask, bool causal, float scale)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (scores.Rank != 4)
            throw new ArgumentException($"AttentionSoftmax: expected scores [B, H, Tq, Tk]; got {Tensor.FormatShape(scores.Shape)}.");
        int batch = scores.Shape[0], heads = scores.Shape[1], tq = scores.Shape[2], tk = scores.Shape[3];
        if (keyMask != null && keyMask.Length != batch * tk)
            throw new ArgumentException($"AttentionSoftmax: the key mask has {keyMask.Length} entries; scores {Tensor.FormatShape(scores.Shape)} need B * Tk = {batch * tk}.", nameof(keyMask));
        if (causal && tq != tk)
            throw new ArgumentException($"AttentionSoftmax: causal attention needs as many queries as keys; scores are {Tensor.FormatShape(scores.Shape)}.", nameof(causal));
        if (!float.IsFinite(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "AttentionSoftmax: the scale must be finite.");
        var mask = keyMask == null ? null : (int[])keyMask.Clone();
        var y = new Tensor(new float[scores.Length], scores.Shape);
        float[] xs = scores.Data, ys = y.Data;
        int rows = batch * heads * tq;
        ForRows(rows, tk, (start, end) =>
        {
            var buffer = new float[tk];
            for (int r = start; r < end; r++)
            {
                int b = r / (heads * tq), i = r % tq;
                // With a causal mask only keys 0..i take part; the rest of the row stays 0.
                int visible = causal ? i + 1 : tk;
                var row = buffer.AsSpan(0, visible);
                TensorPrimitives.Multiply(xs.AsSpan(r * tk, visible), scale, row);
                if (mask != null)
                {
                    var m = mask.AsSpan(b * tk, visible);
                    for (int j = 0; j < visible; j++)
                        if (m[j] == 0) row[j] = float.NegativeInfinity;
                }
                SoftmaxRow(row, ys.AsSpan(r * tk, visible));
            }
        });
        return Tensor.Record(y, () => SoftmaxBackward(y, scores, scale, rows, tk), scores);
    }

    /// <summary>
    /// One row: y = exp(x - max) / sum; a row of -infinity only (no visible key) gives zeros; y may be x. exp is the
    /// float32 <see cref="ExpNonPositive512"/> (~1 ulp, GELU's; a difference below -87.3, where exp is under
    /// float32's smallest normal, gives exactly 0, so masked keys get probability 0), and the sum runs in 16 lanes
    /// (element i into lane i mod 16, in order) and then over the lanes in order: the 512-bit path and the scalar one
    /// (<see cref="SoftmaxRowLanes"/>) give the same bits. Session 19: masked vector passes instead of five
    /// TensorPrimitives calls on a row of a few keys (MiniLM's attention softmax at 13 tokens was half its attention
    /// time): 1 thread, alternating A/B, 1-2% per sentence (int8 b1 0.511 -> 0.502 ms, int4 b1 0.612 -> 0.602, int8 b32
    /// 0.528 -> 0.522). A first version with scalar tails and lane-by-lane reductions was 6-11% slower than the calls.
    /// </summary>
    /// <param name="x">The row.</param>
    /// <param name="y">The probabilities (may be <paramref name="x"/>).</param>
    /// <param name="scale">
    /// Multiplies each value as it is read (IEEE products: the bits of scaling the row first; 1 changes nothing):
    /// the fused attention's 1 / sqrt(D) without its own pass.
    /// </param>
    private static void SoftmaxRow(ReadOnlySpan<float> x, Span<float> y, float scale = 1f)
    {
        if (Vector512.IsHardwareAccelerated && Avx512F.IsSupported) SoftmaxRow512(x, y, scale);
        else SoftmaxRowLanes(x, y, scale);
    }

    /// <summary>The 512-bit <see cref="SoftmaxRow"/>; the last partial vector through masked loads and stores.</summary>
    internal static unsafe void SoftmaxRow512(ReadOnlySpan<float> x, Span<float> y, float scale = 1f)
    {
        var factor = Vector512.Create(scale);
        int n = x.Length, whole = n & ~15, rest = n - whole;
        var lanes = Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(rest)).AsSingle();
        var negativeInfinity = Vector512.Create(float.NegativeInfinity);
        fixed (float* px = x, py = y)
        {
            var top = negativeInfinity;
            for (int i = 0; i < whole; i += 16) top = Vector512.Max(top, Vector512.Load(px + i) * factor);
            // The masked-off lanes stay -infinity whatever the scale (they are not multiplied).
            var last = rest > 0 ? Vector512.ConditionalSelect(lanes, Avx512F.MaskLoad(px + whole, lanes, negativeInfinity) * factor, negativeInfinity) : negativeInfinity;
            top = Vector512.Max(top, last);
            var top8 = Vector256.Max(top.GetLower(), top.GetUpper());
            var top4 = Vector128.Max(top8.GetLower(), top8.GetUpper());
            float max = MathF.Max(MathF.Max(top4[0], top4[1]), MathF.Max(top4[2], top4[3]));
            if (float.IsNegativeInfinity(max))
            {
                y.Clear();
                return;
            }
            var shift = Vector512.Create(max);
            var sum = Vector512<float>.Zero;
            for (int i = 0; i < whole; i += 16)
            {
                var e = SoftmaxExp512(Vector512.Load(px + i) * factor - shift);
                e.Store(py + i);
                sum += e;
            }
            var lastExp = SoftmaxExp512(last - shift);   // masked-off lanes hold -inf: exactly 0
            sum += lastExp;
            var inverse = Vector512.Create(1f / SumLanes(sum));
            for (int i = 0; i < whole; i += 16) (Vector512.Load(py + i) * inverse).Store(py + i);
            if (rest > 0) Avx512F.MaskStore(py + whole, lanes, lastExp * inverse);
        }
    }

    /// <summary>The 16 lanes' sum in a fixed tree: lanes l and l + 8, then k and k + 4, then (0 + 1) + (2 + 3).</summary>
    private static float SumLanes(Vector512<float> sum)
    {
        var s8 = sum.GetLower() + sum.GetUpper();
        var s4 = s8.GetLower() + s8.GetUpper();
        return (s4[0] + s4[1]) + (s4[2] + s4[3]);
    }

    /// <summary><see cref="SumLanes(Vector512{float})"/> of 16 partial sums held in a span: the same tree.</summary>
    private static float SumLanes(ReadOnlySpan<float> sum)
    {
        Span<float> s8 = stackalloc float[8];
        for (int k = 0; k < 8; k++) s8[k] = sum[k] + sum[k + 8];
        float s40 = s8[0] + s8[4], s41 = s8[1] + s8[5], s42 = s8[2] + s8[6], s43 = s8[3] + s8[7];
        return (s40 + s41) + (s42 + s43);
    }

    /// <summary>exp(d) for d &lt;= 0 as <see cref="ExpNonPositive512"/>, and exactly 0 below its clamp (-inf included).</summary>
    private static Vector512<float> SoftmaxExp512(Vector512<float> d) =>
        Vector512.ConditionalSelect(Vector512.LessThan(d, Vector512.Create(ExpLowest)), Vector512<float>.Zero, ExpNonPositive512(d));

    /// <summary><see cref="SoftmaxRow"/> lane by lane: the same operations and summation order as <see cref="SoftmaxRow512"/>.</summary>
    internal static void SoftmaxRowLanes(ReadOnlySpan<float> x, Span<float> y, float scale = 1f)
    {
        int n = x.Length;
        float max = float.NegativeInfinity;
        Span<float> top = stackalloc float[16];
        top.Fill(float.NegativeInfinity);
        // MathF.Max is Vector512.Max's lane operation: NaN if either is NaN, +0 over -0, else the larger.
        for (int i = 0; i < n; i++) top[i & 15] = MathF.Max(top[i & 15], x[i] * scale);
        for (int j = 0; j < 16; j++) max = MathF.Max(max, top[j]);
        if (float.IsNegativeInfinity(max))
        {
            y.Clear();
            return;
        }
        Span<float> sum = stackalloc float[16];
        sum.Clear();
        for (int i = 0; i < n; i++)
        {
            float d = x[i] * scale - max;
            float e = d < ExpLowest ? 0f : ExpNonPositiveScalar(d);
            y[i] = e;
            sum[i & 15] += e;
        }
        float inverse = 1f / SumLanes(sum);
        for (int i = 0; i < n; i++) y[i] *= inverse;
    }

    /// <summary>dx += scale * p (dy - dot(dy, p)) per row; masked entries have p = 0 and get nothing.</summary>
    private static void SoftmaxBackward(Tensor y, Tensor x, float scale, int rows, int n)
    {
        float[] dy = y.Grad!.Data, p = y.Data, gx = Gradient(x);
        ForRows(rows, n, (start, end) =>
        {
            var tmp = new float[n];
            for (int r = start; r < end; r++)
            {
                var pr = p.AsSpan(r * n, n);
                var dr = dy.AsSpan(r * n, n);
                float dot = TensorPrimitives.Dot(dr, pr);
                TensorPrimitives.Subtract(dr, dot, tmp);
                TensorPrimitives.Multiply(tmp, pr, tmp);
                var g = gx.AsSpan(r * n, n);
                TensorPrimitives.MultiplyAdd(tmp, scale, g, g);
            }
        });
    }

    /// <summary>
    /// Inference only (records nothing): multi-head self-attention on the projections' rows, q, k, v [B * T, H * D],
    /// to the merged context [B * T, H * D], with the bits of SplitHeads, <see cref="BatchedMatMul"/> (Q K^T),
    /// <see cref="AttentionSoftmax"/> (scale 1 / sqrt(D)), BatchedMatMul (P V) and MergeHeads: each (sequence, head)
    /// reads its columns in place and writes its slice of the context, on one thread, the pairs spread over threads.
    /// </summary>
    /// <remarks>
    /// A packed batch (<see cref="SequenceBatch.Pack"/>) runs each sequence over its own rows and length, with no
    /// mask: the bits of that sequence alone in a batch of one.
    /// </remarks>
    internal static Tensor SelfAttentionInference(Tensor q, Tensor k, Tensor v, SequenceBatch shape, int heads, bool causal)
    {
        int rows = q.Shape[0], channels = q.Shape[1];
        if (q.Rank != 2 || !q.Shape.AsSpan().SequenceEqual(k.Shape) || !q.Shape.AsSpan().SequenceEqual(v.Shape) || rows != shape.Rows || channels % heads != 0)
            throw ShapeError(nameof(SelfAttentionInference), "q, k and v of one shape [rows, H * D]", q, k);
        return SelfAttentionInference(q.Data, 0, k.Data, 0, v.Data, 0, channels, channels, shape, heads, causal);
    }

    /// <summary>
    /// <see cref="SelfAttentionInference(Tensor, Tensor, Tensor, SequenceBatch, int, bool)"/> on rows of
    /// <paramref name="stride"/> floats: row r of Q is <paramref name="channels"/> floats at
    /// <c>qOffset + r * stride</c> of <paramref name="qs"/> (K and V alike). One array [rows, 3C] with offsets 0, C, 2C holds a stacked Q/K/V
    /// product; the bits are those of three separate [rows, C] tensors (the kernels read the same values).
    /// </summary>
    internal static unsafe Tensor SelfAttentionInference(float[] qs, int qOffset, float[] ks, int kOffset, float[] vs, int vOffset,
        int stride, int channels, SequenceBatch shape, int heads, bool causal)
    {
        int rows = shape.Rows, batch = shape.BatchSize;
        static bool Fits(float[] a, int offset, int rows, int stride, int channels) =>
            offset >= 0 && (rows == 0 || offset + (long)(rows - 1) * stride + channels <= a.Length);
        if (channels % heads != 0 || stride < channels || !Fits(qs, qOffset, rows, stride, channels) || !Fits(ks, kOffset, rows, stride, channels) ||
            !Fits(vs, vOffset, rows, stride, channels))
            throw new ArgumentException($"{nameof(SelfAttentionInference)}: {rows} rows of {channels} channels ({heads} heads), stride {stride}, at offsets {qOffset}, {kOffset} and {vOffset} do not fit arrays of {qs.Length}, {ks.Length} and {vs.Length} floats.");
        var context = Tensor.Zeros(rows, channels);
        SelfAttentionInferenceInto(qs, qOffset, ks, kOffset, vs, vOffset, stride, channels, shape, heads, causal, context.Data);
        return context;
    }

    /// <summary>
    /// <see cref="SelfAttentionInference(float[], int, float[], int, float[], int, int, int, SequenceBatch, int, bool)"/>
    /// into the first rows x channels values of <paramref name="cs"/>, which must be zeros there (a pooled buffer, cleared).
    /// </summary>
    internal static unsafe void SelfAttentionInferenceInto(float[] qs, int qOffset, float[] ks, int kOffset, float[] vs, int vOffset,
        int stride, int channels, SequenceBatch shape, int heads, bool causal, float[] cs)
    {
        int rows = shape.Rows, batch = shape.BatchSize;
        if (cs.Length < (long)rows * channels)
            throw new ArgumentException($"{nameof(SelfAttentionInferenceInto)}: {cs.Length} floats for a context of {rows} x {channels}.", nameof(cs));
        int longest = shape.SequenceLength, size = channels / heads;
        int[]? keyMask = shape.AttentionMask;
        float scale = 1f / MathF.Sqrt(size);
        int pairs = batch * heads;
        // Score rows are padded with zero keys to whole vectors (16 floats covers every SIMD width), so Q K^T runs on
        // the vector kernel even at a few tokens; the padded scores are never read.
        int longestStride = (longest + 15) / 16 * 16;
        long work = 0;
        for (int b = 0; b < batch; b++) work += (long)shape.SequenceRows(b) * shape.SequenceRows(b) * size * heads;
        // K_h^T by 16 x 16 register transposes where the head size is whole vectors (MiniLM's and BERT's 32 and 64),
        // and each softmax row scaled as it is read when there is no mask (session 19: MiniLM one sentence at a time,
        // 1 thread, alternating A/B, each about 5% of the sentence, the two 5.5-7%: a TensorPrimitives call or a
        // scalar copy loop per row of 13 keys cost more than the row's arithmetic).
        bool transposeBlocks = size % 16 == 0 && Vector512.IsHardwareAccelerated && Avx512F.IsSupported;
        Action<int, int> body = (start, end) =>
        {
            var keysT = new float[size * longestStride];     // K_h^T [D, T]: the kernel's right operand is row-major
            var scores = new float[longest * longestStride];
            fixed (float* q0 = qs, k0 = ks, v0 = vs, pc = cs, pkt = keysT, ps = scores)
            {
                float* pq = q0 + qOffset, pk = k0 + kOffset, pv = v0 + vOffset;
                for (int pair = start; pair < end; pair++)
                {
                    int b = pair / heads, h = pair % heads;
                    int first = shape.SequenceStart(b), seq = shape.SequenceRows(b);
                    if (seq == 0) continue;
                    int keys = (seq + 15) / 16 * 16;
                    nint input = (nint)first * stride + h * size, output = (nint)first * channels + h * size;
                    long mark = TransformerProfiler.Start();
                    if (transposeBlocks)
                    {
                        // 16 keys x 16 dimensions per in-register transpose (keys past seq written as zeros, into the padding).
                        for (int j0 = 0; j0 < seq; j0 += 16)
                            for (int d0 = 0; d0 < size; d0 += 16)
                                OutputLanesSgemm.Transpose16(pk + input + (nint)j0 * stride + d0, stride, Math.Min(16, seq - j0), pkt + (nint)d0 * keys + j0, keys);
                    }
                    else
                    {
                        for (int j = 0; j < seq; j++)
                        {
                            float* keyRow = pk + input + (nint)j * stride;
                            for (int d = 0; d < size; d++) pkt[d * keys + j] = keyRow[d];
                        }
                    }
                    Gemm.MatMulStrided(pq + input, stride, pkt, keys, ps, keys, seq, size, keys);
                    mark = TransformerProfiler.Stop(TransformerStage.AttentionScores, mark);
                    for (int i = 0; i < seq; i++)
                    {
                        // As AttentionSoftmax: scale, mask padded (and, causal, later) keys to -infinity, softmax.
                        int visible = causal ? i + 1 : seq;
                        var row = scores.AsSpan(i * keys, seq);
                        var shown = row[..visible];
                        if (keyMask != null)
                        {
                            TensorPrimitives.Multiply(shown, scale, shown);
                            var m = keyMask.AsSpan(first, visible);
                            for (int j = 0; j < visible; j++)
                                if (m[j] == 0) shown[j] = float.NegativeInfinity;
                            SoftmaxRow(shown, shown);
                        }
                        else SoftmaxRow(shown, shown, scale);   // the same products, read once
                        row[visible..].Clear();
                    }
                    mark = TransformerProfiler.Stop(TransformerStage.AttentionSoftmax, mark);
                    Gemm.MatMulStrided(ps, keys, pv + input, stride, pc + output, channels, seq, seq, size);
                    TransformerProfiler.Stop(TransformerStage.AttentionContext, mark);
                }
            }
        };
        // A pair is ~2 T^2 D multiply-adds: at a few tokens the whole layer's attention is cheaper than a dispatch.
        if (pairs < 2 || work < 1L << 14) body(0, pairs);
        else WorkerPool.Shared.For(pairs, body, Gemm.MaxDegreeOfParallelism);
    }

    /// <summary>
    /// Batched matrix product over the leading dimensions: c[..., M, N] = a[..., M, K] b[..., K, N], or with
    /// <paramref name="transposeB"/> c = a b^T for b[..., N, K] (attention's Q K^T). The leading dimensions of a
    /// and b must be equal. Each matrix runs on <see cref="Gemm"/>; the matrices are spread over threads.
    /// </summary>
    public static Tensor BatchedMatMul(Tensor a, Tensor b, bool transposeB = false)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Rank < 3 || a.Rank != b.Rank || !a.Shape.AsSpan(0, a.Rank - 2).SequenceEqual(b.Shape.AsSpan(0, b.Rank - 2)) ||
            a.Shape[^1] != (transposeB ? b.Shape[^1] : b.Shape[^2]))
            throw ShapeError(nameof(BatchedMatMul), transposeB ? "a [..., M, K] and b [..., N, K] with the same leading dimensions" : "a [..., M, K] and b [..., K, N] with the same leading dimensions", a, b);
        int m = a.Shape[^2], k = a.Shape[^1], n = transposeB ? b.Shape[^2] : b.Shape[^1];
        int count = ShapeProductOfLeading(a.Shape);
        var shape = (int[])a.Shape.Clone();
        shape[^1] = n;
        var c = Tensor.Zeros(shape);
        float[] av = a.Data, bv = b.Data, cv = c.Data;
        int aSize = m * k, bSize = k * n, cSize = m * n;
        ForMatrices(count, (long)m * k * n, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                var ai = av.AsSpan(i * aSize, aSize);
                var bi = bv.AsSpan(i * bSize, bSize);
                var ci = cv.AsSpan(i * cSize, cSize);
                if (transposeB) Gemm.MatMulTransposedB(ai, bi, ci, m, k, n);
                else Gemm.MatMul(ai, bi, ci, m, k, n);
            }
        });
        return Tensor.Record(c, () =>
        {
            float[] dc = c.Grad!.Data;
            float[]? ga = a.RequiresGrad ? Gradient(a) : null;
            float[]? gb = b.RequiresGrad ? Gradient(b) : null;
            ForMatrices(count, (long)m * k * n * 2, (start, end) =>
            {
                for (int i = start; i < end; i++)
                {
                    var ai = av.AsSpan(i * aSize, aSize);
                    var bi = bv.AsSpan(i * bSize, bSize);
                    var dci = dc.AsSpan(i * cSize, cSize);
                    if (ga != null)
                    {
                        var g = ga.AsSpan(i * aSize, aSize);
                        // da = dc b^T (b [K, N]) or dc b (b [N, K]).
                        if (transposeB) Gemm.MatMul(dci, bi, g, m, n, k, accumulate: true);
                        else Gemm.MatMulTransposedB(dci, bi, g, m, n, k, accumulate: true);
                    }
                    if (gb != null)
                    {
                        var g = gb.AsSpan(i * bSize, bSize);
                        // db = a^T dc ([K, N]) or dc^T a ([N, K]).
                        if (transposeB) Gemm.MatMulTransposedA(dci, ai, g, n, m, k, accumulate: true);
                        else Gemm.MatMulTransposedA(ai, dci, g, k, m, n, accumulate: true);
                    }
                }
            });
        }, a, b);
    }

    private static int ShapeProductOfLeading(int[] shape)
    {
        int product = 1;
        for (int i = 0; i < shape.Length - 2; i++) product *= shape[i];
        return product;
    }

    /// <summary>
    /// Splits rows of heads into a head-major tensor: x [B * T, H * D] to [B, H, T, D] (PyTorch's
    /// <c>view(B, T, H, D).transpose(1, 2)</c>), the layout <see cref="BatchedMatMul"/> takes per head.
    /// </summary>
    public static Tensor SplitHeads(Tensor x, int batch, int heads)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 2 || batch <= 0 || heads <= 0 || x.Shape[0] % batch != 0 || x.Shape[1] % heads != 0)
            throw new ArgumentException($"SplitHeads: expected x [B * T, H * D] with B = {batch} and H = {heads} dividing its dimensions; got {Tensor.FormatShape(x.Shape)}.");
        int seq = x.Shape[0] / batch, size = x.Shape[1] / heads;
        var y = Tensor.Zeros(batch, heads, seq, size);
        Permute(x.Data, y.Data, batch, seq, heads, size, toHeads: true, accumulate: false);
        return Tensor.Record(y, () => Permute(Gradient(x), y.Grad!.Data, batch, seq, heads, size, toHeads: false, accumulate: true), x);
    }

    /// <summary>The inverse of <see cref="SplitHeads"/>: x [B, H, T, D] to [B * T, H * D].</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4)
            throw new ArgumentException($"MergeHeads: expected x [B, H, T, D]; got {Tensor.FormatShape(x.Shape)}.");
        int batch = x.Shape[0], heads = x.Shape[1], seq = x.Shape[2], size = x.Shape[3];
        var y = Tensor.Zeros(batch * seq, heads * size);
        Permute(y.Data, x.Data, batch, seq, heads, size, toHeads: false, accumulate: false);
        return Tensor.Record(y, () => Permute(y.Grad!.Data, Gradient(x), batch, seq, heads, size, toHeads: true, accumulate: true), x);
    }

    /// <summary>Copies (or adds) between rows [B * T, H * D] and heads [B, H, T, D], in the direction given.</summary>
    private static void Permute(float[] rows, float[] headMajor, int batch, int seq, int heads, int size, bool toHeads, bool accumulate)
    {
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < seq; t++)
                for (int h = 0; h < heads; h++)
                {
                    var r = rows.AsSpan(((b * seq + t) * heads + h) * size, size);
                    var m = headMajor.AsSpan(((b * heads + h) * seq + t) * size, size);
                    Span<float> destination = toHeads ? m : r;
                    ReadOnlySpan<float> source = toHeads ? r : m;
                    if (accumulate) TensorPrimitives.Add(destination, source, destination);
                    else source.CopyTo(destination);
                }
    }

    /// <summary>Rows of matrices [N_i, C] one after another: [sum N_i, C] (a packed batch's sequences back together).</summary>
    internal static Tensor ConcatRows(IReadOnlyList<Tensor> parts)
    {
        int channels = parts[0].Shape[1], rows = 0;
        foreach (var part in parts)
        {
            if (part.Rank != 2 || part.Shape[1] != channels)
                throw ShapeError(nameof(ConcatRows), "matrices [N_i, C] of one width", parts[0], part);
            rows += part.Shape[0];
        }
        var y = Tensor.Zeros(rows, channels);
        int offset = 0;
        foreach (var part in parts)
        {
            part.Data.AsSpan(0, part.Length).CopyTo(y.Data.AsSpan(offset));
            offset += part.Length;
        }
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            int at = 0;
            foreach (var part in parts)
            {
                if (part.RequiresGrad)
                {
                    var g = part.GradSpan();
                    TensorPrimitives.Add(g, dy.AsSpan(at, part.Length), g);
                }
                at += part.Length;
            }
        }, parts.ToArray());
    }

    /// <summary>Rows of a table by index: y [N, C] = table[ids[n]] for table [V, C] (an embedding lookup).</summary>
    /// <exception cref="ArgumentException">An id is outside [0, V); the message names its position and value.</exception>
    public static Tensor Embedding(Tensor table, ReadOnlySpan<int> ids)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (table.Rank != 2)
            throw new ArgumentException($"Embedding: expected a table [V, C]; got {Tensor.FormatShape(table.Shape)}.", nameof(table));
        int vocabulary = table.Shape[0], channels = table.Shape[1];
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)vocabulary)
                throw new ArgumentException($"Embedding: id {ids[i]} at position {i} is outside the table's [0, {vocabulary}).", nameof(ids));
        var copy = ids.ToArray();
        var y = Tensor.Zeros(copy.Length, channels);
        for (int i = 0; i < copy.Length; i++)
            table.Data.AsSpan(copy[i] * channels, channels).CopyTo(y.Data.AsSpan(i * channels, channels));
        return Tensor.Record(y, () =>
        {
            // Scattered in position order: a repeated id accumulates in the same order at any thread count.
            var g = table.GradSpan();
            var dy = y.Grad!.Data;
            for (int i = 0; i < copy.Length; i++)
            {
                var row = g.Slice(copy[i] * channels, channels);
                TensorPrimitives.Add(row, dy.AsSpan(i * channels, channels), row);
            }
        }, table);
    }

    /// <summary>
    /// Inverted dropout for training: each element is zeroed with probability <paramref name="probability"/> and the
    /// rest scaled by 1 / (1 - p). The mask is drawn from <paramref name="rng"/> in element order, so a seed gives
    /// the same bits at any thread count. Call it only while training; inference skips it.
    /// </summary>
    public static Tensor Dropout(Tensor x, float probability, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(rng);
        if (!(probability >= 0f && probability < 1f))
            throw new ArgumentOutOfRangeException(nameof(probability), probability, "Dropout: the probability must be in [0, 1).");
        float keepScale = 1f / (1f - probability);
        var factor = new float[x.Length];
        for (int i = 0; i < factor.Length; i++) factor[i] = rng.NextFloat() < probability ? 0f : keepScale;
        var y = new Tensor(new float[x.Length], x.Shape);
        TensorPrimitives.Multiply(x.Data, factor, y.Data);
        return Tensor.Record(y, () =>
        {
            var gx = x.GradSpan();
            TensorPrimitives.FusedMultiplyAdd(y.Grad!.Data, factor, gx, gx);
        }, x);
    }

    private static float[] Gradient(Tensor t)
    {
        t.GradSpan();
        return t.Grad!.Data;
    }

    /// <summary>Runs body over row ranges, on several threads when the rows are long enough to pay for it.</summary>
    private static void ForRows(int rows, int rowLength, Action<int, int> body)
    {
        if ((long)rows * rowLength < ParallelRowElements || rows < 2) body(0, rows);
        else WorkerPool.Shared.For(rows, body, Gemm.MaxDegreeOfParallelism);
    }

    /// <summary>Runs body over element ranges of a flat array, in chunks that keep work per thread worthwhile.</summary>
    private static void ForChunks(int length, Action<int, int> body)
    {
        const int Chunk = 4096;
        int chunks = (length + Chunk - 1) / Chunk;
        if (length < ParallelRowElements) body(0, length);
        else WorkerPool.Shared.For(chunks, (s, e) => body(s * Chunk, Math.Min(length, e * Chunk)), Gemm.MaxDegreeOfParallelism);
    }

    /// <summary>Runs body over matrix indices; each matrix's Gemm then runs on its worker's thread.</summary>
    private static void ForMatrices(int count, long workPerMatrix, Action<int, int> body)
    {
        if (count < 2 || workPerMatrix * count < 1L << 16) body(0, count);
        else WorkerPool.Shared.For(count, body, Gemm.MaxDegreeOfParallelism);
    }
}
