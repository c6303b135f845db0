"""Session files: every stored piece comes back; bad, newer and orphaned files fail clearly."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from ctseg_gui.core.history import LabelEditor
from ctseg_gui.core.labels import LabelMap, LabelTable
from ctseg_gui.core.viewer_state import ViewerState
from ctseg_gui.interactive import autosave
from ctseg_gui.io import read_image
from ctseg_gui.io.session import (
    ClickRecord,
    ImageRef,
    MeasurementRecord,
    Session,
    SessionError,
    image_checksum,
    load_labels,
    read_session,
    save_session,
)


@pytest.fixture
def image_copy(tmp_path, small_ct):
    target = tmp_path / "project" / "ct.nii.gz"
    target.parent.mkdir()
    shutil.copy(small_ct, target)
    return target


def _labels(volume) -> LabelMap:
    array = np.zeros(volume.array.shape, np.uint8)
    array[10:14, 40:60, 50:70] = 1
    array[5:8, 20:30, 20:30] = 7
    table = LabelTable.from_names({1: "spleen", 7: "my lesion"})
    table.update(7, color=(10, 200, 30), visible=False)
    return LabelMap(array, volume, table)


def _state() -> ViewerState:
    state = ViewerState()
    state.cursor = (12.5, -30.25, 101.0)
    state.set_window(1500, -600)
    state.opacity = 0.8
    state.outline = False
    state.active_label = 7
    state.interpolate = False
    state.set_layout("1+3", "coronal")
    state.set_camera("axial", 2.5, (10.0, -4.0))
    return state


def _session(volume, path, state) -> Session:
    return Session(
        ImageRef.of(volume, path),
        clicks=[ClickRecord((60, 50, 12), True), ClickRecord((61, 52, 12), False)],
        click_label=1,
        measurements=[
            MeasurementRecord("axial", 12, "ruler", (1.0, 2.0), (31.0, 42.0), "50.0 mm"),
            MeasurementRecord("coronal", 40, "circle", (0.0, 0.0), (5.0, 0.0), "mean 41 HU"),
        ],
        view=state.to_json(),
    )


def test_round_trip_of_every_stored_piece(tmp_path, image_copy):
    volume = read_image(image_copy)
    labels, state = _labels(volume), _state()
    path = save_session(tmp_path / "work" / "case", _session(volume, image_copy, state), labels)
    assert path.name == "case.ctseg" and zipfile.is_zipfile(path)

    session = read_session(path)
    assert session.image.path == str(image_copy.resolve())
    assert session.image.size == volume.size and session.image.checksum.startswith("blake2b:")
    reopened = read_image(session.image.locate(path))
    assert session.image.matches(reopened)
    restored = load_labels(path, session, reopened)
    np.testing.assert_array_equal(restored.array, labels.array)
    assert restored.table[1].name == "spleen" and restored.table[7].name == "my lesion"
    assert restored.table[7].color == (10, 200, 30) and restored.table[7].visible is False
    assert session.clicks == [ClickRecord((60, 50, 12), True), ClickRecord((61, 52, 12), False)]
    assert session.click_label == 1
    assert session.measurements[0] == MeasurementRecord(
        "axial", 12, "ruler", (1.0, 2.0), (31.0, 42.0), "50.0 mm"
    )
    assert [m.kind for m in session.measurements] == ["ruler", "circle"]
    fresh = ViewerState()
    fresh.apply_json(session.view)
    assert fresh.to_json() == state.to_json()
    assert fresh.camera("axial").zoom == 2.5 and fresh.layout == "1+3"


def test_moved_project_folder_and_changed_image(tmp_path, image_copy):
    volume = read_image(image_copy)
    save_session(
        image_copy.parent / "s.ctseg", _session(volume, image_copy, _state()), _labels(volume)
    )
    moved = tmp_path / "moved"
    shutil.move(image_copy.parent, moved)
    session = read_session(moved / "s.ctseg")
    assert session.image.locate(moved / "s.ctseg") == (moved / "ct.nii.gz").resolve()

    changed = read_image(moved / "ct.nii.gz")
    changed.array[0, 0, 0] += 1  # one voxel differs: the session must notice
    changed.metadata.pop("_checksum", None)
    assert not session.image.matches(changed)
    assert image_checksum(read_image(moved / "ct.nii.gz")) == session.image.checksum


def test_dicom_series_reference_keeps_its_uid(tmp_path, dicom_series):
    volume = read_image(dicom_series)
    ref = ImageRef.of(volume, dicom_series)
    assert ref.series_uid and ref.series_uid == volume.metadata["series_uid"]
    labels = LabelMap(np.zeros(volume.array.shape, np.uint8), volume, LabelTable())
    path = save_session(tmp_path / "d.ctseg", Session(ref), labels)
    assert read_session(path).image.series_uid == ref.series_uid


def _rewrite(path, data=None, drop_labels=False, raw=None):
    with zipfile.ZipFile(path) as archive:
        labels = archive.read("labels.nii.gz")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("session.json", raw if raw is not None else json.dumps(data))
        if not drop_labels:
            archive.writestr("labels.nii.gz", labels)


def test_bad_old_and_newer_files_fail_with_one_clear_message(tmp_path, image_copy):
    volume = read_image(image_copy)
    good = save_session(
        tmp_path / "good.ctseg", _session(volume, image_copy, _state()), _labels(volume)
    )
    data = json.loads(zipfile.ZipFile(good).read("session.json"))

    def expect(message, **rewrite):
        bad = tmp_path / "bad.ctseg"
        shutil.copy(good, bad)
        _rewrite(bad, **rewrite)
        with pytest.raises(SessionError, match=message) as caught:
            read_session(bad)
        assert str(caught.value).startswith(str(bad))

    expect("newer ctseg-gui", data={**data, "version": 99})
    expect("unknown format", data={**data, "format": "something-else"})
    expect("label map is missing", data=data, drop_labels=True)
    expect("bad entry", data={**data, "image": {"series_uid": "1.2"}})
    expect(
        "unknown measurement kind",
        data={**data, "measurements": [{**data["measurements"][0], "kind": "angle"}]},
    )
    expect("damaged session file", raw="{not json")
    (tmp_path / "plain.ctseg").write_text("hello")
    with pytest.raises(SessionError, match="not a zip archive"):
        read_session(tmp_path / "plain.ctseg")
    with pytest.raises(SessionError, match="does not exist"):
        read_session(tmp_path / "missing.ctseg")
    # An older file without clicks, measurements or view still opens, with nothing of those.
    old = {k: v for k, v in data.items() if k not in ("clicks", "measurements", "view")}
    shutil.copy(good, tmp_path / "old.ctseg")
    _rewrite(tmp_path / "old.ctseg", data=old)
    session = read_session(tmp_path / "old.ctseg")
    assert session.clicks == [] and session.measurements == [] and session.view == {}


def test_labels_on_another_grid_are_refused(tmp_path, image_copy, abdomen_ct):
    volume = read_image(image_copy)
    path = save_session(
        tmp_path / "s.ctseg", _session(volume, image_copy, _state()), _labels(volume)
    )
    with pytest.raises(SessionError, match="labels not restored"):
        load_labels(path, read_session(path), read_image(abdomen_ct))


def test_a_failed_save_keeps_the_previous_session(tmp_path, image_copy, monkeypatch):
    volume = read_image(image_copy)
    path = save_session(
        tmp_path / "s.ctseg", _session(volume, image_copy, _state()), _labels(volume)
    )
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("ctseg_gui.io.labels.write_label_map", broken)
    with pytest.raises(SessionError, match="No space left on device"):
        save_session(path, _session(volume, image_copy, ViewerState()), _labels(volume))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "s.ctseg"]


def test_autosave_keeps_clicks_measurements_and_view(tmp_path, image_copy):
    volume = read_image(image_copy)
    editor = LabelEditor(_labels(volume))
    session = _session(volume, image_copy, _state())
    saver = autosave.Autosaver(
        editor, interval_s=0, folder=tmp_path / "auto", session_state=session.extras_json
    )
    editor.apply((slice(0, 1), slice(0, 1), slice(0, 1)), np.ones((1, 1, 1), np.uint8), "paint")
    assert saver.tick() is not None
    (found,) = autosave.recoveries_for(volume, tmp_path / "auto")
    recovered = Session(ImageRef(""))
    recovered.apply_extras(found.session)
    assert recovered.clicks == session.clicks and recovered.click_label == 1
    assert recovered.measurements == session.measurements
    assert recovered.view == session.view
    np.testing.assert_array_equal(autosave.recover(found, volume).array, editor.labels.array)
