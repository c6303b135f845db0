"""Background loading of images and label maps in worker threads.

A plain ``threading.Thread`` runs a generator that yields stage messages, the pattern of superqt's
generator workers, without importing superqt: its import costs about 0.4 s, a fifth of the
start-up budget, on the path to the first image. The readers release the GIL while decoding, so
the window builds while the image loads. Each request gets a number; a result whose number is not the newest is dropped, so opening a second
file while the first still loads, or pressing Cancel, can never put a stale image on screen. The
readers cannot be interrupted inside SimpleITK, so Cancel stops at the next stage and drops the
result; the window stays responsive throughout because only the worker thread waits.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ctseg_gui.core.errors import CtsegError, CtsegWarning


def _load_image(path: str, series_uid: str | None):
    from ctseg_gui.io import dicom, read_image

    target = Path(path)
    if target.is_dir():
        yield f"Scanning {target.name} for DICOM series…"
        series = dicom.scan_folder(target)
        if len(series) > 1 and series_uid is None:
            return ("choose", series)
        entry = dicom.choose_series(series, series_uid)
        yield f"Reading {entry.number_of_slices} DICOM slices…"
        return ("image", dicom.load_series(entry))
    yield f"Reading {target.name}…"
    return ("image", read_image(target, series_uid))


def _load_labels(path: str, image):
    from ctseg_gui.io import read_label_map

    yield f"Reading labels {Path(path).name}…"
    return ("labels", read_label_map(path, image))


class _Bridge(QObject):
    """Signals emitted from worker threads; Qt queues them to the loader's (GUI) thread."""

    yielded = Signal(int, str)
    returned = Signal(int, object)


class QtLoader(QObject):
    """Runs one load at a time in a worker thread and reports on the GUI thread.

    Signals
    -------
    busy(str)
        A load started or moved to a new stage (message for the status bar).
    image_loaded(object, str)
        A :class:`Volume` and the path it came from.
    labels_loaded(object, str)
        A :class:`LabelMap` and its path.
    series_found(list, str)
        A folder holds several series: the caller asks the user and calls ``open_image`` again.
    failed(str)
        The load failed: message naming the file and the problem.
    warned(str)
        The load succeeded with a warning (e.g. uneven slice spacing).
    idle()
        Nothing is loading any more (finished, failed or cancelled).
    """

    busy = Signal(str)
    image_loaded = Signal(object, str)
    labels_loaded = Signal(object, str)
    series_found = Signal(list, str)
    failed = Signal(str)
    warned = Signal(str)
    idle = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._request = 0
        self._worker: threading.Thread | None = None
        self._bridge = _Bridge(self)
        self._bridge.yielded.connect(self._on_worker_yielded)
        self._bridge.returned.connect(self._on_worker_returned)

    @property
    def loading(self) -> bool:
        """Whether a request is running."""
        return self._worker is not None

    def open_image(self, path: str, series_uid: str | None = None) -> int:
        """Load an image file or DICOM folder; returns the request number."""
        return self._start(_load_image, str(path), series_uid, path=str(path))

    def open_labels(self, path: str, image) -> int:
        """Load a label map onto ``image``; returns the request number."""
        return self._start(_load_labels, str(path), image, path=str(path))

    def cancel(self) -> None:
        """Drop the running request's result and stop it at its next stage."""
        if self._worker is not None:
            self._request += 1
            self._worker = None
            self.idle.emit()

    def _start(self, function, *args, path: str) -> int:
        self._request += 1  # any running request is now stale: its result will be dropped
        request = self._request
        self._worker = threading.Thread(
            target=self._run, args=(request, function, args, path), daemon=True
        )
        self.busy.emit(f"Opening {Path(path).name}…")
        self._worker.start()
        return request

    def _run(self, request: int, function, args, path: str) -> None:
        # Worker thread: only emits signals; the slots run on the GUI thread (queued).
        steps = _guarded(function, *args)
        try:
            while True:
                message = next(steps)
                if request != self._request:
                    return  # cancelled or superseded: stop at this stage
                self._bridge.yielded.emit(request, message)
        except StopIteration as stop:
            self._bridge.returned.emit(request, (stop.value, path))

    def _on_worker_yielded(self, request: int, message: str) -> None:
        if request == self._request:
            self.busy.emit(message)

    def _on_worker_returned(self, request: int, outcome) -> None:
        result, path = outcome
        if request != self._request:
            return  # stale: the user asked for something newer or cancelled
        self._worker = None
        kind, payload, notes = result
        for note in notes:
            self.warned.emit(note)
        if kind == "error":
            self.failed.emit(payload)
        elif kind == "choose":
            self.series_found.emit(payload, path)
        elif kind == "image":
            self.image_loaded.emit(payload, path)
        elif kind == "labels":
            self.labels_loaded.emit(payload, path)
        self.idle.emit()


def _guarded(function, *args):
    """Run a loading generator, turning every failure into a message (never a traceback)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CtsegWarning)
        try:
            kind, payload = yield from function(*args)
        except CtsegError as error:
            kind, payload = "error", str(error)
        except Exception as error:  # noqa: BLE001 - an unreadable file must not kill the GUI
            kind, payload = (
                "error",
                f"{args[0]}: cannot be opened ({type(error).__name__}: {error})",
            )
    notes = [str(w.message) for w in caught if issubclass(w.category, CtsegWarning)]
    return kind, payload, notes
