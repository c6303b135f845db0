"""The model panel: pick a model, run it on the open image in the compute worker, cancel.

Self-contained so the main window only docks it: give it the image with
:meth:`QtModelPanel.set_volume` and take the labels from :attr:`QtModelPanel.result_ready`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.qt.worker_bridge import QtComputeBridge

BUILTIN_ID = "ct-tissues"
DEVICES = (("auto", "Automatic (GPU when present)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))


@dataclass
class ModelChoice:
    """One entry of the model picker."""

    model_id: str
    title: str
    variants: list[str] = field(default_factory=list)
    default_variant: str | None = None


def available_models() -> list[ModelChoice]:
    """The built-in model, then every installed catalog model (no torch import).

    A damaged or unknown installation is listed under its folder name rather than hidden, so the
    user sees it and the worker's error message explains what is wrong when it runs.
    """
    from ctseg_gui.inference.ct_tissues import DISPLAY_NAME

    choices = [ModelChoice(BUILTIN_ID, DISPLAY_NAME)]
    try:
        from ctseg_gui.inference.catalog import load_catalog
        from ctseg_gui.inference.manager import list_installed
    except ImportError:  # catalog not part of this installation
        return choices
    try:
        catalog = load_catalog()
        installed = list_installed()
    except Exception:  # noqa: BLE001 - a broken catalog must not break the panel
        return choices
    for model in installed:
        manifest = catalog.get(model.model_id)
        if manifest is None:
            choices.append(ModelChoice(model.model_id, model.model_id))
            continue
        choices.append(
            ModelChoice(
                model.model_id,
                manifest.display_name,
                list(manifest.variants),
                manifest.default_variant,
            )
        )
    return choices


class QtModelPanel(QWidget):
    """Model picker, variant and device choice, Run / Cancel, progress with stage and ETA.

    Parameters
    ----------
    bridge
        A shared :class:`QtComputeBridge` (the window's); by default the panel makes its own.
    show_dialogs
        Show errors in a message box (tests turn it off and watch :attr:`failed`).
    prestart
        Start the worker as soon as an image is set, so the first run does not wait for it
        (default: as ``show_dialogs``, i.e. in interactive use, not in tests).

    Signals
    -------
    result_ready(object)
        A :class:`~ctseg_gui.core.labels.LabelMap` on the grid of the panel's volume.
    failed(str)
        A job failed: one line for the user.
    run_started(int)
        Job id of a run just submitted.
    run_cancelled()
        The current run was cancelled (by the user or because the image changed).
    status_changed(str)
        One-line news for the status bar (worker started / restarted, job finished).
    """

    result_ready = Signal(object)
    failed = Signal(str)
    run_started = Signal(int)
    run_cancelled = Signal()
    status_changed = Signal(str)

    CHANNEL = "segment"

    def __init__(
        self,
        bridge: QtComputeBridge | None = None,
        *,
        show_dialogs: bool = True,
        prestart: bool | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge if bridge is not None else QtComputeBridge(parent=self)
        self.show_dialogs = show_dialogs
        self.prestart = show_dialogs if prestart is None else prestart
        self._volume = None
        self._job_id: int | None = None
        self._job_volume = None
        self._started_at = 0.0
        self._dialog: QMessageBox | None = None
        self._warmed = False

        self.model_box = QComboBox()
        self.variant_box = QComboBox()
        self.variant_label = QLabel("Variant")
        self.device_box = QComboBox()
        for value, text in DEVICES:
            self.device_box.addItem(text, value)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.stage_label = QLabel("Open an image to run a model.")
        self.stage_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Model", self.model_box)
        form.addRow(self.variant_label, self.variant_box)
        form.addRow("Device", self.device_box)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage_label)
        layout.addStretch(1)

        self.model_box.currentIndexChanged.connect(self._on_model_box_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.bridge.started.connect(self._on_bridge_started)
        self.bridge.progressed.connect(self._on_bridge_progressed)
        self.bridge.warned.connect(self._on_bridge_warned)
        self.bridge.succeeded.connect(self._on_bridge_succeeded)
        self.bridge.failed.connect(self._on_bridge_failed)
        self.bridge.cancelled.connect(self._on_bridge_cancelled)
        self.bridge.status_changed.connect(self.status_changed)
        self.refresh_models()
        self._update_buttons()

    # ---- public API ------------------------------------------------------------------------
    def set_volume(self, volume) -> None:
        """The image models run on; a run on a previous image is cancelled."""
        if volume is not self._volume and self.running:
            self.cancel()
        self._volume = volume
        if volume is not None and self.prestart:
            # An open image means a run is likely: have the worker up before the user clicks.
            self.bridge.start()
            self._warm_up_if_needed()
        if not self.running:
            self.stage_label.setText("Ready." if volume is not None else "Open an image first.")
        self._update_buttons()

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._job_id is not None

    def refresh_models(self) -> None:
        """Re-read the installed models (after the model manager installed or removed one)."""
        current = self.model_id
        self._choices = available_models()
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for choice in self._choices:
            self.model_box.addItem(choice.title, choice.model_id)
        index = max(0, self.model_box.findData(current)) if current else 0
        self.model_box.setCurrentIndex(index)
        self.model_box.blockSignals(False)
        self._on_model_box_changed(index)

    @property
    def model_id(self) -> str | None:
        """The chosen model's id."""
        return self.model_box.currentData() if hasattr(self, "_choices") else None

    def select_model(self, model_id: str, variant: str | None = None) -> None:
        """Choose a model (and variant) programmatically."""
        index = self.model_box.findData(model_id)
        if index < 0:
            raise ValueError(f"model {model_id!r} is not installed")
        self.model_box.setCurrentIndex(index)
        if variant is not None:
            self.variant_box.setCurrentIndex(self.variant_box.findData(variant))

    @Slot()
    def run(self) -> None:
        """Run the chosen model on the current image in the compute worker."""
        if self._volume is None:
            return
        choice = self._choices[self.model_box.currentIndex()]
        variant = self.variant_box.currentData() if choice.variants else None
        self._job_volume = self._volume
        self._started_at = time.monotonic()
        self._job_id = self.bridge.submit_segment(
            self._volume,
            choice.model_id,
            channel=self.CHANNEL,
            variant=variant,
            device=self.device_box.currentData(),
        )
        self.progress.setValue(0)
        self.stage_label.setText(f"Waiting for the compute worker to run {choice.title}…")
        self._update_buttons()
        self.run_started.emit(self._job_id)

    @Slot()
    def cancel(self) -> None:
        """Stop the current run (the worker stays up with its models loaded)."""
        if self._job_id is not None:
            self.bridge.cancel(self.CHANNEL)  # emits cancelled, handled below

    # ---- bridge events ---------------------------------------------------------------------
    @Slot(int)
    def _on_bridge_started(self, job_id: int) -> None:
        if job_id == self._job_id:
            self._started_at = time.monotonic()
            self.stage_label.setText("Started…")

    @Slot(int, str, float)
    def _on_bridge_progressed(self, job_id: int, stage: str, fraction: float) -> None:
        if job_id != self._job_id:
            return
        self.progress.setValue(round(1000 * max(0.0, min(1.0, fraction))))
        text = f"{stage} — {fraction:.0%}"
        eta = estimate_remaining(time.monotonic() - self._started_at, fraction)
        if eta is not None:
            text += f" — about {format_seconds(eta)} left"
        self.stage_label.setText(text)

    @Slot(int, str)
    def _on_bridge_warned(self, job_id: int, message: str) -> None:
        if job_id == self._job_id:
            self.status_changed.emit(f"warning: {message}")

    @Slot(int, object)
    def _on_bridge_succeeded(self, job_id: int, labels) -> None:
        if job_id != self._job_id:
            return
        volume = self._job_volume
        self._finish(f"Done in {format_seconds(time.monotonic() - self._started_at)}.")
        self.progress.setValue(1000)
        if volume is not self._volume:
            return  # the image changed while the job ran: stale
        self.status_changed.emit(f"{self.model_box.currentText()}: labels ready")
        self.result_ready.emit(labels)

    @Slot(int, str)
    def _on_bridge_failed(self, job_id: int, message: str) -> None:
        if job_id != self._job_id:
            return
        self._finish(f"Failed: {message}")
        self.failed.emit(message)
        if self.show_dialogs:
            self._dialog = QMessageBox(
                QMessageBox.Icon.Warning, "Model run failed", message, parent=self
            )
            self._dialog.open()  # not exec(): never block the GUI thread

    @Slot(int)
    def _on_bridge_cancelled(self, job_id: int) -> None:
        if job_id != self._job_id:
            return
        self._finish("Cancelled.")
        self.progress.setValue(0)
        self.run_cancelled.emit()

    # ---- helpers ---------------------------------------------------------------------------
    def _finish(self, text: str) -> None:
        self._job_id = None
        self._job_volume = None
        self.stage_label.setText(text)
        self._update_buttons()

    @Slot(int)
    def _on_model_box_changed(self, index: int) -> None:
        choices = getattr(self, "_choices", [])
        choice = choices[index] if 0 <= index < len(choices) else None
        self.variant_box.clear()
        if choice is not None:
            for name in choice.variants:
                self.variant_box.addItem(name, name)
            if choice.default_variant in choice.variants:
                self.variant_box.setCurrentIndex(choice.variants.index(choice.default_variant))
        has_variants = bool(choice and choice.variants)
        self.variant_box.setVisible(has_variants)
        self.variant_label.setVisible(has_variants)
        self._warm_up_if_needed()

    def _warm_up_if_needed(self) -> None:
        """Load torch in the worker once a deep model is chosen for an open image.

        Done in the background, so the first run does not wait for the import; the built-in
        model needs no torch, so it never triggers this.
        """
        if not self.prestart or self._volume is None or self._warmed:
            return
        if self.model_id in (None, BUILTIN_ID):
            return
        self._warmed = True
        self.bridge.submit("warm_up", channel="warm_up")

    def _update_buttons(self) -> None:
        self.run_button.setEnabled(self._volume is not None and not self.running)
        self.cancel_button.setEnabled(self.running)
        self.model_box.setEnabled(not self.running)
        self.variant_box.setEnabled(not self.running)
        self.device_box.setEnabled(not self.running)


def estimate_remaining(elapsed: float, fraction: float) -> float | None:
    """Seconds left at a constant rate, once there is enough to go on (else None)."""
    if fraction < 0.05 or fraction >= 1.0 or elapsed < 1.0:
        return None
    return elapsed * (1.0 - fraction) / fraction


def format_seconds(seconds: float) -> str:
    """``"4 s"``, ``"2 min 05 s"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"
