using System.IO.Compression;
using System.Text;
using Condense.Data;

namespace Condense.Tests.IO;

public sealed class DatasetTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Dataset Numbered(int rows, int features = 3)
    {
        // Row r holds r*100 + f, so every row is identifiable after shuffling.
        var x = new float[rows * features];
        for (var r = 0; r < rows; r++)
            for (var f = 0; f < features; f++)
                x[r * features + f] = r * 100 + f;
        return new Dataset("numbered", x, [.. Enumerable.Range(0, rows).Select(r => r % 4)], [features], 4);
    }

    private static int RowId(Dataset data, int row) => (int)data.Features[row * data.FeatureCount] / 100;

    [Fact]
    public void Digits_has_1797_rows_of_64_pixels_in_0_1_and_all_ten_classes()
    {
        var digits = Datasets.Digits();
        Assert.Equal(1797, digits.Count);
        Assert.Equal(64, digits.FeatureCount);
        Assert.Equal([1, 8, 8], digits.SampleShape);
        Assert.Equal(10, digits.ClassCount);
        Assert.Equal(1797 * 64, digits.Features.Length);
        Assert.All(digits.Features, v => Assert.InRange(v, 0f, 1f));
        Assert.Contains(1f, digits.Features);
        Assert.All(digits.Features, v => Assert.Equal(0f, v * 16 - MathF.Round(v * 16)));
        Assert.Equal(Enumerable.Range(0, 10), digits.Labels.Distinct().Order());
        Assert.All(Enumerable.Range(0, 10), c => Assert.True(digits.Labels.Count(l => l == c) > 150));
    }

    private string WriteGzipCsv(string text)
    {
        var path = _dir.File($"digits-{Guid.NewGuid():N}.csv.gz");
        using var file = File.Create(path);
        using var zip = new GZipStream(file, CompressionLevel.Fastest);
        zip.Write(Encoding.UTF8.GetBytes(text));
        return path;
    }

    private static string Row(int pixel, int label) => string.Join(",", Enumerable.Repeat(pixel, 64)) + "," + label;

    [Fact]
    public void Digits_parses_and_normalizes_a_small_file()
    {
        var data = Datasets.Digits(WriteGzipCsv(Row(16, 3) + "\n" + Row(4, 9) + "\n"));
        Assert.Equal(2, data.Count);
        Assert.Equal([3, 9], data.Labels);
        Assert.Equal(1f, data.Features[0]);
        Assert.Equal(0.25f, data.Features[64]);
    }

    [Theory]
    [InlineData("1,2,3\n", "line 2: 3 columns; expected 65")]
    [InlineData("17,0,0\n", "line 2 column 1: pixel 17 is outside 0..16")]
    [InlineData("label10\n", "line 2 column 65: label 10 is outside 0..9")]
    [InlineData("x,0,0\n", "line 2 column 1: 'x' is not an integer")]
    public void Digits_rejects_bad_rows_naming_file_and_line(string second, string expected)
    {
        var bad = second switch
        {
            "17,0,0\n" => "17" + Row(0, 0)[1..] + "\n",
            "x,0,0\n" => "x" + Row(0, 0)[1..] + "\n",
            "label10\n" => Row(0, 10) + "\n",
            _ => second,
        };
        var path = WriteGzipCsv(Row(0, 0) + "\n" + bad);
        var error = Assert.Throws<InvalidDataException>(() => Datasets.Digits(path));
        Assert.Contains(path, error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Digits_reports_a_missing_file()
    {
        var path = _dir.File("nope.csv.gz");
        Assert.Contains(path, Assert.Throws<FileNotFoundException>(() => Datasets.Digits(path)).Message);
    }

    [Fact]
    public void FashionMnist_test_split_has_10000_labelled_images_when_installed()
    {
        if (!Datasets.FashionMnistAvailable())
        {
            Console.WriteLine($"Skipped: Fashion-MNIST not installed in {Datasets.FashionMnistDefaultDirectory}.");
            return;
        }
        var test = Datasets.FashionMnist(train: false);
        Assert.Equal(10_000, test.Count);
        Assert.Equal([1, 28, 28], test.SampleShape);
        Assert.Equal(784, test.FeatureCount);
        Assert.All(test.Labels, l => Assert.InRange(l, 0, 9));
        Assert.Equal(Enumerable.Range(0, 10), test.Labels.Distinct().Order());
        Assert.All(test.Features, v => Assert.InRange(v, 0f, 1f));
        Assert.Contains(1f, test.Features);
    }

    [Fact]
    public void FashionMnist_train_split_has_60000_images_when_installed()
    {
        if (!Datasets.FashionMnistAvailable())
        {
            Console.WriteLine($"Skipped: Fashion-MNIST not installed in {Datasets.FashionMnistDefaultDirectory}.");
            return;
        }
        var train = Datasets.FashionMnist(train: true);
        Assert.Equal(60_000, train.Count);
        Assert.Equal(60_000 * 784, train.Features.Length);
        Assert.Equal(Enumerable.Repeat(6_000, 10), train.Labels.CountBy(l => l).OrderBy(p => p.Key).Select(p => p.Value));
    }

    [Fact]
    public void FashionMnist_missing_directory_says_how_to_install()
    {
        var missing = _dir.File("no-fashion");
        Assert.False(Datasets.FashionMnistAvailable(missing));
        var error = Assert.Throws<FileNotFoundException>(() => Datasets.FashionMnist(train: true, missing));
        Assert.Contains("apt-get install dataset-fashion-mnist", error.Message);
        Assert.Contains("train-images-idx3-ubyte", error.Message);
    }

    [Fact]
    public void Shuffled_is_a_deterministic_permutation_of_the_rows()
    {
        var data = Numbered(50);
        var a = data.Shuffled(42);
        var b = data.Shuffled(42);
        var c = data.Shuffled(43);
        Assert.Equal(a.Features, b.Features);
        Assert.Equal(a.Labels, b.Labels);
        Assert.NotEqual(a.Features, c.Features);
        Assert.NotEqual(data.Features, a.Features);

        var ids = Enumerable.Range(0, a.Count).Select(r => RowId(a, r)).ToArray();
        Assert.Equal(Enumerable.Range(0, 50), ids.Order());
        for (var r = 0; r < a.Count; r++)
        {
            Assert.Equal(ids[r] % 4, a.Labels[r]);
            Assert.Equal(ids[r] * 100 + 2, a.Features[r * 3 + 2]);
        }
    }

    [Fact]
    public void Shuffle_order_is_pinned_so_it_stays_the_same_across_machines_and_versions()
    {
        // Pinned output of the SplitMix64 Fisher-Yates (cross-checked with an independent Python version); a change here changes every seeded experiment.
        Assert.Equal(PinnedOrder, Dataset.Permutation(10, 7));
    }

    private static readonly int[] PinnedOrder = [9, 5, 8, 6, 1, 2, 4, 7, 0, 3];

    [Theory]
    [InlineData(7, null)]
    [InlineData(7, 5ul)]
    [InlineData(23, 5ul)]
    [InlineData(100, null)]
    public void Batches_cover_every_row_exactly_once(int batchSize, ulong? seed)
    {
        var data = Numbered(23);
        var batches = data.Batches(batchSize, seed).ToList();
        Assert.Equal((23 + batchSize - 1) / batchSize, batches.Count);
        Assert.All(batches[..^1], b => Assert.Equal(batchSize, b.Count));
        Assert.Equal(23 - (batches.Count - 1) * batchSize, batches[^1].Count);

        var seen = new List<int>();
        foreach (var (features, labels, count) in batches)
        {
            Assert.Equal(count * 3, features.Length);
            Assert.Equal(count, labels.Length);
            for (var i = 0; i < count; i++)
            {
                var id = (int)features[i * 3] / 100;
                Assert.Equal(id % 4, labels[i]);
                seen.Add(id);
            }
        }
        Assert.Equal(Enumerable.Range(0, 23), seen.Order());
        if (seed is null)
            Assert.Equal(Enumerable.Range(0, 23), seen);
        else if (batchSize < 23)
            Assert.NotEqual(Enumerable.Range(0, 23), seen);
    }

    [Fact]
    public void Subset_and_split_copy_the_right_rows()
    {
        var data = Numbered(10);
        var (first, second) = data.Split(4);
        Assert.Equal(4, first.Count);
        Assert.Equal(6, second.Count);
        Assert.Equal(4, RowId(second, 0));
        Assert.Equal(9, RowId(second, 5));
        var middle = data.Subset(3, 2);
        Assert.Equal([3, 4], Enumerable.Range(0, 2).Select(r => RowId(middle, r)));
        Assert.Equal([3, 0], middle.Labels);
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Subset(8, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => data.Split(11));
    }

    [Fact]
    public void Constructor_rejects_mismatched_lengths_and_out_of_range_labels()
    {
        Assert.Contains("2 labels x 3 features", Assert.Throws<ArgumentException>(() => new Dataset("d", new float[5], [0, 1], [3], 2)).Message);
        Assert.Contains("label 2 of row 1", Assert.Throws<ArgumentException>(() => new Dataset("d", new float[6], [0, 2], [3], 2)).Message);
    }
}
