"""The Qt adapter of the job model: job events delivered on the GUI thread, stale results dropped.

Every background task of the window (file loads, click updates, statistics, resource estimates,
3D surfaces, model installs, compute-worker jobs, training runs) is a
:class:`~ctseg_gui.core.jobs.Job` tracked here on a named *channel*. A new job on a channel
supersedes the previous one: that one is asked to cancel and any event it still sends is dropped,
so a stale result (the user already asked for something newer) never reaches a widget. Events
cross from the producer's thread through a queued signal, so handlers run on the GUI thread and may
touch widgets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ctseg_gui.core.jobs import Job, JobEvent, run_in_thread

Handler = Callable[..., Any] | None


@dataclass
class _Tracked:
    job: Job
    on_event: Handler = None
    on_started: Handler = None
    on_progress: Handler = None
    on_warning: Handler = None
    on_result: Handler = None
    on_error: Handler = None
    on_cancelled: Handler = None


class QtJobs(QObject):
    """Jobs by channel, their events delivered on this object's (GUI) thread.

    Handlers (all optional) for :meth:`track` and :meth:`run`: ``on_event(event)`` for every
    event, ``on_started()``, ``on_progress(event)``, ``on_warning(message)``,
    ``on_result(value)``, ``on_error(message)``, ``on_cancelled(message)``.
    """

    # Carrier from the producer's thread to ours (AutoConnection queues across threads).
    _arrived = Signal(str, object, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._channels: dict[str, _Tracked] = {}
        self._arrived.connect(self._deliver)

    def track(self, channel: str, job: Job, **handlers: Handler) -> Job:
        """Deliver ``job``'s events to ``handlers``; the channel's previous job is superseded."""
        self.drop(channel)
        self._channels[channel] = _Tracked(job, **handlers)
        job.subscribe(lambda event: self._hop(channel, job, event))
        return job

    def run(self, channel: str, work: Callable[..., Any], *args: Any, **handlers: Handler) -> Job:
        """Run ``work(job, *args)`` on a thread (:func:`~ctseg_gui.core.jobs.run_in_thread`)."""
        catch = bool(handlers.pop("catch_warnings", False))
        job = run_in_thread(work, *args, kind=channel, catch_warnings=catch)
        return self.track(channel, job, **handlers)

    def current(self, channel: str) -> Job | None:
        """The job of ``channel`` whose final event has not been delivered yet, or None."""
        tracked = self._channels.get(channel)
        return None if tracked is None else tracked.job

    def busy(self, channel: str) -> bool:
        """Whether ``channel`` has a job under way."""
        return channel in self._channels

    def drop(self, channel: str, cancel: bool = True) -> Job | None:
        """Forget ``channel``'s job (its later events are dropped); cancel it unless told not to."""
        tracked = self._channels.pop(channel, None)
        if tracked is None:
            return None
        if cancel and not tracked.job.done:
            tracked.job.cancel()
        return tracked.job

    def channels(self) -> list[str]:
        """The channels with a job under way."""
        return list(self._channels)

    def _hop(self, channel: str, job: Job, event: JobEvent) -> None:
        with contextlib.suppress(RuntimeError):  # this object was deleted while the job ran
            self._arrived.emit(channel, job, event)

    @Slot(str, object, object)
    def _deliver(self, channel: str, job: Job, event: JobEvent) -> None:
        tracked = self._channels.get(channel)
        if tracked is None or tracked.job is not job:
            return  # superseded or dropped: stale
        if event.final:
            del self._channels[channel]
        if tracked.on_event is not None:
            tracked.on_event(event)
        handler, args = {
            "started": (tracked.on_started, ()),
            "progress": (tracked.on_progress, (event,)),
            "warning": (tracked.on_warning, (event.message,)),
            "result": (tracked.on_result, (event.result,)),
            "error": (tracked.on_error, (event.message,)),
            "cancelled": (tracked.on_cancelled, (event.message,)),
        }[event.kind]
        if handler is not None:
            handler(*args)
