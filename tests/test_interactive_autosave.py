"""Autosave every interval when modified, and recovery after a crash."""

from __future__ import annotations

import numpy as np

from ctseg_gui.core.history import LabelEditor
from ctseg_gui.core.labels import LabelMap, LabelTable
from ctseg_gui.interactive import autosave, editing
from ctseg_gui.io import read_image


def test_autosave_when_due_and_recover(small_ct, tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path))
    image = read_image(small_ct)
    editor = LabelEditor(LabelMap.empty(image, LabelTable.from_names(["spleen"])))
    now = [0.0]
    saver = autosave.Autosaver(editor, interval_s=60, clock=lambda: now[0])
    assert saver.folder == tmp_path / "autosave"
    now[0] = 120.0
    assert saver.tick() is None  # nothing changed yet
    editing.paint(editor, 1, (60, 50, 15), 9.0)
    now[0] = 150.0
    first = saver.tick()
    assert first is not None and first.exists()
    editing.paint(editor, 1, (70, 50, 15), 9.0)
    now[0] = 200.0
    assert saver.tick() is None  # modified, but within a minute of the last save
    now[0] = 211.0
    assert saver.tick() == first
    now[0] = 400.0
    assert saver.tick() is None  # saved; not modified since

    # "Crash": a new session looks for recoveries of the same image.
    image_again = read_image(small_ct)
    found = autosave.recoveries_for(image_again)
    assert len(found) == 1 and "abdomen_3mm_30slices" in found[0].describe()
    recovered = autosave.recover(found[0], image_again)
    assert np.array_equal(recovered.array, editor.labels.array)
    assert recovered.table[1].name == "spleen"
    autosave.discard_recovery(found[0])
    assert autosave.find_recoveries() == []


def test_damaged_info_files_are_skipped(tmp_path):
    folder = tmp_path / "autosave"
    folder.mkdir()
    (folder / "x.json").write_text("{not json")
    assert autosave.find_recoveries(folder) == []
