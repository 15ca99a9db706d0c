using Condense.IO;
using Condense.Subspace;
using Condense.Tests.Core;
using Condense.Tests.IO;

namespace Condense.Tests.Subspace;

public sealed class SubspaceFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static Tensor Input() => GradCheck.Random(new Rng(4), 5, 6);

    private static SubspaceModel<SmallMlp> Trained(SubspaceSpec spec, SubspaceOptions options)
    {
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, spec, options);
        var rng = new Rng(11);
        var d = new float[spec.Dimension];
        rng.FillUniform(d, -1, 1);
        subspace.SetCoordinates(d);
        return subspace;
    }

    [Theory]
    [InlineData(SubspaceProjection.Dense)]
    [InlineData(SubspaceProjection.Sparse)]
    [InlineData(SubspaceProjection.Fastfood)]
    public void Round_trip_with_a_seeded_theta0_regenerates_the_same_model_from_about_4d_bytes(SubspaceProjection kind)
    {
        var spec = new SubspaceSpec(16) { Projection = kind, Seed = 77 };
        var saved = Trained(spec, new SubspaceOptions { InitializationSeed = 5 });
        var x = Input();
        var expected = saved.Forward(x).Data;
        string path = _dir.File($"{kind}.safetensors");
        saved.Save(path);

        var fresh = new SmallMlp(); // other weights than theta0 until Load regenerates them
        var loaded = SubspaceModel<SmallMlp>.Load(path, fresh, fresh.Forward, [spec]);
        Assert.Equal(saved.Coordinates.Data, loaded.Coordinates.Data);
        Assert.Equal(expected, loaded.Forward(x).Data);

        // The payload is exactly 4 d bytes; the rest is the header (8-byte length + JSON), small next to a dense file.
        using (var file = SafeTensorsFile.Open(path))
        {
            Assert.Equal(["subspace.coordinates"], file.Tensors.Select(t => t.Name));
            Assert.Equal(4 * 16, file.Tensors[0].ByteLength);
        }
        long size = new FileInfo(path).Length;
        Assert.InRange(size, 4 * 16, 4 * 16 + 2048);
    }

    [Fact]
    public void Without_an_initialization_seed_the_file_carries_theta0()
    {
        var spec = new SubspaceSpec(10) { Projection = SubspaceProjection.Sparse, Seed = 3 };
        var mlp = new SmallMlp();
        mlp.Initialize(123); // "pretrained" weights the file cannot regenerate
        var saved = SubspaceModel.Create(mlp, mlp.Forward, spec);
        saved.SetCoordinates(Enumerable.Range(0, 10).Select(i => i * 0.1f).ToArray());
        var x = Input();
        var expected = saved.Forward(x).Data;
        string path = _dir.File("stored.safetensors");
        saved.Save(path);
        using (var file = SafeTensorsFile.Open(path))
            Assert.Contains(file.Tensors, t => t.Name == "theta0.hidden.weight");

        var fresh = new SmallMlp();
        var loaded = SubspaceModel<SmallMlp>.Load(path, fresh, fresh.Forward);
        Assert.Equal(expected, loaded.Forward(x).Data);
    }

    [Fact]
    public void Trained_uncovered_layers_are_stored_and_restored()
    {
        var spec = new SubspaceSpec(5) { Layers = ["hidden"], Projection = SubspaceProjection.Fastfood, Seed = 1 };
        var options = new SubspaceOptions { UncoveredLayers = UncoveredLayers.Trained, InitializationSeed = 8 };
        var saved = Trained(spec, options);
        saved.Model.Output.Weight.Data[0] += 1; // as if trained
        var x = Input();
        var expected = saved.Forward(x).Data;
        string path = _dir.File("trained.safetensors");
        saved.Save(path);
        var fresh = new SmallMlp();
        var loaded = SubspaceModel<SmallMlp>.Load(path, fresh, fresh.Forward, [spec]);
        Assert.Equal(UncoveredLayers.Trained, loaded.UncoveredLayers);
        Assert.Equal(expected, loaded.Forward(x).Data);
    }

    [Fact]
    public void A_file_from_another_seed_projection_or_d_is_refused_by_name()
    {
        var spec = new SubspaceSpec(8) { Projection = SubspaceProjection.Fastfood, Seed = 10 };
        string path = _dir.File("a.safetensors");
        Trained(spec, new SubspaceOptions { InitializationSeed = 1 }).Save(path);

        SubspaceFileException Load(SubspaceSpec expected)
        {
            var fresh = new SmallMlp();
            return Assert.Throws<SubspaceFileException>(() => SubspaceModel<SmallMlp>.Load(path, fresh, fresh.Forward, [expected]));
        }
        Assert.Contains("trained with seed 10; the model declares seed 11", Load(spec with { Seed = 11 }).Message);
        Assert.Contains("uses the fastfood projection; the model declares dense", Load(spec with { Projection = SubspaceProjection.Dense }).Message);
        Assert.Contains("the file has d = 8; the model declares d = 9", Load(spec with { Dimension = 9 }).Message);

        // Another model shape: the covered parameters do not fit.
        var wide = new SmallMlp(hidden: 7);
        var shape = Assert.Throws<SubspaceFileException>(() => SubspaceModel<SmallMlp>.Load(path, wide, wide.Forward));
        Assert.Contains("parameter 'hidden.weight' is [5, 6] in the file and [7, 6]", shape.Message);
    }

    [Fact]
    public void A_changed_projection_or_theta0_is_detected_when_regenerated()
    {
        // A custom projection that behaves differently at load than at save: the stored probe catches it.
        int calls = 0;
        var spec = new SubspaceSpec(4)
        {
            Seed = 2,
            CustomProjection = r => new DenseProjection(r.FullDimension, r.Dimension, r.Seed + (ulong)calls++),
        };
        string path = _dir.File("custom.safetensors");
        Trained(spec, new SubspaceOptions { InitializationSeed = 1 }).Save(path);
        var fresh = new SmallMlp();
        var e = Assert.Throws<SubspaceFileException>(() => SubspaceModel<SmallMlp>.Load(path, fresh, fresh.Forward, [spec]));
        Assert.Contains("regenerated from seed 2 differs", e.Message);

        // Stored theta0 edited in the file's place: the checksum catches it.
        var ok = new SubspaceSpec(4) { Seed = 2 };
        var mlp = new SmallMlp();
        var subspace = SubspaceModel.Create(mlp, mlp.Forward, ok);
        string stored = _dir.File("stored.safetensors");
        subspace.Save(stored);
        var writer = new SafeTensorsWriter();
        using (var file = SafeTensorsFile.Open(stored))
        {
            foreach (var (key, value) in file.Metadata) writer.SetMetadata(key, value);
            foreach (var t in file.Tensors)
            {
                var values = file.ReadF32(t.Name);
                if (t.Name == "theta0.output.bias") values[0] += 1;
                writer.AddF32(t.Name, values, t.Shape);
            }
        }
        string edited = _dir.File("edited.safetensors");
        writer.WriteTo(edited);
        var again = new SmallMlp();
        var checksum = Assert.Throws<SubspaceFileException>(() => SubspaceModel<SmallMlp>.Load(edited, again, again.Forward, [ok]));
        Assert.Contains("theta0 regenerated here has checksum", checksum.Message);
    }

    [Fact]
    public void NaN_coordinates_and_non_subspace_files_give_named_errors()
    {
        var spec = new SubspaceSpec(6) { Projection = SubspaceProjection.Sparse, Seed = 4 };
        var subspace = Trained(spec, new SubspaceOptions { InitializationSeed = 2 });
        subspace.Coordinates.Data[3] = float.NaN;
        var save = Assert.Throws<InvalidOperationException>(() => subspace.Save(_dir.File("nan.safetensors")));
        Assert.Contains("NaN at index 3", save.Message);

        // A file whose coordinates were corrupted after saving.
        subspace.Coordinates.Data[3] = 0;
        string path = _dir.File("ok.safetensors");
        subspace.Save(path);
        var writer = new SafeTensorsWriter();
        using (var file = SafeTensorsFile.Open(path))
        {
            foreach (var (key, value) in file.Metadata) writer.SetMetadata(key, value);
            var d = file.ReadF32(SubspaceFile.CoordinatesTensor);
            d[4] = float.NaN;
            writer.AddF32(SubspaceFile.CoordinatesTensor, d, d.Length);
        }
        string corrupt = _dir.File("corrupt.safetensors");
        writer.WriteTo(corrupt);
        var fresh = new SmallMlp();
        var load = Assert.Throws<SubspaceFileException>(() => SubspaceModel<SmallMlp>.Load(corrupt, fresh, fresh.Forward, [spec]));
        Assert.Contains("holds NaN at index 4 of subspace 'model'", load.Message);

        var plain = new SafeTensorsWriter();
        plain.AddF32("hidden.weight", new float[30], 5, 6);
        string dense = _dir.File("dense.safetensors");
        plain.WriteTo(dense);
        var notSubspace = Assert.Throws<SubspaceFileException>(() => SubspaceModel<SmallMlp>.Load(dense, fresh, fresh.Forward));
        Assert.Contains("not a subspace file", notSubspace.Message);
    }
}
