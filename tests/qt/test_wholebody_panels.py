"""Label panel group toggles and the structure statistics panel on the reference label map."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt

from ctseg_gui.core.document import Document
from ctseg_gui.core.label_tables import WHOLEBODY_GROUPS
from ctseg_gui.core.viewer_state import ViewerState
from ctseg_gui.io import read_image, read_label_map

WAIT_MS = 60_000


@pytest.fixture(scope="module")
def ct(abdomen_ct):
    return read_image(abdomen_ct)


@pytest.fixture
def document(ct, reference_labels):
    doc = Document()
    doc.set_image(ct)
    doc.set_labels(read_label_map(reference_labels, ct), reference_labels)
    return doc


def _numpy_stats(labels) -> dict[int, tuple[int, float, float, float]]:
    hu = labels.image.array.astype(np.float64)
    voxel_ml = float(np.prod(labels.image.spacing)) / 1000.0
    out = {}
    for value in np.unique(labels.array):
        if value == 0:
            continue
        inside = hu[labels.array == value]
        out[int(value)] = (inside.size, inside.size * voxel_ml, inside.mean(), inside.std())
    return out


def test_group_toggles_hide_and_show_whole_groups(qtbot, document):
    from ctseg_gui.qt.label_panel import QtLabelPanel

    panel = QtLabelPanel(document, ViewerState())
    qtbot.addWidget(panel)
    panel.show()
    panel.refresh()
    # A map without a sidecar has generic names and no groups: no toggles, a naming offer.
    assert panel.groups_box.isHidden() and not panel.names_button.isHidden()

    qtbot.mouseClick(panel.names_button, Qt.MouseButton.LeftButton)
    table = document.labels.table
    assert table[1].name == "spleen" and table[5].name == "liver"
    assert not panel.groups_box.isHidden() and panel.names_button.isHidden()
    assert set(panel.group_boxes) == set(WHOLEBODY_GROUPS)
    assert panel.group_boxes["ribs"].text() == "Ribs (24)"
    assert all(b.checkState() == Qt.CheckState.Checked for b in panel.group_boxes.values())

    ribs = [e.value for e in table if e.group == "ribs"]
    qtbot.mouseClick(panel.group_boxes["ribs"], Qt.MouseButton.LeftButton)
    assert len(ribs) == 24 and not any(table[v].visible for v in ribs)
    assert all(e.visible for e in table if e.group != "ribs")
    assert panel.group_boxes["ribs"].checkState() == Qt.CheckState.Unchecked

    # Hiding one organ in the table leaves its group partly shown; the group box restores all.
    document.update_label(5, visible=False)
    assert panel.group_boxes["organs"].checkState() == Qt.CheckState.PartiallyChecked
    qtbot.mouseClick(panel.group_boxes["organs"], Qt.MouseButton.LeftButton)
    assert all(e.visible for e in table if e.group == "organs")
    qtbot.mouseClick(panel.group_boxes["ribs"], Qt.MouseButton.LeftButton)
    assert all(table[v].visible for v in ribs)


def test_names_and_volumes_are_not_clipped_in_the_window(qtbot, viewer, open_and_wait,
                                                         abdomen_ct, reference_labels):  # fmt: skip
    from ctseg_gui.qt.label_panel import NAME, VOLUME

    open_and_wait(viewer, abdomen_ct, reference_labels)
    panel = viewer.label_panel
    qtbot.mouseClick(panel.names_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.table.columnWidth(NAME) > 0)
    metrics = panel.table.fontMetrics()
    present = document_names = [e.name for e in viewer.document.labels.table]
    longest = max(metrics.horizontalAdvance(name) for name in document_names)
    assert len(present) >= 59
    # The colour swatch sits in its own column, so the name cell needs only its text + margins.
    assert panel.table.columnWidth(NAME) >= longest + 8
    widest_volume = max(
        metrics.horizontalAdvance(str(panel.proxy.index(r, VOLUME).data()))
        for r in range(panel.proxy.rowCount())
    )
    assert panel.table.columnWidth(VOLUME) >= widest_volume + 4
    assert viewer.label_dock.width() >= 420

    # The statistics tab computes when shown; its name column is not squeezed by the numbers.
    stats = viewer.stats_panel
    with qtbot.waitSignal(stats.computed, timeout=WAIT_MS):
        viewer.stats_dock.raise_()
    assert stats.table.columnWidth(1) >= metrics.horizontalAdvance("lung_middle_lobe_right") + 8
    assert stats.table.horizontalScrollBar().maximum() == 0


@pytest.fixture
def stats_panel(qtbot, document):
    from ctseg_gui.qt.stats_panel import QtStatsPanel

    panel = QtStatsPanel(document)
    qtbot.addWidget(panel)
    return panel


def test_statistics_match_numpy_and_sort_numerically(qtbot, stats_panel, document):
    with qtbot.waitSignal(stats_panel.computed, timeout=WAIT_MS) as blocker:
        stats_panel.show()  # hidden panels compute nothing; showing catches up
    rows = blocker.args[0]
    expected = _numpy_stats(document.labels)
    assert [r.value for r in rows] == sorted(expected)
    for row in rows:
        voxels, ml, mean, std = expected[row.value]
        assert row.voxels == voxels
        assert row.volume_ml == pytest.approx(ml, rel=1e-9)
        assert row.mean_hu == pytest.approx(mean, rel=1e-9, abs=1e-6)
        assert row.std_hu == pytest.approx(std, rel=1e-7, abs=1e-6)

    # Sort by volume, largest first (numbers, not text: "1123.3" before "261.3").
    header = stats_panel.table.horizontalHeader()
    stats_panel.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)
    shown = [int(stats_panel.proxy.index(r, 0).data()) for r in range(stats_panel.proxy.rowCount())]
    by_volume = sorted(expected, key=lambda v: -expected[v][1])
    assert shown == by_volume
    texts = [stats_panel.proxy.index(r, 3).data() for r in range(len(shown))]
    assert texts != sorted(texts, reverse=True)  # a text sort would have ordered them otherwise
    assert header.sortIndicatorSection() == 3
    stats_panel.table.sortByColumn(4, Qt.SortOrder.AscendingOrder)
    means = [float(stats_panel.proxy.index(r, 4).data()) for r in range(len(rows))]
    assert means == sorted(means)


def test_csv_export_equals_ctseg_stats(qtbot, stats_panel, tmp_path, abdomen_ct, reference_labels):
    from ctseg_gui.cli import main

    with qtbot.waitSignal(stats_panel.computed, timeout=WAIT_MS):
        stats_panel.show()
    stats_panel.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # the file stays by value
    ours, theirs = tmp_path / "panel.csv", tmp_path / "cli.csv"
    stats_panel.export_csv(ours)
    assert main(["stats", str(abdomen_ct), str(reference_labels), "-o", str(theirs)]) == 0
    assert ours.read_text() == theirs.read_text()
    with ours.open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["value", "name", "voxels", "volume_ml", "mean_hu", "std_hu"]
        assert len(list(reader)) == len(stats_panel.rows)


def test_statistics_follow_label_edits(qtbot, stats_panel, document):
    with qtbot.waitSignal(stats_panel.computed, timeout=WAIT_MS):
        stats_panel.show()
    before = {r.value: r for r in stats_panel.rows}
    editor = document.editor
    region = (slice(50, 52), slice(40, 60), slice(40, 60))
    computed: list = []
    stats_panel.computed.connect(computed.append)
    with qtbot.waitSignal(stats_panel.computed, timeout=WAIT_MS) as blocker:
        # Two quick edits: one recomputation after the debounce, on the final map.
        editor.paint(np.ones((2, 20, 20), bool), 1, "paint spleen", region)
        editor.paint(np.ones((1, 5, 5), bool), 0, "erase", (slice(50, 51), slice(40, 45),
                                                             slice(40, 45)))  # fmt: skip
        assert stats_panel.computing
    after = {r.value: r for r in blocker.args[0]}
    assert len(computed) == 1
    expected = _numpy_stats(document.labels)
    assert after[1].voxels == expected[1][0] > before[1].voxels
    assert {v: r.voxels for v, r in after.items()} == {v: e[0] for v, e in expected.items()}

    # Renaming needs no recount: the shown name follows the table at once.
    document.update_label(1, name="spleen (edited)")
    assert stats_panel.model.rows[0].name == "spleen (edited)"


def test_whole_body_result_brings_group_toggles_to_the_window(
    qtbot, viewer, open_and_wait, abdomen_ct, reference_labels
):
    from ctseg_gui.core.labels import LabelMap
    from ctseg_gui.inference.catalog import get_manifest

    open_and_wait(viewer, abdomen_ct)
    panel = viewer.label_panel
    assert panel.groups_box.isHidden()
    # A whole-body result as the engine returns it: the catalog's table, with groups.
    image = viewer.document.image
    array = read_label_map(reference_labels, image).array
    table = get_manifest("wholeBody_ct_segmentation").label_table()
    assert {e.group for e in table} == set(WHOLEBODY_GROUPS)
    result = LabelMap(array, image, table)
    viewer._on_model_panel_result_ready(result)
    assert not panel.groups_box.isHidden() and set(panel.group_boxes) == set(WHOLEBODY_GROUPS)
    assert viewer.document.labels.table[1].name == "spleen"
    qtbot.mouseClick(panel.group_boxes["vertebrae"], Qt.MouseButton.LeftButton)
    hidden = {e.value for e in viewer.document.labels.table if not e.visible}
    assert len(hidden) == 24 and viewer.document.labels.table[min(hidden)].group == "vertebrae"
