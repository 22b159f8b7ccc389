"""Output layers: what they register, and the targets they accept or refuse."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
from mariana.report.describe import totals
from tests.layer_cases import LAYER_CASES
from tests.report_network import build_report_network


def _autoencoder():
    mar.seed(0)
    hid = ML.Hidden(4, name="hid")
    network = ML.Input(8, name="inp") > hid > ML.Hidden(3, name="code") > ML.Autoencode(hid, name="ae")
    return network


def test_autoencode_does_not_register_its_target_a_second_time(tmp_path):
    network = _autoencoder()
    assert list(network.state_dict()) == ["hid.W", "hid.b", "code.W", "code.b", "ae.W", "ae.b"]
    assert network["ae"]._target_layer is network["hid"]  # still known, but not a submodule
    params = 8 * 4 + 4 + 4 * 3 + 3 + 3 * 4 + 4
    assert totals(network)["params"] == params == sum(p.numel() for p in network.parameters())
    assert f"Total params: {params:,}" in network.summary() and "frozen: 0" in network.summary()
    network.save(tmp_path / "m.mar")
    clone = mar.load(tmp_path / "m.mar")
    assert list(clone.state_dict()) == list(network.state_dict())


def _expected_keys(network):
    """``<layer>.<param>`` (and buffers) for every layer and the layers it wraps: each tensor once."""
    return {f"{prefix}.{name}" for layer in network.layers.values() for prefix, member in layer.named_layers()
            for name in [*member._parameters, *member._buffers]}


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_state_dict_holds_each_layer_tensor_once_under_its_own_name(case):
    mar.seed(0)
    network = case.build()
    assert set(network.state_dict()) == _expected_keys(network)


def test_report_network_state_dict_holds_each_tensor_once():
    network = build_report_network()
    network["code"] > ML.Autoencode("hid", name="recon_hid")  # noqa: B015 - a target with params
    assert set(network.state_dict()) == _expected_keys(network)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"])
@pytest.mark.parametrize("as_torch", [False, True])
def test_classifier_accepts_every_integer_label_dtype(dtype, as_torch):
    mar.seed(0)
    network = ML.Input(3, name="inp") > ML.SoftmaxClassifier(4, name="out")
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3], dtype=dtype)
    expected = float(network.test("out", inp=x, out=labels.astype("int64"))["out"])
    given = torch.from_numpy(labels) if as_torch else labels
    assert float(network.test("out", inp=x, out=given)["out"]) == expected
    assert network.accuracy("out", inp=x, out=given) == network.accuracy("out", inp=x, out=labels.astype("int64"))


def test_classifier_refuses_out_of_range_and_unusable_labels_with_a_value_error():
    network = ML.Input(3, name="inp") > ML.SoftmaxClassifier(4, name="out")
    x = np.zeros((2, 3), dtype="float32")
    with pytest.raises(ValueError, match=r"SoftmaxClassifier 'out' has 4 classes, so ids must be in \[0, 3\], but received ids from 0 to 7"):
        network.test("out", inp=x, out=np.array([0, 7], dtype="uint32"))
    with pytest.raises(ValueError, match=r"SoftmaxClassifier 'out' has 4 classes.*uint64 ids of 2\*\*63 or more"):
        network.test("out", inp=x, out=np.array([0, 2**64 - 1], dtype="uint64"))
    with pytest.raises(ValueError, match=r"SoftmaxClassifier 'out' expects integer class ids or real probabilities, but received torch.complex64"):
        network.test("out", inp=x, out=torch.zeros(2, dtype=torch.complex64))
    regression = ML.Input(3, name="inp") > ML.Regression(1, name="out")
    with pytest.raises(ValueError, match=r"Regression 'out' expects numeric targets, but received torch.complex64"):
        regression.test("out", inp=x, out=torch.zeros(2, 1, dtype=torch.complex64))
