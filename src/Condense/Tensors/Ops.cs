using System.Numerics.Tensors;
using Condense.Kernels;

namespace Condense;

/// <summary>
/// Autograd-aware tensor operations. Each op validates shapes, computes its forward, and records a backward
/// that adds into the gradients of the inputs that require them.
/// </summary>
public static partial class Ops
{
    /// <summary>y[B,Out] = x[B,In] w[Out,In]^T + b[Out].</summary>
    public static Tensor Linear(Tensor x, Tensor w, Tensor? b = null)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(w);
        if (x.Rank != 2 || w.Rank != 2 || x.Shape[1] != w.Shape[1])
            throw ShapeError(nameof(Linear), "x [B, In] and weight [Out, In]", x, w);
        int batch = x.Shape[0], inF = x.Shape[1], outF = w.Shape[0];
        if (b != null && (b.Rank != 1 || b.Shape[0] != outF))
            throw ShapeError(nameof(Linear), $"bias [{outF}] for weight [Out, In]", b, w);

        var y = Tensor.Zeros(batch, outF);
        Gemm.MatMulTransposedB(x.Data, w.Data, y.Data, batch, inF, outF);
        if (b != null) AddRowVector(y.Data, b.Data, batch, outF);

        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            if (x.RequiresGrad) Gemm.MatMul(dy, w.Data, x.GradSpan(), batch, outF, inF, accumulate: true);
            if (w.RequiresGrad) Gemm.MatMulTransposedA(dy, x.Data, w.GradSpan(), outF, batch, inF, accumulate: true);
            if (b is { RequiresGrad: true }) SumRowsInto(dy, b.GradSpan(), batch, outF);
        }, x, w, b);
    }

    /// <summary>c[M,N] = a[M,K] b[K,N].</summary>
    public static Tensor MatMul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Rank != 2 || b.Rank != 2 || a.Shape[1] != b.Shape[0])
            throw ShapeError(nameof(MatMul), "a [M, K] and b [K, N]", a, b);
        int m = a.Shape[0], k = a.Shape[1], n = b.Shape[1];
        var c = Tensor.Zeros(m, n);
        Gemm.MatMul(a.Data, b.Data, c.Data, m, k, n);
        return Tensor.Record(c, () =>
        {
            var dc = c.Grad!.Data;
            if (a.RequiresGrad) Gemm.MatMulTransposedB(dc, b.Data, a.GradSpan(), m, n, k, accumulate: true);
            if (b.RequiresGrad) Gemm.MatMulTransposedA(a.Data, dc, b.GradSpan(), k, m, n, accumulate: true);
        }, a, b);
    }

    /// <summary>Element-wise a + b (same shape).</summary>
    public static Tensor Add(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.Shape.AsSpan().SequenceEqual(b.Shape))
            throw ShapeError(nameof(Add), "equal shapes", a, b);
        var y = new Tensor(new float[a.Length], a.Shape);
        TensorPrimitives.Add(a.Data, b.Data, y.Data);
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            if (a.RequiresGrad) AddInto(a.GradSpan(), dy);
            if (b.RequiresGrad) AddInto(b.GradSpan(), dy);
        }, a, b);
    }

    /// <summary>Element-wise a * b (same shape).</summary>
    public static Tensor Mul(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.Shape.AsSpan().SequenceEqual(b.Shape))
            throw ShapeError(nameof(Mul), "equal shapes", a, b);
        var y = new Tensor(new float[a.Length], a.Shape);
        TensorPrimitives.Multiply(a.Data, b.Data, y.Data);
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            if (a.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(dy, b.Data, a.GradSpan(), a.GradSpan());
            if (b.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(dy, a.Data, b.GradSpan(), b.GradSpan());
        }, a, b);
    }

    /// <summary>x * s for a scalar s.</summary>
    public static Tensor Mul(Tensor x, float scalar)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Tensor(new float[x.Length], x.Shape);
        TensorPrimitives.Multiply(x.Data, scalar, y.Data);
        return Tensor.Record(y, () =>
        {
            var gx = x.GradSpan();
            TensorPrimitives.MultiplyAdd(y.Grad!.Data, scalar, gx, gx);
        }, x);
    }

    /// <summary>x + b broadcast over dimension 1: x [B, N] or [N, C, H, W] with b [N] resp. [C].</summary>
    public static Tensor AddBias(Tensor x, Tensor bias)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(bias);
        if (x.Rank < 2 || bias.Rank != 1 || bias.Shape[0] != x.Shape[1])
            throw ShapeError(nameof(AddBias), "x [B, C, ...] and bias [C]", x, bias);
        int outer = x.Shape[0], channels = x.Shape[1], inner = x.Length / Math.Max(1, outer * channels);
        var y = new Tensor((float[])x.Data.Clone(), x.Shape);
        for (int o = 0; o < outer; o++)
            for (int c = 0; c < channels; c++)
                TensorPrimitives.Add(y.Data.AsSpan((o * channels + c) * inner, inner), bias.Data[c], y.Data.AsSpan((o * channels + c) * inner, inner));
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            if (x.RequiresGrad) AddInto(x.GradSpan(), dy);
            if (bias.RequiresGrad)
            {
                var gb = bias.GradSpan();
                for (int o = 0; o < outer; o++)
                    for (int c = 0; c < channels; c++)
                        gb[c] += TensorPrimitives.Sum(dy.AsSpan((o * channels + c) * inner, inner));
            }
        }, x, bias);
    }

    /// <summary>max(x, 0).</summary>
    public static Tensor Relu(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Tensor(new float[x.Length], x.Shape);
        TensorPrimitives.Max(x.Data, 0f, y.Data);
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            var gx = x.GradSpan();
            var xs = x.Data;
            for (int i = 0; i < gx.Length; i++)
                if (xs[i] > 0f) gx[i] += dy[i];
        }, x);
    }

    /// <summary>
    /// GELU, tanh approximation (Hendrycks &amp; Gimpel; the form GPT-2 and PyTorch's <c>approximate="tanh"</c> use):
    /// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    /// </summary>
    public static Tensor Gelu(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        const float S = 0.7978845608028654f; // sqrt(2/pi)
        const float C = 0.044715f;
        var y = new Tensor(new float[x.Length], x.Shape);
        var xs = x.Data;
        for (int i = 0; i < xs.Length; i++)
        {
            float v = xs[i];
            y.Data[i] = 0.5f * v * (1f + MathF.Tanh(S * (v + C * v * v * v)));
        }
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            var gx = x.GradSpan();
            for (int i = 0; i < xs.Length; i++)
            {
                float v = xs[i];
                float t = MathF.Tanh(S * (v + C * v * v * v));
                float dt = (1f - t * t) * S * (1f + 3f * C * v * v);
                gx[i] += dy[i] * (0.5f * (1f + t) + 0.5f * v * dt);
            }
        }, x);
    }

    /// <summary>The same values with another shape (one dimension may be -1). Shares no storage with <paramref name="x"/>.</summary>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(shape);
        var resolved = (int[])shape.Clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < resolved.Length; i++)
        {
            if (resolved[i] == -1)
            {
                if (infer >= 0) throw new ArgumentException($"Reshape: shape {Tensor.FormatShape(shape)} has more than one -1 (input {Tensor.FormatShape(x.Shape)}).");
                infer = i;
            }
            else if (resolved[i] < 0)
            {
                throw new ArgumentException($"Reshape: shape {Tensor.FormatShape(shape)} has a negative dimension (input {Tensor.FormatShape(x.Shape)}).");
            }
            else
            {
                known *= resolved[i];
            }
        }
        if (infer >= 0)
        {
            if (known == 0 || x.Length % known != 0)
                throw new ArgumentException($"Reshape: cannot reshape {Tensor.FormatShape(x.Shape)} to {Tensor.FormatShape(shape)}.");
            resolved[infer] = (int)(x.Length / known);
            known *= resolved[infer];
        }
        if (known != x.Length)
            throw new ArgumentException($"Reshape: cannot reshape {Tensor.FormatShape(x.Shape)} ({x.Length} elements) to {Tensor.FormatShape(shape)}.");
        var y = new Tensor((float[])x.Data.Clone(), resolved);
        return Tensor.Record(y, () => AddInto(x.GradSpan(), y.Grad!.Data), x);
    }

    /// <summary>[N, d1, d2, ...] to [N, d1*d2*...], keeping the batch dimension.</summary>
    public static Tensor Flatten(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank < 1) throw new ArgumentException($"Flatten: needs at least a batch dimension, got shape {Tensor.FormatShape(x.Shape)}.");
        return Reshape(x, x.Shape[0], x.Shape[0] == 0 ? 0 : x.Length / x.Shape[0]);
    }

    /// <summary>The sum of all elements, as a scalar (shape []).</summary>
    public static Tensor Sum(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new Tensor([TensorPrimitives.Sum(x.Data)]);
        return Tensor.Record(y, () =>
        {
            var gx = x.GradSpan();
            TensorPrimitives.Add(gx, y.Grad!.Data[0], gx);
        }, x);
    }

    /// <summary>The mean of all elements, as a scalar (shape []).</summary>
    public static Tensor Mean(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Length == 0) throw new ArgumentException($"Mean: tensor of shape {Tensor.FormatShape(x.Shape)} is empty.");
        float scale = 1f / x.Length;
        var y = new Tensor([TensorPrimitives.Sum(x.Data) * scale]);
        return Tensor.Record(y, () =>
        {
            var gx = x.GradSpan();
            TensorPrimitives.Add(gx, y.Grad!.Data[0] * scale, gx);
        }, x);
    }

    /// <summary>
    /// Mean over the batch of -log softmax(logits)[label], as a scalar. Uses the max-shifted log-sum-exp so large
    /// logits do not overflow.
    /// </summary>
    public static Tensor SoftmaxCrossEntropy(Tensor logits, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(labels);
        if (logits.Rank != 2)
            throw new ArgumentException($"SoftmaxCrossEntropy: logits must be [B, C], got {Tensor.FormatShape(logits.Shape)}.");
        int batch = logits.Shape[0], classes = logits.Shape[1];
        if (labels.Length != batch)
            throw new ArgumentException($"SoftmaxCrossEntropy: logits {Tensor.FormatShape(logits.Shape)} need {batch} labels, got {labels.Length}.");
        if (batch == 0 || classes == 0)
            throw new ArgumentException($"SoftmaxCrossEntropy: logits {Tensor.FormatShape(logits.Shape)} are empty.");
        for (int i = 0; i < batch; i++)
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentException($"SoftmaxCrossEntropy: label {labels[i]} at index {i} is outside [0, {classes}) for logits {Tensor.FormatShape(logits.Shape)}.");

        var probs = new float[logits.Length];
        double total = 0;
        for (int i = 0; i < batch; i++)
        {
            var row = logits.Data.AsSpan(i * classes, classes);
            var p = probs.AsSpan(i * classes, classes);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, p);
            TensorPrimitives.Exp(p, p);
            float sum = TensorPrimitives.Sum(p);
            TensorPrimitives.Divide(p, sum, p);
            total += MathF.Log(sum) - (row[labels[i]] - max);
        }
        var loss = new Tensor([(float)(total / batch)]);
        var labelsCopy = (int[])labels.Clone();
        return Tensor.Record(loss, () =>
        {
            float scale = loss.Grad!.Data[0] / batch;
            var g = logits.GradSpan();
            for (int i = 0; i < batch; i++)
            {
                var gr = g.Slice(i * classes, classes);
                var p = probs.AsSpan(i * classes, classes);
                TensorPrimitives.MultiplyAdd(p, scale, gr, gr);
                gr[labelsCopy[i]] -= scale;
            }
        }, logits);
    }

    /// <summary>The index of the largest logit per row (first on ties). Not recorded on the tape.</summary>
    public static int[] ArgMax(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.Rank != 2 || logits.Shape[1] == 0)
            throw new ArgumentException($"ArgMax: logits must be [B, C] with C > 0, got {Tensor.FormatShape(logits.Shape)}.");
        int batch = logits.Shape[0], classes = logits.Shape[1];
        var result = new int[batch];
        for (int i = 0; i < batch; i++)
            result[i] = TensorPrimitives.IndexOfMax(logits.Data.AsSpan(i * classes, classes));
        return result;
    }

    /// <summary>The fraction of rows whose ArgMax equals the label.</summary>
    public static float Accuracy(Tensor logits, int[] labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var predicted = ArgMax(logits);
        if (labels.Length != predicted.Length)
            throw new ArgumentException($"Accuracy: logits {Tensor.FormatShape(logits.Shape)} need {predicted.Length} labels, got {labels.Length}.");
        if (predicted.Length == 0) return 0f;
        int correct = 0;
        for (int i = 0; i < predicted.Length; i++) if (predicted[i] == labels[i]) correct++;
        return (float)correct / predicted.Length;
    }

    internal static ArgumentException ShapeError(string op, string expected, Tensor a, Tensor b) =>
        new($"{op}: expected {expected}; got {Tensor.FormatShape(a.Shape)} and {Tensor.FormatShape(b.Shape)}.");

    internal static void AddInto(Span<float> destination, ReadOnlySpan<float> source) =>
        TensorPrimitives.Add(destination, source, destination);

    internal static void AddRowVector(Span<float> y, ReadOnlySpan<float> b, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
        {
            var row = y.Slice(r * cols, cols);
            TensorPrimitives.Add(row, b, row);
        }
    }

    internal static void SumRowsInto(ReadOnlySpan<float> dy, Span<float> destination, int rows, int cols)
    {
        for (int r = 0; r < rows; r++)
            TensorPrimitives.Add(destination, dy.Slice(r * cols, cols), destination);
    }
}
