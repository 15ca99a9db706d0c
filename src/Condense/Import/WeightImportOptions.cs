using System.Text.RegularExpressions;

namespace Condense.Import;

/// <summary>
/// How <see cref="WeightImport"/> (and a model's generated <c>LoadWeights</c>) matches a file's tensor names to the
/// model's. Each file name goes through, in order: <see cref="StripPrefix"/>, <see cref="Renames"/>, <see cref="Map"/>;
/// the result is compared with the model's names with <c>[i]</c> and <c>.i</c> treated alike, so PyTorch's
/// <c>blocks.2.up.weight</c> and Condense's <c>blocks[2].up.weight</c> match without options.
/// </summary>
public sealed class WeightImportOptions
{
    /// <summary>Removed from the front of every file name that starts with it, e.g. <c>"bert."</c> or <c>"model."</c>.</summary>
    public string? StripPrefix { get; init; }

    /// <summary>
    /// Prefix renames, file side to model side, e.g. <c>{ ["encoder.layer."] = "blocks." }</c>. The longest key that
    /// starts a name at a segment boundary (the key ends with <c>.</c>, or the name continues with <c>.</c> or ends there)
    /// is replaced; a full name is a key too.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Renames { get; init; }

    /// <summary>
    /// Maps a file name (after <see cref="StripPrefix"/> and <see cref="Renames"/>) to the model's name; return null to
    /// skip the tensor (it is then neither loaded nor reported as unexpected).
    /// </summary>
    public Func<string, string?>? Map { get; init; }

    /// <summary>
    /// File tensors that may be left over without an error (PyTorch buffers, heads the model drops): exact names or
    /// patterns where <c>*</c> matches any run of characters, e.g. <c>"*.num_batches_tracked"</c>, <c>"pooler.*"</c>.
    /// Matched against the file's name and the mapped name.
    /// </summary>
    public IReadOnlyList<string> IgnoreExtras { get; init; } = [];

    /// <summary>A predicate over file names (stored and mapped) with the same meaning as <see cref="IgnoreExtras"/>.</summary>
    public Func<string, bool>? IgnoreExtra { get; init; }

    /// <summary>Ignores every left-over file tensor (PyTorch's <c>strict=False</c> for extras); the report lists them.</summary>
    public bool IgnoreAllExtras { get; init; }

    /// <summary>
    /// Model tensors the file may lack, which then keep their current values (e.g. a new classification head): names
    /// or <c>*</c> patterns in either convention (<c>blocks[0].*</c> or <c>blocks.0.*</c>).
    /// </summary>
    public IReadOnlyList<string> AllowMissing { get; init; } = [];

    /// <summary>safetensors tensors stored [in, out] (e.g. GPT-2's Conv1D weights): transposed on import. ONNX layouts come from the graph.</summary>
    public Func<string, bool>? TransposeWhere { get; init; }

    /// <summary>The file's format; <see cref="WeightFileFormat.Auto"/> detects it from the content.</summary>
    public WeightFileFormat Format { get; init; }

    internal string MapName(string fileName)
    {
        string name = fileName;
        if (!string.IsNullOrEmpty(StripPrefix) && name.StartsWith(StripPrefix, StringComparison.Ordinal))
            name = name[StripPrefix.Length..];
        if (Renames is { Count: > 0 })
        {
            string? best = null;
            foreach (var key in Renames.Keys)
                if (key.Length > 0 && StartsAtBoundary(name, key) && (best is null || key.Length > best.Length))
                    best = key;
            if (best is not null) name = Renames[best] + name[best.Length..];
        }
        return name;
    }

    private static bool StartsAtBoundary(string name, string key) =>
        name.StartsWith(key, StringComparison.Ordinal)
        && (key.EndsWith('.') || name.Length == key.Length || name[key.Length] == '.' || name[key.Length] == '[');

    internal bool IsIgnoredExtra(string stored, string mapped) =>
        IgnoreAllExtras
        || (IgnoreExtra is { } predicate && (predicate(stored) || predicate(mapped)))
        || IgnoreExtras.Any(p => NamePattern.Matches(p, stored) || NamePattern.Matches(p, mapped));

    internal bool IsAllowedMissing(string modelName) =>
        AllowMissing.Any(p => NamePattern.Matches(p, modelName) || NamePattern.Matches(NamePattern.Canonical(p), NamePattern.Canonical(modelName)));
}

/// <summary>Name patterns (<c>*</c> wildcards) and the canonical form in which <c>[i]</c> and <c>.i</c> are the same.</summary>
internal static class NamePattern
{
    /// <summary><c>blocks[2].up.weight</c> -&gt; <c>blocks.2.up.weight</c>: Condense's array index written the PyTorch way.</summary>
    public static string Canonical(string name)
    {
        if (name.IndexOf('[', StringComparison.Ordinal) < 0) return name;
        var text = new System.Text.StringBuilder(name.Length);
        foreach (var c in name)
        {
            if (c == '[') text.Append('.');
            else if (c != ']') text.Append(c);
        }
        return text.ToString();
    }

    public static bool Matches(string pattern, string name)
    {
        if (pattern.IndexOf('*', StringComparison.Ordinal) < 0) return string.Equals(pattern, name, StringComparison.Ordinal);
        var regex = "^" + string.Join(".*", pattern.Split('*').Select(Regex.Escape)) + "$";
        return Regex.IsMatch(name, regex, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
    }
}
