"""Structure statistics against plain numpy on the real CT and its 104-class reference labels."""

import csv
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from ctseg_gui.core.label_tables import WHOLEBODY_GROUPS, wholebody_table
from ctseg_gui.core.stats import structure_statistics
from ctseg_gui.io import read_image, read_label_map
from ctseg_gui.resources import resource_path


@pytest.fixture(scope="module")
def numpy_reference(abdomen_ct, reference_labels):
    hu = np.asarray(nib.load(abdomen_ct).dataobj).astype(np.float64)
    labels = np.asarray(nib.load(reference_labels).dataobj).astype(int)
    voxel_ml = float(np.prod(nib.load(abdomen_ct).header.get_zooms()[:3])) / 1000
    rows = {}
    for value in np.unique(labels):
        if value:
            inside = hu[labels == value]
            rows[int(value)] = (inside.size, inside.size * voxel_ml, inside.mean(), inside.std())
    return rows


def test_statistics_match_numpy(abdomen_ct, reference_labels, numpy_reference):
    image = read_image(abdomen_ct)
    rows = structure_statistics(
        read_label_map(reference_labels, image, wholebody_table(resource_path()))
    )
    assert [r.value for r in rows] == sorted(numpy_reference)
    for row in rows:
        voxels, volume, mean, std = numpy_reference[row.value]
        assert row.voxels == voxels
        assert row.volume_ml == pytest.approx(volume, rel=1e-9)
        assert row.mean_hu == pytest.approx(mean, abs=1e-6)
        assert row.std_hu == pytest.approx(std, abs=1e-6)
    spleen = next(r for r in rows if r.value == 1)
    assert spleen.name == "spleen" and 100 < spleen.volume_ml < 500  # an adult spleen


def test_stats_cli_writes_csv(abdomen_ct, reference_labels, numpy_reference, tmp_path):
    out = tmp_path / "stats.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctseg_gui.cli",
            "stats",
            str(abdomen_ct),
            str(reference_labels),
            "-o",
            str(out),
            "--names",
            "wholebody",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with out.open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["value", "name", "voxels", "volume_ml", "mean_hu", "std_hu"]
        rows = list(reader)
    assert len(rows) == len(numpy_reference)
    liver = next(r for r in rows if r["value"] == "5")
    assert liver["name"] == "liver"
    assert int(liver["voxels"]) == numpy_reference[5][0]
    assert float(liver["mean_hu"]) == pytest.approx(numpy_reference[5][2], abs=1e-3)


def test_wholebody_table_groups_and_distinct_colours():
    table = wholebody_table(resource_path())
    names = json.loads(resource_path("totalseg_v1_104_names.json").read_text())
    assert [e.name for e in table] == [names[str(v)] for v in range(1, 105)]
    assert {e.group for e in table} == set(WHOLEBODY_GROUPS)
    assert table[18].group == "vertebrae" and table[58].group == "ribs"
    assert table[7].group == "vessels" and table[44].group == "cardiac"
    colours = np.array([e.color for e in table], float)
    distance = np.linalg.norm(colours[:, None] - colours[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    assert distance.min() >= 20  # no two structures look alike
