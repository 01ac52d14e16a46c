# Two commands do everything on a fresh machine:
#   make demo   run the demo (opens napari when there is a display,
#               otherwise runs headless and writes a CSV and a screenshot)
#   make test   run the whole test suite (under Xvfb when there is no display)
# Both create .venv and install what they need on first use: the demo only
# the package with napari and PyQt6, the tests also the test and lint tools.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
XVFB_PACKAGES := xvfb xauth libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 \
	libxcb-xinerama0 libxkbcommon-x11-0 libgl1-mesa-dri
XVFB_RUN := xvfb-run -a -s "-screen 0 1280x1024x24"

.PHONY: demo test lint benchmark display clean

demo: $(VENV)/.demo-installed display
	@if [ -n "$$DISPLAY" ]; then $(PY) -m napari_normxcorr.demo; \
	else $(XVFB_RUN) $(PY) -m napari_normxcorr.demo --headless; fi

test: $(VENV)/.test-installed display
	@if [ -n "$$DISPLAY" ]; then $(PY) -m pytest $(PYTEST_ARGS); \
	else $(XVFB_RUN) $(PY) -m pytest $(PYTEST_ARGS); fi

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy

benchmark: $(VENV)/.test-installed
	$(PY) -m pip install --quiet -e ".[testing,benchmarks]"
	$(PY) benchmarks/bench_goals.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_ncc.py
	$(PY) benchmarks/bench_match_points.py
	$(PY) benchmarks/bench_subpixel.py
	$(PY) benchmarks/bench_masked.py
	$(PY) benchmarks/bench_verdicts.py
	$(PY) benchmarks/bench_calibration.py
	$(PY) benchmarks/bench_strain.py
	@# OpenPIV is GPL: a peer to measure against, never a dependency.
	$(PY) -m pip install --quiet openpiv
	$(PY) benchmarks/bench_field.py

$(VENV)/.demo-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[napari,fast]" "napari[pyqt6]"
	touch $@

$(VENV)/.test-installed: $(VENV)/.demo-installed
	$(PY) -m pip install --quiet -e ".[testing]"
	touch $@

# Without a display the Qt tests need Xvfb and the libraries Qt's xcb
# plugin links; install them when we are root on Debian and they are missing.
display:
	@if [ -z "$$DISPLAY" ] && ! { command -v xvfb-run >/dev/null && \
		dpkg -s $(XVFB_PACKAGES) >/dev/null 2>&1; }; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Xvfb and Qt's X libraries (apt-get)"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq $(XVFB_PACKAGES) >/dev/null; \
		else \
			echo "No display and no Xvfb: install $(XVFB_PACKAGES)" >&2; \
			exit 1; \
		fi; \
	fi

clean:
	rm -rf $(VENV) build dist .pytest_cache
