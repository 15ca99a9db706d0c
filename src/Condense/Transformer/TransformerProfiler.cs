using System.Diagnostics;

namespace Condense.Transformer;

/// <summary>The parts of a BERT forward pass that <see cref="TransformerProfiler"/> times.</summary>
public enum TransformerStage
{
    /// <summary>Word + position + token-type lookups and their LayerNorm (<see cref="Bert.Embed"/>).</summary>
    Embeddings,

    /// <summary>The query, key and value Linear layers (wall time).</summary>
    QkvProjection,

    /// <summary>Self-attention after the projections: Q K^T, masked softmax and P V over every head (wall time).</summary>
    Attention,

    /// <summary>Q K^T inside <see cref="Attention"/> (thread time summed over the workers, so a share of it, not wall time).</summary>
    AttentionScores,

    /// <summary>The scaled, masked softmax inside <see cref="Attention"/> (thread time).</summary>
    AttentionSoftmax,

    /// <summary>P V inside <see cref="Attention"/> (thread time).</summary>
    AttentionContext,

    /// <summary>The attention output Linear layer.</summary>
    AttentionOutput,

    /// <summary>The intermediate (feed-forward up) Linear layer.</summary>
    Intermediate,

    /// <summary>The erf GELU after the intermediate layer.</summary>
    Gelu,

    /// <summary>The output (feed-forward down) Linear layer.</summary>
    Output,

    /// <summary>The two residual adds and LayerNorms of each encoder layer.</summary>
    LayerNorm,

    /// <summary>Mean pooling over the attention mask (<see cref="Bert.MeanPool"/>).</summary>
    Pooling,
}

/// <summary>
/// A time breakdown of the transformer forward pass (<see cref="Bert"/>, <see cref="Attention"/>), for finding where
/// inference time goes. Off by default: then each timed point costs one static read and no clock call.
/// </summary>
/// <remarks>
/// Times accumulate process-wide across threads until <see cref="Reset"/>. Stages are wall time on the calling thread,
/// except the three attention parts, which are summed over the threads that run the heads.
/// </remarks>
public static class TransformerProfiler
{
    private static readonly long[] s_ticks = new long[Enum.GetValues<TransformerStage>().Length];
    private static readonly long[] s_calls = new long[s_ticks.Length];

    /// <summary>Whether the transformer ops record their times.</summary>
    public static bool Enabled { get; set; }

    /// <summary>
    /// The clock, in ticks of <see cref="ClockFrequency"/> per second (default: <see cref="Stopwatch.GetTimestamp"/>,
    /// wall time). A caller on a loaded machine can set the calling thread's processor time here (at one thread
    /// that excludes the time the thread waited to be scheduled). Set both together, while profiling is off.
    /// </summary>
    public static Func<long> Clock { get; set; } = Stopwatch.GetTimestamp;

    /// <summary>Ticks per second of <see cref="Clock"/>.</summary>
    public static long ClockFrequency { get; set; } = Stopwatch.Frequency;

    /// <summary>Total time recorded for <paramref name="stage"/> since the last <see cref="Reset"/>.</summary>
    public static TimeSpan Elapsed(TransformerStage stage) =>
        TimeSpan.FromSeconds(Interlocked.Read(ref s_ticks[(int)stage]) / (double)ClockFrequency);

    /// <summary>Times <paramref name="stage"/> was recorded since the last <see cref="Reset"/>.</summary>
    public static long Calls(TransformerStage stage) => Interlocked.Read(ref s_calls[(int)stage]);

    /// <summary>Clears every stage's time and count.</summary>
    public static void Reset()
    {
        for (int i = 0; i < s_ticks.Length; i++)
        {
            Interlocked.Exchange(ref s_ticks[i], 0);
            Interlocked.Exchange(ref s_calls[i], 0);
        }
    }

    /// <summary>A start mark: the clock when profiling, else 0 (and <see cref="Stop"/> then does nothing).</summary>
    internal static long Start() => Enabled ? Math.Max(1, Clock()) : 0;

    /// <summary>Adds the time since <paramref name="start"/> to <paramref name="stage"/>; returns a new start mark.</summary>
    internal static long Stop(TransformerStage stage, long start)
    {
        if (start == 0) return 0;
        long now = Math.Max(1, Clock());
        Interlocked.Add(ref s_ticks[(int)stage], now - start);
        Interlocked.Increment(ref s_calls[(int)stage]);
        return now;
    }
}
