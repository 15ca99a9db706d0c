using System.Runtime.InteropServices;
using Condense.Nn;

namespace Condense.Subspace;

/// <summary>
/// One subspace of a <see cref="SubspaceModel"/>: the parameters it covers (in model order), flattened into theta of
/// length D, its projection P and its slice of the coordinates.
/// </summary>
public sealed class SubspaceGroup
{
    internal SubspaceGroup(SubspaceSpec spec, ISubspaceProjection projection, int offset, IReadOnlyList<NamedParameter> parameters, float[] theta0)
    {
        Spec = spec;
        Projection = projection;
        Offset = offset;
        Parameters = parameters;
        Theta0 = theta0;
        Theta = new float[theta0.Length];
        GradientBuffer = new float[theta0.Length];
        GradientCopied = new bool[parameters.Count];
    }

    /// <summary><c>model</c> for a global subspace, else the covered layer paths joined by '+'.</summary>
    public string Name => Spec.GroupName;

    /// <summary>The declaration this group was built from.</summary>
    public SubspaceSpec Spec { get; }

    /// <summary>P, regenerated from the group's seed.</summary>
    public ISubspaceProjection Projection { get; }

    /// <summary>Where this group's d coordinates start in <see cref="SubspaceModel.Coordinates"/>.</summary>
    public int Offset { get; }

    /// <summary>d.</summary>
    public int Dimension => Projection.Dimension;

    /// <summary>D: the number of parameters covered.</summary>
    public int FullDimension => Projection.FullDimension;

    /// <summary>The covered parameters, in the model's order; theta is their concatenation.</summary>
    public IReadOnlyList<NamedParameter> Parameters { get; }

    internal float[] Theta0 { get; }
    internal float[] Theta { get; }
    internal float[] GradientBuffer { get; }

    /// <summary>Per parameter: whether its gradient was copied into <see cref="GradientBuffer"/> in the current backward.</summary>
    internal bool[] GradientCopied { get; }
}

/// <summary>
/// Training in a random subspace (Li et al. 2018): the model's covered parameters become theta = theta0 + P d, and
/// the coordinates d (initialized to 0) are the only trainable tensor, next to uncovered layers when
/// <see cref="UncoveredLayers.Trained"/>. It is a <see cref="Module"/> whose <see cref="Layers"/> expose exactly
/// what trains, so optimizers and <c>Classifier.Train(subspace, subspace.Forward, ...)</c> work unchanged.
/// </summary>
/// <remarks>
/// <para><see cref="Forward"/> writes theta0 + P d into the model's parameter tensors (skipped when d did not change
/// since the last forward) and, when gradients are on, links those tensors on the tape to d through an op whose
/// backward is P^T g: the layers' own ops compute g, nothing of the model changes.</para>
/// <para>Not thread-safe: one forward/backward at a time, as for the model itself.</para>
/// </remarks>
public class SubspaceModel : Module
{
    /// <summary>The path of the pseudo-layer holding the coordinates (parameter <c>subspace.coordinates</c>).</summary>
    public const string CoordinatesPath = "subspace";

    private readonly Func<Tensor, Tensor> _forward;
    private readonly List<NamedLayer> _layers = [];
    private readonly List<NamedParameter> _frozen = [];
    private readonly float[] _lastCoordinates;
    private bool _written;
    private bool _materialized;

    private protected SubspaceModel(Module model, Func<Tensor, Tensor> forward, IReadOnlyList<SubspaceSpec> specs, SubspaceOptions options, bool initialize)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(specs);
        ArgumentNullException.ThrowIfNull(options);
        string modelName = model.GetType().Name;
        if (specs.Count == 0)
            throw new ArgumentException($"{modelName}: no subspace given; pass one SubspaceSpec (global) or one per layer.", nameof(specs));
        if (specs.Count > 1 && specs.Any(s => s.Layers == null))
            throw new ArgumentException($"{modelName}: a global subspace (Layers = null) covers every layer and cannot be combined with others.", nameof(specs));

        BaseModel = model;
        _forward = forward;
        UncoveredLayers = options.UncoveredLayers;
        InitializationSeed = options.InitializationSeed;

        var layers = model.Layers;
        var byPath = new Dictionary<string, Layer>(StringComparer.Ordinal);
        foreach (var (path, layer) in layers) byPath[path] = layer;
        var owner = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int s = 0; s < specs.Count; s++)
        {
            var spec = specs[s] ?? throw new ArgumentException($"{modelName}: subspace {s} is null.", nameof(specs));
            foreach (var path in spec.Layers ?? layers.Select(l => l.Path).ToArray())
            {
                if (!byPath.TryGetValue(path, out var layer))
                    throw new ArgumentException(
                        $"{modelName}: subspace '{spec.GroupName}' names layer '{path}', which the model does not have; its layers are {string.Join(", ", layers.Select(l => l.Path))}.", nameof(specs));
                if (!owner.TryAdd(path, s))
                    throw new ArgumentException($"{modelName}: layer '{path}' is in two subspaces ('{specs[owner[path]].GroupName}' and '{spec.GroupName}'); give each layer at most one.", nameof(specs));
                if (layer.LiveSubspace is { } live)
                    throw new InvalidOperationException(
                        $"{modelName}: layer '{path}' is already reparameterized by a live subspace model (d = {live.Coordinates.Length}); Materialize() that one first, or reparameterize a fresh {modelName}.");
                if (layer is WeightedLayer { CompressedWeight: { } storage } weighted)
                    throw new ArgumentException(
                        $"{modelName}: layer '{path}' ({weighted.Description}) is compressed ({storage.Format}); a subspace reparameterizes dense weights, so reparameterize before compressing (Materialize, then Compress).", nameof(specs));
            }
        }

        // theta0 is this initialization: a saved file then needs only the seed to regenerate it.
        if (initialize && options.InitializationSeed is ulong seed) model.Initialize(seed);

        int offset = 0;
        var groups = new List<SubspaceGroup>(specs.Count);
        foreach (var spec in specs)
        {
            var covered = new HashSet<string>(spec.Layers ?? layers.Select(l => l.Path), StringComparer.Ordinal);
            var parameters = new List<NamedParameter>();
            foreach (var (path, layer) in layers)
                if (covered.Contains(path))
                    foreach (var p in layer.Parameters) parameters.Add(new NamedParameter(path + "." + p.Name, p.Value));
            long fullDimension = parameters.Sum(p => (long)p.Value.Length);
            if (spec.Dimension < 1 || spec.Dimension >= fullDimension)
                throw new ArgumentOutOfRangeException(nameof(specs), spec.Dimension,
                    $"{modelName}: subspace '{spec.GroupName}' has d = {spec.Dimension} for D = {fullDimension} parameters; d must be at least 1 and below D (else train the layers directly).");
            if (fullDimension > Array.MaxLength)
                throw new ArgumentOutOfRangeException(nameof(specs), fullDimension, $"{modelName}: subspace '{spec.GroupName}' covers {fullDimension} parameters, more than one array holds; split it per layer.");
            var theta0 = new float[fullDimension];
            int at = 0;
            foreach (var p in parameters)
            {
                p.Value.Data.CopyTo(theta0, at);
                at += p.Value.Length;
            }
            ulong projectionSeed = Rng.Derive(spec.Seed, "subspace/" + spec.GroupName);
            var request = new SubspaceProjectionRequest((int)fullDimension, spec.Dimension, projectionSeed);
            var projection = spec.CustomProjection?.Invoke(request)
                ?? SubspaceProjections.Create(spec.Projection, request.FullDimension, request.Dimension, request.Seed, spec.Storage);
            if (projection.FullDimension != request.FullDimension || projection.Dimension != request.Dimension)
                throw new ArgumentException(
                    $"{modelName}: the custom projection '{projection.Name}' of subspace '{spec.GroupName}' is {projection.FullDimension} x {projection.Dimension}; expected D x d = {request.FullDimension} x {request.Dimension}.", nameof(specs));
            groups.Add(new SubspaceGroup(spec, projection, offset, parameters, theta0));
            offset += spec.Dimension;
        }
        Groups = groups;

        Coordinates = new Tensor(new float[offset], offset) { RequiresGrad = true };
        _lastCoordinates = new float[offset];
        _layers.Add(new NamedLayer(CoordinatesPath, new CoordinatesLayer(Coordinates)));
        foreach (var (path, layer) in layers)
        {
            if (owner.ContainsKey(path)) continue;
            if (UncoveredLayers == UncoveredLayers.Trained)
            {
                if (path == CoordinatesPath)
                    throw new ArgumentException($"{modelName}: layer '{path}' has the name the subspace coordinates use; rename it or freeze the uncovered layers.", nameof(specs));
                _layers.Add(new NamedLayer(path, layer));
            }
            else
            {
                foreach (var p in layer.Parameters)
                {
                    p.Value.RequiresGrad = false; // no gradient work for frozen layers; restored by Materialize
                    _frozen.Add(new NamedParameter(path + "." + p.Name, p.Value));
                }
            }
        }
        foreach (var group in groups)
            foreach (var p in group.Parameters) p.Value.RequiresGrad = true;
        // Every layer of the model (covered, frozen or trained beside d) now belongs to this subspace model until
        // Materialize: compressing one would swap a tensor Forward writes into or the optimizer steps.
        foreach (var (_, layer) in layers) layer.LiveSubspace = this;
    }

    /// <summary>A subspace model with one global subspace over every parameter of <paramref name="model"/>.</summary>
    /// <param name="forward">The model's forward pass (e.g. <c>model.Forward</c>); <see cref="Forward"/> calls it.</param>
    public static SubspaceModel<TModel> Create<TModel>(TModel model, Func<Tensor, Tensor> forward, SubspaceSpec spec, SubspaceOptions? options = null)
        where TModel : Module
    {
        ArgumentNullException.ThrowIfNull(spec);
        return new SubspaceModel<TModel>(model, forward, [spec], options ?? new SubspaceOptions(), initialize: true);
    }

    /// <summary>A subspace model with the given subspaces (one global, or one per group of layers).</summary>
    public static SubspaceModel<TModel> Create<TModel>(TModel model, Func<Tensor, Tensor> forward, IReadOnlyList<SubspaceSpec> specs, SubspaceOptions? options = null)
        where TModel : Module =>
        new(model, forward, specs, options ?? new SubspaceOptions(), initialize: true);

    /// <summary>The model whose parameters this subspace model drives.</summary>
    public Module BaseModel { get; }

    /// <summary>The subspace coordinates d of every group, concatenated (the trainable tensor; starts at 0).</summary>
    public Tensor Coordinates { get; }

    /// <summary>The subspaces, in declaration order.</summary>
    public IReadOnlyList<SubspaceGroup> Groups { get; }

    /// <summary>Whether uncovered layers are frozen or trained.</summary>
    public UncoveredLayers UncoveredLayers { get; }

    /// <summary>The seed theta0 was initialized from, or null when theta0 is the model's weights at creation.</summary>
    public ulong? InitializationSeed { get; }

    /// <summary>Whether <see cref="Materialize"/> has run (the subspace model is then no longer usable).</summary>
    public bool IsMaterialized => _materialized;

    /// <summary>The parameters of uncovered layers when they are frozen (they keep theta0).</summary>
    public IReadOnlyList<NamedParameter> FrozenParameters => _frozen;

    /// <summary>The coordinates, then the uncovered layers when they train.</summary>
    public override IReadOnlyList<NamedLayer> Layers => _layers;

    /// <summary>Writes theta0 + P d into the model, links it to d on the tape, and runs the model's forward.</summary>
    /// <exception cref="InvalidOperationException">After <see cref="Materialize"/>.</exception>
    public Tensor Forward(Tensor x)
    {
        ThrowIfMaterialized();
        WriteParameters(force: false);
        if (Tensor.IsGradEnabled && Coordinates.RequiresGrad)
            foreach (var group in Groups) Link(group);
        return _forward(x);
    }

    /// <summary>Sets the coordinates (e.g. from another run).</summary>
    /// <exception cref="ArgumentException">A length other than the total d, or a value that is not finite (named).</exception>
    public void SetCoordinates(ReadOnlySpan<float> values)
    {
        if (values.Length != Coordinates.Length)
            throw new ArgumentException(
                $"{BaseModel.GetType().Name}: the subspace coordinates have {values.Length} values; expected d = {Coordinates.Length} ({DescribeGroups()}).", nameof(values));
        CheckFinite(values, "the given coordinates");
        values.CopyTo(Coordinates.Data);
    }

    /// <summary>
    /// Writes theta0 + P d into the model for good and returns it as an ordinary dense model (its parameters are tape
    /// leaves again and trainable), ready to evaluate, train further, save or compress. This subspace model is spent.
    /// </summary>
    /// <exception cref="InvalidOperationException">d holds NaN or infinity (named), or Materialize already ran.</exception>
    public Module Materialize()
    {
        ThrowIfMaterialized();
        CheckFinite(Coordinates.Data, "the coordinates");
        WriteParameters(force: true);
        foreach (var group in Groups)
            foreach (var p in group.Parameters)
            {
                p.Value.ClearTape();
                p.Value.Grad = null;
                p.Value.RequiresGrad = true;
            }
        foreach (var p in _frozen) p.Value.RequiresGrad = true;
        foreach (var (_, layer) in BaseModel.Layers)
            if (ReferenceEquals(layer.LiveSubspace, this)) layer.LiveSubspace = null;
        _materialized = true;
        return BaseModel;
    }

    /// <summary>Saves the coordinates and what regenerates theta0 and P (see <see cref="SubspaceFile"/>).</summary>
    public void Save(string path) => SubspaceFile.Save(this, path);

    internal void CheckFinite(ReadOnlySpan<float> values, string what)
    {
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsFinite(values[i])) continue;
            var group = Groups.Last(g => g.Offset <= i);
            throw new InvalidOperationException(
                $"{BaseModel.GetType().Name}: {what} of subspace '{group.Name}' hold {values[i].ToString(System.Globalization.CultureInfo.InvariantCulture)} at index {i - group.Offset} (of d = {group.Dimension}); training diverged or the values are corrupt: lower the learning rate or restore an earlier state.");
        }
    }

    /// <summary>
    /// Writes theta0 + P d of the current d into the model (the layers may hold the previous step's theta: the optimizer
    /// changed d after the last forward), so a dense Save of the model while this subspace model lives stores what it computes.
    /// </summary>
    /// <exception cref="InvalidOperationException">d holds NaN or infinity (named).</exception>
    internal void WriteCurrentParameters()
    {
        CheckFinite(Coordinates.Data, "the coordinates");
        WriteParameters(force: false);
    }

    internal string DescribeGroups() => string.Join(", ", Groups.Select(g => $"'{g.Name}' d = {g.Dimension}"));

    private void ThrowIfMaterialized()
    {
        if (_materialized)
            throw new InvalidOperationException($"This subspace model of {BaseModel.GetType().Name} was materialized into the model; use the model, or create a new subspace model.");
    }

    private void WriteParameters(bool force)
    {
        var current = MemoryMarshal.Cast<float, int>(Coordinates.Data.AsSpan());
        if (!force && _written && current.SequenceEqual(MemoryMarshal.Cast<float, int>(_lastCoordinates.AsSpan()))) return;
        foreach (var group in Groups)
        {
            if (group.Projection is FastfoodProjection fastfood)
            {
                // theta0 + P d straight into the layers (Theta is only the kernel's output buffer here).
                fastfood.ProjectInto(Coordinates.Data.AsSpan(group.Offset, group.Dimension), group.Theta0, group.Theta, group.Parameters);
                continue;
            }
            group.Theta0.CopyTo(group.Theta, 0);
            group.Projection.Project(Coordinates.Data.AsSpan(group.Offset, group.Dimension), group.Theta);
            int at = 0;
            foreach (var p in group.Parameters)
            {
                group.Theta.AsSpan(at, p.Value.Length).CopyTo(p.Value.Data);
                at += p.Value.Length;
            }
        }
        Coordinates.Data.CopyTo(_lastCoordinates, 0);
        _written = true;
    }

    // theta (a one-element stand-in: its gradient lives in the group's buffer, reused every step) <- d, and each
    // parameter <- theta. The parameters' backward copy their gradients into the buffer; theta's backward applies P^T.
    // The buffer is not cleared after each step (a pass over D): only the slices of parameters whose backward did not
    // run this time are zeroed, since every other slice was just overwritten.
    private void Link(SubspaceGroup group)
    {
        var theta = new Tensor(new float[1], 1);
        var coordinates = Coordinates;
        var copied = group.GradientCopied;
        Tensor.Record(theta, () =>
        {
            int from = 0;
            for (int i = 0; i < copied.Length; i++)
            {
                int length = group.Parameters[i].Value.Length;
                if (!copied[i]) Array.Clear(group.GradientBuffer, from, length);
                copied[i] = false;
                from += length;
            }
            group.Projection.ProjectTranspose(group.GradientBuffer, coordinates.GradSpan().Slice(group.Offset, group.Dimension));
        }, coordinates);
        int at = 0;
        for (int index = 0; index < group.Parameters.Count; index++)
        {
            var parameter = group.Parameters[index].Value;
            int start = at, slot = index;
            parameter.ReusesGradBuffer = true;
            Tensor.Record(parameter, () =>
            {
                parameter.Grad!.Data.CopyTo(group.GradientBuffer, start);
                copied[slot] = true;
                theta.GradSpan()[0] = 1f; // marks theta as reached so Backward runs its P^T
            }, theta);
            at += parameter.Length;
        }
    }

    /// <summary>The pseudo-layer that makes the coordinates a parameter (<c>subspace.coordinates</c>).</summary>
    private sealed class CoordinatesLayer(Tensor coordinates) : Layer
    {
        public override IReadOnlyList<Parameter> Parameters { get; } = [new Parameter("coordinates", coordinates)];

        /// <summary>d restarts at 0 (theta = theta0); the generator is not used.</summary>
        public override void ResetParameters(Rng rng) => Array.Clear(coordinates.Data);
    }
}

/// <summary>A <see cref="SubspaceModel"/> over a model of type <typeparamref name="TModel"/>.</summary>
public sealed class SubspaceModel<TModel> : SubspaceModel where TModel : Module
{
    internal SubspaceModel(TModel model, Func<Tensor, Tensor> forward, IReadOnlyList<SubspaceSpec> specs, SubspaceOptions options, bool initialize)
        : base(model, forward, specs, options, initialize)
    {
        Model = model;
    }

    /// <summary>The model whose parameters this subspace model drives.</summary>
    public TModel Model { get; }

    /// <summary>As <see cref="SubspaceModel.Materialize"/>, typed.</summary>
    public new TModel Materialize()
    {
        base.Materialize();
        return Model;
    }

    /// <summary>
    /// Loads a file written by <see cref="SubspaceModel.Save"/> into <paramref name="model"/> (a fresh instance of the
    /// same model class): regenerates theta0 and P, checks them against the file and against
    /// <paramref name="expected"/> (the compiled subspaces, when given), and sets d.
    /// </summary>
    /// <exception cref="SubspaceFileException">Every problem found, each named.</exception>
    public static SubspaceModel<TModel> Load(string path, TModel model, Func<Tensor, Tensor> forward, IReadOnlyList<SubspaceSpec>? expected = null) =>
        SubspaceFile.Load(path, model, forward, expected);
}
