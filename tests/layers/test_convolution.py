"""Convolution, pooling and shape layers against torch.nn.functional; errors at '>'."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS


def run(net, name, x):
    return torch.from_numpy(net.propagate(name, inp=x))


def data(*shape, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@pytest.mark.parametrize("layer_type, functional, shape, kwargs", [
    (ML.Conv1D, F.conv1d, (3, 11), dict(kernel=3, stride=2, padding=1)),
    (ML.Conv1D, F.conv1d, (4, 9), dict(kernel=4, padding="same", dilation=2, groups=2)),
    (ML.Conv2D, F.conv2d, (1, 28, 28), dict(kernel=5)),
    (ML.Conv2D, F.conv2d, (4, 7, 8), dict(kernel=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)),
    (ML.Conv2D, F.conv2d, (2, 6, 6), dict(kernel=2, padding="same")),
    (ML.Conv3D, F.conv3d, (2, 5, 6, 7), dict(kernel=(2, 3, 3), stride=2, padding=1)),
])
def test_convolutions_match_torch(layer_type, functional, shape, kwargs):
    mar.seed(0)
    conv = layer_type(6, activation=MA.ReLU(), name="conv", **kwargs)
    net = ML.Input(shape, name="inp") > conv
    x = data(2, *shape)
    padding = kwargs.get("padding", "valid")
    with warnings.catch_warnings():  # torch warns that an even kernel with "same" pads a copy; so do we, silently
        warnings.simplefilter("ignore", UserWarning)
        expected = F.relu(functional(x, conv.W, conv.b, kwargs.get("stride", 1), padding, kwargs.get("dilation", 1), kwargs.get("groups", 1)))
    out = run(net, "conv", x)
    assert tuple(out.shape[1:]) == conv.shape == tuple(expected.shape[1:])
    torch.testing.assert_close(out, expected)
    assert conv.W.shape == (6, shape[0] // kwargs.get("groups", 1), *((kwargs["kernel"],) * (len(shape) - 1)
                                                                       if isinstance(kwargs["kernel"], int) else kwargs["kernel"]))
    assert conv.regularizable_params() == [conv.W]


@pytest.mark.parametrize("layer_type, functional, shape, kwargs", [
    (ML.MaxPool1D, F.max_pool1d, (3, 11), dict(window=3, stride=2, padding=1)),
    (ML.MaxPool2D, F.max_pool2d, (2, 7, 9), dict(window=2)),
    (ML.MaxPool3D, F.max_pool3d, (2, 4, 5, 6), dict(window=(2, 2, 3))),
    (ML.AvgPool1D, F.avg_pool1d, (3, 10), dict(window=4, stride=1)),
    (ML.AvgPool2D, F.avg_pool2d, (2, 7, 7), dict(window=3, stride=2, padding=1)),
    (ML.AvgPool3D, F.avg_pool3d, (1, 4, 4, 6), dict(window=2)),
])
def test_pooling_matches_torch_and_stride_defaults_to_window(layer_type, functional, shape, kwargs):
    pool = layer_type(**kwargs, name="pool")
    net = ML.Input(shape, name="inp") > pool
    x = data(2, *shape)
    expected = functional(x, kwargs["window"], kwargs.get("stride", kwargs["window"]), kwargs.get("padding", 0))
    out = run(net, "pool", x)
    assert conv_shape(pool) == tuple(expected.shape[1:])
    torch.testing.assert_close(out, expected)


def conv_shape(layer):
    return layer.shape


def test_global_pooling_reduces_every_spatial_axis():
    x = data(2, 3, 4, 5)
    for layer, expected in ((ML.GlobalAvgPool(name="g"), x.mean(dim=(2, 3))), (ML.GlobalMaxPool(name="g"), x.amax(dim=(2, 3)))):
        net = ML.Input((3, 4, 5), name="inp") > layer
        assert layer.shape == (3,)
        torch.testing.assert_close(run(net, "g", x), expected)


def test_flatten_and_reshape_keep_the_batch_axis():
    x = data(2, 3, 4)
    net = ML.Input((3, 4), name="inp") > ML.Flatten(name="flat") > ML.Reshape((2, -1, 3), name="re")
    assert net["flat"].shape == (12,) and net["re"].shape == (2, 2, 3)
    torch.testing.assert_close(run(net, "re", x), x.reshape(2, 2, 2, 3))
    assert ML.Reshape.from_config(net["re"].get_config()).shape_to == (2, -1, 3)


def test_cnn_trains_all_its_params():
    mar.seed(0)
    net = (ML.Input((1, 8, 8), name="inp") > ML.Conv2D(4, 3, activation=MA.ReLU(), regularizations=[MR.L2(1e-3)], name="conv")
           > ML.MaxPool2D(2) > ML.Flatten() > ML.SoftmaxClassifier(3, learning_scenari=[MS.GradientDescent(0.1)], name="out"))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train("out", inp=data(4, 1, 8, 8).numpy(), out=np.array([0, 1, 2, 0]))
    after = net.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before)


def assert_raises_at_gt(source, target, *fragments):
    state = (source.network.get_config(), target.network is source.network)
    with pytest.raises(ValueError) as info:
        source > target  # noqa: B015
    message = str(info.value)
    for fragment in (source.name, target.name, *fragments):
        assert fragment in message, message
    assert source.network.get_config() == state[0] and target.shape is None and not target.params
    assert target not in source.network and not target.incoming
    return message


@pytest.mark.parametrize("shape, layer, fragments", [
    ((1, 4, 4), ML.Conv2D(3, 5, name="conv"), ["(5, 5)", "(4, 4)", "larger"]),
    ((1, 4, 4), ML.Conv2D(3, 3, dilation=2, name="conv"), ["larger"]),
    ((784,), ML.Conv2D(3, 5, name="conv"), ["(784,)", "(channels, height, width)", "Reshape"]),
    ((1, 8, 8), ML.Conv1D(3, 3, name="conv"), ["(1, 8, 8)", "(channels, length)"]),
    ((3, 8, 8), ML.Conv2D(4, 3, groups=2, name="conv"), ["groups=2", "3 input channels"]),
    ((2, 3, 8), ML.MaxPool2D(4, name="pool"), ["(2, 3, 8)", "empty axis"]),
    ((2, 5), ML.AvgPool1D(6, name="pool"), ["(2, 5)", "empty axis"]),
    ((2, 5, 5), ML.MaxPool3D(2, name="pool"), ["(2, 5, 5)"]),
    ((7,), ML.GlobalAvgPool(name="pool"), ["(7,)", "no spatial axis"]),
    ((2, 6), ML.Reshape((5, -1), name="re"), ["(2, 6)", "(5, -1)"]),
    ((2, 6), ML.Reshape((4, 4), name="re"), ["12 values"]),
])
def test_mistakes_raise_at_connection_naming_both_layers_and_shapes(shape, layer, fragments):
    assert_raises_at_gt(ML.Input(shape, name="inp"), layer, str(shape), *fragments)


def test_failed_connection_deep_in_a_chain_changes_nothing():
    mar.seed(0)
    conv = ML.Conv2D(2, 3, name="conv")
    pool = ML.MaxPool2D(4, name="pool")
    conv > pool  # noqa: B015  (shapes unknown: nothing built yet)
    with pytest.raises(ValueError, match="pool"):
        ML.Input((1, 5, 5), name="inp") > conv  # noqa: B015
    assert conv.shape is None and not conv.params and not conv.incoming


@pytest.mark.parametrize("make, match", [
    (lambda: ML.Conv2D(0, 3), "filters"),
    (lambda: ML.Conv2D(4, (3, 3, 3)), "kernel"),
    (lambda: ML.Conv2D(4, 3, padding="full"), "padding"),
    (lambda: ML.Conv2D(4, 3, stride=2, padding="same"), "stride 1"),
    (lambda: ML.Conv1D(3, 3, groups=2), "divisible by groups"),
    (lambda: ML.MaxPool2D(2, padding=2), "half the window"),
    (lambda: ML.AvgPool1D(-1), "window"),
    (lambda: ML.Reshape((2, -1, -1)), "at most one -1"),
])
def test_bad_hyperparameters_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()
