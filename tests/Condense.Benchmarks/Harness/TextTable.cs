using System.Text;

namespace Condense.Benchmarks.Harness;

/// <summary>A plain-text table: the first column left-aligned, the others right-aligned, and a CSV form.</summary>
internal sealed class TextTable(params string[] headers)
{
    private readonly List<string[]> _rows = [];

    public void Add(params string[] cells) => _rows.Add(cells);

    public string Render(int leftAligned = 1)
    {
        var widths = headers.Select((h, i) => Math.Max(h.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r[i].Length))).ToArray();
        var text = new StringBuilder();
        void Line(string[] cells) =>
            text.AppendLine(string.Join("  ", cells.Select((c, i) => i < leftAligned ? c.PadRight(widths[i]) : c.PadLeft(widths[i]))).TrimEnd());
        Line(headers);
        text.AppendLine(new string('-', widths.Sum() + 2 * (widths.Length - 1)));
        foreach (var row in _rows) Line(row);
        return text.ToString();
    }

    public string ToCsv()
    {
        static string Escape(string cell) => cell.Contains(',') || cell.Contains('"') ? "\"" + cell.Replace("\"", "\"\"") + "\"" : cell;
        var text = new StringBuilder();
        foreach (var row in _rows.Prepend(headers)) text.AppendLine(string.Join(",", row.Select(Escape)));
        return text.ToString();
    }
}

/// <summary>Number formats shared by the tables.</summary>
internal static class Format
{
    public static string Time(double seconds) =>
        double.IsNaN(seconds) ? "-" :
        seconds < 1e-3 ? $"{seconds * 1e6:0.0} us" :
        seconds < 1 ? $"{seconds * 1e3:0.000} ms" : $"{seconds:0.000} s";

    public static string Bytes(long bytes) =>
        bytes >= 1_000_000 ? $"{bytes / 1e6:0.0} MB" : bytes >= 1_000 ? $"{bytes / 1e3:0.0} kB" : $"{bytes} B";

    public static string Number(double value, string format) => double.IsNaN(value) ? "-" : value.ToString(format, System.Globalization.CultureInfo.InvariantCulture);
}
