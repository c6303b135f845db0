# ctseg-gui developer commands. `make run` and `make test` work from a clean clone on Debian/Ubuntu
# with only Python installed: they install the system libraries Qt/VTK need, create .venv and
# install the project into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned and installed first: an unpinned torch request pulls gigabytes of CUDA wheels.
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt

GUI_PKGS := libgl1 libegl1 libopengl0 libgl1-mesa-dri libglib2.0-0 libdbus-1-3 libfontconfig1 \
	libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
	libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxcb-xfixes0 \
	libxrender1 libxi6 libxext6 libsm6 libice6 libx11-xcb1
TEST_PKGS := $(GUI_PKGS) xvfb xauth dicom3tools
XVFB := xvfb-run -a -s "-screen 0 1920x1080x24"

.PHONY: run test lint format bench sysdeps-gui sysdeps-test venv clean package package-test

run: sysdeps-gui $(STAMP)
	$(BIN)/ctseg-gui "$$($(BIN)/python -c 'from ctseg_gui.resources import sample_ct; print(sample_ct())')"

test: sysdeps-test $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(XVFB) $(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: sysdeps-test $(STAMP)
	for b in benchmarks/bench_*.py; do $(XVFB) $(BIN)/python $$b || exit 1; done

# One-folder frozen app in dist/ctseg-gui plus a .tar.zst of it; reused when nothing changed.
package: $(STAMP)
	$(BIN)/python -c "import PyInstaller" 2>/dev/null || $(PIP_INSTALL) -e ".[test,package]"
	$(BIN)/python packaging/build.py

# Builds (or reuses) the bundle, then tests the frozen executable; not part of `make test`.
package-test: sysdeps-test package
	CTSEG_REQUIRE_FROZEN=1 CTSEG_FROZEN_APP=$(CURDIR)/dist/ctseg-gui/ctseg-gui \
		$(XVFB) $(BIN)/python -m pytest -q -p no:cacheprovider tests/package

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) torch==2.13.0
	$(PIP_INSTALL) -e ".[test]"
	touch $(STAMP)

sysdeps-gui:
	@$(MAKE) --no-print-directory _apt PKGS="$(GUI_PKGS)"

sysdeps-test:
	@$(MAKE) --no-print-directory _apt PKGS="$(TEST_PKGS)"

_apt:
	@missing=$$(for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:" $$missing; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
