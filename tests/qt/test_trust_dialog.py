"""Installing a bundle that would run unknown code asks first, showing what and the checksum.

The question is answered by replacing ``QtModelManagerDialog.ask_trust`` (refuse, then accept);
the dialog the user would see is checked on its own. Nothing of the bundle may run in the GUI
process: its payload would create a marker file.
"""

from __future__ import annotations

import pytest
from bundles import tiny_spleen_config, write_bundle
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from ctseg_gui.inference import manager
from ctseg_gui.inference.trust import is_trusted, review_bundle

WAIT_MS = 60_000


@pytest.fixture
def hostile(tmp_path):
    """A bundle whose network definition would run a shell command; and its marker file."""
    mark = tmp_path / "pwned"
    config = tiny_spleen_config()
    config["network_def"]["spatial_dims"] = f"$__import__('os').system('touch {mark}') or 3"
    return write_bundle(tmp_path / "colleague_bundle", config), mark


@pytest.fixture
def manager_dialog(qtbot, data_dir):
    from ctseg_gui.qt.model_manager_dialog import QtModelManagerDialog

    dialog = QtModelManagerDialog(show_dialogs=False)
    qtbot.addWidget(dialog)
    dialog.show()
    yield dialog
    qtbot.waitUntil(lambda: not dialog.busy, timeout=WAIT_MS)


def test_install_asks_refused_then_accepted(qtbot, manager_dialog, hostile):
    bundle, mark = hostile
    asked = []
    manager_dialog.ask_trust = lambda review, *how: asked.append(review) or False
    with qtbot.waitSignal(manager_dialog.task_finished, timeout=WAIT_MS) as blocker:
        assert manager_dialog.install_from(bundle)
    action, text = blocker.args
    assert action == "install" and text.startswith("Not installed (not trusted)")
    assert "__import__('os').system" in text and manager_dialog.status_label.text() == text
    assert len(asked) == 1
    review = asked[0]
    assert review.checksum == review_bundle(bundle).checksum and len(review.checksum) == 64
    assert [f.where for f in review.findings] == ["network_def#spatial_dims"]
    assert manager.installed_path("colleague_bundle") is None and not mark.exists()
    assert not is_trusted(review.checksum)

    manager_dialog.ask_trust = lambda review, *how: asked.append(review) or True
    with qtbot.waitSignal(manager_dialog.model_installed, timeout=WAIT_MS) as installed:
        assert manager_dialog.install_from(bundle)
    assert installed.args == ["colleague_bundle"] and len(asked) == 2
    assert manager.installed_path("colleague_bundle") is not None
    assert is_trusted(review.checksum) and not mark.exists()  # installing ran nothing

    # the same bundle again (a reinstall) is trusted by its checksum: no question
    manager_dialog.confirm = lambda title, question: True
    with qtbot.waitSignal(manager_dialog.model_installed, timeout=WAIT_MS):
        assert manager_dialog.install_from(bundle)
    assert len(asked) == 2


def test_verify_asks_again_after_a_change(qtbot, manager_dialog, hostile):
    bundle, mark = hostile
    manager_dialog.ask_trust = lambda review, *how: True
    with qtbot.waitSignal(manager_dialog.model_installed, timeout=WAIT_MS):
        manager_dialog.install_from(bundle)
    config = manager.installed_path("colleague_bundle") / "configs" / "inference.json"
    config.write_bytes(config.read_bytes() + b" ")  # one byte
    asked = []
    manager_dialog.ask_trust = lambda review, *how: asked.append((review, how)) or False
    manager_dialog.select("colleague_bundle")
    with qtbot.waitSignal(manager_dialog.task_finished, timeout=WAIT_MS) as blocker:
        assert manager_dialog.verify_selected()
    assert (
        blocker.args[0] == "verify" and "not trusted: the bundle would run code" in blocker.args[1]
    )
    assert len(asked) == 1 and asked[0][1] == ("run",)
    assert asked[0][0].checksum == review_bundle(config.parent.parent).checksum

    manager_dialog.ask_trust = lambda review, *how: asked.append((review, how)) or True
    with qtbot.waitSignal(manager_dialog.task_finished, timeout=WAIT_MS) as blocker:
        assert manager_dialog.verify_selected()
    qtbot.waitUntil(lambda: "OK" in manager_dialog.status_label.text(), timeout=WAIT_MS)
    assert is_trusted(asked[-1][0].checksum) and not mark.exists()


def test_trust_dialog_lists_what_would_run_and_the_checksum(qtbot, hostile, monkeypatch):
    from ctseg_gui.qt.model_manager_dialog import QtModelManagerDialog
    from ctseg_gui.qt.trust_dialog import QtTrustDialog

    bundle, _mark = hostile
    review = review_bundle(bundle)
    dialog = QtTrustDialog(review, "install")
    qtbot.addWidget(dialog)
    listed = dialog.findings.toPlainText()
    assert "configs/inference.json — network_def#spatial_dims" in listed
    assert "$__import__('os').system('touch" in listed and "(uses __import__)" in listed
    # and everything else it would run, marked known-safe
    assert "ALSO RUNS, KNOWN TO BE SAFE" in listed
    assert "configs/inference.json — device: $torch.device('cuda:0' if" in listed
    assert "network_def#_target_: UNet" in listed
    assert review.checksum in dialog.checksum.text()
    assert str(bundle) in dialog.intro.text() and "1 piece of code" in dialog.intro.text()
    assert dialog.trust_button.text() == "Trust and install"
    cancel = dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    assert cancel.isDefault() and not dialog.trust_button.isDefault()
    dialog.show()
    qtbot.waitExposed(dialog)
    qtbot.keyClick(dialog, Qt.Key.Key_Return)  # Enter cancels: trusting takes a deliberate click
    assert dialog.result() == QDialog.DialogCode.Rejected

    # the manager's own question (dialogs on) shows this dialog and passes on its answer
    shown = []

    def answer(self):
        shown.append(self.review.checksum)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(QtTrustDialog, "exec", answer)
    owner = QtModelManagerDialog(show_dialogs=True)
    qtbot.addWidget(owner)
    assert owner.ask_trust(review) is True and shown == [review.checksum]
    monkeypatch.setattr(QtTrustDialog, "exec", lambda self: QDialog.DialogCode.Rejected)
    assert owner.ask_trust(review) is False
