"""What DICOM SEG and RTSTRUCT exports share: the referenced series, optional libraries, labels.

Both objects reference the CT series the labels lie on, slice by slice, so the series must carry
its UIDs (anonymisers that blank them make it unreferenceable) and the labels must lie exactly on
its grid. highdicom and rt-utils are optional (the ``interop`` extra).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path

from ctseg_gui.core.errors import CtsegError, GeometryMismatchError
from ctseg_gui.core.labels import LabelMap
from ctseg_gui.core.provenance import Provenance, complete
from ctseg_gui.core.volume import Volume, grid_differences
from ctseg_gui.io import dicom

_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


def require(module: str, purpose: str):
    """Import an optional library, or fail with the one line that says how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"highdicom": "highdicom", "rt_utils": "rt-utils"}.get(module, module)
        raise CtsegError(
            f"{purpose} needs {package}: install ctseg-gui[interop] (pip install 'ctseg-gui[interop]')"
        ) from None


@dataclass
class ReferencedSeries:
    """A classic CT series to reference: its grid and its headers in volume order."""

    entry: dicom.DicomSeries
    grid: Volume
    headers: list  # pydicom Datasets without pixel data, headers[k] is slice k of the grid

    @property
    def folder(self) -> Path:
        return self.entry.folder


def referenced_series(dicom_dir: str | Path, series_uid: str | None = None) -> ReferencedSeries:
    """Find, check and read the headers of the series an export will reference.

    Raises
    ------
    CtsegError
        When the folder holds no usable series, the series is a multi-frame file, or its files
        lack the UIDs a reference needs.
    """
    import pydicom

    entry = dicom.choose_series(dicom.scan_folder(dicom_dir), series_uid)
    if len(entry.slices) == 1 and entry.slices[0].frames > 1:
        raise CtsegError(
            f"series {entry.uid} is one multi-frame file; SEG and RTSTRUCT exports reference "
            "classic one-slice-per-file series",
            entry.folder,
        )
    grid, slices = dicom.series_grid(entry)
    headers = []
    for item in slices:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(item.path, stop_before_pixels=True)
        blank = [key for key in (*_REQUIRED_UIDS, "FrameOfReferenceUID") if not header.get(key)]
        if blank:
            raise CtsegError(
                f"has no {', '.join(blank)} (anonymised without new UIDs?): an export cannot "
                "reference this series; give its files UIDs first",
                item.path,
            )
        headers.append(header)
    return ReferencedSeries(entry, grid, headers)


def check_on_grid(labels: LabelMap, series: ReferencedSeries, source: str | None = None) -> None:
    """Refuse labels that are not on the series grid, naming the difference."""
    problems = grid_differences(series.grid, labels.image)
    if problems:
        raise GeometryMismatchError(
            "labels are not on the grid of series " + series.entry.uid + ": " + "; ".join(problems),
            source,
        )


def export_provenance(labels: LabelMap, series: ReferencedSeries) -> Provenance:
    """The labels' provenance completed for an export of ``series``."""
    metadata = {**labels.image.metadata, "series_uid": series.entry.uid}
    return complete(labels.provenance, metadata, labels.edit_tally)


def present_values(labels: LabelMap) -> list[int]:
    """Label values with voxels, ascending; an empty map is refused."""
    values = labels.present_values()
    if not values:
        raise CtsegError("the label map is empty: nothing to export")
    return values
