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
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.qt.jobs import QtJobs
from ctseg_gui.qt.training_form import QtSpecForm, build_curves, format_eta, read_template
from ctseg_gui.training.run_model import (
    Started,
    TrainingDataset,
    TrainingRun,
    Validation,
)

ERROR_STYLE = "color: #e0605a;"
GPU_NOTE = "This training run holds the GPU: model runs go to the CPU until it ends."


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
    defaults_loaded(dict)
        A model's template spec filled the form.
    """

    run_started = Signal(object)
    run_ended = Signal(str)
    gpu_claimed = Signal(bool)
    failed = Signal(str)
    case_added = Signal(dict)
    model_installed = Signal(str)
    defaults_loaded = Signal(dict)

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

        self.form = QtSpecForm()
        self.form.defaults_requested.connect(self.load_defaults)

        self.start_button = QPushButton("Start")
        self.stop_button = QPushButton("Stop")
        self.resume_button = QPushButton("Resume")
        self.install_button = QPushButton("Install as model")
        self.open_button = QPushButton("Open run…")
        self.open_button.setToolTip("Show a run folder's curves; resume it if it was stopped")
        self.open_button.clicked.connect(self._on_open_clicked)
        self.start_button.clicked.connect(lambda: self.start())
        self.stop_button.clicked.connect(self.stop)
        self.resume_button.clicked.connect(self.resume)
        self.install_button.clicked.connect(lambda: self.install_model())
        buttons = QHBoxLayout()
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)
        buttons.addWidget(self.open_button)
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
        layout.addWidget(self.form)
        layout.addLayout(buttons)
        layout.addWidget(self._build_plots(), 1)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.gpu_label)
        layout.addWidget(self.status)
        layout.addWidget(self.log)
        self._update_buttons()

    # ---- plots ---------------------------------------------------------------------------------
    def _build_plots(self) -> QWidget:
        widget, self.loss_curve, self.dice_curve = build_curves()
        return widget

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
            "template", read_template, model.strip(), on_result=self.set_spec, on_error=self._refuse
        )

    def set_spec(self, spec: dict) -> None:
        """Show ``spec``'s values in the form (cases stay as they are)."""
        self.form.set_spec(spec)
        self._set_status(f"Defaults of {self.form.base_model.text()} loaded.")
        self.defaults_loaded.emit(spec)

    def spec(self) -> dict:
        """The spec of the form and the cases (see :meth:`QtSpecForm.spec`)."""
        return self.form.spec(self.dataset.cases)

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

    def open_run(self, run_dir: str | Path) -> TrainingRun | None:
        """Show an earlier run (its ``spec.json`` and ``events.jsonl``); Resume continues it."""
        from ctseg_gui.training.run_model import SPEC_FILE

        if self.run is not None and self.run.running:
            self._refuse("Stop the running training first.")
            return None
        spec_path = Path(run_dir).expanduser() / SPEC_FILE
        try:
            spec = json.loads(spec_path.read_text())
            run = TrainingRun(spec)
            run.run_dir = spec_path.parent  # the folder may have moved since
            run.replay()
        except (OSError, ValueError, CtsegError) as error:
            self._refuse(f"{spec_path}: not a training run ({error})")
            return None
        self.run = run
        self.form.set_spec(spec)
        self.log.setPlainText("\n".join(run.log))
        self.eta_label.setText("")
        self._redraw()
        state = "finished" if run.done else f"stopped at iteration {run.iteration}"
        self._set_status(f"Run in {run.run_dir}: {state}.")
        self._update_buttons()
        return run

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
        self.eta_label.setText("")
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

        model_id = model_id or self.form.install_as.text().strip() or None
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

    def _on_open_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training run folder")
        if folder:
            self.open_run(folder)

    def _on_add_current_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Training-set folder")
        if folder:
            self.add_current_case(folder)
