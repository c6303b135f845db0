"""Background loading of images and label maps in worker threads.

A job of the job model (:func:`ctseg_gui.core.jobs.run_in_thread`, a plain thread) runs a
generator that yields stage messages, the pattern of superqt's generator workers, without
importing superqt: its import costs about 0.4 s, a fifth of the start-up budget, on the path to
the first image. The readers release the GIL while decoding, so the window builds while the image
loads. Every load is a job on the ``load`` channel of :class:`~ctseg_gui.qt.jobs.QtJobs`: a newer
load supersedes it and its result is dropped, so opening a second file while the first still
loads, or pressing Cancel, can never put a stale image on screen. The
readers cannot be interrupted inside SimpleITK, so Cancel stops at the next stage and drops the
result; the window stays responsive throughout because only the worker thread waits.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ctseg_gui.core.errors import CtsegError, JobCancelled
from ctseg_gui.core.jobs import Job
from ctseg_gui.qt.jobs import QtJobs


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
        self._jobs = QtJobs(self)

    @property
    def loading(self) -> bool:
        """Whether a request is running."""
        return self._jobs.busy("load")

    def open_image(self, path: str, series_uid: str | None = None) -> int:
        """Load an image file or DICOM folder; returns the request number."""
        return self._start(_load_image, str(path), series_uid, path=str(path))

    def open_labels(self, path: str, image) -> int:
        """Load a label map onto ``image``; returns the request number."""
        return self._start(_load_labels, str(path), image, path=str(path))

    def cancel(self) -> None:
        """Drop the running request's result and stop it at its next stage."""
        if self._jobs.drop("load") is not None:
            self.idle.emit()

    def _start(self, function, *args, path: str) -> int:
        # Any running request is superseded: it stops at its next stage, its result is dropped.
        self.busy.emit(f"Opening {Path(path).name}…")
        job = self._jobs.run(
            "load",
            _run_stages,
            function,
            args,
            catch_warnings=True,
            on_progress=lambda event: self.busy.emit(event.stage),
            on_warning=self.warned.emit,
            on_result=lambda result: self._on_loaded(result, path),
            on_error=self._on_failed,
        )
        return job.id

    def _on_loaded(self, result, path: str) -> None:
        kind, payload = result
        if kind == "choose":
            self.series_found.emit(payload, path)
        elif kind == "image":
            self.image_loaded.emit(payload, path)
        elif kind == "labels":
            self.labels_loaded.emit(payload, path)
        self.idle.emit()

    def _on_failed(self, message: str) -> None:
        self.failed.emit(message)
        self.idle.emit()


def _run_stages(job: Job, function, args):
    """Run a loading generator as ``job``: each stage a progress event, every failure a message
    naming the file (never a traceback); a cancelled load stops at its next stage."""
    steps = function(*args)
    try:
        while True:
            message = next(steps)
            if job.cancel_requested:
                raise JobCancelled()
            job.progress(message)
    except StopIteration as stop:
        return stop.value
    except CtsegError:
        raise
    except Exception as error:  # noqa: BLE001 - an unreadable file must not kill the GUI
        raise CtsegError(f"cannot be opened ({type(error).__name__}: {error})", args[0]) from error
