using System.Globalization;
using System.Text;
using Condense.Cli.Plans;
using Condense.Compression;

namespace Condense.Cli.Scaffolding;

/// <summary>
/// Writes an annotated C# model for a file's Linear/Conv2d weights: one [Compressible] class per distinct block,
/// repeated blocks (<c>layers.0.</c>, <c>layers.1.</c>, ...) as arrays, shapes as constant arguments, and a
/// default <c>[Quantize(bits, GroupSize = ...)]</c> that is valid for each layer, so the first build checks it.
/// </summary>
public static class Scaffolder
{
    /// <summary>The generated source and what it declares.</summary>
    /// <param name="SegmentRenames">File name segments that are not C# identifiers, and the field name used instead.</param>
    public sealed record Result(string Source, IReadOnlyList<FileLayer> Layers, IReadOnlyList<ParameterLayer> ParameterLayers, int Classes, IReadOnlyList<FileTensor> NotDeclared, IReadOnlyDictionary<string, string> SegmentRenames);

    public static Result Generate(IReadOnlyList<FileTensor> tensors, string namespaceName, string className, int bits, int preferredGroup, string sourceDescription)
    {
        if (!SyntaxFacts.IsIdentifier(className)) throw new CliException(ExitCodes.Usage, $"--class '{className}' is not a C# identifier.");
        if (namespaceName.Split('.').Any(p => !SyntaxFacts.IsIdentifier(p))) throw new CliException(ExitCodes.Usage, $"--namespace '{namespaceName}' is not a C# namespace name.");
        if (!Catalogue.KernelCatalogue.IsSupportedBits(bits)) throw new CliException(ExitCodes.Usage, $"--bits {bits} has no kernel; use 2, 3, 4 or 8.");

        var layers = FileLayers.Find(tensors, out var rest);
        if (layers.Count == 0)
            throw new CliException(ExitCodes.BadFile, "the file has no Linear ([out, in]) or Conv2d ([out, in, k, k]) '.weight' tensors to declare.");
        var parameterLayers = FindParameterLayers(rest, out var others);

        // The tree of name segments; leaves are layers.
        var root = new Node("");
        foreach (var (prefix, leaf) in layers.Select(l => (l.FilePrefix, new Leaf(l, null))).Concat(parameterLayers.Select(p => (p.FilePrefix, new Leaf(null, p)))))
        {
            var node = root;
            foreach (var segment in prefix.Split('.')) node = node.Child(segment);
            if (node.Children.Count > 0 || node.Leaf is not null)
                throw new CliException(ExitCodes.BadFile, $"tensor '{prefix}.weight' is both a layer and a prefix of other layers; the scaffold cannot declare it as a field.");
            node.Leaf = leaf;
        }
        foreach (var node in Walk(root))
            if (node.Leaf is not null && node.Children.Count > 0)
                throw new CliException(ExitCodes.BadFile, $"'{node.Name}' is both a layer and a prefix of other layers; the scaffold cannot declare it as a field.");

        var renames = new List<(string[] Pattern, string To)>();
        CollectRenames(root, [], renames);
        var state = new State(className, bits, preferredGroup);
        var top = Build(root, className, isRoot: true, [], state);

        var text = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        text.AppendLine("// Scaffolded by `condense scaffold` from " + sourceDescription + ".");
        text.AppendLine(string.Create(inv, $"// {layers.Count} layers ({layers.Count(l => l.Kind == LayerKind.Linear)} Linear, {layers.Count(l => l.Kind == LayerKind.Conv2d)} Conv2d) in {state.Classes.Count} classes."));
        text.AppendLine("// Edit the attributes: the build checks every change against these shapes (diagnostics CND0001..).");
        text.AppendLine("// Forward is yours to write: the file holds the weights, not how they are wired.");
        text.AppendLine("using Condense;");
        text.AppendLine("using Condense.Nn;");
        text.AppendLine();
        text.AppendLine("namespace " + namespaceName + ";");
        // Blocks first, the model last.
        foreach (var spec in state.Classes.Where(c => c != top).Concat([top]))
        {
            text.AppendLine();
            if (spec == top && others.Count > 0)
            {
                text.AppendLine("// Tensors of the file the model does not declare (LoadWeights ignores them through WeightOptions):");
                foreach (var t in others.Take(40)) text.AppendLine($"//   {t.Name} {t.DType} {t.ShapeText}");
                if (others.Count > 40) text.AppendLine(string.Create(inv, $"//   ... and {others.Count - 40} more"));
            }
            text.AppendLine("[Compressible]");
            text.AppendLine($"public sealed partial class {spec.Name} : Module");
            text.AppendLine("{");
            foreach (var line in spec.Fields) text.AppendLine("    " + line);
            if (spec == top) AppendImportOptions(text, sourceDescription, others, renames);
            text.AppendLine("}");
        }
        var segmentRenames = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (pattern, to) in renames) segmentRenames.TryAdd(pattern[^1], to);
        return new Result(text.ToString(), layers, parameterLayers, state.Classes.Count, others, segmentRenames);
    }

    // How LoadWeights maps this file: PyTorch's numbered segments match [i] without help; only segments renamed to be
    // C# identifiers and the tensors the model does not declare need saying.
    private static void AppendImportOptions(StringBuilder text, string source, IReadOnlyList<FileTensor> others, IReadOnlyList<(string[] Pattern, string To)> renames)
    {
        text.AppendLine();
        text.AppendLine($"    /// <summary>Options for <c>LoadWeights</c> of {source.Replace("'", "", StringComparison.Ordinal)}: <c>model.LoadWeights(path, WeightOptions)</c>.</summary>");
        text.AppendLine("    public static global::Condense.Import.WeightImportOptions WeightOptions { get; } = new()");
        text.AppendLine("    {");
        if (renames.Count > 0) text.AppendLine("        Map = MapWeightName,");
        if (others.Count > 0)
        {
            text.AppendLine("        // Tensors of the file this model does not declare (buffers, constants, tables of other kinds).");
            text.AppendLine("        IgnoreExtras = [" + string.Join(", ", others.Select(t => "\"" + Escape(t.Name) + "\"")) + "],");
        }
        text.AppendLine("    };");
        if (renames.Count == 0) return;
        text.AppendLine();
        text.AppendLine("    // The file's module names that are not C# identifiers, renamed to the fields' ('*': any array index).");
        text.AppendLine("    private static string? MapWeightName(string name)");
        text.AppendLine("    {");
        text.AppendLine("        var s = name.Split('.');");
        foreach (var (pattern, to) in renames)
        {
            var conditions = pattern.Select((segment, i) => segment == "*" ? null : $"s[{i.ToString(CultureInfo.InvariantCulture)}] == \"{Escape(segment)}\"").Where(c => c is not null);
            text.AppendLine($"        if (s.Length > {pattern.Length.ToString(CultureInfo.InvariantCulture)} && {string.Join(" && ", conditions)}) s[{(pattern.Length - 1).ToString(CultureInfo.InvariantCulture)}] = \"{Escape(to)}\";");
        }
        text.AppendLine("        return string.Join('.', s);");
        text.AppendLine("    }");
    }

    // Every renamed segment, wherever its class is used: the path with array indices as '*'.
    private static void CollectRenames(Node node, List<string> pattern, List<(string[] Pattern, string To)> renames)
    {
        bool array = IsUniformArray(node);
        var fieldNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var child in node.Children)
        {
            string segment = array ? "*" : child.Name;
            if (!array)
            {
                string field = Unique(FieldName(child.Name), fieldNames);
                if (field != child.Name && !renames.Any(r => r.Pattern.SequenceEqual([.. pattern, segment])))
                    renames.Add(([.. pattern, segment], field));
            }
            CollectRenames(child, [.. pattern, segment], renames);
        }
    }

    private static string Escape(string text) => text.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    /// <summary>A LayerNorm (X.weight and X.bias [C], a name with "norm" or "ln") or an Embedding (an [N, C] "*embed*" table) the file holds.</summary>
    public sealed record ParameterLayer(string FilePrefix, string Kind, int Size, int Count);

    private static List<ParameterLayer> FindParameterLayers(IReadOnlyList<FileTensor> candidates, out IReadOnlyList<FileTensor> others)
    {
        var byName = candidates.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var found = new List<ParameterLayer>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in candidates)
        {
            if (!t.IsFloat || !t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Shape.Any(d => d <= 0 || d > int.MaxValue)) continue;
            string prefix = t.Name[..^".weight".Length];
            string last = prefix[(prefix.LastIndexOf('.') + 1)..].ToLowerInvariant();
            if (t.Shape.Length == 1 && (last.Contains("norm", StringComparison.Ordinal) || last.StartsWith("ln", StringComparison.Ordinal))
                && byName.TryGetValue(prefix + ".bias", out var bias) && bias.IsFloat && bias.Shape.Length == 1 && bias.Shape[0] == t.Shape[0])
            {
                found.Add(new ParameterLayer(prefix, "LayerNorm", (int)t.Shape[0], 0));
                used.Add(t.Name);
                used.Add(bias.Name);
            }
            else if (t.Shape.Length == 2 && (last.Contains("embed", StringComparison.Ordinal) || last is "wte" or "wpe"))
            {
                found.Add(new ParameterLayer(prefix, "Embedding", (int)t.Shape[1], (int)t.Shape[0]));
                used.Add(t.Name);
            }
        }
        others = candidates.Where(t => !used.Contains(t.Name)).ToList();
        return found;
    }

    private static IEnumerable<Node> Walk(Node node) => node.Children.SelectMany(Walk).Prepend(node);

    private sealed record Leaf(FileLayer? Layer, ParameterLayer? Parameters);

    private sealed class State(string modelName, int bits, int preferredGroup)
    {
        public string ModelName { get; } = modelName;
        public int Bits { get; } = bits;
        public int PreferredGroup { get; } = preferredGroup;
        public List<ClassSpec> Classes { get; } = [];
        public Dictionary<string, ClassSpec> ByStructure { get; } = new(StringComparer.Ordinal);
        public HashSet<string> UsedClassNames { get; } = new(StringComparer.Ordinal) { modelName };
    }

    private sealed class Node(string name)
    {
        public string Name { get; } = name;
        public Leaf? Leaf { get; set; }
        public FileLayer? Layer => Leaf?.Layer;
        public List<Node> Children { get; } = [];
        public Node Child(string segment)
        {
            var child = Children.FirstOrDefault(c => c.Name == segment);
            if (child is null) { child = new Node(segment); Children.Add(child); }
            return child;
        }
    }

    private sealed class ClassSpec(string name)
    {
        public string Name { get; } = name;
        public List<string> Fields { get; } = [];
    }

    // A subtree's names, kinds and shapes: blocks with the same structure share one class.
    private static string Structure(Node node)
    {
        if (node.Leaf?.Parameters is { } p) return string.Create(CultureInfo.InvariantCulture, $"{p.Kind}:{p.Count}x{p.Size}");
        if (node.Layer is { } l) return string.Create(CultureInfo.InvariantCulture, $"{l.Kind}:{l.OutFeatures}x{l.InFeatures}x{l.KernelSize}:{l.HasBias}");
        return "{" + string.Join(",", node.Children.Select(c => c.Name + "=" + Structure(c))) + "}";
    }

    // layers.0 .. layers.N-1, all of one structure: declared as an array of one block class.
    private static bool IsUniformArray(Node node) =>
        node.Leaf is null && node.Children.Count > 0
        && node.Children.Select((c, i) => c.Name == i.ToString(CultureInfo.InvariantCulture)).All(b => b)
        && node.Children.Select(Structure).Distinct(StringComparer.Ordinal).Count() == 1;

    private static ClassSpec Build(Node node, string className, bool isRoot, List<string> pathSegments, State state)
    {
        string key = Structure(node);
        if (!isRoot && state.ByStructure.TryGetValue(key, out var existing)) return existing;
        var spec = new ClassSpec(isRoot ? className : Unique(className, state.UsedClassNames));
        if (!isRoot) state.ByStructure[key] = spec;
        state.Classes.Add(spec);

        var inv = CultureInfo.InvariantCulture;
        var fieldNames = new HashSet<string>(StringComparer.Ordinal);
        foreach (var child in node.Children)
        {
            string field = Unique(FieldName(child.Name), fieldNames);
            string declared = SyntaxFacts.IsKeyword(field) ? "@" + field : field;
            List<string> childPath = [.. pathSegments, child.Name];
            if (child.Leaf?.Parameters is { } parameters)
            {
                spec.Fields.Add(parameters.Kind == "LayerNorm"
                    ? string.Create(inv, $"private readonly LayerNorm {declared} = new({parameters.Size});")
                    : string.Create(inv, $"private readonly Embedding {declared} = new({parameters.Count}, {parameters.Size});"));
            }
            else if (child.Layer is { } layer)
            {
                spec.Fields.Add(Attribute(layer, state.Bits, state.PreferredGroup));
                spec.Fields.Add(layer.Kind == LayerKind.Conv2d
                    ? string.Create(inv, $"private readonly Conv2d {declared} = new({layer.InChannels}, {layer.OutFeatures}, {layer.KernelSize}{(layer.HasBias ? "" : ", bias: false")});")
                    : string.Create(inv, $"private readonly Linear {declared} = new({layer.InFeatures}, {layer.OutFeatures}{(layer.HasBias ? "" : ", bias: false")});"));
            }
            else if (IsUniformArray(child) && child.Children[0].Leaf?.Parameters is { } p0)
            {
                string ctor = p0.Kind == "LayerNorm" ? string.Create(inv, $"new({p0.Size})") : string.Create(inv, $"new({p0.Count}, {p0.Size})");
                spec.Fields.Add($"private readonly {p0.Kind}[] {declared} = {{ {string.Join(", ", Enumerable.Repeat(ctor, child.Children.Count))} }};");
            }
            else if (IsUniformArray(child) && child.Children[0].Layer is { } element0)
            {
                // blocks.0 .. blocks.N-1 that are layers themselves (an nn.ModuleList of Linear): one Linear[] field,
                // its attribute applying to every element.
                spec.Fields.Add(Attribute(element0, state.Bits, state.PreferredGroup));
                string kind = element0.Kind == LayerKind.Conv2d ? "Conv2d" : "Linear";
                string ctor = element0.Kind == LayerKind.Conv2d
                    ? string.Create(inv, $"new({element0.InChannels}, {element0.OutFeatures}, {element0.KernelSize}{(element0.HasBias ? "" : ", bias: false")})")
                    : string.Create(inv, $"new({element0.InFeatures}, {element0.OutFeatures}{(element0.HasBias ? "" : ", bias: false")})");
                spec.Fields.Add($"private readonly {kind}[] {declared} = {{ {string.Join(", ", Enumerable.Repeat(ctor, child.Children.Count))} }};");
            }
            else if (IsUniformArray(child))
            {
                var element = Build(child.Children[0], state.ModelName + Pascal(childPath), false, childPath, state);
                var news = string.Join(", ", Enumerable.Repeat("new()", child.Children.Count));
                spec.Fields.Add($"private readonly {element.Name}[] {declared} = {{ {news} }};");
            }
            else
            {
                // Numbered children of different structures stay separate fields (e.g. a Sequential of mixed layers).
                var nested = Build(child, state.ModelName + Pascal(childPath), false, childPath, state);
                spec.Fields.Add($"private readonly {nested.Name} {declared} = new();");
            }
        }
        return spec;
    }

    private static string Attribute(FileLayer layer, int bits, int preferredGroup)
    {
        int group = DryRun.ValidGroupSize(layer.InFeatures, preferredGroup);
        return group == 0
            ? string.Create(CultureInfo.InvariantCulture, $"[Quantize({bits})] // {layer.InFeatures} inputs: no supported group size divides it, one group per row")
            : string.Create(CultureInfo.InvariantCulture, $"[Quantize({bits}, GroupSize = {group})]");
    }

    private static string FieldName(string segment)
    {
        var b = new StringBuilder();
        foreach (char c in segment) b.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        if (b.Length == 0 || char.IsAsciiDigit(b[0])) b.Insert(0, '_');
        return b.ToString();
    }

    private static string Pascal(IEnumerable<string> segments)
    {
        var b = new StringBuilder();
        foreach (var segment in segments)
            foreach (var word in segment.Split(['_', '-', ' ', '.'], StringSplitOptions.RemoveEmptyEntries))
                if (!word.All(char.IsAsciiDigit)) b.Append(char.ToUpperInvariant(word[0])).Append(FieldName(word[1..]).TrimStart('_'));
        return b.Length == 0 ? "Block" : b.ToString();
    }

    private static string Unique(string name, HashSet<string> used)
    {
        string candidate = name;
        for (int i = 2; !used.Add(candidate); i++) candidate = name + i.ToString(CultureInfo.InvariantCulture);
        return candidate;
    }
}

/// <summary>The few C# lexical facts the scaffold needs (the tool does not depend on Roslyn).</summary>
internal static class SyntaxFacts
{
    private static readonly HashSet<string> Keywords = new(StringComparer.Ordinal)
    {
        "abstract", "as", "base", "bool", "break", "byte", "case", "catch", "char", "checked", "class", "const", "continue",
        "decimal", "default", "delegate", "do", "double", "else", "enum", "event", "explicit", "extern", "false", "finally",
        "fixed", "float", "for", "foreach", "goto", "if", "implicit", "in", "int", "interface", "internal", "is", "lock",
        "long", "namespace", "new", "null", "object", "operator", "out", "override", "params", "private", "protected",
        "public", "readonly", "ref", "return", "sbyte", "sealed", "short", "sizeof", "stackalloc", "static", "string",
        "struct", "switch", "this", "throw", "true", "try", "typeof", "uint", "ulong", "unchecked", "unsafe", "ushort",
        "using", "virtual", "void", "volatile", "while",
    };

    public static bool IsKeyword(string name) => Keywords.Contains(name);

    public static bool IsIdentifier(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') && !IsKeyword(name);
}
