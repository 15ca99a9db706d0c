namespace Condense.Quantization;

/// <summary>
/// The one place GPTQ meets the stored grid: a group's scale and zero point come from round-to-nearest's own
/// choice (<see cref="RoundToNearest.QuantizeRow{TBits}"/>, whatever grid and clipping it uses), and a value's code
/// is the one the packed format dequantizes as s * (q - z). When the grid changes, only this adapter follows.
/// </summary>
internal static class GptqGrid
{
    /// <summary>The zero point a symmetric group stores implicitly (the kernels' convention).</summary>
    public static int SymmetricZero(int bits) => 1 << (bits - 1);

    /// <summary>Scale and zero point of one group of one row, as round-to-nearest would store them.</summary>
    /// <param name="levels">Scratch of at least the group's length.</param>
    /// <param name="packed">Scratch for the group's packed bytes.</param>
    public static (Half Scale, byte Zero) GroupParameters<TBits>(ReadOnlySpan<float> group, int row, bool symmetric, Span<int> levels, Span<byte> packed)
        where TBits : struct, IBitWidth
    {
        Span<Half> scale = stackalloc Half[1];
        Span<byte> zero = stackalloc byte[1];
        RoundToNearest.QuantizeRow<TBits>(group, row, group.Length, symmetric, packed, scale, zero, levels[..group.Length]);
        return (scale[0], symmetric ? (byte)SymmetricZero(TBits.Bits) : zero[0]);
    }

    /// <summary>q = clamp(round_half_even(w / s) + z, 0, 2^b - 1); z when s is 0 (as round-to-nearest does).</summary>
    public static int Code(float w, float scale, int zero, int maxLevel) =>
        scale == 0f ? zero : (int)Math.Clamp(MathF.Round(w / scale) + zero, 0f, maxLevel);
}
