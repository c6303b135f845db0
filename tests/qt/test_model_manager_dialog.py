"""The model manager dialog installs, verifies, downloads and removes models for real.

Small spleen-style bundles (tests/bundles.py) go into a throwaway CTSEG_DATA_DIR; the model panel's
picker follows every install and removal. Errors must show as one line; no modal box may open.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import threading
import zipfile

import pytest
from bundles import build_spleen_bundle
from PySide6.QtCore import Qt

from ctseg_gui.inference import manager

WAIT_MS = 60_000
SPLEEN = "spleen_ct_segmentation"


pytestmark = pytest.mark.usefixtures("data_dir")  # a throwaway user data folder (conftest)


@pytest.fixture(autouse=True)
def no_modal_boxes(monkeypatch):
    """Any message box or file dialog that would block the test fails it instead."""
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    def refuse(*args, **kwargs):
        raise AssertionError(f"a modal dialog was opened: {args[1:3]}")

    for name in ("question", "warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, name, refuse)
    monkeypatch.setattr(QMessageBox, "exec", refuse)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", refuse)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", refuse)


@pytest.fixture(scope="module")
def spleen_bundle(tmp_path_factory):
    return build_spleen_bundle(tmp_path_factory.mktemp("dialog") / SPLEEN)


def _zip(bundle, path):
    with zipfile.ZipFile(path, "w") as archive:
        for file in bundle.rglob("*"):
            archive.write(file, f"{bundle.name}/{file.relative_to(bundle)}")
    return path


@pytest.fixture
def panel(model_panel):
    return model_panel()


@pytest.fixture
def dialog(qtbot, panel):
    """The manager opened from the panel's Manage… button, as a user would."""
    qtbot.mouseClick(panel.manage_button, Qt.MouseButton.LeftButton)
    opened = panel.manager_dialog
    assert opened is not None and opened.isVisible()
    qtbot.waitExposed(opened)
    yield opened
    qtbot.waitUntil(lambda: not opened.busy, timeout=WAIT_MS)
    opened.close()


def _cell(dialog, model_id, column):
    from ctseg_gui.qt.model_manager_dialog import COLUMNS

    number = [r.model_id for r in dialog.rows].index(model_id)
    return dialog.table.item(number, COLUMNS.index(column)).text()


def _finish(qtbot, dialog, start):
    """Run ``start()`` and wait for the action's outcome line."""
    with qtbot.waitSignal(dialog.task_finished, timeout=WAIT_MS) as blocker:
        assert start() is not False
    return blocker.args


def _picker_ids(panel):
    return [panel.model_box.itemData(i) for i in range(panel.model_box.count())]


def test_catalog_table(dialog):
    from ctseg_gui.inference.catalog import load_catalog

    assert _cell(dialog, "ct-tissues", "Status") == "Built-in"
    assert _cell(dialog, SPLEEN, "Status") == "Not installed"
    assert _cell(dialog, "wholeBody_ct_segmentation", "Variants") == "highres, lowres"
    assert "Apache-2.0" in _cell(dialog, SPLEEN, "Licence")
    assert "api.ngc.nvidia.com" in _cell(dialog, SPLEEN, "Source")
    assert "manual download" in _cell(dialog, "deepgrow_2d", "Source")
    assert dialog.table.rowCount() == 1 + len(load_catalog())
    dialog.select("ct-tissues")  # the built-in cannot be removed, verified or downloaded
    assert not dialog.remove_button.isEnabled() and not dialog.verify_button.isEnabled()
    assert not dialog.download_button.isEnabled()
    dialog.select("deepgrow_2d")  # weights on a web page: no download button
    assert not dialog.download_button.isEnabled()
    dialog.select(SPLEEN)
    assert dialog.download_button.isEnabled() and not dialog.remove_button.isEnabled()
    assert "Spleen" in dialog.details.text() and "github.com" in dialog.details.text()


def test_install_folder_verify_remove(qtbot, dialog, panel, spleen_bundle, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    assert SPLEEN not in _picker_ids(panel)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(spleen_bundle))
    with (
        qtbot.waitSignal(dialog.models_changed, timeout=WAIT_MS),
        qtbot.waitSignal(dialog.model_installed, timeout=WAIT_MS) as blocker,
    ):
        qtbot.mouseClick(dialog.install_folder_button, Qt.MouseButton.LeftButton)
        assert dialog.busy and not dialog.install_zip_button.isEnabled()
    assert blocker.args == [SPLEEN]
    assert _cell(dialog, SPLEEN, "Status") == "Installed (0.0.1)"
    assert _cell(dialog, SPLEEN, "Size").endswith("MB")
    assert dialog.selected_id() == SPLEEN and dialog.remove_button.isEnabled()
    assert "Installed spleen_ct_segmentation" in dialog.status_label.text()
    # the panel's picker has it, chosen, so Run runs it right away
    assert SPLEEN in _picker_ids(panel) and panel.model_id == SPLEEN

    action, text = _finish(qtbot, dialog, dialog.verify_selected)
    assert action == "verify" and text.startswith(f"{SPLEEN}: OK")
    assert "models/model.pt: present" in dialog.status_label.text()
    # damage it: verify names the file and the problem
    (manager.installed_path(SPLEEN) / "configs" / "inference.json").write_text("{ broken")
    failures: list[str] = []
    dialog.failed.connect(failures.append)
    _finish(qtbot, dialog, dialog.verify_selected)
    assert len(failures) == 1 and "inference.json: not valid JSON" in failures[0]
    assert dialog.status_label.text() == failures[0]

    dialog.confirm = lambda title, question: False  # the user says No: nothing happens
    assert dialog.remove_selected() is False
    assert manager.installed_path(SPLEEN) is not None
    asked: list[str] = []
    dialog.confirm = lambda title, question: asked.append(question) or True
    with qtbot.waitSignal(dialog.models_changed, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert "Delete Spleen" in asked[0] and str(manager.models_dir()) in asked[0]
    assert manager.installed_path(SPLEEN) is None
    assert _cell(dialog, SPLEEN, "Status") == "Not installed"
    assert SPLEEN not in _picker_ids(panel) and panel.model_id == "ct-tissues"


def test_install_zip_then_replace(qtbot, dialog, panel, spleen_bundle, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    archive = _zip(spleen_bundle, tmp_path / f"{SPLEEN}_v0.5.4.zip")
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(archive), ""))
    with qtbot.waitSignal(dialog.model_installed, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.install_zip_button, Qt.MouseButton.LeftButton)
    assert _cell(dialog, SPLEEN, "Status") == "Installed (0.0.1)"
    assert SPLEEN in _picker_ids(panel)
    # installing it again asks before replacing
    asked: list[str] = []
    dialog.confirm = lambda title, question: asked.append(question) or False
    assert dialog.install_from(archive) is False and "already installed" in asked[0]
    dialog.confirm = lambda title, question: True
    with qtbot.waitSignal(dialog.model_installed, timeout=WAIT_MS):
        assert dialog.install_from(archive)
    assert [m.model_id for m in manager.list_installed()] == [SPLEEN]


@pytest.mark.parametrize("kind", ["corrupt zip", "not a bundle", "no weights"])
def test_bad_input_shows_one_clear_line(qtbot, dialog, panel, spleen_bundle, tmp_path, kind):
    if kind == "corrupt zip":
        source = tmp_path / f"{SPLEEN}_v0.5.4.zip"
        whole = _zip(spleen_bundle, tmp_path / "whole.zip").read_bytes()
        source.write_bytes(whole[: len(whole) // 2])
        expected = "damaged or incomplete .zip archive"
    elif kind == "not a bundle":
        source = tmp_path / "holiday_photos"
        source.mkdir()
        (source / "photo.jpg").write_bytes(b"\xff\xd8")
        expected = "no MONAI bundle inside"
    else:
        source = tmp_path / SPLEEN
        shutil.copytree(spleen_bundle, source)
        (source / "models" / "model.pt").unlink()
        expected = "models: no weights"
    failures: list[str] = []
    dialog.failed.connect(failures.append)
    action, text = _finish(qtbot, dialog, lambda: dialog.install_from(source))
    assert action == "install" and failures == [text]
    assert text.startswith(str(source)) and expected in text
    assert "\n" not in text and "Traceback" not in text
    assert dialog.status_label.text() == text
    assert manager.list_installed() == [] and _picker_ids(panel) == ["ct-tissues"]
    assert not dialog.busy and dialog.install_folder_button.isEnabled()


def test_download_offline_fails_cleanly(qtbot, dialog, monkeypatch):
    from ctseg_gui.inference.catalog import get_manifest

    with socket.socket() as probe:  # nobody listens there: fails the same online or offline
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/{SPLEEN}_v0.5.4.zip"
    monkeypatch.setattr(get_manifest(SPLEEN), "sources", [{"type": "test", "url": url}])
    dialog.select(SPLEEN)
    failures: list[str] = []
    dialog.failed.connect(failures.append)
    action, text = _finish(
        qtbot, dialog, lambda: qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    )
    assert action == "download" and failures == [text]
    assert url in text and "connection refused" in text and "\n" not in text
    assert _cell(dialog, SPLEEN, "Status") == "Not installed"
    assert dialog.download_button.isEnabled() and not dialog.cancel_button.isEnabled()


class _SlowZip(http.server.BaseHTTPRequestHandler):
    payload = b""
    release = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        half = len(self.payload) // 2
        self.wfile.write(self.payload[:half])
        self.wfile.flush()
        self.release.wait(WAIT_MS / 1000)  # the test cancels (or lets it finish) meanwhile
        with contextlib.suppress(OSError):  # the client may have gone after its cancel
            self.wfile.write(self.payload[half:])

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_server(spleen_bundle, tmp_path):
    _SlowZip.payload = _zip(spleen_bundle, tmp_path / "served.zip").read_bytes()
    _SlowZip.release = threading.Event()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowZip)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{SPLEEN}_v0.0.1.zip"
    _SlowZip.release.set()
    httpd.shutdown()
    httpd.server_close()


def test_download_progress_cancel_and_resume(qtbot, dialog, panel, slow_server, monkeypatch):
    from ctseg_gui.inference.catalog import get_manifest

    monkeypatch.setattr(get_manifest(SPLEEN), "sources", [{"type": "test", "url": slow_server}])
    dialog.select(SPLEEN)
    total = len(_SlowZip.payload)
    assert dialog.download_selected()
    assert dialog.cancel_button.isEnabled() and not dialog.download_button.isEnabled()
    qtbot.waitUntil(
        lambda: dialog.progress.maximum() == 1000 and dialog.progress.value() > 0, timeout=WAIT_MS
    )
    assert 0 < dialog.progress.value() < 1000  # half of the archive arrived
    assert "Downloading" in dialog.status_label.text()
    with qtbot.waitSignal(dialog.task_finished, timeout=WAIT_MS) as blocker:
        qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
        _SlowZip.release.set()  # the next block arrives; the download sees the cancel
    assert blocker.args[0] == "download" and "cancelled" in blocker.args[1]
    assert _cell(dialog, SPLEEN, "Status") == "Not installed"
    partial = manager.user_data_dir() / "downloads" / f"{SPLEEN}_v0.0.1.zip.part"
    assert 0 < partial.stat().st_size < total

    # the server ignores Range, so the download starts again and this time completes
    with qtbot.waitSignal(dialog.model_installed, timeout=WAIT_MS):
        assert dialog.download_selected()
    assert _cell(dialog, SPLEEN, "Status") == "Installed (0.0.1)"
    assert SPLEEN in _picker_ids(panel)
    assert not partial.exists()


def test_models_menu_opens_the_panels_manager(qtbot, viewer):
    viewer.manage_models_action.trigger()
    dialog = viewer.model_panel.manager_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.rows[0].model_id == "ct-tissues"
    dialog.close()


def test_models_menu_has_its_own_manager_when_there_is_no_model_panel(qtbot, viewer, monkeypatch):
    monkeypatch.setattr(viewer, "model_panel", None)  # as when the panel failed to build
    viewer.manage_models_action.trigger()
    dialog = viewer.model_manager_dialog
    assert dialog.isVisible() and dialog.rows[0].model_id == "ct-tissues"
    dialog.close()
    viewer.manage_models_action.trigger()
    assert viewer.model_manager_dialog is dialog and dialog.isVisible()  # the same one, again
    dialog.close()


def test_recipe_weights_install_for_the_selected_model(qtbot, dialog, panel, tmp_path):
    import torch
    from monai.bundle import ConfigParser

    from ctseg_gui.inference.catalog import get_manifest

    config = get_manifest("deepgrow_2d").config["network_def"]
    network = ConfigParser({"n": config}).get_parsed_content("n")
    weights = tmp_path / "clara_pt_deepgrow_2d_weights.pt"  # a name that says nothing
    torch.save(network.state_dict(), weights)
    failures: list[str] = []
    dialog.failed.connect(failures.append)
    dialog.select(SPLEEN)  # a bundle model: a weights file alone cannot make it
    _finish(qtbot, dialog, lambda: dialog.install_from(weights))
    assert "weights file alone installs only" in failures[0] and "deepgrow_2d" in failures[0]
    dialog.select("deepgrow_2d")
    with qtbot.waitSignal(dialog.model_installed, timeout=WAIT_MS) as blocker:
        assert dialog.install_from(weights)
    assert blocker.args == ["deepgrow_2d"]
    assert _cell(dialog, "deepgrow_2d", "Status").startswith("Installed")
    action, text = _finish(qtbot, dialog, dialog.verify_selected)
    assert text.startswith("deepgrow_2d: OK") and "no published MD5" in text


def test_open_folder(qtbot, dialog, spleen_bundle, monkeypatch):
    from PySide6.QtGui import QDesktopServices

    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    dialog.select(SPLEEN)
    qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    assert opened == [str(manager.models_dir())]  # not installed: the models folder
    with qtbot.waitSignal(dialog.model_installed, timeout=WAIT_MS):
        dialog.install_from(spleen_bundle)
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or False)
    assert dialog.open_selected_folder() is False  # no file manager: said so, no crash
    assert opened[-1].toLocalFile() == str(manager.installed_path(SPLEEN))
    assert "no file manager could open it" in dialog.status_label.text()


def test_unreadable_catalog_is_reported_not_raised(qtbot, monkeypatch):
    from ctseg_gui.qt import model_manager_dialog

    def broken():
        raise ValueError("models/x.json: Expecting ',' delimiter: line 3 column 5")

    monkeypatch.setattr(model_manager_dialog, "model_overview", broken)
    dialog = model_manager_dialog.QtModelManagerDialog(show_dialogs=False)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 0 and dialog.selected() is None
    assert "cannot read the model catalog: models/x.json" in dialog.status_label.text()
    assert not dialog.remove_button.isEnabled() and not dialog.download_button.isEnabled()
