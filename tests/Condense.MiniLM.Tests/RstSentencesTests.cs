using Condense.MiniLM;

namespace Condense.MiniLM.Tests;

/// <summary>The reStructuredText sentence splitter behind the python3.11-doc evaluation set.</summary>
public sealed class RstSentencesTests
{
    private const string Document = """
        .. _tut-intro:

        ***********************
        An Informal Introduction
        ***********************

        The :keyword:`for` statement in Python differs a bit from what you may be used
        to in C or Pascal.  Python's :func:`~os.path.join` accepts any number of path
        components, e.g. several directory names.  See :ref:`the tutorial section <tut-for>` for more details!

        For example::

           >>> for w in ['cat', 'window']:
           ...     print(w, len(w))

           This indented line belongs to the literal block and is not prose.

        Code that modifies a collection while iterating over it can be tricky to get right.

        .. code-block:: python

           Nothing in this directive body should ever be read as a sentence.

        .. note::
           The note's body is prose and should be kept as one sentence.

        .. function:: loads(s, *, cls=None)

           Deserialize *s* (a ``str`` instance containing a JSON document) to a Python object.

        +------------------------+------------+
        | Header one is in table | Header two |
        +------------------------+------------+

        =====================  ==========
        A simple table row     with cells
        =====================  ==========

        :param name: The parameter named here is a field list entry, not prose.

        * A list item that is a complete sentence counts as one too.
        * Short item.

        Read more on `the JSON site <https://json.org>`_ about **strict** parsing rules today.
        """;

    [Fact]
    public void Keeps_prose_sentences_with_markup_reduced_to_text_and_skips_everything_else()
    {
        var sentences = RstSentences.FromText(Document).ToArray();
        Assert.Equal(
        [
            "The for statement in Python differs a bit from what you may be used to in C or Pascal.",
            "Python's join accepts any number of path components, e.g. several directory names.",
            "See the tutorial section for more details!",
            "Code that modifies a collection while iterating over it can be tricky to get right.",
            "The note's body is prose and should be kept as one sentence.",
            "Deserialize s (a str instance containing a JSON document) to a Python object.",
            "A list item that is a complete sentence counts as one too.",
            "Read more on the JSON site about strict parsing rules today.",
        ], sentences);
    }

    [Fact]
    public void Skips_sentences_that_are_too_short_or_too_long()
    {
        string longSentence = "This " + string.Join(' ', Enumerable.Repeat("word", RstSentences.MaxWords)) + ".";
        var sentences = RstSentences.FromText($"Too short here.\n\n{longSentence}\n\nThis one has exactly enough words to count.\n").ToArray();
        Assert.Equal(["This one has exactly enough words to count."], sentences);
    }

    [Fact]
    public void Held_out_split_is_disjoint_deterministic_and_independent_of_input_order()
    {
        var corpus = Enumerable.Range(0, 400).Select(i => $"Sentence number {i} is written here for the split test.").ToArray();
        var (evaluation, calibration) = RstSentences.SplitHeldOut(corpus, 150, 100);
        Assert.Equal(150, evaluation.Length);
        Assert.Equal(100, calibration.Length);
        Assert.Empty(evaluation.Intersect(calibration));
        var (again, againCalibration) = RstSentences.SplitHeldOut(corpus.Reverse().ToArray(), 150, 100);
        Assert.Equal(evaluation, again);
        Assert.Equal(calibration, againCalibration);
        // Spread over the corpus, not its first sentences.
        var numbers = evaluation.Select(s => int.Parse(s.Split(' ')[2], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.Contains(numbers, n => n < 100);
        Assert.Contains(numbers, n => n >= 300);
        var error = Assert.Throws<ArgumentException>(() => RstSentences.SplitHeldOut(corpus, 390, 10));
        Assert.Contains("400 distinct sentences", error.Message, StringComparison.Ordinal);
        Assert.Equal(0xcbf29ce484222325UL, RstSentences.Fnv1a(""));
        Assert.Equal(0xaf63dc4c8601ec8cUL, RstSentences.Fnv1a("a"));
    }

    [Fact]
    public void Reads_a_directory_in_path_order_without_duplicates()
    {
        string dir = Directory.CreateTempSubdirectory("rst-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(dir, "b"));
            File.WriteAllText(Path.Combine(dir, "b", "second.rst.txt"), "The second file has this sentence in it.\n\nThe first file has this sentence in it too.\n");
            File.WriteAllText(Path.Combine(dir, "a.rst.txt"), "The first file has this sentence in it too.\n");
            Assert.Equal(["The first file has this sentence in it too.", "The second file has this sentence in it."], RstSentences.FromDirectory(dir));
            Assert.Throws<DirectoryNotFoundException>(() => RstSentences.FromDirectory(Path.Combine(dir, "missing")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

/// <summary>The real corpus, where Debian's python3.11-doc is installed (.ci/run installs it).</summary>
public sealed class PythonDocCorpusTests
{
    [Fact]
    public void Python_doc_gives_over_a_thousand_held_out_prose_sentences_when_installed()
    {
        if (!Directory.Exists(RstSentences.DefaultDirectory)) return; // the sample falls back to its bundled sentences there
        var all = RstSentences.FromDirectory(RstSentences.DefaultDirectory);
        var (evaluation, calibration) = RstSentences.SplitHeldOut(all, 1000, 256);
        Assert.Empty(evaluation.Intersect(calibration));
        Assert.All(evaluation.Concat(calibration), s =>
        {
            int words = s.Split(' ').Length;
            Assert.InRange(words, RstSentences.MinWords, RstSentences.MaxWords);
            Assert.True(char.IsUpper(s[0]) && s[^1] is '.' or '!' or '?', s);
            Assert.DoesNotContain('`', s);
            Assert.DoesNotContain("::", s, StringComparison.Ordinal);
        });
    }
}
