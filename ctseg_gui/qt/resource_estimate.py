"""Before a run: predicted peak memory and time of a model on the open CT, and whether it fits.

The prediction is the engine's :func:`~ctseg_gui.inference.engine.estimate_resources` (geometry
only, the model never runs). It parses the bundle config, which imports torch and MONAI, so it runs
in the compute worker, waited for by a background job (``estimate`` channel of
:class:`~ctseg_gui.qt.jobs.QtJobs`); a newer request makes older answers stale and they are
dropped.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from ctseg_gui.core.errors import JobCancelled
from ctseg_gui.inference.overview import format_size
from ctseg_gui.qt.jobs import QtJobs

# Seconds per sliding-window step until this session has timed a real run of the model on the
# device (then the measured rate replaces it). CPU: the whole-body SegResNet (105 classes) takes
# 1.8 s per 96^3 window in float32 on 2 shared cores here (highres: 36 windows, ~70 s in all); a
# desktop with more cores is faster, a larger network slower, so the label says "rough". CUDA: a
# guess (no GPU measured yet).
DEFAULT_SECONDS_PER_WINDOW = {"cpu": 2.0, "cuda": 0.1}
_MEASURED_SECONDS_PER_WINDOW: dict[tuple, float] = {}

# Headroom kept free for the viewer, the OS and the estimate's own error (about +-15%).
SAFETY_FACTOR = 1.15

# One estimate in flight at a time: a request superseded while it waited is never sent to the
# worker, where it would only queue in front of the user's next job.
_ESTIMATE_LOCK = threading.Lock()


def available_memory_bytes(device: str, estimate: dict | None = None) -> int | None:
    """Memory a run on ``device`` may use now: host RAM for ``cpu``, free GPU memory for CUDA.

    Host RAM is ``MemAvailable`` (free plus reclaimable cache) from ``/proc/meminfo``, with the
    free pages as a fallback elsewhere; GPU memory comes from the engine's estimate (the engine
    asks torch). None when unknown.
    """
    if device.startswith("cuda"):
        return None if estimate is None else estimate.get("available_bytes")
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class Estimate:
    """What the panel shows before a run."""

    device: str
    peak_bytes: int
    seconds: float | None
    available_bytes: int | None
    measured_time: bool  # seconds come from a real run in this session

    @property
    def fits(self) -> bool:
        """Whether the peak (with headroom) fits in the available memory (True when unknown)."""
        return self.available_bytes is None or self.peak_bytes * SAFETY_FACTOR <= (
            self.available_bytes
        )

    @property
    def on_gpu(self) -> bool:
        """Whether the run would use a CUDA GPU."""
        return self.device.startswith("cuda")

    def text(self) -> str:
        """``"≈ 4.1 GB RAM, ≈ 3 min on CPU"``."""
        memory = "GPU memory" if self.on_gpu else "RAM"
        where = "GPU" if self.on_gpu else "CPU"
        text = f"≈ {format_size(self.peak_bytes)} {memory}"
        if self.seconds is not None:
            text += f", ≈ {format_duration(self.seconds)} on {where}"
            if not self.measured_time:
                text += " (rough until the first run)"
        else:
            text += f" on {where}"
        return text

    def problem(self) -> str:
        """Why it does not fit (empty when it does)."""
        if self.fits:
            return ""
        memory = "GPU memory" if self.on_gpu else "RAM"
        return (
            f"Needs ≈ {format_size(self.peak_bytes)} {memory}, only "
            f"{format_size(self.available_bytes or 0)} available: it would likely run out of "
            "memory."
        )


def make_estimate(raw: dict, model_key: tuple) -> Estimate:
    """Turn the engine's dict into an :class:`Estimate` (time from our measured rates)."""
    device = str(raw.get("device", "cpu"))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    windows = raw.get("windows")
    seconds = raw.get("seconds")
    measured = _MEASURED_SECONDS_PER_WINDOW.get((*model_key, kind))
    if measured is not None and windows:
        seconds, was_measured = measured * windows, True
    elif seconds is not None:
        was_measured = True  # the engine timed this model in this process
    elif windows:
        seconds, was_measured = DEFAULT_SECONDS_PER_WINDOW[kind] * windows, False
    else:
        was_measured = False
    return Estimate(
        device=device,
        peak_bytes=int(raw.get("peak_bytes", 0)),
        seconds=seconds,
        available_bytes=available_memory_bytes(device, raw),
        measured_time=was_measured,
    )


def record_run_time(model_key: tuple, device: str, seconds: float, windows: int | None) -> None:
    """Remember how long a run took per window, for the next estimates of that model."""
    if windows:
        kind = "cuda" if str(device).startswith("cuda") else "cpu"
        _MEASURED_SECONDS_PER_WINDOW[(*model_key, kind)] = seconds / windows


def format_duration(seconds: float) -> str:
    """``"40 s"``, ``"3 min"``, ``"1 h 05 min"``."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class QtEstimator(QObject):
    """Asks the compute worker for ``estimate_resources`` from a thread; only the newest
    request's answer is emitted.

    Signals
    -------
    estimated(object, object)
        The request key ``(model_id, variant, device)`` and the engine's dict.
    failed(object, str)
        The request key and a one-line reason (e.g. no CUDA GPU here).
    """

    estimated = Signal(object, object)
    failed = Signal(object, str)

    def __init__(self, client_provider, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The estimate runs in the compute worker: planning a bundle loads torch and MONAI,
        # which must stay out of the GUI process.
        self._client_provider = client_provider
        self._jobs = QtJobs(self)

    @property
    def pending(self) -> bool:
        """Whether the newest request has not answered yet."""
        return self._jobs.busy("estimate")

    def request(self, volume, model_id: str, variant: str | None, device: str) -> None:
        """Estimate ``model_id`` / ``variant`` on ``volume`` for ``device`` (in the background)."""
        key = (model_id, variant, device)
        client = self._client_provider()  # made on the GUI thread, used from the job's thread
        # An earlier request is superseded: the user changed image, model, variant or device.
        self._jobs.run(
            "estimate",
            _estimate,
            client,
            volume,
            key,
            on_result=lambda result: self.estimated.emit(key, result),
            on_error=lambda message: self.failed.emit(key, message),
        )

    def cancel(self) -> None:
        """Forget the pending request (its answer will be dropped)."""
        self._jobs.drop("estimate")


def _estimate(job, client, volume, key: tuple) -> dict:
    model_id, variant, device = key
    with _ESTIMATE_LOCK:
        if job.cancel_requested:
            raise JobCancelled()  # superseded while waiting for the lock
        return client.estimate(volume, model_id, variant=variant, device=device)


class QtFallbackBox(QFrame):
    """ "Needs 9 GB, 4 GB available" with Use Low-res / Use CPU / Run anyway buttons."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("fallbackBox")
        self.setStyleSheet("#fallbackBox { border: 1px solid #c98a2b; border-radius: 3px; }")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.lowres_button = QPushButton("Use Low-res")
        self.cpu_button = QPushButton("Use CPU")
        self.run_anyway_button = QPushButton("Run anyway")
        self.run_anyway_button.setToolTip("Start the run as chosen; it may run out of memory")
        row = QHBoxLayout()
        for button in (self.lowres_button, self.cpu_button, self.run_anyway_button):
            row.addWidget(button)
        box = QVBoxLayout(self)
        box.setContentsMargins(6, 6, 6, 6)
        box.addWidget(self.label)
        box.addLayout(row)
        self.hide()

    def offer(self, estimate: Estimate, lowres: bool) -> str:
        """Show why ``estimate`` does not fit and what to do; returns the message."""
        cpu = estimate.on_gpu
        offers = [text for on, text in ((lowres, "Low-res"), (cpu, "the CPU")) if on]
        message = estimate.problem()
        if offers:
            message += " Use " + " or ".join(offers) + " instead, or run anyway."
        else:
            message += " Close other programs or use a smaller image, or run anyway."
        self.label.setText(message)
        self.lowres_button.setVisible(lowres)
        self.cpu_button.setVisible(cpu)
        self.show()
        return message
