"""Wiring with '>': chains, forks, joins, merging networks, names, order, the module."""

import json

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS
from mariana.network import GraphModule, Network


def test_chain_returns_one_network_that_every_handle_sees():
    i, h, o = ML.Input(4, name="inp"), ML.Hidden(3, name="hid"), ML.SoftmaxClassifier(2, name="out")
    net = i > h > o
    assert isinstance(net, Network) and bool(net)
    assert i.network is net and h.network is net and o.network is net
    assert list(net.layers) == ["inp", "hid", "out"]
    assert list(net.inputs) == ["inp"] and list(net.outputs) == ["out"]
    assert net["hid"] is h and "hid" in net and h in net and len(net) == 3


def test_absorbed_networks_stay_valid_handles():
    a = ML.Input(2, name="a") > ML.Hidden(2, name="h1")
    b = ML.Hidden(2, name="h2") > ML.Regression(1, name="r")
    c = ML.Hidden(3, name="side")
    merged = a["h1"] > b["h2"]
    assert merged is a
    for handle in (a, b):
        assert list(handle.layers) == ["a", "h1", "h2", "r"]
    b["r"] > c  # grow through the absorbed handle
    assert list(a.layers) == ["a", "h1", "h2", "r", "side"]
    assert a != b and hash(a) != hash(b)  # identity semantics


def test_forks_and_several_inputs_and_outputs_in_one_network():
    i1, i2 = ML.Input(3, name="i1"), ML.Input(5, name="i2")
    h1, h2 = ML.Hidden(4, name="h1"), ML.Hidden(4, name="h2")
    i1 > h1
    i2 > h2
    both = ML.C([h1, h2], name="both")
    o1 = ML.SoftmaxClassifier(2, name="o1")
    o2 = ML.Regression(3, name="o2")
    both > o1
    net = h2 > o2  # a fork from h2
    assert list(net.inputs) == ["i1", "i2"]
    assert list(net.outputs) == ["o1", "o2"]
    order = list(net.layers)
    for before, after in [("i1", "h1"), ("h1", "both"), ("h2", "both"), ("both", "o1"), ("h2", "o2")]:
        assert order.index(before) < order.index(after)
    outputs = net.module(i1=torch.zeros(2, 3), i2=torch.zeros(2, 5))
    assert set(outputs) == {"o1", "o2"} and outputs["o1"].shape == (2, 2) and outputs["o2"].shape == (2, 3)
    # propagating o2 needs only i2: i1 is not required, and passing it is ignored
    assert net.propagate("o2", i2=np.zeros((2, 5))).shape == (2, 3)
    assert net.propagate("o2", i1=np.zeros((9, 3)), i2=np.zeros((2, 5))).shape == (2, 3)


def test_shapes_are_inferred_when_the_input_arrives_later():
    h, o = ML.Hidden(5, name="hid"), ML.Regression(2, name="out")
    h > o
    assert h.shape is None and o.params == {}
    ML.Input((2, 3), name="inp") > h
    assert h.shape == (5,) and h.W.shape == (5, 6) and o.W.shape == (2, 5)


def test_automatic_names_are_readable_and_never_clash():
    first, second = ML.Hidden(2), ML.Hidden(2)
    assert first.name.startswith("hidden_") and first.name != second.name
    classifier = ML.SoftmaxClassifier(2)
    assert classifier.name.startswith("softmax_classifier_")
    net = ML.Input(2) > first > second > classifier
    assert len(net.layers) == 4


def test_state_dict_keys_are_layer_dot_param_and_hold_each_param_once():
    net = ML.Input(4, name="inp") > ML.Hidden(3, name="hid") > ML.SoftmaxClassifier(2, name="out")
    assert list(net.state_dict()) == ["hid.W", "hid.b", "out.W", "out.b"]
    assert net["hid"].W.shape == (3, 4)  # torch layout: (out, in)
    assert len(list(net.module.parameters())) == 4
    assert "network" not in dict(net["hid"].named_children())


def test_a_layer_may_be_named_like_a_module_method():
    net = ML.Input(2, name="train") > ML.Regression(1, name="eval")
    assert callable(net.module.train) and callable(net.module.eval)
    assert list(net.module.state_dict()) == ["eval.W", "eval.b"]
    assert net.propagate("eval", train=np.zeros((1, 2))).shape == (1, 1)


def test_run_calls_restore_the_module_mode():
    import mariana.decorators as MD

    net = ML.Input(2, name="inp") > ML.Regression(1, decorators=[MD.BinomialDropout(0.5)],
                                                  learning_scenari=[MS.GradientDescent(0.1)], name="out")
    net.module.eval()
    net.train("out", inp=np.ones((2, 2)), out=np.ones((2, 1)))
    assert not net.module.training
    net.module.train()
    net.test("out", inp=np.ones((2, 2)), out=np.ones((2, 1)))
    assert net.module.training


def test_network_to_device_moves_params_and_optimizer_state():
    net = ML.Input(2, name="inp") > ML.Regression(1, learning_scenari=[MS.Adam(0.1)], name="out")
    net.train("out", inp=np.ones((2, 2)), out=np.ones((2, 1)))
    assert net.to("cpu") is net and net.device == torch.device("cpu")
    assert net.optimizer_state_dict()["params"]["out.W"]["exp_avg"].device.type == "cpu"


def test_graph_module_is_a_plain_torch_module():
    mar.seed(0)
    net = ML.Input(3, name="inp") > ML.Hidden(4, activation=MA.Tanh(), name="hid") > ML.SoftmaxClassifier(2, name="out")
    assert isinstance(net.module, GraphModule) and isinstance(net.module, torch.nn.Module)
    net.module.eval()
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    probabilities = net.module(inp=torch.from_numpy(x))["out"]
    np.testing.assert_allclose(probabilities.detach().numpy(), net.propagate("out", inp=x), rtol=1e-6)
    torch.testing.assert_close(probabilities.sum(1), torch.ones(5))
    with pytest.raises(ValueError, match=r"missing input\(s\) \['inp'\]"):
        net.module()


def test_batch_size_chunks_give_the_same_answers():
    mar.seed(0)
    net = ML.Input(3, name="inp") > ML.Hidden(4, name="hid") > ML.SoftmaxClassifier(3, name="out")
    x = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    y = np.arange(10) % 3
    np.testing.assert_allclose(net.propagate("out", inp=x, batch_size=3), net.propagate("out", inp=x), rtol=1e-6)
    np.testing.assert_array_equal(net.predict("out", inp=x, batch_size=4), net.predict("out", inp=x))
    assert net.accuracy("out", inp=x, out=y, batch_size=3) == net.accuracy("out", inp=x, out=y)
    torch.testing.assert_close(net.test("out", inp=x, out=y, batch_size=4)["out"], net.test("out", inp=x, out=y)["out"])


def test_inputs_accept_lists_numpy_and_tensors_alike():
    mar.seed(0)
    net = ML.Input(2, name="inp") > ML.Regression(1, name="out")
    as_list = net.propagate("out", inp=[[1, 2]])
    np.testing.assert_array_equal(as_list, net.propagate("out", inp=np.array([[1.0, 2.0]])))
    np.testing.assert_array_equal(as_list, net.propagate("out", inp=torch.tensor([[1.0, 2.0]], dtype=torch.float64)))
    readonly = np.array([[1.0, 2.0]])
    readonly.flags.writeable = False
    np.testing.assert_array_equal(as_list, net.propagate("out", inp=readonly))


def test_categorical_cross_entropy_takes_probability_targets():
    import mariana.costs as MC

    mar.seed(0)
    out = ML.SoftmaxClassifier(3, cost=MC.CategoricalCrossEntropy(), learning_scenari=[MS.GradientDescent(0.1)], name="out")
    net = ML.Input(2, name="inp") > out
    x = np.ones((2, 2), np.float32)
    soft = np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]], np.float32)
    by_ids = float(net.test("out", inp=x, out=np.array([1, 0]))["out"])
    one_hot = float(net.test("out", inp=x, out=np.eye(3, dtype=np.float32)[[1, 0]])["out"])
    assert by_ids == pytest.approx(one_hot, rel=1e-6)
    assert np.isfinite(float(net.train("out", inp=x, out=soft)["out"]))


def test_custom_layer_with_add_param_and_register_round_trips():
    @mar.register
    class Scale(ML.Layer):
        """Multiplies its input by a learned vector ``s``."""

        def output_shape(self, input_shape):
            return input_shape

        def build(self, input_shape):
            self.add_param("s", input_shape, torch.nn.init.ones_, regularizable=False)

        def forward(self, x):
            return x * self.s

    mar.seed(0)
    scale = Scale(learning_scenari=[MS.GradientDescent(0.5)], name="scale")
    net = ML.Input(3, name="inp") > scale > ML.Regression(1, learning_scenari=[MS.Fixed()], name="out")
    assert list(net.state_dict()) == ["scale.s", "out.W", "out.b"]
    before = scale.s.detach().clone()
    net.train("out", inp=np.ones((2, 3)), out=np.zeros((2, 1)))
    assert not torch.equal(scale.s, before)
    clone = Network.from_config(json.loads(json.dumps(net.get_config())))
    assert isinstance(clone["scale"], Scale) and clone["scale"].s.shape == (3,)
    with pytest.raises(ValueError, match="already belongs to"):
        mar.register(type("Scale", (ML.Layer,), {}))


def test_unregistered_custom_layer_cannot_be_named_in_a_config():
    class Unregistered(ML.Layer):
        def output_shape(self, input_shape):
            return input_shape

        def forward(self, x):
            return x

    net = ML.Input(2, name="inp") > Unregistered(name="mystery")
    with pytest.raises(ValueError, match=r"Unregistered is not registered.*@mariana.register"):
        net.get_config()
