"""The training panel (a dock): a thin widget over :mod:`ctseg_gui.training.run_model`.

Cases (add / remove, or the open image with its corrected labels), the spec form (defaults per
model from ``ctseg train --template``, asked in a child process so torch stays out of the GUI),
Start / Stop / Resume, live loss and validation-Dice curves (pyqtgraph, imported when the panel is
made), ETA, the log, and "Install as model". Every slow step (checking a pair, writing a case,
reading a template, installing) is a job of :class:`~ctseg_gui.qt.jobs.QtJobs`, and the run's own
events arrive through it too, on the GUI thread.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.qt.jobs import QtJobs
from ctseg_gui.training.run_model import (
    Started,
    TrainingDataset,
    TrainingRun,
    Validation,
)

ERROR_STYLE = "color: #e0605a;"
GPU_NOTE = "This training run holds the GPU: model runs go to the CPU until it ends."
OPTIMIZERS = ("Adam", "AdamW", "Novograd")


def format_eta(seconds: float | None) -> str:
    """``ETA 3 min 20 s`` style text (empty while unknown)."""
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"ETA {hours} h {minutes:02d} min"
    return f"ETA {minutes} min {sec:02d} s" if minutes else f"ETA {sec} s"


class QtTrainingPanel(QWidget):
    """Fine-tune a model on corrected cases and follow the run.

    Parameters
    ----------
    document
        The window's document, for "Add this case"; None in a panel of its own.

    Signals
    -------
    run_started(object)
        The :class:`~ctseg_gui.training.run_model.TrainingRun` whose process started.
    run_ended(str)
        ``finished``, ``failed`` or ``cancelled``.
    gpu_claimed(bool)
        A run started on a CUDA device (True), or that run ended (False).
    failed(str)
        A one-line problem (a refused case, a failed run, an install that did not work).
    case_added(dict)
        A pair joined the data set.
    model_installed(str)
        The run's bundle was installed under this id.
    """

    run_started = Signal(object)
    run_ended = Signal(str)
    gpu_claimed = Signal(bool)
    failed = Signal(str)
    case_added = Signal(dict)
    model_installed = Signal(str)

    def __init__(self, document=None, parent=None) -> None:
        super().__init__(parent)
        self.document = document
        self.dataset = TrainingDataset()
        self.run: TrainingRun | None = None
        self._gpu = False
        self._jobs = QtJobs(self)

        self.case_list = QListWidget()
        self.add_button = QPushButton("Add…")
        self.remove_button = QPushButton("Remove")
        self.add_current_button = QPushButton("Add this case…")
        self.add_current_button.setToolTip(
            "Save the open CT and its corrected labels to a training-set folder and use them"
        )
        self.add_button.clicked.connect(self._on_add_clicked)
        self.remove_button.clicked.connect(lambda: self.remove_case(self.case_list.currentRow()))
        self.add_current_button.clicked.connect(self._on_add_current_clicked)
        cases = QGroupBox("Cases (CT + label)")
        row = QHBoxLayout()
        for button in (self.add_button, self.remove_button, self.add_current_button):
            row.addWidget(button)
        box = QVBoxLayout(cases)
        box.addWidget(self.case_list)
        box.addLayout(row)

        self.base_model = QLineEdit()
        self.base_model.setPlaceholderText("installed model id or bundle folder")
        self.defaults_button = QPushButton("Defaults")
        self.defaults_button.setToolTip("Fill the form with this model's defaults")
        self.defaults_button.clicked.connect(lambda: self.load_defaults(self.base_model.text()))
        self.max_iterations = _spin(1, 10**7, 1000)
        self.val_interval = _spin(1, 10**6, 100)
        self.checkpoint_interval = _spin(1, 10**6, 50)
        self.batch_size = _spin(1, 256, 2)
        self.patch_size = QLineEdit()
        self.patch_size.setPlaceholderText("the model's window (e.g. 96, 96, 96)")
        self.lr = QDoubleSpinBox(decimals=6, minimum=1e-7, maximum=1.0, singleStep=1e-5)
        self.lr.setValue(1e-4)
        self.optimizer = QComboBox()
        self.optimizer.addItems(OPTIMIZERS)
        self.device = QComboBox()
        for text, value in (("Automatic", "auto"), ("CPU", "cpu"), ("GPU (CUDA)", "cuda")):
            self.device.addItem(text, value)
        self.val_fraction = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=0.9, singleStep=0.05)
        self.val_fraction.setValue(0.2)
        self.val_fraction.setToolTip("Share of the cases kept for validation")
        self.run_dir = QLineEdit()
        self.run_dir.setPlaceholderText("default: a new folder under the app's runs/")
        self.install_as = QLineEdit()
        self.install_as.setPlaceholderText("install when done as… (optional)")
        model_row = QHBoxLayout()
        model_row.addWidget(self.base_model, 1)
        model_row.addWidget(self.defaults_button)
        form = QFormLayout()
        form.addRow("Base model", model_row)
        form.addRow("Iterations", self.max_iterations)
        form.addRow("Validate every", self.val_interval)
        form.addRow("Checkpoint every", self.checkpoint_interval)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Patch size", self.patch_size)
        form.addRow("Learning rate", self.lr)
        form.addRow("Optimizer", self.optimizer)
        form.addRow("Device", self.device)
        form.addRow("Validation share", self.val_fraction)
        form.addRow("Run folder", self.run_dir)
        form.addRow("Install as", self.install_as)

        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.install_button = QPushButton("Install as model")
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.install_button.clicked.connect(lambda: self.install_model())
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.install_button)

        self.eta_label = QLabel("")
        self.status = QLabel("Add cases, choose a base model and start.")
        self.status.setWordWrap(True)
        self.gpu_label = QLabel(GPU_NOTE)
        self.gpu_label.setWordWrap(True)
        self.gpu_label.hide()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMinimumHeight(80)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(cases)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self._build_plots(), 1)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.gpu_label)
        layout.addWidget(self.status)
        layout.addWidget(self.log)
        self._update_buttons()

    # ---- plots ---------------------------------------------------------------------------------
    def _build_plots(self) -> QWidget:
        """Loss and mean-Dice plots; a line saying what is missing when pyqtgraph is not there."""
        try:
            import pyqtgraph as pg
        except ImportError:
            self.loss_curve = self.dice_curve = None
            return QLabel(
                "Curves need pyqtgraph (pip install pyqtgraph); the log shows the numbers."
            )
        pg.setConfigOptions(antialias=True)
        plots = pg.GraphicsLayoutWidget()
        plots.setMinimumHeight(220)
        loss = plots.addPlot(row=0, col=0, title="Training loss")
        loss.setLabel("bottom", "iteration")
        loss.showGrid(x=True, y=True, alpha=0.3)
        dice = plots.addPlot(row=1, col=0, title="Validation mean Dice")
        dice.setLabel("bottom", "iteration")
        dice.setYRange(0, 1)
        dice.showGrid(x=True, y=True, alpha=0.3)
        self.loss_curve = loss.plot(pen=pg.mkPen("#4c9be8", width=2))
        self.dice_curve = dice.plot(pen=pg.mkPen("#5cc46a", width=2), symbol="o", symbolSize=6)
        self.plots = plots
        return plots

    def _redraw(self) -> None:
        if self.run is None or self.loss_curve is None:
            return
        for curve, points in ((self.loss_curve, self.run.losses), (self.dice_curve, self.run.dice)):
            points = list(points)  # the reader thread appends meanwhile
            curve.setData([p[0] for p in points], [p[1] for p in points])

    # ---- cases ---------------------------------------------------------------------------------
    def add_case(self, image: str | Path, label: str | Path) -> None:
        """Check a (CT, label) pair in the background and add it; a refusal says why."""
        self._set_status(f"Checking {Path(image).name}…")
        self._jobs.run(
            f"check:{image}",
            lambda _job: self.dataset.add(image, label),
            on_result=self._on_case_added,
            on_error=self._refuse,
        )

    def remove_case(self, index: int) -> None:
        """Take case ``index`` out of the list."""
        if 0 <= index < len(self.dataset):
            self.dataset.remove(index)
            self.case_list.takeItem(index)
            self._update_buttons()

    def add_current_case(self, training_set: str | Path) -> None:
        """Save the open CT and its labels as a pair in ``training_set`` and add it."""
        image = self.document.image if self.document is not None else None
        labels = self.document.labels if self.document is not None else None
        if image is None or labels is None:
            self._refuse("Open a CT and its labels first.")
            return
        from ctseg_gui.core.labels import LabelMap
        from ctseg_gui.training.datasets import add_case

        # A snapshot: the user may go on editing while the files are written.
        labels = LabelMap(labels.array.copy(), image, labels.table)
        self._set_status(f"Saving the case to {training_set}…")
        self._jobs.run(
            "save-case",
            lambda _job: add_case(training_set, image, labels),
            on_result=lambda case: self.add_case(case["image"], case["label"]),
            on_error=self._refuse,
        )

    def _on_case_added(self, case: dict) -> None:
        self.case_list.addItem(f"{Path(case['image']).name}  +  {Path(case['label']).name}")
        self.case_list.item(self.case_list.count() - 1).setToolTip(
            f"{case['image']}\n{case['label']}"
        )
        self._set_status(f"{len(self.dataset)} case(s).")
        self._update_buttons()
        self.case_added.emit(case)

    def _refuse(self, message: str) -> None:
        self._set_status(message, error=True)
        self.failed.emit(message)

    # ---- spec ----------------------------------------------------------------------------------
    def load_defaults(self, model: str) -> None:
        """Fill the form with ``model``'s defaults (``ctseg train --template``, in a child)."""
        if not model.strip():
            self._refuse("Name a base model first.")
            return
        self._set_status(f"Reading the defaults of {model}…")
        self._jobs.run(
            "template", _template, model.strip(), on_result=self.set_spec, on_error=self._refuse
        )

    def set_spec(self, spec: dict) -> None:
        """Show ``spec``'s values in the form (cases stay as they are)."""
        self.base_model.setText(str(spec.get("base_model") or self.base_model.text()))
        for key, widget in (
            ("max_iterations", self.max_iterations),
            ("val_interval", self.val_interval),
            ("checkpoint_interval", self.checkpoint_interval),
            ("batch_size", self.batch_size),
        ):
            if spec.get(key) is not None:
                widget.setValue(int(spec[key]))
        if spec.get("lr") is not None:
            self.lr.setValue(float(spec["lr"]))
        if spec.get("optimizer") in OPTIMIZERS:
            self.optimizer.setCurrentText(spec["optimizer"])
        if spec.get("device"):
            self.device.setCurrentIndex(max(0, self.device.findData(spec["device"])))
        patch = spec.get("patch_size")
        self.patch_size.setText(", ".join(str(int(v)) for v in patch) if patch else "")
        if spec.get("val_fraction") is not None:
            self.val_fraction.setValue(float(spec["val_fraction"]))
        self._set_status(f"Defaults of {self.base_model.text()} loaded.")

    def spec(self) -> dict:
        """The spec of the form and the cases (``ctseg train`` keys).

        Raises
        ------
        CtsegError
            No base model, no case, or a patch size that is not three numbers.
        """
        if not self.base_model.text().strip():
            raise CtsegError("name a base model (an installed id or a bundle folder)")
        if not len(self.dataset):
            raise CtsegError("add at least one case (a CT and its label)")
        spec = {
            "base_model": self.base_model.text().strip(),
            "train": list(self.dataset.cases),
            "max_iterations": self.max_iterations.value(),
            "val_interval": self.val_interval.value(),
            "checkpoint_interval": self.checkpoint_interval.value(),
            "batch_size": self.batch_size.value(),
            "lr": self.lr.value(),
            "optimizer": self.optimizer.currentText(),
            "device": self.device.currentData(),
            "run_dir": self.run_dir.text().strip() or str(_new_run_dir()),
        }
        if len(self.dataset) > 1:
            spec["val_fraction"] = self.val_fraction.value()
        else:  # one case: it is both the training and the validation case
            spec["val"] = list(self.dataset.cases)
        if self.patch_size.text().strip():
            try:
                patch = [int(v) for v in self.patch_size.text().replace("x", ",").split(",")]
            except ValueError:
                patch = []
            if len(patch) != 3 or min(patch) < 1:
                raise CtsegError(f"patch size {self.patch_size.text()!r} is not three numbers")
            spec["patch_size"] = patch
        if self.install_as.text().strip():
            spec["install_as"] = self.install_as.text().strip()
        return spec

    # ---- run -----------------------------------------------------------------------------------
    def start(self, spec: dict | None = None) -> TrainingRun | None:
        """Start a new run of ``spec`` (default: the form's); None when it was refused."""
        try:
            self.run = TrainingRun(spec if spec is not None else self.spec())
        except CtsegError as error:
            self._refuse(str(error))
            return None
        self.log.clear()
        self._launch(resume=False)
        return self.run

    def stop(self) -> None:
        """Stop the run: it writes a checkpoint and exits; Resume continues it."""
        if self.run is not None and self.run.running:
            self.run.stop()
            self._set_status("Stopping: writing a checkpoint…")

    def resume(self) -> None:
        """Continue the stopped run from its last checkpoint."""
        if self.run is None or self.run.running:
            return
        self._launch(resume=True)

    def _launch(self, resume: bool) -> None:
        run = self.run
        self.follow(run, run.start(resume=resume))
        word = "Resuming" if resume else "Starting"
        self._set_status(f"{word} the training run in {run.run_dir}…")
        self.run_started.emit(run)

    def follow(self, run: TrainingRun, job) -> None:
        """Show ``run``'s events as ``job`` reports them (a live run, or one replayed)."""
        self.run = run
        self._jobs.track(
            "train",
            job,
            on_progress=self._on_progress,
            on_warning=lambda text: self._append(f"warning: {text}"),
            on_result=self._on_done,
            on_error=lambda text: self._on_ended("failed", text),
            on_cancelled=lambda text: self._on_ended("cancelled", text),
        )
        self._update_buttons()

    def _on_progress(self, event) -> None:
        record = event.data
        if isinstance(record, Started):
            self._claim_gpu(record.device.startswith("cuda"))
            self._append(event.stage)
            self._set_status(f"Training on {record.device}.")
        elif isinstance(record, Validation):
            self._append(event.stage)
        self.eta_label.setText(format_eta(self.run.eta_s))
        self._redraw()

    def _on_done(self, done) -> None:
        self._append(f"done: bundle {done.bundle}")
        text = f"Finished: bundle in {done.bundle}."
        if done.model_id:
            text += f" Installed as {done.model_id}."
        self._finish("finished", text)

    def _on_ended(self, state: str, message: str) -> None:
        self._append(f"{state}: {message}")
        self._finish(state, message, error=state == "failed")
        if state == "failed":
            self.failed.emit(message)

    def _finish(self, state: str, text: str, error: bool = False) -> None:
        self._claim_gpu(False)
        self._redraw()
        self.eta_label.setText(format_eta(self.run.eta_s) if state == "finished" else "")
        self._set_status(text, error=error)
        self._update_buttons()
        self.run_ended.emit(state)

    def install_model(self, model_id: str | None = None) -> None:
        """Install the finished run's bundle as a model (default id: the bundle's name)."""
        done = self.run.done if self.run is not None else None
        if done is None:
            self._refuse("The run has not finished: there is no bundle to install yet.")
            return
        from ctseg_gui.inference.manager import install

        model_id = model_id or self.install_as.text().strip() or None
        self._set_status(f"Installing {done.bundle}…")
        self._jobs.run(
            "install",
            lambda _job: install(done.bundle, model_id, force=True).model_id,
            on_result=self._on_installed,
            on_error=self._refuse,
        )

    def _on_installed(self, model_id: str) -> None:
        self._set_status(f"Installed as {model_id}: it is in the Models list.")
        self.model_installed.emit(model_id)

    # ---- GPU sharing ---------------------------------------------------------------------------
    @property
    def holds_gpu(self) -> bool:
        """Whether this panel's run trains on the GPU now."""
        return self._gpu

    def _claim_gpu(self, on: bool) -> None:
        if on != self._gpu:
            self._gpu = on
            self.gpu_label.setVisible(on)
            self.gpu_claimed.emit(on)

    # ---- helpers -------------------------------------------------------------------------------
    def _append(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    def _update_buttons(self) -> None:
        running = self.run is not None and self.run.running
        self.start_button.setEnabled(not running and len(self.dataset) > 0)
        self.stop_button.setEnabled(running)
        self.resume_button.setEnabled(self.run is not None and self.run.can_resume)
        self.install_button.setEnabled(self.run is not None and self.run.done is not None)
        self.add_current_button.setEnabled(self.document is not None)

    def _on_add_clicked(self) -> None:
        image, _ = QFileDialog.getOpenFileName(
            self, "CT image", "", "Images (*.nii *.nii.gz *.nrrd *.mha)"
        )
        if not image:
            return
        label, _ = QFileDialog.getOpenFileName(
            self, "Its label map", str(Path(image).parent), "Images (*.nii *.nii.gz *.nrrd *.mha)"
        )
        if label:
            self.add_case(image, label)

    def _on_add_current_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training-set folder")
        if folder:
            self.add_current_case(folder)


def _new_run_dir() -> Path:
    """``<user data>/runs/run-YYYYmmdd-HHMMSS``: a fresh folder for a run the user did not name."""
    import time

    from ctseg_gui.core.settings import user_data_dir

    return user_data_dir() / "runs" / time.strftime("run-%Y%m%d-%H%M%S")


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox(minimum=low, maximum=high)
    box.setValue(value)
    return box


def _template(_job, model: str) -> dict:
    """``ctseg train --template MODEL`` in a child process (it loads the bundle's config)."""
    from ctseg_gui.launch import describe_exit, start_child

    proc = start_child("train", "--template", model, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        lines = [line for line in err.splitlines() if line.startswith("ctseg: error:")]
        reason = (
            lines[-1].removeprefix("ctseg: error: ") if lines else describe_exit(proc.returncode)
        )
        raise CtsegError(f"no defaults for {model}: {reason}")
    return json.loads(out)
