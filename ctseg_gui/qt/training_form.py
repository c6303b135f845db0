"""Parts of the training panel: the spec form (the ``ctseg train`` keys a user sets, defaults per
model from ``ctseg train --template``), the curves, the ETA text."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ctseg_gui.core.errors import CtsegError

OPTIMIZERS = ("Adam", "AdamW", "Novograd")


class QtSpecForm(QWidget):
    """Base model, iterations, intervals, batch and patch size, optimiser, device, folders.

    Signals
    -------
    defaults_requested(str)
        Defaults was pressed for this base model (the panel asks ``ctseg train --template``).
    """

    defaults_requested = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.base_model = QLineEdit()
        self.base_model.setPlaceholderText("installed model id or bundle folder")
        self.defaults_button = QPushButton("Defaults")
        self.defaults_button.setToolTip("Fill the form with this model's defaults")
        self.defaults_button.clicked.connect(
            lambda: self.defaults_requested.emit(self.base_model.text())
        )
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
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
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

    def spec(self, cases: list[dict]) -> dict:
        """The spec of the form and ``cases`` (``ctseg train`` keys).

        Raises
        ------
        CtsegError
            No base model, no case, or a patch size that is not three numbers.
        """
        if not self.base_model.text().strip():
            raise CtsegError("name a base model (an installed id or a bundle folder)")
        if not len(cases):
            raise CtsegError("add at least one case (a CT and its label)")
        spec = {
            "base_model": self.base_model.text().strip(),
            "train": list(cases),
            "max_iterations": self.max_iterations.value(),
            "val_interval": self.val_interval.value(),
            "checkpoint_interval": self.checkpoint_interval.value(),
            "batch_size": self.batch_size.value(),
            "lr": self.lr.value(),
            "optimizer": self.optimizer.currentText(),
            "device": self.device.currentData(),
            "run_dir": self.run_dir.text().strip() or str(_new_run_dir()),
        }
        if len(cases) > 1:
            spec["val_fraction"] = self.val_fraction.value()
        else:  # one case: it is both the training and the validation case
            spec["val"] = list(cases)
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


def _new_run_dir() -> Path:
    """``<user data>/runs/run-YYYYmmdd-HHMMSS``: a fresh folder for a run the user did not name."""
    import time

    from ctseg_gui.core.settings import user_data_dir

    return user_data_dir() / "runs" / time.strftime("run-%Y%m%d-%H%M%S")


def _spin(low: int, high: int, value: int) -> QSpinBox:
    box = QSpinBox(minimum=low, maximum=high)
    box.setValue(value)
    return box


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


def build_curves() -> tuple[QWidget, object, object]:
    """The loss and mean-Dice plots (pyqtgraph, imported now) and their two curves; without
    pyqtgraph a line saying what is missing and None for the curves."""
    try:
        import pyqtgraph as pg
    except ImportError:
        text = "Curves need pyqtgraph (pip install pyqtgraph); the log shows the numbers."
        return QLabel(text), None, None
    pg.setConfigOptions(antialias=True)
    plots = pg.GraphicsLayoutWidget()
    plots.setMinimumHeight(200)
    loss = plots.addPlot(row=0, col=0, title="Training loss")
    loss.setLabel("bottom", "iteration")
    loss.showGrid(x=True, y=True, alpha=0.3)
    # Side by side: the dock is tall but the form takes most of its height.
    dice = plots.addPlot(row=0, col=1, title="Validation mean Dice")
    dice.setLabel("bottom", "iteration")
    dice.setYRange(0, 1)
    dice.showGrid(x=True, y=True, alpha=0.3)
    loss_curve = loss.plot(pen=pg.mkPen("#4c9be8", width=2))
    dice_curve = dice.plot(pen=pg.mkPen("#5cc46a", width=2), symbol="o", symbolSize=6)
    return plots, loss_curve, dice_curve


def read_template(_job, model: str) -> dict:
    """Job body: ``ctseg train --template MODEL`` in a child process (it loads the bundle's config)."""
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
