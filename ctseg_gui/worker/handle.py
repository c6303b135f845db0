"""A submitted compute job as the app sees it: state, outcome, cancel and wait."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ctseg_gui.worker.protocol import JobEvent, JobResult

if TYPE_CHECKING:
    from ctseg_gui.worker.client import ComputeClient

EventCallback = Callable[[JobEvent], None]


class JobHandle:
    """A submitted job: its state, its outcome, and a way to cancel or wait for it."""

    def __init__(
        self,
        client: ComputeClient,
        job_id: int,
        kind: str,
        params: dict[str, Any],
        inputs: dict[str, np.ndarray],
        folder: Path,
        on_event: EventCallback | None,
        finish: Callable[[JobResult], Any] | None,
    ) -> None:
        self.id = job_id
        self.kind = kind
        #: ``queued``, ``running``, ``finished``, ``failed`` or ``cancelled``.
        self.state = "queued"
        self.result: Any = None
        self.info: dict[str, Any] = {}
        self.error: str | None = None
        self.events: list[JobEvent] = []
        self.cancel_requested = False
        self._client = client
        self._params = params
        self._inputs = inputs  # written to the exchange folder when the job goes to the worker
        self._folder = folder
        self._on_event = on_event
        self._finish = finish
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        """Whether the job has ended (result, error or cancelled)."""
        return self._done.is_set()

    def cancel(self) -> None:
        """Stop the job: dropped if still queued, otherwise stopped at its next poll point."""
        self._client.cancel(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended and its final callback has run; False on timeout."""
        return self._done.wait(timeout)

    def __repr__(self) -> str:
        return f"<JobHandle {self.id} {self.kind} {self.state}>"
