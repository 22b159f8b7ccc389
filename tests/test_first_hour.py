"""Defects a new user hit in the first hour (issue 12): each test failed before its fix."""

import numpy as np
import pytest
import torch

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from tests.helpers import assert_unchanged, frozen_state

X = np.zeros((4, 2), dtype=np.float32)
Y = np.array([0, 1, 1, 0])


@pytest.fixture
def net():
    mar.seed(0)
    network = ML.Input(2, name="inp") > ML.Hidden(3, name="hid") > ML.SoftmaxClassifier(
        2, learning_scenari=[MS.GradientDescent(lr=0.1, momentum=0.9)], name="out")
    network.train("out", inp=X, out=Y)  # momentum to protect
    return network


def test_mariana_network_is_the_class_arrows_return(net):
    assert isinstance(net, mar.Network) and mar.Network is type(net)


@pytest.mark.parametrize("call", ["train", "test", "accuracy"])
def test_an_empty_batch_is_refused_and_changes_nothing(net, call):
    before = frozen_state(net)
    steps = net["out"].optimizer.steps
    with pytest.raises(ValueError, match=r"Input 'inp' received an empty batch \(0 rows\)"):
        getattr(net, call)("out", inp=np.zeros((0, 2), np.float32), out=np.zeros(0, np.int64))
    assert_unchanged(net, before)
    assert net["out"].optimizer.steps == steps


@pytest.mark.parametrize(("batch", "message"), [
    ({"inp": np.array([[np.nan, 0], [0, np.inf], [0, 0], [1, 1]], np.float32), "out": Y},
     r"Input 'inp' received 2 NaN or infinite value\(s\) in its input data"),
])
def test_non_finite_inputs_are_refused_naming_the_layer_and_the_count(net, batch, message):
    before = frozen_state(net)
    with pytest.raises(ValueError, match=message):
        net.train("out", **batch)
    assert_unchanged(net, before)


def test_non_finite_targets_are_refused_naming_the_output():
    mar.seed(0)
    net = ML.Input(2, name="inp") > ML.Regression(1, learning_scenari=[MS.GradientDescent(0.1)], name="out")
    with pytest.raises(ValueError, match=r"Regression 'out' received 1 NaN or infinite value\(s\) in its targets"):
        net.train("out", inp=X, out=np.array([[0.0], [np.nan], [1.0], [2.0]]))


def test_the_trainer_refuses_a_stream_with_nan_before_writing_anything(tmp_path, net):
    from mariana.training import DatasetMapper, Trainer, stops

    x = X.copy()
    x[2, 1] = np.nan
    trainer = Trainer(net, "out", batch_size=2, stops=[stops.EpochWall(1)], recorders=[], run_dir=tmp_path / "run")
    with pytest.raises(ValueError, match=r"Input 'inp' received 1 NaN"):
        trainer.start(DatasetMapper(inp=x, out=Y))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("targets", ["garbage", np.zeros((4, 2), np.float32)])
def test_targets_for_an_autoencode_output_are_refused(net, targets):
    net["hid"] > ML.Autoencode("inp", learning_scenari=[MS.GradientDescent(0.1)], name="ae")
    before = frozen_state(net)
    with pytest.raises(ValueError, match=r"Autoencode 'ae' takes no targets; it reconstructs the output of 'inp'"):
        net.train("ae", inp=X, ae=targets)
    assert_unchanged(net, before)
    assert float(net.test("out", inp=X, out=Y, ae=targets)["out"]) > 0  # an output not asked for is still ignored


@pytest.mark.parametrize(("source", "layer", "names"), [
    (lambda: ML.Input((1, 4, 4), name="img"), lambda: ML.Conv2D(2, 5, name="conv"), ["Input 'img'", "Conv2D 'conv'"]),
    (lambda: ML.Input((1, 4), name="sig"), lambda: ML.Conv1D(2, 7, name="conv"), ["Input 'sig'", "Conv1D 'conv'"]),
    (lambda: ML.Input((1, 2, 2, 2), name="vol"), lambda: ML.MaxPool3D(3, name="pool"), ["Input 'vol'", "MaxPool3D 'pool'"]),
    (lambda: ML.Input(6, name="v"), lambda: ML.Reshape((4,), name="r"), ["Input 'v'", "Reshape 'r'"]),
    (lambda: ML.Input(6, name="v"), lambda: ML.LSTM(3, name="lstm"), ["Input 'v'", "LSTM 'lstm'"]),
    (lambda: ML.Input(6, name="v"), lambda: ML.TimeDistributed(ML.Hidden(2), name="td"), ["Input 'v'", "TimeDistributed 'td'"]),
    (lambda: ML.Input((5, 4), name="seq"), lambda: ML.MultiHeadAttention(3, name="att"), ["Input 'seq'", "MultiHeadAttention 'att'"]),
    (lambda: ML.Input(6, name="v"), lambda: ML.GlobalMaxPool(name="g"), ["Input 'v'", "GlobalMaxPool 'g'"]),
])
def test_a_shape_mistake_at_the_arrow_names_both_layers(source, layer, names):
    with pytest.raises(ValueError) as error:
        source() > layer()
    assert all(name in str(error.value) for name in names), str(error.value)


def test_a_build_mistake_at_the_arrow_names_both_layers():
    import mariana.decorators as MD

    with pytest.raises(ValueError, match=r"Cannot connect Input 'v' > Hidden 'h': Hidden 'h': Mask of shape \(3,\)"):
        ML.Input(3, name="v") > ML.Hidden(2, decorators=[MD.Mask(np.ones(3))], name="h")


def test_numpy_integers_are_ints(net):
    from mariana.training import DatasetMapper, Trainer, stops

    assert ML.Hidden(np.int64(3)).size == 3
    trainer = Trainer(net, "out", batch_size=np.int64(2), stops=[stops.EpochWall(np.int32(1))], recorders=[])
    assert trainer.batch_size == 2 and type(trainer.batch_size) is int
    assert len(trainer.start(DatasetMapper(inp=X, out=Y))) == 1
    assert net.propagate("out", inp=X, batch_size=np.int64(3)).shape == (4, 2)


def test_the_no_optimizer_message_names_each_place_once():
    network = ML.Input(2, name="inp") > ML.SoftmaxClassifier(2, name="out")
    with pytest.raises(ValueError) as error:
        network.train("out", inp=X, out=Y)
    assert "to 'out', or MS.Fixed()" in str(error.value) and "'out' or to 'out'" not in str(error.value)


def test_fit_takes_bare_arrays_for_one_input_and_one_output(net):
    history = net.fit(X, Y, epochs=2, batch_size=2, recorders=[])
    assert [entry["epoch"] for entry in history] == [1, 2]
    history = net.fit((X, Y), valid=(X, Y), epochs=1, batch_size=2, recorders=[])
    assert "valid" in history[-1]


def test_fit_with_a_bare_array_elsewhere_shows_the_dict_form():
    a, b = ML.Input(2, name="a"), ML.Input(2, name="b")
    net = ML.C([a, b], name="cat") > ML.SoftmaxClassifier(2, learning_scenari=[MS.GradientDescent(0.1)], name="out")
    with pytest.raises(TypeError, match=r"pass a dict of layer name -> array such as \{'a': x, 'b': x, 'out': y\}"):
        net.fit(X, Y, epochs=1)
    with pytest.raises(TypeError, match=r"train got a bare array"):
        net.fit(X, epochs=1)


def test_the_reference_data_path_is_unchanged_by_checks():
    # The finiteness check reads host data only: data already on the device is not synced (CPU here: checked).
    t = torch.zeros(2, 2)
    from mariana.execution import check_finite

    check_finite(t, ML.Input(2, name="probe"), "input data")


def test_a_layer_cannot_be_named_training():
    with pytest.raises(ValueError, match=r"Hidden: the name 'training' is reserved: net.forward takes training="):
        ML.Hidden(2, name="training")


def test_a_recorder_missing_its_package_fails_when_the_trainer_is_built(tmp_path, net, monkeypatch):
    import sys

    from mariana.training import DatasetMapper, Trainer, recorders, stops

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(ImportError, match=r"recorders.TensorBoard needs the tensorboard package"):
        Trainer(net, "out", batch_size=2, stops=[stops.EpochWall(1)], recorders=[recorders.TensorBoard()], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    monkeypatch.undo()
    trainer = Trainer(net, "out", batch_size=2, stops=[stops.EpochWall(1)], recorders=[recorders.TensorBoard()], run_dir=tmp_path / "run")
    assert len(trainer.start(DatasetMapper(inp=X, out=Y))) == 1  # the same run dir is still free


def test_a_masked_array_is_refused_when_the_mapper_is_built():
    from mariana.training import DatasetMapper

    with pytest.raises(ValueError, match=r"DatasetMapper: 'inp' is a numpy masked array \(1 of 8 values masked\)"):
        DatasetMapper(inp=np.ma.masked_array(X, mask=np.eye(4, 2, dtype=bool) & (np.arange(4)[:, None] == 0)), out=Y)
