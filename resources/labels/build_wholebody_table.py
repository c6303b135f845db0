"""Build ``wholebody_104.json``: the TotalSegmentator v1 label table with groups and colours.

Run once when the names or the colour scheme change; the JSON is what the app ships. Each group
owns a band of hues (arteries red, veins blue, bones ivory to amber, muscles reds, lungs
blue-green), and within its band every structure takes the colour farthest from all colours
already given, so neighbouring structures (L1 next to L2, rib 3 next to rib 4) stay apart.
"""

import colorsys
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
# Hue bands in degrees (may wrap past 360) per group; arteries and veins split the vessels.
HUE_BANDS = {
    "organs": (0, 360),
    "arteries": (345, 372),
    "veins": (200, 245),
    "vertebrae": (25, 65),
    "ribs": (40, 80),
    "muscles": (330, 385),
    "cardiac": (300, 345),
    "lungs": (160, 220),
    "other": (0, 360),
}


def group_of(name: str) -> str:
    if name.startswith("vertebrae_"):
        return "vertebrae"
    if name.startswith("rib_"):
        return "ribs"
    if name.startswith("lung_"):
        return "lungs"
    if name.startswith("heart_"):
        return "cardiac"
    if name.startswith(("gluteus", "autochthon", "iliopsoas")):
        return "muscles"
    if any(v in name for v in ("aorta", "vena", "vein", "artery")):
        return "vessels"
    if name in (
        "humerus_left",
        "humerus_right",
        "scapula_left",
        "scapula_right",
        "clavicula_left",
        "clavicula_right",
        "femur_left",
        "femur_right",
        "hip_left",
        "hip_right",
        "sacrum",
        "face",
        "brain",
    ):
        return "other"
    return "organs"


def _band(name: str, group: str) -> str:
    if group != "vessels":
        return group
    return "arteries" if "artery" in name or name == "aorta" else "veins"


def _candidates(band: str) -> np.ndarray:
    """RGB colours in a hue band over a grid of lightness and saturation."""
    start, stop = HUE_BANDS[band]
    colours = []
    for hue in np.linspace(start, stop, 24, endpoint=band not in ("organs", "other")):
        for lightness in np.linspace(0.35, 0.82, 8):
            for saturation in (0.45, 0.65, 0.85) if band != "other" else (0.15, 0.3, 0.45):
                colours.append(colorsys.hls_to_rgb((hue % 360) / 360, lightness, saturation))
    return np.round(np.array(colours) * 255)


def assign_colours(entries: list[tuple[int, str, str]]) -> dict[int, list[int]]:
    """Greedy farthest-point choice: each structure takes the colour of its band that is
    farthest from every colour chosen before it, so the whole table stays distinguishable."""
    chosen: list[np.ndarray] = []
    result = {}
    pools = {band: _candidates(band) for band in HUE_BANDS}
    for value, name, group in entries:
        pool = pools[_band(name, group)]
        if chosen:
            distance = np.linalg.norm(pool[:, None, :] - np.array(chosen)[None], axis=-1)
            pick = int(np.argmax(distance.min(axis=1)))
        else:
            pick = len(pool) // 2
        chosen.append(pool[pick])
        result[value] = [int(c) for c in pool[pick]]
    return result


def main() -> None:
    names = {
        int(k): v
        for k, v in json.loads((HERE.parent / "totalseg_v1_104_names.json").read_text()).items()
    }
    entries = [(value, name, group_of(name)) for value, name in sorted(names.items())]
    colours = assign_colours(entries)
    labels = [
        {"value": value, "name": name, "group": group, "color": colours[value]}
        for value, name, group in entries
    ]
    (HERE / "wholebody_104.json").write_text(json.dumps({"labels": labels}, indent=1) + "\n")


if __name__ == "__main__":
    main()
