namespace Condense.Generators;

internal static class Placeholder
{
}
