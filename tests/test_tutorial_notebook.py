"""examples/tutorial.ipynb, executed in a real Jupyter kernel (nbclient + ipykernel): it runs from top to bottom and
shows the graph for `net`, the live progress bar while training and the curves for the history."""

import os
import re
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient", reason="running the tutorial needs the notebook extra (pip install mariana[notebook])")
nbformat = pytest.importorskip("nbformat", reason="running the tutorial needs the notebook extra (pip install mariana[notebook])")
pytest.importorskip("ipykernel", reason="running the tutorial needs the notebook extra (pip install mariana[notebook])")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"
#: Run first, in the kernel, and not part of the notebook: warnings are errors here as in every test; one thread.
PRELUDE = """import warnings, torch
warnings.simplefilter("error")
# ipykernel 7's own shutdown warns about its own do_shutdown (not the notebook's code).
warnings.filterwarnings("ignore", "For consistency across implementations", PendingDeprecationWarning)
torch.set_num_threads(1)"""


class RecordingClient(nbclient.NotebookClient):
    """Keeps the type of every message each cell's execution sent (updates of a display in place included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages: dict[int, list[str]] = {}

    def process_message(self, msg, cell, cell_index):
        self.messages.setdefault(cell_index, []).append(msg["msg_type"])
        return super().process_message(msg, cell, cell_index)


def outputs_of(notebook, test):
    """The outputs of the one code cell whose source passes ``test``."""
    (cell,) = [cell for cell in notebook.cells if cell.cell_type == "code" and test(cell.source.strip())]
    return cell.outputs


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit the notebook without outputs"
    notebook.cells.insert(0, nbformat.v4.new_code_cell(PRELUDE))
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([previous] if previous else []))  # the kernel imports this checkout
    try:
        client = RecordingClient(notebook, timeout=180, kernel_name="python3",
                                 resources={"metadata": {"path": str(tmp_path_factory.mktemp("tutorial"))}})
        client.execute()
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
    return notebook, client.messages


def test_net_shows_its_graph_and_layer_table(executed):
    notebook, _ = executed
    (result,) = outputs_of(notebook, lambda source: source.endswith("net = inp > hid > out\nnet"))
    page = result["data"]["text/html"]
    assert 'class="mariana-net"' in page and "marianaGraph(dagre" in page and page.count("<script") == 1
    for name, kind in (("inp", "Input"), ("hid", "Hidden"), ("out", "SoftmaxClassifier")):
        assert f"<td><code>{name}</code></td><td>{kind}</td>" in page
    assert "Total params: 4,810" in result["data"]["text/plain"]  # the text fallback: the summary


def test_training_shows_a_live_bar_in_the_kernel_then_the_epochs(executed):
    notebook, messages = executed
    index = next(i for i, cell in enumerate(notebook.cells) if cell.source.startswith("history = net.fit("))
    outputs = notebook.cells[index].outputs
    texts = [output["data"]["text/plain"] for output in outputs if output["output_type"] == "display_data"]
    bars = [text for text in texts if re.match(r"epoch \d/3", text)]
    assert len(bars) == 3  # one bar per epoch, each kept with its final metrics
    assert re.search(r"epoch 3/3 .*━.* 45/45", bars[-1]) and re.search(r"train: loss \d\.\d{4} accuracy", bars[-1])
    assert "valid: loss" in bars[-1]
    assert texts[-1] == "Stopped after epoch 3: EpochWall: reached 3 epoch(s)"
    assert messages[index].count("update_display_data") >= 3  # drawn in place while the epochs ran, not printed at the end
    assert not [output for output in outputs if output["output_type"] == "stream"]


def test_history_shows_its_curves_and_the_notebook_ends_with_a_reloaded_network(executed):
    notebook, _ = executed
    (result,) = outputs_of(notebook, lambda source: source == "history")
    page = result["data"]["text/html"]
    assert re.findall(r'data-chart="([^"]+)"', page) == ["out/loss", "out/accuracy"] and page.count("<svg") == 2
    assert "Stopped after epoch 3: EpochWall: reached 3 epoch(s)" in page
    assert result["data"]["text/plain"].splitlines()[0].startswith("epoch 1 - train: loss")
    printed = "".join(output.get("text", "") for output in outputs_of(notebook, lambda source: "test accuracy" in source))
    accuracy = float(re.search(r"test accuracy (\S+)", printed).group(1))
    assert accuracy > 0.9
    (reloaded,) = outputs_of(notebook, lambda source: source.endswith("again"))
    assert 'class="mariana-net"' in reloaded["data"]["text/html"]
