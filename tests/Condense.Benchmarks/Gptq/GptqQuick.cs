using System.Diagnostics;
using Condense.Benchmarks.Harness;
using Condense.Calibration;
using Condense.Quantization;

namespace Condense.Benchmarks.Gptq;

/// <summary>
/// `--quick gptq`: seconds to GPTQ one 4096 x 4096 layer from 128 calibration rows (int4 g128 symmetric, and with
/// act-order), with the X^T X recording and round-to-nearest on the same weight as yardsticks. Median of 3 rounds
/// after a warm-up on a smaller layer (JIT).
/// </summary>
internal static class GptqQuick
{
    private const int Size = 4096;
    private const int Rows = 128;
    private const int Rounds = 3;

    public static int Run()
    {
        Console.WriteLine($"Condense GPTQ benchmark: one Linear({Size}, {Size}) weight, {Rows} calibration rows, int4-g128-sym, block 128, damping 1%");
        foreach (var line in MachineInfo.Lines()) Console.WriteLine(line);
        var rng = new Rng(7);
        var weight = new float[Size * Size];
        rng.FillUniform(weight, -0.02f, 0.02f);
        var inputs = new float[Rows * Size];
        rng.FillUniform(inputs, -1f, 1f);
        var scheme = new QuantizationScheme(4, 128, Symmetric: true);

        // Warm-up: every code path once on a smaller layer.
        var small = LayerStatistics.FromInputs(inputs.AsSpan(0, Rows * 512), 512);
        Condense.Quantization.Gptq.Quantize(weight.AsSpan(0, 512 * 512), 512, 512, scheme, small);
        Condense.Quantization.Gptq.Quantize(weight.AsSpan(0, 512 * 512), 512, 512, scheme, small, new GptqOptions { ActOrder = true });
        GroupQuantizedWeight.Quantize(weight.AsSpan(0, 512 * 512), 512, 512, scheme);

        var record = new List<double>();
        var gptq = new List<double>();
        var actOrder = new List<double>();
        var rtn = new List<double>();
        LayerStatistics? stats = null;
        for (int round = 0; round < Rounds; round++)
        {
            record.Add(Time(() => stats = LayerStatistics.FromInputs(inputs, Size)));
            gptq.Add(Time(() => Condense.Quantization.Gptq.Quantize(weight, Size, Size, scheme, stats!)));
            actOrder.Add(Time(() => Condense.Quantization.Gptq.Quantize(weight, Size, Size, scheme, stats!, new GptqOptions { ActOrder = true })));
            rtn.Add(Time(() => GroupQuantizedWeight.Quantize(weight, Size, Size, scheme)));
            Console.Error.Write($"\r  round {round + 1}/{Rounds}");
        }
        Console.Error.Write("\r                \r");
        Console.WriteLine($"X^T X (128 rows)         : {Timing.Median(record),8:F3} s   rounds {string.Join(", ", record.Select(t => t.ToString("F3")))}");
        Console.WriteLine($"GPTQ                     : {Timing.Median(gptq),8:F3} s   rounds {string.Join(", ", gptq.Select(t => t.ToString("F3")))}");
        Console.WriteLine($"GPTQ, act-order          : {Timing.Median(actOrder),8:F3} s   rounds {string.Join(", ", actOrder.Select(t => t.ToString("F3")))}");
        Console.WriteLine($"round-to-nearest         : {Timing.Median(rtn),8:F3} s   rounds {string.Join(", ", rtn.Select(t => t.ToString("F3")))}");
        Console.WriteLine("target (issue 10): seconds, not minutes, on 2 cores");
        return 0;
    }

    private static double Time(Action action)
    {
        GC.Collect();
        var clock = Stopwatch.StartNew();
        action();
        return clock.Elapsed.TotalSeconds;
    }
}
