"""Reading and writing whole images: DICOM folders, NIfTI, NRRD and MetaImage.

:func:`read_image` is the one entry point every front end uses; it turns any failure into an
:class:`~ctseg_gui.core.errors.ImageReadError` naming the file and the problem.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ctseg_gui.core.errors import CtsegError, ImageReadError
from ctseg_gui.core.volume import Volume
from ctseg_gui.io import dicom
from ctseg_gui.io._sitk import itk_reason, sitk, volume_from_sitk, volume_to_sitk

FORMATS = {
    ".nii": "NIfTI",
    ".nii.gz": "NIfTI",
    ".nrrd": "NRRD",
    ".nhdr": "NRRD",
    ".mha": "MetaImage",
    ".mhd": "MetaImage",
}


def image_suffix(path: str | Path) -> str:
    """The format suffix of ``path`` (``.nii.gz`` counts as one), lower case."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def read_image(path: str | Path, series_uid: str | None = None) -> Volume:
    """Read a CT from a DICOM folder or file, NIfTI, NRRD or MetaImage file.

    Parameters
    ----------
    path
        A folder (searched for DICOM series), a DICOM file (its series is loaded) or an image file.
    series_uid
        For DICOM input, the series to load; default: the largest CT series.

    Raises
    ------
    ImageReadError
        Missing, empty, unreadable, truncated or unsupported input, or an unsafe DICOM series.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError("does not exist", path)
    if path.is_dir():
        return dicom.load_series(dicom.choose_series(dicom.scan_folder(path), series_uid))
    if dicom.is_dicom_file(path):
        dicom.read_header(path)  # this file's own problem, named, before its folder's
        series = dicom.scan_folder(path.parent)
        uid = series_uid or _series_uid_of(path)
        return dicom.load_series(dicom.choose_series(series, uid))
    suffix = image_suffix(path)
    if suffix not in FORMATS:
        raise ImageReadError(
            "is not a supported image (expected a DICOM folder or file, .nii, .nii.gz, .nrrd, "
            ".nhdr, .mha or .mhd)",
            path,
        )
    if path.stat().st_size == 0:
        raise ImageReadError("is empty (0 bytes)", path)
    nifti_affine = _check_nifti(path) if FORMATS[suffix] == "NIfTI" else None
    try:
        image = sitk().ReadImage(str(path))
    except RuntimeError as error:
        raise ImageReadError(
            f"cannot read {FORMATS[suffix]} file: {itk_reason(error)}", path
        ) from error
    metadata = {"source": str(path), "format": FORMATS[suffix], "modality": _modality(image)}
    volume = volume_from_sitk(image, metadata, source=path)
    # Keep the file's own affine so label exports reproduce it bit for bit; ITK may have
    # orthonormalised it by a rounding error.
    if nifti_affine is not None and np.allclose(nifti_affine, volume.affine_ras, atol=1e-3):
        volume.metadata["nifti_affine"] = nifti_affine
    return volume


def read_header(path: str | Path):
    """A SimpleITK reader of a non-DICOM image file with its header read, voxels not: ``GetSize``,
    ``GetSpacing``, ``GetOrigin``, ``GetDirection`` (ITK's LPS conventions)."""
    reader = sitk().ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise ImageReadError(f"cannot read header: {itk_reason(error)}", path) from error
    return reader


def read_header_facts(path: str | Path) -> dict:
    """Cheap facts about a non-DICOM image file (size, spacing) without reading the voxels."""
    reader = read_header(path)
    return {"size": list(reader.GetSize()), "spacing": list(reader.GetSpacing())}


def write_image(volume: Volume, path: str | Path) -> Path:
    """Write ``volume`` as NIfTI, NRRD or MetaImage, chosen by the suffix of ``path``."""
    path = Path(path)
    suffix = image_suffix(path)
    if suffix not in FORMATS:
        raise CtsegError("unsupported output format (use .nii.gz, .nii, .nrrd, .mha or .mhd)", path)
    if FORMATS[suffix] == "NIfTI":
        return _write_nifti(volume, path, volume.array)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sitk().WriteImage(volume_to_sitk(volume), str(path), useCompression=True)
    except RuntimeError as error:
        raise CtsegError(f"cannot write: {itk_reason(error)}", path) from error
    return path


def _write_nifti(volume: Volume, path: Path, array: np.ndarray, intent: str | None = None) -> Path:
    """NIfTI through nibabel, so the affine and both qform and sform codes are ours to set."""
    import nibabel as nib

    affine = volume.metadata.get("nifti_affine")
    if affine is None:
        affine = volume.affine_ras
    # nibabel wants (i, j, k) order; the transpose is a free view of our [k, j, i] array.
    image = nib.Nifti1Image(array.transpose(2, 1, 0), affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm")
    image.set_data_dtype(array.dtype)
    if intent:
        image.header.set_intent(intent)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        nib.save(image, str(path))
    except OSError as error:
        raise CtsegError(f"cannot write: {error.strerror or error}", path) from error
    return path


def _series_uid_of(path: Path) -> str | None:
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
    except Exception as error:  # noqa: BLE001
        raise ImageReadError(f"damaged DICOM file: {error}", path) from error
    return str(header.get("SeriesInstanceUID", "")) or None


def _modality(image) -> str:
    """NIfTI/NRRD/MHA do not record modality; MetaImage may ("Modality = MET_MOD_CT")."""
    for key in ("Modality", "modality"):
        if image.HasMetaDataKey(key):
            value = image.GetMetaData(key).upper()
            return "CT" if "CT" in value else value
    return ""


def _check_nifti(path: Path) -> np.ndarray:
    """Refuse truncated NIfTI files and return the header's RAS affine.

    ITK reads some truncated ``.nii.gz`` files without complaint (it fills the rest with zeros),
    so we compare the data size the header promises with what the file holds. For gzip files the
    trailer stores the uncompressed length, which costs nothing to read; only when it disagrees do
    we decompress the stream to tell truncation from a (legal but rare) multi-member file.
    """
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except Exception as error:  # noqa: BLE001 - nibabel raises many types for bad headers
        raise ImageReadError(f"not a readable NIfTI file ({error})", path) from error
    header = image.header
    bits = int(header["bitpix"])
    # The loaded header reports vox_offset 0; the data proxy knows the real offset.
    offset = int(getattr(image.dataobj, "offset", header["vox_offset"]))
    expected = offset + int(np.prod(header.get_data_shape(), dtype=np.int64)) * bits // 8
    if image_suffix(path) == ".nii.gz":
        actual = _gzip_length(path)
        if actual % 2**32 != expected % 2**32:
            actual = _gzip_stream_length(path)
    else:
        actual = path.stat().st_size
    if actual < expected:
        raise ImageReadError(
            f"truncated NIfTI file: holds {actual} of the {expected} bytes its header announces",
            path,
        )
    return np.asarray(header.get_best_affine(), dtype=float)


def _gzip_length(path: Path) -> int:
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        return struct.unpack("<I", handle.read(4))[0]


def _gzip_stream_length(path: Path) -> int:
    """Uncompressed length of a gzip file, counting only what decompresses cleanly."""
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(1 << 22):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        return total
    return total
