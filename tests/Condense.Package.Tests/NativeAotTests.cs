namespace Condense.Package.Tests;

/// <summary>The README's NativeAOT command publishes the main sample with no AOT or trimming warnings, and it runs.</summary>
public sealed class NativeAotTests
{
    [Fact]
    public void ReadmePublishCommandBuildsANativeSampleWithoutWarnings()
    {
        string output = Directory.CreateTempSubdirectory("condense-aot-").FullName;
        try
        {
            // The command documented in README.md, with -o into a temporary folder.
            var publish = Dotnet.Run(Dotnet.RepoRoot, "publish", "samples/Condense.Sample", "-c", "Release", "-r", "linux-x64",
                "-p:PublishAot=true", "-o", output);
            Assert.True(publish.ExitCode == 0, "AOT publish failed:\n" + publish);
            var warnings = publish.Output.Split('\n')
                .Where(l => l.Contains(": warning ", StringComparison.Ordinal))
                .Select(l => l.Trim()).Distinct().ToList();
            Assert.True(warnings.Count == 0, "AOT/trim warnings:\n" + string.Join("\n", warnings));

            string binary = Path.Combine(output, "Condense.Sample");
            Assert.True(File.Exists(binary), "no native binary at " + binary);
            var run = Dotnet.Exec(binary, output, "--dataset", "digits", "--epochs", "1", "--out", Path.Combine(output, "models"));
            Assert.True(run.ExitCode == 0, "the native sample failed:\n" + run);
            Assert.Contains("reloaded", run.Output, StringComparison.Ordinal);
        }
        finally
        {
            try { Directory.Delete(output, recursive: true); } catch (IOException) { }
        }
    }
}
