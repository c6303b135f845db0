"""User folders and the one typed settings object.

Settings live in ``settings.json`` in the platformdirs config folder. Reading is tolerant by
design: a missing, unreadable, malformed or older file, or a field of the wrong type, falls back
to the default for that field and never blocks start-up. Environment variables override:

* ``CTSEG_CONFIG_DIR``, ``CTSEG_DATA_DIR``: the config and data folders (tests point them at tmp);
* ``CTSEG_DEVICE`` (``auto|cpu|cuda``), ``CTSEG_AUTOSAVE_SECONDS``: the fields of the same name.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

APP_NAME = "ctseg-gui"


def user_config_dir() -> Path:
    """Folder for settings (``CTSEG_CONFIG_DIR`` overrides platformdirs)."""
    override = os.environ.get("CTSEG_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def user_data_dir() -> Path:
    """Folder for installed models, autosaves and logs (``CTSEG_DATA_DIR`` overrides)."""
    override = os.environ.get("CTSEG_DATA_DIR")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass
class Settings:
    """Everything the app remembers between sessions."""

    recent_files: list[str] = field(default_factory=list)
    last_folder: str = ""
    device: str = "auto"
    default_model: str = "ct-tissues"
    autosave_seconds: int = 60
    label_opacity: float = 0.5
    max_recent: int = 10

    _ENV = {"device": "CTSEG_DEVICE", "autosave_seconds": "CTSEG_AUTOSAVE_SECONDS"}

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read settings, keeping every valid field and defaulting the rest; then apply env."""
        path = path or cls.default_path()
        settings = cls()
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError):
            stored = {}
        if not isinstance(stored, dict):
            stored = {}
        for spec in fields(cls):
            if spec.name in stored:
                settings._set_checked(spec.name, stored[spec.name])
        for name, variable in cls._ENV.items():
            if variable in os.environ:
                settings._set_checked(name, os.environ[variable])
        return settings

    def save(self, path: Path | None = None) -> None:
        """Write atomically (a crash mid-write leaves the old file intact); errors are ignored
        because losing a preference must never cost the user their work."""
        path = path or self.default_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                "w", dir=path.parent, delete=False, suffix=".tmp"
            ) as handle:
                json.dump(asdict(self), handle, indent=1)
            os.replace(handle.name, path)
        except OSError:
            pass

    def add_recent(self, item: str | Path) -> list[str]:
        """Put ``item`` first in the recent list (no duplicates, at most ``max_recent``)."""
        text = str(Path(item).resolve())
        self.recent_files = [text] + [p for p in self.recent_files if p != text]
        del self.recent_files[self.max_recent :]
        return self.recent_files

    @staticmethod
    def default_path() -> Path:
        return user_config_dir() / "settings.json"

    def _set_checked(self, name: str, value: Any) -> None:
        default = getattr(type(self)(), name)
        try:
            if isinstance(default, list):
                converted = [str(v) for v in value] if isinstance(value, list) else default
            elif isinstance(default, bool):
                converted = bool(value)
            elif isinstance(default, (int, float)):
                converted = type(default)(value)
            else:
                converted = str(value)
        except (TypeError, ValueError):
            return
        if name == "device" and converted not in ("auto", "cpu", "cuda"):
            return
        setattr(self, name, converted)
