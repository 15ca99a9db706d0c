using System.Globalization;
using System.Text;
using Condense.Catalogue;
using Condense.Nn;

namespace Condense.Compression;

/// <summary>The kind of a planned layer.</summary>
public enum LayerKind
{
    Linear = 0,
    Conv2d = 1,
}

/// <summary>What the plan does to a layer's weight. Same values as <see cref="StorageTechnique"/> of the kernel catalogue.</summary>
public enum LayerTechnique
{
    /// <summary>Kept in float32 (<c>[KeepDense]</c> or no attribute).</summary>
    Dense = 0,
    /// <summary>Group-wise integer quantization (<c>[Quantize]</c>).</summary>
    Quantize = 1,
    /// <summary>Low-rank float32 factors (<c>[LowRank]</c>).</summary>
    LowRank = 2,
    /// <summary>Quantization plus a low-rank correction (<c>[Quantize]</c> + <c>[LowRankCorrection]</c>).</summary>
    QuantizeWithLowRankCorrection = 3,
    /// <summary>N:M semi-structured sparsity (<c>[Sparsify(N = .., M = ..)]</c>, optionally with <c>[Quantize]</c>).</summary>
    SemiStructuredSparse = 4,
    /// <summary>Unstructured sparsity stored as CSR (<c>[Sparsify(fraction)]</c>).</summary>
    UnstructuredSparse = 5,
    /// <summary>Bits chosen at Compress time under the model's budget (<c>[MixedPrecision]</c> on the model).</summary>
    MixedPrecision = 6,
}

/// <summary>
/// One layer of a resolved plan. The generator fills it from the source at build time, including the exact
/// byte counts; compression checks that the storage it produces matches them.
/// </summary>
/// <param name="Path">The layer's path in the model, e.g. <c>hidden1</c> or <c>blocks[3].mlp.up</c>.</param>
/// <param name="KernelSize">0 for a Linear; the square kernel size of a Conv2d.</param>
/// <param name="InFeatures">Columns of the weight matrix: a Conv2d's InChannels x KernelSize x KernelSize.</param>
/// <param name="Bits">Bits of quantized values (N:M values included), 0 when not quantized; for mixed precision the smallest candidate.</param>
/// <param name="Rank">Rank of <c>[LowRank]</c>, or of <c>[LowRankCorrection]</c> with <see cref="LayerTechnique.QuantizeWithLowRankCorrection"/>.</param>
/// <param name="SparsityN">N of an N:M pattern, else 0.</param>
/// <param name="SparsityM">M of an N:M pattern, else 0.</param>
/// <param name="SparsityFraction">Fraction of weights removed by unstructured sparsity, else 0.</param>
/// <param name="SubspaceDimension">Dimension of the layer's <c>[Subspace]</c>, else 0.</param>
/// <param name="ShapeKnown">False when the shape could not be read at build time: the shape fields are 0 and
/// <see cref="CompressionPlan.WithShapesFrom"/> fills them in (running the build's checks) before use.</param>
/// <param name="GlobalSparsity">Unstructured with <c>Scope = Global</c>: one magnitude threshold over every such layer
/// of the model, so this layer's share of the kept weights is only known at Compress time. The planned bytes are those
/// of <see cref="SparsityFraction"/> counted per layer; their sum over the group is exact (docs/format.md).</param>
/// <param name="LayerFloor">With <see cref="GlobalSparsity"/>: the fraction of its weights the layer keeps at least.</param>
/// <param name="PruneStartStep">Gradual pruning (<c>[Sparsify(StartStep, EndStep, Frequency)]</c>): the first step of the schedule, else 0.</param>
/// <param name="PruneEndStep">Gradual pruning: the step the final sparsity is reached at; 0 = no schedule (one-shot at Compress).</param>
/// <param name="PruneFrequency">Gradual pruning: the mask is recomputed every this many steps.</param>
/// <param name="QuantizationMethod"><c>[Quantize(Method = ...)]</c>: how the quantized values are chosen (the stored format is the same).</param>
/// <param name="LowRankMethod"><c>[LowRank(r, Method = ...)]</c>: how the factors are chosen (the stored format is the same).</param>
public sealed record LayerPlan(
    string Path,
    LayerKind Kind,
    int OutFeatures,
    int InFeatures,
    int KernelSize,
    bool HasBias,
    LayerTechnique Technique,
    int Bits,
    int GroupSize,
    bool Symmetric,
    long BytesBefore,
    long BytesAfter,
    int Rank = 0,
    int SparsityN = 0,
    int SparsityM = 0,
    double SparsityFraction = 0,
    int SubspaceDimension = 0,
    bool ShapeKnown = true,
    bool GlobalSparsity = false,
    double LayerFloor = 0,
    int PruneStartStep = 0,
    int PruneEndStep = 0,
    int PruneFrequency = 0,
    QuantizationMethod QuantizationMethod = QuantizationMethod.RoundToNearest,
    LowRankMethod LowRankMethod = LowRankMethod.Svd)
{
    /// <summary>
    /// Compress records this layer's input statistics over <c>CompressionOptions.Calibration</c> first: it is quantized
    /// with GPTQ (<c>Method = Gptq</c>, alone or with <c>[LowRankCorrection]</c>) or factored with activation-aware SVD.
    /// </summary>
    public bool NeedsCalibration =>
        (Technique is LayerTechnique.Quantize or LayerTechnique.QuantizeWithLowRankCorrection && QuantizationMethod == QuantizationMethod.Gptq)
        || (Technique == LayerTechnique.LowRank && LowRankMethod == LowRankMethod.ActivationAwareSvd);

    /// <summary>The data-aware method as text (<c>GPTQ</c>, <c>activation-aware SVD</c>), or null when the layer needs no calibration.</summary>
    public string? CalibratedMethodText => !NeedsCalibration ? null : Technique == LayerTechnique.LowRank ? "activation-aware SVD" : "GPTQ";

    /// <summary>Number of weights (bias excluded).</summary>
    public long WeightCount => (long)OutFeatures * InFeatures;

    /// <summary>The weight tensor's shape: [Out, In] for a Linear, [Out, InChannels, K, K] for a Conv2d.</summary>
    public int[] WeightShape => Kind == LayerKind.Conv2d && KernelSize > 0
        ? [OutFeatures, InFeatures / (KernelSize * KernelSize), KernelSize, KernelSize]
        : [OutFeatures, InFeatures];

    /// <summary>Exact bytes of the weight as planned (bias excluded).</summary>
    public long WeightBytesAfter => BytesAfter - BiasBytes;

    /// <summary>Bytes of the float32 bias, 0 without one.</summary>
    public long BiasBytes => HasBias ? (long)OutFeatures * KernelCatalogue.Float32Bytes : 0;

    /// <summary>A short description of the technique, e.g. <c>int4 g64 sym</c>, <c>2:4 sparse int8 per-row sym</c> or <c>fp32</c>.</summary>
    public string TechniqueText
    {
        get
        {
            var inv = CultureInfo.InvariantCulture;
            string quantized = string.Create(inv, $"int{Bits} {(GroupSize == 0 ? "per-row" : "g" + GroupSize.ToString(inv))} {(Symmetric ? "sym" : "asym")}");
            string text = Technique switch
            {
                LayerTechnique.Quantize => quantized,
                LayerTechnique.LowRank => string.Create(inv, $"low-rank r{Rank}"),
                LayerTechnique.QuantizeWithLowRankCorrection => string.Create(inv, $"{quantized} + low-rank r{Rank}"),
                LayerTechnique.SemiStructuredSparse => string.Create(inv, $"{SparsityN}:{SparsityM} sparse {(Bits == 0 ? "fp32" : quantized)}"),
                LayerTechnique.UnstructuredSparse => string.Create(inv, $"csr {SparsityFraction:0.###} sparse{(GlobalSparsity ? " global" : "")}"),
                LayerTechnique.MixedPrecision => string.Create(inv, $"mixed precision (from int{Bits})"),
                _ => "fp32",
            };
            return SubspaceDimension > 0 ? string.Create(inv, $"{text} subspace d{SubspaceDimension}") : text;
        }
    }

    /// <summary>The layer's settings in the kernel catalogue's terms (what the build checked).</summary>
    public LayerSettings ToSettings() => new()
    {
        KeepDense = false,
        Quantize = Technique is LayerTechnique.Quantize or LayerTechnique.QuantizeWithLowRankCorrection || (Technique == LayerTechnique.SemiStructuredSparse && Bits > 0),
        Bits = Bits,
        GroupSize = GroupSize,
        Symmetric = Symmetric,
        LowRank = Technique == LayerTechnique.LowRank,
        Rank = Technique == LayerTechnique.LowRank ? Rank : 0,
        LowRankCorrection = Technique == LayerTechnique.QuantizeWithLowRankCorrection,
        CorrectionRank = Technique == LayerTechnique.QuantizeWithLowRankCorrection ? Rank : 0,
        Sparsify = Technique is LayerTechnique.SemiStructuredSparse or LayerTechnique.UnstructuredSparse,
        HasSparsityPattern = Technique == LayerTechnique.SemiStructuredSparse,
        HasSparsityFraction = Technique == LayerTechnique.UnstructuredSparse,
        SparsityN = SparsityN,
        SparsityM = SparsityM,
        SparsityFraction = SparsityFraction,
        Subspace = SubspaceDimension > 0,
        SubspaceDimension = SubspaceDimension,
        MixedPrecision = Technique == LayerTechnique.MixedPrecision,
    };

    /// <summary>Computes a layer's exact byte counts from the kernel catalogue (group-quantized or dense).</summary>
    public static (long Before, long After) ComputeBytes(LayerTechnique technique, int outFeatures, int inFeatures, bool hasBias, int bits, int groupSize, bool symmetric) =>
        KernelCatalogue.LayerBytes(outFeatures, inFeatures, hasBias, technique == LayerTechnique.Quantize, bits, groupSize, symmetric);

    /// <summary>This layer's exact byte counts from the kernel catalogue, for any technique.</summary>
    public (long Before, long After) ComputeBytes() =>
        KernelCatalogue.LayerBytes((StorageTechnique)Technique, OutFeatures, InFeatures, HasBias, ToSettings());

    /// <summary>The layer's path, kind and shape as one canonical line, e.g. <c>hidden1 Linear 256x784 bias</c>.</summary>
    public string ShapeSignature => string.Create(CultureInfo.InvariantCulture,
        $"{Path} {Kind} {string.Join("x", WeightShape)}{(HasBias ? " bias" : "")}");

    /// <summary>One canonical line, shape and technique: what a saved file is compared with.</summary>
    public string Signature => ShapeSignature + " " + TechniqueText;
}

/// <summary>A model's resolved compression plan, as emitted by the generator (<c>Model.Plan</c>).</summary>
public sealed class CompressionPlan
{
    /// <param name="modelName">The model class's name.</param>
    /// <param name="layers">Every layer, flattened to full paths, in declaration order.</param>
    /// <param name="maxBytes">The budget from <c>[Compressible(MaxBytes = ...)]</c>, 0 = none.</param>
    /// <param name="maxBitsPerWeight">The budget from <c>[Compressible(MaxBitsPerWeight = ...)]</c>, 0 = none.</param>
    /// <param name="onIncompatible">The model's <c>OnIncompatible</c>: applied again to layers whose shape is only known at run time.</param>
    /// <param name="subspaceDimension">Dimension of a model-wide <c>[Subspace]</c>, 0 = none.</param>
    /// <param name="mixedPrecisionBits">Candidate bits of <c>[MixedPrecision]</c>, null = none.</param>
    /// <param name="averageBits">The <c>[MixedPrecision(AverageBits = ...)]</c> budget, 0 = none.</param>
    public CompressionPlan(string modelName, IReadOnlyList<LayerPlan> layers, long maxBytes = 0, double maxBitsPerWeight = 0,
        IncompatiblePolicy onIncompatible = IncompatiblePolicy.Error, int subspaceDimension = 0, IReadOnlyList<int>? mixedPrecisionBits = null, double averageBits = 0)
    {
        ArgumentNullException.ThrowIfNull(modelName);
        ArgumentNullException.ThrowIfNull(layers);
        ModelName = modelName;
        Layers = layers;
        MaxBytes = maxBytes;
        MaxBitsPerWeight = maxBitsPerWeight;
        OnIncompatible = onIncompatible;
        SubspaceDimension = subspaceDimension;
        MixedPrecisionBits = mixedPrecisionBits;
        AverageBits = averageBits;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var layer in layers)
        {
            if (!seen.Add(layer.Path))
                throw new ArgumentException($"The plan of {modelName} names layer '{layer.Path}' twice.", nameof(layers));
            HasUnknownShapes |= !layer.ShapeKnown;
            TotalBytesBefore += layer.BytesBefore;
            TotalBytesAfter += layer.BytesAfter;
            WeightCount += layer.WeightCount;
            WeightBytesAfter += layer.WeightBytesAfter;
        }
    }

    /// <summary>The model class's name.</summary>
    public string ModelName { get; }

    /// <summary>Every layer, in declaration order.</summary>
    public IReadOnlyList<LayerPlan> Layers { get; }

    /// <summary>The budget from <c>[Compressible(MaxBytes = ...)]</c>, 0 = none.</summary>
    public long MaxBytes { get; }

    /// <summary>The budget from <c>[Compressible(MaxBitsPerWeight = ...)]</c>, 0 = none.</summary>
    public double MaxBitsPerWeight { get; }

    /// <summary>What the plan does with a layer whose settings do not fit its shape.</summary>
    public IncompatiblePolicy OnIncompatible { get; }

    /// <summary>Dimension of a model-wide <c>[Subspace]</c>, 0 = none.</summary>
    public int SubspaceDimension { get; }

    /// <summary>
    /// The payload of a saved subspace model: 4 bytes per coordinate of every declared subspace (the model's, or each
    /// layer's), 0 without <c>[Subspace]</c>. The file adds a header (an 8-byte length and a JSON description of a few
    /// hundred bytes per subspace, whose exact size depends on the names) and, when theta0 was not seeded or the other
    /// layers train, their float32 weights; see docs/subspace.md.
    /// </summary>
    public long SubspaceCoordinateBytes
    {
        get
        {
            long coordinates = SubspaceDimension;
            foreach (var layer in Layers) coordinates += layer.SubspaceDimension;
            return 4 * coordinates;
        }
    }

    /// <summary>Candidate bits of <c>[MixedPrecision]</c>, null = none.</summary>
    public IReadOnlyList<int>? MixedPrecisionBits { get; }

    /// <summary>The <c>[MixedPrecision(AverageBits = ...)]</c> budget, 0 = none.</summary>
    public double AverageBits { get; }

    /// <summary>Some layer's shape was not known at build time (CND0006): use <see cref="WithShapesFrom"/>.</summary>
    public bool HasUnknownShapes { get; }

    /// <summary>
    /// Some layer is data-aware (<see cref="LayerPlan.NeedsCalibration"/>): <c>Compress</c> needs
    /// <c>CompressionOptions.Calibration</c>, and throws naming the first such layer without it.
    /// </summary>
    public bool NeedsCalibration => CalibratedLayers.Count > 0;

    /// <summary>The paths of the layers that need calibration data, in plan order (empty when none does).</summary>
    public IReadOnlyList<string> CalibratedLayers => _calibratedLayers ??= Layers.Where(l => l.NeedsCalibration).Select(l => l.Path).ToArray();

    private IReadOnlyList<string>? _calibratedLayers;

    /// <summary>Exact bytes of all planned layers in float32 (weights and biases).</summary>
    public long TotalBytesBefore { get; }

    /// <summary>Exact bytes of all planned layers once compressed (weights, scales, zero points, indices, factors, biases).</summary>
    public long TotalBytesAfter { get; }

    /// <summary>Number of weights over all layers (biases excluded).</summary>
    public long WeightCount { get; }

    /// <summary>Exact bytes of all weights once compressed (biases excluded).</summary>
    public long WeightBytesAfter { get; }

    /// <summary>Stored bits per weight over all layers, scales and zero points included, biases excluded.</summary>
    public double BitsPerWeight => WeightCount == 0 ? 0 : WeightBytesAfter * 8.0 / WeightCount;

    /// <summary>TotalBytesBefore / TotalBytesAfter.</summary>
    public double CompressionRatio => TotalBytesAfter == 0 ? 1 : (double)TotalBytesBefore / TotalBytesAfter;

    /// <summary>The layer with this path, or null.</summary>
    public LayerPlan? Find(string path)
    {
        foreach (var layer in Layers)
            if (string.Equals(layer.Path, path, StringComparison.Ordinal)) return layer;
        return null;
    }

    /// <summary>
    /// The plan with every layer whose shape was unknown at build time resolved from the model's actual layers:
    /// the build's catalogue checks run on it and throw with the analyzer's message (CND0003, CND0004, ...), then
    /// <see cref="OnIncompatible"/> applies as it would have at build time. Returns this plan when all shapes are known.
    /// </summary>
    /// <exception cref="InvalidOperationException">A layer's settings do not work for its actual shape, or the budget is exceeded.</exception>
    public CompressionPlan WithShapesFrom(IReadOnlyList<NamedLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        if (!HasUnknownShapes) return this;
        if (layers.Count != Layers.Count)
            throw new ArgumentException($"The plan of {ModelName} has {Layers.Count} layers; {layers.Count} were given.", nameof(layers));
        var resolved = new LayerPlan[Layers.Count];
        for (int i = 0; i < resolved.Length; i++)
            resolved[i] = Layers[i].ShapeKnown ? Layers[i] : Resolve(Layers[i], layers[i].Layer);
        var plan = new CompressionPlan(ModelName, resolved, MaxBytes, MaxBitsPerWeight, OnIncompatible, SubspaceDimension, MixedPrecisionBits, AverageBits);
        plan.ThrowIfOverBudget();
        return plan;
    }

    private LayerPlan Resolve(LayerPlan planned, Layer layer)
    {
        if (layer is not WeightedLayer weighted)
            throw new InvalidOperationException($"Layer '{planned.Path}' is a {layer?.GetType().Name ?? "null"}; the plan of {ModelName} expects a Linear or Conv2d.");
        int kernelSize = weighted is Conv2d conv ? conv.KernelSize : 0;
        var settings = planned.ToSettings();
        var problems = KernelCatalogue.CheckLayer(planned.Path, settings, weighted.OutFeatures, weighted.InFeatures, weighted.Bias is not null);
        var errors = problems.Where(p => !p.IsWarning && (OnIncompatible == IncompatiblePolicy.Error || !p.IsShapeDependent)).ToList();
        if (errors.Count > 0)
            throw new InvalidOperationException(string.Join("\n", errors.Select(p => p.Message)));
        settings = KernelCatalogue.ApplyIncompatiblePolicy(settings, problems, (int)OnIncompatible, []);
        var technique = (LayerTechnique)settings.Technique;
        var (before, after) = KernelCatalogue.LayerBytes(settings.Technique, weighted.OutFeatures, weighted.InFeatures, weighted.Bias is not null, settings);
        return planned with
        {
            OutFeatures = weighted.OutFeatures,
            InFeatures = weighted.InFeatures,
            KernelSize = kernelSize,
            HasBias = weighted.Bias is not null,
            Technique = technique,
            Bits = settings.Quantize || settings.MixedPrecision ? settings.Bits : 0,
            GroupSize = settings.Quantize ? settings.GroupSize : 0,
            Rank = settings.LowRank ? settings.Rank : settings.LowRankCorrection ? settings.CorrectionRank : 0,
            SubspaceDimension = settings.Subspace ? settings.SubspaceDimension : 0,
            BytesBefore = before,
            BytesAfter = after,
            ShapeKnown = true,
        };
    }

    /// <summary>Throws when the plan exceeds MaxBytes or MaxBitsPerWeight, listing the largest layers (the build's CND0007 text).</summary>
    public void ThrowIfOverBudget()
    {
        if (HasUnknownShapes || MixedPrecisionBits is not null) return;
        var largest = string.Join(", ", Layers.OrderByDescending(l => l.BytesAfter).ThenBy(l => l.Path, StringComparer.Ordinal).Take(3)
            .Select(l => string.Create(CultureInfo.InvariantCulture, $"{l.Path} ({l.TechniqueText}, {l.BytesAfter:N0} bytes)")));
        if (MaxBytes > 0 && TotalBytesAfter > MaxBytes)
            throw new InvalidOperationException(string.Format(CultureInfo.InvariantCulture, KernelCatalogue.BudgetExceededMessage,
                ModelName, string.Create(CultureInfo.InvariantCulture, $"{TotalBytesAfter:N0} bytes"), "MaxBytes", string.Create(CultureInfo.InvariantCulture, $"{MaxBytes:N0} bytes"), largest));
        if (MaxBitsPerWeight > 0 && BitsPerWeight > MaxBitsPerWeight)
            throw new InvalidOperationException(string.Format(CultureInfo.InvariantCulture, KernelCatalogue.BudgetExceededMessage,
                ModelName, string.Create(CultureInfo.InvariantCulture, $"{BitsPerWeight:0.###} bits per weight"), "MaxBitsPerWeight", string.Create(CultureInfo.InvariantCulture, $"{MaxBitsPerWeight:0.###} bits per weight"), largest));
    }

    /// <summary>The plan as canonical text, one layer a line: stored in saved files and compared on load.</summary>
    public string Signature => string.Join("\n", Layers.Select(l => l.Signature));

    /// <summary>The plan as a Markdown table: per layer technique, bits, group, rank, sparsity and exact bytes; totals and budget.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.Append(inv, $"### {ModelName}: compression plan\n\n");
        sb.Append("| layer | kind | shape | technique | bits | group | rank | sparsity | bytes before | bytes after |\n");
        sb.Append("|---|---|---|---|---:|---:|---:|---:|---:|---:|\n");
        foreach (var l in Layers)
        {
            string shape = l.ShapeKnown ? string.Join("x", l.WeightShape) : "unknown";
            string bits = l.Bits > 0 ? l.Bits.ToString(inv) : "";
            string group = l.Bits > 0 && l.Technique != LayerTechnique.MixedPrecision ? (l.GroupSize == 0 ? "row" : l.GroupSize.ToString(inv)) : "";
            string rank = l.Rank > 0 ? l.Rank.ToString(inv) : "";
            string sparsity = l.Technique == LayerTechnique.SemiStructuredSparse ? string.Create(inv, $"{l.SparsityN}:{l.SparsityM}")
                : l.Technique == LayerTechnique.UnstructuredSparse ? string.Create(inv, $"{l.SparsityFraction:0.###}") : "";
            string before = l.ShapeKnown ? l.BytesBefore.ToString("N0", inv) : "at Compress";
            string after = l.ShapeKnown ? l.BytesAfter.ToString("N0", inv) : "at Compress";
            sb.Append(inv, $"| {l.Path} | {l.Kind} | {shape} | {l.TechniqueText} | {bits} | {group} | {rank} | {sparsity} | {before} | {after} |\n");
        }
        sb.Append(inv, $"| **total** | | | {BitsPerWeight:F2} bits/weight | | | | | {TotalBytesBefore:N0} | {TotalBytesAfter:N0} |\n");
        if (MaxBytes > 0) sb.Append(inv, $"\nBudget: {MaxBytes:N0} bytes ({(HasUnknownShapes ? "checked at Compress" : TotalBytesAfter <= MaxBytes ? "met" : "exceeded")}).\n");
        if (MaxBitsPerWeight > 0) sb.Append(inv, $"\nBudget: {MaxBitsPerWeight:0.###} bits per weight ({(HasUnknownShapes ? "checked at Compress" : BitsPerWeight <= MaxBitsPerWeight ? "met" : "exceeded")}).\n");
        if (MixedPrecisionBits is not null) sb.Append(inv, $"\nMixed precision over {{{string.Join(", ", MixedPrecisionBits)}}} bits: the bytes shown for those layers are the smallest reachable.\n");
        if (SubspaceDimension > 0) sb.Append(inv, $"\nModel-wide subspace of dimension {SubspaceDimension}.\n");
        if (NeedsCalibration)
            sb.Append(inv, $"\nData-aware layers (Compress needs CompressionOptions.Calibration): {string.Join(", ", Layers.Where(l => l.NeedsCalibration).Select(l => l.Path + " (" + l.CalibratedMethodText + ")"))}.\n");
        return sb.ToString();
    }
}
