"""A small network with every kind of node and edge the report draws (shared by the report tests)."""

import mariana as mar
import mariana.activations as MA
import mariana.decorators as MD
import mariana.layers as ML
import mariana.regularizations as MR
import mariana.scenari as MS


def build_report_network():
    """Two inputs (one of ids), a fork, a Concatenate join, an M merge, three outputs and an Autoencode reference."""
    mar.seed(0)
    inp = ML.Input(12, name="inp")
    hid = ML.Hidden(16, activation=MA.ReLU(), decorators=[MD.BinomialDropout(0.1)], regularizations=[MR.L2(1e-4)], name="hid")
    out = ML.SoftmaxClassifier(3, learning_scenari=[MS.GradientDescent(lr=0.05, momentum=0.9), MS.Fixed("b")], name="out")
    network = inp > hid > out
    words = ML.Input(5, dtype="int64", name="words")
    pooled = ML.Hidden(16, name="pooled")
    words > ML.Embedding(20, 4, name="emb") > pooled  # noqa: B015
    joined = ML.Concatenate([hid, pooled], name="joined")
    mixed = ML.M((hid + pooled) / 2, activation=MA.Tanh(), name="mixed")
    joined > ML.Regression(1, learning_scenari=[MS.Adam(1e-3)], name="score")  # noqa: B015
    mixed > ML.Hidden(4, name="code") > ML.Autoencode("inp", activation=MA.Sigmoid(), learning_scenari=[MS.Adam(1e-3)], name="recon")  # noqa: B015
    network.note("built for the report <script>alert(1)</script>")
    return network


HISTORY = [
    {"epoch": epoch, "time": 0.5,
     "train": {"out": {"loss": 1.5 / epoch, "accuracy": 1 - 0.5 / epoch}, "score": {"loss": 0.3 / epoch}},
     "valid": {"out": {"loss": 1.6 / epoch + 0.05, "accuracy": 1 - 0.6 / epoch}}}
    for epoch in range(1, 6)
]
