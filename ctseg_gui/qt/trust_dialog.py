"""The question asked before a model bundle may run code that is not known to be safe.

Shows what :func:`ctseg_gui.inference.trust.review_bundle` found (every expression, import,
target and script, with the file and config id) and the bundle's SHA-256 checksum; the user trusts
the bundle or refuses it. The GUI process only reads the review: it never parses the configs.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.inference.trust import BundleReview


class QtTrustDialog(QDialog):
    """Lists what a bundle would run and its checksum; Trust or Cancel (the default).

    Parameters
    ----------
    review
        The bundle's review (needs trust).
    action
        What trusting allows, for the button and the text (``install``, ``run``).
    parent
        Owner widget.
    """

    def __init__(
        self, review: BundleReview, action: str = "install", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.review = review
        self.setWindowTitle("Trust this model bundle?")
        count = len(review.findings)
        self.intro = QLabel(
            f"<b>{review.root}</b> would run {count} piece{'s' if count != 1 else ''} of code "
            "that ctseg does not know to be safe. A model bundle's configs are Python: they can "
            "read, change or send any file this account can reach, patient data included.<br>"
            "Trust it only if you know where it comes from. Nothing of it has run yet."
        )
        self.intro.setWordWrap(True)
        self.findings = QPlainTextEdit()
        self.findings.setReadOnly(True)
        self.findings.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        safe = "\n".join(f"{f.file} — {f.where}: {f.text}" for f in review.known_safe)
        self.findings.setPlainText(
            "NOT KNOWN TO BE SAFE\n\n"
            + "\n\n".join(
                f"{f.file}{' — ' + f.where if f.where else ''}\n"
                + (f"    {f.text}\n" if f.text != f.file else "")
                + f"    ({'; '.join(f.reasons)})"
                for f in review.findings
            )
            + (f"\n\nALSO RUNS, KNOWN TO BE SAFE\n\n{safe}" if safe else "")
        )
        self.checksum = QLabel(
            f"Bundle checksum (SHA-256 of its configs and scripts):<br><tt>{review.checksum}</tt>"
        )
        self.checksum.setWordWrap(True)
        self.checksum.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.trust_button = self.buttons.addButton(
            f"Trust and {action}", QDialogButtonBox.ButtonRole.AcceptRole
        )
        cancel = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        cancel.setDefault(True)  # Enter must not trust a bundle
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.findings, 1)
        layout.addWidget(self.checksum)
        layout.addWidget(self.buttons)
        self.resize(820, 460)


def ask_trust(parent: QWidget | None, review: BundleReview, action: str = "install") -> bool:
    """Ask whether to trust a bundle (modal); True when the user chose to trust it."""
    return QtTrustDialog(review, action, parent).exec() == QDialog.DialogCode.Accepted
