namespace Condense.MixedPrecision;

/// <summary>How the curvature of each layer's loss is probed for Hutchinson's estimator.</summary>
public enum SensitivityCurvature
{
    /// <summary>
    /// Gauss-Newton: v^T J^T H_out J v from two forward passes per product (directional derivatives of the outputs).
    /// Equal to the Hessian's diagonal blocks for networks piecewise linear in each layer's weights (ReLU MLPs and
    /// CNNs), never negative, and not disturbed by ReLUs switching inside the finite-difference step.
    /// </summary>
    GaussNewton = 0,
    /// <summary>The Hessian itself, through Hessian-vector products: a central difference of two gradients (forward and backward passes).</summary>
    Hessian = 1,
}

/// <summary>How a layer's curvature weighs its quantization error in Omega.</summary>
public enum SensitivityWeighting
{
    /// <summary>
    /// The (HAWQ-V2) form: Omega_i(b) = Tr(H_ii) / n_i x ||Q_b(W_i) - W_i||^2, one average curvature per layer.
    /// </summary>
    Trace = 0,
    /// <summary>
    /// Per weight (OBD / HAWQ-V3 style): Omega_i(b) = sum_j diag(H_ii)_j (Q_b(W_i) - W_i)_j^2, with diag(H_ii) = E[v ⊙ H v]
    /// from the same Rademacher vectors. A Gauss-Newton product costs three passes instead of two (see docs/mixed-precision.md).
    /// </summary>
    Diagonal = 1,
    /// <summary>
    /// Q-BERT's form: Omega_i(b) = 1/2 lambda_max(H_ii) x ||Q_b(W_i) - W_i||^2, with the block's top eigenvalue from power
    /// iteration over Hessian-vector (or Gauss-Newton) products (<see cref="MixedPrecisionOptions.PowerIterations"/>).
    /// An upper bound of the direction-aware 1/2 dW^T H_ii dW: it charges every error as if it lay along the stiffest direction.
    /// </summary>
    TopEigenvalue = 2,
}

/// <summary>How a layer's sensitivity Omega_i(b) to b-bit quantization is obtained.</summary>
public enum SensitivityMethod
{
    /// <summary>
    /// HAWQ-V2's second-order model: Omega_i(b) = Tr(H_ii) / n_i x ||Q_b(W_i) - W_i||^2 (or per weight, see
    /// <see cref="SensitivityWeighting"/>), the traces from Hutchinson's estimator. It assumes the loss is quadratic
    /// over the whole quantization step, and that the error's direction does not matter (only its norm).
    /// </summary>
    HessianTrace = 0,
    /// <summary>
    /// The loss increase measured directly: each layer alone is quantized to each candidate width (the format Compress
    /// stores) and the calibration data is run through the model: Omega_i(b) = L(Q_b(W_i), other layers float32) - L(float32).
    /// With <see cref="SensitivityLoss.Auto"/> the loss is <see cref="SensitivityLoss.OutputKl"/> (ZeroQ's sensitivity,
    /// Cai et al. 2020), labels or not. It takes one forward pass over the calibration data per layer and width, no
    /// gradients and no random vectors, and it holds however large the step (a 2-bit layer) is: the second-order
    /// model's error beyond the quadratic, and the direction of Q_b(W) - W against the curvature, are in the number.
    /// </summary>
    MeasuredLoss = 1,
    /// <summary>
    /// The second-order term along the actual quantization error (direction-aware, not trace x norm):
    /// Omega_i(b) = 1/2 dW^T H_ii dW with dW = Q_b(W_i) - W_i the error of the format Compress stores. With the
    /// Gauss-Newton curvature (the default; for the KL to the float32 outputs it is that loss's exact Hessian at the
    /// float32 weights) it is 1/2 E[(J dW)^T H_out (J dW)], J dW the directional derivative of the outputs along dW from
    /// two forward passes per layer and format: no random vectors, no gradients. With <see cref="SensitivityCurvature.Hessian"/>,
    /// dW^T (H dW) from one Hessian-vector product (two gradient passes). docs/mixed-precision.md compares it with the
    /// trace and the measured loss.
    /// </summary>
    HessianQuadratic = 2,
}

/// <summary>How <c>Compress</c> chooses the bits of <c>[MixedPrecision]</c> layers (<c>CompressionOptions.MixedPrecision</c>).</summary>
public sealed class MixedPrecisionOptions
{
    /// <summary>
    /// How each layer's sensitivity is obtained: <see cref="SensitivityMethod.HessianQuadratic"/> (the default: 1/2 dW^T H dW
    /// along each format's actual quantization error), <see cref="SensitivityMethod.MeasuredLoss"/> (the KL increase with
    /// that layer alone quantized) or <see cref="SensitivityMethod.HessianTrace"/> (HAWQ-V2). The options about vectors
    /// and weighting apply to the Hessian trace only; curvature, loss and step also to the quadratic form.
    /// docs/mixed-precision.md has the measurements behind the default: the trace charges the layer's average curvature
    /// and underestimates 2-bit layers several times over, because their error points into the stiff directions.
    /// </summary>
    public SensitivityMethod Method { get; init; } = SensitivityMethod.HessianQuadratic;

    /// <summary>Rademacher vectors Hutchinson's estimator averages; each costs two gradient passes over the calibration data per layer (see <see cref="SeparateLayers"/>). Default 32.</summary>
    public int Samples { get; init; } = 32;

    /// <summary>The curvature Hutchinson's estimator probes; default <see cref="SensitivityCurvature.GaussNewton"/> (see docs/mixed-precision.md).</summary>
    public SensitivityCurvature Curvature { get; init; } = SensitivityCurvature.GaussNewton;

    /// <summary>
    /// With <see cref="SensitivityCurvature.Hessian"/>: one Hessian-vector product per layer and sample, the other layers' directions zero (true, the default, as HAWQ-V2),
    /// or one product per sample for all layers (false: L times cheaper, but the cross terms between layers add variance
    /// that can swamp the trace of a layer with little curvature).
    /// </summary>
    public bool SeparateLayers { get; init; } = true;

    /// <summary>How the curvature weighs each layer's quantization error: <see cref="SensitivityWeighting.Trace"/> (the default) or per weight.</summary>
    public SensitivityWeighting Weighting { get; init; } = SensitivityWeighting.Trace;

    /// <summary>
    /// Power-iteration steps per layer for <see cref="SensitivityWeighting.TopEigenvalue"/> (each one Gauss-Newton or Hessian
    /// product); the iteration stops earlier once the Rayleigh quotient changes by less than 1e-4 of itself. Default 30.
    /// </summary>
    public int PowerIterations { get; init; } = 30;

    /// <summary>Seeds the Rademacher vectors: the same seed and calibration data give the same bits. Default 0x4849.</summary>
    public ulong Seed { get; init; } = 0x4849;

    /// <summary>The loss whose Hessian is estimated; <see cref="SensitivityLoss.Auto"/> = cross-entropy with labels, else KL to the float32 outputs.</summary>
    public SensitivityLoss Loss { get; init; } = SensitivityLoss.Auto;

    /// <summary>Finite-difference step of the Hessian-vector products, as a fraction of each layer's rms weight. Default 1e-3.</summary>
    public double RelativeStep { get; init; } = 1e-3;

    /// <summary>
    /// Bits per layer path to use instead of measuring and solving (for example a solution kept from an earlier run, or a
    /// baseline allocation to compare with). Every <c>[MixedPrecision]</c> layer must be listed with one of the candidate
    /// bits, and the budget is checked as for a solved allocation.
    /// </summary>
    public IReadOnlyDictionary<string, int>? Allocation { get; init; }

    /// <summary>
    /// Group sizes for <see cref="Allocation"/>, per layer path (a layer not listed: 0, one scale per row). Each must
    /// have a kernel and divide the layer's inputs.
    /// </summary>
    public IReadOnlyDictionary<string, int>? AllocationGroupSizes { get; init; }

    /// <summary>
    /// The formats the allocation chooses among at each candidate width: 0 (one scale per row, always included: the
    /// format the build sizes the budget with) and any of 16, 32, 64, 128, 256 that divides a layer's inputs. Group
    /// scales cost bytes and lower the error, so they give the knapsack steps between the widths: with only per-row
    /// formats the step from 3 to 4 bits on a large layer cannot be paid for in small amounts. Default: all of them,
    /// [0, 16, 32, 64, 128, 256]; [0] restricts the choice to one scale per row.
    /// </summary>
    public IReadOnlyList<int> GroupSizes { get; init; } = [0, 16, 32, 64, 128, 256];

    /// <summary>
    /// A whole-model byte budget for this Compress call instead of the declared <c>MaxBytes</c> (null = the plan's).
    /// For sweeps over budgets (a Pareto front); the build checked only the declared budget.
    /// </summary>
    public long? MaxBytes { get; init; }

    /// <summary>An average-bits budget for this Compress call instead of the declared <c>AverageBits</c> (null = the plan's; 0 = none).</summary>
    public double? AverageBits { get; init; }

    /// <summary>Receives one report per Hutchinson sample, per layer and format measured (measured loss, quadratic form), or per layer (top eigenvalue).</summary>
    public IProgress<MixedPrecisionProgress>? Progress { get; init; }
}

/// <summary>Progress of the sensitivity measurement: <paramref name="Sample"/> of <paramref name="Samples"/> Rademacher vectors done (1-based).</summary>
public readonly record struct MixedPrecisionProgress(int Sample, int Samples);

/// <summary>
/// A <c>[MixedPrecision]</c> budget that no allocation meets at run time: even with every candidate layer at its
/// smallest bit width, the plan is <see cref="ShortfallBytes"/> over the budget.
/// </summary>
public sealed class MixedPrecisionBudgetException : InvalidOperationException
{
    /// <param name="message">The message, naming the model, the budget and the shortfall.</param>
    /// <param name="shortfallBytes">Bytes above the budget at the smallest reachable size.</param>
    public MixedPrecisionBudgetException(string message, long shortfallBytes) : base(message) => ShortfallBytes = shortfallBytes;

    /// <summary>Bytes above the budget at the smallest reachable size.</summary>
    public long ShortfallBytes { get; }
}
