"""The shipped model catalog: every seed model has a complete manifest."""

from __future__ import annotations

import pytest

from ctseg_gui.inference import resolve_model
from ctseg_gui.inference.catalog import get_manifest, load_catalog

SEED_MODELS = {
    "spleen_ct_segmentation",
    "wholeBody_ct_segmentation",
    "swin_unetr_btcv_segmentation",
    "unetr_btcv_ssl",
    "spleen_deepedit_annotation",
    "deepgrow_2d",
    "deepgrow_3d",
}


def test_all_seed_models_have_manifests():
    catalog = load_catalog()
    assert set(catalog) >= SEED_MODELS
    for manifest in catalog.values():
        assert manifest.display_name and manifest.task and manifest.licence
        assert manifest.sources and all(s["url"].startswith("https://") for s in manifest.sources)
        assert manifest.labels, manifest.id
        for entry in manifest.files:
            assert "md5" in entry  # "unknown" where not published


def test_wholebody_variants_and_labels():
    manifest = get_manifest("wholeBody_ct_segmentation")
    assert set(manifest.variants) == {"highres", "lowres"}
    assert manifest.variant("lowres").weights == "models/model_lowres.pt"
    assert manifest.variant("lowres").overrides == {"displayable_configs#highres": False}
    assert manifest.variant("highres").weights == "models/model.pt"
    assert len(manifest.labels) == 104
    assert manifest.labels[1] == "spleen" and manifest.labels[104] == "urinary_bladder"
    with pytest.raises(Exception, match="no variant 'medium'"):
        manifest.variant("medium")


@pytest.mark.parametrize("model_id", ["unetr_btcv_ssl", "deepgrow_2d", "deepgrow_3d"])
def test_recipe_configs_build_their_networks(model_id):
    from monai.bundle import ConfigParser

    manifest = get_manifest(model_id)
    assert manifest.kind == "recipe"
    parser = ConfigParser(manifest.config)
    network = parser.get_parsed_content("network_def")
    assert sum(p.numel() for p in network.parameters()) > 100_000
    assert parser.get_parsed_content("inferer") is not None


def test_builtin_is_the_default():
    ref = resolve_model(None, None, None)
    assert ref.builtin and ref.model_id == "ct-tissues"
