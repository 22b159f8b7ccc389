"""Options that were silent no-ops or bare Python errors are refused at construction, before anything is written (issue 27, item 5)."""

import numpy as np
import pytest

import mariana as mar
import mariana.layers as ML
import mariana.scenari as MS
from mariana.training import DatasetMapper, Trainer, recorders, stops


def classifier(schedule=None):
    mar.seed(0)
    scenario = MS.GradientDescent(0.1, schedule=schedule) if schedule else MS.GradientDescent(0.1)
    return ML.Input(4, name="inp") > ML.SoftmaxClassifier(2, learning_scenari=[scenario], name="out")


def data():
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    return DatasetMapper(inp=x, out=(x[:, 0] > 0).astype(np.int64))


def test_resume_auto_without_a_run_dir_is_refused(tmp_path):
    with pytest.raises(ValueError, match="would not be restartable; pass run_dir"):
        Trainer(classifier(), stops=[stops.EpochWall(1)], recorders=[], resume="auto")
    Trainer(classifier(), stops=[stops.EpochWall(1)], recorders=[], resume="auto", run_dir=tmp_path / "run")


def test_reduce_lr_on_plateau_naming_an_untrained_output_is_refused_before_training(tmp_path):
    net = classifier(MS.ReduceLROnPlateau("valid", output="outt"))
    trainer = Trainer(net, stops=[stops.EpochWall(1)], recorders=[], run_dir=tmp_path / "run")
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau watches output 'outt', but the run trains outputs \['out'\]"):
        trainer.start(data(), valid=data())
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    Trainer(classifier(MS.ReduceLROnPlateau("valid", output="out")), stops=[stops.EpochWall(1)], recorders=[]).start(data(), valid=data())


@pytest.mark.parametrize(("make", "argument"), [
    (lambda: stops.EarlyStopping("valid", "out", min_delta="0.1"), "EarlyStopping: min_delta"),
    (lambda: stops.ScoreWall("valid", "out", threshold="0.1"), "ScoreWall: threshold"),
    (lambda: MS.ReduceLROnPlateau("valid", factor="0.5"), "ReduceLROnPlateau: factor"),
    (lambda: MS.ReduceLROnPlateau("valid", threshold="1e-4"), "ReduceLROnPlateau: threshold"),
])
def test_a_string_number_is_a_type_error_naming_the_argument(make, argument):
    with pytest.raises(TypeError, match=f"{argument} must be a number, but received str"):
        make()


def test_numpy_numbers_are_numbers():
    assert stops.EarlyStopping("valid", "out", min_delta=np.float32(0.5)).min_delta == 0.5
    assert MS.ReduceLROnPlateau("valid", factor=np.float64(0.5)).factor_by == 0.5


@pytest.mark.parametrize(("keyword", "value"), [("recorders", recorders.CSV("x.csv")), ("stops", stops.EpochWall(3))])
def test_a_single_callback_is_told_to_be_a_list(keyword, value, tmp_path):
    arguments = {"stops": [stops.EpochWall(1)], "recorders": [], keyword: value}
    with pytest.raises(TypeError, match=rf"{keyword} expects a list .* pass a list: {keyword}=\["):
        Trainer(classifier(), run_dir=tmp_path / "run", **arguments)
    assert not (tmp_path / "run").exists()


def test_a_numpy_float_ema_is_accepted():
    trainer = Trainer(classifier(), stops=[stops.EpochWall(1)], recorders=[], ema=np.float32(0.99))
    assert trainer.settings.ema == pytest.approx(0.99) and type(trainer.settings.ema) is float
    trainer.start(data())
    for bad in (1.0, 0, True, "0.9"):
        with pytest.raises(ValueError, match="ema must be a float in"):
            Trainer(classifier(), stops=[stops.EpochWall(1)], recorders=[], ema=bad)
