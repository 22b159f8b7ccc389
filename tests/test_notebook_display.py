"""What a notebook shows for a network and a history: the HTML fragments, their text fallbacks, and the
fragments in a real headless Chromium, several in one page as a notebook holds them."""

import re

import pytest

import mariana.layers as ML
from mariana.report.notebook import history_html
from mariana.training.history import History
from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, watched_page
from tests.report_network import HISTORY, build_report_network


@pytest.fixture(scope="module")
def network():
    return build_report_network()


def test_network_fragment_has_its_own_id_the_layer_table_and_no_global_names(network):
    first, second = network._repr_html_(), network._repr_html_()
    ids = [re.search(r'class="mariana-net" id="([\w-]+)"', page).group(1) for page in (first, second)]
    assert ids[0] != ids[1]
    assert f'ids: "{ids[0]}-"' in first and f"#{ids[0]} .node rect" in first  # markers and styles carry the display's id
    for name, layer in network.layers.items():
        assert f"<td><code>{name}</code></td><td>{type(layer).__name__}</td>" in first
    assert "L2(factor=0.0001)" in first and "GradientDescent(lr=0.05, momentum=0.9)" in first
    assert "<script>alert(1)</script>" not in first  # the note is not in the fragment; names and notes are escaped anyway
    assert first.count("<script") == first.count("</script>") == 1
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", first)  # offline: nothing fetched
    assert "sourceMappingURL" not in first


def test_network_text_fallback_is_the_summary(network):
    pretty = pytest.importorskip("IPython.lib.pretty", reason="IPython comes with the notebook extra").pretty

    assert pretty(network) == network.summary()
    assert repr(network).startswith("Network(inp, ")


def test_history_fragment_draws_one_chart_per_output_and_metric_with_its_stop_reason():
    page = history_html(HISTORY, "EarlyStopping: valid out loss did not improve")
    assert re.findall(r'data-chart="([^"]+)"', page) == ["out/loss", "out/accuracy", "score/loss"]
    assert page.count("<svg") == 3 and "<script" not in page
    assert "Stopped after epoch 5: EarlyStopping: valid out loss did not improve" in page
    loss_chart = page.split('data-chart="out/loss"')[1].split("</svg>")[0]
    assert loss_chart.count('stroke="#3b6fd8"') == 1 and loss_chart.count('stroke="#e07b24"') == 1  # a line for train, one for valid
    assert f"valid, epoch 5: {HISTORY[-1]['valid']['out']['loss']:.6g}" in loss_chart
    assert f"{HISTORY[-1]['train']['out']['loss']:.4f}" in loss_chart  # the legend shows the last value
    assert "no stop has fired" in history_html(HISTORY[:2]) and "No epochs yet" in history_html([])


def test_history_gap_for_a_non_finite_value_and_text_fallback():
    entries = [{"epoch": e, "time": 0.1, "train": {"out": {"loss": v}}} for e, v in enumerate([1.0, 0.8, float("nan"), 0.5, 0.4], 1)]
    page = history_html(entries)
    assert page.count("<polyline") == 2 and page.count("<circle") == 4  # the nan splits the line
    history = History(entries, stop_reason="EpochWall: reached 5 epoch(s)")
    assert history._repr_html_().count("<svg") == 1
    pretty = pytest.importorskip("IPython.lib.pretty", reason="IPython comes with the notebook extra").pretty
    text = pretty(history)
    assert text.splitlines()[0] == "epoch 1 - train: loss 1.0000" and text.endswith("Stopped after epoch 5: EpochWall: reached 5 epoch(s)")
    long = History([{"epoch": e, "time": 0.1, "train": {"out": {"loss": 1.0}}} for e in range(1, 31)])
    assert "... 10 epochs ..." in long.text() and len(long.text().splitlines()) == 22


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (make setup installs Debian's when run as root)")
def test_many_displays_in_one_page_each_draw_their_own_graph_and_leave_nothing_global(network, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the 'test' extra)")
    small = ML.Input(4, name="x") > ML.Hidden(3, name="h") > ML.SoftmaxClassifier(2, name="y")
    cells = [network._repr_html_(), small._repr_html_(), network._repr_html_(), history_html(HISTORY, "EpochWall")]
    page_file = tmp_path / "notebook.html"
    page_file.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                         + "".join(f'<div class="cell">{cell}</div>' for cell in cells) + '<div id="late"></div></body></html>')
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page, messages, requests = watched_page(browser, 1200, 900)
            page.goto(page_file.as_uri())
            # An output added later, as JupyterLab does: HTML set first, then its scripts re-created so they run.
            page.evaluate("""html => { const late = document.getElementById("late"); late.innerHTML = html;
                for (const old of late.querySelectorAll("script")) { const s = document.createElement("script");
                  s.textContent = old.textContent; old.replaceWith(s); } }""", small._repr_html_())
            page.wait_for_function("document.querySelectorAll('.mariana-net[data-drawn]').length === 4", timeout=15000)
            counts = page.eval_on_selector_all(".mariana-net", "nets => nets.map(n => n.querySelectorAll('.mariana-graph g.node').length)")
            assert counts == [len(network), 3, len(network), 3]
            assert page.eval_on_selector_all(".mariana-net", "nets => nets.map(n => n.querySelector('details').open)") == [False] * 4
            markers = page.eval_on_selector_all("marker", "ms => ms.map(m => m.id)")
            assert len(markers) == 8 and len(set(markers)) == 8
            for net_index in range(4):  # each display's arrows point at its own markers
                ends = page.evaluate(f"""[...document.querySelectorAll('.mariana-net')[{net_index}].querySelectorAll('path.edge')]
                                         .map(p => p.getAttribute('marker-end'))""")
                own = page.evaluate(f"[...document.querySelectorAll('.mariana-net')[{net_index}].querySelectorAll('marker')].map(m => m.id)")
                assert ends and all(end[5:-1] in own for end in ends)
            assert page.evaluate("typeof window.dagre === 'undefined' && typeof window.marianaGraph === 'undefined'")
            assert page.locator(".mariana-history svg").count() == 3
            assert messages == [] and requests == [page_file.as_uri()]
        finally:
            browser.close()
