namespace Condense.Quantization;

/// <summary>A bit width as a type, so generic kernels are specialized per width by the JIT.</summary>
public interface IBitWidth
{
    static abstract int Bits { get; }
}

/// <summary>2 bits per weight.</summary>
public readonly struct Bits2 : IBitWidth { public static int Bits => 2; }

/// <summary>3 bits per weight.</summary>
public readonly struct Bits3 : IBitWidth { public static int Bits => 3; }

/// <summary>4 bits per weight.</summary>
public readonly struct Bits4 : IBitWidth { public static int Bits => 4; }

/// <summary>8 bits per weight.</summary>
public readonly struct Bits8 : IBitWidth { public static int Bits => 8; }
