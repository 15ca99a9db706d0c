using Condense.Nn;

namespace Condense.Compression;

/// <summary>
/// Implemented by the generator on every <c>[Compressible]</c> model with a parameterless constructor, so that code
/// can work over any compressible model type (<c>where T : Module, ICompressibleModel&lt;T&gt;</c>).
/// </summary>
public interface ICompressibleModel<TSelf> where TSelf : Module, ICompressibleModel<TSelf>
{
    /// <summary>The plan resolved at build time.</summary>
    static abstract CompressionPlan Plan { get; }

    /// <summary>Creates a model and loads a file saved by <see cref="Save"/>, checked against <see cref="Plan"/>.</summary>
    static abstract TSelf Load(string path);

    /// <summary>Applies <see cref="Plan"/> to this model's layers in place.</summary>
    CompressionReport Compress(CompressionOptions? options = null, IProgress<CompressionProgress>? progress = null);

    /// <summary>Saves the model (dense or compressed) with the plan in the file's metadata.</summary>
    void Save(string path);
}
