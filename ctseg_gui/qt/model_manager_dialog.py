"""The model manager dialog: what is in the catalog, what is installed; install, download, verify.

A thin view over :mod:`ctseg_gui.inference.manager` (which does the work, Qt-free) and
:mod:`ctseg_gui.inference.overview` (one row per model). Installing, downloading, verifying and
removing run in a worker thread so the window never freezes; a download reports progress and can
be cancelled (its partial file stays, so the next download resumes). Every failure becomes one line
naming the file or URL and the problem, shown under the table and, in interactive use, in a
message box that does not block.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.inference.overview import ModelStatus, format_size, model_overview
from ctseg_gui.inference.trust import BundleReview, UntrustedBundleError
from ctseg_gui.qt._model_task import details_html, run_task
from ctseg_gui.qt.dialogs import ask_yes_no
from ctseg_gui.qt.jobs import QtJobs

COLUMNS = ("Model", "Task", "Variants", "Status", "Size", "Licence", "Source")
WIDTHS = (300, 220, 100, 120, 70, 180)  # the last column stretches
ERROR_STYLE = "color: #ff8a80;"
OK_STYLE = "color: #9ccc65;"


class QtModelManagerDialog(QDialog):
    """Catalog models with their install state; install from folder / .zip, download, verify.

    Parameters
    ----------
    parent
        Owner widget (the model panel or the main window).
    show_dialogs
        Show errors and confirmations in message boxes (tests turn it off, watch :attr:`failed`
        and answer confirmations through :meth:`confirm`).

    Signals
    -------
    models_changed()
        A model was installed or removed (pickers re-read the installed models).
    model_installed(str)
        Id of a model just installed (from a folder, a .zip or a download); sent after
        ``models_changed``, so pickers already list it.
    task_finished(str, str)
        An action (``install``, ``download``, ``verify``, ``remove``) ended: action, outcome line.
    failed(str)
        An action failed: the one-line message shown to the user.
    """

    models_changed = Signal()
    model_installed = Signal(str)
    task_finished = Signal(str, str)
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, show_dialogs: bool = True) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model manager")
        self.show_dialogs = show_dialogs
        self.rows: list[ModelStatus] = []
        self._task: str | None = None
        self._retry: tuple[str, Callable] | None = None  # the running action, to run it again
        self._jobs = QtJobs(self)
        self._message_box: QMessageBox | None = None

        self.folder_label = QLabel()
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        for column, width in enumerate(WIDTHS):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(column, width)
        header.setStretchLastSection(True)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setOpenExternalLinks(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.details.setMinimumHeight(92)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.install_folder_button = QPushButton("Install from folder…")
        self.install_folder_button.setToolTip("Install a MONAI bundle folder (configs/ + models/)")
        self.install_zip_button = QPushButton("Install from .zip…")
        self.install_zip_button.setToolTip(
            "Install a bundle .zip as published on the model zoo, or a .pt weights file for the "
            "selected recipe model (Deepgrow, UNETR SSL)"
        )
        self.download_button = QPushButton("Download")
        self.verify_button = QPushButton("Verify")
        self.verify_button.setToolTip("Check the configs, the weights and published checksums")
        self.remove_button = QPushButton("Remove…")
        self.open_button = QPushButton("Open folder")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the download (it resumes next time)")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        actions = QHBoxLayout()
        for button in (
            self.install_folder_button,
            self.install_zip_button,
            self.download_button,
            self.verify_button,
            self.remove_button,
            self.open_button,
        ):
            actions.addWidget(button)
        actions.addStretch(1)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(actions)
        layout.addLayout(progress_row)
        layout.addWidget(self.status_label)
        layout.addWidget(close)

        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.install_folder_button.clicked.connect(self.choose_folder)
        self.install_zip_button.clicked.connect(self.choose_archive)
        self.download_button.clicked.connect(self.download_selected)
        self.verify_button.clicked.connect(self.verify_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.open_button.clicked.connect(self.open_selected_folder)
        self.cancel_button.clicked.connect(self.cancel)
        self.refresh()
        self.resize(1380, 560)

    # ---- table ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read the catalog and the installed models (keeps the selection)."""
        from ctseg_gui.inference.manager import models_dir

        current = self.selected_id()
        try:
            self.rows = model_overview()
        except Exception as error:  # noqa: BLE001 - a broken manifest must not break the dialog
            self.rows = []
            self._set_status(f"cannot read the model catalog: {error}", error=True)
        self.folder_label.setText(f"Installed models live in {models_dir()}")
        self.table.setRowCount(len(self.rows))
        for number, row in enumerate(self.rows):
            values = (
                row.title,
                row.task,
                ", ".join(row.variants) or "—",
                row.status,
                format_size(row.size_bytes),
                row.licence,
                row.source,
            )
            tips = (
                f"{row.title}\nid: {row.model_id}",
                row.task,
                None,
                str(row.path) if row.path else None,
                f"{row.size_bytes:,} bytes" if row.size_bytes is not None else None,
                row.licence,
                "\n".join(f"{kind}: {url}" for kind, url in row.sources) or row.source,
            )
            for column, (value, tip) in enumerate(zip(values, tips, strict=True)):
                item = QTableWidgetItem(value)
                item.setToolTip(tip or value)
                if column == 0:
                    item.setData(Qt.ItemDataRole.UserRole, row.model_id)
                self.table.setItem(number, column, item)
        self.table.resizeColumnToContents(0)  # model names in full; the rest elide
        self.select(current or (self.rows[0].model_id if self.rows else ""))
        self._update_buttons()

    def row(self, model_id: str) -> ModelStatus | None:
        """The shown row of ``model_id``."""
        return next((r for r in self.rows if r.model_id == model_id), None)

    def selected(self) -> ModelStatus | None:
        """The selected model's row."""
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def selected_id(self) -> str | None:
        """Id of the selected model."""
        row = self.selected() if self.rows else None
        return row.model_id if row else None

    def select(self, model_id: str) -> None:
        """Select a model's row."""
        for number, row in enumerate(self.rows):
            if row.model_id == model_id:
                self.table.selectRow(number)
                return

    @Slot()
    def _on_table_selection_changed(self) -> None:
        row = self.selected()
        self.details.setText(details_html(row) if row else "")
        self._update_buttons()

    def _update_buttons(self) -> None:
        row = self.selected()
        busy = self._task is not None
        installed = bool(row and row.installed and row.kind != "builtin")
        self.install_folder_button.setEnabled(not busy)
        self.install_zip_button.setEnabled(not busy)
        self.download_button.setEnabled(not busy and bool(row and row.downloadable))
        if row is not None and row.kind == "recipe":
            self.download_button.setToolTip(
                "Published as weights on a web page: download them there, then Install from .zip…"
            )
        else:
            self.download_button.setToolTip("Download the bundle from its catalog source")
        self.verify_button.setEnabled(not busy and installed)
        self.remove_button.setEnabled(not busy and installed)
        self.open_button.setEnabled(not busy)
        self.cancel_button.setEnabled(self._task == "download")

    # ---- actions ----------------------------------------------------------------------------
    @Slot()
    def choose_folder(self) -> None:
        """Ask for a bundle folder and install it."""
        folder = QFileDialog.getExistingDirectory(self, "Install a MONAI bundle folder")
        if folder:
            self.install_from(folder)

    @Slot()
    def choose_archive(self) -> None:
        """Ask for a bundle .zip (or recipe weights) and install it."""
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Install a bundle archive",
            "",
            "Bundle archives (*.zip);;Weights of a recipe model (*.pt *.pth);;All files (*)",
        )
        if path:
            self.install_from(path)

    def install_from(self, source: str | Path) -> bool:
        """Install a bundle folder, .zip or recipe weights file in the background.

        Returns whether the install started (not when busy or the user declined to replace).
        """
        from ctseg_gui.inference import manager

        source = Path(source)
        model_id = manager.default_model_id(source)
        row = self.selected()
        if source.suffix in (".pt", ".pth") and row is not None and row.kind == "recipe":
            model_id = row.model_id  # weights files carry no name of their own
        if not self._replace_ok(model_id):
            return False
        return self._start(
            "install",
            f"Installing {model_id} from {source}…",
            lambda report, cancelled: manager.install(source, model_id, force=True),
        )

    @Slot()
    def download_selected(self) -> bool:
        """Download the selected catalog model and install it (progress, cancellable)."""
        from ctseg_gui.inference import manager

        row = self.selected()
        if row is None or not row.downloadable or not self._replace_ok(row.model_id):
            return False
        urls = manager.download_urls(row.model_id)
        return self._start(
            "download",
            f"Downloading {row.title} from {urls[0] if urls else 'its source'}…",
            lambda report, cancelled: manager.download_and_install(
                row.model_id, report, cancelled=cancelled
            ),
        )

    @Slot()
    def verify_selected(self) -> bool:
        """Check the selected model's files and checksums; the result goes to the status line."""
        from ctseg_gui.inference import manager

        row = self.selected()
        if row is None or not row.installed or row.kind == "builtin":
            return False

        def work(report, cancelled):
            checked: list[str] = []
            problems = manager.verify(row.model_id, checked)
            return row.model_id, problems, checked, manager.untrusted_review(row.path)

        return self._start("verify", f"Verifying {row.model_id}…", work)

    @Slot()
    def remove_selected(self) -> bool:
        """Delete the selected installed model after the user confirms."""
        from ctseg_gui.inference import manager

        row = self.selected()
        if row is None or not row.installed or row.kind == "builtin":
            return False
        question = (
            f"Delete {row.title} ({format_size(row.size_bytes)}) from {row.path}?\n"
            "You can install it again later."
        )
        if not self.confirm("Remove model", question):
            return False

        def work(report, cancelled):
            manager.remove(row.model_id)
            return row.model_id

        return self._start("remove", f"Removing {row.model_id}…", work)

    @Slot()
    def open_selected_folder(self) -> bool:
        """Show the selected model's folder (or the models folder) in the file manager."""
        from ctseg_gui.inference.manager import models_dir

        row = self.selected()
        folder = row.path if row is not None and row.path is not None else models_dir()
        folder.mkdir(parents=True, exist_ok=True)
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self._set_status(f"{folder}: no file manager could open it", error=True)
            return False
        return True

    @Slot()
    def cancel(self) -> None:
        """Stop a running download at its next block (the partial file stays to resume)."""
        job = self._jobs.current("model-task")
        if self._task == "download" and job is not None:
            job.cancel()
            self._set_status("Cancelling…")

    def ask_trust(self, review: BundleReview, action: str = "install") -> bool:
        """Ask whether to trust a bundle that would run code not known to be safe.

        Lists what it would run and its checksum (:class:`~ctseg_gui.qt.trust_dialog.QtTrustDialog`).
        Without dialogs (tests replace this) the answer is No: an untrusted bundle never installs
        unasked.
        """
        if not self.show_dialogs:
            return False
        from ctseg_gui.qt.trust_dialog import ask_trust

        return ask_trust(self, review, action)

    def confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (tests replace this when ``show_dialogs`` is off)."""
        if not self.show_dialogs:
            return True
        return ask_yes_no(self, title, question)

    @property
    def busy(self) -> bool:
        """Whether an install, download, verification or removal is running."""
        return self._task is not None

    def _replace_ok(self, model_id: str) -> bool:
        row = self.row(model_id)
        if row is None or not row.installed:
            return True
        return self.confirm(
            "Replace model", f"{model_id} is already installed ({row.path}). Replace it?"
        )

    # ---- background work --------------------------------------------------------------------
    def _start(self, action: str, message: str, work: Callable) -> bool:
        if self._task is not None:
            return False
        self._task = action
        self._retry = (message, work)
        self.progress.setRange(0, 0)  # busy until a download knows its size
        self._set_status(message)
        self._update_buttons()
        self._jobs.run(
            "model-task",
            run_task,
            _untrusted_as_result(work),
            on_progress=lambda event: self._on_task_progressed(*event.data),
            on_result=lambda result: self._on_task_succeeded(action, result),
            on_error=lambda text: self._on_task_failed(action, text),
            on_cancelled=lambda text: self._on_task_cancelled(action, text),
        )
        return True

    def _on_task_progressed(self, done: int, total: int | None) -> None:
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(round(1000 * min(1.0, done / total)))
            self._set_status(f"Downloading: {format_size(done)} of {format_size(total)}")
        else:
            self._set_status(f"Downloading: {format_size(done)}")

    def _on_task_succeeded(self, action: str, result) -> None:
        self._end_task()
        if isinstance(result, UntrustedBundleError):
            self._on_untrusted(action, result)
            return
        if action == "verify":
            model_id, problems, checked, untrusted = result
            if untrusted is not None and self.ask_trust(untrusted, "run"):
                # installed before trust was asked, or changed since: trusting it lets it run
                from ctseg_gui.inference.trust import accept

                accept(untrusted)
                self.verify_selected()
                return
            if problems:
                self._report_error(
                    "Verification failed", f"{model_id}: " + "; ".join(problems), action
                )
                return
            text = f"{model_id}: OK — " + "; ".join(checked or ["nothing to check"])
            self._set_status(text, ok=True)
            self.task_finished.emit(action, text)
            return
        self.refresh()
        if action == "remove":
            text = f"Removed {result}."
        else:
            text = f"Installed {result.model_id} {result.version} in {result.path}."
            self.select(result.model_id)
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000)
        self._set_status(text, ok=True)
        self.models_changed.emit()
        if action != "remove":
            self.model_installed.emit(result.model_id)
        self.task_finished.emit(action, text)

    def _on_untrusted(self, action: str, error: UntrustedBundleError) -> None:
        """The bundle needs trust: ask; on Yes record it and install again, else refuse."""
        from ctseg_gui.inference.trust import accept

        self._set_status(f"Asking whether to trust {error.review.root}…")
        if self.ask_trust(error.review):
            accept(error.review)
            message, work = self._retry
            self._start(action, message, work)
            return
        self.refresh()
        text = f"Not installed (not trusted): {error.review.root}: {error.review.summary()}"
        self._set_status(text, error=True)
        self.failed.emit(text)
        self.task_finished.emit(action, text)

    def _on_task_failed(self, action: str, text: str) -> None:
        self._end_task()
        self.refresh()  # a failed install leaves nothing behind; show that
        titles = {"download": "Download failed", "remove": "Could not remove the model"}
        self._report_error(titles.get(action, "Could not install the model"), text, action)

    def _on_task_cancelled(self, action: str, text: str) -> None:
        self._end_task()
        self._set_status(text)
        self.task_finished.emit(action, text)

    def _end_task(self) -> None:
        self._task = None
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self._update_buttons()

    def _report_error(self, title: str, text: str, action: str) -> None:
        self._set_status(text, error=True)
        self.failed.emit(text)
        self.task_finished.emit(action, text)
        if self.show_dialogs:
            self._message_box = QMessageBox(QMessageBox.Icon.Warning, title, text, parent=self)
            self._message_box.open()  # not exec(): never block the GUI thread

    def _set_status(self, text: str, *, error: bool = False, ok: bool = False) -> None:
        self.status_label.setStyleSheet(ERROR_STYLE if error else OK_STYLE if ok else "")
        self.status_label.setText(text)

    def reject(self) -> None:  # noqa: D102 - closing stops a download; it resumes next time
        self.cancel()
        super().reject()


def _untrusted_as_result(work: Callable) -> Callable:
    """``work`` returning (not raising) an UntrustedBundleError, so the dialog gets its review."""

    def guarded(report, cancelled):
        try:
            return work(report, cancelled)
        except UntrustedBundleError as error:
            return error

    return guarded
