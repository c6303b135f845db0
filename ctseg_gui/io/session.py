"""Session files: the work on one CT saved as one file, ``NAME.ctseg``, to reopen later.

A session file is a zip archive holding

- ``session.json``: ``{"format": "ctseg-session", "version": 1, ...}`` with the image reference
  (absolute path, path relative to the session file, DICOM series UID, size, spacing and a
  checksum of the voxels and geometry), the label table, the clicks of the click tool and the
  structure they edit, the rulers and ROIs (view, slice, kind, end points in view-plane mm, the
  text shown) and the viewer state (:meth:`~ctseg_gui.core.viewer_state.ViewerState.to_json`);
- ``labels.nii.gz``: the label map on the image's grid (written by
  :func:`~ctseg_gui.io.write_label_map`).

One file moves and copies as a whole, and is written to a temporary name and renamed, so a crash
while saving keeps the previous session. The image itself is not inside: a CT is large and already
on disk; reopening a session finds it (by its path, else relative to the session file) and warns
when its voxels changed since the session was saved. Everything here is Qt-free; the main window
turns the records into views, markers and measurements.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.labels import LabelMap, LabelTable
from ctseg_gui.core.volume import Volume

SUFFIX = ".ctseg"
FORMAT = "ctseg-session"
VERSION = 1
_JSON = "session.json"
_LABELS = "labels.nii.gz"


class SessionError(CtsegError):
    """A session file that cannot be read or written (the message names the file)."""


def image_checksum(volume: Volume) -> str:
    """``blake2b:<hex>`` of the voxels (type, shape, bytes) and the geometry of ``volume``.

    Independent of the file format the image came from, so a CT converted to NIfTI still matches;
    cached in the volume's metadata (images are never edited in place).
    """
    cached = volume.metadata.get("_checksum")
    if cached:
        return cached
    digest = hashlib.blake2b(digest_size=16)
    array = np.ascontiguousarray(volume.array)
    digest.update(f"{array.dtype.str}|{array.shape}|".encode())
    geometry = np.concatenate([volume.spacing, volume.origin, np.ravel(volume.direction)])
    digest.update(np.round(geometry, 4).astype("<f8").tobytes())
    digest.update(memoryview(array).cast("B"))
    value = f"blake2b:{digest.hexdigest()}"
    volume.metadata["_checksum"] = value
    return value


@dataclass
class ImageRef:
    """Which CT a session belongs to and how to recognise it."""

    path: str
    series_uid: str | None = None
    checksum: str = ""
    size: tuple[int, int, int] = (0, 0, 0)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    relative: str | None = None  # to the session file's folder, when on the same drive

    @classmethod
    def of(cls, volume: Volume, path: str | Path) -> ImageRef:
        """The reference of ``volume``, opened from ``path``."""
        return cls(
            str(Path(path).resolve()),
            volume.metadata.get("series_uid") or None,
            image_checksum(volume),
            tuple(int(n) for n in volume.size),
            tuple(float(s) for s in volume.spacing),
        )

    def locate(self, session_path: str | Path) -> Path:
        """The image's path: as saved, else relative to the session (a moved project folder)."""
        if Path(self.path).exists() or not self.relative:
            return Path(self.path)
        moved = Path(session_path).resolve().parent / self.relative
        return moved if moved.exists() else Path(self.path)

    def matches(self, volume: Volume) -> bool:
        """Whether ``volume`` has the voxels and geometry the session was saved with."""
        return not self.checksum or image_checksum(volume) == self.checksum


@dataclass
class ClickRecord:
    """One click of the click tool: voxel index ``(i, j, k)`` and its sign."""

    index: tuple[int, int, int]
    positive: bool = True


@dataclass
class MeasurementRecord:
    """A ruler (``ruler``) or ROI (``rect``, ``circle``) on one slice of one view."""

    view: str
    slice: int
    kind: str
    start: tuple[float, float]
    end: tuple[float, float]
    text: str = ""


@dataclass
class Session:
    """Everything a session file stores except the label voxels (see :func:`load_labels`)."""

    image: ImageRef
    table: LabelTable = field(default_factory=LabelTable)
    clicks: list[ClickRecord] = field(default_factory=list)
    click_label: int | None = None
    measurements: list[MeasurementRecord] = field(default_factory=list)
    view: dict = field(default_factory=dict)
    saved_at: float = 0.0

    def extras_json(self) -> dict:
        """Clicks, measurements and view as JSON (also what autosave keeps beside the labels)."""
        return {
            "clicks": {
                "label": self.click_label,
                "points": [{"index": list(c.index), "positive": c.positive} for c in self.clicks],
            },
            "measurements": [
                {**asdict(m), "start": list(m.start), "end": list(m.end)} for m in self.measurements
            ],
            "view": self.view,
        }

    def apply_extras(self, data: dict) -> None:
        """Read what :meth:`extras_json` wrote (raises ValueError, KeyError or TypeError)."""
        clicks = data.get("clicks") or {}
        label = clicks.get("label")
        self.click_label = None if label is None else int(label)
        self.clicks = [
            ClickRecord(_ints3(p["index"]), bool(p.get("positive", True)))
            for p in clicks.get("points", [])
        ]
        self.measurements = [
            MeasurementRecord(
                str(m["view"]),
                int(m["slice"]),
                str(m["kind"]),
                _floats2(m["start"]),
                _floats2(m["end"]),
                str(m.get("text", "")),
            )
            for m in data.get("measurements", [])
        ]
        if any(m.kind not in ("ruler", "rect", "circle") for m in self.measurements):
            raise ValueError("unknown measurement kind")
        view = data.get("view") or {}
        if not isinstance(view, dict):
            raise TypeError("view state is not an object")
        self.view = view


def _ints3(values) -> tuple[int, int, int]:
    i, j, k = (int(v) for v in values)
    return (i, j, k)


def _floats2(values) -> tuple[float, float]:
    u, v = (float(x) for x in values)
    return (u, v)


def _table_json(table: LabelTable) -> dict:
    # The sidecar form plus visibility, which a session keeps and a label export does not.
    return {"labels": [{**entry.to_json(), "visible": entry.visible} for entry in table]}


def save_session(path: str | Path, session: Session, labels: LabelMap) -> Path:
    """Write ``session`` and ``labels`` to ``path`` (``.ctseg`` added when missing).

    Raises
    ------
    SessionError
        The file cannot be written (the previous file at ``path``, if any, is kept).
    """
    from ctseg_gui.io.labels import write_label_map

    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    try:
        relative = os.path.relpath(session.image.path, path.resolve().parent)
    except ValueError:  # another drive on Windows
        relative = None
    data = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": time.time(),
        "image": {**asdict(session.image), "relative": relative},
        "labels": {"file": _LABELS, "table": _table_json(labels.table)},
        **session.extras_json(),
    }
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ctseg-session-") as tmp:
            labels_file = write_label_map(labels, Path(tmp) / _LABELS)
            with zipfile.ZipFile(partial, "w") as archive:
                archive.writestr(_JSON, json.dumps(data, indent=1), zipfile.ZIP_DEFLATED)
                archive.write(labels_file, _LABELS, zipfile.ZIP_STORED)  # gzip already
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise SessionError(f"session not saved: {error.strerror or error}", path) from error
    return path


def read_session(path: str | Path) -> Session:
    """The session stored in ``path``, without its label voxels.

    Raises
    ------
    SessionError
        Missing, not a session, damaged, or written by a newer version; the message says which.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if _JSON not in names:
                raise SessionError("not a ctseg session file (no session.json inside)", path)
            data = json.loads(archive.read(_JSON))
            if _LABELS not in names:
                raise SessionError("damaged session file: the label map is missing", path)
    except FileNotFoundError as error:
        raise SessionError("does not exist", path) from error
    except zipfile.BadZipFile as error:
        raise SessionError("not a ctseg session file (not a zip archive)", path) from error
    except (OSError, ValueError) as error:
        raise SessionError(f"damaged session file ({error})", path) from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionError("not a ctseg session file (unknown format)", path)
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise SessionError(f"damaged session file (version {version!r})", path)
    if version > VERSION:
        raise SessionError(
            f"written by a newer ctseg-gui (session version {version}; this one reads up to "
            f"{VERSION}): update ctseg-gui to open it",
            path,
        )
    try:
        image = dict(data["image"])
        session = Session(
            ImageRef(
                str(image["path"]),
                image.get("series_uid") or None,
                str(image.get("checksum", "")),
                _ints3(image.get("size", (0, 0, 0))),
                tuple(float(s) for s in image.get("spacing", (1.0, 1.0, 1.0))),
                image.get("relative"),
            ),
            LabelTable.from_json(data["labels"]["table"]),
            saved_at=float(data.get("saved_at", 0.0)),
        )
        session.apply_extras(data)
    except (KeyError, TypeError, ValueError) as error:
        raise SessionError(f"damaged session file (bad entry: {error})", path) from error
    return session


def load_labels(path: str | Path, session: Session, image: Volume) -> LabelMap:
    """The session's label map read onto ``image`` with the session's label table.

    Raises
    ------
    SessionError
        The label map is damaged or does not lie on ``image``'s grid (with the reason).
    """
    from ctseg_gui.io.labels import read_label_map

    path = Path(path)
    try:
        with tempfile.TemporaryDirectory(prefix="ctseg-session-") as tmp:
            with zipfile.ZipFile(path) as archive:
                archive.extract(_LABELS, tmp)
            return read_label_map(Path(tmp) / _LABELS, image, session.table)
    except CtsegError as error:
        raise SessionError(
            f"labels not restored: {getattr(error, 'problem', error)}", path
        ) from error
    except (OSError, zipfile.BadZipFile, KeyError) as error:
        raise SessionError(f"damaged session file ({error})", path) from error
