using System.Numerics.Tensors;
using Condense.Nn;
using Condense.Tests.Core;
using Condense.Tests.IO;

namespace Condense.Tests.Transformer;

// The example of docs/extending.md, written as a user would, outside the Condense assembly: an op with its own
// forward and backward through Tensor.Record, and a layer holding parameters that the generator registers.

/// <summary>y = (x - mean) / sqrt(var + eps) * gain + shift over the last dimension.</summary>
public static class MyOps
{
    public static Tensor LayerNorm(Tensor x, Tensor gain, Tensor shift, float eps = 1e-5f)
    {
        int c = x.Shape[^1], rows = x.Length / c;
        var y = Tensor.Zeros(x.Shape);
        var normalized = new float[x.Length];   // saved for the backward
        var rstd = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            var row = x.Data.AsSpan(r * c, c);
            var n = normalized.AsSpan(r * c, c);
            float mean = TensorPrimitives.Sum(row) / c;
            TensorPrimitives.Subtract(row, mean, n);
            rstd[r] = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(n) / c + eps);
            TensorPrimitives.Multiply(n, rstd[r], n);
            TensorPrimitives.FusedMultiplyAdd(n, gain.Data, shift.Data, y.Data.AsSpan(r * c, c));
        }
        return Tensor.Record(y, () =>
        {
            var dy = y.Grad!.Data;
            for (int r = 0; r < rows; r++)
            {
                var d = dy.AsSpan(r * c, c);
                var n = normalized.AsSpan(r * c, c);
                if (gain.RequiresGrad) TensorPrimitives.FusedMultiplyAdd(d, n, gain.GradSpan(), gain.GradSpan());
                if (shift.RequiresGrad) TensorPrimitives.Add(shift.GradSpan(), d, shift.GradSpan());
                if (!x.RequiresGrad) continue;
                // dx = rstd * (dn - mean(dn) - n * mean(dn * n)), dn = dy * gain
                var dn = new float[c];
                TensorPrimitives.Multiply(d, gain.Data, dn);
                float meanDn = TensorPrimitives.Sum(dn) / c, meanDnN = TensorPrimitives.Dot(dn, n) / c;
                var gx = x.GradSpan().Slice(r * c, c);
                for (int j = 0; j < c; j++) gx[j] += rstd[r] * (dn[j] - meanDn - n[j] * meanDnN);
            }
        }, x, gain, shift);
    }
}

/// <summary>A layer with two parameters of its own; a [Compressible] model registers a field of this type.</summary>
public sealed class MyLayerNorm : Layer
{
    public MyLayerNorm(int size)
    {
        Gain = new Tensor(new float[size], size) { RequiresGrad = true };
        Shift = new Tensor(new float[size], size) { RequiresGrad = true };
        Gain.Data.AsSpan().Fill(1f);
    }

    public Tensor Gain { get; }
    public Tensor Shift { get; }

    // The names become the tensor names in a saved file: "norm.gain", "norm.shift".
    public override IReadOnlyList<Parameter> Parameters => [new("gain", Gain), new("shift", Shift)];

    public override void ResetParameters(Rng rng)
    {
        Gain.Data.AsSpan().Fill(1f);
        Shift.Data.AsSpan().Clear();
    }

    public Tensor Forward(Tensor x) => MyOps.LayerNorm(x, Gain, Shift);
}

[Compressible]
public partial class NormedMlp : Module
{
    [Quantize(8)] readonly Linear hidden = new(8, 16);
    readonly MyLayerNorm norm = new(16);
    readonly Linear head = new(16, 3);

    public Tensor Forward(Tensor x) => head.Forward(norm.Forward(hidden.Forward(x)).Relu());

    public MyLayerNorm Norm() => norm;
}

public class UserLayerTests
{
    [Fact]
    public void A_user_written_op_matches_the_runtime_layer_norm_and_finite_differences()
    {
        var rng = new Rng(31);
        var x = GradCheck.Random(rng, 5, 7);
        var gain = GradCheck.Random(rng, 7);
        var shift = GradCheck.Random(rng, 7);
        var mine = MyOps.LayerNorm(x, gain, shift);
        var runtime = Ops.LayerNorm(x, gain, shift, 1e-5f);
        for (int i = 0; i < mine.Length; i++) Assert.Equal(runtime.Data[i], mine.Data[i], 1e-5);
        var r = GradCheck.Random(rng, 5, 7);
        Assert.True(GradCheck.MaxRelativeError(() => Ops.Sum(Ops.Mul(MyOps.LayerNorm(x, gain, shift), r)), [x, gain, shift]) < 2e-2);
        // Under NoGrad nothing is recorded, and an op may not hand back its input as its output.
        using (Tensor.NoGrad()) Assert.False(MyOps.LayerNorm(x, gain, shift).RequiresGrad);
        Assert.Throws<ArgumentException>(() => Tensor.Record(x, () => { }, x));
    }

    [Fact]
    public void A_model_with_a_user_layer_trains_it_saves_it_loads_it_and_compresses_around_it()
    {
        var model = new NormedMlp();
        model.Initialize(32);
        Assert.Equal(["hidden.weight", "hidden.bias", "head.weight", "head.bias", "norm.gain", "norm.shift"], model.NamedParameters().Select(p => p.Path));
        var rng = new Rng(33);
        var x = GradCheck.Random(rng, 32, 8);
        var labels = Enumerable.Range(0, 32).Select(i => (int)(x.Data[i * 8] > 0 ? 1 : x.Data[i * 8 + 1] > 0 ? 2 : 0)).ToArray();
        var optimizer = new Optim.Sgd(model.Parameters(), 0.2f);
        float first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            var loss = Ops.SoftmaxCrossEntropy(model.Forward(x), labels);
            optimizer.ZeroGrad();
            loss.Backward();
            optimizer.Step();
            if (step == 0) first = loss.Data[0];
            last = loss.Data[0];
        }
        Assert.True(last < first * 0.7f, $"loss {first} -> {last}");
        Assert.Contains(model.Norm().Gain.Data, g => g != 1f);
        Assert.Contains(model.Norm().Shift.Data, s => s != 0f);

        using var dir = new TempDirectory();
        string path = Path.Combine(dir.Path, "normed.safetensors");
        Tensor expected;
        using (Tensor.NoGrad()) expected = model.Forward(x);
        model.Save(path);
        var loaded = NormedMlp.Load(path);
        using (Tensor.NoGrad()) Assert.Equal(expected.Data, loaded.Forward(x).Data);
        Assert.Equal(model.Norm().Gain.Data, loaded.Norm().Gain.Data);

        // Compress quantizes 'hidden' and leaves the user's layer as it was.
        var gain = (float[])model.Norm().Gain.Data.Clone();
        model.Compress();
        Assert.NotNull(((WeightedLayer)model.Layers[0].Layer).CompressedWeight);
        Assert.Equal(gain, model.Norm().Gain.Data);
        model.Save(path);
        Assert.Equal(gain, NormedMlp.Load(path).Norm().Gain.Data);
    }
}
