"""What the app and the compute worker say to each other, and what clients are told.

Messages are small tuples pickled over a ``multiprocessing.connection`` socket or pipe; arrays
never travel in them (see :mod:`ctseg_gui.worker._exchange`).

App to worker:
    ``("job", job_id, request, inputs, folder)``: run the typed ``request``
    (:mod:`ctseg_gui.worker.requests`); ``inputs`` maps names to ``.npy`` paths, outputs go to
    ``folder``.
    ``("cancel", job_id)``: stop that job at its next poll point.
    ``("shutdown",)``: finish and exit (so does end of file).

Worker to app (the client turns these into :class:`~ctseg_gui.core.jobs.JobEvent`):
    ``("ready", pid)`` once, after connecting.
    ``("started", job_id)``, ``("progress", job_id, stage, fraction)``,
    ``("warning", job_id, message)`` (the job goes on),
    ``("result", job_id, outputs, info)`` (``outputs`` maps names to ``.npy`` paths),
    ``("error", job_id, message)``, ``("cancelled", job_id)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ctseg_gui.core.jobs import JobEvent
from ctseg_gui.launch import describe_exit

#: Environment variable through which the worker receives the connection's key (a command line
#: is visible to every user of the machine; the environment is not).
AUTHKEY_ENV = "CTSEG_WORKER_AUTHKEY"

__all__ = ["AUTHKEY_ENV", "JobEvent", "JobResult", "describe_exit"]


@dataclass
class JobResult:
    """Arrays and facts a job returned."""

    arrays: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
