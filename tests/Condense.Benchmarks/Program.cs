// Condense benchmarks (never part of the test run). Speed is reported as ratios measured in the same run;
// see BENCHMARKS.md (harness rules).
//
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick              kernel table, under a minute
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick --full       every shape, batch and format
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick generator    generator on 1,000 layers
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick load         model load: checksum cost, memory
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick gptq         GPTQ of one 4096 x 4096 layer
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --quick --peers      vs ONNX Runtime on the same codes
//   dotnet run -c Release --project tests/Condense.Benchmarks -- --filter '*Gemv*'    BenchmarkDotNet suites
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
