"""Recently opened files, kept in the app's :class:`~ctseg_gui.core.settings.Settings`.

Tolerant by design (the settings object is): a missing, unreadable or malformed file means "no
recent files", never a failed start-up. ``CTSEG_CONFIG_DIR`` moves the folder (tests use a tmp one).
"""

from __future__ import annotations

import os
from pathlib import Path

from ctseg_gui.core.settings import Settings


def load_recent() -> list[str]:
    """Recent paths, newest first (paths that no longer exist are skipped)."""
    return [p for p in Settings.load().recent_files if Path(p).exists()]


def add_recent(path: str | os.PathLike) -> list[str]:
    """Put ``path`` first in the list and save it; returns the new list."""
    settings = Settings.load()
    paths = settings.add_recent(path)
    settings.save()
    return paths
