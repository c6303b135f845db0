"""One row per model for the model manager dialog: catalog, built-in and installed, side by side.

Qt-free and torch-free: it reads the catalog manifests and the install records only, so the dialog
can rebuild its table after every install or removal without delay.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse


@dataclass
class ModelStatus:
    """What the model manager shows about one model.

    Attributes
    ----------
    kind
        ``"builtin"`` (needs no weights), ``"bundle"`` (model-zoo bundle), ``"recipe"`` (weights
        plus a config carried by the manifest) or ``"local"`` (installed, not in the catalog).
    source
        Short description of where it comes from: the download server (and how many mirrors),
        ``manual`` for weights published on a web page.
    sources
        ``(kind, URL or path)`` of every source the catalog names.
    downloadable
        Whether the catalog names a bundle archive that Download can fetch.
    """

    model_id: str
    title: str
    task: str
    kind: str
    variants: list[str] = field(default_factory=list)
    installed: bool = False
    version: str = ""
    size_bytes: int | None = None
    licence: str = ""
    source: str = ""
    sources: list[tuple[str, str]] = field(default_factory=list)
    path: Path | None = None
    downloadable: bool = False
    damaged: bool = False

    @property
    def status(self) -> str:
        """``Built-in``, ``Installed (0.5.4)``, ``Damaged`` or ``Not installed``."""
        if self.kind == "builtin":
            return "Built-in"
        if self.damaged:
            return "Damaged"
        return f"Installed ({self.version})" if self.installed else "Not installed"


def folder_size(path: Path) -> int:
    """Bytes taken by the files under ``path`` (links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed while we walked
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def format_size(size: int | None) -> str:
    """``"31.4 MB"``; an em dash for unknown."""
    if size is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""  # unreachable


def _short_source(manifest) -> str:
    archives = manifest.archive_sources
    chosen = (archives or manifest.sources or [None])[0]
    if chosen is None:
        return "—"
    text = urlparse(chosen.get("url", "")).netloc or str(chosen.get("type", "?"))
    if not archives:
        return f"{text} (manual download)"
    mirrors = len(archives) - 1
    return text + (f" (+{mirrors} mirror{'s' if mirrors > 1 else ''})" if mirrors else "")


def model_overview() -> list[ModelStatus]:
    """The built-in model, every catalog model, then installed bundles the catalog lacks."""
    from ctseg_gui.inference.catalog import load_catalog
    from ctseg_gui.inference.ct_tissues import DISPLAY_NAME
    from ctseg_gui.inference.manager import list_installed

    rows = [
        ModelStatus(
            "ct-tissues",
            DISPLAY_NAME,
            "Body, air/lung, fat, soft tissue and bone from HU ranges",
            "builtin",
            installed=True,
            version="built-in",
            licence="Apache-2.0 (part of ctseg-gui)",
            source="built into the app (nothing to download)",
        )
    ]
    installed = {m.model_id: m for m in list_installed()}
    for manifest in load_catalog().values():
        entry = installed.pop(manifest.id, None)
        rows.append(
            ModelStatus(
                manifest.id,
                manifest.display_name,
                manifest.task,
                manifest.kind,
                variants=list(manifest.variants),
                installed=entry is not None,
                version=entry.version if entry else manifest.version,
                size_bytes=folder_size(entry.path) if entry else None,
                licence=manifest.licence,
                source=_short_source(manifest),
                sources=[
                    (s.get("type", "source"), s["url"]) for s in manifest.sources if "url" in s
                ],
                path=entry.path if entry else None,
                downloadable=bool(manifest.archive_sources),
                damaged=bool(entry and entry.record.get("damaged")),
            )
        )
    for model_id, entry in installed.items():
        origin = str(entry.record.get("source", "unknown"))
        rows.append(
            ModelStatus(
                model_id,
                model_id,
                "installed bundle (not in the catalog)",
                "local",
                installed=True,
                version=entry.version,
                size_bytes=folder_size(entry.path),
                licence="see the bundle's LICENSE / metadata",
                source=f"installed from {origin}",
                sources=[("installed from", origin)],
                path=entry.path,
                damaged=bool(entry.record.get("damaged")),
            )
        )
    return rows
