"""A network of every family saves and reloads: wrapped params, BatchNorm buffers, optimizer state."""

import numpy as np

import mariana as mar
import mariana.activations as MA
import mariana.layers as ML
import mariana.scenari as MS


def test_save_load_resumes_identically(tmp_path):
    mar.seed(0)
    bi = ML.Bidirectional(ML.LSTM(4, return_sequences=True, name="lstm"), name="bi")
    net = ML.Input((5, 3), name="seq") > bi
    net = ML.Input(1, dtype="int64", name="lengths") > bi
    net = (bi > ML.TimeDistributed(ML.Hidden(6, activation=MA.ReLU(), name="dense"), name="td")
           > ML.MultiHeadAttention(2, causal=True, name="att") > ML.Reshape((1, 5, 6), name="img")
           > ML.Conv2D(2, 3, padding="same", name="conv") > ML.BatchNorm(name="bn") > ML.MaxPool2D(2, name="pool")
           > ML.GlobalAvgPool(name="gap") > ML.SoftmaxClassifier(3, learning_scenari=[MS.Adam(1e-2)], name="out"))
    rng = np.random.default_rng(0)
    batch = {"seq": rng.normal(size=(8, 5, 3)).astype(np.float32), "lengths": rng.integers(1, 6, size=(8, 1)),
             "out": rng.integers(0, 3, 8)}
    for _ in range(3):
        net.train("out", **batch)
    net.save(tmp_path / "model.mar")
    back = mar.load(tmp_path / "model.mar")
    assert {"bi.lstm.W", "bi.lstm_backward.U", "td.dense.W", "bn.running_var"} <= set(back.state_dict())
    assert float(back["bn"].running_var.sum()) != 2.0  # trained running stats came back, not fresh ones
    np.testing.assert_array_equal(back.propagate("out", **batch), net.propagate("out", **batch))
    for _ in range(2):  # optimizer state (Adam moments of wrapped params included) came back too
        assert float(back.train("out", **batch)["out"]) == float(net.train("out", **batch)["out"])
    np.testing.assert_array_equal(back.propagate("out", **batch), net.propagate("out", **batch))


def test_reports_count_the_params_a_wrapper_holds():
    from mariana.report.describe import describe_layer

    bi = ML.Bidirectional(ML.GRU(4, name="gru"), name="bi")
    net = ML.Input((5, 3), name="seq") > bi
    described = describe_layer(bi)
    assert described["params"] == described["trainable"] == 2 * (3 * 4 * 3 + 3 * 4 * 4 + 2 * 3 * 4) == sum(p.numel() for p in net.parameters())
    assert set(described["param_shapes"]) == {f"{layer}.{p}" for layer in ("gru", "gru_backward") for p in ("W", "U", "b", "b_U")}
