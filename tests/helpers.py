"""Helpers several test files share: checks of unchanged or identical state, a small training run, files to forge.

Test files import helpers from here, never from one another.
"""

import gzip
import hashlib
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import mariana as mar
from mariana.models import build_mlp
from mariana.training import Trainer, stops
from tests.training import run_child

ROOT = Path(__file__).resolve().parent.parent

#: Debian's headless Chromium, which the browser tests drive through Playwright (None: those tests skip).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def watched_page(browser, width, height):
    """A new page of ``browser`` and the lists its console messages, page errors and requests will go into."""
    page = browser.new_page(viewport={"width": width, "height": height})
    messages, requests = [], []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    page.on("request", lambda request: requests.append(request.url))
    return page, messages, requests

SLOW_SAVE = textwrap.dedent("""
    import sys, time, zipfile
    import mariana as mar, mariana.layers as ML
    mar.seed(0)
    net = ML.Input(64, name="inp") > ML.Hidden(256, name="hid") > ML.Regression(8, name="out")
    original = zipfile.ZipFile.writestr
    def slow_writestr(self, info, data, *args, **kwargs):
        original(self, info, data, *args, **kwargs)
        self.fp.flush()
        open(sys.argv[2], "w").close()  # tell the parent the save is half written
        time.sleep(60)
    zipfile.ZipFile.writestr = slow_writestr
    net.save(sys.argv[1])
""")


def forge_checkpoint_without(run_dir, fragment):
    """Rewrite the latest checkpoint without the tensors whose key holds ``fragment``, with a matching sha256."""
    from safetensors.torch import load, save

    pointer = json.loads((run_dir / "latest").read_text())
    path = run_dir / "checkpoints" / pointer["checkpoint"]
    data = path.read_bytes()
    metadata = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    forged = save({k: v for k, v in load(data).items() if fragment not in k}, metadata=metadata)
    path.write_bytes(forged)
    pointer["sha256"] = hashlib.sha256(forged).hexdigest()
    (run_dir / "latest").write_text(json.dumps(pointer))
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.exists():
        sidecar.write_text(f"{pointer['sha256']}  {path.name}\n")


def train(mapper, run_dir=None, extra=(), epochs=2, **options):
    mar.seed(0)
    net = build_mlp((6,), 3, hidden=16)  # dropout: bit-identity needs the same random draws in the same order
    trainer = Trainer(net, "out", batch_size=32, stops=[stops.EpochWall(epochs)], recorders=list(extra), seed=1,
                      run_dir=run_dir, **options)
    return trainer, trainer.start(mapper, valid=mapper)


def assert_identical(trainer, reference):
    weights, optimizer, history = reference
    final = trainer.net.state_dict()
    assert sorted(final) == sorted(weights)
    for key in weights:
        assert torch.equal(final[key], weights[key]), key
    resumed_optimizer = trainer.net.optimizer_state_dict()
    for key, state in optimizer["params"].items():
        assert torch.equal(resumed_optimizer["params"][key]["momentum_buffer"], state["momentum_buffer"]), key
    assert resumed_optimizer["scenari"] == optimizer["scenari"]
    strip = [{k: v for k, v in entry.items() if k != "time"} for entry in history]
    assert [{k: v for k, v in entry.items() if k != "time"} for entry in trainer.history] == strip


def latest(run_dir):
    return json.loads((Path(run_dir) / "latest").read_text())


def interrupted_in_process(run_dir, data_file, epoch=2, step=7):
    trainer = run_child.make_trainer(run_dir, extra=[run_child.RaiseAt(epoch, step)])
    with pytest.raises(RuntimeError, match="recorder failure") as raised:
        trainer.start(*run_child.data(data_file))
    return raised


def write_idx(path, magic, shape, payload=None):
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in shape)
    body = payload if payload is not None else bytes(int(np.prod(shape)))
    with gzip.open(path, "wb") as file:
        file.write(header + body)


def frozen_state(network):
    params = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = {k: {s: v.clone() if isinstance(v, torch.Tensor) else v for s, v in state.items()}
                 for k, state in network.optimizer_state_dict()["params"].items()}
    return params, optimizer, network.optimizer_state_dict()["scenari"]


def assert_unchanged(network, before):
    params, optimizer, scenari = frozen_state(network)
    assert params.keys() == before[0].keys() and all(torch.equal(params[k], before[0][k]) for k in params)
    assert optimizer.keys() == before[1].keys()
    for key in optimizer:
        assert all(torch.equal(optimizer[key][s], before[1][key][s]) for s in optimizer[key])
    assert scenari == before[2]
