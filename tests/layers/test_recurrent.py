"""RNN/LSTM/GRU, Bidirectional and TimeDistributed against torch.nn; lengths; learning; errors at '>'."""

import json

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.activations as MA
import mariana.initializations as MI
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS
from mariana.network import Network

TORCH = {ML.RNN: torch.nn.RNN, ML.LSTM: torch.nn.LSTM, ML.GRU: torch.nn.GRU}


def sequences(batch=3, steps=6, features=4, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(batch, steps, features)).astype(np.float32))


def copy_into(reference, layer, suffix=""):
    with torch.no_grad():
        getattr(reference, f"weight_ih_l0{suffix}").copy_(layer.W)
        getattr(reference, f"weight_hh_l0{suffix}").copy_(layer.U)
        getattr(reference, f"bias_ih_l0{suffix}").copy_(layer.b)
        getattr(reference, f"bias_hh_l0{suffix}").copy_(layer.b_U)


def with_lengths(layer, steps=6, features=4):
    net = ML.Input((steps, features), name="seq") > layer
    return ML.Input(1, dtype="int64", name="lengths") > layer if net else None


@pytest.mark.parametrize("kind", [ML.RNN, ML.LSTM, ML.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_layers_match_torch(kind, return_sequences):
    mar.seed(0)
    layer = kind(5, return_sequences=return_sequences, name="rnn")
    net = ML.Input((6, 4), name="seq") > layer
    reference = TORCH[kind](4, 5, batch_first=True)
    copy_into(reference, layer)
    x = sequences()
    expected = reference(x)[0]
    expected = expected if return_sequences else expected[:, -1]
    assert layer.shape == tuple(expected.shape[1:])
    torch.testing.assert_close(torch.from_numpy(net.propagate("rnn", seq=x)), expected.detach())


@pytest.mark.parametrize("kind", [ML.RNN, ML.LSTM, ML.GRU])
def test_padded_steps_do_not_change_the_result(kind):
    mar.seed(0)
    last = kind(5, name="last")
    every = kind.from_config({**last.get_config(), "name": "every", "return_sequences": True})
    seq, lengths = ML.Input((6, 4), name="seq"), ML.Input(1, dtype="int64", name="lengths")
    for layer in (last, every):
        net = seq > layer
        net = lengths > layer
    every.load_state_dict(last.state_dict())
    x, n = sequences(), np.array([[6], [2], [4]])
    garbage = x.clone()
    for row, length in enumerate(n[:, 0]):
        garbage[row, length:] = 1e3
    out_last = net.propagate("last", seq=x, lengths=n)
    np.testing.assert_array_equal(out_last, net.propagate("last", seq=garbage, lengths=n))
    out_every = net.propagate("every", seq=garbage, lengths=n)
    alone = Network.from_config(json.loads(json.dumps((ML.Input((6, 4), name="seq") > kind(5, return_sequences=True, name="r")).get_config())))
    for row, length in enumerate(n[:, 0]):
        # each sequence run alone, truncated to its length, gives the same result
        with torch.no_grad():
            single = alone["r"]
            for name in ("W", "U", "b", "b_U"):
                getattr(single, name).copy_(getattr(last, name))
        truncated = torch.cat([x[row:row + 1, :length], torch.zeros(1, 6 - length, 4)], dim=1)
        run_alone = alone.propagate("r", seq=truncated)[0]
        np.testing.assert_allclose(out_last[row], run_alone[length - 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out_every[row, :length], run_alone[:length], rtol=1e-5, atol=1e-6)
        assert (out_every[row, length:] == 0).all()


def test_lengths_out_of_range_raise_before_running():
    layer = ML.LSTM(3, name="lstm")
    net = with_lengths(layer)
    for bad in ([[0], [3], [3]], [[7], [3], [3]]):
        with pytest.raises(ValueError, match=r"lstm.*\[1, 6\]"):
            net.propagate("lstm", seq=sequences(), lengths=bad)


def test_stacked_lstms_and_lengths_to_each():
    mar.seed(0)
    first, second = ML.LSTM(6, return_sequences=True, name="first"), ML.LSTM(3, name="second")
    seq, lengths = ML.Input((6, 4), name="seq"), ML.Input(1, dtype="int64", name="lengths")
    net = seq > first > second
    net = lengths > first
    net = lengths > second
    assert first.shape == (6, 6) and second.shape == (3,)
    reference = torch.nn.LSTM(4, 6, batch_first=True), torch.nn.LSTM(6, 3, batch_first=True)
    copy_into(reference[0], first)
    copy_into(reference[1], second)
    x = sequences()
    expected = reference[1](reference[0](x)[0])[0][:, -1]
    torch.testing.assert_close(torch.from_numpy(net.propagate("second", seq=x, lengths=[[6]] * 3)), expected.detach())
    net.get_config()["edges"].index(["lengths", "second"])  # both edges are part of the saved architecture


def test_lstm_learns_a_sequence_sum():
    mar.seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(512, 8, 1)).astype(np.float32)
    net = (ML.Input((8, 1), name="seq") > ML.LSTM(16, name="lstm")
           > ML.Regression(1, learning_scenari=[MS.Adam(0.01)], name="out"))
    for _ in range(4):
        for start in range(0, 512, 32):
            net.train("out", seq=x[start:start + 32], out=x[start:start + 32].sum(axis=1))
    test_x = rng.uniform(-0.5, 0.5, size=(256, 8, 1)).astype(np.float32)
    baseline = float(np.var(test_x.sum(axis=1)))  # what predicting the mean would cost
    mse = float(net.test("out", seq=test_x, out=test_x.sum(axis=1))["out"])
    assert mse < 0.02 * baseline, (mse, baseline)


@pytest.mark.parametrize("kind", [ML.LSTM, ML.GRU])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_matches_torch_and_concatenates_directions(kind, return_sequences):
    mar.seed(0)
    bi = ML.Bidirectional(kind(5, return_sequences=return_sequences, name="rnn"), name="bi")
    net = ML.Input((6, 4), name="seq") > bi
    forward, backward = bi.sublayers()
    reference = TORCH[kind](4, 5, batch_first=True, bidirectional=True)
    copy_into(reference, forward)
    copy_into(reference, backward, "_reverse")
    x = sequences()
    out = reference(x)[0].detach()
    expected = out if return_sequences else torch.cat([out[:, -1, :5], out[:, 0, 5:]], dim=-1)
    assert bi.shape == tuple(expected.shape[1:]) == ((6, 10) if return_sequences else (10,))
    torch.testing.assert_close(torch.from_numpy(net.propagate("bi", seq=x)), expected)


def test_bidirectional_with_lengths_matches_packed_torch():
    mar.seed(0)
    bi = ML.Bidirectional(ML.GRU(5, return_sequences=True, name="rnn"), name="bi")
    net = with_lengths(bi)
    forward, backward = bi.sublayers()
    reference = torch.nn.GRU(4, 5, batch_first=True, bidirectional=True)
    copy_into(reference, forward)
    copy_into(reference, backward, "_reverse")
    x, n = sequences(), torch.tensor([6, 2, 4])
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, n, batch_first=True, enforce_sorted=False)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=6)
    torch.testing.assert_close(torch.from_numpy(net.propagate("bi", seq=x, lengths=n[:, None])), expected.detach())


def test_wrapped_layers_train_and_are_named_under_the_wrapper():
    mar.seed(0)
    inner = ML.LSTM(4, return_sequences=True, regularizations=[MR.L2(1e-3)], name="lstm")
    bi = ML.Bidirectional(inner, name="bi")
    td = ML.TimeDistributed(ML.Hidden(3, activation=MA.Tanh(), name="dense"), name="td")
    out = ML.Regression(2, learning_scenari=[MS.Adam(1e-2)], name="out")
    net = ML.Input((6, 4), name="seq") > bi > td > ML.Flatten(name="flat") > out
    assert bi.shape == (6, 8) and td.shape == (6, 3)
    assert "bi" in net and "lstm" not in net and inner.network is None
    expected_keys = {f"bi.{layer}.{p}" for layer in ("lstm", "lstm_backward") for p in ("W", "U", "b", "b_U")}
    assert expected_keys | {"td.dense.W", "td.dense.b"} <= set(net.state_dict())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train("out", seq=sequences(), out=np.zeros((3, 2), dtype=np.float32))
    assert all(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert set(net.optimizer_state_dict()["params"]) == set(before)
    # a clone from config loads the weights and computes the same
    clone = Network.from_config(json.loads(json.dumps(net.get_config())))
    clone.module.load_state_dict(net.state_dict())
    clone.load_optimizer_state_dict(net.optimizer_state_dict())
    np.testing.assert_array_equal(clone.propagate("out", seq=sequences()), net.propagate("out", seq=sequences()))


def test_wrapped_layer_gradients_reach_both_directions():
    mar.seed(0)
    bi = ML.Bidirectional(ML.GRU(3, name="gru"), name="bi")
    net = ML.Input((5, 2), name="seq") > bi
    x = sequences(2, 5, 2).requires_grad_(True)
    values = net.forward("bi", training=True, seq=x)
    values["bi"].pow(2).sum().backward()
    for layer in bi.sublayers():
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.params.values())
    assert x.grad[:, 0].abs().sum() > 0 and x.grad[:, -1].abs().sum() > 0


def test_time_distributed_applies_the_layer_at_every_step():
    mar.seed(0)
    conv = ML.Conv1D(3, 2, activation=MA.ReLU(), name="conv")
    td = ML.TimeDistributed(conv, name="td")
    net = ML.Input((5, 2, 4), name="seq") > td
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 5, 2, 4)).astype(np.float32))
    expected = torch.stack([torch.relu(torch.nn.functional.conv1d(x[:, t], conv.W, conv.b)) for t in range(5)], dim=1)
    assert td.shape == (5, 3, 3)
    torch.testing.assert_close(torch.from_numpy(net.propagate("td", seq=x)), expected)


def test_gru_shapes_and_gradients():
    mar.seed(0)
    gru = ML.GRU(7, return_sequences=True, name="gru")
    net = ML.Input((6, 4), name="seq") > gru > ML.GRU(2, name="top")
    assert gru.shape == (6, 7) and net["top"].shape == (2,)
    x = sequences().requires_grad_(True)
    values = net.forward("top", training=True, seq=x)
    values["top"].sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in gru.params.values()) and x.grad.abs().sum() > 0


@pytest.mark.parametrize("shape, layer, fragments", [
    ((12,), ML.LSTM(3, name="rnn"), ["(12,)", "(time, features)", "flat vector"]),
    ((2, 3, 4), ML.GRU(3, name="rnn"), ["(2, 3, 4)", "(time, features)"]),
    ((12,), ML.Bidirectional(ML.LSTM(3), name="rnn"), ["(12,)", "(time, features)"]),
    ((6,), ML.TimeDistributed(ML.Hidden(3), name="td"), ["(6,)", "no time axis"]),
    ((5, 4), ML.TimeDistributed(ML.Conv1D(3, 2, name="inner"), name="td"), ["(5, 4)", "inner", "(4,)"]),
])
def test_sequence_mistakes_raise_at_connection(shape, layer, fragments):
    source = ML.Input(shape, name="inp")
    with pytest.raises(ValueError) as info:
        source > layer  # noqa: B015
    for fragment in ("inp", layer.name, *fragments):
        assert fragment in str(info.value), str(info.value)
    assert layer.shape is None and not layer.incoming and not any(sub.params for sub in layer.sublayers())


def test_lengths_input_role_is_checked():
    lstm = ML.LSTM(3, name="lstm")
    with pytest.raises(ValueError, match="sequence first"):
        ML.Input(1, dtype="int64", name="lengths") > lstm  # noqa: B015
    net = ML.Input((5, 2), name="seq") > lstm
    with pytest.raises(ValueError, match=r"lengths of shape \(1,\).*float32"):
        ML.Input(1, name="other") > lstm  # noqa: B015
    with pytest.raises(ValueError, match=r"lengths of shape \(1,\)"):
        ML.Input(2, dtype="int64", name="two") > lstm  # noqa: B015
    assert list(net.layers) == ["seq", "lstm"]


def test_wrapping_rules():
    inner = ML.LSTM(3, name="inner")
    bi = ML.Bidirectional(inner, name="bi")
    with pytest.raises(TypeError, match="wrapped"):
        ML.Input((5, 2), name="seq") > inner  # noqa: B015
    with pytest.raises(ValueError, match="already connected or wrapped"):
        ML.TimeDistributed(inner)
    connected = ML.Hidden(3, name="connected")
    net = ML.Input(2, name="x") > connected
    with pytest.raises(ValueError, match="connected"):
        ML.TimeDistributed(connected)
    assert "connected" in net
    with pytest.raises(TypeError, match="RNN, LSTM or GRU"):
        ML.Bidirectional(ML.Hidden(3))
    with pytest.raises(TypeError, match="a layer"):
        ML.TimeDistributed(ML.Input(3))
    assert bi.get_config()["rnn"]["config"]["name"] == "inner"


def test_failed_connection_after_a_wrapper_leaves_its_inner_layer_unbuilt():
    inner = ML.Hidden(3, name="dense")
    td = ML.TimeDistributed(inner, name="td")
    td > ML.Hidden(2, initializations=[MI.SingleValue("nope", 0.0)], name="bad")  # noqa: B015  (no shapes yet: no build)
    with pytest.raises(ValueError, match="nope"):
        ML.Input((5, 4), name="seq") > td  # noqa: B015  (shapes fit; building 'bad' fails after td was built)
    assert td.shape is None and inner.shape is None and not inner.params and not td.network.state_dict()
