"""Recently opened files, kept in a small JSON file in the user's config folder.

Tolerant by design: a missing, unreadable or malformed file means "no recent files", never a failed
start-up. ``CTSEG_GUI_CONFIG_DIR`` overrides the folder (tests point it at a temporary one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAX_RECENT = 10


def config_dir() -> Path:
    """The folder holding the viewer's settings."""
    override = os.environ.get("CTSEG_GUI_CONFIG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_config_dir

    return Path(user_config_dir("ctseg-gui", appauthor=False))


def _file() -> Path:
    return config_dir() / "recent.json"


def load_recent() -> list[str]:
    """Recent paths, newest first (paths that no longer exist are skipped)."""
    try:
        data = json.loads(_file().read_text())
        paths = [str(p) for p in data.get("recent", []) if isinstance(p, str)]
    except (OSError, ValueError, AttributeError):
        return []
    return [p for p in paths if Path(p).exists()][:MAX_RECENT]


def add_recent(path: str | os.PathLike) -> list[str]:
    """Put ``path`` first in the list and save it; returns the new list."""
    entry = str(Path(path).resolve())
    paths = [entry] + [p for p in load_recent() if p != entry]
    paths = paths[:MAX_RECENT]
    try:
        _file().parent.mkdir(parents=True, exist_ok=True)
        tmp = _file().with_suffix(".tmp")
        tmp.write_text(json.dumps({"recent": paths}, indent=1))
        tmp.replace(_file())
    except OSError:
        pass  # a read-only home folder must not stop the viewer
    return paths
