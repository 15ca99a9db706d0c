using System.Globalization;
using System.Runtime.InteropServices;
using Condense.Catalogue;
using Condense.Compression;
using Condense.LowRank;
using Condense.Nn;
using Condense.Quantization;
using Condense.Sparsity;

namespace Condense.IO;

/// <summary>
/// How each weight storage is laid out as safetensors tensors under <c>&lt;layer&gt;.weight</c> (docs/format.md,
/// "Model files"), and how it is read back against a layer's plan. Reading collects problems instead of throwing,
/// so a load reports every mismatch at once.
/// </summary>
internal sealed class StoredWeights(SafeTensorsFile file, HashSet<string> used, List<string> problems)
{
    /// <summary>Every tensor name a layer's weight can use, after <c>&lt;layer&gt;.weight</c>.</summary>
    public static readonly string[] CompressedSuffixes =
        [".qdata", ".qscale", ".qzero", ".u", ".v", ".nm_index", ".nm_values", ".csr_values", ".csr_columns", ".csr_rows"];

    /// <summary>Writes a compressed weight's parts.</summary>
    public static void Write(SafeTensorsWriter writer, string w, IWeightStorage storage, LayerPlan lp)
    {
        switch (storage)
        {
            case GroupQuantizedWeight q:
                WriteQuantized(writer, w, q);
                break;
            case LowRankWeight lr:
                WriteFactors(writer, w, lr);
                break;
            case LowRankCorrectedWeight c:
                WriteQuantized(writer, w, c.Quantized);
                WriteFactors(writer, w, c.Correction);
                break;
            case NmSparseWeight nm:
                writer.AddBorrowed(w + ".nm_index", SafeTensorDType.U8, nm.Indices, [nm.OutFeatures, nm.Indices.Length / Math.Max(1, nm.OutFeatures)]);
                if (nm.Values is { } values) writer.AddBorrowed(w + ".nm_values", SafeTensorDType.F32, values, [nm.OutFeatures, nm.CompressedWidth]);
                else WriteQuantized(writer, w, nm.QuantizedValues!);
                break;
            case CsrWeight csr:
                writer.AddBorrowed(w + ".csr_values", SafeTensorDType.F32, csr.Values, [csr.NonZeroCount]);
                if (csr.ColumnIndices16 is { } c16)
                    writer.AddBorrowed(w + ".csr_columns", SafeTensorDType.U16, c16, [c16.Length]);
                else
                    writer.AddBorrowed(w + ".csr_columns", SafeTensorDType.U32, csr.ColumnIndices32!, [csr.ColumnIndices32!.Length]);
                writer.AddBorrowed(w + ".csr_rows", SafeTensorDType.I32, csr.RowPointers, [csr.RowPointers.Length]);
                break;
            default:
                throw new NotSupportedException($"Layer '{lp.Path}' stores its weight as {storage.Format}, which this version of Condense cannot save.");
        }
    }

    /// <summary>Reads the compressed weight the plan expects for this layer, or null after recording problems.</summary>
    public IWeightStorage? Read(LayerPlan lp)
    {
        string w = lp.Path + ".weight";
        var scheme = new QuantizationScheme(lp.Bits, lp.GroupSize, lp.Symmetric);
        int before = problems.Count;
        try
        {
            switch (lp.Technique)
            {
                case LayerTechnique.Quantize:
                    return ReadQuantized(w, lp.OutFeatures, lp.InFeatures, scheme);
                case LayerTechnique.LowRank:
                    return ReadFactors(w, lp);
                case LayerTechnique.QuantizeWithLowRankCorrection:
                {
                    var q = ReadQuantized(w, lp.OutFeatures, lp.InFeatures, scheme);
                    var lr = ReadFactors(w, lp);
                    return q is null || lr is null ? null : LowRankCorrectedWeight.FromParts(q, lr);
                }
                case LayerTechnique.SemiStructuredSparse:
                {
                    int kept = lp.InFeatures / lp.SparsityM * lp.SparsityN;
                    long indexBytes = KernelCatalogue.PackedRowBytes(kept, lp.SparsityM == 8 ? 3 : 2);
                    var index = Expect(w + ".nm_index", SafeTensorDType.U8, [lp.OutFeatures, indexBytes]) ? file.ReadU8(w + ".nm_index") : null;
                    if (lp.Bits > 0)
                    {
                        var q = ReadQuantized(w, lp.OutFeatures, kept, scheme);
                        return index is null || q is null ? null : NmSparseWeight.FromParts(lp.OutFeatures, lp.InFeatures, lp.SparsityN, lp.SparsityM, index, q);
                    }
                    var values = Expect(w + ".nm_values", SafeTensorDType.F32, [lp.OutFeatures, kept]) ? FiniteF32(w + ".nm_values") : null;
                    return index is null || values is null ? null : NmSparseWeight.FromParts(lp.OutFeatures, lp.InFeatures, lp.SparsityN, lp.SparsityM, index, values);
                }
                case LayerTechnique.UnstructuredSparse:
                {
                    long nnz = KernelCatalogue.UnstructuredKeptCount(lp.OutFeatures, lp.InFeatures, lp.SparsityFraction);
                    // A Scope = Global layer's share of the kept weights was chosen at Compress: read it, within its floor.
                    if (lp.GlobalSparsity && file.TryGet(w + ".csr_values", out var stored) && stored.Shape.Length == 1 &&
                        stored.Shape[0] >= PruningRules.MinimumKeptCount(lp.WeightCount, lp.LayerFloor) && stored.Shape[0] <= lp.WeightCount)
                        nnz = stored.Shape[0];
                    bool wide = lp.InFeatures > 65536;
                    var values = Expect(w + ".csr_values", SafeTensorDType.F32, [nnz]) ? FiniteF32(w + ".csr_values") : null;
                    bool columnsOk = Expect(w + ".csr_columns", wide ? SafeTensorDType.U32 : SafeTensorDType.U16, [nnz]);
                    var rows = Expect(w + ".csr_rows", SafeTensorDType.I32, [lp.OutFeatures + 1L]) ? file.ReadI32(w + ".csr_rows") : null;
                    if (values is null || !columnsOk || rows is null) return null;
                    return wide
                        ? CsrWeight.FromParts(lp.OutFeatures, lp.InFeatures, values, file.ReadU32(w + ".csr_columns"), rows)
                        : CsrWeight.FromParts(lp.OutFeatures, lp.InFeatures, values, file.ReadU16(w + ".csr_columns"), rows);
                }
                case LayerTechnique.MixedPrecision:
                    problems.Add($"layer '{lp.Path}' gets its bits from [MixedPrecision] at Compress, so the compiled plan cannot say how it is stored: write the chosen bits back to source (report.MixedPrecision.WritePartialClass), rebuild, then save and load");
                    return null;
                default:
                    problems.Add($"layer '{lp.Path}': {lp.TechniqueText} weights cannot be loaded by this version of Condense");
                    return null;
            }
        }
        catch (ArgumentException e) when (problems.Count == before)
        {
            // The parts had the right names and shapes but inconsistent contents (e.g. a zero point out of range).
            // The layer's other parts may not have been read yet; they belong to the plan all the same.
            problems.Add($"layer '{lp.Path}': {e.Message}");
            foreach (var suffix in PlannedSuffixes(lp))
                if (file.Contains(w + suffix)) used.Add(w + suffix);
            return null;
        }
    }

    /// <summary>The tensors (after <c>&lt;layer&gt;.weight</c>) that the layer's planned technique stores.</summary>
    private static IEnumerable<string> PlannedSuffixes(LayerPlan lp)
    {
        string[] quantized = lp.Symmetric ? [".qdata", ".qscale"] : [".qdata", ".qscale", ".qzero"];
        return lp.Technique switch
        {
            LayerTechnique.Quantize => quantized,
            LayerTechnique.LowRank => [".u", ".v"],
            LayerTechnique.QuantizeWithLowRankCorrection => [.. quantized, ".u", ".v"],
            LayerTechnique.SemiStructuredSparse => lp.Bits > 0 ? [".nm_index", .. quantized] : [".nm_index", ".nm_values"],
            LayerTechnique.UnstructuredSparse => [".csr_values", ".csr_columns", ".csr_rows"],
            _ => [],
        };
    }

    /// <summary>Reads an F32 tensor of the given shape whose values must be finite, or null after recording a problem.</summary>
    public float[]? DenseF32(string name, int[] shape)
    {
        if (!file.TryGet(name, out _))
        {
            problems.Add($"tensor '{name}' is missing: expected F32 {ShapeText(Array.ConvertAll(shape, d => (long)d))}");
            return null;
        }
        return Expect(name, SafeTensorDType.F32, Array.ConvertAll(shape, d => (long)d)) ? FiniteF32(name, shape) : null;
    }

    private GroupQuantizedWeight? ReadQuantized(string w, int outFeatures, int inFeatures, QuantizationScheme scheme)
    {
        long groups = KernelCatalogue.GroupsPerRow(inFeatures, scheme.GroupSize);
        var packed = Expect(w + ".qdata", SafeTensorDType.U8, [outFeatures, KernelCatalogue.PackedRowBytes(inFeatures, scheme.Bits)]) ? file.ReadU8(w + ".qdata") : null;
        var scales = Expect(w + ".qscale", SafeTensorDType.F16, [outFeatures, groups]) ? file.ReadF16(w + ".qscale") : null;
        byte[]? zeros = null;
        bool zerosOk = true;
        if (scheme.Symmetric)
        {
            if (file.TryGet(w + ".qzero", out _))
            {
                used.Add(w + ".qzero");
                problems.Add($"tensor '{w}.qzero': the weight is planned symmetric ({scheme.FormatName}) and has no zero points");
                zerosOk = false;
            }
        }
        else if (Expect(w + ".qzero", SafeTensorDType.U8, [outFeatures, groups])) zeros = file.ReadU8(w + ".qzero");
        else zerosOk = false;
        return packed is null || scales is null || !zerosOk ? null : GroupQuantizedWeight.FromParts(outFeatures, inFeatures, scheme, packed, scales, zeros);
    }

    private LowRankWeight? ReadFactors(string w, LayerPlan lp)
    {
        var u = Expect(w + ".u", SafeTensorDType.F32, [lp.OutFeatures, lp.Rank]) ? FiniteF32(w + ".u") : null;
        var v = Expect(w + ".v", SafeTensorDType.F32, [lp.Rank, lp.InFeatures]) ? FiniteF32(w + ".v") : null;
        return u is null || v is null ? null : LowRankWeight.FromFactors(lp.OutFeatures, lp.InFeatures, lp.Rank, u, v);
    }

    private static void WriteQuantized(SafeTensorsWriter writer, string w, GroupQuantizedWeight q)
    {
        int groups = KernelCatalogue.GroupsPerRow(q.InFeatures, q.Scheme.GroupSize);
        writer.AddBorrowed(w + ".qdata", SafeTensorDType.U8, q.Packed, [q.OutFeatures, KernelCatalogue.PackedRowBytes(q.InFeatures, q.Scheme.Bits)]);
        writer.AddBorrowed(w + ".qscale", SafeTensorDType.F16, q.Scales, [q.OutFeatures, groups]);
        if (q.ZeroPoints is { } zeros) writer.AddBorrowed(w + ".qzero", SafeTensorDType.U8, zeros, [q.OutFeatures, groups]);
    }

    private static void WriteFactors(SafeTensorsWriter writer, string w, LowRankWeight lr)
    {
        writer.AddBorrowed(w + ".u", SafeTensorDType.F32, lr.U, [lr.OutFeatures, lr.Rank]);
        writer.AddBorrowed(w + ".v", SafeTensorDType.F32, lr.V, [lr.Rank, lr.InFeatures]);
    }

    /// <summary>Marks the tensor as part of the plan and checks its dtype and shape; records a problem otherwise.</summary>
    private bool Expect(string name, SafeTensorDType dtype, long[] shape)
    {
        if (!file.TryGet(name, out var info))
        {
            problems.Add($"tensor '{name}' is missing: expected {dtype} {ShapeText(shape)}");
            return false;
        }
        used.Add(name);
        if (info.DType != dtype || !info.Shape.AsSpan().SequenceEqual(shape))
        {
            problems.Add($"tensor '{name}' is {info.DType} {ShapeText(info.Shape)}; the compiled plan expects {dtype} {ShapeText(shape)}");
            return false;
        }
        return true;
    }

    private float[]? FiniteF32(string name, int[]? shape = null)
    {
        var data = file.ReadF32(name);
        try
        {
            TensorChecks.ThrowIfNotFinite(data, name, shape ?? Array.ConvertAll(file.Get(name).Shape, d => (int)d));
            return data;
        }
        catch (InvalidDataException e)
        {
            problems.Add(e.Message);
            return null;
        }
    }

    private static string ShapeText(long[] shape) =>
        "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
