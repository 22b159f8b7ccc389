"""net.fit shaped as Keras's model.fit (issue 27, item 1): fit(x, y, valid=...), validation_data, validation_split,
callbacks, class_weight, and one clear error for an unknown keyword."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.costs as MC
import mariana.layers as ML
import mariana.scenari as MS
from mariana.models import build_mlp
from mariana.training import DatasetMapper, recorders, stops


def data(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def network():
    mar.seed(0)
    return build_mlp((4,), 2, hidden=8)


def weights(net):
    return {name: value.clone() for name, value in net.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


OPTIONS = {"epochs": 2, "batch_size": 8, "seed": 3, "verbose": 0}


def test_fit_x_y_with_valid_trains_as_the_dict_form():
    x, y = data()
    xv, yv = data(16, seed=1)
    net = network()
    history = net.fit(x, y, valid=(xv, yv), **OPTIONS)
    assert [entry["epoch"] for entry in history] == [1, 2] and "valid" in history[-1]
    reference = network()
    expected = reference.fit({"inp": x, "out": y}, valid=DatasetMapper(inp=xv, out=yv), **OPTIONS)
    assert same(weights(net), weights(reference))
    assert history[-1]["valid"] == expected[-1]["valid"]


def test_validation_data_is_valid_under_keras_name():
    x, y = data()
    xv, yv = data(16, seed=1)
    net = network()
    history = net.fit(x, y, validation_data=(xv, yv), **OPTIONS)
    expected = network().fit(x, y, valid=(xv, yv), **OPTIONS)
    assert history[-1]["valid"] == expected[-1]["valid"]
    with pytest.raises(TypeError, match="not both"):
        network().fit(x, y, valid=(xv, yv), validation_data=(xv, yv), **OPTIONS)


def test_validation_split_keeps_the_last_fraction_for_validation():
    x, y = data()
    net = network()
    history = net.fit(x, y, validation_split=0.25, **OPTIONS)
    reference = network()
    expected = reference.fit(x[:30], y[:30], valid=(x[30:], y[30:]), **OPTIONS)
    assert history[-1]["valid"] == expected[-1]["valid"]
    assert same(weights(net), weights(reference))


def test_validation_split_refuses_what_it_cannot_split():
    x, y = data()
    with pytest.raises(TypeError, match="validation_split splits arrays"):
        network().fit({"inp": x, "out": y}, validation_split=0.2, **OPTIONS)
    with pytest.raises(ValueError, match=r"validation_split must be a float in \(0, 1\)"):
        network().fit(x, y, validation_split=1.5, **OPTIONS)
    with pytest.raises(ValueError, match="not both"):
        network().fit(x, y, valid=(x, y), validation_split=0.2, **OPTIONS)


def test_callbacks_take_recorders_and_stops(tmp_path):
    x, y = data()
    log = tmp_path / "log.csv"
    history = network().fit(x, y, valid=(x, y), callbacks=[recorders.CSV(str(log)), stops.ScoreWall("train", "out", "loss", 1e9)],
                             **{**OPTIONS, "epochs": 5})
    assert len(history) == 1 and history.stop_reason.startswith("ScoreWall")
    assert log.read_text().count("\n") == 2  # the header and one epoch
    with pytest.raises(TypeError, match="pass a list"):
        network().fit(x, y, callbacks=stops.EpochWall(1), **OPTIONS)
    with pytest.raises(TypeError, match="callbacks takes"):
        network().fit(x, y, callbacks=["csv"], **OPTIONS)


def test_class_weight_weighs_the_classifier_cost_for_this_call():
    x, y = data()
    net = network()
    net.fit(x, y, class_weight={1: 5.0}, **OPTIONS)
    assert net["out"].cost.class_weights is None  # for this call only, as in Keras
    reference = network()
    reference["out"].cost = MC.NegativeLogLikelihood(class_weights=[1.0, 5.0])
    reference.fit(x, y, **OPTIONS)
    assert same(weights(net), weights(reference))
    unweighted = network()
    unweighted.fit(x, y, **OPTIONS)
    assert not same(weights(net), weights(unweighted))


def test_class_weight_refuses_unknown_classes_and_non_classifiers():
    x, y = data()
    with pytest.raises(ValueError, match="names class 2, but SoftmaxClassifier 'out' has 2 classes"):
        network().fit(x, y, class_weight={2: 3.0}, **OPTIONS)
    mar.seed(0)
    regression = ML.Input(4, name="inp") > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1)], name="out")
    with pytest.raises(ValueError, match="is not one"):
        regression.fit(x, y.astype(np.float32), class_weight={0: 2.0}, **OPTIONS)


@pytest.mark.parametrize(("keyword", "nearest"), [("epoch", "epochs"), ("validaton_data", "validation_data"), ("callback", "callbacks"),
                                                  ("batchsize", "batch_size"), ("run_directory", "run_dir")])
def test_an_unknown_keyword_names_fit_and_the_nearest_one(keyword, nearest):
    x, y = data()
    with pytest.raises(TypeError, match=rf"fit\(\) got an unexpected keyword argument '{keyword}'; did you mean '{nearest}'\?"):
        network().fit(x, y, **{keyword: 1})


def test_the_earlier_forms_still_work():
    x, y = data()
    train, valid = {"inp": x, "out": y}, DatasetMapper(inp=x, out=y)
    history = network().fit(train, valid, **OPTIONS)  # the valid stream as second positional argument
    assert "valid" in history[-1]
    assert "valid" in network().fit((x, y), valid=(x, y), **OPTIONS)[-1]
    with pytest.raises(TypeError, match="targets y go with an array x"):
        network().fit(train, y, **OPTIONS)
