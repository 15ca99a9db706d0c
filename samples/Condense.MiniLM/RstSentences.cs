using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Condense.MiniLM;

/// <summary>
/// Prose sentences from reStructuredText sources (Debian's <c>python3.11-doc</c> ships the Python documentation's under
/// <see cref="DefaultDirectory"/>): code and literal blocks, doctests, tables, section titles, field lists, comments and the
/// bodies of code-like directives are skipped; inline markup is reduced to its text; paragraphs are split into
/// sentences; only sentences of reasonable length that look like prose are kept. Everything is deterministic: files in
/// ordinal path order, sentences in file order, duplicates dropped, the evaluation/calibration split by a fixed hash.
/// </summary>
public static partial class RstSentences
{
    /// <summary>Where Debian's python3.11-doc puts the documentation's reStructuredText sources.</summary>
    public const string DefaultDirectory = "/usr/share/doc/python3.11/html/_sources";

    /// <summary>Sentences kept have this many words at least ...</summary>
    public const int MinWords = 6;

    /// <summary>... and at most this many (and at most <see cref="MaxChars"/> characters).</summary>
    public const int MaxWords = 40;

    /// <summary>Longest sentence kept, in characters.</summary>
    public const int MaxChars = 280;

    // Directives whose body is prose (API descriptions, admonitions, version notes): the directive line and its
    // ":option:" lines are skipped, the body is read. Every other directive (code-block, doctest, productionlist,
    // toctree, index, list-table, literalinclude, raw, math, comments, ...) is skipped with its whole body.
    private static readonly HashSet<string> s_proseDirectives = new(StringComparer.Ordinal)
    {
        "method", "function", "attribute", "data", "class", "exception", "decorator", "classmethod", "staticmethod",
        "abstractmethod", "coroutinemethod", "coroutinefunction", "decoratormethod", "describe", "opcode", "pdbcommand",
        "cmdoption", "option", "envvar", "c:function", "c:member", "c:type", "c:var", "c:macro", "c:struct",
        "versionadded", "versionchanged", "deprecated", "deprecated-removed", "note", "warning", "seealso", "important",
        "tip", "hint", "caution", "attention", "danger", "error", "impl-detail", "admonition", "topic", "sidebar",
    };

    // Abbreviations after which a period does not end a sentence.
    private static readonly HashSet<string> s_abbreviations = new(StringComparer.OrdinalIgnoreCase)
    {
        "e.g", "i.e", "etc", "vs", "cf", "mr", "mrs", "ms", "dr", "prof", "no", "approx", "fig", "ex", "al", "resp", "st", "jr", "sr", "inc", "ltd", "co",
    };

    /// <summary>The sentences of one reStructuredText document, in order (duplicates kept).</summary>
    public static IEnumerable<string> FromText(string rst)
    {
        ArgumentNullException.ThrowIfNull(rst);
        foreach (var paragraph in Paragraphs(rst.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n')))
        {
            string text = StripMarkup(paragraph);
            if (text.Length == 0) continue;
            foreach (var sentence in Split(text))
                if (IsProse(sentence)) yield return sentence;
        }
    }

    /// <summary>
    /// Every distinct sentence of the <c>*.rst.txt</c> / <c>*.rst</c> / <c>*.txt</c> files under <paramref name="directory"/>
    /// (recursively, ordinal path order), first occurrence kept.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    public static IReadOnlyList<string> FromDirectory(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"The reStructuredText directory '{directory}' does not exist (Debian: apt-get install python3.11-doc).");
        var files = Directory.GetFiles(directory, "*.txt", SearchOption.AllDirectories)
            .Concat(Directory.GetFiles(directory, "*.rst", SearchOption.AllDirectories))
            .Select(f => Path.GetRelativePath(directory, f).Replace('\\', '/'))
            .Distinct(StringComparer.Ordinal)
            .OrderBy(f => f, StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var result = new List<string>();
        foreach (var file in files)
            foreach (var sentence in FromText(File.ReadAllText(Path.Combine(directory, file))))
                if (seen.Add(sentence)) result.Add(sentence);
        return result;
    }

    /// <summary>
    /// Splits distinct sentences into two disjoint sets by a fixed 64-bit FNV-1a hash of each sentence's UTF-8 bytes (not
    /// the process-randomized string hash): even hashes are the evaluation pool, odd ones the calibration pool; each set
    /// is the first <paramref name="evaluationCount"/> / <paramref name="calibrationCount"/> of its pool in hash order,
    /// so the pick is spread over the whole corpus and the same on every machine.
    /// </summary>
    /// <exception cref="ArgumentException">The corpus has fewer sentences than asked for (the counts are named).</exception>
    public static (string[] Evaluation, string[] Calibration) SplitHeldOut(IReadOnlyList<string> sentences, int evaluationCount, int calibrationCount)
    {
        ArgumentNullException.ThrowIfNull(sentences);
        ArgumentOutOfRangeException.ThrowIfNegative(evaluationCount);
        ArgumentOutOfRangeException.ThrowIfNegative(calibrationCount);
        var hashed = sentences.Distinct(StringComparer.Ordinal).Select(s => (Sentence: s, Hash: Fnv1a(s)))
            .OrderBy(p => p.Hash).ThenBy(p => p.Sentence, StringComparer.Ordinal).ToArray();
        var evaluation = hashed.Where(p => (p.Hash & 1) == 0).Select(p => p.Sentence).Take(evaluationCount).ToArray();
        var calibration = hashed.Where(p => (p.Hash & 1) == 1).Select(p => p.Sentence).Take(calibrationCount).ToArray();
        if (evaluation.Length < evaluationCount || calibration.Length < calibrationCount)
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"the corpus has {hashed.Length} distinct sentences: {evaluation.Length} for evaluation (asked {evaluationCount}) and {calibration.Length} for calibration (asked {calibrationCount}); ask for fewer"), nameof(sentences));
        return (evaluation, calibration);
    }

    /// <summary>64-bit FNV-1a of the UTF-8 bytes.</summary>
    public static ulong Fnv1a(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ulong hash = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return hash;
    }

    // Prose paragraphs: runs of non-blank lines at one indentation, joined with spaces. Skipped: literal blocks after
    // "::", directives other than prose ones (with their bodies), comments, titles and their over/underlines,
    // transitions, tables, doctests, field lists. List items start their own paragraph, their marker removed.
    private static IEnumerable<string> Paragraphs(string[] lines)
    {
        var current = new StringBuilder();
        int currentIndent = -1;
        int skipDeeperThan = -1; // lines indented more than this belong to a skipped block
        bool skipUntilBlank = false; // a doctest or table runs to the next blank line
        int i = 0;
        while (i < lines.Length)
        {
            string line = lines[i].TrimEnd();
            if (line.Length == 0)
            {
                skipUntilBlank = false;
                if (Flush() is { } p) yield return p;
                i++;
                continue;
            }
            int indent = Indent(line);
            string body = line[indent..];
            if (skipUntilBlank) { i++; continue; }
            if (skipDeeperThan >= 0)
            {
                if (indent > skipDeeperThan) { i++; continue; }
                skipDeeperThan = -1;
            }

            if (body.StartsWith("..", StringComparison.Ordinal))
            {
                if (Flush() is { } p) yield return p;
                var directive = DirectiveRegex().Match(body);
                if (directive.Success && s_proseDirectives.Contains(directive.Groups[1].Value))
                {
                    // Skip the directive's argument lines and options; the body that follows is prose.
                    i++;
                    while (i < lines.Length && lines[i].Trim().Length > 0 && Indent(lines[i]) > indent && lines[i].Trim().StartsWith(':')) i++;
                    continue;
                }
                skipDeeperThan = indent;
                i++;
                continue;
            }
            if (IsTableBorder(body))
            {
                // A simple table ("=====  =====" borders): its rows are cells, not prose.
                if (Flush() is { } p) yield return p;
                skipUntilBlank = true;
                i++;
                continue;
            }
            if (IsAdornment(body) || body.StartsWith(">>>", StringComparison.Ordinal) || body.StartsWith('|') || body.StartsWith('+')
                || FieldRegex().IsMatch(body))
            {
                // Title underlines make the previous line a title: drop the paragraph being built.
                if (IsAdornment(body)) { current.Clear(); currentIndent = -1; }
                else if (Flush() is { } p) yield return p;
                if (body.StartsWith(">>>", StringComparison.Ordinal) || body.StartsWith('|') || body.StartsWith('+')) skipUntilBlank = true;
                else if (FieldRegex().IsMatch(body)) skipDeeperThan = indent;
                i++;
                continue;
            }
            var item = ListItemRegex().Match(body);
            if (item.Success || indent != currentIndent)
            {
                if (Flush() is { } p) yield return p;
                currentIndent = indent;
                if (item.Success) body = body[item.Length..];
            }
            if (current.Length > 0) current.Append(' ');
            current.Append(body);
            if (body.EndsWith("::", StringComparison.Ordinal))
            {
                // "text::" is "text:" followed by a literal block; a lone "::" is nothing.
                current.Length -= 1;
                if (body == "::") current.Length = Math.Max(0, current.Length - 1);
                if (Flush() is { } p) yield return p;
                skipDeeperThan = indent;
            }
            i++;
        }
        if (Flush() is { } last) yield return last;

        string? Flush()
        {
            string? text = current.Length > 0 ? current.ToString() : null;
            current.Clear();
            currentIndent = -1;
            return text;
        }
    }

    private static int Indent(string line)
    {
        int n = 0;
        while (n < line.Length && (line[n] == ' ' || line[n] == '\t')) n++;
        return n;
    }

    // A title over/underline or transition: one punctuation character repeated (at least 3), e.g. "=====", "-----".
    private static bool IsAdornment(string body) =>
        body.Length >= 3 && !char.IsLetterOrDigit(body[0]) && !char.IsWhiteSpace(body[0]) && body.All(c => c == body[0]);

    // A simple table's border: runs of '=' (or '-') separated by spaces, e.g. "=====  ======".
    private static bool IsTableBorder(string body) =>
        body.Length >= 3 && (body[0] == '=' || body[0] == '-') && body.Contains(' ', StringComparison.Ordinal) && body.All(c => c == body[0] || c == ' ');

    // Inline markup to plain text: roles (:func:`~os.path.join` is "join", :ref:`title <target>` is "title"), ``literals``,
    // hyperlinks `text <url>`_, *emphasis*, **strong**, footnote references, escapes.
    private static string StripMarkup(string text)
    {
        text = FootnoteRegex().Replace(text, "");
        text = RoleRegex().Replace(text, m => RoleText(m.Groups[1].Value));
        text = LinkRegex().Replace(text, m => m.Groups[1].Value.TrimEnd());
        text = ReferenceRegex().Replace(text, m => m.Groups[1].Value);
        text = text.Replace("``", "", StringComparison.Ordinal);
        text = StrongRegex().Replace(text, m => m.Groups[1].Value);
        text = EmphasisRegex().Replace(text, m => m.Groups[1].Value);
        text = text.Replace("\\ ", "", StringComparison.Ordinal).Replace("\\", "", StringComparison.Ordinal);
        return SpacesRegex().Replace(text, " ").Trim();

        static string RoleText(string content)
        {
            var titled = TitledTargetRegex().Match(content);
            if (titled.Success) return titled.Groups[1].Value.TrimEnd();
            content = content.TrimStart('!');
            if (content.StartsWith('~'))
            {
                content = content[1..];
                int dot = content.LastIndexOf('.');
                if (dot >= 0 && dot < content.Length - 1) content = content[(dot + 1)..];
            }
            return content;
        }
    }

    // Sentence ends: '.', '!' or '?' (optionally followed by a closing quote or parenthesis), then a space and an upper-case
    // letter, digit or opening quote; not after an abbreviation or a single-letter initial.
    private static IEnumerable<string> Split(string text)
    {
        int start = 0;
        foreach (Match m in BoundaryRegex().Matches(text))
        {
            int end = m.Index + m.Length; // just after the punctuation (and closing quote)
            string before = text[start..m.Index];
            int space = before.LastIndexOf(' ');
            string lastWord = before[(space + 1)..].TrimStart('(', '"', '\'');
            if (text[m.Index] == '.' && (s_abbreviations.Contains(lastWord) || (lastWord.Length == 1 && char.IsLetter(lastWord[0])) || lastWord.EndsWith(".e", StringComparison.Ordinal) || lastWord.EndsWith(".g", StringComparison.Ordinal)))
                continue;
            yield return text[start..end].Trim();
            start = end;
        }
        if (start < text.Length) yield return text[start..].Trim();
    }

    // Prose: starts with an upper-case letter, ends with . ! or ?, MinWords..MaxWords words, no markup left over
    // (backquotes, role colons, |substitutions|, trailing underscores, angle brackets, braces), mostly letters.
    private static bool IsProse(string sentence)
    {
        if (sentence.Length == 0 || sentence.Length > MaxChars || !char.IsUpper(sentence[0])) return false;
        char last = sentence[^1];
        if (last is not ('.' or '!' or '?')) return false;
        if (sentence.EndsWith("...", StringComparison.Ordinal) || sentence.EndsWith(":.", StringComparison.Ordinal)) return false;
        int words = sentence.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        if (words < MinWords || words > MaxWords) return false;
        if (sentence.IndexOfAny(['`', '|', '<', '>', '{', '}', '*', '=', '#', '[', ']', '\t']) >= 0) return false;
        if (sentence.Contains("::", StringComparison.Ordinal) || sentence.Contains(":func", StringComparison.Ordinal) || LeftoverRoleRegex().IsMatch(sentence)) return false;
        if (sentence.Contains("_ ", StringComparison.Ordinal) || sentence.Contains("__", StringComparison.Ordinal)) return false;
        int letters = sentence.Count(c => char.IsLetter(c) || c == ' ');
        return letters >= 0.85 * sentence.Length && sentence.All(c => c < 0x2000 || char.IsLetter(c));
    }

    [GeneratedRegex(@"^\.\.\s+([A-Za-z][\w:-]*)::")]
    private static partial Regex DirectiveRegex();

    [GeneratedRegex(@"^:[^:\s][^:]*:(\s|$)")]
    private static partial Regex FieldRegex();

    [GeneratedRegex(@"^([-*+•]|\d+\.|#\.|\(\d+\)|[a-z]\.)\s+")]
    private static partial Regex ListItemRegex();

    [GeneratedRegex(@"\s?\[(#[\w-]*|\d+|\*)\]_")]
    private static partial Regex FootnoteRegex();

    [GeneratedRegex(@":[\w:.+-]+:`([^`]*)`")]
    private static partial Regex RoleRegex();

    [GeneratedRegex(@"^(.*?)\s*<[^<>]*>$", RegexOptions.Singleline)]
    private static partial Regex TitledTargetRegex();

    [GeneratedRegex(@"`([^`<]*)<[^`>]*>`__?")]
    private static partial Regex LinkRegex();

    [GeneratedRegex(@"(?<!`)`([^`]+)`__?")]
    private static partial Regex ReferenceRegex();

    [GeneratedRegex(@"\*\*([^*]+)\*\*")]
    private static partial Regex StrongRegex();

    [GeneratedRegex(@"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])")]
    private static partial Regex EmphasisRegex();

    [GeneratedRegex(@"\s+")]
    private static partial Regex SpacesRegex();

    [GeneratedRegex(@"[.!?][""')]?(?=\s+[""'(]?[A-Z0-9])")]
    private static partial Regex BoundaryRegex();

    [GeneratedRegex(@"(^|\s):\w")]
    private static partial Regex LeftoverRoleRegex();
}
