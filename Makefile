# `make demo` and `make test` work on a fresh machine with only Python 3:
# both create .venv through `make setup` when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REPORT_ASSETS := mariana/report/assets

.PHONY: setup demo test lint bench bench-trainer clean report-assets browser docs gallery

setup: $(STAMP)

# torch is pinned in the same pip command as the package so no other torch
# (e.g. a multi-GB CUDA build) is ever resolved.
$(STAMP): pyproject.toml $(REPORT_ASSETS)/package-lock.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[test]"
	$(MAKE) --no-print-directory report-assets browser
	touch $(STAMP)

# The HTML report inlines dagre (graph layout) and uPlot (curves) from npm, pinned by the lockfile.
report-assets:
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; } || \
		{ echo "npm is missing: install Node.js, then run make setup (the HTML report needs it)"; exit 1; }
	npm ci --prefix $(REPORT_ASSETS) --no-audit --no-fund --loglevel=error

# The HTML report's browser test drives Debian's chromium; it is skipped (with the reason) without one.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium not installed: tests/test_html_browser.py will be skipped"

demo: setup
	$(BIN)/mariana demo

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/step_overhead.py

# The Trainer against a plain PyTorch loop (and Keras 3 / Lightning with the bench extra) on MNIST.
bench-trainer: setup
	$(BIN)/python benchmarks/trainer_overhead.py

# The documentation site (mkdocs.yml, docs/) built offline into site/. --strict: any warning
# (a broken link, an unresolved reference, an unreadable docstring) fails the build.
# NO_MKDOCS_2_WARNING silences Material's notice about MkDocs 2.0 and its own end of life, printed on every build.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[test,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Re-run the gallery's short trainings and retake its pictures (about two minutes; needs MNIST, see examples/_data.py).
gallery: $(DOCS_STAMP)
	$(BIN)/python docs/gallery/build_gallery.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs site
