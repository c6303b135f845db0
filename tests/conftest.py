"""Shared fixtures: paths of the real CT data in tests/data and derived inputs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
# Backend exports and parity records of the test run only, also for the worker processes that
# session-wide fixtures start before any per-test setting (see _private_backend_cache)
os.environ["CTSEG_CACHE_DIR"] = tempfile.mkdtemp(prefix="ctseg-test-cache-")


@pytest.fixture(autouse=True)
def _private_backend_cache(tmp_path, monkeypatch):
    """Exports and parity records of this test only: ``--backend auto`` sees none by default."""
    monkeypatch.setenv("CTSEG_CACHE_DIR", str(tmp_path / "backend-cache"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def abdomen_ct() -> Path:
    """122 x 101 x 112, 3 mm, RAS NIfTI CT."""
    return DATA / "ct" / "abdomen_3mm.nii.gz"


@pytest.fixture(scope="session")
def small_ct() -> Path:
    """30-slice crop, int16."""
    return DATA / "ct" / "abdomen_3mm_30slices.nii.gz"


@pytest.fixture(scope="session")
def reference_labels() -> Path:
    """104-class TotalSegmentator v1 labels of ``abdomen_ct`` (float64 file)."""
    return DATA / "labels" / "abdomen_3mm_totalseg_v1.nii.gz"


@pytest.fixture(scope="session")
def dicom_series() -> Path:
    """20-slice JPEG 2000 CT series."""
    return DATA / "dicom" / "abdomen_ct_20"


@pytest.fixture
def dicom_copy(tmp_path, dicom_series) -> Path:
    """A writable copy of the DICOM series to damage in a test."""
    target = tmp_path / "series"
    shutil.copytree(dicom_series, target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target
