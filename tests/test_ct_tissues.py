"""The built-in ct-tissues model on the real abdomen CT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctseg_gui.core.errors import ModalityError
from ctseg_gui.core.volume import Volume
from ctseg_gui.inference.ct_tissues import (
    AIR,
    BODY,
    BONE,
    FAT,
    SOFT,
    axial_array_axis,
    segment_ct_tissues,
)
from ctseg_gui.inference.errors import JobCancelled
from ctseg_gui.io import read_image
from ctseg_gui.resources import resource_path


@pytest.fixture(scope="module")
def ct(abdomen_ct) -> Volume:
    return read_image(abdomen_ct)


@pytest.fixture(scope="module")
def tissues(ct):
    return segment_ct_tissues(ct)


@pytest.fixture(scope="module")
def reference(reference_labels) -> np.ndarray:
    return read_image(reference_labels).array.astype(np.int16)


def _reference_ids(*words: str) -> list[int]:
    names = json.loads(resource_path("totalseg_v1_104_names.json").read_text())
    return [int(v) for v, name in names.items() if any(w in name for w in words)]


def test_tissues_land_where_hounsfield_units_say(ct, tissues):
    hu, labels = ct.array, tissues.array
    assert labels.shape == hu.shape and labels.dtype == np.uint8
    assert [e.name for e in tissues.table] == ["body", "air / lung", "fat", "soft tissue", "bone"]
    median = {v: float(np.median(hu[labels == v])) for v in (AIR, FAT, SOFT, BONE)}
    assert median[AIR] < -700
    assert -150 < median[FAT] < -50
    assert -10 < median[SOFT] < 80
    assert median[BONE] > 150
    assert hu[labels == FAT].min() >= -190 and hu[labels == FAT].max() < -30
    assert hu[labels == AIR].max() < -400
    # Every class is substantial on an abdomen: fat and soft tissue dominate the body.
    counts = tissues.voxel_counts()
    assert set(counts) == {BODY, AIR, FAT, SOFT, BONE}
    assert counts[FAT] > 10 * counts[BODY] and counts[SOFT] > 10 * counts[BODY]


def test_body_excludes_table_and_outside_air(ct, tissues):
    hu, labels = ct.array, tissues.array
    body = labels > 0
    # The corners of every slice are outside air.
    assert not body[:, :3, :3].any() and not body[:, -3:, -3:].any()
    # The patient table is dense (> -500 HU) but not body: it lies outside, under the patient.
    dense_outside = (hu > -500) & ~body
    assert dense_outside.sum() > 1000
    rows = np.flatnonzero(dense_outside.any(axis=(0, 2)))
    body_rows = np.flatnonzero(body.any(axis=(0, 2)))
    assert rows.min() < body_rows.min(), "the dense structure outside the body is the table"
    # Lungs and bowel gas are holes inside the body, not outside air.
    assert (labels == AIR).sum() > 5000


def test_agrees_with_reference_anatomy(tissues, reference):
    labels = tissues.array
    organs = reference > 0
    assert (labels[organs] > 0).mean() > 0.995, "organs must lie inside the body"
    lungs = np.isin(reference, _reference_ids("lung"))
    assert (labels[lungs] == AIR).mean() > 0.9
    bones = np.isin(reference, _reference_ids("vertebrae", "rib", "femur", "hip", "sacrum"))
    ours = labels == BONE
    dice = 2 * (bones & ours).sum() / (bones.sum() + ours.sum())
    assert dice > 0.8
    liver = reference == 5
    assert (labels[liver] == SOFT).mean() > 0.95


def test_orientation_does_not_change_the_labels(ct, tissues):
    # Same patient stored with the slice axis last in memory: the axial axis is found from the
    # direction matrix, so the labels are the same voxels, transposed.
    array = np.ascontiguousarray(ct.array.transpose(2, 1, 0))  # [i, j, k] -> new [k', j', i']
    direction = ct.direction[:, ::-1]
    spacing = tuple(reversed(ct.spacing))
    turned = Volume(array, spacing, ct.origin, direction, dict(ct.metadata))
    assert axial_array_axis(ct) == 0 and axial_array_axis(turned) == 2
    labels = segment_ct_tissues(turned).array
    np.testing.assert_array_equal(labels, tissues.array.transpose(2, 1, 0))


def test_progress_in_order_and_cancel(small_ct):
    volume = read_image(small_ct)
    seen: list[tuple[str, float]] = []
    segment_ct_tissues(volume, progress=lambda stage, f: seen.append((stage, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert "bone" in [stage for stage, _ in seen]

    polls = []

    def cancel_at_third_poll() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(JobCancelled, match="cancelled"):
        segment_ct_tissues(volume, cancelled=cancel_at_third_poll)
    assert len(polls) == 3


def test_refuses_non_ct(small_ct):
    volume = read_image(small_ct)
    mr_like = volume.with_array((volume.array - volume.array.min()).astype(np.int16))
    with pytest.raises(ModalityError, match="Hounsfield"):
        segment_ct_tissues(mr_like)


def test_contrast_ct_arms_are_body_and_the_aorta_is_not_bone(dicom_series):
    from scipy import ndimage

    ct = read_image(dicom_series)  # contrast-enhanced, 0.98 mm in-plane, arms beside the trunk
    labels = segment_ct_tissues(ct).array
    middle = labels[10] > 0
    parts, count = ndimage.label(middle)
    assert count >= 2, "an arm lying apart from the trunk is body too"
    # The trunk spans columns ~100-430 of this slice; the arms lie on either side.
    assert middle[:, :90].sum() > 1500 and middle[:, 440:].sum() > 1500
    # The contrast-filled aorta in front of the spine (rows 290-310, columns 260-282 of slice
    # 10; 140-200 HU) touches the vertebra but must not become bone.
    aorta = (slice(10, 11), slice(290, 310), slice(260, 282))
    assert 120 < np.median(ct.array[aorta]) < 250
    assert (labels[aorta] == BONE).mean() < 0.2
    assert (labels == BONE).sum() > 50_000  # the spine, ribs and humeri still are
