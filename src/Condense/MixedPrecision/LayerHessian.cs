using System.Globalization;
using Condense.Calibration;
using Condense.Nn;

namespace Condense.MixedPrecision;

/// <summary>The loss whose Hessian measures how sensitive each layer is.</summary>
public enum SensitivityLoss
{
    /// <summary><see cref="CrossEntropy"/> when the calibration data has labels, else <see cref="OutputKl"/>.</summary>
    Auto = 0,
    /// <summary>The training loss: mean softmax cross-entropy of the outputs (logits) against the calibration labels.</summary>
    CrossEntropy = 1,
    /// <summary>
    /// Mean KL(softmax(f_fp32(x)) || softmax(f(x))): how far the outputs (logits) move from the float32 model's. Needs
    /// no labels; at the float32 weights its gradient is zero and its Hessian is the Fisher (Gauss-Newton) matrix.
    /// </summary>
    OutputKl = 2,
    /// <summary>Mean 1/2 ||f(x) - f_fp32(x)||^2 over rows: for models whose outputs are not logits.</summary>
    OutputSquaredError = 3,
}

/// <summary>
/// The Hessian of a loss over calibration data with respect to chosen layers' weights, seen through Hessian-vector
/// products. Condense's tape does not differentiate its own backward pass, so a product is a central difference of
/// two gradients: H v = (g(w + e v) - g(w - e v)) / 2e, exact for a quadratic loss and O(e^2) otherwise. Each layer
/// moves by its own step e_i = <c>relativeStep</c> x rms(W_i) (so every layer moves by the same fraction of its
/// weights), and block i of the product is divided by e_i: v_i^T (H D v)_i / e_i still has mean Tr(H_ii).
/// </summary>
/// <remarks>
/// The weights are perturbed in place and restored bit for bit from a copy; the layers' gradients are saved and put
/// back, so a model in the middle of training is left as it was. Every gradient is a full pass of the model's Forward
/// and Backward over the calibration batches (the data must enumerate the same batches each time).
/// </remarks>
public sealed class LayerHessian
{
    private readonly WeightedLayer[] _layers;
    private readonly string[] _paths;
    private readonly IReadOnlyList<NamedLayer> _allLayers;
    private readonly Func<Tensor, Tensor> _forward;
    private readonly CalibrationData _data;
    // The float32 model's outputs per batch: the KL and squared-error losses compare with them, Gauss-Newton uses their softmax.
    private readonly List<float[]> _reference;
    private readonly long _rows;
    private readonly double[] _steps;

    /// <param name="allLayers">Every layer of the model (their gradients are saved and restored).</param>
    /// <param name="layerIndices">The layers whose weight blocks the Hessian covers, as indices into <paramref name="allLayers"/>.</param>
    /// <param name="forward">The model's Forward (outputs: logits for the cross-entropy and KL losses).</param>
    /// <param name="data">The calibration batches, with labels for <see cref="SensitivityLoss.CrossEntropy"/>.</param>
    /// <param name="loss">The loss; <see cref="SensitivityLoss.Auto"/> picks by whether the data has labels.</param>
    /// <param name="relativeStep">Finite-difference step as a fraction of each layer's rms weight.</param>
    /// <exception cref="InvalidOperationException">Gradients are disabled (inside <see cref="Tensor.NoGrad"/>), or cross-entropy without labels.</exception>
    /// <exception cref="InvalidDataException">A batch without rows, labels that do not match a batch, or a non-finite output (batch named).</exception>
    public LayerHessian(IReadOnlyList<NamedLayer> allLayers, IReadOnlyList<int> layerIndices, Func<Tensor, Tensor> forward, CalibrationData data,
        SensitivityLoss loss = SensitivityLoss.Auto, double relativeStep = 1e-3)
        : this(allLayers, layerIndices, forward, data, loss, relativeStep, requireGradients: true)
    {
    }

    /// <param name="requireGradients">False when only <see cref="MeanLoss"/> will be called (forward passes only), so a caller inside <see cref="Tensor.NoGrad"/> is fine.</param>
    internal LayerHessian(IReadOnlyList<NamedLayer> allLayers, IReadOnlyList<int> layerIndices, Func<Tensor, Tensor> forward, CalibrationData data,
        SensitivityLoss loss, double relativeStep, bool requireGradients)
    {
        ArgumentNullException.ThrowIfNull(allLayers);
        ArgumentNullException.ThrowIfNull(layerIndices);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(data);
        if (!(relativeStep > 0 && relativeStep < 1))
            throw new ArgumentOutOfRangeException(nameof(relativeStep), relativeStep, "The finite-difference step is a fraction of the rms weight in (0, 1), e.g. 1e-3.");
        if (requireGradients && !Tensor.IsGradEnabled)
            throw new InvalidOperationException("Measuring layer sensitivity needs gradients, but this thread is inside Tensor.NoGrad(): call Compress outside the NoGrad scope.");
        _allLayers = allLayers;
        _forward = forward;
        _data = data;
        _layers = new WeightedLayer[layerIndices.Count];
        _paths = new string[layerIndices.Count];
        for (int t = 0; t < _layers.Length; t++)
        {
            var named = allLayers[layerIndices[t]];
            _paths[t] = named.Path;
            _layers[t] = named.Layer as WeightedLayer ?? throw new ArgumentException($"Layer '{named.Path}' is a {named.Layer.GetType().Name}; sensitivity is measured for Linear and Conv2d weights.", nameof(layerIndices));
            if (_layers[t].CompressedWeight is not null)
                throw new InvalidOperationException($"Layer '{named.Path}' is already compressed ({_layers[t].CompressedWeight!.Format}); sensitivity is measured on the dense model.");
        }
        Loss = loss == SensitivityLoss.Auto ? (data.HasLabels ? SensitivityLoss.CrossEntropy : SensitivityLoss.OutputKl) : loss;
        if (Loss == SensitivityLoss.CrossEntropy && !data.HasLabels)
            throw new InvalidOperationException("The cross-entropy sensitivity loss needs labelled calibration data: use new CalibrationData(batches, labels) or CalibrationData.FromDataset, or SensitivityLoss.OutputKl.");
        _steps = new double[_layers.Length];
        for (int t = 0; t < _layers.Length; t++)
        {
            var w = _layers[t].Weight.Data;
            double squares = 0;
            foreach (float x in w) squares += (double)x * x;
            double rms = w.Length == 0 ? 0 : Math.Sqrt(squares / w.Length);
            _steps[t] = relativeStep * (rms > 0 ? rms : 1);
        }

        // Rows, and the float32 model's outputs for the losses that compare with them.
        _reference = [];
        using (Tensor.NoGrad())
        {
            int batch = 0;
            foreach (var (input, labels) in data.LabelledBatches())
            {
                ArgumentNullException.ThrowIfNull(input, "calibration batch");
                int rows = input.Rank >= 1 ? input.Shape[0] : 0;
                if (rows == 0) throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture, $"Calibration batch {batch} has no rows."));
                if (labels is not null && labels.Length != rows)
                    throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                        $"Calibration batch {batch} has {rows} rows but {labels.Length} labels: give one label per row."));
                var output = forward(input);
                CheckFinite(output, batch);
                _reference.Add((float[])output.Data.Clone());
                _rows += rows;
                _batchRows.Add(rows);
                batch++;
            }
            if (_rows == 0) throw new InvalidDataException("The calibration data has no batches: give at least one batch of inputs.");
        }
    }

    /// <summary>The loss in use (<see cref="SensitivityLoss.Auto"/> resolved).</summary>
    public SensitivityLoss Loss { get; }

    /// <summary>Paths of the layers, in block order.</summary>
    public IReadOnlyList<string> Paths => _paths;

    /// <summary>Weights of each block.</summary>
    public int[] BlockSizes => _layers.Select(l => l.OutFeatures * l.InFeatures).ToArray();

    /// <summary>Calibration rows one pass sees.</summary>
    public long Rows => _rows;

    /// <summary>The loss at the current weights and its gradient with respect to each block (written into <paramref name="gradient"/>).</summary>
    public double Gradient(float[][] gradient) => Backward((output, labels, batch) => BatchLoss(output, labels, batch), gradient, null);

    /// <summary>
    /// One forward and backward pass over the calibration batches of the loss <paramref name="loss"/> gives per batch;
    /// the gradients of the blocks (only <paramref name="onlyBlock"/> when given) go to <paramref name="gradient"/>,
    /// and every parameter's own gradient is put back afterwards.
    /// </summary>
    private double Backward(Func<Tensor, int[]?, int, Tensor> loss, float[][] gradient, int? onlyBlock)
    {
        ArgumentNullException.ThrowIfNull(gradient);
        var saved = new List<(Tensor Parameter, Tensor? Grad)>();
        foreach (var named in _allLayers)
            foreach (var p in named.Layer.Parameters)
            {
                saved.Add((p.Value, p.Value.Grad));
                p.Value.Grad = null;
            }
        try
        {
            double total = 0;
            int batch = 0;
            foreach (var (input, labels) in _data.LabelledBatches())
            {
                var output = _forward(input);
                CheckFinite(output, batch);
                var value = loss(output, labels, batch);
                if (!value.RequiresGrad)
                    throw new InvalidOperationException("The model's Forward returned an output that does not depend on its weights' gradients (computed under NoGrad or detached): sensitivity needs Forward to record the tape.");
                value.Backward();
                total += value.Data[0];
                batch++;
            }
            for (int t = 0; t < _layers.Length; t++)
            {
                if (onlyBlock is int only && t != only) continue;
                var g = _layers[t].Weight.Grad;
                if (g is null) Array.Clear(gradient[t]);
                else g.Data.CopyTo(gradient[t], 0);
            }
            return total;
        }
        finally
        {
            foreach (var (parameter, grad) in saved) parameter.Grad = grad;
        }
    }

    /// <summary>
    /// Writes the per-block scaled product into <paramref name="product"/>: block i is (H D v)_i / e_i with D the
    /// diagonal of steps e_j, i.e. H v when every layer has the same step. Two gradient passes.
    /// </summary>
    public void Multiply(float[][] vector, double[][] product)
    {
        ArgumentNullException.ThrowIfNull(vector);
        ArgumentNullException.ThrowIfNull(product);
        var originals = _layers.Select(l => (float[])l.Weight.Data.Clone()).ToArray();
        var plus = _layers.Select(l => new float[l.OutFeatures * l.InFeatures]).ToArray();
        var minus = _layers.Select(l => new float[l.OutFeatures * l.InFeatures]).ToArray();
        try
        {
            Perturb(originals, vector, +1);
            Gradient(plus);
            Perturb(originals, vector, -1);
            Gradient(minus);
        }
        finally
        {
            for (int t = 0; t < _layers.Length; t++) originals[t].CopyTo(_layers[t].Weight.Data, 0);
        }
        for (int t = 0; t < _layers.Length; t++)
        {
            double scale = 1 / (2 * _steps[t]);
            var destination = product[t];
            for (int j = 0; j < destination.Length; j++) destination[j] = ((double)plus[t][j] - minus[t][j]) * scale;
        }
    }

    /// <summary>
    /// The Hessian product H_ii v for block <paramref name="block"/> alone (the other blocks' directions zero), written
    /// into <paramref name="product"/>; returns v^T H_ii v. Two gradient passes (<see cref="Multiply"/>).
    /// </summary>
    public double BlockProduct(int block, float[] vector, double[] product)
    {
        ArgumentNullException.ThrowIfNull(vector);
        ArgumentNullException.ThrowIfNull(product);
        var vectors = _layers.Select((l, t) => t == block ? vector : new float[l.OutFeatures * l.InFeatures]).ToArray();
        var products = _layers.Select((l, t) => t == block ? product : new double[l.OutFeatures * l.InFeatures]).ToArray();
        Multiply(vectors, products);
        double q = 0;
        for (int j = 0; j < vector.Length; j++) q += vector[j] * product[j];
        return q;
    }

    /// <summary>
    /// v^T G_ii v for block <paramref name="block"/>, G = J^T H_out J the Gauss-Newton matrix: J v is the directional
    /// derivative of the outputs, (f(w + e v) - f(w - e v)) / 2e from two forward passes, and H_out the loss's Hessian
    /// with respect to the outputs at the float32 weights (diag p - p p^T per row for cross-entropy and KL, the identity
    /// for the squared error), averaged over rows. For a network that is piecewise linear in one layer's weights (ReLU)
    /// this is that layer's Hessian block almost everywhere, and the outputs are continuous where the gradients jump,
    /// so ReLUs that switch within the step do not add O(1/e) noise as they do to a difference of gradients.
    /// </summary>
    public double GaussNewtonQuadraticForm(int block, float[] vector)
    {
        var directions = OutputDirections(block, vector);
        double total = 0;
        ForEachRow(directions, (u, p) =>
        {
            if (p.IsEmpty)
            {
                foreach (double x in u) total += x * x;
                return;
            }
            double mean = 0, square = 0;
            for (int c = 0; c < u.Length; c++)
            {
                mean += p[c] * u[c];
                square += p[c] * u[c] * u[c];
            }
            total += square - mean * mean;
        });
        return total / _rows;
    }

    /// <summary>
    /// The Gauss-Newton product G_ii v for block <paramref name="block"/>, written into <paramref name="product"/>, and
    /// v^T G_ii v returned: J v from two forward passes as in <see cref="GaussNewtonQuadraticForm"/>, then J^T (H_out J v)
    /// from one forward and backward pass of the loss sum over rows of c_r . f_r(w), c_r = H_out u_r / rows held constant.
    /// Three passes instead of two, and a whole vector: E[v ⊙ G v] over Rademacher v is the diagonal of G_ii.
    /// </summary>
    public double GaussNewtonProduct(int block, float[] vector, double[] product)
    {
        ArgumentNullException.ThrowIfNull(product);
        var directions = OutputDirections(block, vector);
        if (product.Length != vector.Length) throw new ArgumentException($"Layer '{_paths[block]}' has {vector.Length} weights; the product array has {product.Length}.", nameof(product));
        // c = H_out u / rows, row by row, in the batches' layout.
        var weights = new List<float[]>();
        double quadratic = 0;
        int batchIndex = 0;
        foreach (var u in directions)
        {
            var c = new float[u.Length];
            int classes = u.Length / Math.Max(1, RowsOf(batchIndex));
            var logP = new double[classes];
            var reference = _reference[batchIndex];
            for (int o = 0; o < u.Length; o += classes)
            {
                if (Loss == SensitivityLoss.OutputSquaredError)
                {
                    for (int k = 0; k < classes; k++) { c[o + k] = (float)(u[o + k] / _rows); quadratic += u[o + k] * u[o + k]; }
                    continue;
                }
                LogSoftmax(reference.AsSpan(o, classes), logP);
                double mean = 0;
                for (int k = 0; k < classes; k++) mean += Math.Exp(logP[k]) * u[o + k];
                for (int k = 0; k < classes; k++)
                {
                    double hu = Math.Exp(logP[k]) * (u[o + k] - mean);
                    c[o + k] = (float)(hu / _rows);
                    quadratic += u[o + k] * hu;
                }
            }
            weights.Add(c);
            batchIndex++;
        }
        var gradient = _layers.Select((l, t) => t == block ? new float[l.OutFeatures * l.InFeatures] : []).ToArray();
        Backward((output, _, b) =>
        {
            if (weights[b].Length != output.Length)
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"Calibration batch {b} gave an output of {output.Length} values now and {weights[b].Length} before: the calibration data must give the same batches each time it is enumerated."));
            return Ops.Sum(Ops.Mul(output, new Tensor(weights[b], output.Shape)));
        }, gradient, block);
        for (int j = 0; j < product.Length; j++) product[j] = gradient[block][j];
        return quadratic / _rows;
    }

    /// <summary>u = J v per batch: (f(w + e v) - f(w - e v)) / 2e, block <paramref name="block"/> moved alone, flattened as the outputs.</summary>
    private List<double[]> OutputDirections(int block, float[] vector)
    {
        ArgumentNullException.ThrowIfNull(vector);
        var layer = _layers[block];
        var original = (float[])layer.Weight.Data.Clone();
        if (vector.Length != original.Length) throw new ArgumentException($"Layer '{_paths[block]}' has {original.Length} weights; the vector has {vector.Length}.", nameof(vector));
        var plus = new List<float[]>();
        var minus = new List<float[]>();
        try
        {
            using (Tensor.NoGrad())
            {
                foreach (int sign in new[] { +1, -1 })
                {
                    var w = layer.Weight.Data;
                    float step = (float)(sign * _steps[block]);
                    for (int j = 0; j < w.Length; j++) w[j] = original[j] + step * vector[j];
                    var outputs = sign > 0 ? plus : minus;
                    int batch = 0;
                    foreach (var (input, _) in _data.LabelledBatches())
                    {
                        var output = _forward(input);
                        CheckFinite(output, batch++);
                        outputs.Add((float[])output.Data.Clone());
                    }
                }
            }
        }
        finally
        {
            original.CopyTo(layer.Weight.Data, 0);
        }
        var result = new List<double[]>(_reference.Count);
        for (int b = 0; b < _reference.Count; b++)
        {
            var reference = _reference[b];
            if (plus.Count <= b || plus[b].Length != reference.Length || minus[b].Length != reference.Length)
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"Calibration batch {b} gave an output of {(plus.Count <= b ? 0 : plus[b].Length)} values now and {reference.Length} before: the calibration data must give the same batches each time it is enumerated."));
            var u = new double[reference.Length];
            for (int i = 0; i < u.Length; i++) u[i] = ((double)plus[b][i] - minus[b][i]) / (2 * _steps[block]);
            result.Add(u);
        }
        return result;
    }

    /// <summary>
    /// The mean loss over the calibration rows at the current weights, in double precision and without the tape (one
    /// forward pass per batch). With the KL and squared-error losses it is 0 at the float32 weights.
    /// </summary>
    /// <exception cref="InvalidDataException">A non-finite output, or a batch that changed since the float32 pass (batch named).</exception>
    public double MeanLoss()
    {
        double total = 0;
        int batch = 0;
        using (Tensor.NoGrad())
            foreach (var (input, labels) in _data.LabelledBatches())
            {
                var output = _forward(input);
                CheckFinite(output, batch);
                var reference = batch < _reference.Count ? _reference[batch] : [];
                if (reference.Length != output.Length)
                    throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                        $"Calibration batch {batch} gave an output of {output.Length} values now and {reference.Length} before: the calibration data must give the same batches each time it is enumerated."));
                var data = output.Data;
                int rows = RowsOf(batch), classes = data.Length / rows;
                var logP = new double[classes];
                var logQ = new double[classes];
                for (int r = 0; r < rows; r++)
                {
                    int o = r * classes;
                    if (Loss == SensitivityLoss.OutputSquaredError)
                    {
                        for (int k = 0; k < classes; k++)
                        {
                            double d = (double)data[o + k] - reference[o + k];
                            total += 0.5 * d * d;
                        }
                        continue;
                    }
                    LogSoftmax(data.AsSpan(o, classes), logP);
                    if (Loss == SensitivityLoss.CrossEntropy)
                    {
                        int label = labels![r];
                        if ((uint)label >= (uint)classes)
                            throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                                $"Calibration batch {batch} row {r} has label {label}, but the model gives {classes} outputs: labels are 0 to {classes - 1}."));
                        total -= logP[label];
                        continue;
                    }
                    LogSoftmax(reference.AsSpan(o, classes), logQ);
                    for (int k = 0; k < classes; k++) total += Math.Exp(logQ[k]) * (logQ[k] - logP[k]);
                }
                batch++;
            }
        return total / _rows;
    }

    /// <summary>Calls <paramref name="row"/> with each row's u and the float32 softmax p (empty for the squared error).</summary>
    private void ForEachRow(List<double[]> directions, RowAction row)
    {
        for (int b = 0; b < directions.Count; b++)
        {
            var u = directions[b];
            int classes = u.Length / Math.Max(1, RowsOf(b));
            var logP = new double[classes];
            var p = new double[classes];
            for (int o = 0; o < u.Length; o += classes)
            {
                if (Loss == SensitivityLoss.OutputSquaredError)
                {
                    row(u.AsSpan(o, classes), []);
                    continue;
                }
                LogSoftmax(_reference[b].AsSpan(o, classes), logP);
                for (int k = 0; k < classes; k++) p[k] = Math.Exp(logP[k]);
                row(u.AsSpan(o, classes), p);
            }
        }
    }

    private delegate void RowAction(ReadOnlySpan<double> u, ReadOnlySpan<double> p);

    private readonly List<int> _batchRows = [];

    private int RowsOf(int batch) => _batchRows[batch];

    private void Perturb(float[][] originals, float[][] vector, int sign)
    {
        for (int t = 0; t < _layers.Length; t++)
        {
            var w = _layers[t].Weight.Data;
            var v = vector[t];
            float step = (float)(sign * _steps[t]);
            for (int j = 0; j < w.Length; j++) w[j] = originals[t][j] + step * v[j];
        }
    }

    /// <summary>This batch's share of the mean loss over all calibration rows.</summary>
    private Tensor BatchLoss(Tensor output, int[]? labels, int batch)
    {
        int rows = output.Shape[0];
        float share = (float)((double)rows / _rows);
        switch (Loss)
        {
            case SensitivityLoss.CrossEntropy:
                return Ops.Mul(Ops.SoftmaxCrossEntropy(output, labels!), share);
            default:
                var reference = _reference[batch];
                if (reference.Length != output.Length)
                    throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                        $"Calibration batch {batch} gave an output of {output.Length} values now and {reference.Length} before: the calibration data must give the same batches each time it is enumerated."));
                return Loss == SensitivityLoss.OutputKl ? KlToReference(output, reference, _rows) : SquaredErrorToReference(output, reference, _rows);
        }
    }

    /// <summary>Sum over rows of KL(softmax(reference) || softmax(logits)), divided by <paramref name="totalRows"/>.</summary>
    internal static Tensor KlToReference(Tensor logits, float[] referenceLogits, long totalRows)
    {
        if (logits.Rank != 2) throw new InvalidDataException($"The KL sensitivity loss needs outputs [rows, classes], got {Tensor.FormatShape(logits.Shape)}.");
        int rows = logits.Shape[0], classes = logits.Shape[1];
        var p = new double[logits.Length];
        double total = 0;
        Span<double> q = classes <= 1024 ? stackalloc double[classes] : new double[classes];
        for (int r = 0; r < rows; r++)
        {
            int o = r * classes;
            LogSoftmax(referenceLogits.AsSpan(o, classes), q);
            var logP = p.AsSpan(o, classes);
            LogSoftmax(logits.Data.AsSpan(o, classes), logP);
            for (int c = 0; c < classes; c++)
            {
                double reference = Math.Exp(q[c]);
                total += reference * (q[c] - logP[c]);
                // p now holds softmax(logits) - softmax(reference): the gradient with respect to the logits.
                logP[c] = Math.Exp(logP[c]) - reference;
            }
        }
        var loss = new Tensor([(float)(total / totalRows)]);
        return Tensor.Record(loss, () =>
        {
            double scale = loss.Grad!.Data[0] / (double)totalRows;
            var g = logits.GradSpan();
            for (int i = 0; i < g.Length; i++) g[i] += (float)(p[i] * scale);
        }, logits);
    }

    /// <summary>Sum over rows of 1/2 ||output - reference||^2, divided by <paramref name="totalRows"/>.</summary>
    internal static Tensor SquaredErrorToReference(Tensor output, float[] reference, long totalRows)
    {
        var difference = new double[output.Length];
        double total = 0;
        for (int i = 0; i < difference.Length; i++)
        {
            difference[i] = (double)output.Data[i] - reference[i];
            total += 0.5 * difference[i] * difference[i];
        }
        var loss = new Tensor([(float)(total / totalRows)]);
        return Tensor.Record(loss, () =>
        {
            double scale = loss.Grad!.Data[0] / (double)totalRows;
            var g = output.GradSpan();
            for (int i = 0; i < g.Length; i++) g[i] += (float)(difference[i] * scale);
        }, output);
    }

    private static void LogSoftmax(ReadOnlySpan<float> logits, Span<double> destination)
    {
        double max = double.NegativeInfinity;
        foreach (float x in logits) max = Math.Max(max, x);
        double sum = 0;
        foreach (float x in logits) sum += Math.Exp(x - max);
        double log = max + Math.Log(sum);
        for (int i = 0; i < logits.Length; i++) destination[i] = logits[i] - log;
    }

    private static void CheckFinite(Tensor output, int batch)
    {
        var data = output.Data;
        for (int i = 0; i < data.Length; i++)
            if (!float.IsFinite(data[i]))
                throw new InvalidDataException(string.Create(CultureInfo.InvariantCulture,
                    $"The model's output on calibration batch {batch} has {data[i]} at index {i}: sensitivity needs finite outputs; check the inputs and weights."));
    }
}
