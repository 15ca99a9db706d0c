namespace Condense.Benchmarks.Harness;

/// <summary>The measured ratios a target is judged on (NaN when a ratio does not apply).</summary>
/// <param name="PercentOfBandwidth">Median over rounds of (case GB/s / same-round 2-thread probe GB/s) x 100.</param>
/// <param name="SpeedUpVsFp32">Median over rounds of (fp32 time / case time), same shape, batch and mode.</param>
/// <param name="MedianMs">Median time of one call.</param>
/// <param name="Gflops">2 x multiply-adds / median time.</param>
/// <param name="VsOwnBatch1">Median time / the same format's batch-1 median on the same shape (cold).</param>
internal readonly record struct Measured(double PercentOfBandwidth, double SpeedUpVsFp32, double MedianMs, double Gflops, double VsOwnBatch1);

/// <summary>A BENCHMARKS.md target: a short text for the table and the test that says whether it is met.</summary>
internal sealed record Target(string Text, Func<Measured, bool> IsMet)
{
    public static Target Bandwidth(double percent) =>
        new($">={percent:0}% BW", m => m.PercentOfBandwidth >= percent);

    public static Target BandwidthAndSpeedUp(double percent, double speedUp) =>
        new($">={percent:0}% BW, >={speedUp:0.0#}x fp32", m => m.PercentOfBandwidth >= percent && m.SpeedUpVsFp32 >= speedUp);

    public static Target SpeedUp(double speedUp) =>
        new($">={speedUp:0.0#}x fp32", m => m.SpeedUpVsFp32 >= speedUp);

    public static Target Gflops(double gflops) =>
        new($">={gflops:0} GFLOP/s", m => m.Gflops >= gflops);

    public static Target TimeAtMost(double ms, string text) =>
        new(text, m => m.MedianMs <= ms);

    public static Target RelativeToBatch1(double factor) =>
        new($"<={factor:0.0}x own b1", m => m.VsOwnBatch1 <= factor);
}
