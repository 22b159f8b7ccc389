"""mariana.tuning.search on digits: the best trial's saved network is the study's best, pruning, refused arguments."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

optuna = pytest.importorskip("optuna", reason="mariana.tuning needs optuna (the 'tune' extra, in 'test')")

import mariana as mar  # noqa: E402
import mariana.tuning as MT  # noqa: E402
from mariana.training import Trainer  # noqa: E402
from mariana.tuning.requirement import import_optuna  # noqa: E402
from tests.tuning.digits_search import ACTIVATIONS, build, digits_streams  # noqa: E402


@pytest.fixture(scope="module")
def streams():
    return digits_streams()


@pytest.fixture(scope="module")
def digits_study(streams, tmp_path_factory, one_thread):
    train, valid = streams
    root = tmp_path_factory.mktemp("study")
    study = MT.search(build, train, valid, trials=5, epochs=4, batch_size=64, objective=("valid", "out", "accuracy"),
                      sampler=optuna.samplers.TPESampler(seed=0), run_root=root / "runs", verbose=False)
    return study, root / "runs"


def test_five_trials_find_a_network_whose_valid_accuracy_is_the_best_value(digits_study, streams):
    study, _ = digits_study
    _, valid = streams
    assert len(study.finished_trials) == 5 and all(t.state.name == "COMPLETE" for t in study.finished_trials)
    values = [t.value for t in study.finished_trials]
    assert study.best_value == max(values) and len(set(values)) > 1  # the trials really differ
    net = study.best_network()
    assert net.accuracy("out", **valid) == study.best_value


def test_the_best_network_has_the_chosen_size_and_activation(digits_study):
    study, _ = digits_study
    params = study.best_params
    assert set(params) == {"size", "act", "lr"}
    assert params["act"] is ACTIVATIONS[study.best_trial.params["act"]]  # the study stores the position, build gets the option
    net = study.best_network()
    assert net["hid"].size == params["size"] == study.best_trial.params["size"]
    assert type(net["hid"].activation) is type(params["act"])
    assert net["out"].learning_scenari[0].lr == pytest.approx(params["lr"])


def test_each_trial_records_its_number_in_run_json_and_the_generation_log(digits_study):
    study, root = digits_study
    best = study.best_trial
    run = json.loads((root / f"trial-{best.number:04d}" / "run.json").read_text())
    assert run["trainer"]["hyperparameters"]["trial"] == best.number
    assert run["trainer"]["hyperparameters"]["size"] == best.params["size"]
    log = study.best_network().log
    start = [entry for entry in log if entry["event"] == "training" and entry.get("phase") == "start"]
    assert start[-1]["hyperparameters"]["trial"] == best.number
    notes = [entry["text"] for entry in log if entry["event"] == "note"]
    assert notes[-1] == f"Optuna study {study.name!r}, trial {best.number}: valid/out/accuracy = {study.best_value:.6g}"
    assert sorted(p.name for p in root.iterdir()) == [f"trial-{n:04d}" for n in range(5)]


def test_a_study_on_a_loss_is_minimized_and_other_trainer_options_pass_through(streams, tmp_path, one_thread):
    train, valid = streams
    study = MT.search(build, train, valid, trials=2, epochs=1, batch_size=128, objective=("valid", "out", "loss"), pruner=None,
                      run_root=tmp_path, verbose=False, accumulate=2, eval_batch_size=256)
    assert study.optuna.direction.name == "MINIMIZE"
    assert study.best_value == min(t.value for t in study.finished_trials)
    run = json.loads((tmp_path / "trial-0000" / "run.json").read_text())
    assert run["trainer"]["accumulate"] == 2 and run["trainer"]["eval_batch_size"] == 256
    net = study.best_network()
    assert float(net.test("out", **valid)["out"]) == pytest.approx(study.best_value, rel=1e-6)


def test_the_median_pruner_stops_a_poor_trial_and_says_so(streams, tmp_path, one_thread):
    train, valid = streams
    storage = optuna.storages.InMemoryStorage()
    prepared = optuna.create_study(storage=storage, study_name="pruning", direction="maximize")
    for lr in (0.05, 0.05, 1e-4):  # two good trials, then one that learns too slowly
        prepared.enqueue_trial({"size": 32, "act": 0, "lr": lr})
    study = MT.search(build, train, valid, trials=3, epochs=4, objective=("valid", "out", "accuracy"), storage=storage,
                      study_name="pruning", run_root=tmp_path, pruner=optuna.pruners.MedianPruner(n_startup_trials=2), verbose=False)
    states = [t.state.name for t in study.optuna.trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED"]
    pruned = study.optuna.trials[2]
    assert pruned.user_attrs["mariana"]["stop_reason"] == "pruned by the median pruner at epoch 1"
    assert sorted(pruned.intermediate_values) == [1]
    assert sorted(study.optuna.trials[0].intermediate_values) == [1, 2, 3, 4]
    run = json.loads((tmp_path / "trial-0002" / "run.json").read_text())
    expected = {"class": "PruneTrial", "config": {"stream": "valid", "output": "out", "metric": "accuracy", "pruner": "median"}}
    assert expected in run["trainer"]["stops"]
    notes = [entry["text"] for entry in mar.load(tmp_path / "trial-0002" / "network.mar").log if entry["event"] == "note"]
    assert notes == ["Optuna study 'pruning', trial 2: pruned by the median pruner at epoch 1"]
    # The run directory resumes without the search: the rebuilt stop has no trial and never fires.
    assert Trainer.resume(tmp_path / "trial-0002").stop_reason == "pruned by the median pruner at epoch 1"


def test_a_worker_joining_a_study_with_other_settings_is_refused(streams, tmp_path, one_thread):
    train, valid = streams
    storage = optuna.storages.InMemoryStorage()
    MT.search(build, train, valid, trials=1, epochs=1, objective=("valid", "out", "accuracy"), storage=storage, study_name="s",
              run_root=tmp_path, verbose=False)
    with pytest.raises(ValueError, match=r"study 's' was started with other settings: epochs \(the study has 1, this search 2\)"):
        MT.search(build, train, valid, trials=1, epochs=2, objective=("valid", "out", "accuracy"), storage=storage, study_name="s",
                  run_root=tmp_path, verbose=False)
    again = MT.search(build, train, valid, trials=1, epochs=1, objective=("valid", "out", "accuracy"), storage=storage, study_name="s",
                      run_root=tmp_path, verbose=False)
    assert len(again.optuna.trials) == 1  # the study already holds its one trial: nothing more runs
    optuna.create_study(storage=storage, study_name="made-before", direction="minimize")
    with pytest.raises(ValueError, match=r"study 'made-before' minimizes its objective, but .* valid/out/accuracy is to maximize"):
        MT.search(build, train, valid, trials=1, epochs=1, objective=("valid", "out", "accuracy"), storage=storage, study_name="made-before",
                  run_root=tmp_path / "other", verbose=False)


@pytest.mark.parametrize("change, error, message", [
    ({"objective": ("valid", "out")}, ValueError, r"objective must be \(stream, output, metric\)"),
    ({"objective": ("valid", "out", "f1")}, ValueError, r"must name a stream of .* and a metric of \('loss', 'accuracy'\)"),
    ({"objective": ("test", "out", "loss")}, ValueError, "the objective reads the test stream, but no test data was given"),
    ({"trials": 0}, ValueError, r"search: trials must be an int >= 1, but received 0"),
    ({"pruner": "mean"}, ValueError, r"pruner must be 'median', None or an Optuna pruner .* received 'mean'"),
    ({"run_dir": "x"}, TypeError, r"run_dir= is set by the search for each trial"),
    ({"precison": "32"}, TypeError, r"unexpected keyword 'precison'; .* accepts \[.*'precision'"),
    ({"storage": 3}, TypeError, r"storage must be None, a database URL .* but received int"),
    ({"build": "net"}, TypeError, r"build must be a function build\(hp\) -> Network, but received str"),
])
def test_refused_arguments_name_the_problem_and_write_nothing(streams, tmp_path, change, error, message):
    train, valid = streams
    arguments = {"build": build, "trials": 2, "epochs": 1, "objective": ("valid", "out", "accuracy"), "run_root": tmp_path / "runs",
                 "verbose": False, **change}
    with pytest.raises(error, match=message):
        MT.search(arguments.pop("build"), train, valid, **arguments)
    assert not (tmp_path / "runs").exists()


def test_a_build_that_returns_no_network_fails_its_trial_with_a_clear_error(streams, tmp_path):
    train, valid = streams
    with pytest.raises(TypeError, match="build\\(hp\\) must return a mariana Network, but returned dict"):
        MT.search(lambda hp: {"size": hp.int("size", 1, 4)}, train, valid, trials=1, epochs=1, objective=("valid", "out", "accuracy"),
                  run_root=tmp_path, verbose=False)


def test_hp_draws_each_name_once_and_checks_its_ranges():
    hp = MT.HyperParameters(optuna.trial.FixedTrial({"size": 4, "act": 0, "lr": 0.1}))
    assert hp.int("size", 1, 8) == 4
    with pytest.raises(ValueError, match="hp.int\\('size'\\): this name was already drawn in this build"):
        hp.int("size", 1, 8)
    with pytest.raises(ValueError, match=r"hp.float\('lr'\): expected finite numbers low <= high with low > 0 \(log=True\), but received low=0"):
        hp.float("lr", 0, 1, log=True)
    with pytest.raises(ValueError, match=r"hp.int\('n'\): expected ints low <= high, but received low=5, high=2"):
        hp.int("n", 5, 2)
    with pytest.raises(ValueError, match=r"hp.choice\('act'\): expected a non-empty list or tuple of options, but received \[\]"):
        hp.choice("act", [])
    with pytest.raises(TypeError, match="hp.float: the name must be a non-empty str, but received 3"):
        hp.float(3, 0, 1)
    assert hp.shown() == {"size": 4}  # a refused draw records nothing


def test_a_missing_optuna_is_one_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # what a machine without optuna gives: import optuna raises ImportError
    with pytest.raises(ImportError, match=r'mariana.tuning runs its searches on Optuna, which is not installed .* pip install "mariana\[tune\]"'):
        import_optuna()
    with pytest.raises(ImportError, match=r'pip install "mariana\[tune\]"'):
        MT.search(build, {"inp": np.zeros((2, 64), "float32"), "out": np.zeros(2, "int64")}, trials=1, epochs=1,
                  objective=("train", "out", "loss"))


def test_a_run_root_holding_another_study_s_trials_is_refused_before_any_training(streams, tmp_path, one_thread):
    train, valid = streams
    first = MT.search(build, train, valid, trials=1, epochs=1, objective=("valid", "out", "accuracy"), run_root=tmp_path, verbose=False)
    with pytest.raises(ValueError, match=rf"run_root .* holds the trials of another study \(trial-0000 belongs to '{first.name}', not 'second'\)"):
        MT.search(build, train, valid, trials=1, epochs=1, objective=("valid", "out", "accuracy"), run_root=tmp_path, study_name="second",
                  verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial-0000"]


def test_the_study_report_is_one_offline_file_with_the_trials_importances_and_best_network(digits_study, tmp_path):
    from mariana.tuning.report import study_data

    study, _ = digits_study
    data = study_data(study)
    assert [row["number"] for row in data["trials"]] == [0, 1, 2, 3, 4]
    assert data["best"] == {"number": study.best_trial.number, "value": study.best_value}
    assert sorted(data["importances"]) == ["act", "lr", "size"] and sum(data["importances"].values()) == pytest.approx(1)
    assert all(row["steps"] == [1, 2, 3, 4] and row["epochs"] == 4 for row in data["trials"])
    study.to_html(tmp_path / "study.html")
    page = (tmp_path / "study.html").read_text()
    assert 'id="mariana-study"' in page and 'id="mariana-data"' in page and '"name":"hid"' in page
    assert "http://" not in page.replace("http://www.w3.org", "")  # no request: the browser test checks it too
