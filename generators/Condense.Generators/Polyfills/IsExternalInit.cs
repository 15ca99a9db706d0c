// Records and init accessors need this type, which netstandard2.0 does not ship.
namespace System.Runtime.CompilerServices;

internal static class IsExternalInit
{
}
