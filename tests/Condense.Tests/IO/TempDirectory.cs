namespace Condense.Tests.IO;

/// <summary>A fresh directory per test class instance, deleted afterwards.</summary>
public sealed class TempDirectory : IDisposable
{
    private static int s_counter;

    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(),
            $"condense-io-{Environment.ProcessId}-{Interlocked.Increment(ref s_counter)}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
