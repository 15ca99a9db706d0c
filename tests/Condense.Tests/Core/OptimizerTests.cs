using Condense.Optim;

namespace Condense.Tests.Core;

public class OptimizerTests
{
    private static Tensor Param(float value, float grad) =>
        new([value], 1) { RequiresGrad = true, Grad = new Tensor([grad], 1) };

    [Fact]
    public void Sgd_with_momentum_and_weight_decay_matches_hand_computation()
    {
        var p = Param(1f, 0.5f);
        var opt = new Sgd([p], learningRate: 0.1f, momentum: 0.9f, weightDecay: 0.1f);
        opt.Step();
        // g = 0.5 + 0.1*1 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
        Assert.Equal(0.94f, p.Data[0], 6);
        opt.Step();
        // g = 0.5 + 0.094 = 0.594; buf = 0.9*0.6 + 0.594 = 1.134; p = 0.94 - 0.1134 = 0.8266
        Assert.Equal(0.8266f, p.Data[0], 5);
    }

    [Fact]
    public void Plain_sgd_takes_a_gradient_step()
    {
        var p = Param(2f, 3f);
        new Sgd([p], 0.5f).Step();
        Assert.Equal(0.5f, p.Data[0]);
    }

    [Fact]
    public void AdamW_matches_hand_computation()
    {
        var p = Param(1f, 0.5f);
        var opt = new AdamW([p], learningRate: 0.1f, weightDecay: 0.1f);
        opt.Step();
        // decay: 1*(1-0.01)=0.99; m^ = 0.5, v^ = 0.25: step = 0.1*0.5/(0.5+1e-8) = 0.1 -> 0.89
        Assert.Equal(0.89f, p.Data[0], 5);
        p.Grad!.Data[0] = -1f;
        opt.Step();
        // decay: 0.89*0.99 = 0.8811; m = 0.9*0.05 - 0.1 = -0.055, m^ = -0.055/0.19
        // v = 0.999*0.00025 + 0.001 = 0.00124975, v^ = v/0.001999; step = 0.1 m^/(sqrt(v^)+eps)
        double mHat = -0.055 / 0.19, vHat = 0.00124975 / (1 - 0.999 * 0.999);
        double expected = 0.8811 - 0.1 * mHat / (Math.Sqrt(vHat) + 1e-8);
        Assert.Equal(expected, p.Data[0], 4);
    }

    [Fact]
    public void Parameters_without_gradients_are_skipped_and_ZeroGrad_clears()
    {
        var withGrad = Param(1f, 1f);
        var without = new Tensor([5f], 1) { RequiresGrad = true };
        var opt = new AdamW([withGrad, without], 0.1f);
        opt.Step();
        Assert.Equal(5f, without.Data[0]);
        Assert.NotEqual(1f, withGrad.Data[0]);
        opt.ZeroGrad();
        Assert.Equal(0f, withGrad.Grad!.Data[0]);
    }

    [Fact]
    public void Bad_hyperparameters_are_rejected_by_name()
    {
        Assert.Contains("momentum", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd([], 0.1f, momentum: 1f)).Message);
        Assert.Contains("beta2", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW([], 0.1f, beta2: 1.5f)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd([], float.NaN));
    }
}
