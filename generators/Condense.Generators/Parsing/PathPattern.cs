using System.Collections.Generic;
using System.Globalization;

namespace Condense.Generators.Parsing;

/// <summary>
/// The layer-path glob of <c>[Override]</c>: segments separated by '.', indices in brackets. <c>*</c> matches one
/// segment (a name or an index), <c>**</c> any number of segments, <c>[a..b]</c> an inclusive index range,
/// <c>[n]</c> one index, <c>[*]</c> any index. Anything else must match exactly (ordinal).
/// </summary>
internal sealed class PathPattern
{
    private readonly string[] tokens;

    private PathPattern(string[] tokens) => this.tokens = tokens;

    /// <summary>Parses a pattern, or returns null with the reason.</summary>
    public static PathPattern? Parse(string pattern, out string? problem)
    {
        var tokens = Tokenize(pattern, out problem);
        if (tokens is null) return null;
        foreach (var token in tokens)
        {
            if (token[0] == '[')
            {
                if (!TryRange(token, out _, out _))
                {
                    problem = "'" + token + "' is not an index: use [3], [0..5] or [*]";
                    return null;
                }
            }
            else if (token != "*" && token != "**" && token.IndexOf('*') >= 0)
            {
                problem = "'" + token + "' mixes '*' with a name: '*' stands for a whole segment";
                return null;
            }
        }
        return new PathPattern(tokens.ToArray());
    }

    /// <summary>Whether the layer path matches the whole pattern.</summary>
    public bool Matches(string path)
    {
        var pathTokens = Tokenize(path, out _);
        return pathTokens is not null && Match(0, pathTokens, 0);
    }

    private bool Match(int p, List<string> path, int t)
    {
        while (true)
        {
            if (p == tokens.Length) return t == path.Count;
            string token = tokens[p];
            if (token == "**")
            {
                for (int skip = t; skip <= path.Count; skip++)
                    if (Match(p + 1, path, skip)) return true;
                return false;
            }
            if (t == path.Count) return false;
            string segment = path[t];
            bool ok = token == "*"
                || (token[0] == '[' && segment[0] == '[' && InRange(token, segment))
                || string.Equals(token, segment, System.StringComparison.Ordinal);
            if (!ok) return false;
            p++;
            t++;
        }
    }

    private static bool InRange(string token, string segment)
    {
        if (token == "[*]") return true;
        TryRange(token, out int low, out int high);
        return int.TryParse(segment.Substring(1, segment.Length - 2), NumberStyles.None, CultureInfo.InvariantCulture, out int index)
               && index >= low && index <= high;
    }

    private static bool TryRange(string token, out int low, out int high)
    {
        low = high = 0;
        string inner = token.Substring(1, token.Length - 2);
        if (inner == "*") return true;
        int dots = inner.IndexOf("..", System.StringComparison.Ordinal);
        if (dots < 0) return int.TryParse(inner, NumberStyles.None, CultureInfo.InvariantCulture, out low) && (high = low) >= 0;
        return int.TryParse(inner.Substring(0, dots), NumberStyles.None, CultureInfo.InvariantCulture, out low)
               && int.TryParse(inner.Substring(dots + 2), NumberStyles.None, CultureInfo.InvariantCulture, out high)
               && low <= high;
    }

    private static List<string>? Tokenize(string text, out string? problem)
    {
        problem = null;
        var tokens = new List<string>();
        int i = 0;
        if (string.IsNullOrEmpty(text))
        {
            problem = "the pattern is empty";
            return null;
        }
        while (i < text.Length)
        {
            char c = text[i];
            if (c == '[')
            {
                int close = text.IndexOf(']', i);
                if (close < 0)
                {
                    problem = "'[' at position " + i.ToString(CultureInfo.InvariantCulture) + " is not closed";
                    return null;
                }
                tokens.Add(text.Substring(i, close - i + 1));
                i = close + 1;
                if (i < text.Length && text[i] == '.') i++;
                if (i == text.Length && text[text.Length - 1] == '.') { problem = "the pattern ends with '.'"; return null; }
                continue;
            }
            int start = i;
            while (i < text.Length && text[i] != '.' && text[i] != '[')
            {
                char n = text[i];
                if (!(char.IsLetterOrDigit(n) || n == '_' || n == '*' || n == '@'))
                {
                    problem = "'" + n.ToString() + "' at position " + i.ToString(CultureInfo.InvariantCulture) + " cannot appear in a layer path";
                    return null;
                }
                i++;
            }
            if (i == start)
            {
                problem = "the pattern has an empty segment at position " + i.ToString(CultureInfo.InvariantCulture);
                return null;
            }
            tokens.Add(text.Substring(start, i - start));
            if (i < text.Length && text[i] == '.')
            {
                i++;
                if (i == text.Length) { problem = "the pattern ends with '.'"; return null; }
            }
        }
        return tokens;
    }

    /// <summary>Edit distance between two strings, for "nearest paths" suggestions.</summary>
    public static int Distance(string a, string b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) previous[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            current[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int cost = a[i - 1] == b[j - 1] ? 0 : 1;
                current[j] = System.Math.Min(System.Math.Min(current[j - 1] + 1, previous[j] + 1), previous[j - 1] + cost);
            }
            var swap = previous; previous = current; current = swap;
        }
        return previous[b.Length];
    }
}
