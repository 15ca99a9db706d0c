using System.IO.Compression;
using System.Xml.Linq;

namespace Condense.Package.Tests;

/// <summary>
/// Packs src/Condense once into a temporary folder feed. The package version is unique per run (0.1.0-test.*), so
/// the machine's NuGet cache never serves a package from an earlier run; that cache entry is removed afterwards.
/// </summary>
public sealed class PackageFixture : IDisposable
{
    public PackageFixture()
    {
        Root = Directory.CreateTempSubdirectory("condense-package-").FullName;
        Feed = Path.Combine(Root, "feed");
        Version = "0.1.0-test." + DateTime.UtcNow.ToString("yyyyMMddHHmmss", System.Globalization.CultureInfo.InvariantCulture) + "." + Environment.ProcessId;
        Pack = Dotnet.Run(Dotnet.RepoRoot, "pack", "src/Condense/Condense.csproj", "-c", "Release", "-o", Feed, "-p:PackageVersion=" + Version);
        NupkgPath = Path.Combine(Feed, $"Condense.{Version}.nupkg");
        ToolPack = Dotnet.Run(Dotnet.RepoRoot, "pack", "src/Condense.Cli/Condense.Cli.csproj", "-c", "Release", "-o", Feed, "-p:PackageVersion=" + Version);
        ToolNupkgPath = Path.Combine(Feed, $"Condense.Cli.{Version}.nupkg");
    }

    public string ToolNupkgPath { get; }
    public ProcessResult ToolPack { get; }

    /// <summary>Temporary folder outside the repository holding the feed and the consumer projects.</summary>
    public string Root { get; }
    public string Feed { get; }
    public string Version { get; }
    public string NupkgPath { get; }
    public ProcessResult Pack { get; }

    public void AssertPacked() => Assert.True(Pack.ExitCode == 0 && File.Exists(NupkgPath), "dotnet pack failed:\n" + Pack);

    /// <summary>The package's .nuspec.</summary>
    public XDocument Nuspec()
    {
        using var zip = ZipFile.OpenRead(NupkgPath);
        var entry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal));
        using var stream = entry.Open();
        return XDocument.Load(stream);
    }

    public IReadOnlyList<string> Entries()
    {
        using var zip = ZipFile.OpenRead(NupkgPath);
        return zip.Entries.Select(e => e.FullName).ToList();
    }

    /// <summary>A fresh console app in its own folder with a nuget.config of its own: this feed, then nuget.org.</summary>
    public string CreateConsumer(string name, string modelSource, string programSource)
    {
        string dir = Path.Combine(Root, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(dir, name + ".csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <Nullable>enable</Nullable>
                <ImplicitUsings>enable</ImplicitUsings>
              </PropertyGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(dir, "Model.cs"), modelSource);
        File.WriteAllText(Path.Combine(dir, "Program.cs"), programSource);
        // What the README tells a user to run.
        var add = Dotnet.Run(dir, "add", "package", "Condense", "--version", Version);
        Assert.True(add.ExitCode == 0, "dotnet add package Condense failed:\n" + add);
        return dir;
    }

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (var id in new[] { "condense", "condense.cli" })
        {
            try { Directory.Delete(Path.Combine(packages, id, Version.ToLowerInvariant()), recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }
}
