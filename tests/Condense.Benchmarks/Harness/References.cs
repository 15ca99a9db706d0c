namespace Condense.Benchmarks.Harness;

/// <summary>
/// The PyTorch rows of BENCHMARKS.md (another run: PyTorch 1.13, OpenBLAS, 2 threads, same kind of machine),
/// printed beside this run's matching case. Different runs: a loose comparison, not a same-round ratio.
/// </summary>
internal static class References
{
    private sealed record Row(string Case, string Theirs, double TheirSeconds, string Name, string ShapeId, int Batch);

    // Name/shape/batch select this run's cold row.
    private static readonly Row[] Rows =
    [
        new("fp32 linear S2, batch 1", "9.2 ms", 9.2e-3, "fp32", "S2", 1),
        new("int8 dynamic linear (oneDNN) S2, batch 1", "1.64 ms", 1.64e-3, "int8-g32-sym", "S2", 1),
        new("fp32 linear S2, batch 128", "54 ms", 54e-3, "fp32", "S2", 128),
        new("fp32 linear S1, batch 128 (perf-anchors 3.2)", "19.9 ms", 19.9e-3, "fp32", "S1", 128),
        new("int4 g32 dequantize-then-multiply S1, batch 1", "41 ms", 41e-3, "int4-g32-sym", "S1", 1),
        new("2:4 sparse (gather) S1, batch 1", "15.8 ms", 15.8e-3, "2:4-fp32", "S1", 1),
        new("FWHT 2^20 float32 (2 threads)", "2.4 ms", 2.4e-3, "fwht", "2^20", 1),
        new("Fastfood 2^20 float32", "7.1 ms", 7.1e-3, "fastfood", "2^20", 1),
        new("Fastfood 2^24 float32", "228 ms", 228e-3, "fastfood", "2^24", 1),
    ];

    public static string Render(IReadOnlyList<RowResult> results, ProbeResult probe)
    {
        var table = new TextTable("reference (other run: PyTorch 1.13 + OpenBLAS, 2 threads)", "theirs", "this run, same case", "ours", "x ref");
        table.Add("read bandwidth, 1 GiB, 2 threads", "47 GB/s", "probe, 2 threads", $"{Format.Number(Timing.Median(probe.TwoThreads), "0.0")} GB/s",
            Format.Number(Timing.Median(probe.TwoThreads) / 47, "0.00"));
        foreach (var reference in Rows)
        {
            var ours = results.FirstOrDefault(r => r.Name == reference.Name && r.Shape.StartsWith(reference.ShapeId, StringComparison.Ordinal)
                                                   && r.Batch == reference.Batch && r.Cold)
                       ?? results.FirstOrDefault(r => r.Name == reference.Name && r.Shape.StartsWith(reference.ShapeId, StringComparison.Ordinal) && r.Batch == reference.Batch);
            if (ours is null)
                table.Add(reference.Case, reference.Theirs, "not in this run", "-", "-");
            else
                table.Add(reference.Case, reference.Theirs, $"{ours.Name} {ours.Shape.Split(' ')[0]} b{ours.Batch} {ours.Mode}",
                    Format.Time(ours.MedianSeconds), Format.Number(reference.TheirSeconds / ours.MedianSeconds, "0.00") + "x");
        }
        return table.Render();
    }
}
