namespace Condense.Generators.Tests;

internal static class Placeholder
{
}
