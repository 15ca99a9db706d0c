namespace Condense.Nn;

/// <summary>2-D convolution over [N, C, H, W]; the weight [Out, In, K, K] is a matrix Out x (In*K*K) for storage.</summary>
public sealed class Conv2d : Layer
{
    private readonly Tensor? _bias;
    private Tensor? _weight;
    private IWeightStorage? _storage;
    private float[]? _dequantized;

    /// <summary>A layer initialized deterministically from its shape (PyTorch's default uniform bounds).</summary>
    public Conv2d(int inChannels, int outChannels, int kernelSize, int stride = 1, int padding = 0, bool bias = true)
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelSize <= 0 || stride <= 0 || padding < 0)
            throw new ArgumentOutOfRangeException(nameof(inChannels),
                $"Conv2d({inChannels}, {outChannels}, kernel {kernelSize}, stride {stride}, padding {padding}): channels, kernel and stride must be positive, padding non-negative.");
        InChannels = inChannels;
        OutChannels = outChannels;
        KernelSize = kernelSize;
        Stride = stride;
        Padding = padding;
        _weight = new Tensor(new float[outChannels * FanIn], outChannels, inChannels, kernelSize, kernelSize) { RequiresGrad = true };
        if (bias) _bias = new Tensor(new float[outChannels], outChannels) { RequiresGrad = true };
        ResetParameters(new Rng(Rng.Derive(0x436F6E64656E7365UL, $"Conv2d({inChannels},{outChannels},{kernelSize})")));
    }

    public int InChannels { get; }
    public int OutChannels { get; }
    public int KernelSize { get; }
    public int Stride { get; }
    public int Padding { get; }

    /// <summary>Columns of the weight matrix: InChannels x KernelSize x KernelSize.</summary>
    public int FanIn => InChannels * KernelSize * KernelSize;

    /// <summary>Dense trainable weight [OutChannels, InChannels, KernelSize, KernelSize].</summary>
    /// <exception cref="InvalidOperationException">The weight is compressed.</exception>
    public Tensor Weight => _weight ?? throw new InvalidOperationException(
        $"weight of {Name} is compressed (format {_storage!.Format}); use CompressedWeight.");

    /// <summary>Bias [OutChannels], or null.</summary>
    public Tensor? Bias => _bias;

    /// <summary>The compressed weight matrix [OutChannels, InChannels*K*K] once set, else null.</summary>
    public IWeightStorage? CompressedWeight => _storage;

    private string Name => $"Conv2d({InChannels}, {OutChannels}, kernel {KernelSize})";

    /// <summary>Swaps the weight for a compressed matrix OutChannels x (InChannels*K*K).</summary>
    /// <exception cref="ArgumentException">The storage's shape differs from the layer's.</exception>
    public void SetCompressedWeight(IWeightStorage storage)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (storage.OutFeatures != OutChannels || storage.InFeatures != FanIn)
            throw new ArgumentException(
                $"{Name}: compressed weight ({storage.Format}) is [{storage.OutFeatures}, {storage.InFeatures}], expected [{OutChannels}, {FanIn}].",
                nameof(storage));
        _storage = storage;
        _weight = null;
        _dequantized = null;
    }

    /// <summary>Copies a dense weight [O, C, K, K] in; a compressed layer becomes dense again.</summary>
    public void LoadWeight(ReadOnlySpan<float> weight)
    {
        if (weight.Length != OutChannels * FanIn)
            throw new ArgumentException(
                $"{Name}: weight has {weight.Length} values, expected [{OutChannels}, {InChannels}, {KernelSize}, {KernelSize}] = {OutChannels * FanIn}.",
                nameof(weight));
        Ops.CheckFinite(weight, $"{Name} weight");
        _weight ??= new Tensor(new float[OutChannels * FanIn], OutChannels, InChannels, KernelSize, KernelSize) { RequiresGrad = true };
        weight.CopyTo(_weight.Data);
        _storage = null;
        _dequantized = null;
    }

    /// <summary>Copies a bias [OutChannels] in.</summary>
    public void LoadBias(ReadOnlySpan<float> bias)
    {
        if (_bias == null) throw new InvalidOperationException($"{Name} was created without a bias.");
        if (bias.Length != OutChannels)
            throw new ArgumentException($"{Name}: bias has {bias.Length} values, expected {OutChannels}.", nameof(bias));
        Ops.CheckFinite(bias, $"{Name} bias");
        bias.CopyTo(_bias.Data);
    }

    /// <summary>[N, OutChannels, H', W'] from x [N, InChannels, H, W].</summary>
    public Tensor Forward(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Rank != 4 || x.Shape[1] != InChannels)
            throw new ArgumentException($"{Name}: expected x [N, {InChannels}, H, W]; got {Tensor.FormatShape(x.Shape)}.", nameof(x));
        if (_storage == null) return Ops.Conv2d(x, _weight!, _bias, Stride, Padding);
        var rows = Ops.Im2Col(x, KernelSize, Stride, Padding, out int outH, out int outW);
        var y = Ops.StorageLinear(rows, _storage, _bias, Dequantized, Name);
        return Ops.RowsToChannels(y, x.Shape[0], outH, outW);
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

    /// <summary>Uniform(-1/sqrt(C K K), 1/sqrt(C K K)) for weight and bias, as PyTorch initializes a Conv2d.</summary>
    public override void ResetParameters(Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (_weight == null)
            throw new InvalidOperationException($"{Name} is compressed ({_storage!.Format}); load a dense weight before re-initializing.");
        float bound = 1f / MathF.Sqrt(FanIn);
        rng.FillUniform(_weight.Data, -bound, bound);
        if (_bias != null) rng.FillUniform(_bias.Data, -bound, bound);
    }

    private float[] Dequantized()
    {
        if (_dequantized == null)
        {
            var w = new float[OutChannels * FanIn];
            _storage!.Dequantize(w);
            _dequantized = w;
        }
        return _dequantized;
    }
}
