using Condense.Benchmarks.Cases;

namespace Condense.Benchmarks.Harness;

/// <summary>One row of the table. Holds numbers only, never the case, so a group's weights can be freed.</summary>
internal sealed class RowResult
{
    public required string Group { get; init; }
    public required string Name { get; init; }
    public required string Shape { get; init; }
    public required int Batch { get; init; }
    public required bool Cold { get; init; }
    public required double BitsPerWeight { get; init; }
    public required long BytesPerCall { get; init; }
    public required double FlopsPerCall { get; init; }
    public required Target? Target { get; init; }

    public List<double> Times { get; } = [];
    public List<double> RoundMedians { get; } = [];

    public double MedianSeconds => Timing.Median(Times);
    public double GBps => BytesPerCall / MedianSeconds / 1e9;
    public double Gflops => FlopsPerCall > 0 ? FlopsPerCall / MedianSeconds / 1e9 : double.NaN;
    public string Mode => Cold ? "cold" : "hot";

    // Filled once the whole group has run.
    public double PercentOfBandwidth { get; set; } = double.NaN;
    public double SpeedUpVsFp32 { get; set; } = double.NaN;
    public double VsOwnBatch1 { get; set; } = double.NaN;
    public bool? TargetMet { get; set; }

    public Measured Measured => new(PercentOfBandwidth, SpeedUpVsFp32, MedianSeconds * 1e3, Gflops, VsOwnBatch1);
}

/// <summary>The bandwidth probe's per-round medians (GB/s) of one group.</summary>
internal sealed class ProbeResult
{
    public List<double> OneThread { get; } = [];
    public List<double> TwoThreads { get; } = [];
}

/// <summary>
/// Runs groups round by round: each round measures the bandwidth probe (1 and 2 threads) before and after
/// the kernels, and every case of the group in between, so every ratio uses numbers from the same minute.
/// </summary>
internal sealed class Runner(BandwidthProbe probe, int rounds, long coldBytes, double budgetSeconds)
{
    private const int WarmUpCalls = 35;
    private const int MinCalls = 3;
    private const int MaxCalls = 60;

    public List<RowResult> Rows { get; } = [];
    public ProbeResult Probe { get; } = new();

    public void RunGroup(CaseGroup group, Action<string> progress)
    {
        var cases = group.Build(coldBytes).Where(c => CaseCatalog.Selected(c.Name)).ToList();
        if (CaseCatalog.Only is not null && cases.All(c => c.IsBaseline)) return;
        var rows = cases.Select(c => new RowResult
        {
            Group = group.Title, Name = c.Name, Shape = c.ShapeLabel, Batch = c.Batch, Cold = c.Cold,
            BitsPerWeight = c.BitsPerWeight, BytesPerCall = c.BytesPerCall, FlopsPerCall = c.FlopsPerCall, Target = c.Target,
        }).ToList();

        // Tier 0 first; call counting starts once no new method was jitted for 100 ms, tier 1 compiles in the
        // background after 30 counted calls: two passes, each followed by a pause.
        foreach (var c in cases) c.WarmUp(WarmUpCalls);
        Thread.Sleep(250);
        foreach (var c in cases) c.WarmUp(WarmUpCalls);
        Thread.Sleep(250);
        foreach (var c in cases)
        {
            c.BeforeCall?.Invoke();
            c.Invoke();
        }

        var probe2 = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            progress($"{group.Title}: round {round + 1}/{rounds}");
            GC.Collect();
            var one = new List<double>();
            var two = new List<double>();
            MeasureProbe(one, two);
            for (int i = 0; i < cases.Count; i++)
            {
                var times = Timing.Sample(cases[i].Invoke, cases[i].BeforeCall, MinCalls, MaxCalls, budgetSeconds);
                rows[i].Times.AddRange(times);
                rows[i].RoundMedians.Add(Timing.Median(times));
            }
            MeasureProbe(one, two);
            Probe.OneThread.Add(Timing.Median(one));
            Probe.TwoThreads.Add(Timing.Median(two));
            probe2.Add(Timing.Median(two));
        }

        Derive(rows, probe2);
        Rows.AddRange(rows);
    }

    // Two reads of 1 GiB per thread count, before and after the kernels: four per round and thread count.
    private void MeasureProbe(List<double> oneThreadGBps, List<double> twoThreadsGBps)
    {
        foreach (var t in Timing.Sample(() => probe.Read(1), null, 2, 2, 0))
            oneThreadGBps.Add(BandwidthProbe.Bytes / t / 1e9);
        foreach (var t in Timing.Sample(() => probe.Read(2), null, 2, 2, 0))
            twoThreadsGBps.Add(BandwidthProbe.Bytes / t / 1e9);
    }

    /// <summary>Ratios per round (against the same round's probe and fp32), then the median over rounds.</summary>
    private static void Derive(List<RowResult> rows, List<double> probe2)
    {
        foreach (var row in rows)
        {
            row.PercentOfBandwidth = Timing.Median(row.RoundMedians.Select((t, r) => row.BytesPerCall / t / 1e9 / probe2[r] * 100));
            var fp32 = rows.FirstOrDefault(b => b.Name == BenchCase.Fp32Name && b.Shape == row.Shape && b.Batch == row.Batch && b.Cold == row.Cold)
                       ?? rows.FirstOrDefault(b => b.Name == BenchCase.Fp32Name && b.Shape == row.Shape && b.Batch == row.Batch);
            if (fp32 is not null)
                row.SpeedUpVsFp32 = Timing.Median(row.RoundMedians.Select((t, r) => fp32.RoundMedians[r] / t));
            var batch1 = rows.FirstOrDefault(b => b.Name == row.Name && b.Shape == row.Shape && b.Batch == 1 && b.Cold);
            if (batch1 is not null)
                row.VsOwnBatch1 = row.MedianSeconds / batch1.MedianSeconds;
            row.TargetMet = row.Target?.IsMet(row.Measured);
        }
    }
}
