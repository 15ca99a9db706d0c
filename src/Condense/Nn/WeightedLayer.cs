namespace Condense.Nn;

/// <summary>
/// A layer whose weight is a matrix [OutFeatures, InFeatures] (stored in the layer's natural tensor shape when
/// dense) plus an optional bias [OutFeatures]. The weight's storage is swappable: compression replaces the dense
/// tensor with an <see cref="IWeightStorage"/>, and the layer's Forward runs on whichever is present.
/// The default initialization is deferred: the weight is allocated and drawn (always the same values) the first time
/// anything uses the layer, so a model constructed only to be loaded from a file allocates nothing it overwrites.
/// </summary>
public abstract class WeightedLayer : Layer
{
    private readonly Tensor? _bias;
    private readonly int[] _weightShape;
    private Tensor? _weight;
    private IWeightStorage? _storage;
    private float[]? _dequantized;
    // Set while the layer's default initialization has not run yet: the weight is allocated and drawn on first
    // use, so a model built only to be loaded (the generated Load) never allocates or draws weights it then overwrites.
    private Rng? _pendingInit;
    private readonly Lock _initLock = new();

    /// <param name="weightShape">The dense weight's shape; its first dimension is OutFeatures, the rest multiply to InFeatures.</param>
    private protected WeightedLayer(int[] weightShape, bool bias)
    {
        _weightShape = weightShape;
        OutFeatures = weightShape[0];
        InFeatures = 1;
        for (int i = 1; i < weightShape.Length; i++) InFeatures *= weightShape[i];
        if (bias) _bias = new Tensor(new float[OutFeatures], OutFeatures) { RequiresGrad = true };
    }

    /// <summary>Rows of the weight matrix.</summary>
    public int OutFeatures { get; }

    /// <summary>The dense weight's natural shape (Linear [out, in], Conv2d [out, in, k, k]), also while compressed: what weight import expects.</summary>
    internal int[] WeightShape => (int[])_weightShape.Clone();

    /// <summary>Whether the layer was created with a bias.</summary>
    internal bool HasBias => _bias != null;

    /// <summary>Columns of the weight matrix (the fan-in).</summary>
    public int InFeatures { get; }

    /// <summary>A short description used in messages, e.g. <c>Linear(784, 256)</c>.</summary>
    public abstract string Description { get; }

    /// <summary>Dense trainable weight in the layer's natural shape.</summary>
    /// <exception cref="InvalidOperationException">The weight is compressed.</exception>
    public Tensor Weight => Materialized()._weight ?? throw new InvalidOperationException(
        $"weight of {Description} is compressed (format {_storage!.Format}); use CompressedWeight.");

    /// <summary>Bias [OutFeatures], or null.</summary>
    public Tensor? Bias => Materialized()._bias;

    /// <summary>The compressed weight once <see cref="SetCompressedWeight"/> was called, else null.</summary>
    public IWeightStorage? CompressedWeight => _storage;

    /// <summary>Swaps the weight for a compressed storage of the same matrix shape; the dense weight is released.</summary>
    /// <exception cref="ArgumentException">The storage's shape differs from the layer's.</exception>
    public void SetCompressedWeight(IWeightStorage storage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (storage.OutFeatures != OutFeatures || storage.InFeatures != InFeatures)
            throw new ArgumentException(
                $"{Description}: compressed weight ({storage.Format}) is [{storage.OutFeatures}, {storage.InFeatures}], expected [{OutFeatures}, {InFeatures}].",
                nameof(storage));
        Materialized();     // the bias keeps its initial values, which come after the weight's in the stream
        _storage = storage;
        _weight = null;
        _dequantized = null;
    }

    /// <summary>Copies a dense weight in (row-major, natural shape); a compressed layer becomes dense again.</summary>
    public void LoadWeight(ReadOnlySpan<float> weight)
    {
        if (weight.Length != OutFeatures * InFeatures)
            throw new ArgumentException(
                $"{Description}: weight has {weight.Length} values, expected {Tensor.FormatShape(_weightShape)} = {OutFeatures * InFeatures}.",
                nameof(weight));
        Ops.CheckFinite(weight, $"{Description} weight");
        Materialized();
        _weight ??= NewWeight();
        weight.CopyTo(_weight.Data);
        _storage = null;
        _dequantized = null;
    }

    /// <summary>Copies a bias [OutFeatures] in.</summary>
    public void LoadBias(ReadOnlySpan<float> bias)
    {
        if (_bias == null) throw new InvalidOperationException($"{Description} was created without a bias.");
        if (bias.Length != OutFeatures)
            throw new ArgumentException($"{Description}: bias has {bias.Length} values, expected {OutFeatures}.", nameof(bias));
        Ops.CheckFinite(bias, $"{Description} bias");
        Materialized();
        bias.CopyTo(_bias.Data);
    }

    /// <summary>
    /// Takes the weight and bias read from a model file (already checked): the dense array is adopted without a
    /// copy when the layer has not allocated its weight yet, else copied into the existing tensor (which an
    /// optimizer may hold). When everything is replaced, the pending default initialization is skipped.
    /// </summary>
    internal void AdoptLoaded(IWeightStorage? storage, float[]? dense, float[]? bias)
    {
        lock (_initLock)
        {
            if (_pendingInit != null && (_bias == null || bias != null))
                _pendingInit = null;
            else
                MaterializeLocked();
            if (dense != null)
            {
                if (_weight != null) dense.CopyTo(_weight.Data);
                else _weight = new Tensor(dense, (int[])_weightShape.Clone()) { RequiresGrad = true };
                _storage = null;
            }
            else if (storage != null)
            {
                _storage = storage;
                _weight = null;
            }
            _dequantized = null;
            if (bias != null && _bias != null) bias.CopyTo(_bias.Data);
        }
    }

    /// <summary>Whether the default initialization is still pending (nothing has allocated the weight yet).</summary>
    internal bool InitializationPending => Volatile.Read(ref _pendingInit) != null;

    /// <summary>Called by a subclass constructor: initialize from <paramref name="rng"/> (as <see cref="ResetParameters"/>) on first use.</summary>
    private protected void InitializeOnFirstUse(Rng rng) => _pendingInit = rng;

    private WeightedLayer Materialized()
    {
        if (Volatile.Read(ref _pendingInit) != null)
        {
            lock (_initLock) MaterializeLocked();
        }
        return this;
    }

    private void MaterializeLocked()
    {
        if (_pendingInit is not { } rng) return;
        _weight = NewWeight();
        Fill(rng);
        Volatile.Write(ref _pendingInit, null);
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> Parameters
    {
        get
        {
            Materialized();
            var list = new List<Parameter>(2);
            if (_weight != null) list.Add(new Parameter("weight", _weight));
            if (_bias != null) list.Add(new Parameter("bias", _bias));
            return list;
        }
    }

    /// <summary>Uniform(-1/sqrt(fan-in), 1/sqrt(fan-in)) for weight and bias, as PyTorch initializes Linear and Conv2d.</summary>
    public override void ResetParameters(Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        lock (_initLock)
        {
            if (_pendingInit != null)
            {
                // The pending draw is replaced by this one: allocate without drawing twice.
                _weight = NewWeight();
                _pendingInit = null;
            }
            if (_weight == null)
                throw new InvalidOperationException($"{Description} is compressed ({_storage!.Format}); load a dense weight before re-initializing.");
            Fill(rng);
        }
    }

    private void Fill(Rng rng)
    {
        float bound = 1f / MathF.Sqrt(InFeatures);
        rng.FillUniform(_weight!.Data, -bound, bound);
        if (_bias != null) rng.FillUniform(_bias.Data, -bound, bound);
    }

    /// <summary>
    /// Set while calibration records this layer's inputs (Condense.Calibration): Forward hands it the batch's input
    /// rows as a matrix [rows, InFeatures] (a convolution's im2col rows) before computing the output. Null otherwise,
    /// so an ordinary Forward pays one null check.
    /// </summary>
    internal Action<Tensor>? InputObserver { get; set; }

    /// <summary>The dense weight tensor (natural shape) when not compressed, else null.</summary>
    private protected Tensor? DenseWeight => Materialized()._weight;

    private protected IWeightStorage? Storage => _storage;

    private Tensor NewWeight() => new(new float[OutFeatures * InFeatures], (int[])_weightShape.Clone()) { RequiresGrad = true };

    // The dequantized weight is needed only for gradients to x; built on first use and kept.
    private protected float[] Dequantized()
    {
        if (_dequantized == null)
        {
            var w = new float[OutFeatures * InFeatures];
            _storage!.Dequantize(w);
            _dequantized = w;
        }
        return _dequantized;
    }
}
