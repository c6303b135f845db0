"""Where the shipped resources and model catalog live.

In a wheel and in the frozen app they are package data (``ctseg_gui/resources``,
``ctseg_gui/models``). An editable install has no copy inside the package, so we ask the installed
distribution where its project lives (PEP 610 ``direct_url.json``) instead of guessing from
``__file__``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from urllib.parse import unquote, urlparse


@cache
def _data_root(name: str) -> Path:
    packaged = Path(str(resources.files("ctseg_gui"))) / name
    if packaged.is_dir():
        return packaged
    try:
        direct_url = metadata.distribution("ctseg-gui").read_text("direct_url.json") or "{}"
        url = json.loads(direct_url).get("url", "")
    except metadata.PackageNotFoundError:
        url = ""
    if url.startswith("file:"):
        project = Path(unquote(urlparse(url).path))
        if (project / name).is_dir():
            return project / name
    raise FileNotFoundError(f"ctseg-gui's {name}/ folder is missing from this installation")


def resource_path(*parts: str) -> Path:
    """Path of a file under ``resources/`` (e.g. ``resource_path("sample", "abdomen_3mm.nii.gz")``)."""
    return _data_root("resources").joinpath(*parts)


def models_path(*parts: str) -> Path:
    """Path under the model catalog folder ``models/``."""
    return _data_root("models").joinpath(*parts)


def sample_ct() -> Path:
    """The bundled sample CT that ``make run`` opens."""
    return resource_path("sample", "abdomen_3mm.nii.gz")
