using System;
using System.Text;

namespace Condense.Generators.Emitting;

/// <summary>A minimal writer for generated C#: indentation, <c>'\n'</c> newlines, braces as disposable blocks.</summary>
internal sealed class IndentedWriter
{
    private const string IndentUnit = "    ";
    private readonly StringBuilder builder = new();
    private int depth;

    /// <summary>Writes one line at the current indentation (an empty line has no trailing spaces).</summary>
    public void WriteLine(string line = "")
    {
        if (line.Length > 0)
            for (int i = 0; i < depth; i++) builder.Append(IndentUnit);
        builder.Append(line).Append('\n');
    }

    /// <summary>Writes every line of a (raw string literal) block at the current indentation.</summary>
    public void WriteLines(string text)
    {
        foreach (var line in text.Replace("\r\n", "\n").Split('\n'))
            WriteLine(line);
    }

    /// <summary>Writes <c>{</c>, indents, and writes the closing text (default <c>}</c>) when disposed.</summary>
    public Block WriteBlock(string closing = "}")
    {
        WriteLine("{");
        depth++;
        return new Block(this, closing);
    }

    public void Indent() => depth++;

    public void Unindent() => depth--;

    public override string ToString() => builder.ToString();

    public readonly struct Block : IDisposable
    {
        private readonly IndentedWriter writer;
        private readonly string closing;

        public Block(IndentedWriter writer, string closing)
        {
            this.writer = writer;
            this.closing = closing;
        }

        public void Dispose()
        {
            writer.depth--;
            writer.WriteLine(closing);
        }
    }
}
