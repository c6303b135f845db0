"""Catalog checksums: weights are checked against the model zoo's MD5 for their bundle version."""

from __future__ import annotations

import json
import shutil

import pytest
from bundles import build_spleen_bundle

from ctseg_gui.inference import BundleError, manager
from ctseg_gui.inference.catalog import load_catalog
from ctseg_gui.inference.manager import md5sum, published_md5

SPLEEN = "spleen_ct_segmentation"


@pytest.fixture(autouse=True)
def private_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def spleen_bundle(tmp_path_factory):
    return build_spleen_bundle(tmp_path_factory.mktemp("md5") / SPLEEN)


def _entry(model_id: str, path: str) -> dict:
    return next(e for e in load_catalog()[model_id].files if e["path"] == path)


def test_published_hashes_are_keyed_to_their_versions():
    spleen = load_catalog()[SPLEEN]
    assert spleen.version == "0.5.4"
    weights = _entry(SPLEEN, "models/model.pt")
    assert published_md5(weights, "0.5.4", "0.5.4") == "be4fa95e236df91766147c112ee6fafd"
    assert published_md5(weights, "0.5.4", "0.4.0") == "b418a2dc8672ce2fd98dc255036e7a3d"
    assert published_md5(weights, "0.5.4", "0.0.1") is None  # nothing published: not checked
    assert published_md5(_entry(SPLEEN, "configs/inference.json"), "0.5.4", "0.5.4") is None

    body = load_catalog()["wholeBody_ct_segmentation"]
    high, low = (_entry(body.id, f"models/{n}") for n in ("model.pt", "model_lowres.pt"))
    assert published_md5(high, body.version, "0.2.5") == "aded45dea52f9c00b37922bcd0a98502"
    assert published_md5(low, body.version, "0.2.5") == "dbdebeae650f4fb5ea7f4ad01e0d2431"
    assert published_md5(high, body.version, body.version) is None  # none for 0.2.4

    swin = load_catalog()["swin_unetr_btcv_segmentation"]
    assert published_md5(_entry(swin.id, "models/model.pt"), swin.version, swin.version) == (
        "50dd67a01b28a1d5487fd9ac27e682fb"
    )


def _with_version(bundle, target, version: str):
    shutil.copytree(bundle, target)
    metadata = target / "configs" / "metadata.json"
    data = json.loads(metadata.read_text())
    data["version"] = version
    metadata.write_text(json.dumps(data))
    return target


def test_mismatch_is_refused_with_both_hashes(spleen_bundle, tmp_path):
    bundle = _with_version(spleen_bundle, tmp_path / SPLEEN, "0.5.4")
    actual = md5sum(bundle / "models" / "model.pt")
    with pytest.raises(BundleError) as refused:
        manager.install(bundle)
    message = str(refused.value)
    assert f"models/model.pt: MD5 {actual} differs from the published" in message
    assert "be4fa95e236df91766147c112ee6fafd" in message and "version 0.5.4" in message
    assert manager.list_installed() == []


def test_versions_without_a_published_hash_install(spleen_bundle, tmp_path):
    installed = manager.install(_with_version(spleen_bundle, tmp_path / SPLEEN, "0.0.1"))
    checked: list[str] = []
    assert manager.verify(SPLEEN, checked) == []
    assert installed.version == "0.0.1"
    assert "no published MD5 checksums for version 0.0.1 in the catalog" in checked


def test_a_matching_hash_is_reported(spleen_bundle, tmp_path, monkeypatch):
    bundle = _with_version(spleen_bundle, tmp_path / SPLEEN, "0.5.4")
    actual = md5sum(bundle / "models" / "model.pt")
    entry = _entry(SPLEEN, "models/model.pt")
    monkeypatch.setitem(entry, "md5", actual)  # as if these were the published weights
    manager.install(bundle)
    checked: list[str] = []
    assert manager.verify(SPLEEN, checked) == []
    assert f"models/model.pt: MD5 matches the published {actual}" in checked
