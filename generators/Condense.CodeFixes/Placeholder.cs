namespace Condense.CodeFixes;

internal static class Placeholder
{
}
