namespace Condense.Sparsity;

/// <summary>
/// The cubic sparsity schedule of Zhu and Gupta (2017, "To prune, or not to prune"):
/// s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 for t0 &lt;= t &lt;= t0 + n dt, s_i before t0 and s_f after.
/// Here t0 is the start step, t0 + n dt the end step, and the mask is recomputed every dt (Frequency) steps.
/// </summary>
public static class GradualSparsity
{
    /// <summary>The target sparsity at <paramref name="step"/>.</summary>
    /// <param name="step">Optimizer steps taken so far.</param>
    /// <param name="startStep">t0: the schedule's first step; before it the sparsity is <paramref name="initial"/>.</param>
    /// <param name="endStep">t0 + n dt: from this step on the sparsity is <paramref name="final"/>.</param>
    /// <param name="initial">s_i, in [0, 1).</param>
    /// <param name="final">s_f, in [0, 1).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="endStep"/> is not after <paramref name="startStep"/>.</exception>
    public static double At(int step, int startStep, int endStep, double initial, double final)
    {
        if (endStep <= startStep)
            throw new ArgumentOutOfRangeException(nameof(endStep), $"endStep {endStep} must be after startStep {startStep}.");
        if (step <= startStep) return initial;
        if (step >= endStep) return final;
        double remaining = 1.0 - (double)(step - startStep) / (endStep - startStep);
        return final + (initial - final) * remaining * remaining * remaining;
    }

    /// <summary>
    /// Whether the mask is recomputed after <paramref name="step"/>: at t0, t0 + dt, t0 + 2 dt, ... up to the end
    /// step, and at the end step itself even when dt does not divide the ramp, so the final sparsity is always reached.
    /// </summary>
    public static bool IsUpdateStep(int step, int startStep, int endStep, int frequency)
    {
        if (frequency <= 0) throw new ArgumentOutOfRangeException(nameof(frequency), $"frequency {frequency} must be at least 1.");
        if (step < startStep || step > endStep) return false;
        return step == endStep || (step - startStep) % frequency == 0;
    }

}
