"""Readers and writers: DICOM discovery, NIfTI/NRRD/MetaImage, label export."""

from ctseg_gui.io.images import read_image, write_image
from ctseg_gui.io.labels import read_label_map, write_label_map

__all__ = ["read_image", "write_image", "read_label_map", "write_label_map"]
