"""RTSTRUCT export for radiotherapy planning: closed planar contours per slice, with rt-utils.

rt-utils traces each structure's outline on every slice (OpenCV, outer borders and holes as
separate contours through boundary pixel centres, so planning systems' even-odd filling gives the
mask back) and builds the structure set. We hand it the headers in our slice order instead of
letting it load the folder itself: its loader decodes every pixel of every file under the folder
(any series) just to sort them. Two fixes on top: rt-utils multiplies column indices by
``PixelSpacing[0]`` (the row spacing), so it gets headers with the two spacings swapped, which
is exact for non-square pixels too; its contour coordinates are rounded to 0.1 micrometre to fit
the 16 characters of DS; and its placeholder equipment and observation texts are replaced by
ours, with the provenance record as JSON in the Structure Set Description.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegError
from ctseg_gui.core.labels import LabelMap
from ctseg_gui.core.provenance import Provenance
from ctseg_gui.io.dicom_export import (
    ReferencedSeries,
    check_on_grid,
    export_provenance,
    present_values,
    referenced_series,
    require,
)

_DESCRIPTION_LIMIT = 1024  # ST


def export_rtstruct(
    labels: LabelMap,
    dicom_dir: str | Path,
    path: str | Path,
    *,
    series_uid: str | None = None,
    series: ReferencedSeries | None = None,
) -> Path:
    """Write ``labels`` as an RT Structure Set referencing the series in ``dicom_dir``.

    One ROI per label value present, named and coloured from the label table.
    """
    require("rt_utils", "RTSTRUCT export")
    from rt_utils import RTStruct, ds_helper

    series = series or referenced_series(dicom_dir, series_uid)
    check_on_grid(labels, series)
    values = present_values(labels)
    record = export_provenance(labels, series)
    headers = [_for_rt_utils(header) for header in series.headers]
    rt = RTStruct(headers, ds_helper.create_rtstruct_dataset(headers))
    kind = "MANUAL" if not record.model_name else "AUTOMATIC"
    if kind == "AUTOMATIC" and (record.clicks or record.edits):
        kind = "SEMIAUTOMATIC"
    # rt-utils wants masks as [row, column, slice]; our [k, j, i] transposed is a free view.
    for value, box in zip(values, _slabs(labels.array, values), strict=True):
        mask = np.zeros(labels.array.shape, dtype=bool)
        mask[box] = labels.array[box] == value
        entry = labels.table.entries.get(value)
        rt.add_roi(
            mask=mask.transpose(1, 2, 0),
            color=list(entry.color) if entry else None,
            name=(entry.name if entry else f"label {value}")[:64],
            roi_generation_algorithm=kind,
        )
    _finish(rt.ds, record, series)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        rt.ds.save_as(path, enforce_file_format=True)
    except OSError as error:
        raise CtsegError(f"cannot write: {error.strerror or error}", path) from error
    return path


def read_rtstruct_provenance(path: str | Path) -> Provenance | None:
    """The provenance an export of ours wrote into an RTSTRUCT (None for others)."""
    import pydicom

    dataset = pydicom.dcmread(path, stop_before_pixels=True)
    try:
        data = json.loads(str(dataset.get("StructureSetDescription", "")))
        return Provenance.from_json(data["ctseg_provenance"])
    except (ValueError, KeyError, TypeError):
        return None


def _for_rt_utils(header):
    """A header copy that rt-utils reads right (see the module docstring)."""
    copied = copy.copy(header)
    rows_apart, columns_apart = (float(v) for v in header.PixelSpacing)
    copied.PixelSpacing = [columns_apart, rows_apart]
    for keyword in ("StudyID", "StudyDate", "StudyTime"):
        if keyword not in copied:
            setattr(copied, keyword, "")
    return copied


def _slabs(array: np.ndarray, values: list[int]) -> list[tuple[slice, slice, slice]]:
    """Bounding box of each value, from one pass (scipy's find_objects)."""
    from scipy import ndimage

    boxes = ndimage.find_objects(array)
    return [boxes[value - 1] for value in values]


def _finish(ds, record: Provenance, series: ReferencedSeries) -> None:
    ds.Manufacturer = "ctseg-gui"
    ds.ManufacturerModelName = record.algorithm_name[:64]
    ds.SoftwareVersions = record.app_version
    if "InstitutionName" in ds:
        del ds.InstitutionName
    source = series.headers[0]
    # Type 2 study and frame-of-reference attributes rt-utils leaves out (dciodvfy names them).
    for keyword in ("ReferringPhysicianName", "AccessionNumber", "PositionReferenceIndicator"):
        setattr(ds, keyword, source.get(keyword, ""))
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = source.FrameOfReferenceUID
    ds.SeriesDescription = f"RTSTRUCT: {record.algorithm_name}"[:64]
    ds.StructureSetLabel = "CTSEG"
    ds.StructureSetName = record.summary()[:64]
    ds.StructureSetDescription = _provenance_text(record)
    ds.SeriesNumber = int(source.get("SeriesNumber") or 0) + 2000
    for observation in ds.RTROIObservationsSequence:
        observation.RTROIInterpretedType = "ORGAN"
        if "ROIObservationDescription" in observation:
            del observation.ROIObservationDescription
    for roi in ds.ROIContourSequence:
        for contour in roi.get("ContourSequence", []):
            # rt-utils hands pydicom full float reprs (-164.59442174434662); DS allows 16
            # characters. 0.1 micrometre is far below any voxel.
            contour.ContourData = [round(float(v), 4) for v in contour.ContourData]
    generation = f"{record.algorithm_name} {record.model_version}".strip()[:64]
    for roi in ds.StructureSetROISequence:
        roi.ROIGenerationDescription = generation


def _provenance_text(record: Provenance) -> str:
    """Compact JSON that fits the 1024 characters of ST; edit kinds fold into a total if not."""
    text = json.dumps({"ctseg_provenance": record.to_json()}, separators=(",", ":"))
    if len(text) > _DESCRIPTION_LIMIT:
        folded = {**record.to_json(), "edits": {"all": sum(record.edits.values())}}
        text = json.dumps({"ctseg_provenance": folded}, separators=(",", ":"))
    return text
