"""Typed requests for the compute worker, shared by the client that builds them and the jobs that
read them.

A request is a small frozen dataclass; it travels pickled inside the ``job`` message (both ends run
this same package), its arrays separately as memory-mapped ``.npy`` files. Its ``kind`` names the
job in ``ctseg_gui.worker.server.JOBS``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.volume import Volume


@dataclass(frozen=True)
class ImageGeometry:
    """Where an image's voxels lie (its voxels travel separately)."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[tuple[float, ...], ...]
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, volume: Volume) -> ImageGeometry:
        """The geometry of ``volume``; metadata the worker could not receive is left out."""
        metadata = {}
        for name, value in volume.metadata.items():
            try:
                pickle.dumps(value)
            except Exception:  # noqa: BLE001 - e.g. an open file handle: not needed there
                continue
            metadata[name] = value
        direction = tuple(tuple(float(v) for v in row) for row in np.asarray(volume.direction))
        return cls(
            tuple(float(s) for s in volume.spacing),
            tuple(float(o) for o in volume.origin),
            direction,
            metadata,
        )

    def volume(self, array: np.ndarray) -> Volume:
        """A :class:`Volume` of ``array`` on this geometry."""
        direction = np.asarray(self.direction, dtype=float)
        return Volume(array, self.spacing, self.origin, direction, dict(self.metadata))


@dataclass(frozen=True)
class Request:
    """Base of every worker request."""

    kind: ClassVar[str] = ""


def image_key(request: Request) -> str | None:
    """The key of the image the worker may keep for ``request`` (None: it needs none kept)."""
    return getattr(request, "image_key", None)


@dataclass(frozen=True)
class SegmentRequest(Request):
    """Run a model on the image (input ``image``); outputs ``labels`` and the table in info."""

    kind: ClassVar[str] = "segment"
    image: ImageGeometry
    image_key: str | None = None
    model_id: str | None = "ct-tissues"
    bundle: str | None = None
    variant: str | None = None
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"


@dataclass(frozen=True)
class EstimateRequest(Request):
    """Predicted peak memory and time of a segmentation of an image of ``shape`` (no voxels)."""

    kind: ClassVar[str] = "estimate"
    image: ImageGeometry
    shape: tuple[int, ...]
    model_id: str | None = None
    bundle: str | None = None
    variant: str | None = None
    device: str = "auto"


@dataclass(frozen=True)
class ClicksRequest(Request):
    """One click refinement (inputs ``image`` and ``mask``); ``clicks`` as ``((i, j, k), +)``."""

    kind: ClassVar[str] = "clicks"
    image: ImageGeometry
    clicks: tuple[tuple[tuple[int, int, int], bool], ...]
    bundle: str
    image_key: str | None = None
    device: str = "auto"
    backend: str = "torch"


@dataclass(frozen=True)
class CheckBackendsRequest(Request):
    """Export the model for each installed backend and check it against torch float32 on central
    windows of the image (input ``image``); the parity record ``backend="auto"`` chooses from."""

    kind: ClassVar[str] = "check_backends"
    image: ImageGeometry
    image_key: str | None = None
    model_id: str | None = None
    bundle: str | None = None
    variant: str | None = None
    device: str = "auto"
    windows: int = 2


@dataclass(frozen=True)
class EchoRequest(Request):
    """Health check: every input comes back unchanged, with its checksum."""

    kind: ClassVar[str] = "echo"


@dataclass(frozen=True)
class StatusRequest(Request):
    """What the worker holds: torch loaded, warm networks."""

    kind: ClassVar[str] = "status"


@dataclass(frozen=True)
class WarmUpRequest(Request):
    """Import torch and MONAI now."""

    kind: ClassVar[str] = "warm_up"


REQUESTS: dict[str, type[Request]] = {
    cls.kind: cls
    for cls in (
        SegmentRequest,
        EstimateRequest,
        ClicksRequest,
        CheckBackendsRequest,
        EchoRequest,
        StatusRequest,
        WarmUpRequest,
    )
}


@dataclass(frozen=True)
class UnknownRequest(Request):
    """A kind the worker does not know; it answers with an error naming it."""

    name: str = ""


def request_for(kind: str, params: dict[str, Any] | None = None) -> Request:
    """The typed request of job ``kind`` built from keyword ``params``.

    Raises
    ------
    CtsegError
        ``params`` do not fit the request (a misspelt or missing field).
    """
    cls = REQUESTS.get(kind)
    if cls is None:
        return UnknownRequest(kind)
    try:
        return cls(**(params or {}))
    except TypeError as error:
        raise CtsegError(f"bad parameters for the {kind!r} job: {error}") from error


def job_name(request: Request) -> str:
    """The job that runs ``request`` (``UnknownRequest`` keeps the name it was asked by)."""
    return request.name if isinstance(request, UnknownRequest) else request.kind
