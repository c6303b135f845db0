"""The model panel: pick a model, run it on the open image in the compute worker, cancel.

Self-contained so the main window only docks it: give it the image with
:meth:`QtModelPanel.set_volume` and take the labels from :attr:`QtModelPanel.result_ready`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.inference.overview import format_size
from ctseg_gui.qt import resource_estimate
from ctseg_gui.qt.resource_estimate import Estimate, QtEstimator, QtFallbackBox
from ctseg_gui.qt.worker_bridge import QtComputeBridge

BUILTIN_ID = "ct-tissues"
DEVICES = (("auto", "Automatic (GPU when present)"), ("cpu", "CPU"), ("cuda", "GPU (CUDA)"))
PRECISIONS = (
    ("auto", "As the model's own workflow"),
    ("reduced", "Fast (mixed precision)"),
    ("fp32", "Exact (float32)"),
)
# (value, text, module that must be importable): the GUI only looks for the packages, so it
# never imports a backend itself; the worker does
BACKENDS = (
    ("auto", "Fastest checked here (auto)", None),
    ("torch", "PyTorch", None),
    ("onnxruntime", "ONNX Runtime", "onnxruntime"),
    ("openvino", "OpenVINO (CPU)", "openvino"),
    ("tensorrt", "TensorRT (GPU)", "tensorrt"),
)


@dataclass
class ModelChoice:
    """One entry of the model picker."""

    model_id: str
    title: str
    variants: list[str] = field(default_factory=list)
    default_variant: str | None = None
    variant_titles: dict[str, str] = field(default_factory=dict)


def variant_title(name: str, spacing_mm=None) -> str:
    """``"High-res (1.5 mm)"`` for the whole-body ``highres`` variant; other names as they are."""
    title = {"highres": "High-res", "lowres": "Low-res"}.get(name, name)
    if spacing_mm:
        sizes = sorted({float(s) for s in spacing_mm})
        title += " (" + " x ".join(f"{s:g}" for s in sizes) + " mm)"
    return title


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
                {n: variant_title(n, v.spacing_mm) for n, v in manifest.variants.items()},
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
    estimate_changed(object)
        The :class:`~ctseg_gui.qt.resource_estimate.Estimate` for the current image, model,
        variant and device (None while unknown).
    fallback_offered(str)
        The chosen run would not fit in memory: the reason; Low-res / CPU / Run anyway are shown.
    """

    result_ready = Signal(object)
    failed = Signal(str)
    run_started = Signal(int)
    run_cancelled = Signal()
    status_changed = Signal(str)
    estimate_changed = Signal(object)
    fallback_offered = Signal(str)

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
        self.estimate: Estimate | None = None
        self._estimate_raw: dict | None = None
        self._estimate_key: tuple = ()
        self._run_when_estimated = False
        self.estimator = QtEstimator(lambda: self.bridge.client, self)
        self.manager_dialog = None  # the model manager, made when first opened

        self.model_box = QComboBox()
        self.manage_button = QPushButton("Manage…")
        self.manage_button.setToolTip("Install, download, verify or remove models")
        # The variant lives in a (hidden) combo box; the user sees one radio button per variant,
        # so High-res / Low-res is a visible switch rather than a menu.
        self.variant_box = QComboBox()
        self.variant_box.hide()
        self.variant_label = QLabel("Resolution")
        self.variant_row = QWidget()
        self.variant_row_layout = QHBoxLayout(self.variant_row)
        self.variant_row_layout.setContentsMargins(0, 0, 0, 0)
        self.variant_group = QButtonGroup(self)
        self.variant_buttons: dict[str, QRadioButton] = {}
        self.device_box = QComboBox()
        for value, text in DEVICES:
            self.device_box.addItem(text, value)
        self.precision_box = QComboBox()
        for value, text in PRECISIONS:
            self.precision_box.addItem(text, value)
        self.precision_box.setToolTip(
            "Fast runs the network in bfloat16 on the CPU (float16 on a GPU): 2-2.7x faster on "
            "CPUs with bfloat16 instructions (AVX-512 BF16, AMX); a few voxels where two "
            "structures are nearly tied may change label"
        )
        self.backend_box = QComboBox()
        self._fill_backends()
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.stage_label = QLabel("Open an image to run a model.")
        self.stage_label.setWordWrap(True)
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setToolTip(
            "Predicted peak memory and run time for the open CT (from the image size and the "
            "model's grid; the model does not run)"
        )
        self._build_fallback_box()
        # Shown while a training run holds the GPU (see set_gpu_taken).
        self.gpu_note = QLabel(
            "A training run holds the GPU: model runs go to the CPU until it ends."
        )
        self.gpu_note.setWordWrap(True)
        self.gpu_note.setStyleSheet("color: #c98a2b;")
        self.gpu_note.hide()
        self._device_before_training: str | None = None

        form = QFormLayout()
        picker = QHBoxLayout()
        picker.addWidget(self.model_box, 1)
        picker.addWidget(self.manage_button)
        form.addRow("Model", picker)
        form.addRow(self.variant_label, self.variant_row)
        form.addRow("Device", self.device_box)
        form.addRow("Precision", self.precision_box)
        form.addRow("Backend", self.backend_box)
        form.addRow("Estimate", self.estimate_label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.gpu_note)
        layout.addWidget(self.fallback_box)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.stage_label)
        layout.addStretch(1)

        self.model_box.currentIndexChanged.connect(self._on_model_box_changed)
        self.variant_box.currentIndexChanged.connect(self._on_variant_box_changed)
        self.variant_group.idClicked.connect(self._on_variant_group_clicked)
        self.device_box.currentIndexChanged.connect(lambda _i: self._request_estimate())
        self.precision_box.currentIndexChanged.connect(lambda _i: self._rerate_estimate())
        self.backend_box.currentIndexChanged.connect(lambda _i: self._rerate_estimate())
        self.estimator.estimated.connect(self._on_estimator_estimated)
        self.estimator.failed.connect(self._on_estimator_failed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.manage_button.clicked.connect(self.manage_models)
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
        self._request_estimate()
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

    @Slot()
    def manage_models(self):
        """Open the model manager; the picker follows its installs and removals."""
        from ctseg_gui.qt.model_manager_dialog import QtModelManagerDialog

        if self.manager_dialog is None:
            self.manager_dialog = QtModelManagerDialog(self, show_dialogs=self.show_dialogs)
            self.manager_dialog.models_changed.connect(self.refresh_models)
            self.manager_dialog.model_installed.connect(self._on_manager_dialog_model_installed)
        self.manager_dialog.refresh()
        self.manager_dialog.show()
        self.manager_dialog.raise_()
        self.manager_dialog.activateWindow()
        return self.manager_dialog

    @Slot(str)
    def _on_manager_dialog_model_installed(self, model_id: str) -> None:
        # the picker already lists it: the dialog sends models_changed first
        if not self.running and self.model_box.findData(model_id) >= 0:
            self.select_model(model_id)

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

    @property
    def variant(self) -> str | None:
        """The chosen variant (None for a model without variants)."""
        return self.variant_box.currentData() if self.variant_box.count() else None

    @property
    def device(self) -> str:
        """The chosen device (``auto``, ``cpu``, ``cuda``)."""
        return self.device_box.currentData()

    def set_gpu_taken(self, taken: bool) -> None:
        """A training run holds the GPU (True) or gave it back: model runs go to the CPU meanwhile.

        The device choice moves to CPU and the panel says why; when the GPU is free again the
        user's earlier choice comes back.
        """
        if taken and self._device_before_training is None:
            self._device_before_training = self.device
            self.device_box.setCurrentIndex(self.device_box.findData("cpu"))
        elif not taken and self._device_before_training is not None:
            self.device_box.setCurrentIndex(self.device_box.findData(self._device_before_training))
            self._device_before_training = None
        self.gpu_note.setVisible(taken)
        self.device_box.setToolTip(self.gpu_note.text() if taken else "")

    @Slot()
    def run(self) -> None:
        """Run the chosen model, unless the estimate says it will not fit (then offer a fallback).

        While the estimate is still being computed the run waits for it.
        """
        if self._volume is None or self.running:
            return
        if self.estimator.pending:
            self._run_when_estimated = True
            self.stage_label.setText("Checking the memory this run needs…")
            return
        if self._estimate_raw is not None:  # memory may have been freed or taken since
            self.estimate = resource_estimate.make_estimate(self._estimate_raw, self._estimate_key)
        if self.estimate is not None and not self.estimate.fits:
            self._offer_fallback()
            self.stage_label.setText("Not started: " + self.estimate.problem())
            return
        self._submit()

    @Slot()
    def run_anyway(self) -> None:
        """Run the chosen model and variant on the chosen device even if it may not fit."""
        if self._volume is None or self.running:
            return
        self._run_when_estimated = False
        self.fallback_box.hide()
        self._submit()

    @Slot()
    def use_lowres(self) -> None:
        """Switch to the low-resolution variant (the estimate is redone)."""
        self.variant_box.setCurrentIndex(self.variant_box.findData("lowres"))

    def _run_key(self, model_id, variant) -> tuple:
        """What a measured run time belongs to: model, variant, precision and backend."""
        precision, backend = self.precision_box.currentData(), self.backend_box.currentData()
        return (model_id, variant, precision, backend)

    def _fill_backends(self) -> None:
        import importlib.util

        for value, text, module in BACKENDS:
            self.backend_box.addItem(text, value)
            if module is not None and importlib.util.find_spec(module) is None:
                item = self.backend_box.model().item(self.backend_box.count() - 1)
                item.setEnabled(False)
                item.setToolTip(f"{module} is not installed")
        self.backend_box.setToolTip(
            "The runtime for the network. Auto takes the fastest backend and precision that "
            "kept the labels of PyTorch float32 in a check on this machine (`ctseg backends "
            "check`), else PyTorch"
        )

    @Slot()
    def use_cpu(self) -> None:
        """Switch to the CPU (the estimate is redone)."""
        self.device_box.setCurrentIndex(self.device_box.findData("cpu"))

    def _submit(self) -> None:
        choice = self._choices[self.model_box.currentIndex()]
        variant = self.variant_box.currentData() if choice.variants else None
        self._job_volume = self._volume
        self._job_key = self._run_key(choice.model_id, variant)
        self._job_estimate = self._estimate_raw
        self._started_at = time.monotonic()
        self._job_id = self.bridge.submit_segment(
            self._volume,
            choice.model_id,
            channel=self.CHANNEL,
            variant=variant,
            device=self.device_box.currentData(),
            precision=self.precision_box.currentData(),
            backend=self.backend_box.currentData(),
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
        elapsed = time.monotonic() - self._started_at
        raw = getattr(self, "_job_estimate", None)
        if raw:  # the next estimate for this model and device uses the measured rate
            resource_estimate.record_run_time(
                self._job_key, raw.get("device", "cpu"), elapsed, raw.get("windows")
            )
        self._finish(f"Done in {format_seconds(elapsed)}.")
        self._rerate_estimate()  # the measured rate is new; the geometry is what it was
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
        self.variant_box.blockSignals(True)
        self.variant_box.clear()
        for button in self.variant_buttons.values():
            self.variant_group.removeButton(button)
            button.deleteLater()
        self.variant_buttons = {}
        if choice is not None:
            for number, name in enumerate(choice.variants):
                title = choice.variant_titles.get(name, name)
                self.variant_box.addItem(title, name)
                button = QRadioButton(title)
                self.variant_group.addButton(button, number)
                self.variant_row_layout.addWidget(button)
                self.variant_buttons[name] = button
            if choice.default_variant in choice.variants:
                self.variant_box.setCurrentIndex(choice.variants.index(choice.default_variant))
        self.variant_box.blockSignals(False)
        self._sync_variant_buttons()
        has_variants = bool(choice and choice.variants)
        self.variant_row.setVisible(has_variants)
        self.variant_label.setVisible(has_variants)
        self._warm_up_if_needed()
        self._request_estimate()

    @Slot(int)
    def _on_variant_box_changed(self, _index: int) -> None:
        self._sync_variant_buttons()
        self._request_estimate()

    @Slot(int)
    def _on_variant_group_clicked(self, number: int) -> None:
        self.variant_box.setCurrentIndex(number)

    def _sync_variant_buttons(self) -> None:
        button = self.variant_buttons.get(self.variant_box.currentData())
        if button is not None:
            button.setChecked(True)

    # ---- estimate and fallback -------------------------------------------------------------
    def _build_fallback_box(self) -> None:
        self.fallback_box = QtFallbackBox()
        self.fallback_label = self.fallback_box.label
        self.lowres_button = self.fallback_box.lowres_button
        self.cpu_button = self.fallback_box.cpu_button
        self.run_anyway_button = self.fallback_box.run_anyway_button
        self.lowres_button.clicked.connect(self.use_lowres)
        self.cpu_button.clicked.connect(self.use_cpu)
        self.run_anyway_button.clicked.connect(self.run_anyway)

    def _request_estimate(self) -> None:
        """Re-estimate for the current image, model, variant and device (cheap, in a thread)."""
        self.estimate = self._estimate_raw = None
        self.fallback_box.hide()
        model_id = self.model_id
        if self._volume is None or model_id is None or not hasattr(self, "_choices"):
            self.estimator.cancel()
            self.estimate_label.setText("Open an image to see the memory and time a run needs.")
            self.estimate_changed.emit(None)
            return
        if model_id == BUILTIN_ID:  # no bundle to parse, no torch: answer right away
            from ctseg_gui.inference.engine import estimate_resources
            from ctseg_gui.inference.modelref import resolve_model

            self.estimator.cancel()
            raw = estimate_resources(self._volume, resolve_model(model_id), "cpu")
            self._on_estimator_estimated((model_id, None, "cpu"), raw)
            return
        self.estimate_label.setText("Estimating…")
        self.estimator.request(self._volume, model_id, self.variant, self.device)

    def _rerate_estimate(self) -> None:
        """Time from the worker's last answer with the current precision and measured rates.

        After a precision change or a finished run only the time can differ, so the worker (busy
        or not) is asked again only when there is no answer to re-rate.
        """
        if self._estimate_raw is None or not self._estimate_key:
            self._request_estimate()
        else:
            self._on_estimator_estimated(self._estimate_key, self._estimate_raw)

    @Slot(object, object)
    def _on_estimator_estimated(self, key, raw: dict) -> None:
        # measured run times are kept per precision and backend: the fast mode runs ~2.7x
        # quicker on the CPU, OpenVINO's more
        self._estimate_raw = raw
        self._estimate_key = self._run_key(*key[:2])
        self.estimate = resource_estimate.make_estimate(raw, self._estimate_key)
        text = self.estimate.text()
        if self.estimate.available_bytes is not None:
            memory = "GPU memory" if self.estimate.on_gpu else "RAM"
            available = format_size(self.estimate.available_bytes)
            text += f"\n{available} {memory} available now"
        self.estimate_label.setText(text)
        self.estimate_changed.emit(self.estimate)
        if not self.estimate.fits:
            self._offer_fallback()
        if self._run_when_estimated:
            self._run_when_estimated = False
            self.run()

    @Slot(object, str)
    def _on_estimator_failed(self, key, message: str) -> None:
        self.estimate_label.setText(f"No estimate: {message}")
        self.estimate_changed.emit(None)
        if self._run_when_estimated:  # the worker will report the problem properly
            self._run_when_estimated = False
            self._submit()

    def _offer_fallback(self) -> None:
        if self.estimate is None or self.estimate.fits:
            return
        lowres = self.variant == "highres" and self.variant_box.findData("lowres") >= 0
        self.fallback_offered.emit(self.fallback_box.offer(self.estimate, lowres))

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
        self.variant_row.setEnabled(not self.running)
        self.device_box.setEnabled(not self.running)
        self.precision_box.setEnabled(not self.running)
        self.backend_box.setEnabled(not self.running)
        self.run_anyway_button.setEnabled(self._volume is not None and not self.running)


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
