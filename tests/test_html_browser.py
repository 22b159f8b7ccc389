"""The HTML report in a real headless Chromium: it loads with no console error and no request,
draws every layer as a node of a layered layout, and shows a layer's details on click."""


import pytest

from tests.helpers import CHROMIUM, CHROMIUM_FLAGS, watched_page
from tests.report_network import HISTORY, build_report_network

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the 'test' extra)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (make setup installs Debian's when run as root)")

@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module's pages (Playwright's sync API runs one at a time)."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, path):
    """``path`` opened in a new page once it says it is drawn, with everything it logged and requested while loading."""
    page, messages, requests = watched_page(browser, 1400, 1000)
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready=true]", timeout=15000)
    return page, messages, requests


@pytest.fixture(scope="module")
def report(tmp_path_factory, chromium):
    """The page opened in Chromium, with everything it logged and requested while loading."""
    network = build_report_network()
    # A Trainer's entry, longer than any cut: the log shows it whole.
    network.record("training", phase="start", outputs=["out", "score"], batch_size=32, order="simultaneous", seed=0,
                    stops=[{"class": "EpochWall", "config": {"epochs": 30}}, {"class": "NaNGuard", "config": {}},
                           {"class": "EarlyStopping", "config": {"stream": "valid", "output": "out", "metric": "loss", "patience": 3,
                                                                 "min_delta": 0.0, "restore_best": True}}],
                    streams={"train": 1295, "valid": 143}, run_dir="runs/demo-digits-20261130-101010")
    path = tmp_path_factory.mktemp("report") / "model.html"
    network.to_html(path, history=HISTORY)
    page, messages, requests = open_page(chromium, path)
    yield network, page, messages, requests, path
    page.close()


def test_page_loads_without_console_messages_or_requests(report):
    network, page, messages, requests, path = report
    assert messages == []
    assert requests == [path.as_uri()]  # the page itself, nothing else


def test_every_layer_is_a_node_and_every_edge_an_arrow_in_a_layered_layout(report):
    network, page, *_ = report
    assert sorted(page.eval_on_selector_all(".node", "nodes => nodes.map(n => n.dataset.layer)")) == sorted(network.layers)
    boxes = {name: page.locator(f'.node[data-layer="{name}"] rect').first.bounding_box() for name in network.layers}
    names = list(boxes)
    for i, a in enumerate(names):  # a real layout: no two nodes overlap
        for b in names[i + 1:]:
            A, B = boxes[a], boxes[b]
            assert (A["x"] + A["width"] <= B["x"] or B["x"] + B["width"] <= A["x"]
                    or A["y"] + A["height"] <= B["y"] or B["y"] + B["height"] <= A["y"]), f"{a} overlaps {b}"
    edges = page.eval_on_selector_all("path.edge", "paths => paths.map(p => p.dataset.edge)")
    expected = [f"{source.name}>{layer.name}" for layer in network.layers.values() for source in layer.incoming]
    assert sorted(edges) == sorted(expected + ["inp>recon"])
    for edge in expected:  # layered top to bottom: every data edge points down
        source, target = edge.split(">")
        assert boxes[source]["y"] + boxes[source]["height"] <= boxes[target]["y"], edge


def test_clicking_a_node_shows_its_details(report):
    network, page, *_ = report
    page.click('.node[data-layer="hid"]')
    details = page.inner_text("#details")
    for expected in ("hid", "Hidden", "(batch, 16)", "BinomialDropout(ratio=0.1)", "L2(factor=0.0001)", "ReLU()", "size", "208"):
        assert expected in details, expected
    assert page.locator('.node.selected').get_attribute("data-layer") == "hid"
    page.click('.node[data-layer="out"]')
    details = page.inner_text("#details")
    assert "GradientDescent(lr=0.05, momentum=0.9)" in details and "Fixed('b')" in details and "BinomialDropout" not in details
    assert "Softmax" in page.locator('.node[data-layer="out"] title').text_content()  # the hover summary


def test_curves_layer_table_and_log_are_drawn(report):
    network, page, *_ = report
    charts = page.eval_on_selector_all(".chart", "charts => charts.map(c => c.dataset.chart)")
    assert charts == ["out/loss", "out/accuracy", "score/loss"]
    assert page.locator(".chart canvas").count() == 3
    assert page.locator("#layers tbody tr").count() == len(network) + 1  # plus the totals row
    assert page.locator("#log tbody tr").count() == len(network.log)
    assert page.locator("#log").inner_text().count("<script>alert(1)</script>") == 1  # shown as text, never run


def test_curves_fill_their_card_and_legends_show_the_last_values(report):
    network, page, *_, path = report
    card = page.locator("#curves").bounding_box()
    charts = [page.locator(f'.chart[data-chart="{name}"] canvas').bounding_box() for name in ("out/loss", "out/accuracy", "score/loss")]
    assert len({round(box["y"]) for box in charts}) == 1  # one row at this width
    used = charts[-1]["x"] + charts[-1]["width"] - charts[0]["x"]
    assert used > 0.9 * card["width"], (used, card["width"])
    legend = page.locator('.chart[data-chart="out/loss"] .u-legend').inner_text()
    assert "--" not in legend
    last = HISTORY[-1]
    for value in (last["train"]["out"]["loss"], last["valid"]["out"]["loss"]):
        assert f"{value:.4f}" in legend, legend
    page.set_viewport_size({"width": 800, "height": 1000})  # narrower: fewer columns, still the card's width
    page.wait_for_timeout(200)
    card = page.locator("#curves").bounding_box()
    box = page.locator('.chart[data-chart="out/loss"] canvas').bounding_box()
    assert box["width"] > 0.9 * card["width"]
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.wait_for_timeout(200)
    page.screenshot(path=str(path.with_suffix(".png")), full_page=True)  # to look at when the report changes


def test_scenari_show_their_settings_and_log_entries_are_whole(report):
    network, page, *_ = report
    page.click('.node[data-layer="recon"]')
    assert "Adam(lr=0.001)" in page.inner_text("#details")  # the default lr is shown, not hidden
    log = page.locator("#log").inner_text()
    assert ("stops (EpochWall(epochs=30), NaNGuard(), EarlyStopping(stream=valid, output=out, metric=loss, patience=3, min_delta=0, "
            "restore_best=True)), streams (train=1295, valid=143), run_dir runs/demo-digits-20261130-101010") in log
    assert "…" not in log


# -- the study report (mariana.tuning): the same checks, and its own parts ------------------------------------------------
@pytest.fixture(scope="module")
def study_report(tmp_path_factory, chromium):
    """A small search on digits (6 trials, two of them enqueued to be pruned) and its report in Chromium."""
    optuna = pytest.importorskip("optuna", reason="the study report needs optuna (the 'tune' extra, in 'test')")
    import mariana.tuning as MT
    from tests.tuning.digits_search import build, digits_streams

    train, valid = digits_streams()
    root = tmp_path_factory.mktemp("study-report")
    storage = optuna.storages.InMemoryStorage()
    prepared = optuna.create_study(storage=storage, study_name="report", direction="maximize")
    for size, act, lr in ((32, 0, 0.05), (64, 1, 0.01), (16, 0, 1e-4), (128, 1, 0.02), (16, 1, 1e-4), (48, 0, 0.003)):
        prepared.enqueue_trial({"size": size, "act": act, "lr": lr})
    study = MT.search(build, train, valid, trials=6, epochs=3, objective=("valid", "out", "accuracy"), storage=storage,
                      study_name="report", run_root=root / "runs", pruner=optuna.pruners.MedianPruner(n_startup_trials=2), verbose=False)
    path = root / "study.html"
    study.to_html(path)
    page, messages, requests = open_page(chromium, path)
    yield study, page, messages, requests, path
    page.close()


def test_study_page_loads_without_console_messages_or_requests(study_report):
    study, page, messages, requests, path = study_report
    assert messages == []
    assert requests == [path.as_uri()]


def test_study_page_lists_every_trial_and_marks_the_best(study_report):
    study, page, *_, path = study_report
    rows = page.locator("#trials tbody tr")
    assert rows.count() == len(study.optuna.trials) == 6
    best = page.locator("#trials tr.best")
    assert best.get_attribute("data-trial") == str(study.best_trial.number)
    assert f"{study.best_value:.4f}" in best.inner_text() and "act=" in best.inner_text()
    states = page.eval_on_selector_all("#trials .state", "cells => cells.map(c => c.textContent)")
    assert states == [t.state.name.lower() for t in study.optuna.trials] and "pruned" in states
    assert "pruned by the median pruner at epoch" in page.locator("#trials").inner_text()
    page.screenshot(path=str(path.with_suffix(".png")), full_page=True)


def test_study_page_draws_the_objective_the_importances_and_the_best_network(study_report):
    study, page, *_ = study_report
    assert page.eval_on_selector_all(".chart", "charts => charts.map(c => c.dataset.chart)")[:2] == ["objective", "intermediate"]
    assert page.locator('.chart[data-chart="objective"] canvas').count() == 1
    bars = page.eval_on_selector_all(".bar", "bars => bars.map(b => [b.dataset.param, b.getBoundingClientRect().width])")
    assert sorted(name for name, _ in bars) == ["act", "lr", "size"] and max(width for _, width in bars) > 100
    network = study.best_network()
    assert sorted(page.eval_on_selector_all(".node", "nodes => nodes.map(n => n.dataset.layer)")) == sorted(network.layers)
    assert f"Best network: trial {study.best_trial.number}" in page.inner_text("main")
    page.click('.node[data-layer="hid"]')
    assert f"{study.best_params['size']}" in page.inner_text("#details")
    assert page.eval_on_selector_all(".chart", "charts => charts.map(c => c.dataset.chart)")[2:] == ["out/loss", "out/accuracy"]
