"""Autosave of unsaved label edits and recovery after a crash (Qt-free; the GUI asks the user).

While a label map has edits newer than the last autosave, :meth:`Autosaver.tick` writes it (with
its label table) to ``<user data>/autosave/`` at most once per interval (60 s by default;
``CTSEG_DATA_DIR`` moves the folder). A small JSON file beside it records which image the labels
belong to, and, when the caller gives a ``session_state`` function, the rest of the session (clicks,
rulers and ROIs, view state: :meth:`~ctseg_gui.io.session.Session.extras_json`) so a recovery
restores the work and not only the voxels. At start-up :func:`find_recoveries` lists what a crashed
session left; :func:`recover` reads one back onto its image. Saving the labels normally removes the
autosave.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctseg_gui.core.history import LabelEditor
from ctseg_gui.core.labels import LabelMap
from ctseg_gui.core.volume import Volume


def autosave_dir(root: Path | None = None) -> Path:
    """``<user data>/autosave`` (``CTSEG_DATA_DIR`` overrides the user data folder)."""
    if root is None:
        from ctseg_gui.core.settings import user_data_dir

        root = user_data_dir()
    return Path(root) / "autosave"


def image_key(image: Volume) -> str:
    """A stable name for the image's autosave: its source and series, else its geometry."""
    meta = image.metadata
    ident = "|".join(
        str(x)
        for x in (
            meta.get("source", ""),
            meta.get("series_uid", ""),
            image.array.shape,
            image.spacing,
            image.origin,
        )
    )
    return hashlib.sha1(ident.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Recovery:
    """An autosave left by an earlier session."""

    labels_path: Path
    info_path: Path
    source: str
    saved_at: float
    key: str
    session: dict | None = None  # clicks, measurements and view state, when they were saved

    def describe(self) -> str:
        """One line for the recovery prompt."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.saved_at))
        return f"unsaved labels of {self.source or 'an image'} from {when}"


class Autosaver:
    """Writes the editor's label map when it changed and the interval has passed.

    Parameters
    ----------
    editor
        The label editor of the open label map.
    interval_s
        Least time between two autosaves.
    folder
        Where to write (default :func:`autosave_dir`).
    clock
        Time source in seconds (tests pass a fake one).
    session_state
        Returns the session's clicks, measurements and view state as JSON, saved with the labels.
    """

    def __init__(
        self,
        editor: LabelEditor,
        interval_s: float = 60.0,
        folder: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        session_state: Callable[[], dict] | None = None,
    ) -> None:
        self.editor = editor
        self.session_state = session_state
        self.interval_s = float(interval_s)
        self.folder = Path(folder) if folder else autosave_dir()
        self.clock = clock
        self.key = image_key(editor.labels.image)
        self._dirty = False
        self._last = clock()
        editor.changed.connect(self._on_editor_changed)

    @property
    def labels_path(self) -> Path:
        return self.folder / f"{self.key}.nii.gz"

    @property
    def info_path(self) -> Path:
        return self.folder / f"{self.key}.json"

    def _on_editor_changed(self, _region) -> None:
        self._dirty = True

    def tick(self) -> Path | None:
        """Autosave if due (call it from a timer); returns the file written, if any."""
        now = self.clock()
        if not self._dirty or now - self._last < self.interval_s:
            return None
        return self.save_now()

    def save_now(self) -> Path:
        """Write the autosave at once (atomically: a crash mid-write keeps the previous one)."""
        from ctseg_gui.io import write_label_map

        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f"{self.key}.partial.nii.gz"
        write_label_map(self.editor.labels, partial)
        os.replace(partial, self.labels_path)
        os.replace(
            partial.with_name(f"{self.key}.partial.labels.json"),
            self.folder / f"{self.key}.labels.json",
        )
        info = {
            "source": str(self.editor.labels.image.metadata.get("source", "")),
            "saved_at": time.time(),
            "key": self.key,
        }
        if self.session_state is not None:
            try:
                info["session"] = self.session_state()
            except Exception:  # noqa: BLE001 - the labels are saved even if the extras fail
                info["session"] = None
        partial_info = self.folder / f"{self.key}.partial.json.tmp"
        partial_info.write_text(json.dumps(info))
        os.replace(partial_info, self.info_path)
        self._dirty = False
        self._last = self.clock()
        return self.labels_path

    def discard(self) -> None:
        """Remove this image's autosave (after a normal save or a clean close)."""
        for path in (self.labels_path, self.info_path, self.folder / f"{self.key}.labels.json"):
            path.unlink(missing_ok=True)
        self._dirty = False


def find_recoveries(folder: Path | None = None) -> list[Recovery]:
    """Autosaves present in ``folder``, newest first; damaged info files are skipped."""
    folder = Path(folder) if folder else autosave_dir()
    found = []
    for info_path in folder.glob("*.json") if folder.is_dir() else []:
        if info_path.name.endswith(".labels.json"):
            continue
        try:
            info = json.loads(info_path.read_text())
            labels_path = folder / f"{info['key']}.nii.gz"
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if labels_path.exists():
            found.append(
                Recovery(
                    labels_path,
                    info_path,
                    str(info.get("source", "")),
                    float(info.get("saved_at", 0)),
                    str(info["key"]),
                    info.get("session") if isinstance(info.get("session"), dict) else None,
                )
            )
    return sorted(found, key=lambda r: -r.saved_at)


def recoveries_for(image: Volume, folder: Path | None = None) -> list[Recovery]:
    """The autosaves that belong to ``image``."""
    key = image_key(image)
    return [r for r in find_recoveries(folder) if r.key == key]


def recover(recovery: Recovery, image: Volume) -> LabelMap:
    """Read an autosave back onto ``image`` (refusing a different grid with the reason)."""
    from ctseg_gui.io import read_label_map

    return read_label_map(recovery.labels_path, image)


def discard_recovery(recovery: Recovery) -> None:
    """Delete an autosave the user declined."""
    for path in (
        recovery.labels_path,
        recovery.info_path,
        recovery.labels_path.with_name(f"{recovery.key}.labels.json"),
    ):
        path.unlink(missing_ok=True)
