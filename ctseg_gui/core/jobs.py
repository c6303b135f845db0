"""One shape for all background work: a Future-like job handle with progress events and cancel.

Compute-worker jobs, training runs, file loads, statistics and surface builds all hand back a
:class:`Job`. Its producer (a thread, the compute client, a training process reader) reports
through :meth:`Job.emit` and ends it with exactly one final event (``result``, ``error`` or
``cancelled``); consumers :meth:`~Job.subscribe` to events, add done callbacks, :meth:`~Job.wait`
or :meth:`~Job.cancel`. Callbacks run on the producer's thread; a GUI hops them to its own thread
(``ctseg_gui.qt.jobs``). Qt-free and dependency-free, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ctseg_gui.core.errors import CtsegError, CtsegWarning, JobCancelled

EventKind = Literal["started", "progress", "warning", "result", "error", "cancelled"]
FINAL_KINDS = ("result", "error", "cancelled")

_IDS = itertools.count(1)


@dataclass(frozen=True)
class JobEvent:
    """Something that happened to a job, as delivered to its subscribers.

    Attributes
    ----------
    job_id
        The job's number.
    kind
        ``started``, ``progress``, ``warning``, ``result``, ``error`` or ``cancelled``; the last
        three are final.
    stage
        Progress: what the job is doing, in words.
    fraction
        Progress: overall fraction done, ``0..1``.
    result
        Result: the job's value.
    message
        Error, warning or cancelled: one line for the user.
    data
        Progress: a typed record beside the words (e.g. a training iteration).
    """

    job_id: int
    kind: EventKind
    stage: str = ""
    fraction: float = 0.0
    result: Any = None
    message: str = ""
    data: Any = None

    @property
    def final(self) -> bool:
        """Whether no further event will follow for this job."""
        return self.kind in FINAL_KINDS


EventCallback = Callable[[JobEvent], None]


class Job:
    """A unit of background work: its state, its outcome, its events, cancel and wait.

    Parameters
    ----------
    kind
        What the job does (``segment``, ``load``, ``train``...).
    job_id
        Its number; by default the next of a process-wide counter.
    on_event
        A first subscriber (see :meth:`subscribe`).
    canceller
        Called once by :meth:`cancel` (on the caller's thread) to stop the work; without it the
        work only sees :attr:`cancel_requested`.
    """

    def __init__(
        self,
        kind: str,
        job_id: int | None = None,
        *,
        on_event: EventCallback | None = None,
        canceller: Callable[[Job], None] | None = None,
    ) -> None:
        self.id = next(_IDS) if job_id is None else job_id
        self.kind = kind
        #: ``queued``, ``running``, ``finished``, ``failed`` or ``cancelled``.
        self.state = "queued"
        #: The value of a finished job (None otherwise).
        self.result: Any = None
        self.info: dict[str, Any] = {}
        self.error: str | None = None
        self.events: list[JobEvent] = []
        self.cancel_requested = False
        self._canceller = canceller
        self._lock = threading.RLock()
        self._listeners: list[EventCallback] = [] if on_event is None else [on_event]
        self._done_callbacks: list[Callable[[Job], None]] = []
        self._done = threading.Event()

    # ---- consumer side -----------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """Whether the job has ended (result, error or cancelled)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended and its final callbacks have run; False on timeout."""
        return self._done.wait(timeout)

    def outcome(self, timeout: float | None = None) -> Any:
        """The job's value, waiting for it; like ``Future.result()``.

        Raises
        ------
        CtsegError
            The job failed (its message), or did not end within ``timeout`` seconds.
        JobCancelled
            The job was cancelled.
        """
        if not self.wait(timeout):
            raise CtsegError(f"{self.kind} did not finish in time")
        if self.state == "cancelled":
            raise JobCancelled()
        if self.state != "finished":
            raise CtsegError(self.error or f"{self.kind} {self.state}")
        return self.result

    def cancel(self) -> None:
        """Ask the job to stop; a final ``cancelled`` (or, if it was too late, the result) follows."""
        with self._lock:
            if self.done or self.cancel_requested:
                return
            self.cancel_requested = True
        if self._canceller is not None:
            self._canceller(self)

    def subscribe(self, callback: EventCallback) -> None:
        """Call ``callback(event)`` for every event, starting with those already emitted."""
        with self._lock:
            past = list(self.events)
            self._listeners.append(callback)
        for event in past:  # replayed before any newer event can reach the callback
            _call(callback, event)

    def add_done_callback(self, callback: Callable[[Job], None]) -> None:
        """Call ``callback(job)`` when the job ends (now, when it already has)."""
        with self._lock:
            if not self.done:
                self._done_callbacks.append(callback)
                return
        _call(callback, self)

    # ---- producer side -----------------------------------------------------------------------
    def emit(self, event: JobEvent) -> None:
        """Record ``event`` and hand it to the subscribers; a final event ends the job."""
        with self._lock:
            if self.done:
                return  # one final event only; late news of an ended job is dropped
            if event.kind == "started":
                self.state = "running"
            elif event.final:
                self.state = {"result": "finished", "error": "failed"}.get(event.kind, event.kind)
                if event.kind == "result":
                    self.result = event.result
                elif event.kind == "error":
                    self.error = event.message
            self.events.append(event)
            listeners = list(self._listeners)
        for callback in listeners:
            _call(callback, event)
        if event.final:
            with self._lock:
                callbacks, self._done_callbacks = self._done_callbacks, []
                self._done.set()
            for callback in callbacks:
                _call(callback, self)

    def started(self) -> None:
        """Emit ``started``."""
        self.emit(JobEvent(self.id, "started"))

    def progress(self, stage: str = "", fraction: float = 0.0, data: Any = None) -> None:
        """Emit ``progress`` (dropped once cancel was asked: the caller no longer listens)."""
        if not self.cancel_requested:
            self.emit(JobEvent(self.id, "progress", stage=stage, fraction=fraction, data=data))

    def warn(self, message: str) -> None:
        """Emit a ``warning``; the job goes on."""
        self.emit(JobEvent(self.id, "warning", message=message))

    def finish(self, value: Any) -> None:
        """End with ``value``."""
        self.emit(JobEvent(self.id, "result", result=value))

    def fail(self, message: str) -> None:
        """End with a one-line error for the user."""
        self.emit(JobEvent(self.id, "error", message=message))

    def cancelled(self, message: str = "") -> None:
        """End as cancelled (``message``: what was kept or undone, for the user)."""
        self.emit(JobEvent(self.id, "cancelled", message=message))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.kind} {self.state}>"


def error_text(error: BaseException) -> str:
    """One line for the user: a CtsegError's own message, otherwise the type and message."""
    if isinstance(error, CtsegError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def run_in_thread(
    work: Callable[..., Any],
    *args: Any,
    kind: str = "task",
    on_event: EventCallback | None = None,
    catch_warnings: bool = False,
) -> Job:
    """Run ``work(job, *args)`` on a daemon thread; its return value becomes the job's result.

    ``work`` reports through ``job.progress`` / ``job.warn`` and polls ``job.cancel_requested``
    (raising :class:`~ctseg_gui.core.errors.JobCancelled` to stop). A
    :class:`~ctseg_gui.core.errors.CtsegError` becomes an ``error`` event with its message, any
    other exception one with its type and message: never a traceback in front of the user.
    With ``catch_warnings``, :class:`~ctseg_gui.core.errors.CtsegWarning` raised by ``work``
    become ``warning`` events (before the final event).
    """
    job = Job(kind, on_event=on_event)
    thread = threading.Thread(
        target=_run, args=(job, work, args, catch_warnings), name=f"ctseg-{kind}", daemon=True
    )
    thread.start()
    return job


def _run(job: Job, work: Callable[..., Any], args: tuple, catch_warnings: bool) -> None:
    job.started()
    caught: list = []
    # Only when asked: recording swaps the process-wide warning hooks for the job's duration.
    recording = warnings.catch_warnings(record=True) if catch_warnings else contextlib.nullcontext()
    with recording as recorded:
        if catch_warnings:
            caught = recorded
            warnings.simplefilter("always", CtsegWarning)
        try:
            value = work(job, *args)
        except JobCancelled as error:
            final = JobEvent(job.id, "cancelled", message=str(error))
        except Exception as error:  # noqa: BLE001 - becomes the job's one-line error
            final = JobEvent(job.id, "error", message=error_text(error))
        else:
            final = JobEvent(job.id, "result", result=value)
    for note in caught:
        if issubclass(note.category, CtsegWarning):
            job.warn(str(note.message))
        else:  # not ours to report: hand it on as if it had not been caught
            warnings.showwarning(note.message, note.category, note.filename, note.lineno)
    if final.kind == "result" and job.cancel_requested:
        final = JobEvent(job.id, "cancelled")  # it finished before it saw the request
    job.emit(final)


def _call(callback: Callable, argument: Any) -> None:
    try:
        callback(argument)
    except Exception:  # noqa: BLE001 - a broken listener must not stop the producer
        traceback.print_exc()
