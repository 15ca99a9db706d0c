using System.Globalization;

namespace Condense.Reconstruction;

/// <summary>Which continuous parameters <see cref="BlockReconstruction"/> tunes. The integer codes are never changed.</summary>
[Flags]
public enum ReconstructionParameters
{
    /// <summary>Nothing (a run that only measures the error).</summary>
    None = 0,

    /// <summary>The float16 group scales of every group-quantized Linear layer.</summary>
    Scales = 1,

    /// <summary>The float32 biases of the Linear layers.</summary>
    Biases = 2,

    /// <summary>The LayerNorms' gamma and beta (stored float32, outside the compression plan).</summary>
    LayerNorms = 4,

    /// <summary>Scales and biases: what belongs to the compressed Linear layers.</summary>
    ScalesAndBiases = Scales | Biases,

    /// <summary>Scales, biases and LayerNorms.</summary>
    All = Scales | Biases | LayerNorms,
}

/// <summary>The error a reconstruction lowers between the tuned unit's output y and the fp32 target t.</summary>
public enum ReconstructionLoss
{
    /// <summary>mean over all elements of (y - t)^2: block outputs (BRECQ / OmniQuant style).</summary>
    MeanSquaredError,

    /// <summary>mean over rows of 1 - cos(y_r, t_r): sentence embeddings (distillation).</summary>
    Cosine,
}

/// <summary>Options of <see cref="BlockReconstruction.Run"/>.</summary>
public sealed record ReconstructionOptions
{
    /// <summary>Adam steps, one calibration batch each (the batches are visited in a seeded shuffled order, epoch after epoch). Default 200.</summary>
    public int Steps { get; init; } = 200;

    /// <summary>
    /// Adam step size of the scales, which are tuned as relative factors s = s0 (1 + u): 1e-3 moves a scale by about
    /// 0.1% per step. Default 1e-3.
    /// </summary>
    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>Adam step size of the biases and LayerNorm parameters (absolute units). Default 1e-4.</summary>
    public float ParameterLearningRate { get; init; } = 1e-4f;

    /// <summary>Which parameters are tuned. Default <see cref="ReconstructionParameters.ScalesAndBiases"/>.</summary>
    public ReconstructionParameters Parameters { get; init; } = ReconstructionParameters.ScalesAndBiases;

    /// <summary>The error lowered. Default <see cref="ReconstructionLoss.MeanSquaredError"/>.</summary>
    public ReconstructionLoss Loss { get; init; } = ReconstructionLoss.MeanSquaredError;

    /// <summary>Seeds the order of the batches; the same seed gives the same bits at any thread count.</summary>
    public ulong Seed { get; init; }

    /// <summary>
    /// Keep the tuned parameters only when the loss over all batches went down (measured before and after, forward
    /// only); otherwise the unit is restored. Default true.
    /// </summary>
    public bool KeepOnlyIfBetter { get; init; } = true;

    /// <summary>Receives the loss of each step (1-based step, loss of its batch).</summary>
    public IProgress<(int Step, double Loss)>? Progress { get; init; }

    /// <summary>Throws for an out-of-range option, naming it, its value and what is allowed.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    public void Validate()
    {
        if (Steps < 0)
            throw new ArgumentOutOfRangeException(nameof(Steps), Steps, Invariant($"ReconstructionOptions.Steps is {Steps}; expected 0 or more Adam steps."));
        if (!(LearningRate > 0f) || float.IsInfinity(LearningRate) || LearningRate >= 1f)
            throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, Invariant($"ReconstructionOptions.LearningRate is {LearningRate}; expected a relative step in (0, 1), e.g. 1e-3."));
        if (!(ParameterLearningRate > 0f) || float.IsInfinity(ParameterLearningRate))
            throw new ArgumentOutOfRangeException(nameof(ParameterLearningRate), ParameterLearningRate, Invariant($"ReconstructionOptions.ParameterLearningRate is {ParameterLearningRate}; expected a positive finite step, e.g. 1e-4."));
        if ((Parameters & ~ReconstructionParameters.All) != 0)
            throw new ArgumentOutOfRangeException(nameof(Parameters), Parameters, Invariant($"ReconstructionOptions.Parameters is {(int)Parameters}; expected a combination of Scales, Biases and LayerNorms."));
        if (!Enum.IsDefined(Loss))
            throw new ArgumentOutOfRangeException(nameof(Loss), Loss, Invariant($"ReconstructionOptions.Loss is {(int)Loss}; expected MeanSquaredError or Cosine."));
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>What a reconstruction did.</summary>
/// <param name="LossBefore">The loss over all batches before tuning (mean of the batches' losses).</param>
/// <param name="LossAfter">The same after tuning (equal to <paramref name="LossBefore"/> when the unit was restored).</param>
/// <param name="Steps">Adam steps taken.</param>
/// <param name="Kept">Whether the tuned parameters were kept (false: the loss did not go down and the unit was restored).</param>
/// <param name="Seconds">Wall-clock time.</param>
/// <param name="TunedScales">Group scales tuned.</param>
/// <param name="TunedParameters">Bias and LayerNorm values tuned.</param>
public sealed record ReconstructionReport(double LossBefore, double LossAfter, int Steps, bool Kept, double Seconds, long TunedScales, long TunedParameters);

/// <summary>
/// A reconstruction that could not finish: a non-finite loss or gradient (the step and batch are named). The unit's
/// weights, biases and LayerNorms are left as they were before the call.
/// </summary>
public sealed class ReconstructionException : InvalidOperationException
{
    /// <param name="message">What went wrong, where, and what to change.</param>
    public ReconstructionException(string message) : base(message) { }
}
