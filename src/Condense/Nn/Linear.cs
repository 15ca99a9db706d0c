namespace Condense.Nn;

/// <summary>y = x W^T + b, with W [OutFeatures, InFeatures]. The weight storage is swappable.</summary>
public sealed class Linear : Layer
{
    private readonly Tensor? _bias;
    private Tensor? _weight;
    private IWeightStorage? _storage;
    private float[]? _dequantized;

    /// <summary>A layer initialized deterministically from its shape (PyTorch's default uniform bounds).</summary>
    public Linear(int inFeatures, int outFeatures, bool bias = true)
    {
        if (inFeatures <= 0 || outFeatures <= 0)
            throw new ArgumentOutOfRangeException(nameof(inFeatures), $"Linear({inFeatures}, {outFeatures}): both sizes must be positive.");
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        _weight = new Tensor(new float[outFeatures * inFeatures], outFeatures, inFeatures) { RequiresGrad = true };
        if (bias) _bias = new Tensor(new float[outFeatures], outFeatures) { RequiresGrad = true };
        ResetParameters(new Rng(Rng.Derive(0x436F6E64656E7365UL, $"Linear({inFeatures},{outFeatures})")));
    }

    public int InFeatures { get; }
    public int OutFeatures { get; }

    /// <summary>Dense trainable weight [OutFeatures, InFeatures].</summary>
    /// <exception cref="InvalidOperationException">The weight is compressed.</exception>
    public Tensor Weight => _weight ?? throw new InvalidOperationException(
        $"weight of Linear({InFeatures}, {OutFeatures}) is compressed (format {_storage!.Format}); use CompressedWeight.");

    /// <summary>Bias [OutFeatures], or null.</summary>
    public Tensor? Bias => _bias;

    /// <summary>The compressed weight once <see cref="SetCompressedWeight"/> was called, else null.</summary>
    public IWeightStorage? CompressedWeight => _storage;

    /// <summary>Swaps the weight for a compressed storage of the same shape; the dense weight is released.</summary>
    /// <exception cref="ArgumentException">The storage's shape differs from the layer's.</exception>
    public void SetCompressedWeight(IWeightStorage storage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (storage.OutFeatures != OutFeatures || storage.InFeatures != InFeatures)
            throw new ArgumentException(
                $"Linear({InFeatures}, {OutFeatures}): compressed weight ({storage.Format}) is [{storage.OutFeatures}, {storage.InFeatures}], expected [{OutFeatures}, {InFeatures}].",
                nameof(storage));
        _storage = storage;
        _weight = null;
        _dequantized = null;
    }

    /// <summary>Copies a dense weight [OutFeatures, InFeatures] in; a compressed layer becomes dense again.</summary>
    public void LoadWeight(ReadOnlySpan<float> weight)
    {
        if (weight.Length != OutFeatures * InFeatures)
            throw new ArgumentException(
                $"Linear({InFeatures}, {OutFeatures}): weight has {weight.Length} values, expected [{OutFeatures}, {InFeatures}] = {OutFeatures * InFeatures}.",
                nameof(weight));
        Ops.CheckFinite(weight, $"Linear({InFeatures}, {OutFeatures}) weight");
        _weight ??= new Tensor(new float[OutFeatures * InFeatures], OutFeatures, InFeatures) { RequiresGrad = true };
        weight.CopyTo(_weight.Data);
        _storage = null;
        _dequantized = null;
    }

    /// <summary>Copies a bias [OutFeatures] in.</summary>
    public void LoadBias(ReadOnlySpan<float> bias)
    {
        if (_bias == null)
            throw new InvalidOperationException($"Linear({InFeatures}, {OutFeatures}) was created without a bias.");
        if (bias.Length != OutFeatures)
            throw new ArgumentException($"Linear({InFeatures}, {OutFeatures}): bias has {bias.Length} values, expected {OutFeatures}.", nameof(bias));
        Ops.CheckFinite(bias, $"Linear({InFeatures}, {OutFeatures}) bias");
        bias.CopyTo(_bias.Data);
    }

    /// <summary>y [B, OutFeatures] from x [B, InFeatures], through the compressed storage when there is one.</summary>
    public Tensor Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (_storage == null) return Ops.Linear(x, _weight!, _bias);
        return Ops.StorageLinear(x, _storage, _bias, Dequantized, $"Linear({InFeatures}, {OutFeatures})");
    }

    /// <inheritdoc/>
    public override IReadOnlyList<Parameter> Parameters
    {
        get
        {
            var list = new List<Parameter>(2);
            if (_weight != null) list.Add(new Parameter("weight", _weight));
            if (_bias != null) list.Add(new Parameter("bias", _bias));
            return list;
        }
    }

    /// <summary>Uniform(-1/sqrt(in), 1/sqrt(in)) for weight and bias, as PyTorch initializes a Linear.</summary>
    public override void ResetParameters(Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (_weight == null)
            throw new InvalidOperationException($"Linear({InFeatures}, {OutFeatures}) is compressed ({_storage!.Format}); load a dense weight before re-initializing.");
        float bound = 1f / MathF.Sqrt(InFeatures);
        rng.FillUniform(_weight.Data, -bound, bound);
        if (_bias != null) rng.FillUniform(_bias.Data, -bound, bound);
    }

    // The dequantized weight is needed only for gradients to x; built on first use and kept.
    private float[] Dequantized()
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
