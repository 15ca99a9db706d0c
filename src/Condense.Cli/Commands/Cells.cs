using Spectre.Console;
using Spectre.Console.Rendering;

namespace Condense.Cli.Commands;

/// <summary>Table rows of plain text: names and shapes hold '[' and ']', which Spectre would read as markup.</summary>
internal static class Cells
{
    public static void AddRow(Table table, params string[] cells) =>
        table.AddRow(cells.Select(c => (IRenderable)new Text(c)).ToArray());
}
