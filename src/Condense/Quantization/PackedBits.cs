using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Condense.Quantization;

/// <summary>
/// Packs and unpacks b-bit unsigned values as a little-endian bit stream, low bits first:
/// value i occupies bits [i*b, (i+1)*b) of the row. See docs/format.md.
/// </summary>
/// <remarks>
/// Eight b-bit values fill exactly b bytes, so the kernels work in chunks of 8 values and only the
/// last partial chunk of a row is special. <c>TBits.Bits</c> is a JIT constant, so every shift and
/// loop bound below folds per width.
/// </remarks>
internal static class PackedBits
{
    /// <summary>Packs one row of levels (each already in [0, 2^b - 1]) into <paramref name="destination"/>, zeroing padding bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void PackRow<TBits>(ReadOnlySpan<int> levels, Span<byte> destination)
        where TBits : struct, IBitWidth
    {
        int b = TBits.Bits;
        int count = levels.Length;
        if (destination.Length != (count * b + 7) / 8)
            throw new ArgumentException("destination must hold exactly one packed row", nameof(destination));
        ref int src = ref MemoryMarshal.GetReference(levels);
        ref byte dst = ref MemoryMarshal.GetReference(destination);
        if (b == 8)
        {
            // One byte per value: no bit arithmetic needed.
            for (int i = 0; i < count; i++) Unsafe.Add(ref dst, i) = (byte)Unsafe.Add(ref src, i);
            return;
        }

        int s = 0, d = 0;
        for (; s + 8 <= count; s += 8, d += b)
        {
            ulong acc = Chunk(ref Unsafe.Add(ref src, s), b);
            // A whole 8-byte store when the row has room: its high bytes are zero and later chunks overwrite them.
            if (d + 8 <= destination.Length && BitConverter.IsLittleEndian)
                Unsafe.WriteUnaligned(ref Unsafe.Add(ref dst, d), acc);
            else
                WriteLowBytes(acc, destination.Slice(d, b));
        }

        int rest = count - s;
        if (rest > 0)
        {
            ulong acc = 0;
            for (int k = 0; k < rest; k++) acc |= (ulong)(uint)Unsafe.Add(ref src, s + k) << (k * b);
            WriteLowBytes(acc, destination.Slice(d, (rest * b + 7) / 8));
        }
    }

    /// <summary>Eight b-bit levels as one 8b-bit little-endian integer, value k at bits [k*b, (k+1)*b).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Chunk(ref int levels, int b) =>
        (uint)levels
        | (ulong)(uint)Unsafe.Add(ref levels, 1) << b
        | (ulong)(uint)Unsafe.Add(ref levels, 2) << (2 * b)
        | (ulong)(uint)Unsafe.Add(ref levels, 3) << (3 * b)
        | (ulong)(uint)Unsafe.Add(ref levels, 4) << (4 * b)
        | (ulong)(uint)Unsafe.Add(ref levels, 5) << (5 * b)
        | (ulong)(uint)Unsafe.Add(ref levels, 6) << (6 * b)
        | (ulong)(uint)Unsafe.Add(ref levels, 7) << (7 * b);

    /// <summary>
    /// Unpacks <paramref name="count"/> values starting at value <paramref name="start"/> (a multiple of 8,
    /// so it begins on a byte boundary) and writes (q - zeroPoint) * scale as float32.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DequantizeRange<TBits>(ReadOnlySpan<byte> row, int start, int count, float scale, int zeroPoint, Span<float> destination)
        where TBits : struct, IBitWidth
    {
        int b = TBits.Bits;
        uint mask = (1u << b) - 1;
        int p = start / 8 * b;
        int i = 0;
        if (b == 8)
        {
            for (; i < count; i++) destination[i] = (row[p + i] - zeroPoint) * scale;
            return;
        }

        for (; i + 8 <= count; i += 8, p += b)
        {
            ulong acc = ReadLowBytes(row, p, b);
            for (int k = 0; k < 8; k++)
                destination[i + k] = ((int)((uint)(acc >> (k * b)) & mask) - zeroPoint) * scale;
        }

        int rest = count - i;
        if (rest > 0)
        {
            ulong acc = ReadLowBytes(row, p, (rest * b + 7) / 8);
            for (int k = 0; k < rest; k++)
                destination[i + k] = ((int)((uint)(acc >> (k * b)) & mask) - zeroPoint) * scale;
        }
    }

    /// <summary>Reads value <paramref name="index"/> of a packed row bit by bit: the slow reference used by tests.</summary>
    public static int ReadLevel(ReadOnlySpan<byte> row, int index, int bits)
    {
        int value = 0;
        for (int k = 0; k < bits; k++)
        {
            long bit = (long)index * bits + k;
            value |= ((row[(int)(bit >> 3)] >> (int)(bit & 7)) & 1) << k;
        }
        return value;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteLowBytes(ulong value, Span<byte> destination)
    {
        for (int k = 0; k < destination.Length; k++) destination[k] = (byte)(value >> (8 * k));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ReadLowBytes(ReadOnlySpan<byte> row, int offset, int byteCount)
    {
        // One unaligned 8-byte load when the row has room; the extra high bytes are shifted out by the mask.
        if (offset + 8 <= row.Length)
            return BinaryPrimitives.ReadUInt64LittleEndian(row.Slice(offset));
        ulong acc = 0;
        for (int k = 0; k < byteCount; k++) acc |= (ulong)row[offset + k] << (8 * k);
        return acc;
    }
}
