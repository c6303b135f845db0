import json

from ctseg_gui.core.settings import Settings, user_data_dir


def test_round_trip(tmp_path):
    path = tmp_path / "settings.json"
    settings = Settings(device="cpu", autosave_seconds=30)
    settings.add_recent(tmp_path / "a.nii.gz")
    settings.save(path)
    loaded = Settings.load(path)
    assert loaded.device == "cpu" and loaded.autosave_seconds == 30
    assert loaded.recent_files == [str((tmp_path / "a.nii.gz").resolve())]


def test_bad_files_never_block(tmp_path):
    path = tmp_path / "settings.json"
    for content in ("{not json", "[1, 2]", "", '{"device": "tpu", "autosave_seconds": "soon"}'):
        path.write_text(content)
        assert Settings.load(path) == Settings()


def test_partial_old_file_keeps_valid_fields(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"label_opacity": 0.8, "removed_field": 1, "recent_files": "x"}))
    loaded = Settings.load(path)
    assert loaded.label_opacity == 0.8 and loaded.recent_files == []


def test_environment_overrides(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    Settings(device="cuda").save(path)
    monkeypatch.setenv("CTSEG_DEVICE", "cpu")
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))
    assert Settings.load(path).device == "cpu"
    assert user_data_dir() == tmp_path / "data"


def test_recent_list_is_bounded_and_deduplicated(tmp_path):
    settings = Settings(max_recent=3)
    for name in "abcdb":
        settings.add_recent(tmp_path / name)
    assert [p[-1] for p in settings.recent_files] == ["b", "d", "c"]
