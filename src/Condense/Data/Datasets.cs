using System.Globalization;
using System.IO.Compression;
using Condense.IO;

namespace Condense.Data;

/// <summary>Loaders for the data sets the samples and tests use.</summary>
public static class Datasets
{
    /// <summary>Where the Debian package <c>dataset-fashion-mnist</c> installs Fashion-MNIST.</summary>
    public const string FashionMnistDefaultDirectory = "/usr/share/datasets/fashion-mnist";

    private const int DigitsPixels = 64;
    private const int DigitsMaxPixel = 16;
    private const int DigitsClasses = 10;

    /// <summary>
    /// The bundled digits file: <c>{AppContext.BaseDirectory}/data/digits.csv.gz</c> when present (it is copied to the
    /// app's output), else <c>samples/data/digits.csv.gz</c> in the nearest ancestor directory that has one, else the
    /// first location (so loading it reports that path as missing).
    /// </summary>
    public static string DigitsDefaultPath
    {
        get
        {
            var beside = Path.Combine(AppContext.BaseDirectory, "data", "digits.csv.gz");
            if (File.Exists(beside))
                return beside;
            // Running from a source checkout (e.g. `dotnet run` without the copy step): walk up to the repo.
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "samples", "data", "digits.csv.gz");
                if (File.Exists(candidate))
                    return candidate;
            }
            return beside;
        }
    }

    /// <summary>Loads the bundled digits set from <see cref="DigitsDefaultPath"/>.</summary>
    public static Dataset Digits() => Digits(DigitsDefaultPath);

    /// <summary>
    /// Loads the 8x8 digits set: a gzip CSV without header, 65 integers per row (64 pixels 0..16, then the label
    /// 0..9). Pixels are scaled to [0, 1] by /16; samples have shape [1, 8, 8]. Errors name the file and line.
    /// </summary>
    public static Dataset Digits(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Digits file '{path}' does not exist (it ships as samples/data/digits.csv.gz and is copied to data/digits.csv.gz in the output).", path);

        var features = new List<float>(1797 * DigitsPixels);
        var labels = new List<int>(1797);
        using var file = File.OpenRead(path);
        using var gzip = new GZipStream(file, CompressionMode.Decompress);
        using var reader = new StreamReader(gzip);
        var lineNumber = 0;
        try
        {
            while (reader.ReadLine() is { } line)
            {
                lineNumber++;
                if (string.IsNullOrWhiteSpace(line))
                    continue;
                ParseDigitsRow(path, lineNumber, line, features, labels);
            }
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith("Digits file", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"Digits file '{path}': the gzip stream is corrupt near line {lineNumber + 1} ({e.Message}).", e);
        }
        if (labels.Count == 0)
            throw new InvalidDataException($"Digits file '{path}': no rows; expected lines of {DigitsPixels + 1} integers.");
        return new Dataset("digits", features.ToArray(), labels.ToArray(), [1, 8, 8], DigitsClasses);
    }

    private static void ParseDigitsRow(string path, int lineNumber, string line, List<float> features, List<int> labels)
    {
        var span = line.AsSpan();
        var columns = 0;
        foreach (var range in span.Split(','))
            columns++;
        if (columns != DigitsPixels + 1)
            throw new InvalidDataException($"Digits file '{path}' line {lineNumber}: {columns} columns; expected {DigitsPixels + 1} ({DigitsPixels} pixels 0..{DigitsMaxPixel}, then the label 0..{DigitsClasses - 1}).");
        var column = 0;
        foreach (var range in span.Split(','))
        {
            var text = span[range].Trim();
            if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            {
                // Some exports write integers as "3.0"; accept those, reject real fractions.
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var real) || real != Math.Floor(real) || Math.Abs(real) > int.MaxValue)
                    throw new InvalidDataException($"Digits file '{path}' line {lineNumber} column {column + 1}: '{text.ToString()}' is not an integer.");
                value = (int)real;
            }
            if (column < DigitsPixels)
            {
                if (value is < 0 or > DigitsMaxPixel)
                    throw new InvalidDataException($"Digits file '{path}' line {lineNumber} column {column + 1}: pixel {value} is outside 0..{DigitsMaxPixel}.");
                features.Add(value / (float)DigitsMaxPixel);
            }
            else
            {
                if (value is < 0 or >= DigitsClasses)
                    throw new InvalidDataException($"Digits file '{path}' line {lineNumber} column {column + 1}: label {value} is outside 0..{DigitsClasses - 1}.");
                labels.Add(value);
            }
            column++;
        }
    }

    private static string FashionFile(string directory, string split, string kind)
    {
        var gz = Path.Combine(directory, $"{split}-{kind}-ubyte.gz");
        if (File.Exists(gz))
            return gz;
        var raw = Path.Combine(directory, $"{split}-{kind}-ubyte");
        return File.Exists(raw) ? raw : gz;
    }

    /// <summary>Whether all four Fashion-MNIST files (gzip or raw) are present in <paramref name="directory"/>.</summary>
    public static bool FashionMnistAvailable(string directory = FashionMnistDefaultDirectory) =>
        File.Exists(FashionFile(directory, "train", "images-idx3")) && File.Exists(FashionFile(directory, "train", "labels-idx1")) &&
        File.Exists(FashionFile(directory, "t10k", "images-idx3")) && File.Exists(FashionFile(directory, "t10k", "labels-idx1"));

    /// <summary>
    /// Loads Fashion-MNIST's training (60,000) or test (10,000) split: pixels scaled to [0, 1] by /255, samples of
    /// shape [1, 28, 28], 10 classes. Throws <see cref="FileNotFoundException"/> telling how to install it when missing.
    /// </summary>
    public static Dataset FashionMnist(bool train, string directory = FashionMnistDefaultDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var split = train ? "train" : "t10k";
        var imagesPath = FashionFile(directory, split, "images-idx3");
        var labelsPath = FashionFile(directory, split, "labels-idx1");
        foreach (var required in new[] { imagesPath, labelsPath })
        {
            if (!File.Exists(required))
                throw new FileNotFoundException(
                    $"Fashion-MNIST file '{required}' is missing. Install the data set with `apt-get install dataset-fashion-mnist` (it goes to {FashionMnistDefaultDirectory}) or pass the directory that holds {split}-images-idx3-ubyte.gz and {split}-labels-idx1-ubyte.gz.",
                    required);
        }

        var images = Idx.Read(imagesPath, expectedRank: 3);
        var labels = Idx.Read(labelsPath, expectedRank: 1);
        var count = images.Dimensions[0];
        if (labels.Dimensions[0] != count)
            throw new InvalidDataException($"Fashion-MNIST: '{imagesPath}' has {count} images but '{labelsPath}' has {labels.Dimensions[0]} labels; expected the same count.");

        const int classes = 10;
        var labelValues = new int[count];
        for (var i = 0; i < count; i++)
        {
            var label = labels.Data[i];
            if (label >= classes)
                throw new InvalidDataException($"Fashion-MNIST labels file '{labelsPath}': label {label} at index {i} is outside 0..{classes - 1}.");
            labelValues[i] = label;
        }

        var pixels = new float[images.Data.Length];
        for (var i = 0; i < pixels.Length; i++)
            pixels[i] = images.Data[i] / 255f;
        return new Dataset(train ? "fashion-mnist-train" : "fashion-mnist-test", pixels, labelValues,
            [1, images.Dimensions[1], images.Dimensions[2]], classes);
    }
}
