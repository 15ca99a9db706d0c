using Condense.Kernels;
using Condense.Nn;

namespace Condense;

public static partial class Ops
{
    /// <summary>
    /// 2-D convolution: x [N, C, H, W], w [O, C, K, K], b [O]? gives [N, O, H', W'] with
    /// H' = (H + 2 padding - K) / stride + 1. Computed as im2col rows [N H' W', C K K] times w^T.
    /// </summary>
    public static Tensor Conv2d(Tensor x, Tensor w, Tensor? b = null, int stride = 1, int padding = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(w);
        if (w.Rank != 4 || w.Shape[2] != w.Shape[3])
            throw ShapeError(nameof(Conv2d), "x [N, C, H, W] and a square weight [O, C, K, K]", x, w);
        if (x.Rank != 4 || x.Shape[1] != w.Shape[1])
            throw ShapeError(nameof(Conv2d), "x [N, C, H, W] and weight [O, C, K, K] with the same C", x, w);
        int outChannels = w.Shape[0];
        if (b != null && (b.Rank != 1 || b.Shape[0] != outChannels))
            throw ShapeError(nameof(Conv2d), $"bias [{outChannels}] for weight [O, C, K, K]", b, w);
        var rows = Im2Col(x, w.Shape[2], stride, padding, out int outH, out int outW);
        var w2d = Reshape(w, outChannels, -1);
        var y = Linear(rows, w2d, b);
        return RowsToChannels(y, x.Shape[0], outH, outW);
    }

    /// <summary>
    /// Unfolds x [N, C, H, W] into rows [N H' W', C K K]: row (n, oh, ow) holds the receptive field of that output
    /// pixel, channel-major then kernel row then kernel column (the order of a flattened [O, C, K, K] weight row).
    /// </summary>
    public static Tensor Im2Col(Tensor x, int kernelSize, int stride, int padding, out int outH, out int outW)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4)
            throw new ArgumentException($"Im2Col: x must be [N, C, H, W], got {Tensor.FormatShape(x.Shape)}.");
        if (kernelSize <= 0 || stride <= 0 || padding < 0)
            throw new ArgumentException($"Im2Col: kernel {kernelSize} and stride {stride} must be positive and padding {padding} non-negative.");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], wd = x.Shape[3];
        int oh = (h + 2 * padding - kernelSize) / stride + 1, ow = (wd + 2 * padding - kernelSize) / stride + 1;
        if (h + 2 * padding < kernelSize || wd + 2 * padding < kernelSize)
            throw new ArgumentException($"Im2Col: input {Tensor.FormatShape(x.Shape)} with padding {padding} is smaller than kernel {kernelSize}.");
        outH = oh;
        outW = ow;
        int k = kernelSize, cols = c * k * k;
        var rows = Tensor.Zeros(n * oh * ow, cols);
        var xs = x.Data;
        var rs = rows.Data;
        // One loop nest serves both directions: forward copies x -> rows, backward adds rows -> x.
        void Walk(Span<float> image, Span<float> table, bool toTable)
        {
            for (int ni = 0; ni < n; ni++)
                for (int y = 0; y < oh; y++)
                    for (int xo = 0; xo < ow; xo++)
                    {
                        int row = ((ni * oh + y) * ow + xo) * cols;
                        for (int ci = 0; ci < c; ci++)
                            for (int ky = 0; ky < k; ky++)
                            {
                                int iy = y * stride + ky - padding;
                                if ((uint)iy >= (uint)h) continue;
                                for (int kx = 0; kx < k; kx++)
                                {
                                    int ix = xo * stride + kx - padding;
                                    if ((uint)ix >= (uint)wd) continue;
                                    int src = ((ni * c + ci) * h + iy) * wd + ix;
                                    int dst = row + (ci * k + ky) * k + kx;
                                    if (toTable) table[dst] = image[src];
                                    else image[src] += table[dst];
                                }
                            }
                    }
        }
        Walk(xs, rs, toTable: true);
        return Tensor.Record(rows, () => Walk(x.GradSpan(), rows.Grad!.Data, toTable: false), x);
    }

    /// <summary>Rows [N H W, C] (one row per pixel) to channels-first [N, C, H, W].</summary>
    public static Tensor RowsToChannels(Tensor rows, int batch, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Rank != 2 || rows.Shape[0] != batch * height * width)
            throw new ArgumentException($"RowsToChannels: rows {Tensor.FormatShape(rows.Shape)} do not hold {batch} x {height} x {width} pixels.");
        int c = rows.Shape[1], hw = height * width;
        var y = Tensor.Zeros(batch, c, height, width);
        void Permute(Span<float> pixels, Span<float> planes, bool toPlanes)
        {
            for (int n = 0; n < batch; n++)
                for (int p = 0; p < hw; p++)
                    for (int ch = 0; ch < c; ch++)
                    {
                        int src = (n * hw + p) * c + ch, dst = (n * c + ch) * hw + p;
                        if (toPlanes) planes[dst] = pixels[src];
                        else pixels[src] += planes[dst];
                    }
        }
        Permute(rows.Data, y.Data, toPlanes: true);
        return Tensor.Record(y, () => Permute(rows.GradSpan(), y.Grad!.Data, toPlanes: false), rows);
    }

    /// <summary>Max pooling over x [N, C, H, W] with a square window; gradient goes to the first maximum.</summary>
    public static Tensor MaxPool2d(Tensor x, int kernelSize, int stride)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4)
            throw new ArgumentException($"MaxPool2d: x must be [N, C, H, W], got {Tensor.FormatShape(x.Shape)}.");
        if (kernelSize <= 0 || stride <= 0)
            throw new ArgumentException($"MaxPool2d: kernel {kernelSize} and stride {stride} must be positive.");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (h < kernelSize || w < kernelSize)
            throw new ArgumentException($"MaxPool2d: input {Tensor.FormatShape(x.Shape)} is smaller than kernel {kernelSize}.");
        int oh = (h - kernelSize) / stride + 1, ow = (w - kernelSize) / stride + 1;
        var y = Tensor.Zeros(n, c, oh, ow);
        var argmax = new int[y.Length];
        var xs = x.Data;
        for (int plane = 0; plane < n * c; plane++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                {
                    int best = plane * h * w + i * stride * w + j * stride;
                    for (int ky = 0; ky < kernelSize; ky++)
                        for (int kx = 0; kx < kernelSize; kx++)
                        {
                            int idx = plane * h * w + (i * stride + ky) * w + j * stride + kx;
                            if (xs[idx] > xs[best]) best = idx;
                        }
                    int o = (plane * oh + i) * ow + j;
                    y.Data[o] = xs[best];
                    argmax[o] = best;
                }
        return Tensor.Record(y, () =>
        {
            var gx = x.GradSpan();
            var dy = y.Grad!.Data;
            for (int o = 0; o < dy.Length; o++) gx[argmax[o]] += dy[o];
        }, x);
    }

    /// <summary>
    /// y[B,Out] = storage(x[B,In]) + b: the product runs on the compressed storage; the gradient reaches x through
    /// the dequantized weight (requested only when needed) and b; the storage itself gets none.
    /// </summary>
    internal static Tensor StorageLinear(Tensor x, IWeightStorage storage, Tensor? b, Func<float[]> dequantized, string layerName)
    {
        if (x.Rank != 2 || x.Shape[1] != storage.InFeatures)
            throw new ArgumentException(
                $"{layerName}: expected x [B, {storage.InFeatures}] for compressed weight [{storage.OutFeatures}, {storage.InFeatures}] ({storage.Format}); got {Tensor.FormatShape(x.Shape)}.");
        int batch = x.Shape[0], inF = storage.InFeatures, outF = storage.OutFeatures;
        var y = Tensor.Zeros(batch, outF);
        if (batch > 0) storage.MatMulTransposed(x.Data, y.Data, batch);
        if (b != null) AddRowVector(y.Data, b.Data, batch, outF);
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            if (x.RequiresGrad) Gemm.MatMul(dy, dequantized(), x.GradSpan(), batch, outF, inF, accumulate: true);
            if (b is { RequiresGrad: true }) SumRowsInto(dy, b.GradSpan(), batch, outF);
        }, x, b);
    }

    internal static void CheckFinite(ReadOnlySpan<float> values, string what)
    {
        for (int i = 0; i < values.Length; i++)
            if (!float.IsFinite(values[i]))
                throw new ArgumentException($"{what} has a non-finite value {values[i]} at index {i}.");
    }
}
