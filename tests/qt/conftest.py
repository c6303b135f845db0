"""Fixtures for the viewer's widget and rendering tests (run under xvfb-run)."""

from __future__ import annotations

import numpy as np
import pytest

from ctseg_gui.core.volume import Volume


@pytest.fixture(autouse=True)
def _private_config(tmp_path, monkeypatch):
    # Recent-file lists and other settings go to a throwaway folder, never the user's.
    monkeypatch.setenv("CTSEG_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def new_window(qtbot):
    """``new_window()``: a shown main window (errors recorded, no dialogs); loads are cancelled
    at teardown."""
    from ctseg_gui.qt.main_window import QtMainWindow

    windows = []

    def make():
        window = QtMainWindow(interactive=False)
        qtbot.addWidget(window)
        window.resize(1400, 950)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.loader.cancel()


@pytest.fixture
def viewer(new_window):
    """A shown main window (errors recorded, no dialogs)."""
    return new_window()


@pytest.fixture
def open_and_wait(qtbot):
    """``open_and_wait(window, path, labels=None)``: open and wait until image (and labels) show."""

    def run(window, path, labels=None, timeout=60_000):
        with qtbot.waitSignal(window.loader.image_loaded, timeout=timeout):
            window.open_path(str(path), str(labels) if labels else None)
        if labels:
            qtbot.waitUntil(lambda: window.document.labels_path is not None, timeout=timeout)
        qtbot.waitUntil(lambda: not window.loader.loading, timeout=timeout)
        window.render_all()
        return window

    return run


def make_lps_twin(volume: Volume) -> Volume:
    """The same patient stored in LPS order (i to the patient's left, j to posterior)."""
    flipped = np.ascontiguousarray(volume.array[:, ::-1, ::-1])
    i, j, _ = volume.size
    origin = volume.index_to_world((i - 1, j - 1, 0))
    return Volume(flipped, volume.spacing, origin, np.eye(3), dict(volume.metadata))


@pytest.fixture
def lps_twin():
    """Function turning a volume into its LPS-stored twin."""
    return make_lps_twin


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A throwaway CTSEG_DATA_DIR: no user-installed models."""
    target = tmp_path / "data"
    monkeypatch.setenv("CTSEG_DATA_DIR", str(target))
    return target


@pytest.fixture
def model_panel(qtbot, data_dir):
    """``model_panel(*installs)``: a shown QtModelPanel after installing ``(bundle, model_id)``
    pairs into ``data_dir``; its compute worker stops at teardown."""
    from ctseg_gui.inference import manager
    from ctseg_gui.qt.models_panel import QtModelPanel

    panels = []

    def make(*installs):
        for bundle, model_id in installs:
            manager.install(bundle, model_id)
        widget = QtModelPanel(show_dialogs=False)
        qtbot.addWidget(widget)
        widget.show()
        panels.append(widget)
        return widget

    yield make
    for widget in panels:
        widget.bridge.close()
