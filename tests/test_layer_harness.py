"""The shared layer harness: every case in tests/layer_cases.py gets shape
inference, forward, backward, param naming and config round-trips."""

import json

import numpy as np
import pytest
import torch

import mariana as mar
from mariana import registry
from mariana.layers.base import Layer
from mariana.network import Network
from tests.layer_cases import ABSTRACT_LAYERS, LAYER_CASES


def build(case):
    mar.seed(0)
    network = case.build()
    return network, network[case.layer]


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_output_shape_matches_inferred_shape(case):
    network, layer = build(case)
    feeds = case.feeds()
    out = network.propagate(case.layer, **feeds)
    batch = next(iter(feeds.values())).shape[0]
    assert out.shape == (batch, *layer.shape)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_params_are_named_parameters_in_the_state_dict(case):
    network, layer = build(case)
    state = network.state_dict()
    for name, param in layer.params.items():
        assert isinstance(getattr(layer, name), torch.nn.Parameter)
        assert torch.equal(state[f"{case.layer}.{name}"], param.detach())
    named = dict(network.module.named_parameters(remove_duplicate=False))
    assert len(named) == len(list(network.module.parameters())), "a parameter is registered under two names"
    assert {key for key in named if key.split(".")[0] == case.layer} >= {f"{case.layer}.{name}" for name in layer.params}


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_backward_reaches_every_param(case):
    network, layer = build(case)
    plan = network.forward_plan(case.layer)
    feeds, _ = plan.prepare(case.feeds())
    feeds = {k: v.clone().requires_grad_(v.is_floating_point()) for k, v in feeds.items()}
    values = plan.run(feeds, training=True).values
    values[case.layer].float().pow(2).sum().backward()
    for name, feed in feeds.items():
        if feed.is_floating_point():
            assert feed.grad is not None and feed.grad.abs().sum() > 0, f"no gradient flows back to input {name}"
    for name, param in layer.params.items():
        assert param.grad is not None, f"{case.layer}.{name} got no gradient"
        assert torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0, f"{case.layer}.{name} got an all-zero gradient"


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_layer_config_is_json_and_round_trips(case):
    network, layer = build(case)
    config = json.loads(json.dumps(layer.get_config()))
    rebuilt = network.get_config()
    assert registry.serialize(layer) == next(entry for entry in rebuilt["layers"] if entry["config"]["name"] == case.layer)
    if not layer.connects_at_construction:
        clone = type(layer).from_config(config)
        assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_network_rebuilt_from_config_computes_the_same(case):
    network, layer = build(case)
    config = json.loads(json.dumps(network.get_config()))
    clone = Network.from_config(config)
    assert clone.get_config() == network.get_config()
    clone.module.load_state_dict(network.state_dict())
    feeds = case.feeds()
    np.testing.assert_array_equal(clone.propagate(case.layer, **feeds), network.propagate(case.layer, **feeds))


def test_every_layer_class_has_a_case():
    covered = set()
    for case in LAYER_CASES:
        network, _ = build(case)
        covered.update(type(layer).__name__ for layer in network.layers.values())
    registered = {name for name, cls in registry.classes().items() if issubclass(cls, Layer) and cls.__module__.startswith("mariana.")}
    assert registered - covered - ABSTRACT_LAYERS == set(), "add a line to tests/layer_cases.py for each new layer"
