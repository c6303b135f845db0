"""Model manager: install from folder / zip / weights, list, verify, remove, resumable download."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import zipfile

import pytest
from bundles import build_spleen_bundle

from ctseg_gui.cli import main
from ctseg_gui.core.errors import CtsegError
from ctseg_gui.inference import BundleError, ModelNotFoundError, manager, resolve_model


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    target = tmp_path / "userdata"
    monkeypatch.setenv("CTSEG_DATA_DIR", str(target))
    return target


@pytest.fixture(scope="module")
def spleen_bundle(tmp_path_factory):
    return build_spleen_bundle(tmp_path_factory.mktemp("mgr") / "spleen_ct_segmentation")


def _zip(bundle, path):
    with zipfile.ZipFile(path, "w") as archive:
        for file in bundle.rglob("*"):
            archive.write(file, f"{bundle.name}/{file.relative_to(bundle)}")
    return path


def test_data_dir_override(data_dir):
    assert manager.models_dir() == data_dir / "models"


def test_install_folder_list_resolve_remove(spleen_bundle, data_dir):
    installed = manager.install(spleen_bundle)
    assert installed.model_id == "spleen_ct_segmentation"
    assert installed.path == data_dir / "models" / "spleen_ct_segmentation"
    assert (installed.path / "models" / "model.pt").is_file()
    assert installed.version == "0.0.1"  # from the bundle's metadata.json
    assert [m.model_id for m in manager.list_installed()] == ["spleen_ct_segmentation"]
    assert manager.verify("spleen_ct_segmentation") == []
    ref = resolve_model("spleen_ct_segmentation")
    assert ref.bundle == installed.path
    with pytest.raises(CtsegError, match="already installed"):
        manager.install(spleen_bundle)
    manager.remove("spleen_ct_segmentation")
    assert manager.list_installed() == []
    with pytest.raises(ModelNotFoundError):
        manager.remove("spleen_ct_segmentation")


def test_install_zip_as_published(spleen_bundle, tmp_path):
    archive = _zip(spleen_bundle, tmp_path / "spleen_ct_segmentation_v0.5.4.zip")
    installed = manager.install(archive)
    assert installed.model_id == "spleen_ct_segmentation"
    assert (installed.path / "configs" / "inference.json").is_file()


def test_install_refuses_broken_bundles(spleen_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(spleen_bundle, broken)
    (broken / "models" / "model.pt").unlink()
    with pytest.raises(BundleError, match="no weights"):
        manager.install(broken, "spleen_ct_segmentation")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 nonsense")
    with pytest.raises(BundleError):
        manager.install(tmp_path / "junk.zip", "x")
    assert manager.list_installed() == []


def test_verify_finds_damage(spleen_bundle):
    installed = manager.install(spleen_bundle)
    (installed.path / "configs" / "inference.json").write_text("{ not json")
    problems = manager.verify("spleen_ct_segmentation")
    assert any("not valid JSON" in p for p in problems)


def test_recipe_model_installs_from_weights(tmp_path):
    import torch
    from monai.bundle import ConfigParser

    from ctseg_gui.inference.catalog import get_manifest

    manifest = get_manifest("deepgrow_2d")
    network = ConfigParser({"n": manifest.config["network_def"]}).get_parsed_content("n")
    torch.save(network.state_dict(), tmp_path / "deepgrow_2d.pt")
    installed = manager.install(tmp_path / "deepgrow_2d.pt", "deepgrow_2d")
    config = json.loads((installed.path / "configs" / "inference.json").read_text())
    assert config["network_def"]["_target_"] == "BasicUNet"
    assert manager.verify("deepgrow_2d") == []


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    fail_after: int | None = None
    ranges: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        start = 0
        header = self.headers.get("Range")
        type(self).ranges.append(header)
        if header:
            start = int(header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}"
            )
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.fail_after is not None and not header:
            self.wfile.write(body[: self.fail_after])  # connection drops mid-way
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_with_range(server, tmp_path, spleen_bundle):
    payload = _zip(spleen_bundle, tmp_path / "b.zip").read_bytes()
    _RangeHandler.payload, _RangeHandler.fail_after, _RangeHandler.ranges = payload, 300_000, []
    url = f"http://127.0.0.1:{server.server_address[1]}/spleen_ct_segmentation_v0.0.1.zip"
    target = tmp_path / "dl" / "spleen.zip"
    with pytest.raises(CtsegError, match="run again to resume"):
        manager.download(url, target)
    partial = target.with_name("spleen.zip.part")
    assert partial.stat().st_size == 300_000
    seen = []
    manager.download(url, target, progress=lambda done, total: seen.append((done, total)))
    assert target.read_bytes() == payload
    assert _RangeHandler.ranges[-1] == "bytes=300000-"
    assert seen[-1] == (len(payload), len(payload))
    _RangeHandler.fail_after = None
    installed = manager.download_and_install("spleen_ct_segmentation", url=url)
    assert installed.path.is_dir()


def test_cli_models_install_list_remove(spleen_bundle, capsys):
    assert main(["models", "install", "spleen_ct_segmentation", str(spleen_bundle)]) == 0
    assert main(["models", "list", "--json"]) == 0
    out = capsys.readouterr().out
    listing = json.loads(out[out.index("{") :])
    rows = {row["id"]: row for row in listing["models"]}
    assert rows["spleen_ct_segmentation"]["installed"] is True
    assert rows["ct-tissues"]["builtin"] is True
    assert rows["wholeBody_ct_segmentation"]["variants"] == ["highres", "lowres"]
    assert main(["models", "verify", "spleen_ct_segmentation"]) == 0
    assert main(["models", "remove", "spleen_ct_segmentation"]) == 0
    assert main(["models", "remove", "spleen_ct_segmentation"]) == 1
