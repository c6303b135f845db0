"""The known-safe vocabulary of bundle configs, read with Python's ``ast`` (not string matching).

The model-zoo lists below are the ``$`` expressions and ``_target_`` names we saw in the
``configs/inference.json`` of the model zoo's CT bundles that our catalog names
(spleen_ct_segmentation 0.5.9, wholeBody_ct_segmentation 0.2.5, swin_unetr_btcv_segmentation 0.5.6,
Project-MONAI/model-zoo at commit dfae206d), written out here as our own test data: those bundles
must run without a question.
"""

from __future__ import annotations

import pytest

from ctseg_gui.inference._trust_rules import (
    check_expression,
    check_import,
    check_macro,
    check_target,
    import_binding,
)

# imports of those configs, bound as MONAI binds them
ZOO_IMPORTS = ["import glob", "import numpy", "import os"]
ZOO_EXPRESSIONS = [
    "'model.pt' if @displayable_configs#highres else 'model_lowres.pt'",  # wholeBody variants
    "@bundle_root + '/eval'",
    "@bundle_root + '/models/' + @modelname",
    "@bundle_root + '/models/model.pt'",
    "@checkpoint",
    "@checkpointloader(@evaluator) if @load_pretrain else None",
    "@evaluator.run()",
    "@network_def.to(@device)",
    "[1.5, 1.5, 1.5] if @displayable_configs#highres else [3.0, 3.0, 3.0]",
    "[{'image': i} for i in @datalist]",
    "list(sorted(glob.glob(@dataset_dir + '/imagesTs/*.nii.gz')))",
    "monai.utils.set_determinism(seed=123)",
    "numpy.float32",
    "setattr(torch.backends.cudnn, 'benchmark', True)",  # wholeBody's inference.json
    "torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
]
ZOO_TARGETS = [
    *("Activationsd", "AsDiscreted", "CheckpointLoader", "Compose", "DataLoader", "Dataset"),
    *("EnsureChannelFirstd", "EnsureTyped", "Invertd", "LoadImaged", "NormalizeIntensityd"),
    *("Orientationd", "SaveImaged", "ScaleIntensityRanged", "ScaleIntensityd", "SegResNet"),
    *("SlidingWindowInferer", "Spacingd", "StatsHandler", "SupervisedEvaluator", "SwinUNETR"),
    "UNet",
]


def _modules(imports: list[str]) -> dict[str, str]:
    return dict(import_binding(statement) for statement in imports)


def test_zoo_ct_inference_configs_are_known_safe():
    modules = _modules(ZOO_IMPORTS)
    assert [check_import(s) for s in ZOO_IMPORTS] == [[], [], []]
    for expression in ZOO_EXPRESSIONS:
        assert check_expression(expression, modules) == [], expression
    for target in ZOO_TARGETS:
        assert check_target(target, modules) == [], target


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os').system('id')", "uses __import__"),
        ("os.system('id')", "uses os.system"),
        ("os.popen('id').read()", "uses os.popen"),
        ("o.remove('/tmp/x')", "uses os.remove"),  # `import os as o`
        ("@imports#2.system('id')", "uses os.system"),  # the import item, by reference
        ("open('/tmp/x', 'w').write('x')", "uses open"),
        ("eval('1')", "uses eval"),
        ("getattr(torch, 'lo' + 'ad')('x.pt')", "uses getattr"),
        ("torch.load(@bundle_root + '/m.pt')", "uses torch.load"),
        ("torch.hub.load('a', 'b')", "uses torch.hub.load"),
        ("torch.jit.load('m.ts')", "uses torch.jit.load"),
        ("numpy.load('x.npy', allow_pickle=True)", "uses numpy.load"),
        ("monai.utils.optional_import('os')[0].system('id')", "uses monai.utils.optional_import"),
        ("monai.bundle.run(config_file='x.json')", "uses monai.bundle.run"),
        (
            "monai.data.utils.pickle_operations({'x_pickle': b'...'}, is_encode=False)",
            "uses monai.data.utils.pickle_operations",
        ),
        ("().__class__.__base__.__subclasses__()", "reads the hidden attribute __subclasses__"),
        ("@network_def.__init__.__globals__", "reads the hidden attribute __globals__"),
        ("'{0.__class__}'.format(@device)", "calls .format()"),
        ("lambda x: exec(x)", "uses exec"),
        ("torch", "uses the module torch"),  # a bare module could be handed to anything
        ("setattr(torch.backends.cudnn, 'enabled', False)", "uses setattr"),
        ("[x := 1]", "uses NamedExpr"),
        (
            "monai.data.PersistentDataset([], cache_dir='c', weights_only=False)",
            "loads pickled data (weights_only=...)",
        ),
    ],
)
def test_code_that_needs_trust(expression, reason):
    modules = _modules(["import glob", "import os as o", "import os"])
    modules["@imports#2"] = "os"
    assert reason in check_expression(expression, modules)


def test_a_parser_not_string_matching():
    modules = _modules(["import os"])
    # the words are in a string literal: nothing is called
    assert check_expression("'os.system and open() are only words here'", modules) == []
    # spacing and line breaks do not hide a call
    assert "uses os.system" in check_expression("os . system ( 'id' )", modules)
    assert "uses os.system" in check_expression("(os\n.system)('id')", modules)
    # comprehension and lambda variables are local values, not modules
    assert check_expression("[len(os) for os in [[1], [2]]]", modules) == []
    assert check_expression("(lambda os: os.system)(@device)", modules) == []
    assert check_expression("lambda x: [xx['image'].meta for xx in x]", {}) == []


@pytest.mark.parametrize(
    ("statement", "ok"),
    [
        ("import os", True),
        ("import torch.distributed as dist", True),
        ("from monai.networks import trt_compile", True),
        ("import subprocess", False),
        ("import scripts", False),  # the bundle's own code
        ("from scripts.utils import x", False),
        ("import os; os.system('id')", False),  # MONAI would import only; still not ours to run
        ("from . import x", False),
    ],
)
def test_imports(statement, ok):
    assert (check_import(statement) == []) is ok


def test_targets():
    modules = _modules(["import os"])
    assert check_target("monai.transforms.Spacingd", modules) == []
    assert check_target("torch.optim.Adam", modules) == []
    assert check_target("os.system", modules) == ["instantiates os.system"]
    assert check_target("subprocess.run", modules) == ["instantiates subprocess.run"]
    assert check_target("scripts.net.Net", modules) == ["instantiates scripts.net.Net"]
    assert check_target("builtins.exec", modules) == ["instantiates builtins.exec"]
    assert check_target("monai.bundle.scripts.run", modules)
    # short names are MONAI's own: a transform is fine, MONAI's command runner is not
    assert check_target("Spacingd", modules) == []
    assert check_target("run_cmd", modules) == ["instantiates monai.utils.misc.run_cmd"]
    assert check_target("download_url", modules)


def test_targets_without_monai_sources(monkeypatch):
    # the frozen app keeps MONAI compiled in its archive: MONAI's own locator answers instead
    from ctseg_gui.inference import _trust_rules

    monkeypatch.setattr(_trust_rules, "_monai_index", lambda: {})
    assert check_target("Spacingd", {}) == []
    assert check_target("run_cmd", {}) == ["instantiates monai.utils.misc.run_cmd"]
    assert check_target("NoSuchNet", {})  # nothing to check it against: ask


def test_macros_from_other_files():
    assert check_macro("%train#postprocessing") == []  # the same config
    assert check_macro("%/home/me/other.json#network") == [
        "copies config from another file (/home/me/other.json)"
    ]
    assert check_macro("%configs/x.yaml#a")


def test_review_of_a_bundle_folder(tmp_path):
    import json

    from ctseg_gui.inference.trust import review_bundle

    configs = tmp_path / "configs"
    configs.mkdir()
    config = {
        "imports": ["$import os"],
        "net": {"_target_": "UNet", "_mode_": "debug", "spatial_dims": 3},
        "copied": "%/elsewhere/other.json#network",
        "same_file": "%net",
        "fine": "$os.path.join(@bundle_root, 'models')",
        "reader": {"_target_": "NumpyReader", "allow_pickle": True},
        "cache": {"_target_": "PersistentDataset", "data": [], "weights_only": True},
    }
    (configs / "inference.json").write_text(json.dumps(config))
    (configs / "metadata.json").write_text(json.dumps({"version": "1", "x": "$os.getcwd()"}))
    review = review_bundle(tmp_path)
    found = {(f.file, f.where): f.reasons for f in review.findings}
    assert found == {
        ("configs/inference.json", "net#_mode_"): ("runs the Python debugger",),
        ("configs/inference.json", "copied"): (
            "copies config from another file (/elsewhere/other.json)",
        ),
        ("configs/metadata.json", "x"): ("uses os.getcwd",),
        ("configs/inference.json", "reader#allow_pickle"): ("loads pickled data",),
    }
    assert review.configs["configs/inference.json"] == config  # what the parser will get
