"""DICOM series discovery and loading.

Files are recognised by content (the ``DICM`` magic at byte 128), never by suffix: clinical exports
are often named ``CT.1.2.840...`` or have no extension at all. Slices are ordered by their position
along the slice normal, and the series is checked for missing slices, uneven spacing, mixed
orientations and gantry tilt before any voxel is decoded. Decoding (JPEG 2000 and friends) and
rescale slope/intercept are left to GDCM through SimpleITK.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegWarning, ImageReadError
from ctseg_gui.core.volume import Volume
from ctseg_gui.io._sitk import itk_reason, sitk

ENHANCED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR",
}
_HEADER_TAGS = [
    "SOPClassUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "Modality",
    "PatientName",
    "PatientID",
    "StudyDescription",
    "SeriesDescription",
    "SeriesNumber",
    "StudyDate",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "NumberOfFrames",
    "InstanceNumber",
    "BodyPartExamined",
    "SliceThickness",
]
# Relative deviation of one slice step from the median step that we still call "even".
_EVEN_STEP = 0.01
# Up to this deviation the series loads with a warning; beyond it the geometry would be wrong.
_TOLERATED_STEP = 0.10
_MAX_TILT_DEGREES = 0.05


@dataclass
class DicomSlice:
    """Header facts of one file, enough to sort and check a series without decoding pixels."""

    path: Path
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    frames: int = 1
    instance: int = 0
    shape: tuple[int, int] = (0, 0)


@dataclass
class DicomSeries:
    """One series found in a folder tree."""

    uid: str
    modality: str = ""
    patient_name: str = ""
    patient_id: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: int | None = None
    study_date: str = ""
    rows: int = 0
    columns: int = 0
    pixel_spacing: tuple[float, float] | None = None
    sop_class_uid: str = ""
    slices: list[DicomSlice] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # files of the series we could not use

    @property
    def folder(self) -> Path:
        """Folder of the first file."""
        return self.slices[0].path.parent

    @property
    def number_of_slices(self) -> int:
        """Slices in the series (frames for a multi-frame file)."""
        return sum(s.frames for s in self.slices)

    @property
    def dimensions(self) -> tuple[int, int, int]:
        """Columns x rows x slices."""
        return (self.columns, self.rows, self.number_of_slices)

    def describe(self) -> dict:
        """Facts for listings (``ctseg info``, the series picker)."""
        return {
            "series_uid": self.uid,
            "modality": self.modality,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "study_description": self.study_description,
            "series_description": self.series_description,
            "series_number": self.series_number,
            "study_date": self.study_date,
            "slices": self.number_of_slices,
            "dimensions": list(self.dimensions),
            "files": len(self.slices),
            "folder": str(self.folder),
        }


def is_dicom_file(path: str | Path) -> bool:
    """Whether the file carries the DICOM Part 10 magic ``DICM`` at byte 128."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def scan_folder(folder: str | Path) -> list[DicomSeries]:
    """Find every DICOM series under ``folder`` (recursively), largest first.

    Raises
    ------
    ImageReadError
        When the folder does not exist, is empty, or holds no DICOM image files.
    """

    folder = Path(folder)
    if not folder.exists():
        raise ImageReadError("does not exist", folder)
    if not folder.is_dir():
        raise ImageReadError("is not a folder", folder)
    files = sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names)
    if not files:
        raise ImageReadError("is empty: no files to load", folder)
    series: dict[str, DicomSeries] = {}
    damaged: list[ImageReadError] = []
    bad_headers: dict[str, list[ImageReadError]] = {}
    for path in files:
        if path.name.upper() == "DICOMDIR" or not is_dicom_file(path):
            continue
        try:
            header = _parse_header(path)
        except ImageReadError as error:  # one damaged file must not hide the other series
            damaged.append(error)
            continue
        if "Rows" not in header:  # structured reports, presentation states: no pixels
            continue
        uid = _series_key(path, header)
        try:
            entry = series.get(uid) or _series_from_header(uid, header, path)
            entry.slices.append(_slice_from_header(path, header))
        except ImageReadError as error:
            bad_headers.setdefault(uid, []).append(error)
            continue
        series[uid] = entry
    for uid, errors in bad_headers.items():
        if uid in series:  # loading it would silently drop slices: load_series refuses
            series[uid].damaged = [str(e) for e in errors]
        else:
            damaged.extend(errors)
    if not series:
        detail = f"; {len(damaged)} damaged DICOM file(s), e.g. {damaged[0]}" if damaged else ""
        raise ImageReadError(
            f"no DICOM image series found among {len(files)} file(s){detail}", folder
        )
    return sorted(series.values(), key=lambda s: (s.modality != "CT", -s.number_of_slices))


def read_header(path: str | Path):
    """The header facts of one DICOM file (no pixels), checked so a series can be built.

    Raises
    ------
    ImageReadError
        When pydicom cannot parse the file, or a value the series geometry depends on is
        malformed (e.g. ``NumberOfFrames`` of ``'1A'``: an integer string that is no integer).
    """
    header = _parse_header(path)
    if "Rows" in header:
        _slice_from_header(Path(path), header)
        _series_from_header("", header, Path(path))
    return header


def _parse_header(path: str | Path):
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
    except Exception as error:  # noqa: BLE001 - any parse failure means "not a usable file"
        raise ImageReadError(f"damaged DICOM file ({error})", path) from error


def _number(header, keyword: str, path: Path | None, kind=int):
    """A numeric header value (a list for multi-valued ones), None when absent or empty.

    pydicom keeps malformed IS/DS strings as raw text (it only warns); converting them here
    turns them into one clear error instead of a ValueError deep in the loader.
    """
    element = header.get(keyword)
    if element is None or element == "":
        return None
    values = [element] if isinstance(element, (str, int, float)) else list(element)
    try:
        numbers = [kind(v) for v in values]
    except (TypeError, ValueError):
        expected = "an integer" if kind is int else "numbers"
        shown = "\\".join(str(v) for v in values)
        raise ImageReadError(
            f"malformed {keyword} value {shown!r} in the DICOM header ({expected} expected)",
            path,
        ) from None
    if keyword not in _MULTI_VALUED:
        return numbers[0]
    if len(numbers) != _MULTI_VALUED[keyword]:
        raise ImageReadError(
            f"malformed {keyword}: {len(numbers)} value(s) where {_MULTI_VALUED[keyword]} belong",
            path,
        )
    return numbers


_MULTI_VALUED = {"PixelSpacing": 2, "ImagePositionPatient": 3, "ImageOrientationPatient": 6}


def _series_key(path: Path, header) -> str:
    """The series UID, or for anonymised files that blanked it, folder + number + description."""
    uid = _text(header, "SeriesInstanceUID")
    if uid:
        return uid
    number = _text(header, "SeriesNumber") or "?"
    return f"no-uid:{path.parent.name}:{number}:{_text(header, 'SeriesDescription')}"


def _text(header, keyword: str) -> str:
    value = header.get(keyword, "")
    return str(value) if value is not None else ""


def _series_from_header(uid: str, header, path: Path | None = None) -> DicomSeries:
    spacing = _number(header, "PixelSpacing", path, float)
    try:
        number = _number(header, "SeriesNumber", path)
    except ImageReadError:  # only shown in listings; a bad one does not stop loading
        number = None
    return DicomSeries(
        uid=uid,
        modality=_text(header, "Modality"),
        patient_name=_text(header, "PatientName"),
        patient_id=_text(header, "PatientID"),
        study_description=_text(header, "StudyDescription"),
        series_description=_text(header, "SeriesDescription"),
        series_number=number,
        study_date=_text(header, "StudyDate"),
        rows=int(header.get("Rows", 0)),
        columns=int(header.get("Columns", 0)),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        sop_class_uid=_text(header, "SOPClassUID")
        or str(getattr(header, "file_meta", {}).get("MediaStorageSOPClassUID", "")),
    )


def _slice_from_header(path: Path, header) -> DicomSlice:
    position = _number(header, "ImagePositionPatient", path, float)
    orientation = _number(header, "ImageOrientationPatient", path, float)
    frames = _number(header, "NumberOfFrames", path)
    try:
        instance = _number(header, "InstanceNumber", path)
    except ImageReadError:  # only orders slices with equal positions; not worth refusing
        instance = None
    return DicomSlice(
        path=path,
        position=tuple(position) if position else None,
        orientation=tuple(orientation) if orientation else None,
        frames=frames if frames is not None else 1,
        instance=instance or 0,
        shape=(int(header.get("Rows", 0)), int(header.get("Columns", 0))),
    )


def choose_series(series: list[DicomSeries], uid: str | None = None) -> DicomSeries:
    """The series with ``uid``, or by default the largest CT series (the largest of any kind
    when there is no CT)."""
    if uid is not None:
        for entry in series:
            if entry.uid == uid:
                return entry
        known = ", ".join(s.uid for s in series)
        raise ImageReadError(f"no series with UID {uid} (found: {known})", series[0].folder)
    ct = [s for s in series if s.modality == "CT"]
    return max(ct or series, key=lambda s: s.number_of_slices)


def load_series(entry: DicomSeries) -> Volume:
    """Check, order and decode a series into a :class:`Volume` (LPS, rescaled to HU).

    Loads with a :class:`CtsegWarning` for slightly uneven slice spacing; refuses (with
    :class:`ImageReadError`) missing slices, strongly uneven spacing, duplicate positions, mixed
    orientations and gantry tilt. Enhanced multi-frame files (one file, many frames) are read
    by :mod:`ctseg_gui.io._multiframe` with the same checks.
    """
    folder = entry.folder
    if entry.damaged:
        raise ImageReadError(
            f"series {entry.uid} has {len(entry.damaged)} file(s) with damaged headers (e.g. "
            f"{entry.damaged[0]}); loading the rest would drop slices",
            folder,
        )
    single_file = len(entry.slices) == 1
    enhanced = entry.sop_class_uid in ENHANCED_SOP_CLASSES
    if (enhanced and single_file) or any(s.frames > 1 for s in entry.slices):
        from ctseg_gui.io._multiframe import load_multiframe

        return load_multiframe(entry)
    grid, slices = series_grid(entry)
    try:
        array = _decode_slices([str(s.path) for s in slices])
    except RuntimeError as error:
        raise _first_undecodable(slices, entry, error) from error
    if array.shape != grid.array.shape:
        raise ImageReadError(f"decoded shape {array.shape} does not match the headers", folder)
    return grid.with_array(array)


def series_grid(entry: DicomSeries) -> tuple[Volume, list[DicomSlice]]:
    """The checked geometry of a classic series, without decoding a pixel.

    Returns a :class:`Volume` whose array is a zero-stride stand-in of the right shape, and the
    slices in volume order (``array[k]`` is ``slices[k]``). Raises :class:`ImageReadError` for
    the problems :func:`load_series` refuses.
    """
    folder = entry.folder
    if entry.pixel_spacing is None:
        raise ImageReadError(f"series {entry.uid} has no PixelSpacing: voxel size unknown", folder)
    missing = [s.path.name for s in entry.slices if s.position is None or s.orientation is None]
    if missing:
        raise ImageReadError(
            f"{len(missing)} slice(s) lack ImagePositionPatient/ImageOrientationPatient "
            f"(first: {missing[0]}): the slices cannot be placed in the patient",
            folder,
        )
    shapes = {s.shape for s in entry.slices}
    if len(shapes) > 1:
        listed = ", ".join(f"{c}x{r}" for r, c in sorted(shapes))
        raise ImageReadError(
            f"series {entry.uid} mixes slice sizes ({listed}); pick a series with one size", folder
        )
    orientations = np.array([s.orientation for s in entry.slices])
    if np.abs(orientations - orientations[0]).max() > 1e-3:
        distinct = len({tuple(np.round(o, 3)) for o in orientations})
        raise ImageReadError(
            f"series {entry.uid} mixes {distinct} slice orientations (e.g. a localizer in the "
            "series); pick a series with one orientation",
            folder,
        )
    row, column = np.array(orientations[0][:3]), np.array(orientations[0][3:])
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    normal = np.cross(row, column)
    positions = np.array([s.position for s in entry.slices])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    slices = [entry.slices[i] for i in order]
    positions, along = positions[order], along[order]
    slice_step = _check_slice_steps(entry, positions, along, normal)
    direction = np.column_stack([row, column, normal])
    # DICOM PixelSpacing is (between rows, between columns) = (j, i) spacing.
    spacing = (entry.pixel_spacing[1], entry.pixel_spacing[0], slice_step)
    stand_in = np.broadcast_to(np.int16(0), (len(slices), entry.rows, entry.columns))
    metadata = {
        **entry.describe(),
        "source": str(folder),
        "format": "DICOM",
        "files": [str(s.path) for s in slices],
    }
    return Volume(stand_in, spacing, tuple(positions[0]), direction, metadata), slices


def _decode_slices(files: list[str]) -> np.ndarray:
    """Decode slices with GDCM (through SimpleITK) and stack them in the given order.

    One ImageSeriesReader applies each file's rescale slope/intercept; geometry is not taken
    from ITK here. (Decoding slabs in parallel threads was faster, but ITK then hung in its
    exit handlers now and then, so we stay on one thread.)
    """
    reader = sitk().ImageSeriesReader()
    reader.SetFileNames(files)
    image = reader.Execute()
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageReadError("colour (RGB) slices: a greyscale CT is needed", files[0])
    array = sitk().GetArrayFromImage(image)
    return array if array.ndim == 3 else array[None]


def _check_slice_steps(
    entry: DicomSeries, positions: np.ndarray, along: np.ndarray, normal: np.ndarray
) -> float:
    """Validate the sorted slice positions and return the slice spacing in mm."""
    folder = entry.folder
    if len(positions) < 2:
        thickness = 1.0
        warnings.warn(
            f"{folder}: series has a single slice; slice spacing set to 1 mm",
            CtsegWarning,
            stacklevel=3,
        )
        return thickness
    steps = np.diff(along)
    if np.any(steps < 1e-3):
        duplicate = int(np.argmin(steps))
        raise ImageReadError(
            f"two slices share position {along[duplicate]:.2f} mm along the slice normal "
            "(several acquisitions in one series?); cannot build one volume",
            folder,
        )
    step = float(np.median(steps))
    gaps = np.flatnonzero(steps > step * 1.5)
    if gaps.size:
        first = int(gaps[0])
        lost = int(round(steps[first] / step)) - 1
        raise ImageReadError(
            f"missing slice(s): {gaps.size} gap(s); e.g. {lost} slice(s) missing between "
            f"{along[first]:.2f} and {along[first + 1]:.2f} mm (slice spacing {step:.2f} mm)",
            folder,
        )
    deviation = float(np.abs(steps - step).max() / step)
    if deviation > _TOLERATED_STEP:
        raise ImageReadError(
            f"slice spacing varies from {steps.min():.3f} to {steps.max():.3f} mm; resample the "
            "series to even spacing before loading",
            folder,
        )
    if deviation > _EVEN_STEP:
        warnings.warn(
            f"{folder}: slice spacing varies from {steps.min():.3f} to {steps.max():.3f} mm; "
            f"using the mean {np.mean(steps):.3f} mm",
            CtsegWarning,
            stacklevel=3,
        )
        step = float(np.mean(steps))
    travel = positions[-1] - positions[0]
    cosine = abs(float(travel @ normal)) / float(np.linalg.norm(travel))
    tilt = float(np.degrees(np.arccos(min(1.0, cosine))))
    if tilt > _MAX_TILT_DEGREES:
        raise ImageReadError(
            f"gantry tilt of {tilt:.2f} degrees (slices are sheared, not stacked along their "
            "normal); reconstruct without tilt or correct it in the PACS first",
            folder,
        )
    return step


def _first_undecodable(
    slices: list[DicomSlice], entry: DicomSeries, error: Exception
) -> ImageReadError:
    """Name the file that breaks decoding (truncated, damaged, unsupported compression)."""
    for item in slices:
        try:
            sitk().ReadImage(str(item.path))
        except RuntimeError as single:
            return ImageReadError(
                f"cannot decode this slice of series {entry.uid} (truncated or damaged file: "
                f"{itk_reason(single)})",
                item.path,
            )
    return ImageReadError(f"cannot decode series {entry.uid}: {itk_reason(error)}", entry.folder)
