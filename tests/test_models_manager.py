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
from ctseg_gui.inference import (
    BundleError,
    JobCancelled,
    ModelNotFoundError,
    manager,
    resolve_model,
)


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


def test_default_model_id_strips_versions_only():
    assert manager.default_model_id("a/spleen_ct_segmentation_v0.5.4.zip") == (
        "spleen_ct_segmentation"
    )
    assert manager.default_model_id("a/breast_vessel_seg") == "breast_vessel_seg"
    assert manager.default_model_id("a/deepgrow_2d.pt") == "deepgrow_2d"


def test_install_errors_name_the_users_file(spleen_bundle, tmp_path):
    broken = tmp_path / "spleen_ct_segmentation"
    shutil.copytree(spleen_bundle, broken)
    (broken / "models" / "model.pt").unlink()
    with pytest.raises(BundleError) as caught:
        manager.install(broken)
    message = str(caught.value)
    assert message.startswith(str(broken)) and "models: no weights" in message
    assert ".spleen_ct_segmentation-" not in message  # not the staging copy
    truncated = tmp_path / "spleen_ct_segmentation_v0.5.4.zip"
    truncated.write_bytes(_zip(spleen_bundle, tmp_path / "whole.zip").read_bytes()[:5000])
    with pytest.raises(BundleError, match="damaged or incomplete .zip"):
        manager.install(truncated)
    empty = tmp_path / "notabundle.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(BundleError, match="no MONAI bundle inside the archive") as caught:
        manager.install(empty)
    assert str(caught.value).startswith(str(empty))
    with pytest.raises(BundleError, match="weights file alone installs only"):
        manager.install(spleen_bundle / "models" / "model.pt", "spleen_ct_segmentation")
    assert manager.list_installed() == []


def test_verify_reports_what_it_checked(spleen_bundle):
    manager.install(spleen_bundle)
    checked: list[str] = []
    assert manager.verify("spleen_ct_segmentation", checked) == []
    assert any(line.startswith("models/model.pt: present") for line in checked)
    assert "configs/inference.json: valid JSON" in checked


def test_download_offline_names_url_and_problem(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nobody listens on: refused, online or not
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/spleen_ct_segmentation_v0.5.4.zip"
    with pytest.raises(CtsegError) as caught:
        manager.download_and_install("spleen_ct_segmentation", url=url)
    message = str(caught.value)
    assert url in message and "connection refused" in message
    assert "\n" not in message and "Traceback" not in message
    assert manager.network_problem(OSError()) == "OSError"


def test_download_failure_counts_mirrors_failing_alike(monkeypatch):
    import socket

    from ctseg_gui.inference.catalog import get_manifest

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    urls = [f"http://127.0.0.1:{port}/{n}/spleen.zip" for n in ("a", "b", "c")]
    manifest = get_manifest("spleen_ct_segmentation")
    monkeypatch.setattr(manifest, "sources", [{"url": u} for u in urls])
    with pytest.raises(CtsegError) as caught:
        manager.download_and_install("spleen_ct_segmentation")
    assert str(caught.value) == (
        "spleen_ct_segmentation: download failed, connection refused by the server; "
        f"tried {urls[0]} (and 2 mirrors)"
    )
    monkeypatch.setattr(manifest, "sources", [{"url": urls[0]}, {"url": "http://127.0.0.1:9"}])
    monkeypatch.setattr(
        manager,
        "download",
        lambda url, *a, **k: (_ for _ in ()).throw(
            CtsegError("x" if "/a/" in url else "download failed: HTTP 404 Not Found", url)
        ),
    )
    with pytest.raises(CtsegError, match="no source could be downloaded: .*HTTP 404"):
        manager.download_and_install("spleen_ct_segmentation")


def test_download_of_recipe_model_points_to_its_page():
    with pytest.raises(CtsegError, match="no bundle archive to download") as caught:
        manager.download_and_install("deepgrow_2d")
    assert "catalog.ngc.nvidia.com" in str(caught.value)


def test_download_cancel_keeps_partial_for_resume(server, tmp_path, spleen_bundle):
    payload = _zip(spleen_bundle, tmp_path / "b.zip").read_bytes()
    _RangeHandler.payload, _RangeHandler.fail_after, _RangeHandler.ranges = payload, None, []
    url = f"http://127.0.0.1:{server.server_address[1]}/spleen_ct_segmentation_v0.0.1.zip"
    seen: list[int] = []
    with pytest.raises(JobCancelled, match="cancelled"):
        manager.download_and_install(
            "spleen_ct_segmentation",
            lambda done, total: seen.append(done),
            url=url,
            cancelled=lambda: len(seen) >= 2,
        )
    partial = manager.user_data_dir() / "downloads" / "spleen_ct_segmentation_v0.0.1.zip.part"
    assert partial.stat().st_size == seen[-1] < len(payload)
    assert manager.list_installed() == []
    installed = manager.download_and_install("spleen_ct_segmentation", url=url)
    assert _RangeHandler.ranges[-1] == f"bytes={seen[-1]}-"
    assert (installed.path / "models" / "model.pt").is_file()


def test_overview_rows(spleen_bundle):
    from ctseg_gui.inference.overview import format_size, model_overview

    rows = {row.model_id: row for row in model_overview()}
    assert rows["ct-tissues"].status == "Built-in"
    assert rows["spleen_ct_segmentation"].status == "Not installed"
    assert rows["spleen_ct_segmentation"].downloadable
    assert not rows["deepgrow_2d"].downloadable
    assert rows["wholeBody_ct_segmentation"].variants == ["highres", "lowres"]
    assert rows["spleen_ct_segmentation"].source == "api.ngc.nvidia.com (+1 mirror)"
    manager.install(spleen_bundle)
    local = spleen_bundle.parent / "my_own_bundle"
    shutil.copytree(spleen_bundle, local)
    manager.install(local)
    rows = {row.model_id: row for row in model_overview()}
    spleen = rows["spleen_ct_segmentation"]
    assert spleen.status == "Installed (0.0.1)"
    assert spleen.size_bytes > (spleen.path / "models" / "model.pt").stat().st_size
    assert rows["my_own_bundle"].kind == "local" and rows["my_own_bundle"].installed
    assert format_size(1_234_567) == "1.2 MB" and format_size(None) == "—"
