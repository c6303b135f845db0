"""What the app and the compute worker say to each other, and what clients are told.

Messages are small tuples pickled over a ``multiprocessing.connection`` socket or pipe; arrays
never travel in them (see :mod:`ctseg_gui.worker._exchange`).

App to worker:
    ``("job", job_id, kind, params, inputs, folder)``: run job ``kind``; ``inputs`` maps names to
    ``.npy`` paths, outputs go to ``folder``.
    ``("cancel", job_id)``: stop that job at its next poll point.
    ``("shutdown",)``: finish and exit (so does end of file).

Worker to app:
    ``("ready", pid)`` once, after connecting.
    ``("started", job_id)``, ``("progress", job_id, stage, fraction)``,
    ``("warning", job_id, message)`` (the job goes on),
    ``("result", job_id, outputs, info)`` (``outputs`` maps names to ``.npy`` paths),
    ``("error", job_id, message)``, ``("cancelled", job_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EventKind = Literal["started", "progress", "warning", "result", "error", "cancelled"]

#: Environment variable through which the worker receives the connection's key (a command line
#: is visible to every user of the machine; the environment is not).
AUTHKEY_ENV = "CTSEG_WORKER_AUTHKEY"


@dataclass(frozen=True)
class JobEvent:
    """Something that happened to a job, as delivered to ``on_event`` callbacks.

    Attributes
    ----------
    job_id
        The job's number (unique within one client).
    kind
        ``started``, ``progress``, ``warning``, ``result``, ``error`` or ``cancelled``; the last
        three are final.
    stage
        Progress: what the job is doing, in words.
    fraction
        Progress: overall fraction done, ``0..1``.
    result
        Result: a :class:`JobResult` (or what the job's ``finish`` hook made of it, e.g. a
        :class:`~ctseg_gui.core.labels.LabelMap` for segmentation).
    message
        Error or warning: one line for the user.
    """

    job_id: int
    kind: EventKind
    stage: str = ""
    fraction: float = 0.0
    result: Any = None
    message: str = ""

    @property
    def final(self) -> bool:
        """Whether no further event will follow for this job."""
        return self.kind in ("result", "error", "cancelled")


@dataclass
class JobResult:
    """Arrays and facts a job returned."""

    arrays: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def describe_exit(returncode: int | None) -> str:
    """How a process ended, in words (``exit code 3``, ``killed by signal 9 (SIGKILL)``)."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        import signal

        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return f"killed by signal {-returncode}"
        return f"killed by signal {-returncode} ({name})"
    if returncode in (0xC0000005, -1073741819):
        return f"exit code {returncode} (access violation)"
    return f"exit code {returncode}"
