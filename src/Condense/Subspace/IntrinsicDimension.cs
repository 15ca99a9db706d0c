using System.Globalization;
using Condense.Data;
using Condense.Nn;
using Condense.Training;

namespace Condense.Subspace;

/// <summary>Settings of an intrinsic-dimension sweep.</summary>
public sealed record IntrinsicDimensionOptions
{
    /// <summary>Training seeds: every point of the curve is the mean over them (the same list gives the same result).</summary>
    public IReadOnlyList<ulong> Seeds { get; init; } = [1, 2, 3];

    /// <summary>The fraction of the baseline's score that counts as solved (0.9: d_int90).</summary>
    public double Threshold { get; init; } = 0.9;

    /// <summary>The smallest d of the grid.</summary>
    public int MinDimension { get; init; } = 10;

    /// <summary>The largest d of the grid; null: D / 2.</summary>
    public int? MaxDimension { get; init; }

    /// <summary>Log-spaced grid points between <see cref="MinDimension"/> and <see cref="MaxDimension"/>.</summary>
    public int GridPoints { get; init; } = 8;

    /// <summary>Bisection stops when the bracket [failing d, passing d] is this narrow relative to the passing d (or 1 apart).</summary>
    public double RelativeTolerance { get; init; } = 0.05;

    /// <summary>At most this many bisection steps after the grid.</summary>
    public int MaxBisectionSteps { get; init; } = 8;
}

/// <summary>One d of the curve: the score of every seed and their mean.</summary>
public sealed record IntrinsicDimensionPoint(int Dimension, IReadOnlyList<double> Scores)
{
    /// <summary>The mean score over the seeds.</summary>
    public double Mean => Scores.Average();
}

/// <summary>The outcome of a sweep.</summary>
/// <param name="Baseline">The mean score of the full model over the seeds.</param>
/// <param name="Target">Threshold x Baseline: the score d_int must reach.</param>
/// <param name="Dimension">The smallest d whose mean score reached the target (d_int90 at the default threshold), or null when no d of the grid did.</param>
/// <param name="FullDimension">D, for the compression ratio D / d_int.</param>
/// <param name="Curve">Every d evaluated (grid and bisection), ascending.</param>
public sealed record IntrinsicDimensionResult(double Baseline, double Target, int? Dimension, int FullDimension, IReadOnlyList<IntrinsicDimensionPoint> Curve)
{
    /// <summary>D / d_int, or null.</summary>
    public double? CompressionRatio => Dimension is int d ? (double)FullDimension / d : null;

    /// <summary>The curve as a plain-text table (d, mean, per-seed scores), the crossing marked.</summary>
    public string ToTable()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"baseline {Baseline:F4}, target {Target:F4}, D = {FullDimension}, d_int = {(Dimension?.ToString(CultureInfo.InvariantCulture) ?? "not reached")}\n");
        sb.Append("       d      mean  seeds\n");
        foreach (var p in Curve)
            sb.Append(CultureInfo.InvariantCulture, $"{p.Dimension,8} {p.Mean,9:F4}  {string.Join(" ", p.Scores.Select(s => s.ToString("F4", CultureInfo.InvariantCulture)))}{(p.Dimension == Dimension ? "  <- d_int" : "")}\n");
        return sb.ToString();
    }
}

/// <summary>
/// Measures the intrinsic dimension of a training problem (Li et al. 2018): the smallest subspace dimension d whose
/// trained score reaches <see cref="IntrinsicDimensionOptions.Threshold"/> of the full model's. Trains the baseline,
/// then the subspace model over a log-spaced grid of d, then bisects (geometrically) between the last failing and
/// the first passing grid point. Scores are means over the seeds; the bisection assumes the mean grows with d near
/// the crossing, as it does in the paper. No plotting here: the result carries the curve for a tool to draw.
/// </summary>
public static class IntrinsicDimension
{
    /// <summary>The sweep over any training problem.</summary>
    /// <param name="fullDimension">D, the number of parameters the subspace covers.</param>
    /// <param name="baseline">Trains the full model with a seed and returns its score (higher is better, e.g. test accuracy).</param>
    /// <param name="subspace">Trains the subspace model with d and a seed and returns its score.</param>
    /// <param name="progress">Reports each point as it is finished.</param>
    public static IntrinsicDimensionResult Measure(int fullDimension, Func<ulong, double> baseline, Func<int, ulong, double> subspace,
        IntrinsicDimensionOptions? options = null, IProgress<IntrinsicDimensionPoint>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(baseline);
        ArgumentNullException.ThrowIfNull(subspace);
        options ??= new IntrinsicDimensionOptions();
        int max = options.MaxDimension ?? fullDimension / 2;
        if (options.Seeds.Count == 0) throw new ArgumentException("IntrinsicDimension: Seeds is empty; give at least one seed.", nameof(options));
        if (options.MinDimension < 1 || max < options.MinDimension || max >= fullDimension)
            throw new ArgumentOutOfRangeException(nameof(options),
                $"IntrinsicDimension: the grid [{options.MinDimension}, {max}] must satisfy 1 <= MinDimension <= MaxDimension < D = {fullDimension}.");
        if (options.GridPoints < 2) throw new ArgumentOutOfRangeException(nameof(options), options.GridPoints, "IntrinsicDimension: GridPoints must be at least 2.");
        if (!(options.Threshold > 0 && options.Threshold <= 1)) throw new ArgumentOutOfRangeException(nameof(options), options.Threshold, "IntrinsicDimension: Threshold must be in (0, 1].");

        double baselineScore = options.Seeds.Select(baseline).Average();
        double target = options.Threshold * baselineScore;
        var curve = new SortedDictionary<int, IntrinsicDimensionPoint>();
        IntrinsicDimensionPoint Evaluate(int d)
        {
            if (curve.TryGetValue(d, out var known)) return known;
            var point = new IntrinsicDimensionPoint(d, options.Seeds.Select(seed => subspace(d, seed)).ToArray());
            curve[d] = point;
            progress?.Report(point);
            return point;
        }

        var grid = new SortedSet<int>();
        double ratio = Math.Log((double)max / options.MinDimension) / (options.GridPoints - 1);
        for (int i = 0; i < options.GridPoints; i++) grid.Add((int)Math.Round(options.MinDimension * Math.Exp(ratio * i)));
        int? passing = null, failing = null;
        foreach (int d in grid)
        {
            if (Evaluate(d).Mean >= target) { passing = d; break; }
            failing = d;
        }
        if (passing is int hi && failing is int lo)
        {
            for (int step = 0; step < options.MaxBisectionSteps && hi - lo > Math.Max(1, options.RelativeTolerance * hi); step++)
            {
                int mid = (int)Math.Round(Math.Sqrt((double)lo * hi));
                mid = Math.Clamp(mid, lo + 1, hi - 1);
                if (Evaluate(mid).Mean >= target) hi = mid;
                else lo = mid;
            }
            passing = hi;
        }
        return new IntrinsicDimensionResult(baselineScore, target, passing, fullDimension, [.. curve.Values]);
    }

    /// <summary>
    /// The sweep for a classifier: the baseline is <paramref name="createModel"/> trained by
    /// <c>Classifier.Train</c>, each subspace model a global subspace of the same model trained the same way;
    /// the score is test accuracy. Each run's model is initialized with its seed (theta0 = that initialization).
    /// </summary>
    /// <param name="forward">The forward pass of a model instance, e.g. <c>m =&gt; m.Forward</c>.</param>
    /// <param name="subspaceTraining">Training settings of the subspace runs (null: those of the baseline); their seed is replaced per run.</param>
    public static IntrinsicDimensionResult MeasureClassifier<TModel>(Func<TModel> createModel, Func<TModel, Func<Tensor, Tensor>> forward,
        Dataset train, Dataset test, TrainingOptions training, SubspaceProjection projection,
        IntrinsicDimensionOptions? options = null, TrainingOptions? subspaceTraining = null, IProgress<IntrinsicDimensionPoint>? progress = null)
        where TModel : Module
    {
        ArgumentNullException.ThrowIfNull(forward);
        return MeasureClassifier(createModel, forward,
            (model, d, seed) => SubspaceModel.Create(model, forward(model), new SubspaceSpec(d) { Projection = projection, Seed = seed },
                new SubspaceOptions { InitializationSeed = seed }),
            train, test, training, options, subspaceTraining, progress);
    }

    /// <summary>
    /// The sweep for a classifier whose subspace models come from <paramref name="reparameterize"/>, typically the
    /// generated one of a <c>[Subspace]</c> model:
    /// <c>(m, d, seed) =&gt; m.Reparameterize(s =&gt; s with { Dimension = d, Seed = seed }, initializationSeed: seed)</c>.
    /// The baseline is <paramref name="createModel"/> initialized with the seed and trained by <c>Classifier.Train</c>;
    /// each subspace model is trained the same way (with <paramref name="subspaceTraining"/> when given); the score is
    /// test accuracy. D is the parameter count of the first subspace model's groups.
    /// </summary>
    /// <param name="forward">The forward pass of a model instance, e.g. <c>m =&gt; m.Forward</c> (the baseline's).</param>
    /// <param name="reparameterize">A subspace model of a fresh model with d coordinates in all, its projection drawn from the seed.</param>
    /// <exception cref="InvalidOperationException">A subspace model has another total d than asked (named).</exception>
    public static IntrinsicDimensionResult MeasureClassifier<TModel>(Func<TModel> createModel, Func<TModel, Func<Tensor, Tensor>> forward,
        Func<TModel, int, ulong, SubspaceModel<TModel>> reparameterize,
        Dataset train, Dataset test, TrainingOptions training,
        IntrinsicDimensionOptions? options = null, TrainingOptions? subspaceTraining = null, IProgress<IntrinsicDimensionPoint>? progress = null)
        where TModel : Module
    {
        ArgumentNullException.ThrowIfNull(createModel);
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(reparameterize);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(training);
        // D: every parameter for a global subspace (the covered ones are known only once reparameterized; a global
        // subspace of the model covers all of them, which is what the sweep is for).
        int fullDimension = createModel().Parameters().Sum(p => p.Length);
        double Score(Func<Tensor, Tensor> f) => Classifier.Accuracy(Classifier.Predict(f, test), test.Labels);
        return Measure(fullDimension,
            seed =>
            {
                var model = createModel();
                model.Initialize(seed);
                var f = forward(model);
                Classifier.Train(model, f, train, training with { Seed = seed });
                return Score(f);
            },
            (d, seed) =>
            {
                var sub = reparameterize(createModel(), d, seed);
                if (sub.Coordinates.Length != d)
                    throw new InvalidOperationException(
                        $"IntrinsicDimension: the subspace model of {typeof(TModel).Name} for d = {d} has {sub.Coordinates.Length} coordinates ({sub.DescribeGroups()}); the reparameterize delegate must give d in all.");
                Classifier.Train(sub, sub.Forward, train, (subspaceTraining ?? training) with { Seed = seed });
                return Score(sub.Forward);
            },
            options, progress);
    }
}
