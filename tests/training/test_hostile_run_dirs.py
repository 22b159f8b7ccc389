"""A stranger's run directory (issue 13): each test builds the hostile directory itself."""

import fcntl
import json
import os

import numpy as np
import pytest
import torch

import mariana as mar
from mariana.training.storage import run_files
from mariana.training.storage import run_record as RR
from mariana.training.storage.checkpoint import CheckpointStore, CheckpointWarning, clean_run_directory


# -- 6. temps left by kills --------------------------------------------------------------
def test_clean_run_directory_removes_only_stale_temps_of_run_files(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "log.csv").write_text("epoch\n")
    ours = [".latest.a1b2c3d4.tmp", ".best.a1b2c3d4.tmp", ".run.json.a1b2c3d4.tmp", ".log.csv.a1b2c3d4.tmp",
            "data/.train.safetensors.a1b2c3d4.tmp", "checkpoints/.ckpt-000002-e1-s0.safetensors.a1b2c3d4.tmp",
            "checkpoints/.ckpt-000002-e1-s0.safetensors.sha256.a1b2c3d4.tmp"]
    users = [".notes.a1b2c3d4.tmp", "latest.a1b2c3d4.tmp", ".latest.a1b2c3d4.tmp~", "data/.x.npy.a1b2c3d4.tmp",
             "checkpoints/.mine.a1b2c3d4.tmp", "data/readme.txt"]
    for name in ours + users:
        (run_dir / name).write_text("x")
    live = run_dir / ".run.json.live1234.tmp"
    live.write_text("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".ckpt-000001-e0-s0.safetensors.a1b2c3d4.tmp").write_text("x")
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        removed = clean_run_directory(run_dir)
    assert sorted(str(p.relative_to(run_dir)) for p in removed) == sorted(ours)
    assert all(not (run_dir / name).exists() for name in ours)
    assert all((run_dir / name).exists() for name in users) and live.exists()
    assert clean_run_directory(run_dir) == [live]  # its writer is gone now
    (run_dir / "checkpoints").rename(tmp_path / "moved")
    (run_dir / "checkpoints").symlink_to(elsewhere)  # a symlinked folder is not entered
    assert clean_run_directory(run_dir) == [] and len(list(elsewhere.iterdir())) == 1
    assert clean_run_directory(tmp_path / "missing") == []


def test_checkpoint_saves_remove_stale_checkpoint_temps_only(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    store.save({"w": torch.ones(2)}, {}, epoch=1, step=0)
    stale = tmp_path / "checkpoints" / ".ckpt-000002-e2-s0.safetensors.zzzz9999.tmp"
    live = tmp_path / "checkpoints" / ".ckpt-000002-e2-s0.safetensors.live9999.tmp"
    user = tmp_path / "checkpoints" / ".notes.zzzz9999.tmp"
    for path in (stale, live, user):
        path.write_bytes(b"x")
    with open(live, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        store.save({"w": torch.ones(2)}, {}, epoch=2, step=0)
    assert not stale.exists() and live.exists() and user.exists()




# -- 7. a lost latest pointer ------------------------------------------------------------
def _store_with_three(tmp_path):
    store = CheckpointStore(tmp_path)
    for epoch in (1, 2, 3):
        store.save({"w": torch.full((2,), float(epoch))}, {"epoch": epoch}, epoch=epoch, step=0, best=epoch == 3)
    return store


@pytest.mark.parametrize("damage", ["deleted", "truncated", "not_utf8", "empty"])
def test_a_lost_or_unreadable_latest_falls_back_on_the_newest_intact_checkpoint(damage, tmp_path):
    store = _store_with_three(tmp_path)
    latest = tmp_path / "latest"
    if damage == "deleted":
        latest.unlink()
    else:
        latest.write_bytes({"truncated": latest.read_bytes()[:20], "not_utf8": b"\xff\xfe{", "empty": b""}[damage])
    with pytest.warns(CheckpointWarning, match=r"Falling back on the newest intact checkpoint, .*ckpt-000003-e3-s0.safetensors' "
                                               r"\(epoch 3, step 0; its sha256 matches"):
        tensors, state = store.load("latest")
    assert state == {"epoch": 3} and tensors["w"].tolist() == [3.0, 3.0]


def test_the_fallback_skips_checkpoints_that_do_not_match_their_sidecar(tmp_path):
    store = _store_with_three(tmp_path)
    (tmp_path / "latest").unlink()
    newest = tmp_path / "checkpoints" / "ckpt-000003-e3-s0.safetensors"
    newest.write_bytes(newest.read_bytes()[:-1] + b"\x00")
    (tmp_path / "checkpoints" / "ckpt-000002-e2-s0.safetensors.sha256").write_text("0" * 64 + "  ckpt-000002-e2-s0.safetensors\n")
    with pytest.warns(CheckpointWarning, match="ckpt-000001-e1-s0"):
        assert store.load("latest")[1] == {"epoch": 1}
    (tmp_path / "checkpoints" / "ckpt-000001-e1-s0.safetensors.sha256").unlink()
    with pytest.raises(FileNotFoundError, match=r"No checkpoint in .* matches its .sha256 sidecar.* Start the run again"):
        store.load("latest")


def test_a_readable_pointer_that_cannot_be_honoured_is_refused_with_the_way_out(tmp_path):
    store = _store_with_three(tmp_path)
    newest = tmp_path / "checkpoints" / "ckpt-000003-e3-s0.safetensors"
    newest.write_bytes(newest.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ValueError, match=r"is damaged: .* Restore it from a copy, or delete .*latest' to resume from the newest "
                                         r"intact checkpoint, ckpt-000002-e2-s0.safetensors"):
        store.load("latest")
    with pytest.raises(ValueError, match="is damaged") as refused:
        store.load("best")
    assert "delete" not in str(refused.value)


def test_no_checkpoint_at_all_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no checkpoint yet\. No checkpoint in .* either: the run was stopped before "
                                                 r"its first checkpoint\. Start it again with a new run_dir"):
        CheckpointStore(tmp_path).load("latest")


def test_has_checkpoint_tells_a_run_killed_before_its_first_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".ckpt-000001-e0-s0.safetensors.a1b2c3d4.tmp").write_bytes(b"half")  # killed mid-write
    assert not store.has_checkpoint()
    store.save({"w": torch.ones(2)}, {}, epoch=0, step=0)
    assert store.has_checkpoint()
    (tmp_path / "latest").unlink()
    assert store.has_checkpoint()  # the checkpoint itself is still there to fall back on


def test_pruning_removes_sidecars_and_survives_a_damaged_pointer(tmp_path):
    store = CheckpointStore(tmp_path, keep=1)
    store.save({"w": torch.ones(2)}, {}, epoch=1, step=0, best=True)
    (tmp_path / "best").write_text("{")
    store.save({"w": torch.ones(2)}, {}, epoch=2, step=0)
    store.save({"w": torch.ones(2)}, {}, epoch=3, step=0)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["ckpt-000003-e3-s0.safetensors", "ckpt-000003-e3-s0.safetensors.sha256"]


def test_resume_after_latest_was_deleted_warns_and_finishes(tmp_path):
    from mariana.models import build_mlp
    from mariana.training import DatasetMapper, Trainer, stops

    def run(run_dir, epochs):
        mar.seed(0)
        trainer = Trainer(build_mlp((4,), 3, hidden=5), "out", batch_size=16, stops=[stops.EpochWall(epochs)], recorders=[],
                          run_dir=run_dir, seed=1)
        rng = np.random.default_rng(0)
        trainer.start(DatasetMapper(inp=rng.random((40, 4), dtype="float32"), out=rng.integers(0, 3, 40)))
        return trainer

    reference = run(tmp_path / "reference", 2)
    interrupted = run(tmp_path / "run", 2)
    assert torch.equal(interrupted.net["hid"].W, reference.net["hid"].W)
    (tmp_path / "run" / "latest").unlink()
    with pytest.warns(CheckpointWarning, match="ckpt-000003-e2-s0"):
        resumed = Trainer.resume(tmp_path / "run")
    assert torch.equal(resumed.net["hid"].W, reference.net["hid"].W)


# -- 10. messages ------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b'{"trainer": ', b"\xff\xfe", b'{"a": 1, "a": 2}', b"[" * 100_000])
def test_json_errors_in_run_files_name_the_file(content, tmp_path):
    (tmp_path / "run.json").write_bytes(content)
    with pytest.raises(ValueError, match=r"run.json' is not valid JSON \(.*\); it was damaged or edited"):
        run_files.read_json(tmp_path / "run.json")
    (tmp_path / "latest").write_bytes(content)
    with pytest.raises(ValueError, match=r"latest' is not valid JSON \(.*\); it was damaged or edited\. No checkpoint in"):
        CheckpointStore(tmp_path).load("latest")


def test_an_oversized_run_file_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(run_files, "MAX_JSON_BYTES", 100)
    (tmp_path / "run.json").write_text(json.dumps({"x": "y" * 200}))
    with pytest.raises(ValueError, match=r"run.json' is over 100 bytes"):
        run_files.read_json(tmp_path / "run.json")


def test_read_json_reads_utf8_whatever_the_locale(tmp_path):
    (tmp_path / "run.json").write_bytes('{"a": "é"}'.encode())
    assert run_files.read_json(tmp_path / "run.json") == {"a": "é"}


# -- 2 (preparation). run.json tied to the checkpoints -------------------------------------
@pytest.fixture(scope="module")
def run_document(tmp_path_factory):
    """The run.json of a real (one-epoch) run."""
    from mariana.models import build_mlp
    from mariana.training import DatasetMapper, Trainer, stops

    mar.seed(0)
    run_dir = tmp_path_factory.mktemp("run") / "run"
    trainer = Trainer(build_mlp((4,), 3, hidden=5), "out", batch_size=16, stops=[stops.EpochWall(1)], recorders=[], run_dir=run_dir)
    trainer.start(DatasetMapper(inp=np.zeros((20, 4), dtype="float32"), out=np.zeros(20, dtype="int64")))
    return run_files.read_json(run_dir / "run.json")


def _edit(document, change):
    edited = json.loads(json.dumps(document))
    change(edited)
    return edited


def test_run_digest_is_canonical_and_changes_with_any_value(run_document):
    reordered = json.loads(json.dumps(run_document, sort_keys=True), object_pairs_hook=lambda pairs: dict(reversed(pairs)))
    assert RR.run_digest(reordered) == RR.run_digest(run_document)
    assert RR.run_digest(json.loads(json.dumps(run_document, indent=3))) == RR.run_digest(run_document)
    for changed in (1.0, True, "16", 17):
        assert RR.run_digest(_edit(run_document, lambda d, v=changed: d["trainer"].update(batch_size=v))) != RR.run_digest(run_document)


def _hidden(document):
    return next(i for i, layer in enumerate(document["network"]["layers"]) if layer["class"] == "Hidden")


def _output(document):
    return next(i for i, layer in enumerate(document["network"]["layers"]) if layer["class"] == "SoftmaxClassifier")


EDITS = {  # the edits of issue 13, item 2, and the fields each must be reported as
    "activation": (lambda d: d["network"]["layers"][_hidden(d)]["config"]["activation"].update({"class": "Tanh"}),
                   lambda d: [f"network.layers[{_hidden(d)}].config.activation.class"]),
    "dropout_removed": (lambda d: d["network"]["layers"][_hidden(d)]["config"].update(decorators=[]),
                        lambda d: [f"network.layers[{_hidden(d)}].config.decorators[0]"]),
    "lr": (lambda d: d["network"]["layers"][_output(d)]["config"]["learning_scenari"][0]["config"].update(lr=5.0),
           lambda d: [f"network.layers[{_output(d)}].config.learning_scenari[0].config.lr"]),
    "batch_size": (lambda d: d["trainer"].update(batch_size=32), lambda d: ["trainer.batch_size"]),
    "epoch_wall": (lambda d: d["trainer"]["stops"][0]["config"].update(epochs=3), lambda d: ["trainer.stops[0].config.epochs"]),
    "key_added_and_removed": (lambda d: (d["trainer"].pop("order"), d["trainer"].update({"a.b": 1})),
                              lambda d: ["trainer.order", 'trainer["a.b"]']),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_run_differences_name_each_edited_field(edit, run_document):
    change, expected = EDITS[edit]
    edited = _edit(run_document, change)
    assert RR.run_differences(run_document, edited) == expected(run_document)
    assert RR.run_differences(run_document, json.loads(json.dumps(run_document))) == []
    with pytest.raises(ValueError, match=r"'runs/x/run.json' was changed after the run started: " + expected(run_document)[0]
                       .replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        RR.check_run_document(run_document, edited, "runs/x/run.json")
    RR.check_run_document(run_document, run_document, "runs/x/run.json")


def test_run_differences_report_values_types_and_whole_documents():
    assert RR.run_differences({"a": 1}, {"a": 1.0}) == ["a"]
    assert RR.run_differences({"a": 1}, {"a": True}) == ["a"]
    assert RR.run_differences({"a": [1, 2]}, {"a": {"0": 1}}) == ["a"]
    assert RR.run_differences({"a": float("nan")}, {"a": float("nan")}) == []
    assert RR.run_differences([1], {"a": 1}) == ["(the whole document)"]
    with pytest.raises(ValueError, match=r"trainer\.batch_size \(was 16, now 32\), trainer\.seed \(removed, was 1\), "
                                         r"trainer\.x \(added, now \"y\"\)"):
        RR.check_run_document({"trainer": {"batch_size": 16, "seed": 1}}, {"trainer": {"batch_size": 32, "x": "y"}}, "run.json")


def test_a_run_record_ties_the_document_and_refuses_an_edit_or_a_forged_record(run_document):
    record = json.loads(json.dumps(RR.run_record(run_document)))  # as stored in a checkpoint's JSON metadata
    RR.check_run_record(record, json.loads(json.dumps(run_document)), "run.json")
    edited = _edit(run_document, lambda d: d["trainer"].update(batch_size=32))
    with pytest.raises(ValueError, match=r"'run.json' was changed after the run started: trainer.batch_size \(was \d+, now 32\)"):
        RR.check_run_record(record, edited, "run.json")
    forged = {**record, "document": edited}  # the record edited to match, without its digest
    for bad in (forged, {"sha256": record["sha256"]}, None, [record]):
        with pytest.raises(ValueError, match="record of 'run.json' is malformed or does not match its own sha256"):
            RR.check_run_record(bad, edited, "run.json")
