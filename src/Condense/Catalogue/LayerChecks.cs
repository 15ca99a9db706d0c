// Compiled into both the runtime and the generator/analyzers (see KernelCatalogue.cs): the checks of one
// layer's settings and their messages. The analyzers report these messages at build time; Compress throws
// the very same text for a layer whose shape was not known at build time. Keep it netstandard2.0-compatible C#.
using System.Collections.Generic;
using System.Globalization;

namespace Condense.Catalogue;

/// <summary>What a layer's weight becomes. Same values as <c>Condense.Compression.LayerTechnique</c>.</summary>
public enum StorageTechnique
{
    /// <summary>float32.</summary>
    Dense = 0,
    /// <summary>Group-wise integer quantization.</summary>
    Quantize = 1,
    /// <summary>Low-rank float32 factors U V.</summary>
    LowRank = 2,
    /// <summary>Group-wise quantization plus low-rank float32 factors fitted to its error.</summary>
    QuantizeWithLowRankCorrection = 3,
    /// <summary>N:M semi-structured sparsity, values float32 or quantized.</summary>
    SemiStructuredSparse = 4,
    /// <summary>Unstructured sparsity stored as CSR.</summary>
    UnstructuredSparse = 5,
    /// <summary>Bits chosen per layer at Compress time under the model's budget.</summary>
    MixedPrecision = 6,
}

/// <summary>What is wrong with a layer's settings; the analyzers map each kind to its diagnostic.</summary>
public enum LayerCheck
{
    /// <summary>Bit width not in the catalogue.</summary>
    Bits,
    /// <summary>Group size without a kernel or not dividing the input size.</summary>
    GroupSize,
    /// <summary>[KeepDense] together with a compression attribute.</summary>
    KeepDenseWithOther,
    /// <summary>N:M pattern invalid, without a kernel, or not dividing the input size.</summary>
    SparsityPattern,
    /// <summary>Sparsity fraction outside [0, 1), or neither/both of fraction and N:M.</summary>
    SparsityFraction,
    /// <summary>Rank not in [1, min(in, out) - 1].</summary>
    Rank,
    /// <summary>Warning: the factors are not smaller than the dense weight.</summary>
    RankSavesNothing,
    /// <summary>Two techniques that have no kernel together.</summary>
    Combination,
    /// <summary>Two attributes of the same family.</summary>
    SameFamily,
    /// <summary>Subspace dimension not in [1, parameters - 1].</summary>
    Subspace,
}

/// <summary>The compression settings of one layer, as read from its attributes.</summary>
public sealed class LayerSettings
{
    /// <summary>[KeepDense].</summary>
    public bool KeepDense { get; set; }
    /// <summary>[Quantize] is present.</summary>
    public bool Quantize { get; set; }
    /// <summary>Bits of [Quantize] (for mixed precision: the smallest candidate).</summary>
    public int Bits { get; set; }
    /// <summary>GroupSize of [Quantize]; 0 = one group per row.</summary>
    public int GroupSize { get; set; }
    /// <summary>Symmetric of [Quantize].</summary>
    public bool Symmetric { get; set; } = true;
    /// <summary>[LowRank] is present.</summary>
    public bool LowRank { get; set; }
    /// <summary>Rank of [LowRank].</summary>
    public int Rank { get; set; }
    /// <summary>[LowRankCorrection] is present.</summary>
    public bool LowRankCorrection { get; set; }
    /// <summary>Rank of [LowRankCorrection].</summary>
    public int CorrectionRank { get; set; }
    /// <summary>[Sparsify] is present.</summary>
    public bool Sparsify { get; set; }
    /// <summary>[Sparsify(N = .., M = ..)] set N or M.</summary>
    public bool HasSparsityPattern { get; set; }
    /// <summary>[Sparsify(fraction)] was used.</summary>
    public bool HasSparsityFraction { get; set; }
    /// <summary>N of N:M.</summary>
    public int SparsityN { get; set; }
    /// <summary>M of N:M.</summary>
    public int SparsityM { get; set; }
    /// <summary>Fraction of weights removed by unstructured sparsity.</summary>
    public double SparsityFraction { get; set; }
    /// <summary>[Subspace] is present on the layer.</summary>
    public bool Subspace { get; set; }
    /// <summary>Dimension of [Subspace].</summary>
    public int SubspaceDimension { get; set; }
    /// <summary>The layer gets its bits from [MixedPrecision] on the model.</summary>
    public bool MixedPrecision { get; set; }
    /// <summary>Method of [Quantize] as its enum value (0 = round to nearest).</summary>
    public int QuantizeMethod { get; set; }
    /// <summary>Method of [LowRank] as its enum value (0 = SVD).</summary>
    public int LowRankMethod { get; set; }
    /// <summary>Criterion of [Sparsify] as its enum value (0 = magnitude).</summary>
    public int SparsityCriterion { get; set; }
    /// <summary>Scope of [Sparsify] as its enum value (0 = layer, 1 = global).</summary>
    public int SparsityScope { get; set; }
    /// <summary>LayerFloor of [Sparsify] (Scope = Global: fraction of its weights a layer keeps at least).</summary>
    public double LayerFloor { get; set; }
    /// <summary>[Sparsify] sets StartStep, EndStep or Frequency: a gradual schedule.</summary>
    public bool HasPruningSchedule { get; set; }
    /// <summary>StartStep of [Sparsify].</summary>
    public int PruneStartStep { get; set; }
    /// <summary>EndStep of [Sparsify].</summary>
    public int PruneEndStep { get; set; }
    /// <summary>Frequency of [Sparsify].</summary>
    public int PruneFrequency { get; set; }

    /// <summary>A copy, so a policy can change settings without touching the original.</summary>
    public LayerSettings Clone() => (LayerSettings)MemberwiseClone();

    /// <summary>What the weight becomes with these settings.</summary>
    public StorageTechnique Technique =>
        KeepDense ? StorageTechnique.Dense
        : Sparsify && HasSparsityPattern ? StorageTechnique.SemiStructuredSparse
        : Sparsify ? StorageTechnique.UnstructuredSparse
        : Quantize && LowRankCorrection ? StorageTechnique.QuantizeWithLowRankCorrection
        : Quantize ? StorageTechnique.Quantize
        : LowRank ? StorageTechnique.LowRank
        : MixedPrecision ? StorageTechnique.MixedPrecision
        : StorageTechnique.Dense;
}

/// <summary>One problem with a layer's settings: the message (identical at build time and in Compress) and where it belongs.</summary>
public sealed class LayerProblem
{
    internal LayerProblem(LayerCheck check, string template, string[] arguments, string attribute, string? argument, bool shapeDependent, int? suggested, string? otherAttribute = null)
    {
        Check = check;
        Template = template;
        Arguments = arguments;
        Attribute = attribute;
        Argument = argument;
        IsShapeDependent = shapeDependent;
        Suggested = suggested;
        OtherAttribute = otherAttribute;
    }

    /// <summary>The kind of problem.</summary>
    public LayerCheck Check { get; }
    /// <summary>The message format (the analyzers' descriptors use the same constant).</summary>
    public string Template { get; }
    /// <summary>The message arguments, already formatted.</summary>
    public string[] Arguments { get; }
    /// <summary>The attribute the problem is reported on, e.g. <c>Quantize</c>.</summary>
    public string Attribute { get; }
    /// <summary>For two-attribute problems, the other attribute; the analyzers report on the one declared later.</summary>
    public string? OtherAttribute { get; }
    /// <summary>The named argument the problem is about, "" for the first positional one, null for the whole attribute.</summary>
    public string? Argument { get; }
    /// <summary>The settings are valid in the catalogue but do not fit this layer's shape: OnIncompatible applies.</summary>
    public bool IsShapeDependent { get; }
    /// <summary>A value a code fix (or OnIncompatible = Adjust) can use instead, or null.</summary>
    public int? Suggested { get; }
    /// <summary>A warning rather than an error.</summary>
    public bool IsWarning => Check == LayerCheck.RankSavesNothing;
    /// <summary>The full message.</summary>
    public string Message => string.Format(CultureInfo.InvariantCulture, Template, Arguments);
}

/// <summary>Message formats shared by the analyzers' descriptors and the runtime's exceptions.</summary>
public static class CatalogueMessages
{
    /// <summary>CND0003 and CND0004.</summary>
    public const string CannotQuantize = "Layer '{0}' cannot be quantized: {1}";
    /// <summary>CND0005.</summary>
    public const string KeepDenseWithOther = "Layer '{0}' is marked [KeepDense] and [{1}]: keep one of the two attributes";
    /// <summary>CND0010 and CND0011.</summary>
    public const string CannotSparsify = "Layer '{0}' cannot be sparsified: {1}";
    /// <summary>CND0012.</summary>
    public const string InvalidRank = "Layer '{0}' cannot use [{1}({2})]: {3}";
    /// <summary>CND0013.</summary>
    public const string RankSavesNothing = "Layer '{0}': [LowRank({1})] saves nothing: its factors take {2} bytes, the dense weight {3} bytes; use a rank of at most {4}, or [KeepDense]";
    /// <summary>CND0014.</summary>
    public const string NoKernel = "Layer '{0}' cannot combine {1}: {2}";
    /// <summary>CND0015.</summary>
    public const string SameFamily = "Layer '{0}' has both [{1}] and [{2}], two {3} attributes: keep one";
    /// <summary>CND0020.</summary>
    public const string InvalidSubspace = "{0} cannot be trained in a subspace of dimension {1}: {2}";
    /// <summary>CND0021.</summary>
    public const string IncompatibleHandled = "{0}; OnIncompatible = {1} {2}";
}

public static partial class KernelCatalogue
{
    /// <summary>
    /// Every problem with <paramref name="s"/> on a layer of shape [<paramref name="outFeatures"/>, <paramref name="inFeatures"/>].
    /// With an unknown shape pass 0 for both: the checks that need the shape are skipped (Compress runs them later).
    /// </summary>
    public static List<LayerProblem> CheckLayer(string path, LayerSettings s, int outFeatures, int inFeatures, bool hasBias)
    {
        var problems = new List<LayerProblem>();
        bool shapeKnown = outFeatures > 0 && inFeatures > 0;

        if (s.KeepDense)
        {
            foreach (var other in AttributeNames(s))
                problems.Add(new LayerProblem(LayerCheck.KeepDenseWithOther, CatalogueMessages.KeepDenseWithOther, new[] { path, other }, "KeepDense", null, false, null, other));
            if (problems.Count > 0) return problems;
        }
        if (s.LowRank && s.LowRankCorrection)
            problems.Add(new LayerProblem(LayerCheck.SameFamily, CatalogueMessages.SameFamily, new[] { path, "LowRank", "LowRankCorrection", "low-rank" }, "LowRankCorrection", null, false, null, "LowRank"));

        CheckCombinations(path, s, problems);

        if (s.Quantize) CheckQuantize(path, s, inFeatures, shapeKnown, problems);
        if (s.Sparsify) CheckSparsify(path, s, inFeatures, shapeKnown, problems);
        if (s.LowRank) CheckRank(path, "LowRank", s.Rank, outFeatures, inFeatures, shapeKnown, true, problems);
        if (s.LowRankCorrection) CheckRank(path, "LowRankCorrection", s.CorrectionRank, outFeatures, inFeatures, shapeKnown, false, problems);
        if (s.Subspace)
        {
            long parameters = shapeKnown ? (long)outFeatures * inFeatures + (hasBias ? outFeatures : 0) : 0;
            var problem = SubspaceProblem("Layer '" + path + "'", s.SubspaceDimension, parameters, "Subspace");
            if (problem is not null) problems.Add(problem);
        }
        return problems;
    }

    /// <summary>The subspace check shared by layers and whole models (<paramref name="parameters"/> 0 = unknown).</summary>
    public static LayerProblem? SubspaceProblem(string subject, int dimension, long parameters, string attribute)
    {
        if (dimension <= 0)
            return new LayerProblem(LayerCheck.Subspace, CatalogueMessages.InvalidSubspace,
                new[] { subject, Format(dimension), "the dimension must be at least 1" }, attribute, "", false, 1);
        if (parameters > 0 && dimension >= parameters)
            return new LayerProblem(LayerCheck.Subspace, CatalogueMessages.InvalidSubspace,
                new[] { subject, Format(dimension), "it covers only " + Format(parameters) + " parameters, so the subspace must be smaller; use at most " + Format(parameters - 1) },
                attribute, "", true, (int)System.Math.Min(int.MaxValue, parameters - 1));
        return null;
    }

    private static IEnumerable<string> AttributeNames(LayerSettings s)
    {
        if (s.Quantize) yield return "Quantize";
        if (s.LowRank) yield return "LowRank";
        if (s.LowRankCorrection) yield return "LowRankCorrection";
        if (s.Sparsify) yield return "Sparsify";
        if (s.Subspace) yield return "Subspace";
    }

    private static void CheckCombinations(string path, LayerSettings s, List<LayerProblem> problems)
    {
        void Add(string first, string second, string why) =>
            problems.Add(new LayerProblem(LayerCheck.Combination, CatalogueMessages.NoKernel,
                new[] { path, "[" + first + "] and [" + second + "]", why }, second, null, false, null, first));

        if (s.LowRankCorrection && !s.Quantize && !s.LowRank)
            problems.Add(new LayerProblem(LayerCheck.Combination, CatalogueMessages.NoKernel,
                new[] { path, "[LowRankCorrection] with an unquantized weight", "the correction is fitted to the error of [Quantize]; add [Quantize(bits)], or use [LowRank(rank)] instead" },
                "LowRankCorrection", null, false, null));
        if (s.LowRank && s.Quantize)
            Add("LowRank", "Quantize", "quantized low-rank factors have no kernel; use [Quantize] with [LowRankCorrection(rank)], or [LowRank] alone");
        if (s.LowRank && s.Sparsify)
            Add("LowRank", "Sparsify", "sparse low-rank factors have no kernel; keep one of the two");
        if (s.Sparsify && s.LowRankCorrection)
            Add("Sparsify", "LowRankCorrection", "a low-rank correction of a sparse layer has no kernel; keep one of the two");
        if (s.Sparsify && s.Quantize && !s.HasSparsityPattern && s.HasSparsityFraction)
            Add("Sparsify", "Quantize", "unstructured (CSR) layers store float32 values; use N:M sparsity ([Sparsify(N = 2, M = 4)]) to quantize the kept values, or remove [Quantize]");
        if (s.Sparsify && s.HasSparsityPattern && s.Quantize && IsSupportedBits(s.Bits) && System.Array.IndexOf(SemiStructuredValueBits, s.Bits) < 0)
            Add("Sparsify", "Quantize", "the kept values of an N:M layer can only be quantized to " + Join(SemiStructuredValueBits, " or ") + " bits, not " + Format(s.Bits) + "; use [Quantize(4)] or [Quantize(8)], or remove [Quantize]");
    }

    private static void CheckQuantize(string path, LayerSettings s, int inFeatures, bool shapeKnown, List<LayerProblem> problems)
    {
        if (!IsSupportedBits(s.Bits))
        {
            problems.Add(new LayerProblem(LayerCheck.Bits, CatalogueMessages.CannotQuantize,
                new[] { path, "bits " + Format(s.Bits) + " has no kernel; supported bit widths are " + Join(SupportedBits) }, "Quantize", "", false, null));
            return;
        }
        // The kept values of an N:M layer form K-wide rows: the group size must divide K.
        bool semiStructured = s.Sparsify && s.HasSparsityPattern && IsSupportedSparsityPattern(s.SparsityN, s.SparsityM);
        int columns = semiStructured ? SemiStructuredKeptPerRow(inFeatures, s.SparsityN, s.SparsityM) : inFeatures;
        if (!IsSupportedGroupSize(s.GroupSize))
        {
            problems.Add(new LayerProblem(LayerCheck.GroupSize, CatalogueMessages.CannotQuantize,
                new[] { path, "group size " + Format(s.GroupSize) + " has no kernel; supported group sizes are 0 (one group per row), " + Join(SupportedGroupSizes) },
                "Quantize", "GroupSize", false, NearestGroupSize(s.GroupSize, shapeKnown ? columns : 0)));
            return;
        }
        if (shapeKnown && s.GroupSize > 0 && columns % s.GroupSize != 0)
        {
            string what = semiStructured
                ? "the " + Format(columns) + " values an " + Format(s.SparsityN) + ":" + Format(s.SparsityM) + " row keeps of its " + Format(inFeatures) + " inputs"
                : "the input size " + Format(columns);
            problems.Add(new LayerProblem(LayerCheck.GroupSize, CatalogueMessages.CannotQuantize,
                new[] { path, "group size " + Format(s.GroupSize) + " does not divide " + what + "; valid group sizes for it are " + ValidGroupSizesText(columns) },
                "Quantize", "GroupSize", true, NearestGroupSize(s.GroupSize, columns)));
        }
    }

    private static void CheckSparsify(string path, LayerSettings s, int inFeatures, bool shapeKnown, List<LayerProblem> problems)
    {
        LayerProblem Problem(LayerCheck check, string text, string? argument, bool shapeDependent) =>
            new(check, CatalogueMessages.CannotSparsify, new[] { path, text }, "Sparsify", argument, shapeDependent, null);

        if (s.HasSparsityPattern && s.HasSparsityFraction)
        {
            problems.Add(Problem(LayerCheck.SparsityFraction, "[Sparsify] sets both a fraction and N:M; use [Sparsify(fraction)] for unstructured or [Sparsify(N = 2, M = 4)] for semi-structured sparsity", null, false));
            return;
        }
        if (!s.HasSparsityPattern && !s.HasSparsityFraction)
        {
            problems.Add(Problem(LayerCheck.SparsityFraction, "[Sparsify] sets neither a fraction nor N:M; use [Sparsify(0.5)] for unstructured or [Sparsify(N = 2, M = 4)] for semi-structured sparsity", null, false));
            return;
        }
        if (s.HasSparsityFraction)
        {
            double f = s.SparsityFraction;
            if (!(f >= 0 && f < 1))
                problems.Add(Problem(LayerCheck.SparsityFraction, "the fraction of removed weights is " + f.ToString("R", CultureInfo.InvariantCulture) + ", outside [0, 1); use a value such as 0.5", "", false));
            return;
        }
        string pattern = Format(s.SparsityN) + ":" + Format(s.SparsityM);
        if (s.SparsityN <= 0 || s.SparsityN >= s.SparsityM)
            problems.Add(Problem(LayerCheck.SparsityPattern, "N:M = " + pattern + " needs 0 < N < M (keep N of every M inputs); supported patterns are " + SupportedSparsityPatternsText, s.SparsityN <= 0 ? "N" : "M", false));
        else if (!IsSupportedSparsityPattern(s.SparsityN, s.SparsityM))
            problems.Add(Problem(LayerCheck.SparsityPattern, "N:M = " + pattern + " has no kernel; supported patterns are " + SupportedSparsityPatternsText, "M", false));
        else if (shapeKnown && inFeatures % s.SparsityM != 0)
            problems.Add(Problem(LayerCheck.SparsityPattern, "the input size " + Format(inFeatures) + " is not a multiple of M = " + Format(s.SparsityM) + ", so " + pattern + " blocks cannot tile a row; use a pattern whose M divides it, or remove [Sparsify]", "M", true));
    }

    private static void CheckRank(string path, string attribute, int rank, int outFeatures, int inFeatures, bool shapeKnown, bool warnWhenNoSaving, List<LayerProblem> problems)
    {
        string[] Args(string why) => new[] { path, attribute, Format(rank), why };
        if (rank <= 0)
        {
            problems.Add(new LayerProblem(LayerCheck.Rank, CatalogueMessages.InvalidRank, Args("the rank must be at least 1"), attribute, "", false, 1));
            return;
        }
        if (!shapeKnown) return;
        int limit = System.Math.Min(outFeatures, inFeatures) - 1;
        if (rank > limit)
        {
            problems.Add(new LayerProblem(LayerCheck.Rank, CatalogueMessages.InvalidRank,
                Args(limit >= 1
                    ? "the rank must be below min(out " + Format(outFeatures) + ", in " + Format(inFeatures) + ") = " + Format(limit + 1) + "; use at most " + Format(limit)
                    : "a layer with " + Format(System.Math.Min(outFeatures, inFeatures)) + " row or column has no smaller rank; remove [" + attribute + "]"),
                attribute, "", true, limit >= 1 ? limit : null));
            return;
        }
        int saving = LargestSavingRank(outFeatures, inFeatures);
        if (warnWhenNoSaving && rank > saving)
            problems.Add(new LayerProblem(LayerCheck.RankSavesNothing, CatalogueMessages.RankSavesNothing,
                new[] { path, Format(rank), FormatBytes(LowRankBytes(outFeatures, inFeatures, rank)), FormatBytes(DenseBytes(outFeatures, inFeatures)), Format(saving) },
                attribute, "", false, saving >= 1 ? saving : null));
    }

    /// <summary>The valid group size closest to <paramref name="requested"/> for <paramref name="columns"/> inputs (0 = any), the larger on a tie.</summary>
    public static int NearestGroupSize(int requested, int columns)
    {
        int best = 0;
        long bestDistance = long.MaxValue;
        foreach (int g in columns > 0 ? ValidGroupSizes(columns) : AllGroupSizes())
        {
            long distance = System.Math.Abs((long)g - requested);
            if (distance < bestDistance || (distance == bestDistance && g > best))
            {
                best = g;
                bestDistance = distance;
            }
        }
        return best;
    }

    private static int[] AllGroupSizes()
    {
        var all = new int[SupportedGroupSizes.Length + 1];
        System.Array.Copy(SupportedGroupSizes, 0, all, 1, SupportedGroupSizes.Length);
        return all;
    }

    /// <summary>
    /// Applies OnIncompatible to a layer's shape-dependent problems: Skip keeps the layer dense, Adjust uses the
    /// suggested value (or keeps the layer dense when there is none). Returns the settings to plan with and one
    /// warning message per handled problem; with Error (or no such problems) returns <paramref name="s"/> unchanged.
    /// </summary>
    public static LayerSettings ApplyIncompatiblePolicy(LayerSettings s, IReadOnlyList<LayerProblem> problems, int policy, List<string> warnings)
    {
        if (policy == 0) return s;
        var result = s;
        foreach (var p in problems)
        {
            if (!p.IsShapeDependent || p.IsWarning) continue;
            if (result == s) result = s.Clone();
            string change;
            if (policy == 2 && p.Suggested is int value && !result.KeepDense)
            {
                switch (p.Check)
                {
                    case LayerCheck.GroupSize: result.GroupSize = value; change = "uses group size " + Format(value) + " instead"; break;
                    case LayerCheck.Rank when p.Attribute == "LowRank": result.Rank = value; change = "uses rank " + Format(value) + " instead"; break;
                    case LayerCheck.Rank: result.CorrectionRank = value; change = "uses rank " + Format(value) + " instead"; break;
                    case LayerCheck.Subspace: result.SubspaceDimension = value; change = "uses dimension " + Format(value) + " instead"; break;
                    default: change = Dense(result); break;
                }
            }
            else change = result.KeepDense ? "keeps it float32" : Dense(result);
            warnings.Add(string.Format(CultureInfo.InvariantCulture, CatalogueMessages.IncompatibleHandled, p.Message, policy == 1 ? "Skip" : "Adjust", change));
        }
        return result;

        static string Dense(LayerSettings r)
        {
            r.Quantize = r.LowRank = r.LowRankCorrection = r.Sparsify = r.Subspace = r.MixedPrecision = false;
            r.KeepDense = true;
            return "keeps it float32";
        }
    }

    internal static string FormatBytes(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    private static string Join(int[] values, string separator)
    {
        var parts = new string[values.Length];
        for (int i = 0; i < values.Length; i++) parts[i] = Format(values[i]);
        return string.Join(separator, parts);
    }
}
