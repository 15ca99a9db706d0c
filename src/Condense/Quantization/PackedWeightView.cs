namespace Condense.Quantization;

/// <summary>
/// The pinned parts of a <see cref="GroupQuantizedWeight"/> that its product kernels read (<see cref="Int8MatMul"/>
/// with int8 activations, <see cref="Float32ActivationKernel"/> with float32 ones): valid only while the caller keeps
/// the arrays fixed.
/// </summary>
internal unsafe ref struct PackedWeightView
{
    public byte* Packed;
    public Half* Scales;
    public byte* Zeros; // null when symmetric
    public int Bits, GroupSize, GroupsPerRow, RowBytes, Out, In;
    public byte* GemmPanels; // 8 bits, int8 activations: the repacked copy Int8Gemm reads (Int8Gemm.BuildPanels), or null
    public float* GemmTerms; // its scales and zero points by panel (Int8Gemm.BuildTerms)
    public bool GemmVnni;    // GemmPanels/GemmTerms are the VNNI layouts (Int8Gemm.BuildQuadPanels), for the generated kernels
}
