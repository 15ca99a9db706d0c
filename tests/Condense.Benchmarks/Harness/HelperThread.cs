namespace Condense.Benchmarks.Harness;

/// <summary>
/// One persistent thread that runs half of a two-thread job while the caller runs the other half,
/// so the 2-thread probe does not depend on the thread pool handing out a second thread in time.
/// </summary>
internal sealed class HelperThread : IDisposable
{
    private readonly SemaphoreSlim _start = new(0);
    private readonly SemaphoreSlim _done = new(0);
    private Action? _work;
    private bool _stopping;

    public HelperThread()
    {
        new Thread(Loop) { IsBackground = true, Name = "Condense.Benchmarks helper" }.Start();
    }

    /// <summary>Runs <paramref name="helperPart"/> on the helper and <paramref name="callerPart"/> here; returns when both finished.</summary>
    public void Run(Action helperPart, Action callerPart)
    {
        _work = helperPart;
        _start.Release();
        callerPart();
        _done.Wait();
    }

    private void Loop()
    {
        while (true)
        {
            _start.Wait();
            if (_stopping) return;
            _work!();
            _done.Release();
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _start.Release();
    }
}
