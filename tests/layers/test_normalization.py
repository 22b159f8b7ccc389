"""BatchNorm and LayerNorm against torch: training/inference statistics, saved running stats."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mariana as mar
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS
from mariana.network import Network


def batches(count, *shape):
    rng = np.random.default_rng(0)
    return [rng.normal(2.0, 3.0, size=(8, *shape)).astype(np.float32) for _ in range(count)]


def bn_net(shape, **kwargs):
    mar.seed(0)
    bn = ML.BatchNorm(regularizations=[MR.L2(0.1)], name="bn", **kwargs)
    out = ML.Regression(2, learning_scenari=[MS.GradientDescent(0.05)], name="out")
    return ML.Input(shape, name="inp") > bn > out


@pytest.mark.parametrize("shape", [(3,), (3, 5), (3, 4, 4), (2, 3, 3, 3)])
def test_batchnorm_training_steps_match_torch_batchnorm(shape):
    net = bn_net(shape, momentum=0.3, epsilon=1e-3)
    bn = net["bn"]
    reference = torch.nn.BatchNorm1d(3, momentum=0.3, eps=1e-3) if len(shape) <= 2 else (
        torch.nn.BatchNorm2d(3, momentum=0.3, eps=1e-3) if len(shape) == 3 else torch.nn.BatchNorm3d(2, momentum=0.3, eps=1e-3))
    for x in batches(3, *shape):
        targets = np.zeros((8, 2), dtype=np.float32)
        with torch.no_grad():
            reference.weight.copy_(bn.gamma)
            reference.bias.copy_(bn.beta)
        reference.train()
        expected = reference(torch.from_numpy(x))
        values = net.forward("bn", training=True, inp=x)  # training mode: batch statistics
        torch.testing.assert_close(values["bn"].detach(), expected.detach())
        net.train("out", inp=x, out=targets)
        with torch.no_grad():
            reference(torch.from_numpy(x))  # the train step updated the running stats a second time
    torch.testing.assert_close(bn.running_mean, reference.running_mean)
    torch.testing.assert_close(bn.running_var, reference.running_var)


def test_batchnorm_statistics_train_versus_inference():
    net = bn_net((3, 4, 4), momentum=0.5)
    bn = net["bn"]
    xs = batches(4, 3, 4, 4)
    mean, var = torch.zeros(3), torch.ones(3)
    for x in xs:
        net.train("out", inp=x, out=np.zeros((8, 2), dtype=np.float32))
        t = torch.from_numpy(x)
        mean = 0.5 * mean + 0.5 * t.mean(dim=(0, 2, 3))
        var = 0.5 * var + 0.5 * t.var(dim=(0, 2, 3), unbiased=True)
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    assert int(bn.num_batches_tracked) == 4
    # inference uses the running stats and leaves them alone
    x = xs[0]
    expected = F.batch_norm(torch.from_numpy(x), mean, var, bn.gamma.detach(), bn.beta.detach(), training=False)
    torch.testing.assert_close(torch.from_numpy(net.propagate("bn", inp=x)), expected)
    net.test("out", inp=x, out=np.zeros((8, 2), dtype=np.float32))
    torch.testing.assert_close(bn.running_mean, mean)
    assert int(bn.num_batches_tracked) == 4


def test_batchnorm_running_stats_live_in_state_dict_and_restore():
    net = bn_net((3, 4, 4))
    for x in batches(3, 3, 4, 4):
        net.train("out", inp=x, out=np.ones((8, 2), dtype=np.float32))
    state = net.state_dict()
    assert {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked", "bn.gamma", "bn.beta"} <= set(state)
    clone = Network.from_config(net.get_config())
    clone.module.load_state_dict(state)
    x = batches(1, 3, 4, 4)[0]
    np.testing.assert_array_equal(clone.propagate("out", inp=x), net.propagate("out", inp=x))
    assert not torch.equal(clone["bn"].running_mean, torch.zeros(3))


def test_norm_params_are_not_regularized_and_learn():
    net = bn_net((3,))
    assert net["bn"].regularizable_params() == []
    before = net["bn"].gamma.detach().clone()
    net.train("out", inp=batches(1, 3)[0], out=np.ones((8, 2), dtype=np.float32))
    assert not torch.equal(before, net["bn"].gamma)


@pytest.mark.parametrize("shape, axes", [((5, 4), 1), ((3, 4, 4), 3), ((3, 4, 4), 2)])
def test_layernorm_matches_torch(shape, axes):
    mar.seed(0)
    ln = ML.LayerNorm(axes=axes, epsilon=1e-4, name="ln")
    net = ML.Input(shape, name="inp") > ln
    with torch.no_grad():
        ln.gamma.normal_()
        ln.beta.normal_()
    x = torch.from_numpy(batches(1, *shape)[0])
    expected = F.layer_norm(x, shape[len(shape) - axes:], ln.gamma, ln.beta, 1e-4)
    torch.testing.assert_close(torch.from_numpy(net.propagate("ln", inp=x)), expected)
    assert ln.regularizable_params() == []


def test_layernorm_needs_enough_axes_and_valid_hyperparameters():
    with pytest.raises(ValueError, match=r"inp.*ln|ln.*\(4,\)"):
        ML.Input(4, name="inp") > ML.LayerNorm(axes=2, name="ln")  # noqa: B015
    with pytest.raises(ValueError, match="momentum"):
        ML.BatchNorm(momentum=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        ML.LayerNorm(epsilon=0)
