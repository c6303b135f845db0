"""Label tables the app ships (the whole-body 104-structure table with its groups)."""

from __future__ import annotations

import json
from pathlib import Path

from ctseg_gui.core.labels import LabelTable

WHOLEBODY_GROUPS = (
    "organs",
    "vessels",
    "vertebrae",
    "ribs",
    "muscles",
    "cardiac",
    "lungs",
    "other",
)


def load_label_table(path: str | Path) -> LabelTable:
    """A table from a sidecar-style JSON (``{"labels": [...]}``) or a ``{value: name}`` JSON."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and "labels" in data:
        return LabelTable.from_json(data)
    return LabelTable.from_names({int(k): str(v) for k, v in data.items()})


def wholebody_table(resources_dir: Path) -> LabelTable:
    """The TotalSegmentator v1 / ``wholeBody_ct_segmentation`` table: 104 names, colours, groups.

    ``resources_dir`` is ``ctseg_gui.resources.resource_path()`` (passed in to keep ``core`` free
    of installation concerns).
    """
    return load_label_table(resources_dir / "labels" / "wholebody_104.json")
