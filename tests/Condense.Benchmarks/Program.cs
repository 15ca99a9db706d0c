// Condense benchmarks (never part of the test run). Speed is reported as ratios measured in the same run;
// see ../shared/BENCHMARKS.md.
//
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick        one table in under a minute
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --filter '*'   BenchmarkDotNet suites
using BenchmarkDotNet.Running;

namespace Condense.Benchmarks;

public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "--quick")
            return QuickMode.Run(args[1..]);
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
