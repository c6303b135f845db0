"""Worker layer (Qt-free): the long-lived compute process and its client.

``ComputeClient`` (in the app) starts ``ctseg worker`` (this package's ``server``) and relays job
events; arrays travel through memory-mapped files, not pickles.
"""

from __future__ import annotations

from ctseg_gui.worker._process import WorkerStartError
from ctseg_gui.worker.client import ComputeClient
from ctseg_gui.worker.handle import JobHandle
from ctseg_gui.worker.protocol import JobEvent, JobResult

__all__ = ["ComputeClient", "JobEvent", "JobHandle", "JobResult", "WorkerStartError"]
