namespace Condense.Benchmarks;

/// <summary>The quick kernel table (owned by the kernel benchmark work).</summary>
public static class QuickMode
{
    public static int Run(string[] args)
    {
        Console.WriteLine("quick mode: not written yet");
        return 0;
    }
}
