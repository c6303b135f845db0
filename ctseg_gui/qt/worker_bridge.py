"""Qt adapter of the compute worker: client events become signals on the GUI thread.

:class:`~ctseg_gui.worker.client.ComputeClient` calls back on its own thread; this bridge re-emits
each event through the job model's Qt adapter (:class:`~ctseg_gui.qt.jobs.QtJobs`), so slots run
on the GUI thread and may touch widgets. Jobs are submitted on named *channels* (``"segment"``,
``"clicks"``...): a new job on a channel replaces the previous one, which is cancelled and whose
late events are dropped, so a stale result (the user already asked for something newer) never
reaches the window.
"""

from __future__ import annotations

import functools
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from ctseg_gui.qt.jobs import QtJobs


class QtComputeBridge(QObject):
    """Submit compute jobs and receive their events as Qt signals.

    Parameters
    ----------
    client
        A shared :class:`~ctseg_gui.worker.client.ComputeClient`; by default the bridge starts its
        own (in the background) on first use and stops it when the application quits.
    warm_up
        For a client the bridge starts itself: load torch in the worker right away.

    Signals
    -------
    started(int)
        Job id: the worker began the job.
    progressed(int, str, float)
        Job id, stage, overall fraction ``0..1``.
    warned(int, str)
        Job id and a warning for the user; the job goes on (e.g. it moved from GPU to CPU).
    succeeded(int, object)
        Job id and its result (a LabelMap for ``submit_segment``).
    failed(int, str)
        Job id and a one-line message for the user.
    cancelled(int)
        Job id: the job stopped on request.
    status_changed(str)
        News about the worker process (started, crashed and restarting).
    """

    started = Signal(int)
    progressed = Signal(int, str, float)
    warned = Signal(int, str)
    succeeded = Signal(int, object)
    failed = Signal(int, str)
    cancelled = Signal(int)
    status_changed = Signal(str)

    # Carrier from the client's thread to ours (AutoConnection queues across threads).
    _status_arrived = Signal(str)

    def __init__(self, client=None, *, warm_up: bool = False, parent: QObject | None = None):
        super().__init__(parent)
        self._client = client
        self._owns_client = client is None
        # Shared with the destroyed() handler, which must not touch this (deleted) object.
        self._held: dict[str, Any] = {"client": None}
        self._warm_up = warm_up
        self._jobs = QtJobs(self)
        self._status_arrived.connect(self.status_changed)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.close)
        # A bridge deleted with its window (tests open many) stops its worker too.
        self.destroyed.connect(functools.partial(_close_held_client, self._held))

    @property
    def client(self):
        """The compute client (started on first access when the bridge owns it)."""
        if self._client is None:
            from ctseg_gui.worker.client import ComputeClient

            self._client = ComputeClient(on_status=self._status_arrived.emit, warm_up=self._warm_up)
            self._held["client"] = self._client
        return self._client

    def start(self) -> None:
        """Start the worker now, in the background (the window stays responsive)."""
        _ = self.client

    def submit_segment(self, volume, model_id: str | None, channel: str = "segment", **kw) -> int:
        """Segment ``volume`` (see ``ComputeClient.submit_segment``); returns the job id.

        Any earlier job on ``channel`` is cancelled and its events are dropped.
        """
        self.cancel(channel)
        job = self.client.submit_segment(volume, model_id, **kw)
        self._jobs.track(channel, job, on_event=self._relay)
        return job.id

    def submit(self, kind: str, params=None, inputs=None, *, channel: str, finish=None) -> int:
        """Submit any worker job (a typed request or a job name) on ``channel``; returns its id."""
        self.cancel(channel)
        job = self.client.submit(kind, params, inputs, finish=finish)
        self._jobs.track(channel, job, on_event=self._relay)
        return job.id

    def current(self, channel: str):
        """The live job handle of ``channel``, or None."""
        return self._jobs.current(channel)

    def cancel(self, channel: str) -> None:
        """Cancel the job of ``channel``; its later events are dropped."""
        job = self._jobs.current(channel)
        if job is None:
            return
        running = not job.done
        self._jobs.drop(channel)
        if running:
            self.cancelled.emit(job.id)

    def close(self) -> None:
        """Cancel everything and stop a worker the bridge started."""
        for channel in self._jobs.channels():
            self.cancel(channel)
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
            self._held["client"] = None

    def _relay(self, event) -> None:
        if event.kind == "started":
            self.started.emit(event.job_id)
        elif event.kind == "progress":
            self.progressed.emit(event.job_id, event.stage, event.fraction)
        elif event.kind == "warning":
            self.warned.emit(event.job_id, event.message)
        elif event.kind == "result":
            self.succeeded.emit(event.job_id, event.result)
        elif event.kind == "error":
            self.failed.emit(event.job_id, event.message)
        elif event.kind == "cancelled":
            self.cancelled.emit(event.job_id)


def _close_held_client(held: dict[str, Any], *_: object) -> None:
    client = held.pop("client", None)
    if client is not None:
        client.close()
