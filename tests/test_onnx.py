"""ONNX export checked against propagate with onnxruntime, for every layer case."""

import numpy as np
import pytest

import mariana as mar
import mariana.layers as ML
from tests.layer_cases import LAYER_CASES

ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need the 'export' extra (onnxruntime)")
pytest.importorskip("onnxscript", reason="ONNX export needs the 'export' extra (onnxscript)")

BATCH = 7  # differs from the trace batch, so the batch axis must really be dynamic


def _run(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()]
    return names, session.run(None, {name: feeds[name] for name in names})


def _bigger(feeds):
    return {name: np.concatenate([value] * 3)[:BATCH] for name, value in feeds.items()}


@pytest.mark.parametrize("case", LAYER_CASES, ids=repr)
def test_exported_layer_matches_propagate(case, tmp_path):
    mar.seed(0)
    network = case.build()
    network.to_onnx(tmp_path / "m.onnx", outputs=[case.layer])
    feeds = _bigger(case.feeds())
    names, (result,) = _run(tmp_path / "m.onnx", feeds)
    assert names == [name for name in network.inputs if name in feeds]
    np.testing.assert_allclose(result, network.propagate(case.layer, **feeds), rtol=0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left behind
    assert network.log[-1]["event"] == "export"


def test_several_outputs_come_back_as_a_tuple_in_the_requested_order(tmp_path):
    mar.seed(0)
    a, b = ML.Input(3, name="a"), ML.Input(2, name="b")
    joined = ML.Concatenate([a, b], name="joined")
    network = joined > ML.Hidden(4, name="hid")
    network["hid"] > ML.SoftmaxClassifier(3, name="cls")  # noqa: B015
    network["hid"] > ML.Regression(1, name="reg")  # noqa: B015
    network.to_onnx(tmp_path / "m.onnx", outputs=["reg", "cls"])
    rng = np.random.default_rng(0)
    feeds = {"b": rng.normal(size=(5, 2)).astype("float32"), "a": rng.normal(size=(5, 3)).astype("float32")}
    names, results = _run(tmp_path / "m.onnx", feeds)
    assert names == ["a", "b"]
    for name, result in zip(["reg", "cls"], results):
        np.testing.assert_allclose(result, network.propagate(name, **feeds), rtol=0, atol=1e-5)


def test_bad_outputs_raise_and_write_nothing(tmp_path):
    network = ML.Input(3, name="inp") > ML.Regression(2, name="out")
    with pytest.raises(KeyError, match="nope"):
        network.to_onnx(tmp_path / "m.onnx", outputs=["nope"])
    with pytest.raises(TypeError, match="list of layer names"):
        network.to_onnx(tmp_path / "m.onnx", outputs=[3])
    with pytest.raises(ValueError, match="once"):
        network.to_onnx(tmp_path / "m.onnx", outputs=["out", "out"])
    assert list(tmp_path.iterdir()) == []


SHADOWING = ["train", "eval", "to", "forward", "state_dict", "parameters", "cuda", "float", "apply", "zero_grad", "type", "half"]


def test_layers_named_like_module_methods_export(tmp_path):
    """Layer names may shadow nn.Module methods (README); the exporter looks submodules up by attribute."""
    mar.seed(0)
    network = ML.Input(3, name="inp") > ML.Hidden(4, name=SHADOWING[0])
    for name in SHADOWING[1:]:
        network[list(network.layers)[-1]] > ML.Hidden(4, name=name)  # noqa: B015
    names = list(network.layers)
    before = [list(module._modules) for module in network.module.modules()]
    network.to_onnx(tmp_path / "m.onnx", outputs=SHADOWING[::-1])
    assert [list(module._modules) for module in network.module.modules()] == before  # the names are only mapped while exporting
    assert list(network.layers) == names
    feeds = {"inp": np.random.default_rng(0).normal(size=(BATCH, 3)).astype("float32")}
    _, results = _run(tmp_path / "m.onnx", feeds)
    for name, result in zip(SHADOWING[::-1], results):
        np.testing.assert_allclose(result, network.propagate(name, **feeds), rtol=0, atol=1e-5)


def test_wrapped_layers_named_like_module_methods_export(tmp_path):
    mar.seed(0)
    network = ML.Input((5, 3), name="train") > ML.TimeDistributed(ML.Hidden(4, name="forward"), name="to") > ML.Regression(2, name="float")
    network.to_onnx(tmp_path / "m.onnx", outputs=["float", "train"])
    feeds = {"train": np.random.default_rng(0).normal(size=(BATCH, 5, 3)).astype("float32")}
    names, (result, same) = _run(tmp_path / "m.onnx", feeds)
    assert names == ["train"]
    np.testing.assert_allclose(result, network.propagate("float", **feeds), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(same, feeds["train"])
