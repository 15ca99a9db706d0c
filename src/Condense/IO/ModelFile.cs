using Condense.Compression;
using Condense.Nn;

namespace Condense.IO;

// OWNER: integration (lead). Skeleton only: the calls generated Save/Load make.
/// <summary>Saves and loads a model's layers as safetensors, checked against the compiled plan.</summary>
public static class ModelFile
{
    public static void Save(string path, CompressionPlan plan, IReadOnlyList<NamedLayer> layers) => throw new NotImplementedException();

    public static void Load(string path, CompressionPlan plan, IReadOnlyList<NamedLayer> layers) => throw new NotImplementedException();
}
