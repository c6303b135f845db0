"""Bundle trust: nothing in a bundle's configs or scripts runs before the user accepts it.

Each hostile bundle is a small spleen-style bundle (tests/bundles.py's config with a two-level
UNet) whose payload creates a marker file. Refused, the marker must not exist; accepted, the
bundle runs and the payload really does create it (so the check guarded real code); a one-byte
change asks again. The user's trust store goes to a throwaway CTSEG_CONFIG_DIR.
"""

from __future__ import annotations

import json
import zipfile

import pytest
from bundles import (
    build_deepgrow_bundle,
    build_spleen_bundle,
    build_wholebody_bundle,
    tiny_spleen_config,
    write_bundle,
)

from ctseg_gui.cli import main
from ctseg_gui.inference import manager, resolve_model, segment_volume
from ctseg_gui.inference.trust import (
    UntrustedBundleError,
    accept,
    is_trusted,
    review_bundle,
)
from ctseg_gui.io import read_image


@pytest.fixture(autouse=True)
def private_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEG_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("CTSEG_DATA_DIR", str(tmp_path / "data"))


def _hostile(kind: str, root, mark):
    """A tiny bundle whose configs or scripts would create ``mark`` (the payload)."""
    config, scripts, yaml = tiny_spleen_config(), None, False
    net = config["network_def"]
    if kind == "os.system expression":  # the example
        net["spatial_dims"] = f"$__import__('os').system('touch {mark}') or 3"
    elif kind == "subprocess":
        config["imports"].append("$import subprocess")
        net["spatial_dims"] = f"$subprocess.call(['touch', '{mark}']) or 3"
    elif kind == "open for writing":
        net["spatial_dims"] = f"$open('{mark}', 'w').write('x') and 3"
    elif kind == "imports of os, aliased":
        config["imports"].append("$import os as o")
        net["spatial_dims"] = f"$o.mkdir('{mark}') or 3"
    elif kind == "imported os by reference":
        config["helper"] = "$import os"  # the item's value is the module
        net["spatial_dims"] = f"$@helper.mkdir('{mark}') or 3"
    elif kind == "scripts module":
        scripts = {"__init__.py": f"open({str(mark)!r}, 'w').write('imported')\n"}
        config["imports"].append("$import scripts")
    elif kind == "os.system as _target_":
        config["payload"] = {"_target_": "os.system", "command": f"touch {mark}"}
        net["_requires_"] = "@payload"
    elif kind == "yaml config":
        net["spatial_dims"] = f"$__import__('os').system('touch {mark}') or 3"
        yaml = True
    else:
        raise ValueError(kind)
    return write_bundle(root, config, scripts, yaml)


HOSTILE = [
    "os.system expression",
    "subprocess",
    "open for writing",
    "imports of os, aliased",
    "imported os by reference",
    "scripts module",
    "os.system as _target_",
    "yaml config",
]


@pytest.fixture(scope="module")
def small_volume(small_ct):
    return read_image(small_ct)


def _segment(capsys, ct, out, bundle, *extra):
    code = main(["segment", str(ct), "-o", str(out), "--bundle", str(bundle), "-q", *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_bundle_runs_nothing_until_accepted(kind, tmp_path, small_ct, capsys):
    mark = tmp_path / "pwned"
    bundle = _hostile(kind, tmp_path / "bundle", mark)
    out = tmp_path / "labels.nii.gz"

    review = review_bundle(bundle)
    assert review.needs_trust and not review.trusted and not mark.exists()

    code, err = _segment(capsys, small_ct, out, bundle)
    assert code == 1 and not mark.exists() and not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"ctseg: error: {bundle}: the bundle would run code")
    assert "--trust" in lines[0] and review.checksum[:16] in lines[0]

    # the engine (what the compute worker calls) refuses too, before parsing anything
    with pytest.raises(UntrustedBundleError):
        segment_volume(read_image(small_ct), resolve_model(bundle=bundle), device="cpu")
    assert not mark.exists()

    code, err = _segment(capsys, small_ct, out, bundle, "--trust")
    assert code == 0, err
    assert mark.exists(), "accepted, the bundle ran (its payload too)"
    assert out.exists() and is_trusted(review.checksum)

    # trusted: runs again without --trust; a one-byte change asks again
    out.unlink()
    assert _segment(capsys, small_ct, out, bundle)[0] == 0
    changed = (
        next((bundle / "configs").glob("inference.*"))
        if kind != "scripts module"
        else (bundle / "scripts" / "__init__.py")
    )
    changed.write_bytes(changed.read_bytes() + b"\n")
    mark.unlink() if mark.is_file() else mark.rmdir()
    code, err = _segment(capsys, small_ct, tmp_path / "again.nii.gz", bundle)
    assert code == 1 and "would run code" in err and not mark.exists()


def test_worker_refuses_an_untrusted_bundle(tmp_path, small_volume):
    from ctseg_gui.worker import ComputeClient

    mark = tmp_path / "pwned"
    bundle = _hostile("os.system expression", tmp_path / "bundle", mark)
    with ComputeClient() as client:
        assert client.wait_ready(300)
        job = client.submit_segment(small_volume, None, bundle=bundle, device="cpu")
        assert job.wait(300) and job.state == "failed"
    assert "the bundle would run code that is not known to be safe" in job.error
    assert "os.system" in job.error or "__import__" in job.error
    assert not mark.exists()


def test_install_refuses_until_trusted_then_runs_by_id(tmp_path, small_ct, capsys):
    mark = tmp_path / "pwned"
    bundle = _hostile("os.system as _target_", tmp_path / "evil_bundle", mark)
    assert main(["models", "install", str(bundle)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "instantiates os.system" in err[0] and "--trust" in err[0]
    assert manager.list_installed() == [] and not mark.exists()

    assert main(["models", "install", str(bundle), "--trust"]) == 0
    installed = manager.installed_path("evil_bundle")
    assert installed is not None and not mark.exists()
    # trust follows the checksum of the configs, not the folder: the installed copy runs
    out = tmp_path / "labels.nii.gz"
    assert _segment(capsys, small_ct, out, installed)[0] == 0
    assert mark.exists() and out.exists()

    # the installed copy is changed afterwards: it is refused again
    config = installed / "configs" / "inference.json"
    config.write_text(config.read_text().replace('"touch ', '"touch  '))
    code, err = _segment(capsys, small_ct, out, installed)
    assert code == 1 and "would run code" in err


def test_zip_and_download_ask_before_installing(tmp_path):
    import http.server
    import threading
    from functools import partial

    mark = tmp_path / "pwned"
    bundle = _hostile("scripts module", tmp_path / "zipped" / "evil", mark)
    archive = tmp_path / "serve" / "evil_v1.0.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as handle:
        for file in bundle.rglob("*"):
            handle.write(file, f"evil/{file.relative_to(bundle)}")
    with pytest.raises(UntrustedBundleError, match=r"scripts/__init__.py") as refused:
        manager.install(archive)
    assert refused.value.path == archive and manager.list_installed() == []

    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/{archive.name}"
        with pytest.raises(UntrustedBundleError):
            manager.download_and_install("evil", url=url)
        kept = manager.user_data_dir() / "downloads" / archive.name
        assert kept.is_file(), "the archive stays, so accepting does not download it again"
        accept(refused.value.review)  # what the model manager does when the user says yes
        installed = manager.download_and_install("evil", url=url)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert installed.path.is_dir() and not mark.exists()  # installing runs nothing


def test_bundles_the_tests_build_run_without_a_question(tmp_path):
    import json as _json

    from ctseg_gui.inference.catalog import load_catalog

    built = [
        build_spleen_bundle(tmp_path / "spleen"),
        build_wholebody_bundle(tmp_path / "wholebody"),
        write_bundle(tmp_path / "tiny", tiny_spleen_config()),
    ]
    build_deepgrow_bundle(tmp_path / "deepgrow")
    built.append(tmp_path / "deepgrow")
    for manifest in load_catalog().values():  # recipe models: the config the manifest carries
        if manifest.config:
            folder = tmp_path / manifest.id / "configs"
            folder.mkdir(parents=True)
            (folder / "inference.json").write_text(_json.dumps(manifest.config))
            built.append(folder.parent)
    for bundle in built:
        review = review_bundle(bundle)
        assert review.findings == [], (bundle, [f.line() for f in review.findings])
    spleen = review_bundle(built[0])
    assert {"datalist", "device", "network", "imports#0"} <= {f.where for f in spleen.known_safe}


def test_damaged_trust_store_trusts_nothing(tmp_path):
    bundle = _hostile("open for writing", tmp_path / "bundle", tmp_path / "pwned")
    review = review_bundle(bundle)
    accept(review)
    assert is_trusted(review.checksum)
    store = tmp_path / "config" / "trusted_bundles.json"
    assert review.checksum in json.loads(store.read_text())["trusted"]
    store.write_text("{ not json")
    assert not is_trusted(review.checksum)
    accept(review)  # and is rewritten whole
    assert is_trusted(review.checksum)


def test_scripts_load_from_each_bundles_own_folder(tmp_path):
    import importlib.util
    import sys

    import torch

    from ctseg_gui.inference.bundle import get_network, load_plan

    networks = {}
    for name in ("first", "second"):
        config = tiny_spleen_config()
        config["network_def"]["_target_"] = "scripts.nets.TinyUNet"
        scripts = {
            "__init__.py": "",
            "nets.py": f"from monai.networks.nets import UNet\n\n\nclass TinyUNet(UNet):\n    NAME = {name!r}\n",
        }
        bundle = write_bundle(tmp_path / name, config, scripts)
        (bundle / f"beside_configs_{name}.py").write_text("raise SystemExit('imported')\n")
        review = review_bundle(bundle)
        assert [f.file for f in review.findings if f.file.startswith("scripts/")] == [
            "scripts/__init__.py",
            "scripts/nets.py",
        ]
        ref = resolve_model(bundle=bundle)
        with pytest.raises(UntrustedBundleError):
            load_plan(ref)
        accept(review)
        networks[name] = get_network(ref, load_plan(ref), torch.device("cpu"))
        # only scripts/ is importable: nothing else in the bundle folder can shadow a module
        assert importlib.util.find_spec(f"beside_configs_{name}") is None
        assert str(bundle) not in sys.path
        source = sys.modules[type(networks[name]).__module__].__file__
        assert source.startswith(str(bundle / "scripts"))
    # each bundle got its own scripts, not the first one's cached module
    assert [type(n).NAME for n in networks.values()] == ["first", "second"]
